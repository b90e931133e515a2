//! Fault tolerance: a training process killed mid-run resumes to the same final weights.
use std::path::Path;
use std::time::{Duration, Instant};

mod common;

use common::{s, std_bin as bin};

#[test]
fn sigkill_mid_run_then_resume_gives_identical_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    assert!(bin().args(["data", "synth", "--out", s(&data), "--n", "300", "--size", "32", "--seed", "9"]).status().unwrap().success());
    let labels = data.join("labels.csv");
    let images = data.join("images");
    let args = |out: &Path| {
        vec![
            "train".to_string(), "--train-labels".into(), s(&labels).into(), "--images".into(), s(&images).into(), "--out".into(), s(out).into(),
            "--trunk".into(), "tiny".into(), "--image-size".into(), "32".into(), "--epochs".into(), "6".into(), "--batch-size".into(), "8".into(),
            "--lr".into(), "1e-3".into(), "--device".into(), "cpu".into(), "--mode".into(), "hierarchical".into(), "--levels".into(), "modality,anatomy".into(),
        ]
    };
    let full = tmp.path().join("full");
    assert!(bin().args(args(&full)).output().unwrap().status.success());

    let killed = tmp.path().join("killed");
    let mut child = bin().args(args(&killed)).stderr(std::process::Stdio::null()).spawn().unwrap();
    let metrics = killed.join("metrics.jsonl");
    let t0 = Instant::now();
    // wait for the first finished epoch, then kill without warning
    while std::fs::read_to_string(&metrics).map(|m| m.lines().count()).unwrap_or(0) < 1 {
        assert!(t0.elapsed() < Duration::from_secs(120), "training never finished an epoch");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(150));
    child.kill().unwrap(); // SIGKILL
    let _ = child.wait();
    let done_before = std::fs::read_to_string(&metrics).unwrap().lines().count();
    assert!(done_before < 6, "the run finished before it could be killed; make it longer");

    let out = bin().args(["train", "--resume", s(&killed)]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("resuming"));
    let a = std::fs::read(full.join("model.safetensors")).unwrap();
    let b = std::fs::read(killed.join("model.safetensors")).unwrap();
    assert!(a == b, "resumed weights differ from the uninterrupted run's");
    let strip = |p: &Path| -> Vec<String> {
        std::fs::read_to_string(p).unwrap().lines().map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            format!("{} {} {}", v["epoch"], v["train_loss"], v["val_imageclef_f1"])
        }).collect()
    };
    assert_eq!(strip(&full.join("metrics.jsonl")), strip(&metrics));
}

#[test]
fn same_seed_gives_same_metrics_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    assert!(bin().args(["data", "synth", "--out", s(&data), "--n", "60", "--size", "32"]).status().unwrap().success());
    let mut lines = vec![];
    for r in ["a", "b"] {
        let out = tmp.path().join(r);
        let st = bin()
            .args(["train", "--train-labels", s(&data.join("labels.csv")), "--images", s(&data.join("images")), "--out", s(&out)])
            .args(["--trunk", "tiny", "--image-size", "32", "--epochs", "2", "--device", "cpu", "--seed", "3"])
            .output()
            .unwrap();
        assert!(st.status.success());
        let m: Vec<String> = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap().lines().map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            format!("{} {} {}", v["train_loss"], v["val_loss"], v["val_imageclef_f1"])
        }).collect();
        lines.push(m);
    }
    assert_eq!(lines[0], lines[1]);
}

