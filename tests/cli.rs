//! End-to-end tests: the real binary on tiny generated data in a temp dir.
mod common;

use std::path::Path;

use common::*;

#[test]
fn flat_and_hierarchical_runs_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("train");
    let test = tmp.path().join("test");
    synth(&data, 80, 1);
    synth(&test, 30, 2);

    // flat baseline
    let flat = tmp.path().join("flat");
    train(&data, &flat, &["--mode", "flat", "--top-k", "10"]);
    for f in ["config.json", "model.json", "schedule.json", "split.json", "metrics.jsonl", "model.safetensors", "thresholds.json", "provenance.json"] {
        assert!(flat.join(f).is_file(), "missing {f}");
    }
    let metrics = std::fs::read_to_string(flat.join("metrics.jsonl")).unwrap();
    let line: serde_json::Value = serde_json::from_str(metrics.lines().next().unwrap()).unwrap();
    let f1 = line["val_imageclef_f1"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&f1), "{f1}");
    let model: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(flat.join("model.json")).unwrap()).unwrap();
    assert_eq!(model["heads"][0]["concepts"].as_array().unwrap().len(), 10);
    // mixed precision on CPU is bf16 autocast (no loss scaling), recorded in the provenance
    let amp = tmp.path().join("amp");
    train(&data, &amp, &["--mode", "flat", "--top-k", "10", "--amp", "--thresholds", "global"]);
    let prov: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(amp.join("provenance.json")).unwrap()).unwrap();
    assert_eq!(prov["precision"], "mixed bf16");
    assert_eq!(prov["memory_format"], "channels-last");
    let m: serde_json::Value = serde_json::from_str(std::fs::read_to_string(amp.join("metrics.jsonl")).unwrap().lines().next().unwrap()).unwrap();
    assert!(m["train_loss"].as_f64().unwrap().is_finite() && m["val_loss"].as_f64().unwrap().is_finite());
    // --thresholds reaches the tuner: per level by default, one global threshold when asked
    let thresholds = |run: &Path| -> serde_json::Value { serde_json::from_str(&std::fs::read_to_string(run.join("thresholds.json")).unwrap()).unwrap() };
    assert!(!thresholds(&flat)["per_level"].as_object().unwrap().is_empty());
    let global = thresholds(&amp);
    assert!(global["per_level"].as_object().unwrap().is_empty() && global["per_concept"].as_object().unwrap().is_empty(), "{global}");

    // hierarchical
    let hier = tmp.path().join("hier");
    train(&data, &hier, &["--mode", "hierarchical", "--levels", "modality,anatomy,laterality", "--schedule", "stepwise", "--epochs", "3", "--thresholds", "per-concept"]);
    let cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(hier.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["thresholds"], "per-concept");
    let sched: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(hier.join("schedule.json")).unwrap()).unwrap();
    // stepwise: one stage per level, spending exactly the epochs given (the fair schedule)
    assert_eq!(sched["stages"].as_array().unwrap().len(), 3);
    assert_eq!(std::fs::read_to_string(hier.join("metrics.jsonl")).unwrap().lines().count(), 3);

    for run in [&flat, &hier] {
        let sub = run.join("sub.csv");
        let explain = run.join("explain.jsonl");
        run_ok(&["predict", "--model", s(run), "--images", s(&test.join("images")), "--out", s(&sub), "--device", "cpu", "--explain", s(&explain)]);
        let text = std::fs::read_to_string(&sub).unwrap();
        assert_eq!(text.lines().count(), 30);
        assert!(text.lines().all(|l| l.starts_with("SYN_") && l.contains('\t')));
        assert_eq!(std::fs::read_to_string(&explain).unwrap().lines().count(), 30);
        let out = run_ok(&["evaluate", "--gt", s(&test.join("labels.csv")), "--pred", s(&sub), "--json"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let f1 = v["imageclef_f1"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&f1));
        assert_eq!(v["n_images"].as_u64().unwrap(), 30);
        if run == &hier {
            assert_eq!(v["coherence_rate"].as_f64().unwrap(), 1.0, "hierarchical predictions must be coherent (per-concept thresholds too)");
        }
    }
}

#[test]
fn bad_label_file_exits_2_naming_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    synth(&data, 10, 3);
    let bad = tmp.path().join("bad.csv");
    let mut text = std::fs::read_to_string(data.join("labels.csv")).unwrap();
    text.push_str("SYN_00003\tC0040405;NOTACUI\n");
    std::fs::write(&bad, text).unwrap();
    let err = run_fails(
        &["train", "--train-labels", s(&bad), "--images", s(&data.join("images")), "--out", s(&tmp.path().join("r")), "--trunk", "tiny", "--device", "cpu"],
        2,
    );
    assert!(err.contains("bad.csv:11") && err.contains("NOTACUI"), "{err}");
}

