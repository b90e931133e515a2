//! `conceptree experiment paper`: the seed paper's study in one command, plus the hierarchical
//! follow-up, on one split and one budget.
//!
//! 1. Dataset statistics (the paper's Table 3 and Figure 1).
//! 2. A seeded three-way split by group: train 70% / validation 15% (threshold tuning) / test 15%.
//! 3. Runs: flat top-K full fine-tuning (paper run 1), flat top-K layerwise (paper run 2),
//!    hierarchical joint and hierarchical stepwise (the proposed follow-up), same trunk, image
//!    size, batch size, learning rate and epochs.
//! 4. Every run predicts the test part and is scored: ImageCLEF F1, per-level F1, hierarchical
//!    F1, coherence. The paper's Table 4, extended, is written as Markdown and JSON.
//!
//! Resumable: a finished run (its `summary.json` exists) is not trained again, an interrupted one
//! continues from its checkpoint, so rerunning the same command completes the experiment.
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::data::dataset::{read_groups, split_train_val, Dataset};
use crate::data::images::ImageDir;
use crate::data::labels::{read_labels, write_clef2019, LabelRow, ParseOptions};
use crate::data::stats::dataset_stats;
use crate::error::Error;
use crate::eval::{metrics, ontology_hooks};
use crate::ontology::{Level, Ontology};
use crate::predict::{LoadOptions, LoadedRun};
use crate::train::{self, run_dir, HierSchedule, Mode, Strategy, TrainConfig};

/// Options of the experiment (the training options shared by every run live in `base`).
#[derive(Debug, Clone)]
pub struct ExperimentConfig {
    pub labels: PathBuf,
    pub images: PathBuf,
    pub out: PathBuf,
    pub groups: Option<PathBuf>,
    /// Shared training options: trunk, image size, batch, lr, epochs, device, seed, levels, top_k...
    pub base: TrainConfig,
    /// Which runs to do (default: all four).
    pub runs: Vec<String>,
}

/// One row of the results table.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    pub run: String,
    pub description: String,
    pub imageclef_f1: f64,
    pub per_level_f1: BTreeMap<String, f64>,
    pub hierarchical_f1: Option<f64>,
    pub coherence_rate: Option<f64>,
    pub val_f1_tuned: f64,
    pub train_seconds: f64,
    pub n_test: usize,
}

/// The runs the experiment knows, in table order (the default list leaves out `hier_joint_cond`).
pub const RUNS: [(&str, &str); 5] = [
    ("flat_full", "flat top-K, full fine-tuning (paper run 1)"),
    ("flat_layerwise", "flat top-K, layerwise fine-tuning (paper run 2)"),
    ("hier_joint", "hierarchical, all levels jointly"),
    ("hier_joint_cond", "hierarchical, jointly, heads conditioned on upper levels"),
    ("hier_stepwise", "hierarchical, stepwise by level (proposed)"),
];

fn run_config(name: &str, base: &TrainConfig) -> Option<TrainConfig> {
    let mut c = base.clone();
    match name {
        "flat_full" => {
            c.mode = Mode::Flat;
            c.strategy = Strategy::Full;
        }
        "flat_layerwise" => {
            c.mode = Mode::Flat;
            c.strategy = Strategy::Layerwise;
        }
        "hier_joint" | "hier_joint_cond" => {
            c.mode = Mode::Hierarchical;
            c.schedule = HierSchedule::Joint;
            c.strategy = Strategy::Full;
            c.condition_on_previous = name == "hier_joint_cond";
        }
        "hier_stepwise" => {
            c.mode = Mode::Hierarchical;
            c.schedule = HierSchedule::Stepwise;
            c.strategy = Strategy::Full;
        }
        _ => return None,
    }
    Some(c)
}

fn write(path: &Path, text: &str) -> Result<(), Error> {
    std::fs::write(path, text).map_err(Error::write(path))
}

fn subset_rows(rows: &[LabelRow], idx: &[usize]) -> Vec<(String, Vec<String>)> {
    idx.iter().map(|&i| (rows[i].id.clone(), rows[i].cuis.clone())).collect()
}

