//! No command writes over one of its own inputs, over another of its outputs, or into a run it
//! did not create (issue 28): each writing command is refused with exit code 2, naming both paths,
//! and the file it would have destroyed is unchanged.
mod common;

use std::path::{Path, PathBuf};

use common::{run_fails, run_ok, s, synth, train};

/// A refused command: exit code 2, the message names every fragment in `names`.
fn refused(args: &[&str], names: &[&str]) -> String {
    let err = run_fails(args, 2);
    for n in names {
        assert!(err.contains(n), "{args:?}: the message does not name {n}:\n{err}");
    }
    err
}

fn bytes(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Phantoms and two finished one-epoch runs (`flat` and `other`), made once per test that needs them.
struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    data: PathBuf,
    run: PathBuf,
    other: PathBuf,
}

fn fixture(runs: bool) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let data = dir.join("data");
    synth(&data, 24, 1);
    let (run, other) = (dir.join("runs/flat"), dir.join("runs/other"));
    if runs {
        train(&data, &run, &["--mode", "flat"]);
        train(&data, &other, &["--mode", "flat", "--seed", "2"]);
    }
    Fixture { _tmp: tmp, dir, data, run, other }
}

#[test]
fn predict_never_writes_over_the_run_its_inputs_or_itself() {
    let f = fixture(true);
    let images = f.data.join("images");
    let weights = f.run.join("model.safetensors");
    let before = bytes(&weights);
    // the run's weights as --out
    refused(&["predict", "--model", s(&f.run), "--images", s(&images), "--out", s(&weights), "--device", "cpu"], &["--out", "model.safetensors", "runs/flat"]);
    assert_eq!(bytes(&weights), before, "the weights were written over");
    // --out and --explain the same file
    let a = f.dir.join("a.csv");
    refused(&["predict", "--model", s(&f.run), "--images", s(&images), "--out", s(&a), "--explain", s(&a), "--device", "cpu"], &["--out", "--explain", "same file"]);
    assert!(!a.exists());
    // --explain over the --ids file it reads
    let ids = f.dir.join("test.csv");
    std::fs::copy(f.data.join("labels.csv"), &ids).unwrap();
    let truth = bytes(&ids);
    refused(&["predict", "--model", s(&f.run), "--images", s(&images), "--ids", s(&ids), "--out", s(&a), "--explain", s(&ids), "--device", "cpu"], &["--explain", "--ids", "test.csv"]);
    assert_eq!(bytes(&ids), truth);
    // into another run, and into the image folder
    refused(&["predict", "--model", s(&f.run), "--images", s(&images), "--out", s(&f.other.join("x.csv")), "--device", "cpu"], &["runs/other", "did not create"]);
    refused(&["predict", "--model", s(&f.run), "--images", s(&images), "--out", s(&images.join("p.csv")), "--device", "cpu"], &["--out", "--images"]);
    // a file of its own into the run it reads is fine (the demo does it)
    run_ok(&["predict", "--model", s(&f.run), "--images", s(&images), "--out", s(&f.run.join("test_submission.csv")), "--device", "cpu"]);
}

#[test]
fn export_and_train_never_write_into_another_run_even_with_force() {
    let f = fixture(true);
    let model_json = f.other.join("model.json");
    let before = bytes(&model_json);
    refused(&["export", "--model", s(&f.run), "--out", s(&f.other), "--force"], &["--out", "runs/other", "--force included"]);
    assert_eq!(bytes(&model_json), before, "the other run's model.json was replaced");
    refused(&["export", "--model", s(&f.run), "--out", s(&f.run.join("export"))], &["runs/flat", "did not create"]);
    // train into a folder inside a run, into the image folder
    let mut args = common::train_args(&f.data, &f.other.join("sub"));
    args.push("--force".into());
    let err = run_fails(&args, 2);
    assert!(err.contains("runs/other") && err.contains("did not create"), "{err}");
    assert!(!f.other.join("sub").exists(), "a run directory was made before the refusal");
    let args = common::with(&common::train_args(&f.data, &f.data.join("images")), &["--force"]);
    let err = run_fails(&args, 2);
    assert!(err.contains("--out") && err.contains("--images"), "{err}");
    // data synth --force over a run
    refused(&["data", "synth", "--out", s(&f.other), "--n", "4", "--image-size", "32", "--force"], &["runs/other"]);
    assert_eq!(bytes(&model_json), before);
}

