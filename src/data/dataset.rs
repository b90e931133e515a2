//! Dataset = label rows joined with image files; label spaces, splits and class weights.
//!
//! * [`Dataset::open`] pairs every labelled id with its image in an [`ImageDir`] and checks the
//!   image header; a missing, ambiguous or unreadable image is an error naming the id and file, or,
//!   with `skip_bad`, a counted and reported skip.
//! * [`LabelSpace`] is the ordered concept list a model predicts (flat top-K, or one per level).
//! * [`split_train_val`] is a seeded split, by group when groups are given (near-duplicate slices of
//!   one case must not straddle train and validation).
//! * [`balanced_pos_weights`] is scikit-learn's `compute_class_weight("balanced")` applied to label
//!   occurrences: `w_k = M / (K * n_k)` with `M` the total number of occurrences of the `K` concepts.
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::images::ImageDir;
use super::labels::{LabelRow, SkipReport, Skipped};

pub use super::images::DatasetError;

/// Labelled images: `ids[i]` has `labels[i]` and lives at `paths[i]`.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    pub ids: Vec<String>,
    pub labels: Vec<BTreeSet<String>>,
    pub paths: Vec<PathBuf>,
}

impl Dataset {
    /// Join label rows with their images, checking that each image exists and its header decodes.
    pub fn open(rows: &[LabelRow], labels_source: &str, images: &ImageDir, skip_bad: bool) -> Result<(Dataset, SkipReport), DatasetError> {
        let (found, report) = resolve_images(rows, labels_source, images, skip_bad)?;
        let mut ds = Dataset::default();
        for (i, path) in found {
            ds.ids.push(rows[i].id.clone());
            ds.labels.push(rows[i].cui_set());
            ds.paths.push(path);
        }
        Ok((ds, report))
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The subset at `idx` (in that order).
    pub fn subset(&self, idx: &[usize]) -> Dataset {
        Dataset {
            ids: idx.iter().map(|&i| self.ids[i].clone()).collect(),
            labels: idx.iter().map(|&i| self.labels[i].clone()).collect(),
            paths: idx.iter().map(|&i| self.paths[i].clone()).collect(),
        }
    }

    /// Frequency of every concept.
    pub(crate) fn concept_counts(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for set in &self.labels {
            for c in set {
                *m.entry(c.clone()).or_insert(0) += 1;
            }
        }
        m
    }
}

/// The image of every row whose image exists and whose header decodes, as `(row index, path)`
/// in row order (checked in parallel). A missing, ambiguous or unreadable image is an error naming
/// the id, line and file, or, with `skip_bad`, a counted and reported skip; no usable image at all
/// is an error.
pub(crate) fn resolve_images(rows: &[LabelRow], labels_source: &str, images: &ImageDir, skip_bad: bool) -> Result<(Vec<(usize, PathBuf)>, SkipReport), DatasetError> {
    let dir = images.dir.as_path();
    // boxed errors: a row costs a pointer and its path, not the size of the largest error
    let checked: Vec<Result<PathBuf, Box<DatasetError>>> = rows
        .par_iter()
        .map(|r| {
            let path = images.find(&r.id)?.ok_or_else(|| DatasetError::MissingImage {
                labels: labels_source.to_string(),
                line: r.line,
                id: r.id.clone(),
                dir: dir.to_path_buf(),
            })?;
            check_image_header(&path).map_err(|reason| DatasetError::BadImage {
                labels: labels_source.to_string(),
                line: r.line,
                id: r.id.clone(),
                path: path.clone(),
                reason,
            })?;
            Ok(path)
        })
        .map(|r: Result<PathBuf, DatasetError>| r.map_err(Box::new))
        .collect();
    let mut found = Vec::with_capacity(checked.iter().filter(|c| c.is_ok()).count());
    let mut report = SkipReport { source: dir.display().to_string(), skipped: vec![], detected: None };
    for (i, (r, c)) in rows.iter().zip(checked).enumerate() {
        match c {
            Ok(path) => found.push((i, path)),
            Err(e) if skip_bad => {
                let kind = match *e {
                    DatasetError::MissingImage { .. } => "missing image",
                    DatasetError::AmbiguousImage { .. } => "ambiguous image",
                    _ => "unreadable image",
                };
                report.skipped.push(Skipped { line: r.line, id: Some(r.id.clone()), reason: format!("{kind}: {e}") });
            }
            Err(e) => return Err(*e),
        }
    }
    if found.is_empty() {
        return Err(DatasetError::NoUsableImages { dir: dir.to_path_buf(), labels: labels_source.to_string() });
    }
    Ok((found, report))
}

/// Validity check before training: the header decodes, the dimensions are sane, and a JPEG is
/// complete (decoders would silently fill a truncated one with grey).
fn check_image_header(path: &Path) -> Result<(), String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    if bytes.starts_with(&[0xFF, 0xD8]) {
        super::decode::jpeg_complete(&bytes)?;
    }
    let reader = image::ImageReader::open(path).map_err(|e| e.to_string())?;
    let reader = reader.with_guessed_format().map_err(|e| e.to_string())?;
    let (w, h) = reader.into_dimensions().map_err(|e| e.to_string())?;
    if w == 0 || h == 0 {
        return Err("zero-sized image".into());
    }
    if (w as u64) * (h as u64) > super::decode::MAX_PIXELS {
        return Err(format!("{w}x{h} exceeds the limit of {} pixels", super::decode::MAX_PIXELS));
    }
    Ok(())
}

