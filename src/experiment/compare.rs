//! `conceptree experiment compare`: model configurations compared paired and repeated.
//!
//! Every run of the comparison trains on one split (drawn once with `--split-seed`, whatever the
//! model seed) for the same number of epochs, once per seed; each trained model predicts the same
//! test images. Per run the table gives the official ImageCLEF F1 as mean ± sd over the seeds,
//! the paired difference to `flat` (per seed: run minus flat; mean ± sd), a 95% interval for that
//! difference from a paired bootstrap (each image's F1 difference averaged over the seeds,
//! resampled 2,000 times: whole cases with `--groups`, so the images of one case count as one
//! draw, else images; the table says which), the number of seeds it wins, per-level F1 and
//! `f1_any`, false-positive concepts per image lacking the level, and coherence.
//!
//! Runs are named by what they change: `flat` (the paper's baseline), `hier` (the hierarchical
//! model with its defaults), and variants with one component switched, listed in [`VARIANTS`].
//! Output: `compare.md`, `compare.json`, `compare.svg` (+ `.png`) and `runs/<run>/seed<s>/`.
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use super::setup::{score_on_test, train_or_reuse, write, Split, TestPart};
use crate::data::labels::{read_labels, ParseOptions};
use crate::error::Error;
pub use crate::eval::stats::{bootstrap_ci, MeanSd};
use crate::eval::stats::group_bootstrap_ci;
use crate::model::{Neck, Pooling};
use crate::ontology::{Level, Ontology};
use crate::report::plot;
use crate::train::{Calibration, ClassWeights, HeadWeights, HierSchedule, Keep, Mode, TrainConfig};

/// A configuration of the comparison: its name, what it changes, and the change.
pub struct Variant {
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
pub const VARIANTS: &[Variant] = &[
    Variant { name: "flat", changes: "flat top-K (the paper's baseline)", apply: |c| c.mode = Mode::Flat },
    Variant { name: "flat-last-epoch", changes: "flat, last epoch kept (the baseline before best-epoch keeping)", apply: |c| {
        c.mode = Mode::Flat;
        c.keep = Keep::Last;
    } },
    Variant { name: "flat-no-class-weights", changes: "flat, no class weights (every example counts the same)", apply: |c| {
        c.mode = Mode::Flat;
        c.class_weights = ClassWeights::None;
    } },
    Variant { name: "hier", changes: "hierarchical, defaults", apply: hierarchical },
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
    } },
    Variant { name: "knn", changes: "kNN retrieval over the flat run's trunk of the same seed (or --weights), top-K concepts", apply: |c| c.mode = Mode::Knn },
];

/// The runs `experiment compare` does by default: the baseline, the defaults, and each component
/// of the defaults switched off (or to its alternative) once.
pub const DEFAULT_RUNS: &str = "flat,hier,hier-no-calibration,hier-unweighted,hier-equal-heads,hier-fresh-optimizer,hier-last-epoch,hier-stepwise,hier-joint,hier-max-constraint,hier-shared-neck,hier-old";

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
    pub runs: Vec<String>,
    pub seeds: Vec<u64>,
    /// Seed of the split (the same for every run and seed).
    pub split_seed: u64,
}

/// The paired difference of a run to `flat`.
#[derive(Debug, Clone, Serialize)]
pub struct Difference {
    /// Per seed: run minus flat.
    pub per_seed: Vec<f64>,
    pub mean_sd: MeanSd,
    /// 95% paired-bootstrap interval, resampling [`Difference::resampled`].
    pub ci95: (f64, f64),
    /// What the interval resamples: "cases (G groups of N images)" with `--groups`, else "images (N)".
    pub resampled: String,
    /// Seeds on which the run beats flat.
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
    /// The best test F1 a model restricted to the run's label space could reach.
    pub ceiling: MeanSd,
    pub versus_flat: Option<Difference>,
    pub coherence: MeanSd,
    pub per_level: BTreeMap<String, LevelRow>,
    pub kept_epochs: Vec<usize>,
}

