//! `conceptree experiment compare`: model configurations compared paired and repeated.
//!
//! Every run of the comparison trains on one split (drawn once with `--split-seed`, whatever the
//! model seed), in one label space (`--concepts`, default the top 25), for the same number of
//! epochs, once per seed; each trained model predicts the same test images. A row is a run and
//! its decoding ([`decoding`]: as trained, `flat-coherent`, `+second`, `+knn`), every row's
//! thresholds and fusion weight tuned on validation alike. Per row the table gives the official
//! ImageCLEF F1 as mean ± sd over the seeds with the validation F1 beside it, the paired
//! difference to the baseline row (`--baseline`, default `flat`; per seed: row minus baseline;
//! mean ± sd), a 95% interval for that difference from a paired bootstrap (each image's F1
//! difference averaged over the seeds, resampled 2,000 times: whole cases with `--groups`, so the
//! images of one case count as one draw, else images; the table says which), the number of seeds
//! it wins, coherence and strict coherence, per-level F1 and `f1_any`, false-positive concepts per
//! image lacking the level, and per-source F1 when the groups file has a `source` column.
//!
//! Runs are named by what they change: `flat` (the paper's baseline), `hier` (the hierarchical
//! model with its defaults), and variants with one component switched, listed in [`VARIANTS`]. A
//! row may train on a trunk of its own (`flat@densenet121`, its weights from `--trunk-weights`), so
//! trunks are compared on one split, label space and budget, paired like any other rows.
//! Output: `compare.md`, `compare.json`, `compare.svg` (+ `.png`) and `runs/<run>/seed<s>/`.
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use super::decoding::{self, decode, Decoding, Outputs, Part, Tuning};
use super::setup::{train_or_reuse, write, Split, TestPart};
use crate::events::{Event, Events};
use crate::data::dataset::Dataset;
use crate::data::images::ImageDir;
use crate::data::labels::{read_labels, ParseOptions};
use crate::eval::metrics;
use crate::eval::{is_strictly_coherent, ontology_hooks};
use crate::predict::{LoadOptions, LoadedRun};
use crate::train::config::{LabelSpec, LevelHeads};
use crate::error::Error;
pub use crate::eval::stats::{bootstrap_ci, MeanSd};
use crate::eval::stats::group_bootstrap_ci;
use crate::model::{Neck, Pooling, TrunkKind};
use crate::ontology::{Level, Ontology};
use crate::report::plot;
use crate::train::{Calibration, ClassWeights, HeadWeights, HierSchedule, Keep, Mode, TrainConfig};

/// A configuration of the comparison: its name, what it changes, and the change.
pub(crate) struct Variant {
    pub name: &'static str,
    pub changes: &'static str,
    pub apply: fn(&mut TrainConfig),
}

fn hierarchical(c: &mut TrainConfig) {
    c.mode = Mode::Hierarchical;
}

fn hybrid(c: &mut TrainConfig) {
    c.mode = Mode::Hybrid;
}

/// The configurations `experiment compare` knows, each the shared options plus one change.
pub(crate) const VARIANTS: &[Variant] = &[
    Variant { name: "flat", changes: "flat top-K (the paper's baseline)", apply: |c| c.mode = Mode::Flat },
    Variant { name: "flat-last-epoch", changes: "flat, last epoch kept (the baseline before best-epoch keeping)", apply: |c| {
        c.mode = Mode::Flat;
        c.keep = Keep::Last;
    } },
    Variant { name: "flat-no-class-weights", changes: "flat, no class weights (every example counts the same)", apply: |c| {
        c.mode = Mode::Flat;
        c.class_weights = ClassWeights::None;
    } },
    Variant { name: "hier", changes: "hierarchical, defaults (joint schedule, calibrated softmax levels, concept-weighted heads)", apply: hierarchical },
    Variant { name: "hier-no-calibration", changes: "single-label levels by arg-max over concepts and none (no calibration, no abstention)", apply: |c| {
        hierarchical(c);
        c.calibration = Calibration::None;
    } },
    Variant { name: "hier-unweighted", changes: "single-label levels trained without class weights (instead of logit adjustment)", apply: |c| {
        hierarchical(c);
        c.calibration = Calibration::Unweighted;
    } },
    Variant { name: "hier-logit-adjust", changes: "single-label levels class-weighted, prior removed by logit adjustment", apply: |c| {
        hierarchical(c);
        c.calibration = Calibration::LogitAdjust;
    } },
    Variant { name: "hier-balanced-model", changes: "multi-label concepts weighted as in a flat model (balanced over the model's concepts, not the head's)", apply: |c| {
        hierarchical(c);
        c.class_weights = ClassWeights::BalancedModel;
    } },
    Variant { name: "hier-equal-heads", changes: "every head weighs the same in the loss (not every concept)", apply: |c| {
        hierarchical(c);
        c.head_weights = HeadWeights::Equal;
    } },
    Variant { name: "hier-fresh-optimizer", changes: "a fresh optimizer per stage, at least one epoch per stage", apply: |c| {
        hierarchical(c);
        c.fair_schedule = false;
    } },
    Variant { name: "hier-last-epoch", changes: "last epoch kept (not the best on validation)", apply: |c| {
        hierarchical(c);
        c.keep = Keep::Last;
    } },
    Variant { name: "hier-stepwise", changes: "stepwise schedule (one level added per stage)", apply: |c| {
        hierarchical(c);
        c.schedule = HierSchedule::Stepwise;
    } },
    Variant { name: "hier-joint", changes: "joint schedule (all levels from the start)", apply: |c| {
        hierarchical(c);
        c.schedule = HierSchedule::Joint;
    } },
    Variant { name: "hier-curriculum", changes: "curriculum schedule (levels added over the first half, then joint)", apply: |c| {
        hierarchical(c);
        c.schedule = HierSchedule::Curriculum;
    } },
    Variant { name: "hier-max-constraint", changes: "max-constraint module and MCLoss on multi-label levels", apply: |c| {
        hierarchical(c);
        c.max_constraint = true;
    } },
    Variant { name: "hier-no-max-constraint", changes: "no max-constraint module (plain BCE on multi-label levels)", apply: |c| {
        hierarchical(c);
        c.max_constraint = false;
    } },
    Variant { name: "hier-sigmoid", changes: "one sigmoid per ontology node on every level (max-constraint, MCLoss; single-valued levels keep their best concept)", apply: |c| {
        hierarchical(c);
        c.level_heads = LevelHeads::Sigmoid;
    } },
    Variant { name: "hier-sigmoid-curriculum", changes: "sigmoid level heads, curriculum schedule (levels added over the first half, then joint)", apply: |c| {
        hierarchical(c);
        c.level_heads = LevelHeads::Sigmoid;
        c.schedule = HierSchedule::Curriculum;
    } },
    Variant { name: "hier-sigmoid-conditional", changes: "sigmoid level heads; the first half of the epochs train a child only on images with its parent (conditional training, Chen et al. 2019)", apply: |c| {
        hierarchical(c);
        c.level_heads = LevelHeads::Sigmoid;
        c.conditional_epochs = c.epochs / 2;
    } },
    Variant { name: "hier-lcpn", changes: "a local classifier per parent on levels whose concepts nest: a child learned on its parents' images, its probability its sigmoid times its parent's (HiClass's LCPN)", apply: |c| {
        hierarchical(c);
        c.local_per_parent = true;
    } },
    Variant { name: "hier-softmax", changes: "a softmax head with \"none\" per single-valued level (the level heads before 2026-12-07)", apply: |c| {
        hierarchical(c);
        c.level_heads = LevelHeads::Softmax;
    } },
    Variant { name: "hier-shared-neck", changes: "one shared neck, one output layer per level", apply: |c| {
        hierarchical(c);
        c.neck = Neck::Shared;
    } },
    Variant { name: "hybrid", changes: "level heads plus a residual head over the most frequent concepts on no level", apply: hybrid },
    Variant { name: "hybrid-joint", changes: "hybrid, joint schedule (all heads from the start)", apply: |c| {
        hybrid(c);
        c.schedule = HierSchedule::Joint;
    } },
    Variant { name: "hybrid-unweighted", changes: "hybrid, single-label levels trained without class weights (instead of logit adjustment)", apply: |c| {
        hybrid(c);
        c.calibration = Calibration::Unweighted;
    } },
    Variant { name: "hybrid-no-class-weights", changes: "hybrid, no class weights (every example counts the same, as flat-no-class-weights)", apply: |c| {
        hybrid(c);
        c.class_weights = ClassWeights::None;
    } },
    Variant { name: "hybrid-balanced-model", changes: "hybrid, multi-label concepts weighted as in a flat model (balanced over the model's concepts, not the head's)", apply: |c| {
        hybrid(c);
        c.class_weights = ClassWeights::BalancedModel;
    } },
    Variant { name: "hybrid-no-noise", changes: "hybrid, noise-flagged concepts left out of the residual head", apply: |c| {
        hybrid(c);
        c.noise = crate::eval::ceiling::Noise::Drop;
    } },
    Variant { name: "hybrid-avg-max", changes: "hybrid, its residual head pools average and maximum side by side", apply: |c| {
        hybrid(c);
        c.rest_pooling = Pooling::AvgMax;
    } },
    Variant { name: "flat-avg-max", changes: "flat, its head pools average and maximum side by side", apply: |c| {
        c.mode = Mode::Flat;
        c.pooling = Pooling::AvgMax;
    } },
    Variant { name: "hier-avg-max", changes: "hierarchical, every level head pools average and maximum side by side", apply: |c| {
        hierarchical(c);
        c.pooling = Pooling::AvgMax;
    } },
    Variant { name: "hier-old", changes: "the hierarchical model before calibration, balanced losses, fair schedule and best epoch (stepwise)", apply: |c| {
        hierarchical(c);
        c.schedule = HierSchedule::Stepwise;
        c.calibration = Calibration::None;
        c.head_weights = HeadWeights::Equal;
        c.fair_schedule = false;
        c.keep = Keep::Last;
        c.max_constraint = false;
        c.neck = Neck::PerHead;
        c.single_valued = crate::model::SingleValuedRule::Argmax;
    } },
    Variant { name: "knn", changes: "kNN retrieval over the flat run's trunk of the same seed (or --weights), top-K concepts", apply: |c| c.mode = Mode::Knn },
];

