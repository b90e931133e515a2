//! The run layer (below training and prediction): what a run directory is called and holds, and
//! the one check every command that writes runs before it writes ([`outputs`]).
//!
//! Floors (ARCHITECTURE.md): this module imports nothing above `data`; `train`, `predict`,
//! `experiment`, `review` and the CLI import it.
pub mod names;
pub mod outputs;
