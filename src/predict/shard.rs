//! Prediction sharded over a scheduler the user already has (a Slurm job array, a Kubernetes
//! Indexed Job): `predict --shard K/N` predicts the K-th of N contiguous blocks of the image list,
//! and `conceptree merge` joins the N shards into the one submission (and explain file) that a
//! single `predict` would have written, byte for byte.
//!
//! The image list's batches (of `--batch-size`) are dealt out in N contiguous blocks: block K holds
//! batches `[(K-1)·B/N, K·B/N)` of the `B` (integer division), so the N blocks cover every image
//! once, in order, and each shard predicts exactly the batches an unsharded prediction would (the
//! same images side by side, so the same probabilities, to the bit, in the explain records too). Each shard writes, beside its submission, a record
//! (`OUT.shard.json`) of what it is part of: the shard's number, the number of shards, its block,
//! and what the rows depend on (a hash of the run's weights, of the decoding, and of the *whole*
//! image list). The merge refuses, with exit code 2, shards of different runs, decodings, image
//! lists or shard counts, a shard given twice, a missing shard, and a shard whose file does not
//! hold its block's rows (one line per image).
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::stream::{Identity, StreamOptions};
use super::{LoadedRun, PredictError};

/// Appended to a shard's submission file name for its record.
pub(crate) const RECORD_SUFFIX: &str = ".shard.json";
const FORMAT: &str = "conceptree-shard-1";

/// `--shard K/N`: the K-th (1-based) of N shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Shard, String> {
        let (k, n) = s.split_once('/').ok_or_else(|| format!("'{s}': give K/N, the K-th of N shards (e.g. 3/8)"))?;
        let (index, count): (usize, usize) = (k.trim().parse().map_err(|_| format!("'{s}': K must be a whole number"))?, n.trim().parse().map_err(|_| format!("'{s}': N must be a whole number"))?);
        if count == 0 || index == 0 || index > count {
            return Err(format!("'{s}': K must be in 1..=N and N at least 1"));
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    /// This shard's block of a list of `n` items predicted in batches of `batch`: the list's
    /// `ceil(n / batch)` batches are dealt out as evenly as they go, so every shard predicts exactly
    /// the batches one unsharded prediction would (the same images together, so the same numbers).
    pub fn range(self, n: usize, batch: usize) -> std::ops::Range<usize> {
        let batch = batch.max(1);
        let batches = n.div_ceil(batch);
        let at = |k: usize| (k * batches / self.count * batch).min(n);
        at(self.index - 1)..at(self.index)
    }
}

/// What a shard's rows are part of, written beside its submission.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardRecord {
    pub format: String,
    pub shard: Shard,
    /// Its block of the whole image list: images `first..end`, predicted in batches of `batch_size`.
    pub first: usize,
    pub end: usize,
    pub batch_size: usize,
    /// The whole list's length and hash (ids and files, in order).
    pub n_images: usize,
    pub images: String,
    /// Hashes of the run's weights and of its decoding (heads, thresholds in force, ontology).
    pub weights: String,
    pub decoding: String,
    /// The shard's explain file, if it wrote one.
    pub explain: Option<PathBuf>,
}

impl ShardRecord {
    pub fn new(shard: Shard, n_images: usize, batch_size: usize, images: String, weights: String, decoding: String, explain: Option<PathBuf>) -> ShardRecord {
        let r = shard.range(n_images, batch_size);
        ShardRecord { format: FORMAT.into(), shard, first: r.start, end: r.end, batch_size, n_images, images, weights, decoding, explain }
    }
}

/// Cut `ids` and `paths` (the whole image list, in order) down to `shard`'s block, and return the
/// record of what the block is part of: hashes of the whole list, the run's weights and its
/// decoding ([`Identity`]), and the explain file.
pub fn take_block(run: &LoadedRun, shard: Shard, ids: &mut Vec<String>, paths: &mut Vec<PathBuf>, opts: &StreamOptions) -> Result<ShardRecord, PredictError> {
    let whole = Identity::of(run, ids, paths, opts)?;
    let block = shard.range(ids.len(), opts.batch_size);
    *ids = ids[block.clone()].to_vec();
    *paths = paths[block].to_vec();
    Ok(ShardRecord::new(shard, whole.n_images, opts.batch_size, whole.images, whole.weights, whole.decoding, whole.explain))
}