/// The runs `experiment compare` does by default: the baseline, the defaults, and each component
/// of the defaults switched off (or to its alternative) once.
pub const DEFAULT_RUNS: &str = "flat,flat-coherent,flat+knn,hier,hier+second,hier+knn,hier-no-calibration,hier-unweighted,hier-equal-heads,hier-last-epoch,hier-stepwise,hier-curriculum,hier-sigmoid,hier-max-constraint,hier-shared-neck,hier-old";

/// Options of `experiment compare` (the training options shared by every run live in `base`).
#[derive(Debug, Clone)]
pub struct CompareConfig {
    pub labels: PathBuf,
    pub images: PathBuf,
    pub groups: Option<PathBuf>,
    /// A separate test set (labels and image folder); default: 15% of `labels` held out by group.
    pub test: Option<(PathBuf, PathBuf)>,
    pub out: PathBuf,
    pub base: TrainConfig,
    /// Rows: runs of [`VARIANTS`], each with an optional decoding ([`decoding::parse_row`]).
    pub runs: Vec<String>,
    pub seeds: Vec<u64>,
    /// Seed of the split (the same for every run and seed).
    pub split_seed: u64,
    /// The row every other row is paired against.
    pub baseline: String,
    /// A concept gets its own threshold (`--thresholds per-concept`) only with at least this many
    /// validation cases; the level's or the global one otherwise.
    pub threshold_min_cases: usize,
    /// Trunk weights per trunk (`--trunk-weights TRUNK=FILE`), for rows on a trunk of their own
    /// (`flat@densenet121`); `base.weights` serves the rows on `base.trunk`.
    pub trunk_weights: BTreeMap<TrunkKind, PathBuf>,
}

impl CompareConfig {
    /// The weights the rows on `trunk` start from: its `--trunk-weights`, or `--weights` for
    /// `--trunk`; none (random initialisation) otherwise.
    fn weights_of(&self, trunk: TrunkKind) -> Option<&PathBuf> {
        self.trunk_weights.get(&trunk).or(self.base.weights.as_ref().filter(|_| trunk == self.base.trunk))
    }

    /// The label space every run learns: `--concepts`, else the top `--top-k` (25).
    pub(crate) fn label_space(&self) -> LabelSpec {
        self.base.concepts.unwrap_or(LabelSpec::TopK(self.base.top_k))
    }
}

/// The paired difference of a run to the baseline row.
#[derive(Debug, Clone, Serialize)]
pub struct Difference {
    /// Per seed: run minus baseline.
    pub per_seed: Vec<f64>,
    pub mean_sd: MeanSd,
    /// 95% paired-bootstrap interval, resampling [`Difference::resampled`].
    pub ci95: (f64, f64),
    /// What the interval resamples: "cases (G groups of N images)" with `--groups`, else "images (N)".
    pub resampled: String,
    /// Seeds on which the run beats the baseline.
    pub wins: usize,
}

