//! Data in: label files, datasets (labels joined with images), the image pipeline and the
//! synthetic phantom generator.
pub mod dataset;
pub mod labels;
pub mod pipeline;
pub mod stats;
pub mod synth;
