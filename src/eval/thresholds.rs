//! Decision thresholds: turning per-concept scores into concept sets, and tuning the thresholds
//! to maximise the ImageCLEF F1 on a validation set.
//!
//! A concept is predicted for an image when its score is `>=` its threshold. Thresholds are
//! looked up concept first, then level, then global ([`Thresholds::for_concept`]).
//!
//! Tuning ([`tune`]) is a grid search on the official ImageCLEF F1 (see
//! [`crate::eval::metrics`]): the best global threshold, then coordinate ascent per level, then
//! per concept. Scores are bucketed once against the grid (one byte per score, column-major), and
//! per-image `|G∩P|` and `|P|` counts are updated incrementally, so moving one concept's
//! threshold costs one pass over that concept's column, never a full re-evaluation.
//!
//! Everything is pure: scores are an `ndarray` matrix `[N images, K concepts]`, nothing depends
//! on tch. Hooks (`level_of`) receive upper-cased CUIs, as in [`crate::eval::metrics`].
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use ndarray::{ArrayBase, Data, Ix2};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::eval::metrics::LabelMap;

/// Most grid values [`tune`] accepts (grid indices are stored in one byte).
pub(crate) const MAX_GRID: usize = 255;

/// An improvement smaller than this (in summed per-image F1) is treated as no improvement, so
/// that floating-point noise never moves a threshold.
const EPS: f64 = 1e-9;

/// Errors of threshold decisions, tuning and threshold files; each names the file or the shape.
#[derive(Debug, thiserror::Error)]
pub enum ThresholdError {
    #[error("cannot read or write threshold file {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("threshold file {path} is not valid JSON for thresholds: {source}")]
    Json { path: PathBuf, source: serde_json::Error },
    #[error("threshold file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("score matrix has {found} {what}, expected {expected}")]
    Shape { what: &'static str, expected: usize, found: usize },
    #[error("concept '{cui}' appears twice in the concept list (columns {first} and {second})")]
    DuplicateConcept { cui: String, first: usize, second: usize },
    #[error("image id '{id}' appears twice in the id list (rows {first} and {second})")]
    DuplicateId { id: String, first: usize, second: usize },
    #[error("bad threshold grid: {0}")]
    BadGrid(String),
}

/// Decision thresholds, looked up concept > level > global. Serialized as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// Threshold for concepts with no level or concept entry. Default 0.5.
    pub global: f32,
    /// Level name -> threshold. Default empty.
    #[serde(default)]
    pub per_level: BTreeMap<String, f32>,
    /// CUI (as in the model's concept list) -> threshold. Default empty.
    #[serde(default)]
    pub per_concept: BTreeMap<String, f32>,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self::new(0.5)
    }
}

impl Thresholds {
    /// One global threshold, no level or concept entries.
    pub fn new(global: f32) -> Self {
        Self { global, per_level: BTreeMap::new(), per_concept: BTreeMap::new() }
    }

    /// Threshold of `cui` (whose level is `level`): its own entry, else its level's, else global.
    pub(crate) fn for_concept(&self, cui: &str, level: Option<&str>) -> f32 {
        if let Some(&t) = self.per_concept.get(cui) {
            return t;
        }
        if let Some(t) = level.and_then(|l| self.per_level.get(l)) {
            return *t;
        }
        self.global
    }

    /// The threshold of every concept in `concepts`, in order.
    pub fn resolve(&self, concepts: &[String], level_of: &dyn Fn(&str) -> Option<String>) -> Vec<f32> {
        concepts.iter().map(|c| self.for_concept(c, level_of(&c.to_uppercase()).as_deref())).collect()
    }

    /// Write as pretty JSON to `path`.
    pub fn save(&self, path: &Path) -> Result<(), ThresholdError> {
        let json = serde_json::to_string_pretty(self)
            .map_err(|source| ThresholdError::Json { path: path.to_path_buf(), source })?;
        std::fs::write(path, json + "\n").map_err(|source| ThresholdError::Io { path: path.to_path_buf(), source })
    }

    /// Read from JSON at `path`; every threshold must be finite.
    pub fn load(path: &Path) -> Result<Self, ThresholdError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ThresholdError::Io { path: path.to_path_buf(), source })?;
        let t: Thresholds =
            serde_json::from_str(&text).map_err(|source| ThresholdError::Json { path: path.to_path_buf(), source })?;
        let bad = std::iter::once(("global", t.global))
            .chain(t.per_level.iter().map(|(k, v)| (k.as_str(), *v)))
            .chain(t.per_concept.iter().map(|(k, v)| (k.as_str(), *v)))
            .find(|(_, v)| !v.is_finite());
        if let Some((name, v)) = bad {
            return Err(ThresholdError::Invalid {
                path: path.to_path_buf(),
                message: format!("threshold of '{name}' is {v}, not a finite number"),
            });
        }
        Ok(t)
    }
}