/// Run the whole experiment; returns the results table rows.
pub fn run_paper(cfg: &ExperimentConfig, ontology: &Ontology) -> Result<Vec<RunResult>, Error> {
    let out = &cfg.out;
    std::fs::create_dir_all(out.join("runs")).map_err(Error::write(out))?;
    let (rows, skipped) = read_labels(&cfg.labels, ParseOptions { skip_bad: cfg.base.skip_bad, ..Default::default() })?;
    if !skipped.is_empty() {
        eprint!("{skipped}");
    }

    // ---- 1. dataset statistics (Table 3, Figure 1)
    let describe = |c: &str| (ontology.get(c).map(|x| x.name.clone()), ontology.level_of(c).map(|l| l.to_string()));
    let stats = dataset_stats(&rows, 25, 1000, &describe);
    write(&out.join("table3.txt"), &stats.to_string())?;
    write(&out.join("table3.json"), &serde_json::to_string_pretty(&stats).expect("serialisable"))?;
    crate::report::figures::top_concepts(&stats, "Top concepts by number of images", &out.join("figure1"))?;

    // ---- 2. split: train / val / test by group, seeded, written once and reused on resume
    let split_dir = out.join("split");
    let (train_f, val_f, test_f) = (split_dir.join("train.csv"), split_dir.join("val.csv"), split_dir.join("test.csv"));
    if !test_f.exists() {
        std::fs::create_dir_all(&split_dir).map_err(Error::write(&split_dir))?;
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let groups = cfg.groups.as_deref().map(read_groups).transpose()?;
        let (rest, test) = split_train_val(&ids, 0.15, cfg.base.seed, groups.as_ref());
        let rest_ids: Vec<String> = rest.iter().map(|&i| ids[i].clone()).collect();
        let (tr, va) = split_train_val(&rest_ids, 0.15 / 0.85, cfg.base.seed.wrapping_add(1), groups.as_ref());
        let tr: Vec<usize> = tr.iter().map(|&i| rest[i]).collect();
        let va: Vec<usize> = va.iter().map(|&i| rest[i]).collect();
        for (path, idx) in [(&train_f, &tr), (&val_f, &va), (&test_f, &test)] {
            write_clef2019(path, subset_rows(&rows, idx)).map_err(Error::write(path))?;
        }
    }
    let (test_rows, _) = read_labels(&test_f, ParseOptions::default())?;
    let test_gt: BTreeMap<String, BTreeSet<String>> = test_rows.iter().map(|r| (r.id.clone(), r.cuis.iter().cloned().collect())).collect();
    let (test_ds, _) = Dataset::open(&test_rows, &test_f.display().to_string(), &ImageDir::open(&cfg.images)?, false)?;
    let test_paths: Vec<PathBuf> = test_ds.paths;

    // ---- 3 + 4. runs and their test scores
    let mut results = Vec::new();
    for name in &cfg.runs {
        let Some(mut rc) = run_config(name, &cfg.base) else {
            return Err(Error::usage(format!("unknown run '{name}' (known: {})", RUNS.map(|r| r.0).join(", "))));
        };
        let description = RUNS.iter().find(|r| r.0 == name).map(|r| r.1).unwrap_or("").to_string();
        rc.train_labels = train_f.clone();
        rc.val_labels = Some(val_f.clone());
        rc.images = cfg.images.clone();
        rc.out = out.join("runs").join(name);
        if rc.out.join(run_dir::SUMMARY).exists() {
            eprintln!("== {name}: already trained, reusing {}", rc.out.display());
        } else if rc.out.join(run_dir::CONFIG).exists() {
            eprintln!("== {name}: resuming");
            train::resume(&rc.out, ontology)?;
        } else {
            eprintln!("== {name}: {description}");
            train::train(&rc, ontology, false)?;
        }
        let run = LoadedRun::open(&rc.out, cfg.base.device.resolve()?, &LoadOptions::default())?;
        let summary: train::TrainSummary = run.run.read_json(run_dir::SUMMARY, "train the run again")?;
        let (_, sets) = run.predict(&test_paths, cfg.base.batch_size.max(1))?;
        let pred: BTreeMap<String, BTreeSet<String>> = test_rows.iter().map(|r| r.id.clone()).zip(sets.iter().cloned()).collect();
        let sub = rc.out.join("test_submission.csv");
        write_clef2019(&sub, pred.iter().map(|(k, v)| (k.clone(), v.iter().cloned().collect()))).map_err(Error::write(&sub))?;
        let vocab: BTreeSet<String> = test_gt.values().flatten().cloned().collect();
        let report = metrics::evaluate(&test_gt, &pred, &ontology_hooks(ontology, vocab));
        write(&rc.out.join("test_eval.json"), &serde_json::to_string_pretty(&report).expect("serialisable"))?;
        results.push(RunResult {
            run: name.clone(),
            description,
            imageclef_f1: report.imageclef_f1,
            per_level_f1: report.per_level.iter().map(|(k, v)| (k.clone(), v.f1)).collect(),
            hierarchical_f1: report.hierarchical.as_ref().map(|h| h.f1),
            coherence_rate: report.coherence_rate,
            val_f1_tuned: summary.val_f1_tuned,
            train_seconds: summary.seconds,
            n_test: report.n_images,
        });
    }
    write(&out.join("table4.json"), &serde_json::to_string_pretty(&results).expect("serialisable"))?;
    write(&out.join("table4.md"), &table4_markdown(&results, &cfg.base))?;
    Ok(results)
}

/// The paper's Table 4 with per-level F1 added.
pub fn table4_markdown(results: &[RunResult], base: &TrainConfig) -> String {
    let levels: Vec<String> = Level::ALL.iter().map(|l| l.to_string()).filter(|l| results.iter().any(|r| r.per_level_f1.contains_key(l))).collect();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Test-set results: trunk {}, {} px, batch {}, lr {:.0e}, {} epoch(s) per run, seed {}.\n",
        base.trunk, base.image_size, base.batch_size, base.lr, base.epochs, base.seed
    );
    let _ = write!(s, "| run | ImageCLEF F1 |");
    for l in &levels {
        let _ = write!(s, " {l} F1 |");
    }
    let _ = writeln!(s, " hier. F1 | coherent | val F1 (tuned) | train s |");
    let _ = writeln!(s, "|---|---:|{}---:|---:|---:|---:|", "---:|".repeat(levels.len()));
    for r in results {
        let _ = write!(s, "| {} | {:.4} |", r.description, r.imageclef_f1);
        for l in &levels {
            match r.per_level_f1.get(l) {
                Some(v) => {
                    let _ = write!(s, " {v:.4} |");
                }
                None => s.push_str(" - |"),
            }
        }
        let f = |v: Option<f64>| v.map(|x| format!("{x:.4}")).unwrap_or_else(|| "-".into());
        let _ = writeln!(s, " {} | {} | {:.4} | {:.0} |", f(r.hierarchical_f1), f(r.coherence_rate), r.val_f1_tuned, r.train_seconds);
    }
    s
}
