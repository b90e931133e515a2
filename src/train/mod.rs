//! Training: typed configuration ([`config`]), data preparation ([`data`]), losses ([`loss`]),
//! the stage schedule ([`schedule`]), the optimizer ([`optim`]), the run directory
//! ([`run_dir`]) and the [`Trainer`] that drives them ([`trainer`]).
//!
//! [`train`] and [`resume`] are the two entry points; a run directory's files are listed in
//! [`run_dir`]. Training reports through the [`Events`] sink it is given, and prints nothing.
pub mod checked;
pub mod config;
pub mod data;
pub mod error;
pub mod loss;
pub mod optim;
pub mod run_dir;
pub mod schedule;
pub mod trainer;

use std::path::Path;

use tch::Device;

pub use checked::{CheckedConfig, Common, Fit, LevelOptions, ModeOptions, RestOptions, TopK};
pub use config::{Calibration, ClassWeights, ConfigError, DeviceChoice, HeadWeights, HierSchedule, Keep, Mode, Strategy, TrainConfig};
pub use error::TrainError;
pub use run_dir::{RunDir, RunError, CHECKPOINT};
pub use schedule::{build_schedule, Schedule, Stage};
pub use trainer::{EpochMetrics, StepInfo, TrainSummary, Trainer};

use crate::events::Events;
use crate::ontology::Ontology;

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
pub fn train(cfg: &TrainConfig, ontology: &Ontology, force: bool, events: &dyn Events) -> Result<TrainSummary, TrainError> {
    Trainer::new(cfg.clone(), ontology, force, events)?.run()
}

/// Continue the unfinished run in `dir`.
pub fn resume(dir: &Path, ontology: &Ontology, events: &dyn Events) -> Result<TrainSummary, TrainError> {
    Trainer::resume(dir, ontology, events)?.run()
}