#[test]
fn unwritable_or_existing_run_dir_fails_before_work() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    assert!(bin().args(["data", "synth", "--out", s(&data), "--n", "20", "--size", "32"]).status().unwrap().success());
    let run = tmp.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("model.safetensors"), b"x").unwrap();
    let out = bin()
        .args(["train", "--train-labels", s(&data.join("labels.csv")), "--images", s(&data.join("images")), "--out", s(&run), "--trunk", "tiny", "--device", "cpu"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--resume"));
    let out = bin()
        .args(["train", "--train-labels", s(&data.join("labels.csv")), "--images", s(&tmp.path().join("nope")), "--out", s(&tmp.path().join("r2")), "--device", "cpu"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
}

#[test]
fn non_finite_loss_stops_naming_the_step_and_keeps_the_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    assert!(bin().args(["data", "synth", "--out", s(&data), "--n", "60", "--size", "32"]).status().unwrap().success());
    let run = tmp.path().join("run");
    let out = bin()
        .args(["train", "--train-labels", s(&data.join("labels.csv")), "--images", s(&data.join("images")), "--out", s(&run)])
        .args(["--trunk", "tiny", "--image-size", "32", "--epochs", "1", "--device", "cpu"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // A diverged model: one NaN weight in the last layer makes every logit, so every loss, NaN.
    let ckpt = run.join("checkpoint.safetensors");
    let mut tensors = tch::Tensor::read_safetensors(&ckpt).unwrap();
    let bias = tensors.iter_mut().find(|(n, _)| n == "model.heads.flat.fc2.bias").expect("checkpoint holds the head's bias");
    let _ = bias.1.get(0).fill_(f64::NAN);
    tch::Tensor::write_safetensors(&tensors, &ckpt).unwrap();
    let before = std::fs::read(&ckpt).unwrap();
    // ...and one more epoch to do (an unfinished run: a finished one is not resumed)
    std::fs::remove_file(run.join("summary.json")).unwrap();
    let cfg_path = run.join("config.json");
    let mut cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    cfg["epochs"] = 2.into();
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();

    let out = bin().args(["train", "--resume", s(&run)]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "a diverged run is a failure, not bad input: {err}");
    assert!(err.contains("loss became NaN") && err.contains("epoch 2, step 0"), "{err}");
    assert!(err.contains(s(&run)), "names the run whose checkpoint is kept: {err}");
    assert_eq!(std::fs::read(&ckpt).unwrap(), before, "the last checkpoint is left as it was");
    assert_eq!(std::fs::read_to_string(run.join("metrics.jsonl")).unwrap().lines().count(), 1, "no metrics line for the failed epoch");
}

#[test]
fn the_best_epoch_is_kept_and_last_keeps_the_last() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    common::synth(&data, 60, 5);
    // a high learning rate, so validation F1 does not simply rise epoch after epoch
    let train = |keep: &str| {
        let out = tmp.path().join(keep);
        common::train(&data, &out, &["--epochs", "4", "--lr", "3e-2", "--seed", "4", "--keep", keep]);
        let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
        let tuned: Vec<f64> = std::fs::read_to_string(out.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["val_imageclef_f1_tuned"].as_f64().unwrap())
            .collect();
        (out, summary["kept_epoch"].as_u64().unwrap() as usize, summary["val_f1_tuned"].as_f64().unwrap(), tuned)
    };
    let (best_dir, kept, f1, tuned) = train("best");
    let (last_dir, kept_last, f1_last, tuned_last) = train("last");
    assert_eq!(tuned, tuned_last, "same seed, same training");
    // best: the first epoch with the highest tuned validation F1, and the summary reports that epoch's F1
    let argmax = (0..tuned.len()).fold(0, |b, i| if tuned[i] > tuned[b] { i } else { b }) + 1;
    assert_eq!(kept, argmax, "{tuned:?}");
    assert!((f1 - tuned[kept - 1]).abs() < 1e-9, "{f1} vs {tuned:?}");
    assert_eq!(kept_last, 4);
    assert!((f1_last - tuned[3]).abs() < 1e-9, "{f1_last} vs {tuned:?}");
    // the kept weights are the last epoch's exactly when the best epoch is the last
    let same = std::fs::read(best_dir.join("model.safetensors")).unwrap() == std::fs::read(last_dir.join("model.safetensors")).unwrap();
    assert_eq!(same, kept == 4, "kept epoch {kept}, {tuned:?}");
}