#[test]
fn missing_image_exits_2_or_is_skipped_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    synth(&data, 40, 4);
    std::fs::remove_file(data.join("images/SYN_00005.jpg")).unwrap();
    std::fs::write(data.join("images/SYN_00006.jpg"), b"not a jpeg").unwrap();
    let labels = data.join("labels.csv");
    let images = data.join("images");
    let base = ["train", "--train-labels", s(&labels), "--images", s(&images), "--trunk", "tiny", "--image-size", "32", "--epochs", "1", "--device", "cpu"];
    let mut a = base.to_vec();
    let r1 = tmp.path().join("r1");
    a.extend_from_slice(&["--out", s(&r1)]);
    let err = run_fails(&a, 2);
    assert!(err.contains("SYN_00005") || err.contains("SYN_00006"), "{err}");
    let mut b = base.to_vec();
    let r2 = tmp.path().join("r2");
    b.extend_from_slice(&["--out", s(&r2), "--skip-bad"]);
    let out = bin().args(&b).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("skipped 2"), "{err}");
    let skipped: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(r2.join("skipped.json")).unwrap()).unwrap();
    assert_eq!(skipped["skipped"].as_array().unwrap().len(), 2);
}

#[test]
fn evaluate_rejects_unknown_and_repeated_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let gt = tmp.path().join("gt.csv");
    std::fs::write(&gt, "a\tC0040405;C0817096\nb\tC0024485\n").unwrap();
    let pred = tmp.path().join("pred.csv");
    std::fs::write(&pred, "a\tC0040405\nb\tC0024485\nzz\tC0024485\n").unwrap();
    let err = run_fails(&["evaluate", "--gt", s(&gt), "--pred", s(&pred)], 2);
    assert!(err.contains("pred.csv:3") && err.contains("zz"), "{err}");
    std::fs::write(&pred, "a\tC0040405\nb\tC0024485\na\tC0024485\n").unwrap();
    let err = run_fails(&["evaluate", "--gt", s(&gt), "--pred", s(&pred)], 2);
    assert!(err.contains("pred.csv:3"), "{err}");
    // a correct submission: a = 2*1/(2+1) = 0.6667, b = 1 -> mean 0.8333
    std::fs::write(&pred, "a\tC0040405\nb\tc0024485\n").unwrap();
    let v: serde_json::Value = serde_json::from_str(&run_ok(&["evaluate", "--gt", s(&gt), "--pred", s(&pred), "--json"])).unwrap();
    assert!((v["imageclef_f1"].as_f64().unwrap() - 5.0 / 6.0).abs() < 1e-9);
}

#[test]
fn ontology_commands_work_on_the_builtin_hierarchy() {
    let out = run_ok(&["ontology", "validate"]);
    assert!(out.contains("valid"));
    let out = run_ok(&["ontology", "show", "C0006104"]);
    assert!(out.contains("Brain") && out.contains("C0018670"), "{out}");
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("cycle.tsv");
    std::fs::write(
        &bad,
        "cui\tname\tlevel\tparents\tsemantic_types\tflags\nC0000001\tA\tanatomy\tpart_of:C0000002\t-\t-\nC0000002\tB\tanatomy\tpart_of:C0000001\t-\t-\n",
    )
    .unwrap();
    let err = run_fails(&["ontology", "validate", s(&bad)], 2);
    assert!(err.contains("cycle") && err.contains("C0000001") && err.contains("C0000002"), "{err}");
}

#[test]
fn doctor_reports_libtorch() {
    let out = run_ok(&["doctor"]);
    assert!(out.contains("CUDA available") && out.contains("matmul check"), "{out}");
    // `doctor --help` promises cuDNN availability: a line with or without a CUDA device
    let help = run_ok(&["doctor", "--help"]);
    assert!(help.contains("cuDNN availability"), "{help}");
    let cudnn = out.lines().find(|l| l.starts_with("cuDNN available")).unwrap_or_else(|| panic!("no cuDNN line: {out}"));
    let cuda = out.lines().any(|l| l == "CUDA available   true");
    assert!(if cuda { cudnn.contains("version") } else { cudnn.contains("false (no CUDA device") }, "{cudnn}");
}

