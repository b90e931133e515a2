//! Data in: label files, datasets (labels joined with images), the image pipeline, its on-disk
//! cache of decoded images, and the synthetic phantom generator.
pub mod cache;
pub mod dataset;
pub mod labels;
pub mod pipeline;
pub mod stats;
pub mod synth;
