//! Training: typed configuration ([`config`]), data preparation ([`data`]), losses ([`loss`]),
//! the stage schedule ([`schedule`]), the optimizer ([`optim`]), the run directory
//! ([`run_dir`]) and the [`Trainer`] that drives them ([`trainer`]).
//!
//! [`train`] and [`resume`] are the two entry points; a run directory's files are listed in
//! [`run_dir`].
pub mod config;
pub mod data;
pub mod loss;
pub mod optim;
pub mod run_dir;
pub mod schedule;
pub mod trainer;

use std::path::{Path, PathBuf};

use tch::Device;

pub use config::{Calibration, CheckedConfig, ClassWeights, ConfigError, DeviceChoice, HeadWeights, HierSchedule, Keep, Mode, Strategy, TrainConfig};
pub use run_dir::{RunDir, RunError, CHECKPOINT};
pub use schedule::{build_schedule, Schedule, Stage};
pub use trainer::{EpochMetrics, StepInfo, TrainSummary, Trainer};

use crate::data::cache::CacheError;
use crate::data::dataset::DatasetError;
use crate::data::decode::PipelineError;
use crate::data::labels::LabelError;
use crate::error::Classify;
use crate::eval::thresholds::ThresholdError;
use crate::model::weights::WeightsError;
use crate::ontology::Ontology;

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
            TrainError::Io { source, .. } => crate::error::io_is_bad_input(true, source),
            TrainError::Thresholds(_) | TrainError::Torch(_) | TrainError::NonFinite { .. } => false,
        }
    }
}

impl DeviceChoice {
    /// The device this choice means on this machine. Loads libtorch's CUDA library first
    /// ([`crate::cuda::load`]; a no-op once done, and too late if another libtorch call came first).
    pub fn resolve(self) -> Result<Device, ConfigError> {
        let lib = (self != DeviceChoice::Cpu).then(crate::cuda::load);
        match self {
            DeviceChoice::Cpu => Ok(Device::Cpu),
            DeviceChoice::Auto => Ok(Device::cuda_if_available()),
            DeviceChoice::Cuda if tch::Cuda::is_available() => Ok(Device::Cuda(0)),
            DeviceChoice::Cuda => Err(ConfigError::Value {
                option: "device",
                value: "cuda".into(),
                rule: if matches!(lib, Some(crate::cuda::CudaLib::Failed(_))) {
                    "libtorch's CUDA library could not be loaded (see `conceptree doctor`)".into()
                } else {
                    "libtorch sees no CUDA device on this machine (see `conceptree doctor`)".into()
                },
            }),
        }
    }
}

/// Train a new run as configured (into `cfg.out`, which must be new or empty unless `force`).
pub fn train(cfg: &TrainConfig, ontology: &Ontology, force: bool) -> Result<TrainSummary, TrainError> {
    Trainer::new(cfg.clone(), ontology, force)?.run()
}

/// Continue the unfinished run in `dir`.
pub fn resume(dir: &Path, ontology: &Ontology) -> Result<TrainSummary, TrainError> {
    Trainer::resume(dir, ontology)?.run()
}