#[test]
fn data_commands_never_write_into_their_inputs() {
    let f = fixture(false);
    let (labels, images) = (f.data.join("labels.csv"), f.data.join("images"));
    let n_images = std::fs::read_dir(&images).unwrap().count();
    // the cache into the image folder, even with --force; into any non-empty folder without it
    refused(&["data", "cache", "--labels", s(&labels), "--images", s(&images), "--size", "32", "--out", s(&images), "--force"], &["--out", "--images"]);
    assert_eq!(std::fs::read_dir(&images).unwrap().count(), n_images);
    let full = f.dir.join("full");
    std::fs::create_dir(&full).unwrap();
    std::fs::write(full.join("mine.txt"), "keep").unwrap();
    refused(&["data", "cache", "--labels", s(&labels), "--images", s(&images), "--size", "32", "--out", s(&full)], &["mine.txt", "--force"]);
    run_ok(&["data", "cache", "--labels", s(&labels), "--images", s(&images), "--size", "32", "--out", s(&full), "--force"]);
    assert_eq!(std::fs::read_to_string(full.join("mine.txt")).unwrap(), "keep");
    // folders holding an input
    refused(&["data", "export-folders", "--labels", s(&labels), "--images", s(&images), "--out", s(&f.data)], &["--out", "holds"]);
    refused(&["data", "import-folders", "--root", s(&f.dir), "--out", s(&f.dir)], &["--out", "--root"]);
    // a plot over the label file it reads (--plot X writes X.svg and X.png)
    let svg_labels = f.dir.join("l.svg");
    std::fs::copy(&labels, &svg_labels).unwrap();
    refused(&["data", "stats", "--labels", s(&svg_labels), "--plot", s(&f.dir.join("l"))], &["--plot", "--labels", "l.svg"]);
    assert_eq!(bytes(&svg_labels), bytes(&labels));
    // an experiment into the folder of its labels
    for cmd in ["compare", "paper"] {
        refused(&["experiment", cmd, "--labels", s(&labels), "--images", s(&images), "--out", s(&f.data), "--trunk", "tiny"], &["--out", "--labels"]);
    }
    assert_eq!(std::fs::read_dir(&images).unwrap().count(), n_images);
}

#[test]
fn evaluation_review_and_ontology_outputs_are_never_their_inputs() {
    let f = fixture(false);
    let labels = f.data.join("labels.csv");
    let truth = bytes(&labels);
    // analyse into the folder holding the ground truth
    refused(&["analyse", "--gt", s(&labels), "--pred", s(&labels), "--out", s(&f.data)], &["--out", "--gt"]);
    // review: the database over a prediction file; an export or report over the database
    refused(&["review", "serve", "--db", s(&labels), "--pred", s(&labels), "--images", s(&f.data.join("images"))], &["--db", "--pred"]);
    let db = f.dir.join("review.sqlite");
    refused(&["review", "export", "--db", s(&db), "--out", s(&db)], &["--out", "--db"]);
    refused(&["review", "report", "--db", s(&db), "--out", s(&f.dir)], &["--out", "--db"]);
    // the ontology tools over the ontology or the UMLS file they read
    let onto = f.data.join("concepts.tsv");
    let onto_before = bytes(&onto);
    refused(&["ontology", "dot", "--ontology", s(&onto), "--out", s(&onto)], &["--out", "--ontology"]);
    refused(&["ontology", "from-umls", "--rrf", s(&onto), "--out", s(&onto)], &["--out", "--rrf"]);
    assert_eq!(bytes(&onto), onto_before);
    assert_eq!(bytes(&labels), truth);
}