/// libtorch's CUDA library (and the ~230 MiB it maps) is loaded by the commands that may use a
/// device, and never by the light ones (src/cuda.rs). The dynamic loader says what it opens.
#[test]
fn only_commands_that_may_use_a_device_load_libtorch_cuda() {
    let wheel_has_cuda = conceptree::cuda::library_path().is_some();
    let tmp = tempfile::tempdir().unwrap();
    let labels = tmp.path().join("labels.csv");
    std::fs::write(&labels, "a\tC0040405;C0817096\nb\tC0024485\n").unwrap();
    let opens_cuda = |args: &[&str]| {
        let out = bin().args(args).env("LD_DEBUG", "files").output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr).lines().filter(|l| !l.contains("file=") && !l.contains("calling")).collect::<Vec<_>>().join("\n"));
        String::from_utf8_lossy(&out.stderr).lines().any(|l| l.contains("file=") && l.contains("libtorch_cuda.so"))
    };
    for light in [&["data", "stats", "--labels", s(&labels)][..], &["ontology", "stats"], &["data", "ceiling", "--labels", s(&labels)]] {
        assert!(!opens_cuda(light), "{light:?} opened libtorch_cuda.so");
    }
    let doctor = run_ok(&["doctor"]);
    if wheel_has_cuda {
        assert!(opens_cuda(&["doctor"]), "doctor did not open libtorch_cuda.so");
        assert!(doctor.contains("libtorch_cuda    loaded on demand"), "{doctor}");
    } else {
        assert!(doctor.contains("libtorch_cuda    none (CPU-only libtorch)"), "{doctor}");
    }
}

#[test]
fn experiment_paper_runs_on_phantoms_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    synth(&data, 90, 7);
    let out = tmp.path().join("exp");
    let (labels, images, meta) = (data.join("labels.csv"), data.join("images"), data.join("meta.csv"));
    let args = [
        "experiment", "paper", "--labels", s(&labels), "--images", s(&images), "--groups", s(&meta),
        "--out", s(&out), "--trunk", "tiny", "--image-size", "32", "--epochs", "1", "--batch-size", "16", "--device", "cpu", "--lr", "1e-3",
    ];
    let stdout = run_ok(&args);
    assert!(stdout.contains("paper run 1") && stdout.contains("stepwise"), "{stdout}");
    for f in ["table3.txt", "table3.json", "figure1.svg", "figure1.png", "table4.md", "table4.json", "split/train.csv", "split/val.csv", "split/test.csv"] {
        assert!(out.join(f).is_file(), "missing {f}");
    }
    let t4: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("table4.json")).unwrap()).unwrap();
    let runs = t4.as_array().unwrap();
    assert_eq!(runs.len(), 4);
    for r in runs {
        let f1 = r["imageclef_f1"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&f1));
        assert!(r["per_level_f1"]["modality"].is_number());
    }
    // hierarchical runs are coherent on the test part
    assert_eq!(runs[2]["coherence_rate"].as_f64(), Some(1.0));
    assert_eq!(runs[3]["coherence_rate"].as_f64(), Some(1.0));
    // test ids are disjoint from training ids
    let ids = |f: &str| -> std::collections::BTreeSet<String> {
        std::fs::read_to_string(out.join(f)).unwrap().lines().map(|l| l.split('\t').next().unwrap().to_string()).collect()
    };
    assert!(ids("split/train.csv").is_disjoint(&ids("split/test.csv")));
    // a second invocation reuses the finished runs instead of training again
    let model = out.join("runs/flat_full/model.safetensors");
    let before = std::fs::metadata(&model).unwrap().modified().unwrap();
    let o = bin().args(args).output().unwrap();
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("already trained"));
    assert_eq!(std::fs::metadata(&model).unwrap().modified().unwrap(), before);
}

/// `experiment compare` end to end on phantoms, with rows on two trunks: each trunk's flat run is
/// trained once and serves its decodings and its kNN row, every row is paired with the baseline on
/// the same test images, and a second invocation trains nothing.
#[test]
fn experiment_compare_pairs_rows_on_their_own_trunks() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    synth(&data, 90, 5);
    let out = tmp.path().join("cmp");
    let (labels, images, meta) = (data.join("labels.csv"), data.join("images"), data.join("meta.csv"));
    let args = [
        "experiment", "compare", "--labels", s(&labels), "--images", s(&images), "--groups", s(&meta), "--out", s(&out),
        "--runs", "flat,flat+knn,flat@resnet18,knn@resnet18,flat@resnet18+knn", "--baseline", "flat", "--seeds", "2",
        "--trunk", "tiny", "--image-size", "32", "--epochs", "1", "--batch-size", "16", "--device", "cpu", "--lr", "1e-3",
    ];
    run_ok(&args);
    let rows: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("compare.json")).unwrap()).unwrap();
    let rows = rows.as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["run"].as_str().unwrap()).collect();
    assert_eq!(names, ["flat", "flat+knn", "flat@resnet18", "knn@resnet18", "flat@resnet18+knn"]);
    for r in &rows[1..] {
        assert_eq!(r["versus_baseline"]["per_seed"].as_array().unwrap().len(), 2, "{}", r["run"]);
    }
    assert!(rows[2]["changes"].as_str().unwrap().contains("on the resnet18 trunk"), "{}", rows[2]["changes"]);
    let md = std::fs::read_to_string(out.join("compare.md")).unwrap();
    assert!(md.contains("trunk tiny (random initialisation), resnet18 (random initialisation) (rows named RUN@TRUNK train on their own)"), "{}", md.lines().next().unwrap());
    // one run folder per trained run and seed, each on its trunk; the kNN row embeds with flat@resnet18's trunk
    let mut dirs: Vec<String> = std::fs::read_dir(out.join("runs")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    dirs.sort();
    assert_eq!(dirs, ["flat", "flat@resnet18", "knn@resnet18"]);
    for (run, trunk) in [("flat", "tiny"), ("flat@resnet18", "resnet18"), ("knn@resnet18", "resnet18")] {
        let cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("runs").join(run).join("seed1/config.json")).unwrap()).unwrap();
        assert_eq!(cfg["trunk"], trunk, "{run}");
    }
    let knn: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("runs/knn@resnet18/seed2/config.json")).unwrap()).unwrap();
    assert!(knn["weights"].as_str().unwrap().ends_with("flat@resnet18/seed2/model.safetensors"), "{}", knn["weights"]);
    let model = out.join("runs/flat@resnet18/seed1/model.safetensors");
    let before = std::fs::metadata(&model).unwrap().modified().unwrap();
    let o = bin().args(args).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::metadata(&model).unwrap().modified().unwrap(), before, "a finished run is reused");
}

