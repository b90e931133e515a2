//! Real label sets on built-in data: phantoms with burned-in annotations (concepts on no level),
//! the hybrid model's residual head and the kNN retrieval baseline, end to end through the CLI.
mod common;

use std::path::Path;

use common::{read_map as labels, run_ok, s, train};
use serde_json::Value;

/// "Marrow", the label of a burned-in arrow: on no level.
const ARROW: &str = "C0376152";

fn annotated(dir: &Path, n: usize) {
    run_ok(&["data", "synth", "--out", s(dir), "--n", &n.to_string(), "--image-size", "32", "--seed", "3", "--annotations"]);
}

#[test]
fn hybrid_learns_a_residual_head_and_predicts_coherently() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, run) = (tmp.path().join("data"), tmp.path().join("hybrid"));
    annotated(&data, 80);
    train(&data, &run, &["--mode", "hybrid", "--epochs", "2", "--levels", "modality,anatomy", "--rest-pooling", "avg-max"]);
    let model: Value = serde_json::from_str(&std::fs::read_to_string(run.join("model.json")).unwrap()).unwrap();
    let heads: Vec<(&str, Vec<&str>)> = model["heads"].as_array().unwrap().iter().map(|h| (h["name"].as_str().unwrap(), h["concepts"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect())).collect();
    assert_eq!(heads.iter().map(|h| h.0).collect::<Vec<_>>(), ["modality", "anatomy", "rest"], "{heads:?}");
    // the residual head holds the arrow's label and no concept of the chosen levels
    let rest = &heads[2].1;
    assert!(rest.contains(&ARROW), "{rest:?}");
    assert!(rest.iter().all(|c| !heads[0].1.contains(c) && !heads[1].1.contains(c)));
    // --rest-pooling reaches the residual head only
    let pooling: Vec<&str> = model["heads"].as_array().unwrap().iter().map(|h| h["pooling"].as_str().unwrap_or("avg")).collect();
    assert_eq!(pooling, ["avg", "avg", "avg-max"]);
    // the schedule trains the residual head from its first stage
    let schedule: Value = serde_json::from_str(&std::fs::read_to_string(run.join("schedule.json")).unwrap()).unwrap();
    for stage in schedule["stages"].as_array().unwrap() {
        assert!(stage["heads_in_loss"].as_array().unwrap().contains(&Value::from(2)), "{stage}");
    }
    let sub = tmp.path().join("sub.csv");
    run_ok(&["predict", "--model", s(&run), "--images", s(&data.join("images")), "--out", s(&sub)]);
    let report: Value = serde_json::from_str(&run_ok(&["evaluate", "--gt", s(&data.join("labels.csv")), "--pred", s(&sub), "--json"])).unwrap();
    assert_eq!(report["coherence_rate"].as_f64(), Some(1.0), "{}", report["coherence_rate"]);
    assert!(report["per_level"].get("no level").is_some(), "concepts on no level are reported as their own group: {}", report["per_level"]);
}

#[test]
fn knn_recalls_the_labels_of_training_images_and_runs_like_any_model() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, flat, knn) = (tmp.path().join("data"), tmp.path().join("flat"), tmp.path().join("knn"));
    annotated(&data, 80);
    train(&data, &flat, &["--mode", "flat", "--top-k", "40"]);
    let weights = flat.join("model.safetensors");
    train(&data, &knn, &["--mode", "knn", "--top-k", "40", "--knn-k", "1", "--weights", s(&weights)]);
    assert!(knn.join("knn.safetensors").is_file() && knn.join("thresholds.json").is_file());
    // one neighbour: a training image's nearest training image is itself (similarity 1), so its
    // scores are its own labels, 1 or 0, and any threshold in (0, 1) gives them back exactly
    let split: Value = serde_json::from_str(&std::fs::read_to_string(knn.join("split.json")).unwrap()).unwrap();
    let train_ids: Vec<String> = split["train"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    assert!(train_ids.len() > 40, "{split}");
    let ids = tmp.path().join("ids.txt");
    std::fs::write(&ids, train_ids.join("\n")).unwrap();
    let sub = tmp.path().join("sub.csv");
    run_ok(&["predict", "--model", s(&knn), "--images", s(&data.join("images")), "--ids", s(&ids), "--out", s(&sub)]);
    let truth = labels(&data.join("labels.csv"));
    let got = labels(&sub);
    assert_eq!(got.len(), train_ids.len());
    for id in &train_ids {
        assert_eq!(got.get(id), truth.get(id), "{id}");
    }
}
