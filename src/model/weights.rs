//! Pretrained trunk weights from torchvision-format safetensors state dicts.
//!
//! Every trunk variable must be present with the right shape; a missing, renamed or mis-shaped
//! tensor fails with its name. The classifier (`fc.*`, `classifier.*`) and BatchNorm's `num_batches_tracked`
//! counters are ignored, as is nothing else: any other unexpected tensor is an error too, since it
//! usually means the file belongs to a different architecture.
use std::path::{Path, PathBuf};

use tch::{nn, Tensor};

#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("cannot read weights {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("{path}: tensor '{name}' is missing (the trunk needs it)")]
    Missing { path: PathBuf, name: String },
    #[error("{path}: tensor '{name}' has shape {found:?}, the trunk expects {expected:?}")]
    Shape { path: PathBuf, name: String, expected: Vec<i64>, found: Vec<i64> },
    #[error("{path}: unexpected tensor(s) {names:?} (is this a different architecture?)")]
    Unexpected { path: PathBuf, names: Vec<String> },
    #[error("cannot write weights {path}: {message}")]
    Write { path: PathBuf, message: String },
}

/// What a load copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadReport {
    pub loaded: usize,
    pub ignored: usize,
}

/// Not trunk tensors: torchvision's classifier and counters, and a conceptree run's heads and neck
/// (so a run's `model.safetensors` is a trunk source too).
fn ignorable(name: &str) -> bool {
    name.starts_with("fc.") || name.starts_with("classifier.") || name.ends_with("num_batches_tracked") || is_head(name)
}

fn is_head(name: &str) -> bool {
    name.starts_with("heads.") || name.starts_with("neck.")
}

/// Copy the trunk variables of `vs` (all except `heads.*` and `neck.*`) from the safetensors file
/// at `path`: a torchvision state dict, or a conceptree run's `model.safetensors`.
pub fn load_trunk_weights(vs: &nn::VarStore, path: &Path) -> Result<LoadReport, WeightsError> {
    let tensors = Tensor::read_safetensors(path).map_err(|e| WeightsError::Read { path: path.to_path_buf(), message: e.to_string() })?;
    let mut file: std::collections::HashMap<String, Tensor> = tensors.into_iter().collect();
    let vars = vs.variables();
    let mut names: Vec<&String> = vars.keys().filter(|n| !is_head(n)).collect();
    names.sort();
    for name in &names {
        let var = &vars[*name];
        let Some(t) = file.get(*name) else {
            return Err(WeightsError::Missing { path: path.to_path_buf(), name: (*name).clone() });
        };
        if t.size() != var.size() {
            return Err(WeightsError::Shape { path: path.to_path_buf(), name: (*name).clone(), expected: var.size(), found: t.size() });
        }
    }
    let mut loaded = 0;
    tch::no_grad(|| {
        for name in &names {
            let t = file.remove(*name).expect("checked above");
            let mut var = vars[*name].shallow_clone();
            var.copy_(&t.to_kind(var.kind()).to_device(var.device()));
            loaded += 1;
        }
    });
    let (ignored, unexpected): (Vec<String>, Vec<String>) = file.into_keys().partition(|n| ignorable(n));
    if !unexpected.is_empty() {
        let mut names = unexpected;
        names.sort();
        return Err(WeightsError::Unexpected { path: path.to_path_buf(), names });
    }
    Ok(LoadReport { loaded, ignored: ignored.len() })
}

/// Write the trunk variables of `vs` (torchvision names) as a safetensors state dict.
pub fn save_trunk_weights(vs: &nn::VarStore, path: &Path) -> Result<(), WeightsError> {
    let vars = vs.variables();
    let mut named: Vec<(String, Tensor)> = vars.into_iter().filter(|(n, _)| !is_head(n)).map(|(n, t)| (n, t.contiguous())).collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    Tensor::write_safetensors(&named, path).map_err(|e| WeightsError::Write { path: path.to_path_buf(), message: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Trunk, TrunkKind};
    use tch::Device;

    fn trunk_vs() -> nn::VarStore {
        let vs = nn::VarStore::new(Device::Cpu);
        let _ = Trunk::new(&vs.root(), TrunkKind::Resnet18);
        vs
    }

    #[test]
    fn round_trip_copies_every_tensor() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r18.safetensors");
        let a = trunk_vs();
        save_trunk_weights(&a, &p).unwrap();
        let b = trunk_vs();
        let rep = load_trunk_weights(&b, &p).unwrap();
        assert_eq!(rep.loaded, a.variables().len());
        let (va, vb) = (a.variables(), b.variables());
        assert!(va.iter().all(|(n, t)| t.equal(&vb[n])));
    }

    #[test]
    fn torchvision_extras_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tv.safetensors");
        let a = trunk_vs();
        let mut named: Vec<(String, Tensor)> = a.variables().into_iter().collect();
        named.push(("fc.weight".into(), Tensor::zeros([1000, 512], (tch::Kind::Float, Device::Cpu))));
        named.push(("bn1.num_batches_tracked".into(), Tensor::from(0i64)));
        Tensor::write_safetensors(&named, &p).unwrap();
        assert_eq!(load_trunk_weights(&trunk_vs(), &p).unwrap().ignored, 2);
    }

    #[test]
    fn renamed_or_misshaped_tensor_fails_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let a = trunk_vs();
        let mut named: Vec<(String, Tensor)> = a.variables().into_iter().collect();
        named.sort_by(|x, y| x.0.cmp(&y.0));
        // renamed
        let p = dir.path().join("renamed.safetensors");
        let mut r = named.iter().map(|(n, t)| (n.clone(), t.shallow_clone())).collect::<Vec<_>>();
        let i = r.iter().position(|(n, _)| n == "layer2.0.conv1.weight").unwrap();
        r[i].0 = "layer2.0.conv_1.weight".into();
        Tensor::write_safetensors(&r, &p).unwrap();
        let e = load_trunk_weights(&trunk_vs(), &p).unwrap_err().to_string();
        assert!(e.contains("layer2.0.conv1.weight") && e.contains("missing"), "{e}");
        // mis-shaped
        let p = dir.path().join("shape.safetensors");
        let mut s = named.iter().map(|(n, t)| (n.clone(), t.shallow_clone())).collect::<Vec<_>>();
        let i = s.iter().position(|(n, _)| n == "layer3.1.bn2.weight").unwrap();
        s[i].1 = Tensor::zeros([7], (tch::Kind::Float, Device::Cpu));
        Tensor::write_safetensors(&s, &p).unwrap();
        let e = load_trunk_weights(&trunk_vs(), &p).unwrap_err().to_string();
        assert!(e.contains("layer3.1.bn2.weight") && e.contains("[7]"), "{e}");
    }
}