/// The ordered concepts a model predicts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct LabelSpace {
    /// Concepts in output order.
    pub concepts: Vec<String>,
    /// Training-set frequency of each concept.
    pub counts: Vec<usize>,
}

impl LabelSpace {
    /// The `top_k` most frequent concepts with at least `min_count` images (ties by CUI).
    pub fn top_k(counts: &BTreeMap<String, usize>, top_k: usize, min_count: usize) -> LabelSpace {
        let mut v: Vec<(&String, &usize)> = counts.iter().filter(|(_, &n)| n >= min_count.max(1)).collect();
        v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        v.truncate(top_k);
        LabelSpace { concepts: v.iter().map(|(c, _)| (*c).clone()).collect(), counts: v.iter().map(|(_, n)| **n).collect() }
    }

    pub fn is_empty(&self) -> bool {
        self.concepts.is_empty()
    }
}

/// Multi-hot targets `[N, K]` (row-major) of `labels` over `concepts` (in output order); a concept
/// outside `concepts` sets nothing.
pub(crate) fn multi_hot(concepts: &[String], labels: &[BTreeSet<String>]) -> Vec<f32> {
    let idx: HashMap<&str, usize> = concepts.iter().enumerate().map(|(i, c)| (c.as_str(), i)).collect();
    let k = concepts.len();
    let mut out = vec![0f32; labels.len() * k];
    for (i, set) in labels.iter().enumerate() {
        for c in set {
            if let Some(&j) = idx.get(c.as_str()) {
                out[i * k + j] = 1.0;
            }
        }
    }
    out
}

/// scikit-learn "balanced" weights over label occurrences: `w_k = M / (K * n_k)`, used as BCE
/// positive weights. A concept with no occurrence gets weight 1.
pub(crate) fn balanced_pos_weights(counts: &[usize]) -> Vec<f32> {
    let k = counts.len() as f64;
    let m: f64 = counts.iter().map(|&n| n as f64).sum();
    counts.iter().map(|&n| if n == 0 { 1.0 } else { (m / (k * n as f64)) as f32 }).collect()
}

/// Read an `id,group` table (a CSV with a header holding `id` and `group` columns, like realrad's meta.csv).
pub(crate) fn read_groups(path: &Path) -> Result<HashMap<String, String>, DatasetError> {
    read_column(path, "group")?.ok_or_else(|| DatasetError::Malformed { path: path.to_path_buf(), line: 1, message: "header needs 'id' and 'group' columns".into() })
}

