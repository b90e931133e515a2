//! Output folders that a command fills with many files (phantom sets, reports): they must be new
//! or empty, so nothing of the user's is overwritten and no stale file of an earlier set is left
//! beside the new ones, unless the user says `--force`.
use std::path::{Path, PathBuf};

/// Why an output folder cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OutputDirError {
    #[error("{dir} exists and is not a directory")]
    NotADirectory { dir: PathBuf },
    #[error("{dir} is not empty (it holds {example}); choose a new or empty folder, or pass --force to write into it anyway")]
    NotEmpty { dir: PathBuf, example: String },
    #[error("cannot create {dir}: {source}")]
    Create { dir: PathBuf, source: std::io::Error },
}

/// Create `dir` when needed; refuse a non-empty one unless `force`.
pub fn prepare(dir: &Path, force: bool) -> Result<(), OutputDirError> {
    if dir.exists() && !dir.is_dir() {
        return Err(OutputDirError::NotADirectory { dir: dir.to_path_buf() });
    }
    if !force && dir.is_dir() {
        let first = std::fs::read_dir(dir).map_err(|source| OutputDirError::Create { dir: dir.to_path_buf(), source })?.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).min();
        if let Some(example) = first {
            return Err(OutputDirError::NotEmpty { dir: dir.to_path_buf(), example });
        }
    }
    std::fs::create_dir_all(dir).map_err(|source| OutputDirError::Create { dir: dir.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_and_empty_folders_pass_others_need_force() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("new/deeper");
        prepare(&d, false).unwrap();
        assert!(d.is_dir());
        prepare(&d, false).unwrap();
        std::fs::write(d.join("old.csv"), "x").unwrap();
        let e = prepare(&d, false).unwrap_err().to_string();
        assert!(e.contains("old.csv") && e.contains("--force"), "{e}");
        prepare(&d, true).unwrap();
        assert!(matches!(prepare(&d.join("old.csv"), true), Err(OutputDirError::NotADirectory { .. })));
    }
}
