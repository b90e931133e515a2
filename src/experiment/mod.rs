//! Whole experiments on one split and one budget: `experiment paper` ([`paper`], the seed
//! paper's study) and `experiment compare` ([`compare`], paired multi-seed comparisons of model
//! configurations). What both share, the fixed split, training a run unless it is already done
//! (resuming it when it was interrupted) and scoring a run on the test part, is in [`setup`].
//!
//! Both are resumable: a finished run (its `summary.json` exists) is not trained again, an
//! interrupted one continues from its checkpoint, so rerunning the same command completes it. A run
//! found there that was started with other settings is refused, never mixed into the table.
pub mod compare;
pub mod decoding;
pub mod paper;
pub mod setup;

pub use paper::{run_paper, table4_markdown, ExperimentConfig, RunResult, RUNS};
pub use setup::{Split, TestPart};