/// Read the `id` and `column` columns of a CSV with a header (e.g. realrad's meta.csv and its
/// `source`): `None` when the header has no such column (or no `id`).
pub(crate) fn read_column(path: &Path, column: &str) -> Result<Option<HashMap<String, String>>, DatasetError> {
    // read bounded (crate::text): a wrong file fails on its first long line, not out of memory
    let text = crate::text::read_text(path).map_err(|source| DatasetError::Io { path: path.to_path_buf(), source })?;
    let mut rdr = csv::ReaderBuilder::new().flexible(false).from_reader(text.as_bytes());
    let headers = rdr
        .headers()
        .map_err(|e| DatasetError::Malformed { path: path.to_path_buf(), line: 1, message: e.to_string() })?
        .clone();
    let col = |name: &str| headers.iter().position(|h| h.trim().eq_ignore_ascii_case(name));
    let (Some(ci), Some(cg)) = (col("id"), col(column)) else {
        return Ok(None);
    };
    let mut out = HashMap::new();
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| DatasetError::Malformed { path: path.to_path_buf(), line: i + 2, message: e.to_string() })?;
        out.insert(rec[ci].to_string(), rec[cg].to_string());
    }
    Ok(Some(out))
}

/// The indices of each group's ids, groups in the order of their names; an id without a group (or
/// every id, without `groups`) is a group of its own, under a name no group can have. The one
/// grouping rule of the split, the sample and the case-resampled intervals.
pub(crate) fn group_members<S: AsRef<str>>(ids: &[S], groups: Option<&HashMap<String, String>>) -> Vec<Vec<usize>> {
    let mut by_group: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, id) in ids.iter().enumerate() {
        let id = id.as_ref();
        let g = groups.and_then(|g| g.get(id)).cloned().unwrap_or_else(|| format!("\u{0}{id}"));
        by_group.entry(g).or_default().push(i);
    }
    by_group.into_values().collect()
}

/// Seeded train/validation split. With `groups`, whole groups go to one side (an id without a
/// group is its own group). Returns (train indices, val indices), each sorted.
pub(crate) fn split_train_val(ids: &[String], val_fraction: f64, seed: u64, groups: Option<&HashMap<String, String>>) -> (Vec<usize>, Vec<usize>) {
    let mut groups_v = group_members(ids, groups);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ SPLIT_SALT);
    groups_v.shuffle(&mut rng);
    let target = (ids.len() as f64 * val_fraction).round() as usize;
    let (mut train, mut val) = (vec![], vec![]);
    for g in groups_v {
        if val.len() < target {
            val.extend(g);
        } else {
            train.extend(g);
        }
    }
    train.sort_unstable();
    val.sort_unstable();
    (train, val)
}

/// Mixed into the split seed so the split differs from the augmentation stream of the same seed.
const SPLIT_SALT: u64 = 0x5eed_5b11;
/// Mixed into the split seed for [`sample_at_most`], so the sample is not the split's draw again.
const SAMPLE_SALT: u64 = 0x5a3b_1e5e;