/// One level's figures of a run, averaged over the seeds.
#[derive(Debug, Clone, Serialize)]
pub struct LevelRow {
    pub f1: MeanSd,
    pub f1_any: MeanSd,
    pub fp_per_image_without: MeanSd,
}

/// One row of the comparison.
#[derive(Debug, Clone, Serialize)]
pub struct CompareRow {
    pub run: String,
    pub changes: String,
    pub seeds: Vec<u64>,
    pub imageclef_f1: Vec<f64>,
    pub imageclef_f1_mean_sd: MeanSd,
    /// The validation ImageCLEF F1 the row's thresholds (and fusion weight) were chosen at.
    pub val_f1: MeanSd,
    /// The best test F1 a model restricted to the run's label space could reach.
    pub ceiling: MeanSd,
    /// Paired against the baseline row (`--baseline`, default `flat`).
    pub versus_baseline: Option<Difference>,
    pub coherence: MeanSd,
    /// Coherent, and at most one chain on each single-valued level (plane, view, ...).
    pub strict_coherence: MeanSd,
    /// With `+knn`: the model's fusion weight chosen on validation, per seed.
    pub knn_weight: Vec<f64>,
    pub per_level: BTreeMap<String, LevelRow>,
    /// Test ImageCLEF F1 per source collection (the `source` column of `--groups`), mean over seeds.
    pub per_source: BTreeMap<String, MeanSd>,
    pub kept_epochs: Vec<usize>,
}

/// A row of the table: a run of [`VARIANTS`], on the comparison's `--trunk` or on a trunk of its
/// own (`flat@densenet121`), and its decoding.
#[derive(Clone, Copy)]
pub(crate) struct Row {
    pub variant: &'static Variant,
    pub trunk: Option<TrunkKind>,
    pub decoding: Decoding,
}

impl Row {
    /// The trained run behind the row (rows that differ only in decoding share it): the variant's
    /// name, then `@trunk` when the row names one. Also its folder under `runs/`.
    pub fn run_name(&self) -> String {
        match self.trunk {
            Some(t) => format!("{}@{t}", self.variant.name),
            None => self.variant.name.to_string(),
        }
    }
}

/// A row name, `RUN[@TRUNK][+DECODING...]`: its `@trunk` taken out, the rest a run and its
/// decoding ([`decoding::parse_row`]).
fn parse_row(name: &str) -> Result<Row, Error> {
    let (rest, trunk) = match name.find('@') {
        None => (name.to_string(), None),
        Some(at) => {
            let end = name[at..].find('+').map_or(name.len(), |e| at + e);
            let word = &name[at + 1..end];
            let trunk = TrunkKind::parse(word).map_err(|e| Error::usage(format!("'{name}': {e} after '@'")))?;
            (format!("{}{}", &name[..at], &name[end..]), Some(trunk))
        }
    };
    let (base, decoding) = decoding::parse_row(&rest).map_err(Error::usage)?;
    let variant = VARIANTS.iter().find(|v| v.name == base).ok_or_else(|| Error::usage(format!("unknown run '{base}' (known: {}; each may name a trunk of its own with @TRUNK, then end in +coherent, +second or +knn; flat-coherent is flat+coherent)", VARIANTS.iter().map(|v| v.name).collect::<Vec<_>>().join(", "))))?;
    Ok(Row { variant, trunk, decoding })
}

/// Each row's run, trunk and decoding, checked against [`VARIANTS`]. A row that names `--trunk`
/// (`flat@resnet50` with `--trunk resnet50`) is that trunk's row (`flat`) and shares its run; two
/// rows that are the same run and decoding are refused, naming both.
fn rows_asked(cfg: &CompareConfig) -> Result<Vec<Row>, Error> {
    let mut rows: Vec<Row> = Vec::with_capacity(cfg.runs.len());
    for name in &cfg.runs {
        let mut row = parse_row(name)?;
        if row.trunk == Some(cfg.base.trunk) {
            row.trunk = None;
        }
        if let Some(i) = rows.iter().position(|r| r.run_name() == row.run_name() && r.decoding == row.decoding) {
            let what = if cfg.runs[i] == *name { format!("names '{name}' twice") } else { format!("names one row twice: '{name}' is '{}' (--trunk is {})", cfg.runs[i], cfg.base.trunk) };
            return Err(Error::usage(format!("--runs {what}: name each row once")));
        }
        rows.push(row);
    }
    Ok(rows)
}

/// Refuse a training option in `given` (named as on the command line) that applies to none of
/// the runs asked for, nor to the flat run a kNN run without `--weights` takes its trunk from.
pub fn refuse_unused_options<'a>(cfg: &CompareConfig, given: impl IntoIterator<Item = &'a str>) -> Result<(), Error> {
    // an unknown run name is the first thing to say (not that an option applies to none of the runs)
    let rows = rows_asked(cfg)?;
    check_trunk_weights(cfg, &rows)?;
    let mut configs = Vec::new();
    for row in &rows {
        let c = row_config(cfg, row);
        if c.mode == Mode::Knn && c.weights.is_none() {
            configs.push(TrainConfig { mode: Mode::Flat, ..c.clone() });
        }
        configs.push(c);
    }
    super::setup::refuse_unused(&configs, &cfg.runs, given)
}

/// The shared options with the row's change and trunk (and that trunk's weights) applied.
fn row_config(cfg: &CompareConfig, row: &Row) -> TrainConfig {
    let mut c = cfg.base.clone();
    (row.variant.apply)(&mut c);
    c.trunk = row.trunk.unwrap_or(cfg.base.trunk);
    c.weights = cfg.weights_of(c.trunk).cloned();
    c
}

/// Rows on different trunks learn from the same kind of start: with `--weights` (which serves
/// `--trunk`), every other trunk a row names needs its own `--trunk-weights`; weights given for a
/// trunk no row trains are refused, as is naming `--trunk`'s twice.
fn check_trunk_weights(cfg: &CompareConfig, rows: &[Row]) -> Result<(), Error> {
    let trunks: BTreeSet<TrunkKind> = rows.iter().map(|r| r.trunk.unwrap_or(cfg.base.trunk)).collect();
    if let Some(t) = cfg.trunk_weights.keys().find(|t| !trunks.contains(t)) {
        return Err(Error::usage(format!("--trunk-weights {t}=...: no row trains {t} (rows: {})", cfg.runs.join(", "))));
    }
    if cfg.base.weights.is_some() && cfg.trunk_weights.contains_key(&cfg.base.trunk) {
        return Err(Error::usage(format!("--weights and --trunk-weights {}=... both give --trunk {} its weights: give one", cfg.base.trunk, cfg.base.trunk)));
    }
    let pretrained = cfg.base.weights.is_some() || !cfg.trunk_weights.is_empty();
    if let Some(t) = trunks.iter().find(|t| pretrained && cfg.weights_of(**t).is_none()) {
        return Err(Error::usage(format!("rows on {t} would train from random weights while other rows start from given weights: give --trunk-weights {t}=FILE (or no weights for any trunk)")));
    }
    Ok(())
}