#[test]
fn data_stats_reports_counts_and_plot() {
    let tmp = tempfile::tempdir().unwrap();
    let labels = tmp.path().join("l.csv");
    std::fs::write(&labels, "a\tC0040405;C0817096\nb\tC0040405\nc\tC0024485;C0817096;C0205091\n").unwrap();
    let plot = tmp.path().join("fig.svg");
    let out = run_ok(&["data", "stats", "--labels", s(&labels), "--top", "2", "--min-count", "2", "--plot", s(&plot), "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["n_images"], 3);
    assert_eq!(v["n_concepts"], 4);
    assert_eq!(v["labels_per_image_max"], 3);
    assert_eq!(v["concepts_at_min_count"], 2);
    assert_eq!(v["top"][0]["cui"], "C0040405");
    assert_eq!(v["top"][0]["name"], "X-Ray Computed Tomography");
    assert!(std::fs::read_to_string(&plot).unwrap().contains("<svg"));
    assert!(image::open(plot.with_extension("png")).unwrap().width() > 100);
}

#[test]
fn image_cache_feeds_training_exactly_like_the_files() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    synth(&data, 48, 5);
    let cache = tmp.path().join("cache32");
    let out = run_ok(&["data", "cache", "--labels", s(&data.join("labels.csv")), "--images", s(&data.join("images")), "--size", "32", "--out", s(&cache)]);
    assert!(out.contains("cached 48 images") && out.contains("32x32"), "{out}");
    let files = tmp.path().join("files");
    let cached = tmp.path().join("cached");
    train(&data, &files, &[]);
    train(&data, &cached, &["--image-cache", s(&cache)]);
    let metrics = |run: &Path| -> Vec<String> {
        std::fs::read_to_string(run.join("metrics.jsonl")).unwrap().lines().map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            format!("{} {} {}", v["train_loss"], v["val_loss"], v["val_imageclef_f1"])
        }).collect()
    };
    assert_eq!(metrics(&files), metrics(&cached), "the cache gives the trainer the same pixels");
    assert_eq!(std::fs::read(files.join("model.safetensors")).unwrap(), std::fs::read(cached.join("model.safetensors")).unwrap());
    // a cache built at another size is refused before training, naming the fix
    let labels = data.join("labels.csv");
    let images = data.join("images");
    let err = run_fails(
        &["train", "--train-labels", s(&labels), "--images", s(&images), "--out", s(&tmp.path().join("x")), "--trunk", "tiny", "--image-size", "48", "--device", "cpu", "--image-cache", s(&cache)],
        2,
    );
    assert!(err.contains("32x32") && err.contains("--size 48"), "{err}");
}