/// A seeded sample of at most `n` of `ids`, drawn across the whole set (not the first `n`): the
/// same `seed` gives the same sample. With `groups`, whole groups are drawn (an id without a group
/// is its own group), in a seeded order, each taken if it still fits, so no group is split and the
/// sample may hold a little fewer than `n`. All of them when `n` is 0 or at least their number.
/// Returns sorted indices into `ids`.
pub(crate) fn sample_at_most(ids: &[String], n: usize, seed: u64, groups: Option<&HashMap<String, String>>) -> Vec<usize> {
    if n == 0 || n >= ids.len() {
        return (0..ids.len()).collect();
    }
    let mut groups_v = group_members(ids, groups);
    groups_v.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ SAMPLE_SALT));
    let mut taken = Vec::with_capacity(n);
    for g in groups_v {
        if taken.len() + g.len() <= n {
            taken.extend(g);
        }
        if taken.len() == n {
            break;
        }
    }
    taken.sort_unstable();
    taken
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_orders_by_count_then_cui_and_respects_min_count() {
        let counts: BTreeMap<String, usize> =
            [("C3", 5), ("C1", 5), ("C2", 9), ("C4", 1)].iter().map(|(c, n)| (c.to_string(), *n)).collect();
        let ls = LabelSpace::top_k(&counts, 3, 2);
        assert_eq!(ls.concepts, vec!["C2", "C1", "C3"]);
        assert_eq!(ls.counts, vec![9, 5, 5]);
        assert_eq!(LabelSpace::top_k(&counts, 10, 6).concepts, vec!["C2"]);
    }

    #[test]
    fn balanced_weights_match_sklearn_formula() {
        // sklearn: compute_class_weight('balanced', classes=[0,1], y=[0]*30+[1]*10) -> [0.6667, 2.0]
        let w = balanced_pos_weights(&[30, 10]);
        assert!((w[0] - 40.0 / 60.0).abs() < 1e-6 && (w[1] - 2.0).abs() < 1e-6, "{w:?}");
    }

    #[test]
    fn multi_hot_ignores_concepts_outside_the_space() {
        let labels = vec![["B", "Z"].iter().map(|s| s.to_string()).collect(), BTreeSet::new()];
        assert_eq!(multi_hot(&["A".into(), "B".into()], &labels), vec![0.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn a_sample_is_seeded_spread_over_the_set_and_keeps_groups_whole() {
        // sorted ids whose first half is one source and second half another (as realrad's sorted
        // ids are by source): the first 50 would all be "a"
        let ids: Vec<String> = (0..100).map(|i| format!("{}{i:03}", if i < 50 { "a" } else { "b" })).collect();
        let s = sample_at_most(&ids, 50, 7, None);
        assert_eq!(s.len(), 50);
        assert!(s.windows(2).all(|w| w[0] < w[1]), "sorted, no repeats");
        let from_b = s.iter().filter(|&&i| i >= 50).count();
        assert!((15..=35).contains(&from_b), "drawn across the set, not the first 50: {from_b} from the second half");
        assert_eq!(sample_at_most(&ids, 50, 7, None), s, "the same seed, the same sample");
        assert_ne!(sample_at_most(&ids, 50, 8, None), s);
        assert_eq!(sample_at_most(&ids, 0, 7, None).len(), 100, "0 = all");
        assert_eq!(sample_at_most(&ids, 500, 7, None).len(), 100);
        // groups of 4 (and one of 3): whole groups only, at most n
        let groups: HashMap<String, String> = ids.iter().enumerate().filter(|(i, _)| *i != 99).map(|(i, id)| (id.clone(), format!("g{}", i / 4))).collect();
        let s = sample_at_most(&ids, 30, 7, Some(&groups));
        assert!((27..=30).contains(&s.len()), "{}", s.len());
        let group_of = |i: usize| groups.get(&ids[i]).cloned().unwrap_or_else(|| ids[i].clone());
        for &i in &s {
            let g = group_of(i);
            let members = (0..ids.len()).filter(|&j| group_of(j) == g).count();
            assert_eq!(s.iter().filter(|&&j| group_of(j) == g).count(), members, "group {g} is split");
        }
        assert_eq!(sample_at_most(&ids, 30, 7, Some(&groups)), s);
    }

    #[test]
    fn split_is_seeded_disjoint_and_keeps_groups_together() {
        let ids: Vec<String> = (0..100).map(|i| format!("img{i}")).collect();
        let groups: HashMap<String, String> = ids.iter().enumerate().map(|(i, id)| (id.clone(), format!("g{}", i / 4))).collect();
        let (tr, va) = split_train_val(&ids, 0.15, 7, Some(&groups));
        assert_eq!(tr.len() + va.len(), 100);
        assert!(tr.iter().all(|i| !va.contains(i)));
        assert!((14..=20).contains(&va.len()), "{}", va.len());
        for &v in &va {
            let g = &groups[&ids[v]];
            assert!(tr.iter().all(|&t| &groups[&ids[t]] != g), "group {g} straddles the split");
        }
        assert_eq!(split_train_val(&ids, 0.15, 7, Some(&groups)), (tr.clone(), va.clone()));
        assert_ne!(split_train_val(&ids, 0.15, 8, Some(&groups)).1, va);
    }
}