/// Write `record` beside the shard's submission `out` (after its rows are complete).
pub fn write_record(out: &Path, record: &ShardRecord) -> Result<(), PredictError> {
    let path = record_path(out);
    let text = serde_json::to_string_pretty(record).expect("records serialise") + "\n";
    crate::run::dir::write_atomic(&path, |tmp| std::fs::write(tmp, &text)).map_err(|source| PredictError::Write { path, source })
}

/// `OUT.shard.json`, the record of a shard written to `out`.
pub fn record_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(RECORD_SUFFIX);
    out.with_file_name(name)
}

/// Why shards cannot be merged; all bad input (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("{}: no shard record beside it ({} is missing); merge takes the files `predict --shard K/N --out FILE` wrote", file.display(), record.display())]
    NotAShard { file: PathBuf, record: PathBuf },
    #[error("{}: cannot be read as a shard record ({reason})", record.display())]
    BadRecord { record: PathBuf, reason: String },
    #[error("{} is a shard of another {what} than {}; merge only shards of one prediction", file.display(), first.display())]
    Foreign { file: PathBuf, first: PathBuf, what: &'static str },
    #[error("shard {k} of {n} is given twice: {} and {}", a.display(), b.display())]
    Doubled { k: usize, n: usize, a: PathBuf, b: PathBuf },
    #[error("shard(s) {missing} of {n} are missing; merge needs every shard")]
    Missing { missing: String, n: usize },
    #[error("{}: holds {found} row(s) where shard {k} of {n} predicts {want} image(s); was it cut short or changed?", file.display())]
    Rows { file: PathBuf, k: usize, n: usize, found: usize, want: usize },
    #[error("{}: {what}", file.display())]
    Explain { file: PathBuf, what: String },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

impl crate::classify::Classify for MergeError {
    fn is_bad_input(&self) -> bool {
        match self {
            MergeError::NotAShard { .. } | MergeError::BadRecord { .. } | MergeError::Foreign { .. } | MergeError::Doubled { .. } | MergeError::Missing { .. } | MergeError::Rows { .. } | MergeError::Explain { .. } => true,
            MergeError::Read { source, .. } => crate::classify::io_is_bad_input(false, source),
            MergeError::Write { source, .. } => crate::classify::io_is_bad_input(true, source),
        }
    }
}

/// The shards' records, checked to be every shard of one prediction, in shard order, with their files.
pub(crate) fn check_shards(files: &[PathBuf]) -> Result<Vec<(PathBuf, ShardRecord)>, MergeError> {
    let mut shards: Vec<(PathBuf, ShardRecord)> = Vec::new();
    for f in files {
        let record = record_path(f);
        if !record.is_file() {
            return Err(MergeError::NotAShard { file: f.clone(), record });
        }
        let text = crate::text::read_text(&record).map_err(|source| MergeError::Read { path: record.clone(), source })?;
        let r: ShardRecord = serde_json::from_str(&text).map_err(|e| MergeError::BadRecord { record: record.clone(), reason: e.to_string() })?;
        if r.format != FORMAT || r.shard.index == 0 || r.shard.index > r.shard.count || r.shard.range(r.n_images, r.batch_size) != (r.first..r.end) {
            return Err(MergeError::BadRecord { record, reason: format!("not a {FORMAT} record, or its block does not match its shard") });
        }
        if let Some((first, r0)) = shards.first() {
            let what = if r.weights != r0.weights {
                Some("run (other weights)")
            } else if r.decoding != r0.decoding {
                Some("decoding (heads, thresholds, --threshold or ontology)")
            } else if r.images != r0.images || r.n_images != r0.n_images {
                Some("image list")
            } else if r.shard.count != r0.shard.count {
                Some("number of shards")
            } else if r.batch_size != r0.batch_size {
                Some("--batch-size (the blocks follow the batches)")
            } else if r.explain.is_some() != r0.explain.is_some() {
                Some("kind of prediction (one with --explain, one without)")
            } else {
                None
            };
            if let Some(what) = what {
                return Err(MergeError::Foreign { file: f.clone(), first: first.clone(), what });
            }
            if let Some((other, _)) = shards.iter().find(|(_, s)| s.shard.index == r.shard.index) {
                return Err(MergeError::Doubled { k: r.shard.index, n: r.shard.count, a: other.clone(), b: f.clone() });
            }
        }
        shards.push((f.clone(), r));
    }
    let Some(n) = shards.first().map(|(_, r)| r.shard.count) else { return Err(MergeError::Missing { missing: "all".into(), n: 0 }) };
    let missing: Vec<String> = (1..=n).filter(|k| !shards.iter().any(|(_, r)| r.shard.index == *k)).map(|k| k.to_string()).collect();
    if !missing.is_empty() {
        return Err(MergeError::Missing { missing: missing.join(", "), n });
    }
    shards.sort_by_key(|(_, r)| r.shard.index);
    Ok(shards)
}

/// Join the shards `files` into `out` (and their explain files into `explain`): the bytes a single
/// prediction would have written. Returns the number of images.
pub fn merge(files: &[PathBuf], out: &Path, explain: Option<&Path>) -> Result<usize, MergeError> {
    let shards = check_shards(files)?;
    let has_explain = shards[0].1.explain.is_some();
    if explain.is_some() && !has_explain {
        return Err(MergeError::Explain { file: shards[0].0.clone(), what: "the shards were predicted without --explain, so there is nothing to merge into --explain".into() });
    }
    if let Some(e) = explain {
        let target = crate::run::outputs::resolve(e);
        if let Some(own) = shards.iter().filter_map(|(_, r)| r.explain.as_ref()).find(|p| crate::run::outputs::resolve(p) == target) {
            return Err(MergeError::Explain { file: e.to_path_buf(), what: format!("is a shard's own explain file ({}), which the merge reads; choose another --explain", own.display()) });
        }
    }
    let read = |p: &Path| std::fs::read(p).map_err(|source| MergeError::Read { path: p.to_path_buf(), source });
    let lines = |b: &[u8]| b.iter().filter(|&&c| c == b'\n').count();
    let (mut rows, mut records) = (Vec::new(), Vec::new());
    for (file, r) in &shards {
        let want = r.end - r.first;
        let bytes = read(file)?;
        if lines(&bytes) != want {
            return Err(MergeError::Rows { file: file.clone(), k: r.shard.index, n: r.shard.count, found: lines(&bytes), want });
        }
        rows.extend(bytes);
        if let (Some(_), Some(e)) = (explain, &r.explain) {
            let bytes = read(e)?;
            if lines(&bytes) != want {
                return Err(MergeError::Explain { file: e.clone(), what: format!("holds {} record(s) where shard {} predicts {want} image(s)", lines(&bytes), r.shard.index) });
            }
            records.extend(bytes);
        }
    }
    let write = |p: &Path, bytes: &[u8]| crate::run::dir::write_atomic(p, |tmp| std::fs::write(tmp, bytes)).map_err(|source| MergeError::Write { path: p.to_path_buf(), source });
    write(out, &rows)?;
    if let Some(e) = explain {
        write(e, &records)?;
    }
    Ok(shards[0].1.n_images)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_cover_every_image_once_in_order_on_batch_boundaries() {
        for n in [0usize, 1, 3, 7, 30, 100] {
            for batch in [1usize, 4, 64] {
                for count in 1..=9 {
                    let blocks: Vec<_> = (1..=count).map(|index| Shard { index, count }.range(n, batch)).collect();
                    assert_eq!(blocks[0].start, 0);
                    assert_eq!(blocks.last().unwrap().end, n);
                    assert!(blocks.windows(2).all(|w| w[0].end == w[1].start), "{n} {batch} {count}: {blocks:?}");
                    assert!(blocks.iter().all(|b| b.start % batch == 0 || b.start == n), "batch boundaries: {blocks:?}");
                    let batches: Vec<usize> = blocks.iter().map(|b| b.len().div_ceil(batch)).collect();
                    assert!(batches.iter().max().unwrap() - batches.iter().min().unwrap() <= 1, "balanced: {batches:?}");
                }
            }
        }
        // 30 images in batches of 4 (8 batches) over 4 shards: 2 batches each, the last one short
        let blocks: Vec<_> = (1..=4).map(|index| Shard { index, count: 4 }.range(30, 4)).collect();
        assert_eq!(blocks, vec![0..8, 8..16, 16..24, 24..30]);
        assert_eq!("3/8".parse::<Shard>().unwrap(), Shard { index: 3, count: 8 });
        for bad in ["0/4", "5/4", "1/0", "2", "a/b", "-1/4"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }
}
