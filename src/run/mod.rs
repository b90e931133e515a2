//! The run layer (below training and prediction): a run directory ([`dir`]: lock, atomic writes,
//! provenance), what its files are called ([`names`]), how its images become the model's input
//! ([`preprocessing`]), and the one check every command that writes runs before it writes
//! ([`outputs`]).
//!
//! Floors (ARCHITECTURE.md): this module imports nothing above `data`; `train`, `predict`,
//! `experiment`, `review` and the CLI import it.
pub mod dir;
pub mod names;
pub mod outputs;
pub mod preprocessing;