/// The configuration of the run behind `row` with `seed` in the comparison `cfg` (its label space
/// the shared one).
fn run_config(cfg: &CompareConfig, split: &Split, row: &Row, seed: u64) -> TrainConfig {
    let mut rc = row_config(cfg, row);
    rc.seed = seed;
    rc.concepts = Some(cfg.label_space());
    rc.train_labels = split.train.clone();
    rc.val_labels = Some(split.val.clone());
    rc.images = cfg.images.clone();
    rc.out = cfg.out.join("runs").join(row.run_name()).join(format!("seed{seed}"));
    rc.canonical()
}

/// Run (or reuse) every run for every seed, decode each row and tabulate.
pub fn run_compare(cfg: &CompareConfig, ontology: &Ontology, events: &dyn Events) -> Result<Vec<CompareRow>, Error> {
    let asked = check_rows(cfg)?;
    // the labels are read before anything is written: a bad or missing label file leaves no folder
    let (rows, skipped) = read_labels(&cfg.labels, ParseOptions { skip_bad: cfg.base.skip_bad, ..Default::default() })?;
    std::fs::create_dir_all(&cfg.out).map_err(Error::write(&cfg.out))?;
    if !skipped.is_empty() {
        events.emit(Event::Text(skipped.to_string()));
    }
    let test = match &cfg.test {
        Some((labels, images)) => TestPart::Given { labels, images },
        None => TestPart::HeldOut,
    };
    let split = Split::prepare(&cfg.out, &rows, &cfg.images, cfg.groups.as_deref(), cfg.split_seed, test)?;
    let groups = cfg.groups.as_deref().map(crate::data::dataset::read_groups).transpose()?;
    let sources = cfg.groups.as_deref().map(|g| crate::data::dataset::read_column(g, "source")).transpose()?.flatten();
    let scoring = Scoring::new(cfg, ontology, &split, groups.as_ref(), events)?;
    // per row: per seed, the test figures and each image's F1
    let mut scored: Vec<Vec<SeedScore>> = vec![Vec::new(); asked.len()];
    let mut done: Vec<String> = Vec::new();
    for row in &asked {
        let run = row.run_name();
        if done.contains(&run) {
            continue;
        }
        let mine: Vec<usize> = (0..asked.len()).filter(|&r| asked[r].run_name() == run).collect();
        done.push(run);
        for &seed in &cfg.seeds {
            score_seed(&scoring, &asked, row, &mine, seed, &mut scored)?;
        }
    }
    let baseline = cfg.runs.iter().position(|n| *n == cfg.baseline).map(|b| scored[b].clone());
    let rows: Vec<CompareRow> = cfg
        .runs
        .iter()
        .zip(&asked)
        .zip(&scored)
        .map(|((name, row), per_seed)| {
            let versus_baseline = baseline.as_ref().filter(|_| *name != cfg.baseline).map(|b| difference(per_seed, b, groups.as_ref()));
            compare_row(name, row, per_seed, versus_baseline, sources.as_ref())
        })
        .collect();
    write_tables(cfg, &rows)?;
    Ok(rows)
}

/// The rows asked for, refused before any work when there is no seed, the baseline is not one
/// of them, or a kNN run is asked to fuse with itself.
fn check_rows(cfg: &CompareConfig) -> Result<Vec<Row>, Error> {
    if cfg.seeds.is_empty() {
        return Err(Error::usage("--seeds must name at least one seed"));
    }
    let asked = rows_asked(cfg)?;
    if !cfg.runs.contains(&cfg.baseline) {
        return Err(Error::usage(format!("--baseline {}: not one of the rows asked for ({})", cfg.baseline, cfg.runs.join(", "))));
    }
    if let Some((name, _)) = cfg.runs.iter().zip(&asked).find(|(_, r)| r.decoding.knn && r.variant.name == "knn") {
        return Err(Error::usage(format!("'{name}': a kNN run is already the votes (+knn fuses a trained model with them)")));
    }
    check_trunk_weights(cfg, &asked)?;
    Ok(asked)
}

/// What every row is scored with: the comparison, the split and its three parts, the tuning on
/// validation, and the concepts of the test truth.
struct Scoring<'a> {
    cfg: &'a CompareConfig,
    ontology: &'a Ontology,
    split: &'a Split,
    train: Part,
    val: Part,
    test: Part,
    tuning: Tuning<'a>,
    vocab: BTreeSet<String>,
    /// Where training and scoring report.
    events: &'a dyn Events,
}

