//! Streaming prediction: an interrupted `predict` (a crash between writing a batch's rows and
//! recording them, or SIGKILL at an arbitrary moment) resumed with `--resume` ends with the same
//! bytes as an uninterrupted one; the submission file is never half-written.
mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

/// Phantoms for a tiny hierarchical run, the run, and `n` test phantoms.
fn setup(tmp: &Path, n: usize) -> (PathBuf, PathBuf) {
    let data = tmp.join("data");
    synth(&data, 60, 11);
    let run = tmp.join("run");
    train(&data, &run, &["--mode", "hierarchical", "--levels", "modality,anatomy,laterality"]);
    let test = tmp.join("test");
    synth(&test, n, 5);
    (run, test.join("images"))
}

fn predict_args(run: &Path, images: &Path, out: &Path, explain: &Path, batch: usize) -> Vec<String> {
    ["predict", "--model", s(run), "--images", s(images), "--out", s(out), "--explain", s(explain), "--device", "cpu", "--batch-size", &batch.to_string()].map(String::from).to_vec()
}

fn progress_of(out: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(out.with_file_name(format!("{}.progress.json", out.file_name().unwrap().to_string_lossy()))).ok()?;
    serde_json::from_str(&text).ok()
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).filter(|n| n.ends_with(".partial") || n.contains(".progress") || n.ends_with(".tmp")).collect()
}

#[test]
fn a_crash_mid_batch_then_resume_gives_the_uninterrupted_files() {
    let tmp = tempfile::tempdir().unwrap();
    let (run_dir, images) = setup(tmp.path(), 200);
    let full = (tmp.path().join("full.csv"), tmp.path().join("full.jsonl"));
    let out = run_ok(&predict_args(&run_dir, &images, &full.0, &full.1, 16));
    assert!(out.contains("wrote predictions for 200 images"), "{out}");
    assert_eq!(std::fs::read_to_string(&full.0).unwrap().lines().count(), 200);

    // an earlier submission in place: it stays whole until the new one is complete
    let dir = tmp.path().join("out");
    std::fs::create_dir(&dir).unwrap();
    let (sub, explain) = (dir.join("sub.csv"), dir.join("explain.jsonl"));
    std::fs::write(&sub, "OLD\tC0000001\n").unwrap();
    let args = predict_args(&run_dir, &images, &sub, &explain, 16);
    // the 5th batch's rows are written, then the process dies before recording them
    let crashed = std_bin().args(&args).env("CONCEPTREE_TEST_ABORT_AFTER_BATCHES", "5").stdout(Stdio::null()).stderr(Stdio::null()).status().unwrap();
    assert!(!crashed.success(), "the test hook aborts the process");
    assert_eq!(std::fs::read_to_string(&sub).unwrap(), "OLD\tC0000001\n", "the submission is untouched until the end");
    assert!(!explain.exists());
    let p = progress_of(&sub).expect("a progress record");
    assert_eq!(p["done"], 64, "four batches of 16 recorded");
    let partial = std::fs::read_to_string(dir.join("sub.csv.partial")).unwrap();
    assert_eq!(partial.lines().count(), 80, "the 5th batch's rows are in the partial file but not recorded");
    assert_eq!(p["out_bytes"].as_u64().unwrap() as usize, partial.lines().take(64).map(|l| l.len() + 1).sum::<usize>());

    // without --resume: refused, saying how to go on
    let err = run_fails(&args, 2);
    assert!(err.contains("--resume") && err.contains("64 of 200"), "{err}");
    // resuming with another batch size or without the explain file: refused, naming it
    let err = run_fails(&with(&predict_args(&run_dir, &images, &sub, &explain, 32), &["--resume"]), 2);
    assert!(err.contains("--batch-size (16 then, 32 now)"), "{err}");
    let no_explain = ["predict", "--model", s(&run_dir), "--images", s(&images), "--out", s(&sub), "--device", "cpu", "--batch-size", "16", "--resume"];
    let err = run_fails(&no_explain, 2);
    assert!(err.contains("another explain file"), "{err}");

    let (code, stdout, stderr) = run(&with(&args, &["--resume"]));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stderr.contains("resumed after 64 of 200 images"), "{stderr}");
    assert!(stderr.contains("img/s"), "progress with rate: {stderr}");
    assert!(std::fs::read(&sub).unwrap() == std::fs::read(&full.0).unwrap(), "resumed submission differs from the uninterrupted one");
    assert!(std::fs::read(&explain).unwrap() == std::fs::read(&full.1).unwrap(), "resumed explain file differs from the uninterrupted one");
    assert!(leftovers(&dir).is_empty(), "left behind: {:?}", leftovers(&dir));

    // --resume with nothing to resume predicts from the start, and says so
    std::fs::remove_file(&sub).unwrap();
    let (code, _, stderr) = run(&with(&args, &["--resume"]));
    assert_eq!(code, 0);
    assert!(stderr.contains("no interrupted prediction"), "{stderr}");
    assert!(std::fs::read(&sub).unwrap() == std::fs::read(&full.0).unwrap());
}

#[test]
fn sigkill_at_any_moment_then_resume_gives_the_uninterrupted_files() {
    let tmp = tempfile::tempdir().unwrap();
    let (run_dir, images) = setup(tmp.path(), 1000);
    let full = (tmp.path().join("full.csv"), tmp.path().join("full.jsonl"));
    run_ok(&predict_args(&run_dir, &images, &full.0, &full.1, 16));

    let (sub, explain) = (tmp.path().join("sub.csv"), tmp.path().join("explain.jsonl"));
    let args = predict_args(&run_dir, &images, &sub, &explain, 16);
    let mut child = std_bin().args(&args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let t0 = Instant::now();
    // kill without warning once some batches are recorded, wherever the process is then
    while progress_of(&sub).map_or(0, |p| p["done"].as_u64().unwrap()) < 160 {
        assert!(t0.elapsed() < Duration::from_secs(120), "prediction never recorded 160 images");
        assert!(child.try_wait().unwrap().is_none(), "prediction ended before it could be killed");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    let _ = child.wait();
    let done = progress_of(&sub).expect("progress recorded")["done"].as_u64().unwrap();
    assert!(done < 1000, "the prediction finished before it could be killed; make it longer");
    assert!(!sub.exists(), "no submission file before the prediction is complete");

    let (code, stdout, stderr) = run(&with(&args, &["--resume"]));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stderr.contains("resumed after"), "{stderr}");
    assert!(std::fs::read(&sub).unwrap() == std::fs::read(&full.0).unwrap(), "resumed submission differs from the uninterrupted one (killed after {done} images)");
    assert!(std::fs::read(&explain).unwrap() == std::fs::read(&full.1).unwrap(), "resumed explain file differs (killed after {done} images)");
    assert!(leftovers(tmp.path()).is_empty(), "left behind: {:?}", leftovers(tmp.path()));
}
