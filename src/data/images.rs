//! Finding the image of an id: the one lookup used by train, predict, cache, analyse and the
//! folder tools.
//!
//! An image folder is listed once into an [`ImageDir`]: every regular file named
//! `<id>.<ext>` with `ext` one of [`IMAGE_EXTENSIONS`] in any case (`X.jpg`, `X.JPG`, `X.Png`).
//! Ids are matched exactly (case-sensitive, as image ids are); an id with two image files
//! (`X.jpg` and `X.png`, or `X.jpg` and `X.JPG`) is ambiguous and an error naming both. Hidden
//! files (names starting with `.`, such as macOS `._X.jpg` resource forks) and directories named
//! like images are not images: they are left out and counted in [`ImageDir::ignored`], so a
//! caller can say so.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::dataset::DatasetError;

/// Image extensions recognised (compared case-insensitively), in the order they are documented.
pub const IMAGE_EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// Whether `path` has one of the [`IMAGE_EXTENSIONS`] (any case).
pub fn has_image_extension(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// Entries of an image folder that were not taken as images.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ignored {
    /// Hidden files with an image extension (`.X.jpg`, `._X.jpg`).
    pub hidden: Vec<PathBuf>,
    /// Directories (or other non-files) named like an image.
    pub not_files: Vec<PathBuf>,
}

impl Ignored {
    pub fn is_empty(&self) -> bool {
        self.hidden.is_empty() && self.not_files.is_empty()
    }
}

impl std::fmt::Display for Ignored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if !self.hidden.is_empty() {
            parts.push(format!("{} hidden file(s) such as {}", self.hidden.len(), self.hidden[0].display()));
        }
        if !self.not_files.is_empty() {
            parts.push(format!("{} director(ies) named like an image such as {}", self.not_files.len(), self.not_files[0].display()));
        }
        write!(f, "{}", parts.join(" and "))
    }
}

/// The images of one folder, by id.
#[derive(Debug, Clone)]
pub struct ImageDir {
    pub dir: PathBuf,
    /// id -> every image file of that id (more than one = ambiguous).
    by_id: HashMap<String, Vec<PathBuf>>,
    pub ignored: Ignored,
}

impl ImageDir {
    /// List `dir` (one `read_dir`, no file is opened).
    pub fn open(dir: &Path) -> Result<ImageDir, DatasetError> {
        if !dir.is_dir() {
            return Err(DatasetError::NoImageDir(dir.to_path_buf()));
        }
        let io = |source| DatasetError::Io { path: dir.to_path_buf(), source };
        let mut by_id: HashMap<String, Vec<PathBuf>> = HashMap::new();
        let mut ignored = Ignored::default();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            let path = entry.path();
            if !has_image_extension(&path) {
                continue;
            }
            let Some(id) = path.file_stem().and_then(|s| s.to_str()).map(str::to_string) else {
                continue; // not UTF-8: cannot be any label file's id
            };
            if id.starts_with('.') {
                ignored.hidden.push(path);
                continue;
            }
            // follow symbolic links: a link to an image is an image
            if !path.is_file() {
                ignored.not_files.push(path);
                continue;
            }
            by_id.entry(id).or_default().push(path);
        }
        for v in by_id.values_mut() {
            v.sort();
        }
        ignored.hidden.sort();
        ignored.not_files.sort();
        Ok(ImageDir { dir: dir.to_path_buf(), by_id, ignored })
    }

    /// The image of `id`: `Ok(None)` when there is none, an error when there are two.
    pub fn find(&self, id: &str) -> Result<Option<&Path>, DatasetError> {
        match self.by_id.get(id).map(Vec::as_slice) {
            None | Some([]) => Ok(None),
            Some([one]) => Ok(Some(one)),
            Some(many) => Err(DatasetError::AmbiguousImage { id: id.to_string(), paths: many.to_vec() }),
        }
    }

    /// Every image, sorted by id; an ambiguous id is an error.
    pub fn all(&self) -> Result<Vec<(String, PathBuf)>, DatasetError> {
        let mut ids: Vec<&String> = self.by_id.keys().collect();
        ids.sort();
        ids.into_iter().map(|id| Ok((id.clone(), self.find(id)?.expect("listed").to_path_buf()))).collect()
    }

    /// Every id with at least one image file (unsorted).
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.by_id.keys().map(String::as_str)
    }

    /// Number of ids with an image.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_is_case_insensitive_on_extensions_and_refuses_ambiguity() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        for f in ["a.jpg", "b.JPG", "c.Png", "d.jpeg", "e.jpg", "e.png", "f.JPG", "f.jpg", "notes.txt", "._a.jpg"] {
            std::fs::write(d.join(f), b"x").unwrap();
        }
        std::fs::create_dir(d.join("g.jpg")).unwrap();
        let dir = ImageDir::open(d).unwrap();
        assert_eq!(dir.find("a").unwrap(), Some(d.join("a.jpg").as_path()));
        assert_eq!(dir.find("b").unwrap(), Some(d.join("b.JPG").as_path()));
        assert_eq!(dir.find("c").unwrap(), Some(d.join("c.Png").as_path()));
        assert_eq!(dir.find("d").unwrap(), Some(d.join("d.jpeg").as_path()));
        assert_eq!(dir.find("A").unwrap(), None, "ids are case-sensitive");
        assert_eq!(dir.find("notes").unwrap(), None);
        for id in ["e", "f"] {
            let msg = dir.find(id).unwrap_err().to_string();
            assert!(msg.contains(&format!("{id}.jpg")) && msg.contains(id), "{msg}");
        }
        assert!(dir.all().is_err(), "listing everything refuses the ambiguous ids");
        assert_eq!(dir.ignored.hidden, vec![d.join("._a.jpg")]);
        assert_eq!(dir.ignored.not_files, vec![d.join("g.jpg")]);
        assert_eq!(dir.find("g").unwrap(), None);
        assert!(matches!(ImageDir::open(&d.join("nope")), Err(DatasetError::NoImageDir(_))));
    }

    #[test]
    fn all_lists_sorted_ids() {
        let tmp = tempfile::tempdir().unwrap();
        for f in ["b.png", "a.jpg", "c.JPEG"] {
            std::fs::write(tmp.path().join(f), b"x").unwrap();
        }
        let ids: Vec<String> = ImageDir::open(tmp.path()).unwrap().all().unwrap().into_iter().map(|(i, _)| i).collect();
        assert_eq!(ids, vec!["a", "b", "c"]);
    }
}
