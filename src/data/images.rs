//! Finding the image of an id: the one lookup used by train, predict, cache, analyse and the
//! folder tools.
//!
//! An image folder is listed once into an [`ImageDir`] (its image file names, sorted, about 50
//! bytes an image): every regular file named
//! `<id>.<ext>` with `ext` one of [`IMAGE_EXTENSIONS`] in any case (`X.jpg`, `X.JPG`, `X.Png`).
//! Ids are matched exactly (case-sensitive, as image ids are); an id with two image files
//! (`X.jpg` and `X.png`, or `X.jpg` and `X.JPG`) is ambiguous and an error naming both. Hidden
//! files (names starting with `.`, such as macOS `._X.jpg` resource forks) and directories named
//! like images are not images, nor are symbolic links that cannot be followed (a loop, a missing
//! target) or names that are not UTF-8 (no label file can name them): they are left out and
//! counted in [`ImageDir::ignored`], so a caller can say so.
use std::path::{Path, PathBuf};

use itertools::Itertools;

/// Errors finding images and joining labels with them (here, below `dataset`, which re-exports it,
/// so the image lookup needs nothing from the dataset).
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("images directory {0} does not exist or is not a directory")]
    NoImageDir(PathBuf),
    #[error("{labels}:{line}: no image for id '{id}' in {dir} (looked for {id}.jpg, .jpeg, .png in any case)")]
    MissingImage { labels: String, line: usize, id: String, dir: PathBuf },
    #[error("image id '{id}' has {} image files ({}); keep one", paths.len(), paths.iter().map(|p| p.display()).join(", "))]
    AmbiguousImage { id: String, paths: Vec<PathBuf> },
    #[error("{labels}:{line}: image {path} (id '{id}') cannot be read: {reason}")]
    BadImage { labels: String, line: usize, id: String, path: PathBuf, reason: String },
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}:{line}: {message}")]
    Malformed { path: PathBuf, line: usize, message: String },
    #[error("no usable images in {dir} for the labels in {labels}")]
    NoUsableImages { dir: PathBuf, labels: String },
    #[error(transparent)]
    Labels(#[from] super::labels::LabelError),
}

/// Image extensions recognised (compared case-insensitively), in the order they are documented.
pub(crate) const IMAGE_EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// Whether `path` has one of the [`IMAGE_EXTENSIONS`] (any case).
pub(crate) fn has_image_extension(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// Entries of an image folder that were not taken as images.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ignored {
    /// Hidden files with an image extension (`.X.jpg`, `._X.jpg`).
    pub hidden: Vec<PathBuf>,
    /// Directories (or other non-files) named like an image.
    pub not_files: Vec<PathBuf>,
    /// Symbolic links that lead back to themselves (a loop).
    pub link_loops: Vec<PathBuf>,
    /// Symbolic links that cannot be followed otherwise (a missing target, no permission).
    pub broken_links: Vec<PathBuf>,
    /// Names that are not UTF-8 text.
    pub not_utf8: Vec<PathBuf>,
}

impl Ignored {
    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }

    /// How many entries were left out.
    pub fn count(&self) -> usize {
        self.hidden.len() + self.not_files.len() + self.link_loops.len() + self.broken_links.len() + self.not_utf8.len()
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
        if !self.link_loops.is_empty() {
            parts.push(format!("{} symbolic link loop(s) such as {}", self.link_loops.len(), self.link_loops[0].display()));
        }
        if !self.broken_links.is_empty() {
            parts.push(format!("{} symbolic link(s) that cannot be followed (missing target) such as {}", self.broken_links.len(), self.broken_links[0].display()));
        }
        if !self.not_utf8.is_empty() {
            parts.push(format!("{} file name(s) that are not UTF-8 (no label file can name them) such as {}", self.not_utf8.len(), self.not_utf8[0].display()));
        }
        write!(f, "{}", parts.join(" and "))
    }
}

/// The images of one folder, by id.
///
/// Held compactly, since a folder may hold a million images: the image file names, sorted by id
/// (the name without its extension) and then by name, and looked up by binary search.
#[derive(Debug, Clone)]
pub struct ImageDir {
    pub dir: PathBuf,
    /// Image file names, sorted by (id, name); more than one name of an id = ambiguous.
    names: Vec<Box<str>>,
    n_ids: usize,
    pub ignored: Ignored,
}

/// The id of an image file name: the name up to its last `.`.
fn id_of(name: &str) -> &str {
    name.rsplit_once('.').map_or(name, |(stem, _)| stem)
}

