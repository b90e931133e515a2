//! The set-up every experiment shares: the fixed split, training a run unless it is already done
//! (resuming it when it was interrupted), and scoring a run on the test part.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::data::dataset::{read_groups, split_train_val, Dataset};
use crate::data::images::ImageDir;
use crate::data::labels::{read_labels, write_clef2019, LabelRow, ParseOptions};
use crate::error::Error;
use crate::eval::metrics::{self, EvalReport, LabelMap};
use crate::eval::ontology_hooks;
use crate::events::{Event, Events, RunStart};
use crate::ontology::Ontology;
use crate::predict::{LoadOptions, LoadedRun};
use crate::train::{self, run_dir, TrainConfig, TrainSummary};

/// A train / validation / test split written once as label files under `<out>/split/` and reused.
pub struct Split {
    pub train: PathBuf,
    pub val: PathBuf,
    pub test: PathBuf,
    /// The test images' ground truth and files.
    pub test_truth: LabelMap,
    pub test_ids: Vec<String>,
    pub test_paths: Vec<PathBuf>,
}

/// Where a split's test part comes from.
pub enum TestPart<'a> {
    /// 15% of the labels, by group (the rest: 70% train, 15% validation).
    HeldOut,
    /// A separate labelled set (train and validation then split the labels 85/15 by group).
    Given { labels: &'a Path, images: &'a Path },
}

impl Split {
    /// The split of `rows` (read from `labels`, images in `images`) by `groups`, drawn with `seed`
    /// the first time and read back afterwards.
    pub fn prepare(out: &Path, rows: &[LabelRow], images: &Path, groups: Option<&Path>, seed: u64, test: TestPart) -> Result<Split, Error> {
        let dir = out.join("split");
        let (train, val, test_f) = (dir.join("train.csv"), dir.join("val.csv"), dir.join("test.csv"));
        let (test_labels, test_images) = match &test {
            TestPart::HeldOut => (test_f.clone(), images.to_path_buf()),
            TestPart::Given { labels, images } => (labels.to_path_buf(), images.to_path_buf()),
        };
        if !val.exists() {
            std::fs::create_dir_all(&dir).map_err(Error::write(&dir))?;
            let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
            let groups = groups.map(read_groups).transpose()?;
            let (rest, held_out) = match test {
                TestPart::HeldOut => split_train_val(&ids, 0.15, seed, groups.as_ref()),
                TestPart::Given { .. } => ((0..ids.len()).collect(), Vec::new()),
            };
            let rest_ids: Vec<String> = rest.iter().map(|&i| ids[i].clone()).collect();
            let val_share = if held_out.is_empty() { 0.15 } else { 0.15 / 0.85 };
            let (tr, va) = split_train_val(&rest_ids, val_share, seed.wrapping_add(1), groups.as_ref());
            let tr: Vec<usize> = tr.iter().map(|&i| rest[i]).collect();
            let va: Vec<usize> = va.iter().map(|&i| rest[i]).collect();
            let parts: Vec<(&PathBuf, &Vec<usize>)> = if held_out.is_empty() { vec![(&train, &tr), (&val, &va)] } else { vec![(&train, &tr), (&val, &va), (&test_f, &held_out)] };
            for (path, idx) in parts {
                write_clef2019(path, idx.iter().map(|&i| (rows[i].id.clone(), rows[i].cui_strings()))).map_err(Error::write(path))?;
            }
        }
        let (test_rows, _) = read_labels(&test_labels, ParseOptions { allow_empty: true, ..Default::default() })?;
        let (ds, _) = Dataset::open(&test_rows, &test_labels.display().to_string(), &ImageDir::open(&test_images)?, false)?;
        let test_truth = test_rows.iter().map(|r| (r.id.clone(), r.cui_set())).collect();
        Ok(Split { train, val, test: test_labels, test_truth, test_ids: ds.ids, test_paths: ds.paths })
    }
}

/// Train the run configured in `cfg` (into `cfg.out`) unless it has finished; continue it when it
/// was interrupted. `events` hears which, under `label`, and everything training says.
///
/// A run found there must have been started with exactly `cfg` (a variant whose meaning changed
/// between versions, or another command line into the same `--out`, is refused, never reused).
pub(crate) fn train_or_reuse(cfg: &TrainConfig, ontology: &Ontology, label: &str, events: &dyn Events) -> Result<(), Error> {
    if cfg.out.join(run_dir::CONFIG).exists() {
        let run = run_dir::RunDir::open_for_reading(&cfg.out)?;
        let stored = run_dir::read_config(&run)?;
        let mut wanted = cfg.clone();
        // training turns flips off when the model predicts laterality, and stores that
        if let (Some(s), Some(w)) = (&stored.augment, wanted.augment.as_mut()) {
            if !s.hflip && w.hflip && run.path.join(run_dir::MODEL_CONFIG).exists() {
                let model: crate::model::ModelConfig = run.read_json(run_dir::MODEL_CONFIG, "the run cannot be reused without it")?;
                w.hflip = !train::trainer::predicts_laterality(&model, ontology);
            }
        }
        let diff = run_dir::config_differences(&stored, &wanted);
        if !diff.is_empty() {
            return Err(run_dir::RunError::ConfigChanged { dir: cfg.out.clone(), what: diff.join(", ") }.into());
        }
    }
    let start = if cfg.out.join(run_dir::SUMMARY).exists() {
        RunStart::Reuse
    } else if cfg.out.join(run_dir::CONFIG).exists() {
        RunStart::Resume
    } else {
        RunStart::Train
    };
    events.emit(Event::ExperimentRun { label: label.to_string(), dir: cfg.out.clone(), start });
    match start {
        RunStart::Reuse => {}
        RunStart::Resume => {
            train::resume(&cfg.out, ontology, events)?;
        }
        RunStart::Train => {
            train::train(cfg, ontology, false, events)?;
        }
    }
    Ok(())
}