impl<'a> Scoring<'a> {
    /// Reads the training and validation parts of the split (the test part the split has read and
    /// checked already).
    fn new(cfg: &'a CompareConfig, ontology: &'a Ontology, split: &'a Split, groups: Option<&'a HashMap<String, String>>, events: &'a dyn Events) -> Result<Scoring<'a>, Error> {
        let part = |labels: &std::path::Path, images: &std::path::Path| -> Result<Part, Error> {
            let (rows, _) = read_labels(labels, ParseOptions { allow_empty: true, ..Default::default() })?;
            Ok(Part::from(Dataset::open(&rows, &labels.display().to_string(), &ImageDir::open(images)?, false)?.0))
        };
        let (train, val) = (part(&split.train, &cfg.images)?, part(&split.val, &cfg.images)?);
        let test = Part {
            labels: split.test_ids.iter().map(|id| split.test_truth.get(id).cloned().unwrap_or_default()).collect(),
            ids: split.test_ids.clone(),
            paths: split.test_paths.clone(),
            truth: split.test_truth.clone(),
        };
        let tuning = Tuning { mode: cfg.base.thresholds, min_cases: cfg.threshold_min_cases, groups, knn_k: cfg.base.knn_k };
        let vocab: BTreeSet<String> = split.test_truth.values().flatten().cloned().collect();
        Ok(Scoring { cfg, ontology, split, train, val, test, tuning, vocab, events })
    }
}

/// Trains (or reuses) run `v` with `seed`, then decodes and scores on test each of `rows` (the
/// rows asked for that decode this run), adding a [`SeedScore`] to each.
fn score_seed(s: &Scoring, asked: &[Row], row: &Row, rows: &[usize], seed: u64, scored: &mut [Vec<SeedScore>]) -> Result<(), Error> {
    let cfg = s.cfg;
    let rc = train_seed(s, row, seed)?;
    let run = LoadedRun::open(&rc.out, cfg.base.device.resolve()?, &LoadOptions::default())?;
    let summary: crate::train::TrainSummary = run.run.read_json(crate::train::run_dir::SUMMARY, "train the run again")?;
    let space: BTreeSet<String> = run.model_cfg.concepts().into_iter().collect();
    let single_valued = run.ontology.single_valued_levels(&Level::ALL, &s.train.labels, Some(&space));
    let with_embeddings = rows.iter().any(|&r| asked[r].decoding.knn);
    let outputs = Outputs::compute(&run, &s.val, &s.test, &s.train, with_embeddings, cfg.base.batch_size.max(1))?;
    let truth = &s.split.test_truth;
    for &r in rows {
        let decoder = decoding::row_decoder(&run, asked[r].decoding, &single_valued);
        let d = decode(&decoder, &outputs, asked[r].decoding.knn, &s.val, &s.test, &s.train, &s.tuning)?;
        let report = metrics::evaluate(truth, &d.predictions, &ontology_hooks(&run.ontology, s.vocab.clone()));
        let strict = d.predictions.values().filter(|set| is_strictly_coherent(&run.ontology, set, &space, &single_valued)).count() as f64 / d.predictions.len().max(1) as f64;
        let per_image = truth.iter().filter_map(|(id, g)| metrics::per_image_f1(g, d.predictions.get(id).unwrap_or(&BTreeSet::new())).map(|f| (id.clone(), f))).collect();
        let ceiling = crate::eval::ceiling::ceiling(truth, &space);
        s.events.emit(Event::Scored { row: cfg.runs[r].clone(), seed, test_f1: report.imageclef_f1, val_f1: d.val_f1, model_weight: d.knn_weight });
        scored[r].push(SeedScore { seed, report, per_image, kept_epoch: summary.kept_epoch, ceiling, val_f1: d.val_f1, knn_weight: d.knn_weight, strict });
    }
    Ok(())
}

/// Trains the run behind `row` with `seed` unless it is trained already, and returns its
/// configuration; a kNN run without weights embeds with the trunk of the flat run on its trunk of
/// the same seed (trained first if absent).
fn train_seed(s: &Scoring, row: &Row, seed: u64) -> Result<TrainConfig, Error> {
    let (cfg, ontology) = (s.cfg, s.ontology);
    let v = row.variant;
    let mut rc = run_config(cfg, s.split, row, seed);
    if rc.mode == Mode::Knn && rc.weights.is_none() {
        let mut flat = rc.clone();
        flat.mode = Mode::Flat;
        let flat_row = Row { variant: VARIANTS.iter().find(|v| v.name == "flat").expect("flat is a variant"), trunk: row.trunk, decoding: Decoding::default() };
        flat.out = cfg.out.join("runs").join(flat_row.run_name()).join(format!("seed{seed}"));
        train_or_reuse(&flat, ontology, &format!("flat (seed {seed}): the trunk of the kNN run"), s.events)?;
        rc.weights = Some(flat.out.join(crate::train::run_dir::MODEL));
    }
    train_or_reuse(&rc, ontology, &format!("{} (seed {seed}): {}", row.run_name(), v.changes), s.events)?;
    Ok(rc)
}

/// One row of the table from its seeds' scores.
fn compare_row(name: &str, row: &Row, per_seed: &[SeedScore], versus_baseline: Option<Difference>, sources: Option<&HashMap<String, String>>) -> CompareRow {
    let f1: Vec<f64> = per_seed.iter().map(|s| s.report.imageclef_f1).collect();
    let mut changes = row.variant.changes.to_string();
    if let Some(t) = row.trunk {
        changes.push_str(&format!("; on the {t} trunk"));
    }
    let extra = row.decoding.describe();
    if !extra.is_empty() {
        changes.push_str("; ");
        changes.push_str(&extra);
    }
    CompareRow {
        run: name.to_string(),
        changes,
        seeds: per_seed.iter().map(|s| s.seed).collect(),
        imageclef_f1_mean_sd: MeanSd::of(&f1),
        imageclef_f1: f1,
        val_f1: MeanSd::of(&per_seed.iter().map(|s| s.val_f1).collect::<Vec<_>>()),
        ceiling: MeanSd::of(&per_seed.iter().map(|s| s.ceiling).collect::<Vec<_>>()),
        versus_baseline,
        coherence: MeanSd::of(&per_seed.iter().map(|s| s.report.coherence_rate.unwrap_or(f64::NAN)).collect::<Vec<_>>()),
        strict_coherence: MeanSd::of(&per_seed.iter().map(|s| s.strict).collect::<Vec<_>>()),
        knn_weight: per_seed.iter().filter_map(|s| s.knn_weight).collect(),
        per_level: per_level(per_seed),
        per_source: per_source(per_seed, sources),
        kept_epochs: per_seed.iter().map(|s| s.kept_epoch).collect(),
    }
}

/// Per level, mean ± sd over the seeds; a level only when every seed has it.
fn per_level(per_seed: &[SeedScore]) -> BTreeMap<String, LevelRow> {
    let mut per_level: BTreeMap<String, LevelRow> = BTreeMap::new();
    for level in Level::ALL.iter().map(|l| l.to_string()) {
        let got: Vec<_> = per_seed.iter().filter_map(|s| s.report.per_level.get(&level)).collect();
        if got.len() == per_seed.len() {
            let col = |f: &dyn Fn(&crate::eval::metrics::LevelScore) -> f64| MeanSd::of(&got.iter().map(|l| f(l)).collect::<Vec<_>>());
            per_level.insert(level, LevelRow { f1: col(&|l| l.f1), f1_any: col(&|l| l.f1_any), fp_per_image_without: col(&|l| l.fp_per_image_without) });
        }
    }
    per_level
}

/// Per source collection (image id to source), the mean test F1 of its images, mean ± sd over
/// the seeds that have any of its images.
fn per_source(per_seed: &[SeedScore], sources: Option<&HashMap<String, String>>) -> BTreeMap<String, MeanSd> {
    let mut per_source: BTreeMap<String, MeanSd> = BTreeMap::new();
    for source in sources.iter().flat_map(|s| s.values()).collect::<BTreeSet<_>>() {
        let of_seed = |s: &SeedScore| {
            let f: Vec<f64> = s.per_image.iter().filter(|(id, _)| sources.and_then(|m| m.get(*id)) == Some(source)).map(|(_, f)| *f).collect();
            (!f.is_empty()).then(|| f.iter().sum::<f64>() / f.len() as f64)
        };
        let got: Vec<f64> = per_seed.iter().filter_map(of_seed).collect();
        if !got.is_empty() {
            per_source.insert(source.clone(), MeanSd::of(&got));
        }
    }
    per_source
}

/// `compare.json`, `compare.md` and the bar chart (`compare.svg`, `compare.png`).
fn write_tables(cfg: &CompareConfig, rows: &[CompareRow]) -> Result<(), Error> {
    write(&cfg.out.join("compare.json"), &serde_json::to_string_pretty(&rows).expect("rows serialise"))?;
    write(&cfg.out.join("compare.md"), &compare_markdown(rows, cfg))?;
    let svg = plot::bar_chart_scaled(
        "Test ImageCLEF F1, mean over seeds",
        "ImageCLEF F1",
        &rows.iter().map(|r| r.run.clone()).collect::<Vec<_>>(),
        &rows.iter().map(|r| r.imageclef_f1_mean_sd.mean).collect::<Vec<_>>(),
        Some(1.0),
    );
    write(&cfg.out.join("compare.svg"), &svg)?;
    plot::save_png(&svg, &cfg.out.join("compare.png"))?;
    Ok(())
}

/// One seed of one row: the test report, each image's F1, and what was chosen on validation.
#[derive(Debug, Clone)]
struct SeedScore {
    seed: u64,
    report: crate::eval::metrics::EvalReport,
    per_image: BTreeMap<String, f64>,
    kept_epoch: usize,
    /// The label space's ceiling on the test images.
    ceiling: f64,
    val_f1: f64,
    knn_weight: Option<f64>,
    /// Share of test images strictly coherent.
    strict: f64,
}

/// The paired difference of `run` to `baseline` over their common seeds.
fn difference(run: &[SeedScore], baseline: &[SeedScore], groups: Option<&HashMap<String, String>>) -> Difference {
    let pairs: Vec<(&SeedScore, &SeedScore)> = run.iter().filter_map(|r| baseline.iter().find(|f| f.seed == r.seed).map(|f| (r, f))).collect();
    let per_seed: Vec<f64> = pairs.iter().map(|(r, f)| r.report.imageclef_f1 - f.report.imageclef_f1).collect();
    // each image's F1 difference, averaged over the seeds
    let ids: Vec<&String> = pairs.first().map(|(r, _)| r.per_image.keys().collect()).unwrap_or_default();
    let per_image: Vec<f64> = ids.iter().map(|id| pairs.iter().map(|(r, f)| r.per_image[*id] - f.per_image.get(*id).copied().unwrap_or(0.0)).sum::<f64>() / pairs.len() as f64).collect();
    let (case, n_cases) = case_numbers(&ids, groups);
    let resampled = if groups.is_some() { format!("cases ({n_cases} groups of {} images)", ids.len()) } else { format!("images ({})", ids.len()) };
    Difference { wins: per_seed.iter().filter(|d| **d > 0.0).count(), mean_sd: MeanSd::of(&per_seed), ci95: group_bootstrap_ci(&per_image, &case, 2000, 0), resampled, per_seed }
}

/// Each image's case number and the number of cases: images of one group share one; without
/// groups, and for an image missing from them, an image is a case of its own
/// ([`crate::data::dataset::group_members`]).
fn case_numbers(ids: &[&String], groups: Option<&HashMap<String, String>>) -> (Vec<usize>, usize) {
    let members = crate::data::dataset::group_members(ids, groups);
    let mut case = vec![0; ids.len()];
    for (c, m) in members.iter().enumerate() {
        for &i in m {
            case[i] = c;
        }
    }
    (case, members.len())
}

/// Options every run of the comparison shares that differ from the training defaults (those a
/// reader of the table would otherwise assume), as command-line options.
fn shared_non_defaults(b: &TrainConfig) -> Vec<String> {
    let d = TrainConfig::default();
    let mut out = Vec::new();
    // `--flag value` where a value option differs from its default
    fn differs<T: clap::ValueEnum + PartialEq>(out: &mut Vec<String>, flag: &str, value: &T, default: &T) {
        if value != default {
            out.push(format!("{flag} {}", value.to_possible_value().map_or_else(String::new, |v| v.get_name().to_string())));
        }
    }
    differs(&mut out, "--class-weights", &b.class_weights, &d.class_weights);
    differs(&mut out, "--head-layers", &b.head_layers, &d.head_layers);
    differs(&mut out, "--thresholds", &b.thresholds, &d.thresholds);
    if b.augment.is_none() {
        out.push("--no-augment".into());
    }
    if b.amp {
        out.push("--amp".into());
    }
    out
}

/// `--trunk`, and the trunks rows name of their own, each with where its weights come from.
fn trunks_line(cfg: &CompareConfig) -> String {
    let rows = rows_asked(cfg).unwrap_or_default();
    let trunks: BTreeSet<TrunkKind> = rows.iter().map(|r| r.trunk.unwrap_or(cfg.base.trunk)).collect();
    let start = |t: &TrunkKind| match cfg.weights_of(*t) {
        Some(w) => format!("{t} (weights {})", w.display()),
        None => format!("{t} (random initialisation)"),
    };
    if trunks.len() <= 1 && cfg.trunk_weights.is_empty() && cfg.base.weights.is_none() {
        return cfg.base.trunk.to_string();
    }
    let all: Vec<String> = trunks.iter().map(start).collect();
    format!("{} (rows named RUN@TRUNK train on their own)", all.join(", "))
}

/// The comparison as a Markdown table (and a per-level table).
pub fn compare_markdown(rows: &[CompareRow], cfg: &CompareConfig) -> String {
    let b = &cfg.base;
    let mut s = String::new();
    let test = match &cfg.test {
        Some((l, _)) => format!("the test set {}", l.display()),
        None => "15% of the images held out by group".to_string(),
    };
    let _ = writeln!(
        s,
        "Paired comparison: trunk {}, {} px, batch {}, lr {:.0e}, {} epochs per run{}; seeds {}; one split (split seed {}), test: {}.\n",
        trunks_line(cfg),
        b.image_size,
        b.batch_size,
        b.lr,
        b.epochs,
        shared_non_defaults(b).iter().map(|o| format!(", {o}")).collect::<String>(),
        cfg.seeds.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", "),
        cfg.split_seed,
        test
    );
    let _ = writeln!(
        s,
        "Every run learns one label space: `--concepts {}`. Every row's thresholds (`--thresholds {}`; a concept's own only with at least {} validation cases) and kNN fusion weight are tuned on the validation images only. Rows are paired against `{}`.\n",
        cfg.label_space(),
        clap::ValueEnum::to_possible_value(&b.thresholds).map_or_else(String::new, |v| v.get_name().to_string()),
        cfg.threshold_min_cases,
        cfg.baseline
    );
    let unit = rows.iter().find_map(|r| r.versus_baseline.as_ref()).map_or("test images", |d| if d.resampled.starts_with("cases") { "cases" } else { "test images" });
    let _ = writeln!(s, "| run | what it changes | test ImageCLEF F1 (mean ± sd) | validation F1 | ceiling | per seed | vs {} (mean ± sd) | 95% CI (paired bootstrap over {unit}) | wins | coherent | strictly coherent |", cfg.baseline);
    let _ = writeln!(s, "|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|");
    for r in rows {
        let seeds = r.imageclef_f1.iter().map(|x| format!("{x:.4}")).collect::<Vec<_>>().join(" / ");
        let (vs, ci, wins) = match &r.versus_baseline {
            Some(d) => (format!("{:+.4} ± {:.4}", d.mean_sd.mean, d.mean_sd.sd), format!("[{:+.4}, {:+.4}]", d.ci95.0, d.ci95.1), format!("{}/{}", d.wins, d.per_seed.len())),
            None => ("-".into(), "-".into(), "-".into()),
        };
        let knn = if r.knn_weight.is_empty() { String::new() } else { format!(" (model weight {})", r.knn_weight.iter().map(|a| format!("{a:.1}")).collect::<Vec<_>>().join(" / ")) };
        let _ = writeln!(
            s,
            "| {} | {}{knn} | {:.4} ± {:.4} | {:.4} | {:.4} | {seeds} | {vs} | {ci} | {wins} | {:.3} | {:.3} |",
            r.run, r.changes, r.imageclef_f1_mean_sd.mean, r.imageclef_f1_mean_sd.sd, r.val_f1.mean, r.ceiling.mean, r.coherence.mean, r.strict_coherence.mean
        );
    }
    let _ = writeln!(s, "\nceiling: the test F1 of a model that predicts exactly the truth inside the run's label space (`data ceiling`). Strictly coherent: coherent, and at most one concept (chain) on each single-valued level (no training image holds two of its concepts).");
    let levels: Vec<String> = Level::ALL.iter().map(|l| l.to_string()).filter(|l| rows.iter().any(|r| r.per_level.contains_key(l))).collect();
    let _ = writeln!(s, "\nPer level (mean over seeds): F1 on images whose truth has the level / F1 on images where truth or prediction has it / extra concepts per image lacking it.\n");
    let _ = writeln!(s, "| run | {} |", levels.join(" | "));
    let _ = writeln!(s, "|---|{}", "---:|".repeat(levels.len()));
    for r in rows {
        let cells: Vec<String> = levels
            .iter()
            .map(|l| r.per_level.get(l).map_or("-".into(), |v| format!("{:.3} / {:.3} / {:.3}", v.f1.mean, v.f1_any.mean, v.fp_per_image_without.mean)))
            .collect();
        let _ = writeln!(s, "| {} | {} |", r.run, cells.join(" | "));
    }
    let sources: BTreeSet<&String> = rows.iter().flat_map(|r| r.per_source.keys()).collect();
    if !sources.is_empty() {
        let _ = writeln!(s, "\nPer source collection (the `source` column of the groups file; test images with a non-empty truth): mean ImageCLEF F1 over seeds.\n");
        let _ = writeln!(s, "| run | {} |", sources.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(" | "));
        let _ = writeln!(s, "|---|{}", "---:|".repeat(sources.len()));
        for r in rows {
            let cells: Vec<String> = sources.iter().map(|x| r.per_source.get(*x).map_or("-".into(), |v| format!("{:.3}", v.mean))).collect();
            let _ = writeln!(s, "| {} | {} |", r.run, cells.join(" | "));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_of_one_group_are_one_case_and_an_image_without_a_group_is_its_own() {
        let ids: Vec<String> = ["a", "b", "c", "g1"].iter().map(|s| s.to_string()).collect();
        let refs: Vec<&String> = ids.iter().collect();
        // "g1" is also the name of a's and b's group: the image g1 is still a case of its own
        let groups: HashMap<String, String> = [("a", "g1"), ("b", "g1"), ("c", "g2")].iter().map(|(i, g)| (i.to_string(), g.to_string())).collect();
        let (case, n) = case_numbers(&refs, Some(&groups));
        assert_eq!(n, 3);
        assert_eq!(case[0], case[1]);
        assert!(case[2] != case[0] && case[3] != case[0] && case[3] != case[2], "{case:?}");
        let (case, n) = case_numbers(&refs, None);
        assert_eq!((case, n), (vec![0, 1, 2, 3], 4));
    }

    #[test]
    fn mean_sd_and_bootstrap_by_hand() {
        let m = MeanSd::of(&[0.80, 0.82, 0.84]);
        assert!((m.mean - 0.82).abs() < 1e-12 && (m.sd - 0.02).abs() < 1e-12, "{m:?}");
        assert_eq!(MeanSd::of(&[0.5]).sd, 0.0);
        // a constant difference has a degenerate interval; a symmetric one contains 0
        let (lo, hi) = bootstrap_ci(&[0.1; 50], 500, 1);
        assert!((lo - 0.1).abs() < 1e-12 && (hi - 0.1).abs() < 1e-12, "({lo}, {hi})");
        let sym: Vec<f64> = (0..200).map(|i| if i % 2 == 0 { 0.2 } else { -0.2 }).collect();
        let (lo, hi) = bootstrap_ci(&sym, 2000, 1);
        assert!(lo < 0.0 && hi > 0.0 && lo > -0.1 && hi < 0.1, "({lo}, {hi})");
        assert_eq!(bootstrap_ci(&sym, 2000, 1), (lo, hi), "seeded");
    }

    #[test]
    fn variants_have_unique_names_and_change_what_they_say() {
        let mut names: Vec<&str> = VARIANTS.iter().map(|v| v.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), VARIANTS.len());
        let defaults = CompareConfig {
            labels: PathBuf::new(),
            images: PathBuf::new(),
            groups: None,
            test: None,
            out: PathBuf::new(),
            base: TrainConfig::default(),
            runs: DEFAULT_RUNS.split(',').map(String::from).collect(),
            seeds: vec![1],
            split_seed: 42,
            baseline: "flat".into(),
            threshold_min_cases: 3,
            trunk_weights: BTreeMap::new(),
        };
        assert!(rows_asked(&defaults).is_ok(), "every default row is a run and its decoding, each once");
        let apply = |name: &str| {
            let mut c = TrainConfig::default();
            (VARIANTS.iter().find(|v| v.name == name).unwrap().apply)(&mut c);
            c
        };
        assert_eq!(apply("flat").mode, Mode::Flat);
        assert_eq!(apply("hier-no-calibration").calibration, Calibration::None);
        let old = apply("hier-old");
        assert_eq!((old.schedule, old.head_weights, old.fair_schedule, old.keep), (HierSchedule::Stepwise, HeadWeights::Equal, false, Keep::Last));
        // every hierarchical variant differs from the defaults in exactly what it names
        assert_eq!(apply("hier-last-epoch"), TrainConfig { mode: Mode::Hierarchical, keep: Keep::Last, ..TrainConfig::default() });
        assert_eq!(apply("hybrid-joint"), TrainConfig { mode: Mode::Hybrid, schedule: HierSchedule::Joint, ..TrainConfig::default() });
        assert_eq!(apply("hier-curriculum"), TrainConfig { mode: Mode::Hierarchical, schedule: HierSchedule::Curriculum, ..TrainConfig::default() });
        assert_eq!(apply("hier-sigmoid"), TrainConfig { mode: Mode::Hierarchical, level_heads: LevelHeads::Sigmoid, ..TrainConfig::default() });
        assert_eq!(apply("hybrid-unweighted"), TrainConfig { mode: Mode::Hybrid, calibration: Calibration::Unweighted, ..TrainConfig::default() });
        assert_eq!(apply("flat-no-class-weights"), TrainConfig { mode: Mode::Flat, class_weights: ClassWeights::None, ..TrainConfig::default() });
        assert_eq!(apply("hybrid-no-class-weights"), TrainConfig { mode: Mode::Hybrid, class_weights: ClassWeights::None, ..TrainConfig::default() });
        assert_eq!(apply("hier-balanced-model"), TrainConfig { mode: Mode::Hierarchical, class_weights: ClassWeights::BalancedModel, ..TrainConfig::default() });
        assert_eq!(apply("hybrid-balanced-model"), TrainConfig { mode: Mode::Hybrid, class_weights: ClassWeights::BalancedModel, ..TrainConfig::default() });
    }

    /// `RUN@TRUNK+DECODING`: the trunk is taken out wherever the decodings start, rows that differ
    /// only in decoding share a run, and a row's trunk (and its weights) reach its configuration.
    #[test]
    fn a_row_may_name_its_own_trunk() {
        let r = parse_row("flat@densenet121+knn").unwrap();
        assert_eq!((r.variant.name, r.trunk, r.decoding.knn, r.run_name()), ("flat", Some(TrunkKind::Densenet121), true, "flat@densenet121".to_string()));
        let r = parse_row("flat-coherent@efficientnet_b0").unwrap();
        assert_eq!((r.variant.name, r.trunk, r.decoding.coherent), ("flat", Some(TrunkKind::EfficientnetB0), true));
        let r = parse_row("knn@resnet50").unwrap();
        assert_eq!((r.run_name(), r.decoding), ("knn@resnet50".to_string(), Decoding::default()));
        assert_eq!(parse_row("hier+second").unwrap().run_name(), "hier");
        let err = parse_row("flat@vgg16+knn").err().unwrap().to_string();
        assert!(err.contains("unknown trunk 'vgg16'") && err.contains("densenet121"), "{err}");

        let mut cfg = CompareConfig {
            labels: PathBuf::new(),
            images: PathBuf::new(),
            groups: None,
            test: None,
            out: PathBuf::from("cmp"),
            base: TrainConfig { trunk: TrunkKind::Resnet50, ..TrainConfig::default() },
            runs: vec!["flat".into(), "flat@densenet121+knn".into()],
            seeds: vec![1],
            split_seed: 42,
            baseline: "flat".into(),
            threshold_min_cases: 3,
            trunk_weights: BTreeMap::new(),
        };
        let rows = rows_asked(&cfg).unwrap();
        assert_eq!((row_config(&cfg, &rows[0]).trunk, row_config(&cfg, &rows[1]).trunk), (TrunkKind::Resnet50, TrunkKind::Densenet121));
        assert!(check_trunk_weights(&cfg, &rows).is_ok(), "no weights for any trunk: both from random");
        // weights for resnet50 only: densenet121 would start from random, which is refused
        cfg.base.weights = Some(PathBuf::from("r50.safetensors"));
        let err = check_trunk_weights(&cfg, &rows).err().unwrap().to_string();
        assert!(err.contains("densenet121") && err.contains("--trunk-weights"), "{err}");
        cfg.trunk_weights.insert(TrunkKind::Densenet121, PathBuf::from("d121.safetensors"));
        assert!(check_trunk_weights(&cfg, &rows).is_ok());
        assert_eq!(row_config(&cfg, &rows[0]).weights, Some(PathBuf::from("r50.safetensors")));
        assert_eq!(row_config(&cfg, &rows[1]).weights, Some(PathBuf::from("d121.safetensors")));
        // weights for a trunk no row trains, or --trunk's weights given twice
        cfg.trunk_weights.insert(TrunkKind::ConvnextTiny, PathBuf::from("c.safetensors"));
        assert!(check_trunk_weights(&cfg, &rows).err().unwrap().to_string().contains("no row trains convnext_tiny"));
        cfg.trunk_weights.remove(&TrunkKind::ConvnextTiny);
        cfg.trunk_weights.insert(TrunkKind::Resnet50, PathBuf::from("r50b.safetensors"));
        assert!(check_trunk_weights(&cfg, &rows).err().unwrap().to_string().contains("give one"));

        // a row naming --trunk is that trunk's row and shares its run; the same row twice is refused
        cfg.trunk_weights.clear();
        cfg.runs = vec!["flat@resnet50+knn".into(), "flat@densenet121".into()];
        let rows = rows_asked(&cfg).unwrap();
        assert_eq!((rows[0].run_name(), rows[0].trunk, rows[1].run_name()), ("flat".to_string(), None, "flat@densenet121".to_string()));
        cfg.runs = vec!["flat+knn".into(), "flat@resnet50+knn".into()];
        let err = rows_asked(&cfg).err().unwrap().to_string();
        assert!(err.contains("'flat@resnet50+knn' is 'flat+knn' (--trunk is resnet50)"), "{err}");
        cfg.runs = vec!["hier+knn+second".into(), "hier+second+knn".into()];
        assert!(rows_asked(&cfg).err().unwrap().to_string().contains("twice"));
        cfg.runs = vec!["flat".into(), "flat+knn".into(), "flat@resnet50+coherent".into()];
        assert_eq!(rows_asked(&cfg).unwrap().len(), 3, "rows that differ in decoding share a run and are not duplicates");
    }

    #[test]
    fn the_table_names_the_shared_options_that_differ_from_the_defaults() {
        let mut b = TrainConfig::default();
        assert!(shared_non_defaults(&b).is_empty());
        b.head_layers = crate::model::HeadLayers::Linear;
        b.class_weights = crate::train::ClassWeights::None;
        b.augment = None;
        b.thresholds = crate::eval::thresholds::TuneMode::PerConcept;
        assert_eq!(shared_non_defaults(&b), ["--class-weights none", "--head-layers linear", "--thresholds per-concept", "--no-augment"]);
    }
}