#[test]
fn frozen_trunk_without_room_for_its_features_reruns_it_per_batch_with_the_same_result() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    synth(&data, 48, 6);
    let run = |out: &Path, extra: &[&str]| -> String {
        let labels = data.join("labels.csv");
        let images = data.join("images");
        let mut args = vec![
            "train", "--train-labels", s(&labels), "--images", s(&images), "--out", s(out), "--trunk", "tiny", "--image-size", "32",
            "--epochs", "2", "--batch-size", "16", "--lr", "1e-3", "--device", "cpu", "--strategy", "head", "--no-augment",
        ];
        args.extend_from_slice(extra);
        let o = bin().args(&args).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let (cached, rerun) = (tmp.path().join("cached"), tmp.path().join("rerun"));
    let err = run(&cached, &[]);
    assert!(!err.contains("runs on every batch"), "{err}");
    let err = run(&rerun, &["--feature-cache-gib", "0"]);
    assert!(err.contains("over --feature-cache-gib 0") && err.contains("the frozen trunk runs on every batch"), "{err}");
    // without augmentation both paths see the same images through the same frozen trunk
    let losses = |p: &Path| -> Vec<(f64, f64)> {
        std::fs::read_to_string(p.join("metrics.jsonl")).unwrap().lines().map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["train_loss"].as_f64().unwrap(), v["val_loss"].as_f64().unwrap())
        }).collect()
    };
    let (a, b) = (losses(&cached), losses(&rerun));
    assert_eq!(a.len(), 2);
    for ((ta, va), (tb, vb)) in a.iter().zip(&b) {
        assert!((ta - tb).abs() < 1e-4 && (va - vb).abs() < 1e-4, "{a:?} vs {b:?}");
    }
    let err = run_fails(&["train", "--train-labels", s(&data.join("labels.csv")), "--images", s(&data.join("images")), "--out", s(&tmp.path().join("x")), "--strategy", "head", "--feature-cache-gib=-1"], 2);
    assert!(err.contains("--feature-cache-gib -1: must be 0 or more"), "{err}");
}

