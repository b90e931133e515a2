//! On-disk cache of decoded, resized images (`conceptree data cache`).
//!
//! Decoding and resizing are two thirds of the pipeline's time on large figures (BENCHMARKS.md),
//! and they give the same result every epoch: only the augmentation is random. A cache holds each
//! image already decoded and resized to `size x size`, as 8-bit planes (one for grey images,
//! three for colour), so later epochs and runs only augment and normalise. The result is
//! bit-identical to decoding the file (tested).
//!
//! Layout of a cache directory: `images.bin` (the planes of all images, back to back) and
//! `index.json` (format, version, size, and per image its source path, byte length and
//! modification time, plane count and offset). The index is written last, so a directory
//! without one is an unfinished build. Opening a cache for a set of images checks that each is
//! in it and unchanged (same length and modification time) and names the first that is not.
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Instant, UNIX_EPOCH};

use itertools::Itertools;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::dataset::{Dataset, DatasetError};
use super::decode::{decode_raw, resized_planes, PipelineError};
use super::images::ImageDir;
use super::labels::{read_labels, ParseOptions, SkipReport};
use crate::events::{Event, Events, Task, Tick};

const FORMAT: &str = "conceptree-image-cache";
const VERSION: u32 = 1;
const INDEX: &str = "index.json";
const DATA: &str = "images.bin";

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("image cache {dir}: {source}")]
    Io { dir: PathBuf, source: std::io::Error },
    #[error("image cache {dir}: {reason}")]
    Invalid { dir: PathBuf, reason: String },
    #[error("image cache {dir} does not hold {image} (built from other images? rebuild it with `conceptree data cache`)")]
    NotCovered { dir: PathBuf, image: PathBuf },
    #[error("image cache {dir}: {image} changed after the cache was built (rebuild it with `conceptree data cache`)")]
    Stale { dir: PathBuf, image: PathBuf },
    #[error("image cache {dir} holds {cached}x{cached} images, the run needs {wanted}x{wanted} (build one with --size {wanted})")]
    Size { dir: PathBuf, cached: u32, wanted: u32 },
    #[error(transparent)]
    Image(#[from] PipelineError),
}

/// One cached image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Source file, canonical path.
    pub path: PathBuf,
    /// Source file length and modification time when it was cached (staleness check).
    pub bytes: u64,
    pub mtime_ns: u64,
    /// 1 (grey, also for RGB files with R = G = B) or 3.
    pub planes: u8,
    /// Byte offset of the first plane in `images.bin`.
    pub offset: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Index {
    format: String,
    version: u32,
    size: u32,
    entries: Vec<Entry>,
}

/// An opened cache: its index, and `images.bin` for positioned reads from any thread.
#[derive(Debug)]
pub struct ImageCache {
    pub dir: PathBuf,
    pub size: u32,
    pub entries: Vec<Entry>,
    by_path: HashMap<PathBuf, usize>,
    data: File,
}

/// What a build did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildReport {
    pub images: usize,
    pub grey: usize,
    pub bytes: u64,
}

/// An entry (offset not yet set) and its planes.
type Cached = (Entry, Vec<Vec<u8>>);

fn stamp(path: &Path) -> std::io::Result<(u64, u64)> {
    let m = std::fs::metadata(path)?;
    let mtime = m.modified()?.duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    Ok((m.len(), mtime))
}