/// Refuse the first of `given` (training options named as on the command line) that applies to
/// none of `configs`, the runs of an experiment named `runs`: an option typed for runs it changes
/// nothing in is refused, not ignored ([`crate::train::config::OPTION_SCOPES`]).
pub(crate) fn refuse_unused<'a>(configs: &[TrainConfig], runs: &[String], given: impl IntoIterator<Item = &'a str>) -> Result<(), Error> {
    for option in given {
        if let Some(scope) = crate::train::config::scope_of(option).filter(|s| !configs.iter().any(|c| s.applies(c))) {
            return Err(Error::usage(format!("--{option} applies to {}, and none of the runs asked for is one ({})", scope.describe(), runs.join(", "))));
        }
    }
    Ok(())
}

/// A finished run scored on the test part.
pub struct TestScore {
    pub summary: TrainSummary,
    pub report: EvalReport,
    pub predictions: LabelMap,
    /// The best ImageCLEF F1 on the test part of a model predicting only this run's concepts
    /// (exactly the truth inside its label space).
    pub ceiling: f64,
}

impl TestScore {
    /// Each test image's official F1 (images with an empty ground truth are not scored).
    pub fn per_image_f1(&self, truth: &LabelMap) -> BTreeMap<String, f64> {
        truth.iter().filter_map(|(id, g)| metrics::per_image_f1(g, self.predictions.get(id).unwrap_or(&BTreeSet::new())).map(|f| (id.clone(), f))).collect()
    }
}

/// Predict the test part with the finished run in `dir`; writes `test_submission.csv` and
/// `test_eval.json` into the run.
pub(crate) fn score_on_test(dir: &Path, split: &Split, ontology: &Ontology, base: &TrainConfig) -> Result<TestScore, Error> {
    let run = LoadedRun::open(dir, base.device.resolve()?, &LoadOptions::default())?;
    let summary: TrainSummary = run.run.read_json(run_dir::SUMMARY, "train the run again")?;
    let (_, sets) = run.predict(&split.test_paths, base.batch_size.max(1))?;
    let predictions: LabelMap = split.test_ids.iter().cloned().zip(sets).collect();
    let sub = dir.join("test_submission.csv");
    write_clef2019(&sub, predictions.iter().map(|(k, v)| (k.clone(), v.iter().cloned().collect()))).map_err(Error::write(&sub))?;
    let vocab: BTreeSet<String> = split.test_truth.values().flatten().cloned().collect();
    let report = metrics::evaluate(&split.test_truth, &predictions, &ontology_hooks(ontology, vocab));
    write(&dir.join("test_eval.json"), &serde_json::to_string_pretty(&report).expect("reports serialise"))?;
    let space: BTreeSet<String> = run.model_cfg.concepts().iter().map(|c| c.to_string()).collect();
    let ceiling = crate::eval::ceiling::ceiling(&split.test_truth, &space);
    Ok(TestScore { summary, report, predictions, ceiling })
}

pub(super) fn write(path: &Path, text: &str) -> Result<(), Error> {
    std::fs::write(path, text).map_err(Error::write(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_started_with_other_settings_is_refused_not_reused() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("run");
        let cfg = TrainConfig { out: out.clone(), mode: train::Mode::Hybrid, epochs: 4, ..TrainConfig::default() };
        let stored = TrainConfig { epochs: 3, rest_pooling: crate::model::Pooling::AvgMax, ..cfg.clone() };
        let run = run_dir::RunDir::create(&out, false).unwrap();
        run.write_json(run_dir::CONFIG, &stored).unwrap();
        run.write_json(run_dir::SUMMARY, &serde_json::json!({})).unwrap();
        drop(run);
        let e = train_or_reuse(&cfg, &Ontology::builtin(), "hybrid", &crate::events::Silent).unwrap_err();
        let msg = e.to_string();
        assert_eq!(e.exit_code(), crate::error::EXIT_BAD_INPUT, "{msg}");
        assert!(msg.contains("epochs: 3 -> 4") && msg.contains("rest_pooling: \"avg-max\" -> \"avg\"") && msg.contains(&out.display().to_string()), "{msg}");
    }
}