impl ImageDir {
    /// List `dir` (one `read_dir`, no file is opened).
    pub fn open(dir: &Path) -> Result<ImageDir, DatasetError> {
        if !dir.is_dir() {
            return Err(DatasetError::NoImageDir(dir.to_path_buf()));
        }
        let io = |source| DatasetError::Io { path: dir.to_path_buf(), source };
        let mut names: Vec<Box<str>> = Vec::new();
        let mut ignored = Ignored::default();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            let path = entry.path();
            if !has_image_extension(&path) {
                continue;
            }
            let Some(name) = entry.file_name().to_str().map(Box::<str>::from) else {
                ignored.not_utf8.push(path); // cannot be any label file's id
                continue;
            };
            if id_of(&name).starts_with('.') {
                ignored.hidden.push(path);
                continue;
            }
            // follow symbolic links: a link to an image is an image
            match std::fs::metadata(&path) {
                Ok(m) if m.is_file() => {}
                Ok(_) => {
                    ignored.not_files.push(path);
                    continue;
                }
                Err(e) if crate::text::is_link_loop(&e) => {
                    ignored.link_loops.push(path);
                    continue;
                }
                Err(_) => {
                    ignored.broken_links.push(path);
                    continue;
                }
            }
            names.push(name);
        }
        names.sort_unstable_by(|a, b| id_of(a).cmp(id_of(b)).then_with(|| a.cmp(b)));
        names.shrink_to_fit();
        for v in [&mut ignored.hidden, &mut ignored.not_files, &mut ignored.link_loops, &mut ignored.broken_links, &mut ignored.not_utf8] {
            v.sort();
        }
        let n_ids = names.chunk_by(|a, b| id_of(a) == id_of(b)).count();
        Ok(ImageDir { dir: dir.to_path_buf(), names, n_ids, ignored })
    }

    /// The image file names of `id` (sorted).
    fn names_of(&self, id: &str) -> &[Box<str>] {
        let start = self.names.partition_point(|n| id_of(n) < id);
        let len = self.names[start..].partition_point(|n| id_of(n) == id);
        &self.names[start..start + len]
    }

    /// The one image of a group of names of one id, or the ambiguity.
    fn one(&self, names: &[Box<str>]) -> Result<Option<PathBuf>, DatasetError> {
        match names {
            [] => Ok(None),
            [one] => Ok(Some(self.dir.join(&**one))),
            many => Err(DatasetError::AmbiguousImage { id: id_of(&many[0]).to_string(), paths: many.iter().map(|n| self.dir.join(&**n)).collect() }),
        }
    }

    /// The image of `id`: `Ok(None)` when there is none, an error when there are two.
    pub fn find(&self, id: &str) -> Result<Option<PathBuf>, DatasetError> {
        self.one(self.names_of(id))
    }

    /// Every image, sorted by id; an ambiguous id is an error.
    pub fn all(&self) -> Result<Vec<(String, PathBuf)>, DatasetError> {
        self.names.chunk_by(|a, b| id_of(a) == id_of(b)).map(|g| Ok((id_of(&g[0]).to_string(), self.one(g)?.expect("a group has a name")))).collect()
    }

    /// Every id with at least one image file, sorted.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.names.chunk_by(|a, b| id_of(a) == id_of(b)).map(|g| id_of(&g[0]))
    }

    /// Number of ids with an image.
    pub fn len(&self) -> usize {
        self.n_ids
    }

    pub fn is_empty(&self) -> bool {
        self.n_ids == 0
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
        assert_eq!(dir.find("a").unwrap(), Some(d.join("a.jpg")));
        assert_eq!(dir.find("b").unwrap(), Some(d.join("b.JPG")));
        assert_eq!(dir.find("c").unwrap(), Some(d.join("c.Png")));
        assert_eq!(dir.find("d").unwrap(), Some(d.join("d.jpeg")));
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
    fn links_that_cannot_be_followed_and_names_not_utf8_are_counted_as_such() {
        use std::os::unix::ffi::OsStrExt;
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::write(d.join("a.jpg"), b"x").unwrap();
        std::os::unix::fs::symlink("a.jpg", d.join("link.jpg")).unwrap();
        std::os::unix::fs::symlink("loop.jpg", d.join("loop.jpg")).unwrap();
        std::os::unix::fs::symlink("gone.jpg", d.join("dangling.jpg")).unwrap();
        std::fs::write(d.join(std::ffi::OsStr::from_bytes(b"caf\xe9.jpg")), b"x").unwrap();
        let dir = ImageDir::open(d).unwrap();
        assert_eq!(dir.ids().collect::<Vec<_>>(), ["a", "link"], "a link to an image is an image");
        assert_eq!(dir.ignored.link_loops, vec![d.join("loop.jpg")]);
        assert_eq!(dir.ignored.broken_links, vec![d.join("dangling.jpg")]);
        assert_eq!(dir.ignored.not_utf8.len(), 1);
        assert!(dir.ignored.not_files.is_empty(), "a link loop is not a directory: {}", dir.ignored);
        assert_eq!(dir.ignored.count(), 3);
        let said = dir.ignored.to_string();
        assert!(said.contains("1 symbolic link loop(s) such as") && said.contains("dangling.jpg") && said.contains("not UTF-8"), "{said}");
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
