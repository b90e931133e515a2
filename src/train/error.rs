//! Training failures, one type for the whole stage.
use std::path::PathBuf;

use super::config::ConfigError;
use crate::classify::Classify;
use crate::data::cache::CacheError;
use crate::data::dataset::DatasetError;
use crate::data::decode::PipelineError;
use crate::data::labels::LabelError;
use crate::eval::thresholds::ThresholdError;
use crate::model::weights::WeightsError;
use crate::run::dir::RunError;

/// Training failures. [`Classify`] says which are the user's input (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Labels(#[from] LabelError),
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error("the split left {train} training and {val} validation images; both need at least one (more images, or another --val-split)")]
    EmptySplit { train: usize, val: usize },
    #[error("{what}")]
    NoConcepts { what: String },
    #[error("threshold tuning: {0}")]
    Thresholds(#[from] ThresholdError),
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("loss became {value} at stage '{stage}', epoch {epoch}, step {step}; the last good checkpoint is kept in {}", run.display())]
    NonFinite { value: f64, stage: String, epoch: usize, step: usize, run: PathBuf },
}

impl Classify for TrainError {
    fn is_bad_input(&self) -> bool {
        match self {
            TrainError::Config(e) => e.is_bad_input(),
            TrainError::Run(e) => e.is_bad_input(),
            TrainError::Labels(e) => e.is_bad_input(),
            TrainError::Dataset(e) => e.is_bad_input(),
            TrainError::Pipeline(e) => e.is_bad_input(),
            TrainError::Cache(e) => e.is_bad_input(),
            TrainError::Weights(e) => e.is_bad_input(),
            TrainError::EmptySplit { .. } | TrainError::NoConcepts { .. } => true,
            TrainError::Io { source, .. } => crate::classify::io_is_bad_input(true, source),
            TrainError::Thresholds(_) | TrainError::Torch(_) | TrainError::NonFinite { .. } => false,
        }
    }
}