/// Refuse a training option in `given` (named as on the command line) that applies to none of
/// the runs asked for, nor to the flat run a kNN run without `--weights` takes its trunk from
/// (unknown run names are left to [`run_compare`]).
pub fn refuse_unused_options<'a>(cfg: &CompareConfig, given: impl IntoIterator<Item = &'a str>) -> Result<(), Error> {
    // an unknown run name is the first thing to say (not that an option applies to none of the runs)
    if let Some(name) = cfg.runs.iter().find(|n| !VARIANTS.iter().any(|v| v.name == n.as_str())) {
        return Err(Error::usage(format!("unknown run '{name}' (known: {})", VARIANTS.iter().map(|v| v.name).collect::<Vec<_>>().join(", "))));
    }
    let mut configs = Vec::new();
    for v in cfg.runs.iter().filter_map(|name| VARIANTS.iter().find(|v| v.name == name)) {
        let mut c = cfg.base.clone();
        (v.apply)(&mut c);
        if c.mode == Mode::Knn && c.weights.is_none() {
            configs.push(TrainConfig { mode: Mode::Flat, ..c.clone() });
        }
        configs.push(c);
    }
    super::setup::refuse_unused(&configs, &cfg.runs, given)
}

/// Run (or reuse) every run for every seed and tabulate.
pub fn run_compare(cfg: &CompareConfig, ontology: &Ontology) -> Result<Vec<CompareRow>, Error> {
    if cfg.seeds.is_empty() {
        return Err(Error::usage("--seeds must name at least one seed"));
    }
    let variants: Vec<&Variant> = cfg
        .runs
        .iter()
        .map(|name| VARIANTS.iter().find(|v| v.name == name).ok_or_else(|| Error::usage(format!("unknown run '{name}' (known: {})", VARIANTS.iter().map(|v| v.name).collect::<Vec<_>>().join(", ")))))
        .collect::<Result<_, _>>()?;
    std::fs::create_dir_all(&cfg.out).map_err(Error::write(&cfg.out))?;
    let (rows, skipped) = read_labels(&cfg.labels, ParseOptions { skip_bad: cfg.base.skip_bad, ..Default::default() })?;
    if !skipped.is_empty() {
        eprint!("{skipped}");
    }
    let test = match &cfg.test {
        Some((labels, images)) => TestPart::Given { labels, images },
        None => TestPart::HeldOut,
    };
    let split = Split::prepare(&cfg.out, &rows, &cfg.images, cfg.groups.as_deref(), cfg.split_seed, test)?;
    let groups = cfg.groups.as_deref().map(crate::data::dataset::read_groups).transpose()?;
    // per run: per seed, the test score's figures and each image's F1
    let mut scored: Vec<(&Variant, Vec<SeedScore>)> = Vec::new();
    for v in &variants {
        let mut per_seed = Vec::new();
        for &seed in &cfg.seeds {
            let mut rc = cfg.base.clone();
            (v.apply)(&mut rc);
            rc.seed = seed;
            rc.train_labels = split.train.clone();
            rc.val_labels = Some(split.val.clone());
            rc.images = cfg.images.clone();
            rc.out = cfg.out.join("runs").join(v.name).join(format!("seed{seed}"));
            if rc.mode == Mode::Knn && rc.weights.is_none() {
                // the embedding is the flat baseline's trunk of the same seed (trained if absent)
                let mut flat = rc.clone();
                flat.mode = Mode::Flat;
                flat.out = cfg.out.join("runs").join("flat").join(format!("seed{seed}"));
                train_or_reuse(&flat, ontology, &format!("flat (seed {seed}): the trunk of the kNN run"))?;
                rc.weights = Some(flat.out.join(crate::train::run_dir::MODEL));
            }
            train_or_reuse(&rc, ontology, &format!("{} (seed {seed}): {}", v.name, v.changes))?;
            let s = score_on_test(&rc.out, &split, ontology, &cfg.base)?;
            let per_image = s.per_image_f1(&split.test_truth);
            per_seed.push((seed, s.report, per_image, s.summary.kept_epoch, s.ceiling));
        }
        scored.push((v, per_seed));
    }
    let flat = scored.iter().find(|(v, _)| v.name == "flat").map(|(_, s)| s.clone());
    let rows: Vec<CompareRow> = scored
        .iter()
        .map(|(v, per_seed)| {
            let f1: Vec<f64> = per_seed.iter().map(|s| s.1.imageclef_f1).collect();
            let versus_flat = flat.as_ref().filter(|_| v.name != "flat").map(|flat| difference(per_seed, flat, groups.as_ref()));
            let mut per_level: BTreeMap<String, LevelRow> = BTreeMap::new();
            for level in Level::ALL.iter().map(|l| l.to_string()) {
                let got: Vec<_> = per_seed.iter().filter_map(|s| s.1.per_level.get(&level)).collect();
                if got.len() == per_seed.len() {
                    let col = |f: &dyn Fn(&crate::eval::metrics::LevelScore) -> f64| MeanSd::of(&got.iter().map(|l| f(l)).collect::<Vec<_>>());
                    per_level.insert(level, LevelRow { f1: col(&|l| l.f1), f1_any: col(&|l| l.f1_any), fp_per_image_without: col(&|l| l.fp_per_image_without) });
                }
            }
            CompareRow {
                run: v.name.to_string(),
                changes: v.changes.to_string(),
                seeds: per_seed.iter().map(|s| s.0).collect(),
                imageclef_f1_mean_sd: MeanSd::of(&f1),
                imageclef_f1: f1,
                ceiling: MeanSd::of(&per_seed.iter().map(|s| s.4).collect::<Vec<_>>()),
                versus_flat,
                coherence: MeanSd::of(&per_seed.iter().map(|s| s.1.coherence_rate.unwrap_or(f64::NAN)).collect::<Vec<_>>()),
                per_level,
                kept_epochs: per_seed.iter().map(|s| s.3).collect(),
            }
        })
        .collect();
    write(&cfg.out.join("compare.json"), &serde_json::to_string_pretty(&rows).expect("rows serialise"))?;
    write(&cfg.out.join("compare.md"), &compare_markdown(&rows, cfg))?;
    let svg = plot::bar_chart_scaled(
        "Test ImageCLEF F1, mean over seeds",
        "ImageCLEF F1",
        &rows.iter().map(|r| r.run.clone()).collect::<Vec<_>>(),
        &rows.iter().map(|r| r.imageclef_f1_mean_sd.mean).collect::<Vec<_>>(),
        Some(1.0),
    );
    write(&cfg.out.join("compare.svg"), &svg)?;
    plot::save_png(&svg, &cfg.out.join("compare.png"))?;
    Ok(rows)
}

