//! Data in: label files, datasets (labels joined with images), the image pipeline and its on-disk
//! cache of decoded images. (The synthetic phantom generator is [`crate::synth`].)
//!
//! The image pipeline is three files, each depending only on the ones before it:
//! [`decode`] (file -> resized 8-bit planes), [`augment`] (planes -> augmented, normalised
//! floats), [`loader`] (parallel batches, from files or the [`cache`], staged as tensors).
pub mod augment;
pub mod cache;
pub mod dataset;
pub mod decode;
pub mod images;
pub mod labels;
pub mod loader;
pub mod output;
pub mod stats;
