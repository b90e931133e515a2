//! Inference, below training and prediction: batches of images through a model
//! ([`batch`]), probabilities into coherent concept sets ([`decoder`]), the per-image records of
//! `predict --explain` ([`explain`]) and the kNN index ([`knn`]). Training's validation and
//! `predict` use the same code, so a run is scored on validation exactly as it will predict.
pub mod batch;
pub mod decoder;
pub mod explain;
pub mod knn;

pub use decoder::Decoder;
pub use explain::ExplainRecord;
