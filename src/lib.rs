//! conceptree: ontology-aware concept detection in radiology images.
//!
//! The pipeline, stage by stage (ARCHITECTURE.md has the map): the concept hierarchy
//! ([`ontology`]) and labels + images ([`data`]) feed a trunk (ResNet, DenseNet, EfficientNet, ConvNeXt) with a flat or per-level head
//! ([`model`]), trained by [`train`], used by [`predict`], scored by [`eval`] and analysed by
//! [`report`]; [`experiment`] runs whole studies and [`synth`] writes the built-in phantom
//! data set. [`error`] holds the one rule for exit codes. The library never prints: it reports
//! through [`events`], which the command line renders.
//! [`review`] is the clinical review app: a clinician judges predicted concepts blind, and its
//! report gives clinical precision per level and model.
pub mod alloc;
pub mod classify;
pub mod cuda;
pub mod cui;
pub mod data;
pub mod error;
pub mod eval;
pub mod events;
pub mod experiment;
pub mod fingerprint;
pub mod infer;
pub mod model;
pub mod ontology;
pub mod predict;
pub mod report;
pub mod run;
pub mod review;
pub mod synth;
pub mod text;
#[cfg(test)]
pub(crate) mod test_support;
pub mod train;

pub use error::{Error, EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK};