impl ImageCache {
    /// Decode and resize `paths` to `size x size` into a new cache at `dir` (created; an existing
    /// cache there is replaced). Images are processed in parallel, written in order; `events` sees
    /// the progress. A file that cannot be decoded fails the build, naming it.
    pub fn build(paths: &[PathBuf], size: u32, dir: &Path, events: &dyn Events) -> Result<BuildReport, CacheError> {
        let io = |source| CacheError::Io { dir: dir.to_path_buf(), source };
        std::fs::create_dir_all(dir).map_err(io)?;
        let _ = std::fs::remove_file(dir.join(INDEX)); // an index only ever describes a finished build
        let tmp = dir.join("images.bin.tmp");
        let mut out = BufWriter::new(File::create(&tmp).map_err(io)?);
        let started = Instant::now();
        let mut entries = Vec::with_capacity(paths.len());
        let mut offset = 0u64;
        for chunk in paths.chunks(256) {
            let done: Vec<Result<Cached, CacheError>> = chunk
                .par_iter()
                .map(|p| {
                    let canonical = p.canonicalize().map_err(|e| PipelineError::Decode { path: p.clone(), reason: e.to_string() })?;
                    let (bytes, mtime_ns) = stamp(&canonical).map_err(|e| PipelineError::Decode { path: p.clone(), reason: e.to_string() })?;
                    let planes = resized_planes(&decode_raw(p, None)?, size);
                    Ok((Entry { path: canonical, bytes, mtime_ns, planes: planes.len() as u8, offset: 0 }, planes))
                })
                .collect();
            for r in done {
                let (mut e, planes) = r?;
                e.offset = offset;
                for p in &planes {
                    out.write_all(p).map_err(io)?;
                    offset += p.len() as u64;
                }
                entries.push(e);
            }
            let done = entries.len();
            events.emit(Event::Tick(Tick { task: Task::ImageCache, done, total: paths.len(), this_run: done, elapsed: started.elapsed(), loss: None }));
        }
        let file = out.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, dir.join(DATA)).map_err(io)?;
        let grey = entries.iter().filter(|e| e.planes == 1).count();
        let index = Index { format: FORMAT.into(), version: VERSION, size, entries };
        let text = serde_json::to_string(&index).expect("serialisable");
        std::fs::write(dir.join(INDEX), text).map_err(io)?;
        Ok(BuildReport { images: index.entries.len(), grey, bytes: offset })
    }

    /// Open the cache at `dir`.
    pub fn open(dir: &Path) -> Result<ImageCache, CacheError> {
        let invalid = |reason: String| CacheError::Invalid { dir: dir.to_path_buf(), reason };
        let text = std::fs::read_to_string(dir.join(INDEX))
            .map_err(|e| invalid(format!("cannot read {INDEX}: {e} (not a cache, or its build did not finish)")))?;
        let index: Index = serde_json::from_str(&text).map_err(|e| invalid(format!("{INDEX}: {e}")))?;
        if index.format != FORMAT || index.version != VERSION {
            return Err(invalid(format!("{INDEX} is '{}' version {}, expected '{FORMAT}' version {VERSION}", index.format, index.version)));
        }
        let data = File::open(dir.join(DATA)).map_err(|e| invalid(format!("cannot open {DATA}: {e}")))?;
        let data_len = data.metadata().map_err(|e| invalid(format!("{DATA}: {e}")))?.len();
        let plane = (index.size as u64) * (index.size as u64);
        // every entry must lie inside the data file: a truncated images.bin is found here, not mid-epoch
        if let Some(e) = index.entries.iter().find(|e| !matches!(e.planes, 1 | 3) || e.offset + e.planes as u64 * plane > data_len) {
            return Err(invalid(format!("{DATA} is truncated or the index is corrupt (entry {} at offset {})", e.path.display(), e.offset)));
        }
        let by_path = index.entries.iter().enumerate().map(|(i, e)| (e.path.clone(), i)).collect();
        Ok(ImageCache { dir: dir.to_path_buf(), size: index.size, entries: index.entries, by_path, data })
    }

    /// Entry numbers of `paths` (same order), checking that each is cached, unchanged, and that
    /// the cache was built at `size`.
    pub fn resolve(&self, paths: &[PathBuf], size: u32) -> Result<Vec<usize>, CacheError> {
        if size != self.size {
            return Err(CacheError::Size { dir: self.dir.clone(), cached: self.size, wanted: size });
        }
        paths
            .iter()
            .map(|p| {
                let not_covered = || CacheError::NotCovered { dir: self.dir.clone(), image: p.clone() };
                let canonical = p.canonicalize().map_err(|_| not_covered())?;
                let &i = self.by_path.get(&canonical).ok_or_else(not_covered)?;
                let e = &self.entries[i];
                match stamp(&canonical) {
                    Ok((bytes, mtime)) if bytes == e.bytes && mtime == e.mtime_ns => Ok(i),
                    _ => Err(CacheError::Stale { dir: self.dir.clone(), image: p.clone() }),
                }
            })
            .collect()
    }

    /// The `size x size` planes of entry `i`.
    pub fn planes(&self, i: usize) -> Result<Vec<Vec<u8>>, CacheError> {
        let e = &self.entries[i];
        let n = (self.size as usize) * (self.size as usize);
        let mut buf = vec![0u8; n * e.planes as usize];
        self.data.read_exact_at(&mut buf, e.offset).map_err(|source| CacheError::Io { dir: self.dir.clone(), source })?;
        Ok(buf.chunks_exact(n).map(<[u8]>::to_vec).collect())
    }
}

