//! The torchvision-named trunks beyond ResNet, end to end on the real binary: every mode (flat
//! training the whole trunk; hierarchical and hybrid on the frozen trunk, which is cheaper; kNN on
//! the flat run's trunk), predict, and `--strategy layerwise` over the trunk's own layer groups
//! (its first two stages; all five steps' names are checked in `train::schedule`). One epoch per
//! stage at 32 px on a few phantoms: this checks that they run and are wired up, not that they learn.
mod common;

use common::*;

fn json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Train `trunk` in every mode and with `--strategy layerwise`, predict with each run; the
/// layerwise run's second stage must be named `top` (the trunk's groups at stride 32).
fn every_mode(trunk: &str, top: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    synth(&data, 40, 21);
    let images = data.join("images");
    let t = ["--trunk", trunk];
    let runs: [(&str, Vec<&str>); 4] = [
        ("flat", vec!["--mode", "flat", "--top-k", "10"]),
        ("hierarchical", vec!["--mode", "hierarchical", "--levels", "modality,anatomy,laterality", "--strategy", "head"]),
        ("hybrid", vec!["--mode", "hybrid", "--levels", "modality,anatomy", "--rest-top-k", "5", "--strategy", "head"]),
        ("knn", vec!["--mode", "knn", "--top-k", "10"]),
    ];
    for (name, extra) in &runs {
        let run = tmp.path().join(name);
        let mut args = [t.as_slice(), extra].concat();
        let weights = tmp.path().join("flat/model.safetensors");
        if *name == "knn" {
            // the retrieval baseline in the flat run's trained trunk
            args.extend(["--weights", s(&weights)]);
        }
        train(&data, &run, &args);
        assert_eq!(json(&run.join("model.json"))["trunk"], trunk, "{name}");
        let sub = tmp.path().join(format!("{name}.csv"));
        run_ok(&["predict", "--model", s(&run), "--images", s(&images), "--out", s(&sub), "--device", "cpu"]);
        assert_eq!(std::fs::read_to_string(&sub).unwrap().lines().count(), 40, "{name}");
    }
    // layerwise: heads first, then the trunk's groups from the output side down
    let lw = tmp.path().join("layerwise");
    train(&data, &lw, &["--trunk", trunk, "--mode", "flat", "--top-k", "10", "--strategy", "layerwise", "--epochs", "2"]);
    let sched = json(&lw.join("schedule.json"));
    let names: Vec<&str> = sched["stages"].as_array().unwrap().iter().map(|st| st["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["heads", top]);
    assert_eq!(std::fs::read_to_string(lw.join("metrics.jsonl")).unwrap().lines().count(), 2);
}

#[test]
fn densenet121_runs_every_mode_and_layerwise() {
    every_mode("densenet121", "+features.transition3+features.denseblock4+features.norm5");
}

#[test]
fn efficientnet_b0_runs_every_mode_and_layerwise() {
    every_mode("efficientnet_b0", "+features.6+features.7+features.8");
}

#[test]
fn convnext_tiny_runs_every_mode_and_layerwise() {
    every_mode("convnext_tiny", "+features.6+features.7");
}