/// `train` arguments that need no data: every check here refuses before anything is read.
fn train_without_data(tmp: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["train", "--labels", "missing.csv", "--images", "missing", "--out", s(&tmp.join("run")), "--trunk", "tiny", "--device", "cpu"].iter().map(|a| a.to_string()).collect();
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

#[test]
fn options_that_do_not_apply_to_the_run_are_refused_with_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    for (extra, want) in [
        (&["--mode", "flat", "--levels", "modality"][..], "--levels applies to --mode hierarchical and hybrid, not flat"),
        (&["--schedule", "joint"], "--schedule applies to --mode hierarchical and hybrid, not flat"),
        (&["--mode", "flat", "--calibration", "none"], "--calibration applies to --mode hierarchical and hybrid, not flat"),
        (&["--mode", "flat", "--max-constraint", "false"], "--max-constraint applies to --mode hierarchical and hybrid, not flat"),
        (&["--mode", "flat", "--neck", "shared"], "--neck applies to --mode hierarchical and hybrid, not flat"),
        (&["--mode", "flat", "--stage-lr-decay", "0.5"], "--stage-lr-decay applies to --mode hierarchical and hybrid with --schedule stepwise or curriculum, not --mode flat"),
        (&["--mode", "hierarchical", "--schedule", "joint", "--stage-lr-decay", "0.5"], "not --schedule joint"),
        (&["--mode", "hierarchical", "--rest-top-k", "5"], "--rest-top-k applies to --mode hybrid, not hierarchical"),
        (&["--mode", "knn", "--epochs", "3"], "--epochs applies to --mode flat, hierarchical and hybrid, not knn"),
        (&["--mode", "flat", "--knn-k", "3"], "--knn-k applies to --mode knn, not flat"),
        (&["--layerwise-lr-decay", "0.5"], "--layerwise-lr-decay applies to --strategy layerwise, not full"),
        (&["--val-labels", "v.csv", "--val-split", "0.2"], "--val-split applies to runs without --val-labels"),
        // a default value typed is still typed
        (&["--mode", "flat", "--levels", "modality,anatomy,laterality"], "--levels applies to"),
        // layerwise unfreezing with a schedule that adds heads by stage: refused, not silently full fine-tuning
        (&["--mode", "hierarchical", "--schedule", "curriculum", "--strategy", "layerwise"], "--strategy layerwise needs --schedule joint"),
        (&["--mode", "hybrid", "--schedule", "stepwise", "--strategy", "layerwise"], "--strategy layerwise needs --schedule joint"),
        // head weights name heads of the run
        (&["--mode", "hierarchical", "--head-weights", "bogus=1"], "--head-weights bogus=1: 'bogus' is not a head of this run (its heads: modality, anatomy, laterality)"),
        (&["--mode", "hierarchical", "--levels", "modality", "--head-weights", "modality=2,anatomy=1"], "'anatomy' is not a head of this run"),
        // the level heads' options, and one label space option
        (&["--mode", "flat", "--level-heads", "sigmoid"], "--level-heads applies to --mode hierarchical and hybrid, not flat"),
        (&["--mode", "flat", "--single-valued", "second"], "--single-valued applies to --mode hierarchical and hybrid with calibrated levels (--calibration logit-adjust or unweighted) or --level-heads sigmoid, not --mode flat"),
        (&["--mode", "hierarchical", "--calibration", "none", "--single-valued", "second"], "not --calibration none"),
        (&["--mode", "flat", "--conditional-epochs", "2"], "--conditional-epochs applies to --mode hierarchical and hybrid, not flat"),
        (&["--mode", "hierarchical", "--level-heads", "sigmoid", "--calibration", "none"], "--calibration applies to softmax level heads"),
        (&["--mode", "hierarchical", "--epochs", "4", "--conditional-epochs", "4"], "--conditional-epochs 4: must be below --epochs (4)"),
    ] {
        let err = run_fails(&train_without_data(tmp.path(), extra), 2);
        assert!(err.contains(want), "{extra:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(!tmp.path().join("run").exists(), "{extra:?} made a run directory");
    }
    // the label space: one option, read as typed
    for (extra, want) in [(&["--concepts", "top-k:0"][..], "top-k:N must be a whole number of at least 1"), (&["--concepts", "top-k:5", "--top-k", "5"], "'--concepts <SPACE>' cannot be used with '--top-k <TOP_K>'")] {
        let err = run_fails(&train_without_data(tmp.path(), extra), 2);
        assert!(err.contains(want), "{extra:?}: {err}");
    }
    // where they apply they pass these checks (and fail later, on the missing labels)
    for extra in [
        &["--mode", "hierarchical", "--schedule", "joint", "--strategy", "layerwise", "--layerwise-lr-decay", "0.5"][..],
        &["--mode", "hybrid", "--schedule", "curriculum", "--rest-top-k", "5", "--head-weights", "modality=2,rest=0.5", "--stage-lr-decay", "0.5"],
        &["--mode", "knn", "--knn-k", "3", "--top-k", "5"],
        &["--strategy", "head", "--feature-cache-gib", "1"],
        &["--mode", "hierarchical", "--level-heads", "sigmoid", "--single-valued", "second", "--conditional-epochs", "2", "--concepts", "min-count:3"],
        &["--mode", "knn", "--concepts", "all"],
    ] {
        let err = run_fails(&train_without_data(tmp.path(), extra), 2);
        assert!(err.contains("missing.csv") || err.contains("missing"), "{extra:?}: {err}");
        assert!(!err.contains("applies to") && !err.contains("is not a head"), "{extra:?}: {err}");
    }
    // experiments: an option that applies to none of the runs asked for
    let compare = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = ["experiment", "compare", "--labels", "missing.csv", "--images", "missing", "--out", s(&tmp.path().join("cmp"))].iter().map(|a| a.to_string()).collect();
        a.extend(extra.iter().map(|a| a.to_string()));
        a
    };
    let err = run_fails(&compare(&["--runs", "flat,flat-last-epoch", "--levels", "modality"]), 2);
    assert!(err.contains("--levels applies to --mode hierarchical and hybrid, and none of the runs asked for is one (flat, flat-last-epoch)"), "{err}");
    let err = run_fails(&["experiment", "paper", "--labels", "missing.csv", "--images", "missing", "--out", s(&tmp.path().join("p")), "--runs", "flat_full", "--max-constraint", "true"], 2);
    assert!(err.contains("--max-constraint applies to --mode hierarchical and hybrid, and none of the runs asked for is one (flat_full)"), "{err}");
    assert!(!tmp.path().join("cmp").exists() && !tmp.path().join("p").exists());
    let err = run_fails(&compare(&["--runs", "flat,hier", "--levels", "modality"]), 2);
    assert!(!err.contains("applies to"), "hier takes --levels: {err}");
    assert!(err.contains("missing.csv") && !tmp.path().join("cmp").exists(), "a missing label file leaves no output folder: {err}");
    // rows: a run and its decodings
    let err = run_fails(&compare(&["--runs", "flat,hier+fast"]), 2);
    assert!(err.contains("unknown decoding '+fast'"), "{err}");
    let err = run_fails(&compare(&["--runs", "flat,bogus+knn"]), 2);
    assert!(err.contains("unknown run 'bogus'") && err.contains("flat-coherent is flat+coherent"), "{err}");
    // rows on a trunk of their own, and their weights: refused before any work
    let err = run_fails(&compare(&["--runs", "flat,flat@vgg16+knn"]), 2);
    assert!(err.contains("unknown trunk 'vgg16'") && err.contains("densenet121"), "{err}");
    let err = run_fails(&compare(&["--runs", "flat,flat@densenet121", "--weights", "r50.safetensors"]), 2);
    assert!(err.contains("rows on densenet121 would train from random weights") && err.contains("--trunk-weights densenet121=FILE"), "{err}");
    let err = run_fails(&compare(&["--runs", "flat,flat@densenet121", "--trunk-weights", "densenet121=a.safetensors", "--trunk-weights", "densenet121=b.safetensors"]), 2);
    assert!(err.contains("--trunk-weights names densenet121 twice"), "{err}");
    let err = run_fails(&compare(&["--runs", "flat", "--trunk-weights", "densenet121"]), 2);
    assert!(err.contains("expected TRUNK=FILE"), "{err}");
    let err = run_fails(&compare(&["--runs", "flat", "--trunk-weights", "convnext_tiny=c.safetensors"]), 2);
    assert!(err.contains("no row trains convnext_tiny"), "{err}");
    assert!(!tmp.path().join("cmp").exists());
}

