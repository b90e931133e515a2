//! Data in: label files, datasets (labels joined with images), the image pipeline and its on-disk
//! cache of decoded images. (The synthetic phantom generator is [`crate::synth`].)
pub mod cache;
pub mod dataset;
pub mod labels;
pub mod pipeline;
pub mod stats;
