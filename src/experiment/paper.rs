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
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use super::setup::{score_on_test, train_or_reuse, write, Split, TestPart};
use crate::events::{Event, Events};
use crate::data::labels::{read_labels, ParseOptions};
use crate::data::stats::dataset_stats;
use crate::error::Error;
use crate::ontology::{Level, Ontology};
use crate::train::{HierSchedule, Mode, Strategy, TrainConfig};

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
    /// The best test F1 a model restricted to the run's label space could reach.
    pub ceiling: f64,
    pub per_level_f1: BTreeMap<String, f64>,
    pub hierarchical_f1: Option<f64>,
    pub coherence_rate: Option<f64>,
    pub val_f1_tuned: f64,
    pub train_seconds: f64,
    pub n_test: usize,
}

/// The runs the experiment knows, in table order (the default list leaves out `hier_joint_cond`
/// and `hier_layerwise`).
pub const RUNS: [(&str, &str); 6] = [
    ("flat_full", "flat top-K, full fine-tuning (paper run 1)"),
    ("flat_layerwise", "flat top-K, layerwise fine-tuning (paper run 2)"),
    ("hier_joint", "hierarchical, all levels jointly"),
    ("hier_joint_cond", "hierarchical, jointly, heads conditioned on upper levels"),
    ("hier_stepwise", "hierarchical, stepwise by level (proposed)"),
    ("hier_layerwise", "hierarchical, all levels, layerwise fine-tuning (like for like with paper run 2)"),
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
        "hier_layerwise" => {
            c.mode = Mode::Hierarchical;
            c.schedule = HierSchedule::Joint;
            c.strategy = Strategy::Layerwise;
        }
        _ => return None,
    }
    Some(c)
}

/// Refuse a training option in `given` (named as on the command line) that applies to none of
/// the runs asked for; an unknown run name is refused first.
pub fn refuse_unused_options<'a>(cfg: &ExperimentConfig, given: impl IntoIterator<Item = &'a str>) -> Result<(), Error> {
    if let Some(name) = cfg.runs.iter().find(|n| !RUNS.iter().any(|r| r.0 == n.as_str())) {
        return Err(Error::usage(format!("unknown run '{name}' (known: {})", RUNS.map(|r| r.0).join(", "))));
    }
    let configs: Vec<TrainConfig> = cfg.runs.iter().filter_map(|name| run_config(name, &cfg.base)).collect();
    super::setup::refuse_unused(&configs, &cfg.runs, given)
}

/// Run the whole experiment; returns the results table rows.
pub fn run_paper(cfg: &ExperimentConfig, ontology: &Ontology, events: &dyn Events) -> Result<Vec<RunResult>, Error> {
    let out = &cfg.out;
    std::fs::create_dir_all(out.join("runs")).map_err(Error::write(out))?;
    let (rows, skipped) = read_labels(&cfg.labels, ParseOptions { skip_bad: cfg.base.skip_bad, ..Default::default() })?;
    if !skipped.is_empty() {
        events.emit(Event::Text(skipped.to_string()));
    }

    // ---- 1. dataset statistics (Table 3, Figure 1)
    let describe = |c: &str| (ontology.get(c).map(|x| x.name.clone()), ontology.level_of(c).map(|l| l.to_string()));
    let stats = dataset_stats(&rows, 25, 1000, &describe);
    write(&out.join("table3.txt"), &stats.to_string())?;
    write(&out.join("table3.json"), &serde_json::to_string_pretty(&stats).expect("serialisable"))?;
    crate::report::figures::top_concepts(&stats, "Top concepts by number of images", &out.join("figure1"))?;

    // ---- 2. split: train / val / test by group, seeded, written once and reused on resume
    let split = Split::prepare(out, &rows, &cfg.images, cfg.groups.as_deref(), cfg.base.seed, TestPart::HeldOut)?;

    // ---- 3 + 4. runs and their test scores
    let mut results = Vec::new();
    for name in &cfg.runs {
        let Some(mut rc) = run_config(name, &cfg.base) else {
            return Err(Error::usage(format!("unknown run '{name}' (known: {})", RUNS.map(|r| r.0).join(", "))));
        };
        let description = RUNS.iter().find(|r| r.0 == name).map(|r| r.1).unwrap_or("").to_string();
        rc.train_labels = split.train.clone();
        rc.val_labels = Some(split.val.clone());
        rc.images = cfg.images.clone();
        rc.out = out.join("runs").join(name);
        train_or_reuse(&rc, ontology, &format!("{name}: {description}"), events)?;
        let score = score_on_test(&rc.out, &split, ontology, &cfg.base)?;
        let report = score.report;
        results.push(RunResult {
            run: name.clone(),
            description,
            imageclef_f1: report.imageclef_f1,
            ceiling: score.ceiling,
            per_level_f1: report.per_level.iter().map(|(k, v)| (k.clone(), v.f1)).collect(),
            hierarchical_f1: report.hierarchical.as_ref().map(|h| h.f1),
            coherence_rate: report.coherence_rate,
            val_f1_tuned: score.summary.val_f1_tuned,
            train_seconds: score.summary.seconds,
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
    let _ = write!(s, "| run | ImageCLEF F1 | ceiling |");
    for l in &levels {
        let _ = write!(s, " {l} F1 |");
    }
    let _ = writeln!(s, " hier. F1 | coherent | val F1 (tuned) | train s |");
    let _ = writeln!(s, "|---|---:|---:|{}---:|---:|---:|---:|", "---:|".repeat(levels.len()));
    for r in results {
        let _ = write!(s, "| {} | {:.4} | {:.4} |", r.description, r.imageclef_f1, r.ceiling);
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
    let _ = writeln!(s, "\nceiling: the test F1 of a model that predicts exactly the truth inside the run's label space (`data ceiling`).");
    s
}