#[test]
fn repeated_levels_and_unbounded_numbers_are_refused_before_a_run_directory_exists() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    synth(&data, 40, 3);
    let out = tmp.path().join("run");
    let args = |extra: &[&str]| -> Vec<String> {
        let mut a = train_args(&data, &out);
        a.extend(extra.iter().map(|x| x.to_string()));
        a
    };
    let err = run_fails(&args(&["--mode", "hierarchical", "--levels", "modality,anatomy,modality"]), 2);
    assert!(err.contains("--levels modality,anatomy,modality: level 'modality' is named twice"), "{err}");
    assert!(!out.exists(), "a run directory was made");
    let err = run_fails(&set(args(&[]), "--epochs", "4294967296"), 2);
    assert!(err.contains("--epochs 4294967296: must be in 1..=10000"), "{err}");
    let err = run_fails(&set(args(&[]), "--batch-size", "1000000"), 2);
    assert!(err.contains("--batch-size 1000000: must be in 1..=65536"), "{err}");
    // knn-k is bounded by the training images, known once the data is read; the run directory that
    // was made for it is gone again (so are those of runs whose data is refused)
    let knn = without(args(&["--mode", "knn", "--knn-k", "100000"]), &["--epochs", "--lr"]);
    let err = run_fails(&knn, 2);
    let n_train: usize = err.split("number of training images (").nth(1).and_then(|r| r.split(')').next()).and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{err}"));
    assert!(err.contains("--knn-k 100000: must be at most the number of training images") && n_train < 40, "{err}");
    assert!(!out.exists(), "a run directory was left behind");
    let err = run_fails(&set(args(&[]), "--images", s(&tmp.path().join("nowhere"))), 2);
    assert!(err.contains("nowhere"), "{err}");
    assert!(!out.exists(), "a run directory was left behind");
    let err = run_fails(&["experiment", "compare", "--labels", "l.csv", "--images", "i", "--out", s(&tmp.path().join("c")), "--seeds", "4294967296"], 2);
    assert!(err.contains("--seeds") && err.contains("1..=100"), "{err}");
}

#[test]
fn negative_numbers_reach_the_range_checks() {
    let tmp = tempfile::tempdir().unwrap();
    for (extra, want) in [
        (&["--lr", "-1"][..], "--lr -1: must be in (0, 1)"),
        (&["--val-split", "-0.1"], "--val-split -0.1: must be in (0, 1)"),
        (&["--epochs", "-1"], "invalid value '-1' for '--epochs <EPOCHS>': must be in 1..=10000"),
        (&["--seed", "-1"], "invalid value '-1' for '--seed <SEED>': must be 0 or more"),
        (&["--batch-size", "-8"], "'--batch-size <BATCH_SIZE>': must be in 1..=65536"),
        (&["--strategy", "head", "--feature-cache-gib", "-2"], "--feature-cache-gib -2: must be 0 or more"),
    ] {
        let err = run_fails(&train_without_data(tmp.path(), extra), 2);
        assert!(err.contains(want), "{extra:?}: {err}");
        assert!(!err.contains("unexpected argument"), "{err}");
    }
    for args in [
        &["predict", "--model", "m", "--images", "i", "--out", "o.csv", "--threshold", "-0.5"][..],
        &["predict", "--model", "m", "--images", "i", "--out", "o.csv", "--batch-size", "-4"],
        &["data", "synth", "--out", "o", "--n", "-5"],
        &["data", "stats", "--labels", "l.csv", "--top-k", "-3"],
        &["review", "serve", "--db", "r.sqlite", "--port", "-1"],
        &["experiment", "compare", "--labels", "l.csv", "--images", "i", "--out", "o", "--seeds", "-2"],
    ] {
        let err = run_fails(args, 2);
        assert!(!err.contains("unexpected argument") && (err.contains("must be") || err.contains("not in")), "{args:?}: {err}");
    }
}