/// The images of one or more label files (e.g. training and validation labels), each once, sorted:
/// what a cache for runs on those files must hold. Bad rows and images are errors naming them, or
/// with `skip_bad` skipped and reported.
pub fn images_of_label_files(labels: &[PathBuf], images: &Path, skip_bad: bool) -> Result<(Vec<PathBuf>, SkipReport), DatasetError> {
    let dir = ImageDir::open(images)?;
    let opts = ParseOptions { skip_bad, ..Default::default() };
    let mut paths = Vec::new();
    let mut skipped = SkipReport { source: labels.iter().map(|l| l.display()).join(", "), skipped: vec![], detected: None };
    for l in labels {
        let (rows, skip) = read_labels(l, opts)?;
        let (ds, img_skip) = Dataset::open(&rows, &l.display().to_string(), &dir, skip_bad)?;
        skipped.merge(skip);
        skipped.merge(img_skip);
        paths.extend(ds.paths);
    }
    paths.sort();
    paths.dedup();
    Ok((paths, skipped))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::events::Silent;
    use crate::data::augment::{AugmentConfig, Pipeline};
    use crate::data::loader::{load_batch, ImageSource};

    /// Two grey PNGs, one colour JPEG, one grey-as-RGB JPEG, of different sizes.
    fn images(dir: &Path) -> Vec<PathBuf> {
        std::fs::create_dir_all(dir).unwrap();
        let mut out = Vec::new();
        for (k, (w, h)) in [(40u32, 30u32), (17, 23)].into_iter().enumerate() {
            let p = dir.join(format!("g{k}.png"));
            image::GrayImage::from_fn(w, h, |x, y| image::Luma([((x * 7 + y * 3 + k as u32 * 50) % 256) as u8])).save(&p).unwrap();
            out.push(p);
        }
        let p = dir.join("c.jpg");
        image::RgbImage::from_fn(50, 44, |x, y| image::Rgb([(x * 5) as u8, (y * 5) as u8, ((x + y) * 2) as u8])).save(&p).unwrap();
        out.push(p);
        let p = dir.join("greyrgb.jpg");
        image::RgbImage::from_fn(33, 33, |x, _| image::Rgb([(x * 7) as u8; 3])).save(&p).unwrap();
        out.push(p);
        out
    }

    #[test]
    fn cached_batches_equal_decoded_batches_bit_for_bit() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = Arc::new(images(&tmp.path().join("img")));
        let rep = ImageCache::build(&paths, 24, &tmp.path().join("cache"), &Silent).unwrap();
        assert_eq!(rep.images, 4);
        // the colour JPEG keeps three planes; PNGs are grey, and so is the R = G = B JPEG
        // (JPEG chroma subsampling can leave it not exactly grey, so count at least the PNGs)
        assert!(rep.grey >= 2 && rep.grey <= 3, "{rep:?}");
        let cache = Arc::new(ImageCache::open(&tmp.path().join("cache")).unwrap());
        let cached = ImageSource::cached(paths.clone(), cache, 24).unwrap();
        let files = ImageSource::from(paths.clone());
        for augment in [None, Some(AugmentConfig::default())] {
            let pipe = Pipeline { size: 24, augment };
            let idx = [3, 0, 2, 1];
            let a = load_batch(&pipe, &files, &idx, 7, 1).unwrap();
            let b = load_batch(&pipe, &cached, &idx, 7, 1).unwrap();
            assert_eq!(a.images, b.images, "augment {augment:?}");
        }
    }

    #[test]
    fn wrong_size_unknown_changed_and_truncated_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = images(&tmp.path().join("img"));
        let dir = tmp.path().join("cache");
        ImageCache::build(&paths[..3], 16, &dir, &Silent).unwrap();
        let cache = ImageCache::open(&dir).unwrap();
        assert_eq!(cache.resolve(&paths[..3], 16).unwrap(), vec![0, 1, 2]);
        let e = cache.resolve(&paths[..3], 32).unwrap_err().to_string();
        assert!(e.contains("16x16") && e.contains("--size 32"), "{e}");
        let e = cache.resolve(&paths, 16).unwrap_err().to_string();
        assert!(e.contains("does not hold") && e.contains("greyrgb.jpg"), "{e}");
        // rewrite one source image (other length): stale
        image::GrayImage::from_pixel(9, 9, image::Luma([1])).save(&paths[1]).unwrap();
        let e = cache.resolve(&paths[..3], 16).unwrap_err().to_string();
        assert!(e.contains("changed") && e.contains("g1.png"), "{e}");
        // a truncated data file is refused at open
        let data = dir.join(DATA);
        let len = std::fs::metadata(&data).unwrap().len();
        std::fs::OpenOptions::new().write(true).open(&data).unwrap().set_len(len - 1).unwrap();
        let e = ImageCache::open(&dir).unwrap_err().to_string();
        assert!(e.contains("truncated") && e.contains("c.jpg"), "{e}");
        // no index: an unfinished build
        std::fs::remove_file(dir.join(INDEX)).unwrap();
        let e = ImageCache::open(&dir).unwrap_err().to_string();
        assert!(e.contains("index.json") && e.contains("did not finish"), "{e}");
    }

    #[test]
    fn a_corrupt_image_fails_the_build_naming_it() {
        let tmp = tempfile::tempdir().unwrap();
        let mut paths = images(&tmp.path().join("img"));
        let bad = tmp.path().join("img/bad.jpg");
        std::fs::write(&bad, b"not a jpeg").unwrap();
        paths.push(bad);
        let e = ImageCache::build(&paths, 16, &tmp.path().join("cache"), &Silent).unwrap_err().to_string();
        assert!(e.contains("bad.jpg"), "{e}");
        assert!(ImageCache::open(&tmp.path().join("cache")).is_err(), "no index after a failed build");
    }
}
