//! conceptree: ontology-aware concept detection in radiology images.
//!
//! The pipeline, stage by stage (see `../shared/DESIGN.md` in the development tree):
//! ontology ([`ontology`]) and labels + images ([`data`]) feed a ResNet trunk with a flat or
//! per-level head ([`model`]), trained by [`train`], scored by [`eval`]. [`synth`] writes the
//! built-in synthetic phantom data set.

pub mod data;
pub mod eval;
pub mod experiment;
pub mod model;
pub mod ontology;
pub mod report;
pub mod synth;
pub mod train;

/// Exit code for success.
pub const EXIT_OK: i32 = 0;
/// Exit code for a failure that is not the user's input (I/O, libtorch, bugs).
pub const EXIT_FAILURE: i32 = 1;
/// Exit code for bad usage or bad input (malformed files, unknown CUIs, missing images...).
pub const EXIT_BAD_INPUT: i32 = 2;
