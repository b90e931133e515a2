//! The file names of a run directory, and how to tell a run directory from any other folder.
//!
//! | file | what |
//! | --- | --- |
//! | `config.json` | the resolved training configuration (input paths absolute, so a run resumes from anywhere) |
//! | `model.json` | the model configuration: trunk, heads and their concepts |
//! | `preprocessing.json` | how an image becomes the model's input: size, normalisation, layout, precision |
//! | `ontology.tsv` | the ontology the run was trained with (prediction uses it by default) |
//! | `schedule.json`, `split.json` | the stage schedule; the train/validation ids |
//! | `metrics.jsonl` | one line per finished epoch |
//! | `checkpoint.safetensors` | model, optimizer moments and progress after the last finished epoch |
//! | `model.safetensors` | the model weights (contiguous, torchvision names) |
//! | `thresholds.json`, `summary.json` | written when training finishes: a run without `summary.json` is unfinished |
//! | `provenance.json` | versions, device, precision, ontology hash |
//! | `skipped.json` | the images skipped with `--skip-bad` |
//! | `knn.safetensors` | a kNN run's index: the training images' embeddings and labels |
//! | `run.lock` | the lock: held exclusively by the process training the run, shared by readers |
use std::path::Path;

pub(crate) const CONFIG: &str = "config.json";
pub(crate) const MODEL_CONFIG: &str = "model.json";
pub(crate) const PREPROCESSING: &str = "preprocessing.json";
pub const ONTOLOGY: &str = "ontology.tsv";
pub(crate) const SCHEDULE: &str = "schedule.json";
pub(crate) const SPLIT: &str = "split.json";
pub(crate) const METRICS: &str = "metrics.jsonl";
pub const CHECKPOINT: &str = "checkpoint.safetensors";
pub(crate) const MODEL: &str = "model.safetensors";
pub(crate) const THRESHOLDS: &str = "thresholds.json";
pub(crate) const SUMMARY: &str = "summary.json";
pub(crate) const PROVENANCE: &str = "provenance.json";
pub const SKIPPED: &str = "skipped.json";
pub(crate) const LOCK: &str = "run.lock";
pub(crate) const KNN_INDEX: &str = "knn.safetensors";

/// Every file a run directory may hold: none of them is ever written by a command that did not
/// create the run.
pub(crate) const RUN_FILES: [&str; 15] = [CONFIG, MODEL_CONFIG, PREPROCESSING, ONTOLOGY, SCHEDULE, SPLIT, METRICS, CHECKPOINT, MODEL, THRESHOLDS, SUMMARY, PROVENANCE, SKIPPED, LOCK, KNN_INDEX];

/// Whether `dir` is a conceptree run directory: it holds the lock file (made before anything else
/// of a run), the weights, a checkpoint, or a configuration beside a model description. (An
/// export folder holds `model.json` without `config.json`: it is not a run.)
pub(crate) fn is_run_dir(dir: &Path) -> bool {
    [LOCK, MODEL, CHECKPOINT].iter().any(|f| dir.join(f).exists()) || (dir.join(CONFIG).is_file() && dir.join(MODEL_CONFIG).is_file())
}

/// Whether `name` is one of a run directory's own files, or a temporary file of one of them.
pub(crate) fn is_run_file(name: &str) -> bool {
    RUN_FILES.iter().any(|f| name == *f || (name.starts_with('.') && name[1..].starts_with(f)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_directories_are_told_from_other_folders() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        assert!(!is_run_dir(d));
        std::fs::write(d.join(MODEL_CONFIG), "{}").unwrap();
        assert!(!is_run_dir(d), "an export folder (model.json alone) is not a run");
        std::fs::write(d.join(CONFIG), "{}").unwrap();
        assert!(is_run_dir(d));
        let e = d.join("e");
        std::fs::create_dir(&e).unwrap();
        std::fs::write(e.join(LOCK), "").unwrap();
        assert!(is_run_dir(&e), "a run stopped before its config.json");
        assert!(is_run_file("model.safetensors") && is_run_file("knn.safetensors") && is_run_file(".thresholds.json.tmp") && !is_run_file("test.csv") && !is_run_file("model.pt"));
    }
}