/// Which thresholds [`tune`] fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum TuneMode {
    /// One threshold for all concepts.
    Global,
    /// The best global threshold, then one per level (coordinate ascent); concepts on no level keep the global one.
    PerLevel,
    /// Per level, then one threshold per concept where that strictly raises the validation F1 (coordinate ascent).
    PerConcept,
}

/// The default grid: 0.05, 0.10, ..., 0.95.
pub(crate) fn default_grid() -> Vec<f32> {
    (1..=19).map(|i| i as f32 / 20.0).collect()
}

fn check_shape<S: Data<Elem = f32>>(scores: &ArrayBase<S, Ix2>, concepts: &[String]) -> Result<(), ThresholdError> {
    if scores.ncols() != concepts.len() {
        return Err(ThresholdError::Shape {
            what: "columns (concepts)",
            expected: concepts.len(),
            found: scores.ncols(),
        });
    }
    Ok(())
}

/// Predicted concept set of every image (row): the concepts whose score is `>=` their threshold.
///
/// `level_of` gives each concept's level for the per-level thresholds (pass `&|_| None` when
/// there are none). With `min_one` (default in configs: `false`), an image for which no concept
/// passes gets its single top-scoring concept (NaN scores ignored; first column on ties), as
/// some ImageCLEF runs do; without it the image gets an empty set. NaN never passes a threshold.
pub fn decide<S: Data<Elem = f32>>(
    scores: &ArrayBase<S, Ix2>,
    concepts: &[String],
    thresholds: &Thresholds,
    level_of: &dyn Fn(&str) -> Option<String>,
    min_one: bool,
) -> Result<Vec<BTreeSet<String>>, ThresholdError> {
    check_shape(scores, concepts)?;
    let th = thresholds.resolve(concepts, level_of);
    Ok(scores
        .outer_iter()
        .map(|row| {
            let mut set: BTreeSet<String> =
                row.iter().zip(&th).zip(concepts).filter(|((s, t), _)| *s >= *t).map(|(_, c)| c.clone()).collect();
            if set.is_empty() && min_one {
                let best = row.iter().enumerate().filter(|(_, s)| !s.is_nan()).fold(
                    None,
                    |acc: Option<(usize, f32)>, (i, &s)| match acc {
                        Some((_, b)) if b >= s => acc,
                        _ => Some((i, s)),
                    },
                );
                if let Some((i, _)) = best {
                    set.insert(concepts[i].clone());
                }
            }
            set
        })
        .collect())
}

