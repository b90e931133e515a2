//! What training adds to a run directory ([`crate::run::dir`]): checkpoints (model, optimizer
//! moments, loss-scaler state and progress in one file) and the stored training configuration,
//! with the differences between a stored and a wanted one.
use std::collections::HashMap;

use tch::{nn, Tensor};

use super::config::TrainConfig;
use super::optim::{Adam, GradScaler};

pub use crate::run::dir::*;
pub use crate::run::names::*;

impl RunDir {
    /// Model variables, optimizer moments, loss-scaler state and progress in one safetensors file.
    pub(crate) fn save_checkpoint(&self, vs: &nn::VarStore, opt: &Adam, scaler: &GradScaler, progress: &Progress) -> Result<(), RunError> {
        // safetensors holds dense row-major data: channels-last weights (and their moments) are written contiguous.
        let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().map(|(n, t)| (format!("model.{n}"), t.contiguous())).collect();
        named.extend(opt.state().into_iter().map(|(n, t)| (n, t.contiguous())));
        named.extend(scaler.state());
        named.push(("progress.completed_epochs".into(), Tensor::from(progress.completed_epochs as i64)));
        named.push(("progress.stage".into(), Tensor::from(progress.stage as i64)));
        named.push(("progress.best_epoch".into(), Tensor::from(progress.best_epoch as i64)));
        named.push(("progress.best_f1".into(), Tensor::from(progress.best_f1)));
        self.write_tensors(CHECKPOINT, named)
    }

    /// Load the checkpoint into `vs`; returns what else it holds. No checkpoint: `Ok(None)` (the
    /// run was stopped before its first epoch ended and starts from the beginning).
    pub(crate) fn load_checkpoint(&self, vs: &nn::VarStore) -> Result<Option<Checkpoint>, RunError> {
        let path = self.file(CHECKPOINT);
        if !path.exists() {
            return Ok(None);
        }
        let hint = "remove it to start the run again from the beginning";
        let corrupt = |reason: String| RunError::Corrupt { dir: self.path.clone(), file: CHECKPOINT, reason, hint };
        let tensors = Tensor::read_safetensors(&path).map_err(|e| corrupt(short_tch_error(&e)))?;
        let mut map: HashMap<String, Tensor> = tensors.into_iter().collect();
        tch::no_grad(|| -> Result<(), RunError> {
            for (name, var) in vs.variables() {
                let t = map.remove(&format!("model.{name}")).ok_or_else(|| corrupt(format!("it lacks the model variable '{name}'")))?;
                if t.size() != var.size() {
                    return Err(corrupt(format!("'{name}' has shape {:?}, the model {:?}", t.size(), var.size())));
                }
                var.shallow_clone().copy_(&t.to_device(var.device()));
            }
            Ok(())
        })?;
        let int = |k: &str| map.get(k).map(|t| t.int64_value(&[]) as usize);
        let completed_epochs = int("progress.completed_epochs").ok_or_else(|| corrupt("it has no progress record".into()))?;
        let progress = Progress {
            stage: int("progress.stage").unwrap_or(0),
            completed_epochs,
            // checkpoints from before best-epoch keeping: the last epoch is the best one known
            best_epoch: int("progress.best_epoch").unwrap_or(completed_epochs),
            best_f1: map.get("progress.best_f1").map(|t| t.double_value(&[])).unwrap_or(f64::NEG_INFINITY),
        };
        Ok(Some(Checkpoint { progress, state: map }))
    }
}

/// How far a run has come.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// The stage of the last finished epoch.
    pub stage: usize,
    pub completed_epochs: usize,
    /// The epoch whose weights `model.safetensors` holds under `--keep best`, and its validation
    /// ImageCLEF F1 (tuned thresholds); 0 and -inf before the first epoch.
    pub best_epoch: usize,
    pub best_f1: f64,
}

impl Default for Progress {
    fn default() -> Self {
        Progress { stage: 0, completed_epochs: 0, best_epoch: 0, best_f1: f64::NEG_INFINITY }
    }
}

/// What a checkpoint holds besides the model: progress and optimizer/scaler state.
pub(crate) struct Checkpoint {
    pub progress: Progress,
    /// `adam.*` and `scaler.*` tensors by name.
    pub state: HashMap<String, Tensor>,
}

/// Read a run's configuration (for `--resume` and prediction).
pub fn read_config(run: &RunDir) -> Result<TrainConfig, RunError> {
    run.read_json(CONFIG, "the run cannot be used without it")
}

/// `cfg` as a run stores it (input paths absolute), with the settings that do not apply to it at
/// their defaults ([`TrainConfig::used_settings`]).
fn used_settings(cfg: &TrainConfig) -> TrainConfig {
    cfg.clone().with_absolute_paths().used_settings()
}

/// The settings in which two configurations differ, as `name: stored -> wanted`, in field order.
/// Where the run and its split files live (`out`, `train_labels`, `val_labels`, `weights`) is left
/// out: an experiment folder may be moved; what is in those files is checked where they are read.
pub(crate) fn config_differences(stored: &TrainConfig, wanted: &TrainConfig) -> Vec<String> {
    const LOCATIONS: [&str; 4] = ["out", "train_labels", "val_labels", "weights"];
    let value = |c: &TrainConfig| serde_json::to_value(used_settings(c)).expect("configs serialise");
    let (a, b) = (value(stored), value(wanted));
    let (serde_json::Value::Object(a), serde_json::Value::Object(b)) = (a, b) else { unreachable!("a config is an object") };
    b.iter().filter(|(k, v)| !LOCATIONS.contains(&k.as_str()) && a.get(*k) != Some(v)).map(|(k, v)| format!("{k}: {} -> {v}", a.get(k).map_or("-".to_string(), |x| x.to_string()))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_differences_name_each_changed_setting_with_both_values() {
        let a = TrainConfig::default();
        assert!(config_differences(&a, &a.clone()).is_empty());
        // the trainer stores input paths absolute; the same relative path given again is no difference
        let rel = TrainConfig { images: "imgs".into(), ..a.clone() };
        assert!(config_differences(&rel.clone().with_absolute_paths(), &rel).is_empty());
        // a flat run has no residual head: its options there are not a difference
        assert!(config_differences(&a, &TrainConfig { rest_pooling: crate::model::Pooling::AvgMax, knn_k: 3, ..a.clone() }).is_empty());
        let a = TrainConfig { mode: super::super::config::Mode::Hybrid, ..a };
        let b = TrainConfig { epochs: 3, rest_pooling: crate::model::Pooling::AvgMax, out: "elsewhere".into(), ..a.clone() };
        assert_eq!(config_differences(&a, &b), vec!["epochs: 10 -> 3".to_string(), "rest_pooling: \"avg\" -> \"avg-max\"".to_string()]);
    }

    #[test]
    fn a_damaged_checkpoint_says_what_to_do() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::create(tmp.path(), false).unwrap();
        std::fs::write(run.file(CHECKPOINT), b"\x10\0\0\0\0\0\0\0{\"a\":").unwrap();
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let e = run.load_checkpoint(&vs).err().unwrap().to_string();
        assert!(e.contains("checkpoint.safetensors cannot be used") && e.contains("start the run again"), "{e}");
        assert!(!e.contains('\n'), "one line: {e}");
    }
}