#[test]
fn an_ontology_whose_parent_breaks_the_levels_is_refused_naming_file_line_and_cui() {
    let tmp = tempfile::tempdir().unwrap();
    // the built-in file with CT made a child of Pneumonia
    let ct = ontology_line("C0040405");
    let bad_line = ct.replace("\tmodality\t-\t", "\tmodality\tC0032285\t");
    let text = conceptree::ontology::BUILTIN_TSV.replace(&ct, &bad_line);
    assert_ne!(text, conceptree::ontology::BUILTIN_TSV);
    let bad = tmp.path().join("bad.tsv");
    std::fs::write(&bad, &text).unwrap();
    let line = text.lines().position(|l| l == bad_line).unwrap() + 1;
    let err = run_fails(&["ontology", "validate", s(&bad)], 2);
    assert!(err.contains(&format!("{}:{line}: C0040405 (X-Ray Computed Tomography) is on level modality but its parent C0032285 (Pneumonia) is on level finding", s(&bad))), "{err}");
    // and training with it is refused before anything is made
    let data = tmp.path().join("d");
    synth(&data, 20, 1);
    let out = tmp.path().join("run");
    let mut args = train_args(&data, &out);
    args.extend(["--mode", "hierarchical", "--ontology", s(&bad)].iter().map(|a| a.to_string()));
    let err = run_fails(&args, 2);
    assert!(err.contains(&format!("{}:{line}: C0040405", s(&bad))), "{err}");
    assert!(!out.exists());
}

/// The built-in ontology's row of `cui`.
fn ontology_line(cui: &str) -> String {
    conceptree::ontology::BUILTIN_TSV.lines().find(|l| l.starts_with(&format!("{cui}\t"))).unwrap().to_string()
}

#[test]
fn a_smaller_training_set_is_a_seeded_sample_across_the_set_by_group() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    synth(&data, 80, 5);
    // knn trains nothing: the quickest run whose split.json shows the training images
    let train_ids = |name: &str, extra: &[&str]| -> Vec<String> {
        let out = tmp.path().join(name);
        let mut a = without(train_args(&data, &out), &["--epochs", "--lr"]);
        a.extend(["--mode", "knn", "--top-k", "5", "--knn-k", "3", "--val-split", "0.25"].iter().map(|x| x.to_string()));
        a.extend(extra.iter().map(|x| x.to_string()));
        run_ok(&a);
        let split: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("split.json")).unwrap()).unwrap();
        split["train"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
    };
    let all = train_ids("all", &[]);
    let some = train_ids("some", &["--max-train-images", "20"]);
    assert_eq!(some.len(), 20);
    assert!(some.iter().all(|id| all.contains(id)));
    let mut sorted = all.clone();
    sorted.sort();
    assert_ne!(some, sorted[..20].to_vec(), "not the first 20 ids in sorted order");
    assert!(some.iter().any(|id| *id > sorted[39]), "drawn across the set: {some:?}");
    assert_eq!(train_ids("again", &["--max-train-images", "20"]), some, "the same seed, the same sample");
    // with --groups: whole groups (cases), at most 20 images
    let meta = data.join("meta.csv");
    let group_of: std::collections::HashMap<String, String> =
        std::fs::read_to_string(&meta).unwrap().lines().skip(1).map(|l| { let f: Vec<&str> = l.split(',').collect(); (f[0].to_string(), f[f.len() - 1].to_string()) }).collect();
    let all_g = train_ids("all-g", &["--groups", s(&meta)]);
    let some_g = train_ids("some-g", &["--groups", s(&meta), "--max-train-images", "20"]);
    assert!(!some_g.is_empty() && some_g.len() <= 20, "{}", some_g.len());
    for id in &some_g {
        let g = &group_of[id];
        let whole = all_g.iter().filter(|x| &group_of[*x] == g).count();
        assert_eq!(some_g.iter().filter(|x| &group_of[*x] == g).count(), whole, "group {g} split");
    }
}

#[test]
fn readme_and_help_agree_on_the_default_levels() {
    let d: Vec<String> = conceptree::train::TrainConfig::default().levels.iter().map(|l| l.to_string()).collect();
    let help = run_ok(&["train", "--help"]);
    assert!(help.contains(&format!("[default: {}]", d.join(" "))), "{help}");
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    assert!(readme.contains(&format!("default\n`{}`", d.join(","))) || readme.contains(&format!("default `{}`", d.join(","))), "README states the default levels");
    assert!(!readme.contains("curriculum over\nseven levels") && !readme.contains("curriculum over seven levels"), "the defaults are not seven levels");
    // every hierarchical or hybrid training command in the README names its levels
    let joined = readme.replace("\\\n", " ");
    for cmd in joined.lines().filter(|l| l.contains("train --mode hierarchical")) {
        assert!(cmd.contains("--levels "), "README trains the default levels without saying so: {cmd}");
    }
    let all7 = "--levels modality,anatomy,laterality,plane,view,technique,finding";
    assert!(joined.lines().any(|l| l.contains("$W/hier") && l.contains("train --mode hierarchical") && l.contains(all7)), "the realrad recipe trains every level");
}