/// Which concepts have at least `min_cases` cases among the images `ids` whose truth in `gt` holds
/// them: a case is a group of `groups` (an image on its own when it has no group, or without
/// `groups`). With `min_cases` 0 or 1 every concept seen once qualifies (0: every concept).
pub(crate) fn enough_cases(concepts: &[String], ids: &[String], gt: &LabelMap, groups: Option<&std::collections::HashMap<String, String>>, min_cases: usize) -> Vec<bool> {
    concepts
        .iter()
        .map(|c| {
            let cases: BTreeSet<&str> = ids
                .iter()
                .filter(|id| gt.get(*id).is_some_and(|g| g.contains(c)))
                .map(|id| groups.and_then(|g| g.get(id)).map_or(id.as_str(), |g| g.as_str()))
                .collect();
            cases.len() >= min_cases
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Tuning internals

/// The scored rows of a validation set, with scores bucketed against the grid.
struct Problem {
    /// Sorted, de-duplicated grid.
    grid: Vec<f32>,
    /// Scored rows (GT known and non-empty).
    n: usize,
    k: usize,
    /// Column-major `[k][n]`: number of grid values `<=` the score (0 for NaN). A score passes
    /// grid threshold `t` (an index) iff its bucket is `> t`.
    bucket: Vec<u8>,
    /// `|G_i|` per scored row (GT CUIs outside the concept list included).
    g: Vec<u32>,
    /// Per column, the scored rows whose GT holds the concept.
    gt_rows: Vec<Vec<u32>>,
}

/// Per-row counts under the current per-column thresholds.
struct State {
    /// Grid index of each column's threshold.
    th: Vec<u8>,
    tp: Vec<u32>,
    p: Vec<u32>,
    /// Σ per-row F1 (divide by `n` for the mean).
    total: f64,
}

#[inline]
fn f1_of(tp: u32, p: u32, g: u32) -> f64 {
    2.0 * tp as f64 / (g + p) as f64
}

fn sorted_grid(grid: &[f32]) -> Result<Vec<f32>, ThresholdError> {
    if grid.is_empty() {
        return Err(ThresholdError::BadGrid("the grid is empty".into()));
    }
    if let Some(v) = grid.iter().find(|v| !v.is_finite()) {
        return Err(ThresholdError::BadGrid(format!("{v} is not a finite threshold")));
    }
    let mut g = grid.to_vec();
    g.sort_by(|a, b| a.total_cmp(b));
    g.dedup();
    if g.len() > MAX_GRID {
        return Err(ThresholdError::BadGrid(format!("{} distinct values, at most {MAX_GRID} allowed", g.len())));
    }
    Ok(g)
}

impl Problem {
    fn new<S: Data<Elem = f32> + Sync>(
        scores: &ArrayBase<S, Ix2>,
        concepts: &[String],
        ids: &[String],
        gt: &LabelMap,
        grid: &[f32],
    ) -> Result<Self, ThresholdError> {
        check_shape(scores, concepts)?;
        if scores.nrows() != ids.len() {
            return Err(ThresholdError::Shape { what: "rows (images)", expected: ids.len(), found: scores.nrows() });
        }
        let grid = sorted_grid(grid)?;
        let mut col_of: HashMap<String, usize> = HashMap::with_capacity(concepts.len());
        for (c, name) in concepts.iter().enumerate() {
            if let Some(first) = col_of.insert(name.to_uppercase(), c) {
                return Err(ThresholdError::DuplicateConcept { cui: name.clone(), first, second: c });
            }
        }
        let mut seen: HashMap<&str, usize> = HashMap::with_capacity(ids.len());
        let mut rows = Vec::new(); // original row index of each scored row
        let mut g = Vec::new();
        let k = concepts.len();
        let mut gt_rows: Vec<Vec<u32>> = vec![Vec::new(); k];
        for (r, id) in ids.iter().enumerate() {
            if let Some(first) = seen.insert(id.as_str(), r) {
                return Err(ThresholdError::DuplicateId { id: id.clone(), first, second: r });
            }
            let Some(set) = gt.get(id) else { continue };
            let upper: BTreeSet<String> = set.iter().map(|s| s.to_uppercase()).collect();
            if upper.is_empty() {
                continue;
            }
            let i = rows.len() as u32;
            for cui in &upper {
                if let Some(&c) = col_of.get(cui) {
                    gt_rows[c].push(i);
                }
            }
            rows.push(r);
            g.push(upper.len() as u32);
        }
        let n = rows.len();
        let mut bucket = vec![0u8; k * n];
        const BLOCK: usize = 64;
        if n > 0 {
            bucket.par_chunks_mut(BLOCK * n).enumerate().for_each(|(blk, out)| {
                let c0 = blk * BLOCK;
                let width = out.len() / n;
                for (i, &r) in rows.iter().enumerate() {
                    let row = scores.row(r);
                    for j in 0..width {
                        let s = row[c0 + j];
                        out[j * n + i] = grid.partition_point(|&t| t <= s) as u8;
                    }
                }
            });
        }
        Ok(Problem { grid, n, k, bucket, g, gt_rows })
    }

    fn col(&self, c: usize) -> &[u8] {
        &self.bucket[c * self.n..(c + 1) * self.n]
    }

    /// State with the given per-column thresholds, counted from scratch.
    fn state(&self, th: Vec<u8>) -> State {
        let (mut tp, mut p) = (vec![0u32; self.n], vec![0u32; self.n]);
        for (c, &t) in th.iter().enumerate() {
            for (i, &b) in self.col(c).iter().enumerate() {
                p[i] += (b > t) as u32;
            }
            for &i in &self.gt_rows[c] {
                tp[i as usize] += (self.col(c)[i as usize] > t) as u32;
            }
        }
        let total = (0..self.n).map(|i| f1_of(tp[i], p[i], self.g[i])).sum();
        State { th, tp, p, total }
    }

    /// For a group of columns moved together to each grid threshold (others fixed), the summed
    /// per-row F1 per grid index, plus the per-row data needed to apply a choice.
    fn group_totals(&self, st: &State, cols: &[usize]) -> (Vec<f64>, GroupRows) {
        let nb = self.grid.len() + 1;
        let n = self.n;
        let mut hp = vec![0u32; n * nb];
        let mut htp = vec![0u32; n * nb];
        let mut base_p: Vec<u32> = st.p.clone();
        let mut base_tp: Vec<u32> = st.tp.clone();
        for &c in cols {
            let t = st.th[c];
            let col = self.col(c);
            for (i, &b) in col.iter().enumerate() {
                hp[i * nb + b as usize] += 1;
                base_p[i] -= (b > t) as u32;
            }
            for &i in &self.gt_rows[c] {
                let b = col[i as usize];
                htp[i as usize * nb + b as usize] += 1;
                base_tp[i as usize] -= (b > t) as u32;
            }
        }
        let mut totals = vec![0.0f64; self.grid.len()];
        for i in 0..n {
            // Suffix sums: count with bucket > t, for t = nb-2 down to 0.
            let (mut pge, mut tpge) = (0u32, 0u32);
            for t in (0..self.grid.len()).rev() {
                pge += hp[i * nb + t + 1];
                tpge += htp[i * nb + t + 1];
                totals[t] += f1_of(base_tp[i] + tpge, base_p[i] + pge, self.g[i]);
            }
        }
        (totals, GroupRows { hp, htp, base_p, base_tp })
    }

    /// Move the group `cols` to grid index `t`, updating the counts.
    fn apply_group(&self, st: &mut State, cols: &[usize], t: u8, rows: &GroupRows, total: f64) {
        let nb = self.grid.len() + 1;
        for i in 0..self.n {
            let pge: u32 = rows.hp[i * nb + t as usize + 1..(i + 1) * nb].iter().sum();
            let tpge: u32 = rows.htp[i * nb + t as usize + 1..(i + 1) * nb].iter().sum();
            st.p[i] = rows.base_p[i] + pge;
            st.tp[i] = rows.base_tp[i] + tpge;
        }
        for &c in cols {
            st.th[c] = t;
        }
        st.total = total;
    }

    /// Best grid index for a group and its total; ties go to the lowest threshold.
    fn best(totals: &[f64]) -> (u8, f64) {
        let mut best = (0u8, f64::NEG_INFINITY);
        for (t, &v) in totals.iter().enumerate() {
            if v > best.1 + EPS {
                best = (t as u8, v);
            }
        }
        best
    }

    /// Coordinate ascent on groups of columns; returns whether anything moved.
    fn ascend_groups(&self, st: &mut State, groups: &[Vec<usize>]) -> bool {
        let mut moved = false;
        for cols in groups {
            let (totals, rows) = self.group_totals(st, cols);
            let (t, v) = Self::best(&totals);
            if v > st.total + EPS {
                self.apply_group(st, cols, t, &rows, v);
                moved = true;
            }
        }
        moved
    }

    /// One pass of per-column coordinate ascent (strict improvements only).
    fn ascend_columns(&self, st: &mut State, own: &[bool]) -> bool {
        let nb = self.grid.len() + 1;
        let mut is_gt = vec![false; self.n];
        let mut acc = vec![0.0f64; nb];
        let mut moved = false;
        for c in (0..self.k).filter(|&c| own[c]) {
            for &i in &self.gt_rows[c] {
                is_gt[i as usize] = true;
            }
            acc.iter_mut().for_each(|a| *a = 0.0);
            let cur = st.th[c];
            let col = self.col(c);
            for (i, &b) in col.iter().enumerate() {
                // Bucket 0 never passes any grid threshold: no effect on the choice.
                if b == 0 {
                    continue;
                }
                let on = (b > cur) as u32;
                let gi = is_gt[i] as u32;
                let rest_p = st.p[i] - on;
                let rest_tp = st.tp[i] - on * gi;
                let g = self.g[i];
                acc[b as usize] += f1_of(rest_tp + gi, rest_p + 1, g) - f1_of(rest_tp, rest_p, g);
            }
            // gain(t) = Σ_{b>t} acc[b] - Σ_{b>cur} acc[b]
            let mut suffix = vec![0.0f64; nb + 1];
            for b in (0..nb).rev() {
                suffix[b] = suffix[b + 1] + acc[b];
            }
            let at_cur = suffix[cur as usize + 1];
            let mut best = (cur, 0.0f64);
            for t in 0..self.grid.len() {
                let gain = suffix[t + 1] - at_cur;
                if gain > best.1 + EPS {
                    best = (t as u8, gain);
                }
            }
            if best.0 != cur && best.1 > EPS {
                let t = best.0;
                for (i, &b) in col.iter().enumerate() {
                    let (was, now) = (b > cur, b > t);
                    if was != now {
                        let gi = is_gt[i] as u32;
                        if now {
                            st.p[i] += 1;
                            st.tp[i] += gi;
                        } else {
                            st.p[i] -= 1;
                            st.tp[i] -= gi;
                        }
                    }
                }
                st.th[c] = t;
                st.total += best.1;
                moved = true;
            }
            for &i in &self.gt_rows[c] {
                is_gt[i as usize] = false;
            }
        }
        moved
    }

    fn mean(&self, total: f64) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            total / self.n as f64
        }
    }
}

/// Per-row histograms of one group, kept to apply the chosen threshold.
struct GroupRows {
    hp: Vec<u32>,
    htp: Vec<u32>,
    base_p: Vec<u32>,
    base_tp: Vec<u32>,
}

/// Passes of coordinate ascent per level and per concept (stops early when nothing moves).
const ASCENT_PASSES: usize = 2;

/// Mean ImageCLEF F1 of the validation set for every global threshold of the grid (sorted
/// ascending, duplicates removed), for plots. See [`tune`] for which images count.
pub fn threshold_curve<S: Data<Elem = f32> + Sync>(
    scores: &ArrayBase<S, Ix2>,
    concepts: &[String],
    ids: &[String],
    gt: &LabelMap,
    grid: &[f32],
) -> Result<Vec<(f32, f64)>, ThresholdError> {
    let pb = Problem::new(scores, concepts, ids, gt, grid)?;
    let st = pb.state(vec![0; pb.k]);
    let all: Vec<usize> = (0..pb.k).collect();
    let (totals, _) = pb.group_totals(&st, &all);
    Ok(pb.grid.iter().zip(totals).map(|(&t, v)| (t, pb.mean(v))).collect())
}

/// Fit thresholds on a validation set to maximise the ImageCLEF F1, by grid search.
///
/// Row `i` of `scores` is image `ids[i]`, column `k` is concept `concepts[k]`. The objective is
/// the ImageCLEF F1 over the rows whose id has a non-empty GT in `gt` (other rows, and GT images
/// absent from `ids`, play no part); GT CUIs outside `concepts` still count in `|G|`, as they do
/// in the official score. Decisions are `score >= threshold` without `min_one`.
///
/// * `Global`: the grid value with the best F1 (lowest on ties).
/// * `PerLevel`: from the best global, coordinate ascent over the levels (`level_of`, given
///   upper-cased CUIs), up to two passes; a level moves only when the F1 strictly improves.
///   Every level is written to `per_level`; concepts with no level keep the global value.
/// * `PerConcept`: from the per-level result, coordinate ascent over single concepts, up to two
///   passes, keeping a change only when the F1 strictly improves; only concepts whose threshold
///   differs from what they would inherit are written to `per_concept`. So the result is never
///   below the global one on this set.
///
/// Returns the thresholds and the F1 they reach on this set (0 when no row is scored).
pub fn tune<S: Data<Elem = f32> + Sync>(
    scores: &ArrayBase<S, Ix2>,
    concepts: &[String],
    ids: &[String],
    gt: &LabelMap,
    level_of: &dyn Fn(&str) -> Option<String>,
    mode: TuneMode,
    grid: &[f32],
) -> Result<(Thresholds, f64), ThresholdError> {
    tune_where(scores, concepts, ids, gt, level_of, mode, grid, &vec![true; concepts.len()])
}

/// [`tune`], with a concept's own threshold (`PerConcept`) only where `own` says so (e.g. where
/// validation holds enough cases of it, [`enough_cases`]); the others keep their level's or the
/// global threshold, so a concept seen in one or two validation cases is not fitted to them.
#[allow(clippy::too_many_arguments)]
pub(crate) fn tune_where<S: Data<Elem = f32> + Sync>(
    scores: &ArrayBase<S, Ix2>,
    concepts: &[String],
    ids: &[String],
    gt: &LabelMap,
    level_of: &dyn Fn(&str) -> Option<String>,
    mode: TuneMode,
    grid: &[f32],
    own: &[bool],
) -> Result<(Thresholds, f64), ThresholdError> {
    if own.len() != concepts.len() {
        return Err(ThresholdError::Shape { what: "entries of the own-threshold mask", expected: concepts.len(), found: own.len() });
    }
    let pb = Problem::new(scores, concepts, ids, gt, grid)?;
    let all: Vec<usize> = (0..pb.k).collect();
    let mut st = pb.state(vec![0; pb.k]);
    // Global: evaluate every grid value at once, take the best (even if equal to the start).
    let (totals, rows) = pb.group_totals(&st, &all);
    let (t_global, v) = Problem::best(&totals);
    pb.apply_group(&mut st, &all, t_global, &rows, v);

    let levels: Vec<Option<String>> = concepts.iter().map(|c| level_of(&c.to_uppercase())).collect();
    let mut by_level: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (c, l) in levels.iter().enumerate() {
        if let Some(l) = l {
            by_level.entry(l.as_str()).or_default().push(c);
        }
    }
    let mut level_th: BTreeMap<&str, u8> = BTreeMap::new();
    if mode != TuneMode::Global {
        let groups: Vec<Vec<usize>> = by_level.values().cloned().collect();
        for _ in 0..ASCENT_PASSES {
            if !pb.ascend_groups(&mut st, &groups) {
                break;
            }
        }
        for (name, cols) in &by_level {
            level_th.insert(name, st.th[cols[0]]);
        }
    }
    if mode == TuneMode::PerConcept {
        for _ in 0..ASCENT_PASSES {
            if !pb.ascend_columns(&mut st, own) {
                break;
            }
        }
    }

    let mut th = Thresholds::new(pb.grid[t_global as usize]);
    for (name, &t) in &level_th {
        th.per_level.insert(name.to_string(), pb.grid[t as usize]);
    }
    for c in 0..pb.k {
        let inherited = levels[c].as_deref().and_then(|l| level_th.get(l)).copied().unwrap_or(t_global);
        if st.th[c] != inherited {
            th.per_concept.insert(concepts[c].clone(), pb.grid[st.th[c] as usize]);
        }
    }
    // Report the F1 counted from scratch, free of accumulated rounding.
    let exact = pb.state(st.th);
    Ok((th, pb.mean(exact.total)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::metrics::imageclef_f1;
    use ndarray::{array, Array2};

    const TOL: f64 = 1e-9;

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn gt_map(v: &[(&str, &[&str])]) -> LabelMap {
        v.iter().map(|(id, c)| (id.to_string(), c.iter().map(|s| s.to_string()).collect())).collect()
    }

    fn level(c: &str) -> Option<String> {
        match c {
            "M1" | "M2" => Some("modality".into()),
            "X1" | "X2" => Some("anatomy".into()),
            _ => None,
        }
    }

    #[test]
    fn a_concept_seen_in_few_validation_cases_keeps_its_levels_threshold() {
        // one level, two findings: R (scores 0.3 where present, 0.1 elsewhere) wants a low
        // threshold, F (0.9 where present, 0.5 elsewhere) a high one; F is in one case (c, d)
        let concepts = strs(&["F", "R"]);
        let ids = strs(&["a", "b", "c", "d"]);
        let gt = gt_map(&[("a", &["R"]), ("b", &["R"]), ("c", &["F"]), ("d", &["F"])]);
        let scores = array![[0.5f32, 0.3], [0.5, 0.3], [0.9, 0.1], [0.9, 0.1]];
        let groups: std::collections::HashMap<String, String> = [("a", "case1"), ("b", "case2"), ("c", "case3"), ("d", "case3")].iter().map(|(i, g)| (i.to_string(), g.to_string())).collect();
        assert_eq!(enough_cases(&concepts, &ids, &gt, Some(&groups), 2), vec![false, true], "F: one case of two images");
        assert_eq!(enough_cases(&concepts, &ids, &gt, None, 2), vec![true, true], "without groups an image is a case");
        let level = |_: &str| Some("finding".to_string());
        let grid = default_grid();
        // free: F gets its own threshold above 0.5 and every image is right
        let (free, f1) = tune_where(&scores, &concepts, &ids, &gt, &level, TuneMode::PerConcept, &grid, &[true, true]).unwrap();
        assert!(free.per_concept.get("F").is_some_and(|t| *t > 0.5) && (f1 - 1.0).abs() < 1e-9, "{free:?} {f1}");
        // with the floor F keeps the level's threshold (0.15): a and b also get F (F1 2/3 each)
        let own = enough_cases(&concepts, &ids, &gt, Some(&groups), 2);
        let (floored, f1) = tune_where(&scores, &concepts, &ids, &gt, &level, TuneMode::PerConcept, &grid, &own).unwrap();
        assert!(floored.per_concept.is_empty() && (f1 - 5.0 / 6.0).abs() < 1e-9, "{floored:?} {f1}");
        assert!(tune_where(&scores, &concepts, &ids, &gt, &level, TuneMode::PerConcept, &grid, &[true]).is_err(), "a mask of the wrong length");
    }

    #[test]
    fn lookup_precedence_concept_level_global() {
        let mut t = Thresholds::new(0.5);
        t.per_level.insert("modality".into(), 0.3);
        t.per_concept.insert("M2".into(), 0.9);
        assert_eq!(t.for_concept("M2", Some("modality")), 0.9);
        assert_eq!(t.for_concept("M1", Some("modality")), 0.3);
        assert_eq!(t.for_concept("X1", Some("anatomy")), 0.5);
        assert_eq!(t.for_concept("Z", None), 0.5);
    }

    #[test]
    fn decide_uses_precedence_and_min_one() {
        let concepts = strs(&["M1", "M2", "X1", "Z"]);
        let mut t = Thresholds::new(0.5);
        t.per_level.insert("modality".into(), 0.3);
        t.per_concept.insert("M2".into(), 0.9);
        let scores: Array2<f32> = array![
            [0.35, 0.85, 0.5, 0.49], // M1 (level .3) passes, M2 (.9) fails, X1 (global, >=) passes
            [0.1, 0.2, 0.4, f32::NAN],
        ];
        let d = decide(&scores, &concepts, &t, &level, false).unwrap();
        assert_eq!(d[0], ["M1", "X1"].iter().map(|s| s.to_string()).collect());
        assert!(d[1].is_empty());
        let d = decide(&scores, &concepts, &t, &level, true).unwrap();
        assert_eq!(d[1], ["X1".to_string()].into_iter().collect());
        let bad = decide(&scores, &concepts[..3], &t, &level, false).unwrap_err();
        assert!(matches!(bad, ThresholdError::Shape { expected: 3, found: 4, .. }));
    }

    #[test]
    fn save_load_round_trip_and_errors_name_the_path() {
        let dir = std::env::temp_dir().join(format!("conceptree-thr-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("thresholds.json");
        let mut t = Thresholds::new(0.25);
        t.per_level.insert("anatomy".into(), 0.4);
        t.per_concept.insert("C0000001".into(), 0.75);
        t.save(&path).unwrap();
        assert_eq!(Thresholds::load(&path).unwrap(), t);
        std::fs::write(&path, "{\"global\": 0.5}").unwrap();
        assert_eq!(Thresholds::load(&path).unwrap(), Thresholds::new(0.5));
        std::fs::write(&path, "{\"global\": \"x\"}").unwrap();
        let e = Thresholds::load(&path).unwrap_err();
        assert!(e.to_string().contains("thresholds.json"), "{e}");
        let e = Thresholds::load(&dir.join("nope.json")).unwrap_err();
        assert!(matches!(e, ThresholdError::Io { .. }) && e.to_string().contains("nope.json"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Separable toy case: positives score 0.6-0.8, negatives 0.1-0.35.
    fn toy() -> (Array2<f32>, Vec<String>, Vec<String>, LabelMap) {
        let concepts = strs(&["M1", "X1"]);
        let ids = strs(&["a", "b", "c", "d"]);
        let scores = array![[0.8, 0.1], [0.3, 0.7], [0.6, 0.65], [0.35, 0.2]];
        let gt = gt_map(&[("a", &["M1"]), ("b", &["X1"]), ("c", &["M1", "X1"]), ("d", &["Z"])]);
        (scores, concepts, ids, gt)
    }

    #[test]
    fn tune_global_finds_the_separating_threshold() {
        let (scores, concepts, ids, gt) = toy();
        let grid = [0.2, 0.3, 0.4, 0.5, 0.6, 0.7];
        let (t, f1) = tune(&scores, &concepts, &ids, &gt, &level, TuneMode::Global, &grid).unwrap();
        // 0.4 is the lowest grid value that separates: a, b, c perfect, d (GT {Z}) 0 -> 3/4.
        assert_eq!(t, Thresholds::new(0.4));
        assert!((f1 - 0.75).abs() < TOL, "{f1}");
        // The returned F1 is the official score of the decided sets.
        let d = decide(&scores, &concepts, &t, &level, false).unwrap();
        let pred: LabelMap = ids.iter().cloned().zip(d).collect();
        assert!((imageclef_f1(&gt, &pred).f1 - f1).abs() < TOL);
        // The curve, by hand: at .2 a={M1}, b={M1,X1}, c={M1,X1}, d={M1,X1} -> (1 + 2/3 + 1 + 0)/4.
        let curve = threshold_curve(&scores, &concepts, &ids, &gt, &grid).unwrap();
        assert_eq!(curve.len(), 6);
        assert!((curve[0].1 - (2.0 + 2.0 / 3.0) / 4.0).abs() < TOL, "{curve:?}");
        assert!((curve[2].1 - 0.75).abs() < TOL);
        // At .7: a={M1}, b={X1}, c={} , d={} -> 2/4.
        assert!((curve[5].1 - 0.5).abs() < TOL);
    }

    #[test]
    fn tune_per_level_and_per_concept_separate_what_global_cannot() {
        // M1 positives score ~0.8 with negatives ~0.6; X1 positives ~0.3 with negatives ~0.1.
        let concepts = strs(&["M1", "X1"]);
        let ids = strs(&["a", "b", "c", "d"]);
        let scores = array![[0.8, 0.1], [0.6, 0.3], [0.85, 0.35], [0.55, 0.05]];
        let gt = gt_map(&[("a", &["M1"]), ("b", &["X1"]), ("c", &["M1", "X1"]), ("d", &["Z"])]);
        let grid = [0.2, 0.4, 0.7];
        let (tg, fg) = tune(&scores, &concepts, &ids, &gt, &level, TuneMode::Global, &grid).unwrap();
        let (tl, fl) = tune(&scores, &concepts, &ids, &gt, &level, TuneMode::PerLevel, &grid).unwrap();
        let (tc, fc) = tune(&scores, &concepts, &ids, &gt, &|_| None, TuneMode::PerConcept, &grid).unwrap();
        assert!(fl >= fg - TOL && fc >= fg - TOL);
        assert!((fl - 0.75).abs() < TOL && (fc - 0.75).abs() < TOL, "{fg} {fl} {fc}");
        assert_eq!(tl.per_level.get("modality"), Some(&0.7));
        assert_eq!(tl.per_level.get("anatomy"), Some(&0.2));
        // Without levels, per-concept tuning records the concepts that differ from global.
        let eff = |t: &Thresholds, c: &str| t.for_concept(c, None);
        assert_eq!((eff(&tc, "M1"), eff(&tc, "X1")), (0.7, 0.2));
        assert!(tg.per_level.is_empty() && tg.per_concept.is_empty());
    }

    #[test]
    fn tune_errors() {
        let (scores, concepts, ids, gt) = toy();
        let e = tune(&scores, &concepts, &ids[..3], &gt, &level, TuneMode::Global, &[0.5]).unwrap_err();
        assert!(matches!(e, ThresholdError::Shape { what: "rows (images)", .. }));
        let e = tune(&scores, &concepts, &ids, &gt, &level, TuneMode::Global, &[]).unwrap_err();
        assert!(matches!(e, ThresholdError::BadGrid(_)));
        let e = tune(&scores, &concepts, &ids, &gt, &level, TuneMode::Global, &[f32::NAN]).unwrap_err();
        assert!(matches!(e, ThresholdError::BadGrid(_)));
        let dup = strs(&["a", "b", "a", "d"]);
        let e = tune(&scores, &concepts, &dup, &gt, &level, TuneMode::Global, &[0.5]).unwrap_err();
        assert!(matches!(e, ThresholdError::DuplicateId { first: 0, second: 2, .. }));
        let e = tune(&scores, &strs(&["M1", "m1"]), &ids, &gt, &level, TuneMode::Global, &[0.5]).unwrap_err();
        assert!(matches!(e, ThresholdError::DuplicateConcept { .. }));
        // Nothing scored: F1 0, no panic.
        let (_, f) = tune(&scores, &concepts, &ids, &LabelMap::new(), &level, TuneMode::PerConcept, &[0.5]).unwrap();
        assert_eq!(f, 0.0);
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]
            /// Per-concept >= per-level >= global on the tuning set, and each returned F1 is the
            /// official score of `decide` with the returned thresholds.
            #[test]
            fn finer_tuning_never_lowers_f1(
                raw in prop::collection::vec(0u8..10, 6 * 4),
                labels in prop::collection::vec(prop::collection::btree_set(0usize..5, 0..3), 6),
            ) {
                let concepts = strs(&["M1", "M2", "X1", "X2"]);
                let ids: Vec<String> = (0..6).map(|i| format!("i{i}")).collect();
                let scores = Array2::from_shape_vec((6, 4), raw.iter().map(|&v| v as f32 / 10.0).collect()).unwrap();
                let names = ["M1", "M2", "X1", "X2", "OTHER"];
                let gt: LabelMap = ids.iter().cloned()
                    .zip(labels.iter().map(|s| s.iter().map(|&c| names[c].to_string()).collect()))
                    .collect();
                let grid = default_grid();
                let mut prev = -1.0;
                for mode in [TuneMode::Global, TuneMode::PerLevel, TuneMode::PerConcept] {
                    let (t, f) = tune(&scores, &concepts, &ids, &gt, &level, mode, &grid).unwrap();
                    prop_assert!(f >= prev - 1e-12, "{mode:?}: {f} < {prev}");
                    let d = decide(&scores, &concepts, &t, &level, false).unwrap();
                    let pred: LabelMap = ids.iter().cloned().zip(d).collect();
                    prop_assert!((imageclef_f1(&gt, &pred).f1 - f).abs() < 1e-9);
                    prev = f;
                }
            }
        }
    }
}