/// Per seed: the seed, the test report, each image's F1, the kept epoch and the label-space ceiling.
type SeedScore = (u64, crate::eval::metrics::EvalReport, BTreeMap<String, f64>, usize, f64);

/// The paired difference of `run` to `flat` over their common seeds.
fn difference(run: &[SeedScore], flat: &[SeedScore], groups: Option<&HashMap<String, String>>) -> Difference {
    let pairs: Vec<(&SeedScore, &SeedScore)> = run.iter().filter_map(|r| flat.iter().find(|f| f.0 == r.0).map(|f| (r, f))).collect();
    let per_seed: Vec<f64> = pairs.iter().map(|(r, f)| r.1.imageclef_f1 - f.1.imageclef_f1).collect();
    // each image's F1 difference, averaged over the seeds
    let ids: Vec<&String> = pairs.first().map(|(r, _)| r.2.keys().collect()).unwrap_or_default();
    let per_image: Vec<f64> = ids.iter().map(|id| pairs.iter().map(|(r, f)| r.2[*id] - f.2.get(*id).copied().unwrap_or(0.0)).sum::<f64>() / pairs.len() as f64).collect();
    // images of one case are not independent evidence: with groups, whole cases are resampled
    // (an image missing from the groups file is a case of its own)
    let case: Vec<usize> = match groups {
        Some(g) => {
            // an image missing from the groups file is a case of its own (its key cannot be a group's name)
            let mut number: HashMap<String, usize> = HashMap::new();
            ids.iter()
                .map(|id| {
                    let next = number.len();
                    *number.entry(g.get(*id).cloned().unwrap_or_else(|| format!("\0{id}"))).or_insert(next)
                })
                .collect()
        }
        None => (0..ids.len()).collect(),
    };
    let n_cases = case.iter().max().map_or(0, |m| m + 1);
    let resampled = if groups.is_some() { format!("cases ({n_cases} groups of {} images)", ids.len()) } else { format!("images ({})", ids.len()) };
    Difference { wins: per_seed.iter().filter(|d| **d > 0.0).count(), mean_sd: MeanSd::of(&per_seed), ci95: group_bootstrap_ci(&per_image, &case, 2000, 0), resampled, per_seed }
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
        b.trunk,
        b.image_size,
        b.batch_size,
        b.lr,
        b.epochs,
        shared_non_defaults(b).iter().map(|o| format!(", {o}")).collect::<String>(),
        cfg.seeds.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", "),
        cfg.split_seed,
        test
    );
    let unit = rows.iter().find_map(|r| r.versus_flat.as_ref()).map_or("test images", |d| if d.resampled.starts_with("cases") { "cases" } else { "test images" });
    let _ = writeln!(s, "| run | what it changes | ImageCLEF F1 (mean ± sd) | ceiling | per seed | vs flat (mean ± sd) | 95% CI (paired bootstrap over {unit}) | wins | coherent |");
    let _ = writeln!(s, "|---|---|---:|---:|---|---:|---:|---:|---:|");
    for r in rows {
        let seeds = r.imageclef_f1.iter().map(|x| format!("{x:.4}")).collect::<Vec<_>>().join(" / ");
        let (vs, ci, wins) = match &r.versus_flat {
            Some(d) => (format!("{:+.4} ± {:.4}", d.mean_sd.mean, d.mean_sd.sd), format!("[{:+.4}, {:+.4}]", d.ci95.0, d.ci95.1), format!("{}/{}", d.wins, d.per_seed.len())),
            None => ("-".into(), "-".into(), "-".into()),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {:.4} ± {:.4} | {:.4} | {seeds} | {vs} | {ci} | {wins} | {:.3} |",
            r.run, r.changes, r.imageclef_f1_mean_sd.mean, r.imageclef_f1_mean_sd.sd, r.ceiling.mean, r.coherence.mean
        );
    }
    let _ = writeln!(s, "\nceiling: the test F1 of a model that predicts exactly the truth inside the run's label space (`data ceiling`).");
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
    s
}

#[cfg(test)]
mod tests {
    use super::*;

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
        for name in DEFAULT_RUNS.split(',') {
            assert!(VARIANTS.iter().any(|v| v.name == name), "{name}");
        }
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
        assert_eq!(apply("hybrid-unweighted"), TrainConfig { mode: Mode::Hybrid, calibration: Calibration::Unweighted, ..TrainConfig::default() });
        assert_eq!(apply("flat-no-class-weights"), TrainConfig { mode: Mode::Flat, class_weights: ClassWeights::None, ..TrainConfig::default() });
        assert_eq!(apply("hybrid-no-class-weights"), TrainConfig { mode: Mode::Hybrid, class_weights: ClassWeights::None, ..TrainConfig::default() });
        assert_eq!(apply("hier-balanced-model"), TrainConfig { mode: Mode::Hierarchical, class_weights: ClassWeights::BalancedModel, ..TrainConfig::default() });
        assert_eq!(apply("hybrid-balanced-model"), TrainConfig { mode: Mode::Hybrid, class_weights: ClassWeights::BalancedModel, ..TrainConfig::default() });
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
