//! `conceptree export`: the exported TorchScript module, run by Python's torch through the
//! README's snippet, against `conceptree predict` on the same images.
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::*;

/// The Python of the `.venv` (the Makefile's `VIRTUAL_ENV`, else `./.venv`), if there is one.
/// A venv without torch is a failure, not a reason to skip.
fn python() -> Option<PathBuf> {
    let venv = std::env::var_os("VIRTUAL_ENV").map(PathBuf::from).unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv"));
    let py = venv.join("bin/python");
    if !py.is_file() {
        return None;
    }
    let ok = std::process::Command::new(&py).args(["-c", "import torch"]).output().expect("python runs");
    assert!(ok.status.success(), "{} cannot import torch: {}", py.display(), String::from_utf8_lossy(&ok.stderr));
    Some(py)
}

/// The README's Python block under the `export-snippet` marker.
fn readme_snippet() -> String {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let after = &readme[readme.find("<!-- export-snippet").expect("README marks the export snippet")..];
    let start = after.find("```python\n").expect("a python block follows the marker") + "```python\n".len();
    let end = after[start..].find("```").unwrap();
    after[start..start + end].to_string()
}

/// For each export folder: runs the snippet there (with no image files, so only its
/// definitions), feeds the exported example pixels through its `normalise`, the module and its
/// `decode`, and decodes rows of given probabilities with its `decode`. Arguments: the snippet,
/// then triples of export folder, probability rows with thresholds (JSON) and result file.
const HARNESS: &str = r#"
import json, sys
snippet, args = open(sys.argv[1]).read(), sys.argv[2:]
for export, random, out in zip(args[0::3], args[1::3], args[2::3]):
    sys.argv = ["use_export.py", export]
    ns = {}
    exec(snippet, ns)
    torch, model, normalise, decode, C = ns["torch"], ns["model"], ns["normalise"], ns["decode"], ns["C"]
    ex = json.load(open(f"{export}/examples.json"))
    n, c, s, _ = ex["pixels"]["shape"]
    pixels = torch.frombuffer(bytearray(open(f"{export}/{ex['pixels']['file']}", "rb").read()), dtype=torch.uint8).view(n, c, s, s)
    with torch.no_grad():
        probs = model(normalise(pixels))
    concepts = [decode(p) for p in probs]
    r = json.load(open(random))
    ns["thresholds"] = torch.tensor(r["thresholds"])  # what decode compares with
    rows = torch.tensor(r["rows"], dtype=torch.float32)
    json.dump({"ids": ex["ids"], "cuis": [c["cui"] for c in C], "probabilities": probs.tolist(), "concepts": concepts,
               "random_concepts": [decode(p) for p in rows]}, open(out, "w"))
"#;

#[derive(serde::Deserialize)]
struct PythonSide {
    ids: Vec<String>,
    cuis: Vec<String>,
    probabilities: Vec<Vec<f64>>,
    concepts: Vec<Vec<String>>,
    random_concepts: Vec<Vec<String>>,
}

/// Export `run` (with `images` as examples) and predict `images` with conceptree; returns the
/// export folder, the submission and the explain file.
fn export_and_predict(tmp: &Path, run: &Path, images: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let export = tmp.join(format!("export-{name}"));
    let out = run_ok(&["export", "--model", s(run), "--out", s(&export), "--examples", s(images)]);
    assert!(out.contains("reproduces the model's probabilities"), "{out}");
    let sub = tmp.join(format!("{name}.csv"));
    let explain = tmp.join(format!("{name}.jsonl"));
    run_ok(&["predict", "--model", s(run), "--images", s(images), "--out", s(&sub), "--explain", s(&explain), "--device", "cpu"]);
    (export, sub, explain)
}

/// The snippet's results for `export` (in `result`) against predict's submission and explain
/// file: the same concepts, probabilities within 1e-5. Returns how many images have a
/// non-empty prediction.
fn compare(name: &str, export: &Path, result: &Path, sub: &Path, explain: &Path) -> usize {
    let py_side: PythonSide = serde_json::from_str(&std::fs::read_to_string(result).unwrap()).unwrap();
    let predicted: BTreeMap<String, BTreeSet<String>> = std::fs::read_to_string(sub)
        .unwrap()
        .lines()
        .map(|l| {
            let (id, cuis) = l.split_once('\t').unwrap();
            (id.to_string(), cuis.split(';').filter(|c| !c.is_empty()).map(String::from).collect())
        })
        .collect();
    let scores: BTreeMap<String, BTreeMap<String, f64>> = std::fs::read_to_string(explain)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let m = v["scores"].as_object().unwrap().iter().map(|(c, p)| (c.clone(), p.as_f64().unwrap())).collect();
            (v["id"].as_str().unwrap().to_string(), m)
        })
        .collect();
    assert_eq!(py_side.ids.len(), predicted.len(), "{name}: every predicted image is an example");
    let meta: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(export.join("model.json")).unwrap()).unwrap();
    assert_eq!(meta["output"]["shape"][1].as_u64().unwrap() as usize, py_side.cuis.len());
    let mut worst = 0f64;
    for (i, id) in py_side.ids.iter().enumerate() {
        for (k, cui) in py_side.cuis.iter().enumerate() {
            let d = (py_side.probabilities[i][k] - scores[id][cui]).abs();
            worst = worst.max(d);
            assert!(d <= 1e-5, "{name}: {id} {cui}: python {} vs predict {}", py_side.probabilities[i][k], scores[id][cui]);
        }
        let py_set: BTreeSet<String> = py_side.concepts[i].iter().cloned().collect();
        assert_eq!(py_set, predicted[id], "{name}: {id}: the snippet's decoding differs from predict's");
    }
    eprintln!("{name}: {} images, largest probability difference {worst:.1e}", py_side.ids.len());
    // the example probabilities conceptree wrote are predict's too
    let raw = std::fs::read(export.join("examples.probabilities.f32")).unwrap();
    let k = py_side.cuis.len();
    assert_eq!(raw.len(), 4 * k * py_side.ids.len());
    for (j, chunk) in raw.chunks_exact(4).enumerate() {
        let v = f32::from_le_bytes(chunk.try_into().unwrap()) as f64;
        let (i, c) = (j / k, j % k);
        assert!((v - scores[&py_side.ids[i]][&py_side.cuis[c]]).abs() <= 1e-6, "{name}: examples.probabilities.f32 row {i} column {c}");
    }
    predicted.values().filter(|s| !s.is_empty()).count()
}

const LEVELS: [&str; 2] = ["--levels", "modality,anatomy,laterality"];

#[test]
fn exported_module_in_python_agrees_with_predict() {
    let levels = LEVELS;
    let runs: [(&str, Vec<&str>); 6] = [
        ("flat", vec!["--mode", "flat", "--top-k", "10"]),
        ("hierarchical", [vec!["--mode", "hierarchical"], levels.to_vec()].concat()),
        ("softmax-second", vec!["--mode", "hierarchical", "--single-valued", "second", "--levels", "modality,plane,view", "--epochs", "2"]),
        ("sigmoid-levels", vec!["--mode", "hierarchical", "--level-heads", "sigmoid", "--single-valued", "second", "--levels", "modality,anatomy,plane", "--epochs", "2"]),
        ("argmax-constrained", [vec!["--mode", "hierarchical", "--calibration", "none", "--max-constraint", "true", "--condition", "--epochs", "2"], levels.to_vec()].concat()),
        ("hybrid", vec!["--mode", "hybrid", "--levels", "modality,anatomy", "--rest-top-k", "5"]),
    ];
    export_round_trip("exported_module_in_python_agrees_with_predict", &runs);
}

/// The trunks beyond ResNet trace and export too: a hierarchical run on each (its single-label
/// levels always predict, so the concept sets compared are not empty).
#[test]
fn exported_modules_of_densenet_efficientnet_convnext_agree_with_predict() {
    let runs: Vec<(&str, Vec<&str>)> = ["densenet121", "efficientnet_b0", "convnext_tiny"].iter().map(|&t| (t, [vec!["--mode", "hierarchical", "--trunk", t], LEVELS.to_vec()].concat())).collect();
    export_round_trip("exported_modules_of_densenet_efficientnet_convnext_agree_with_predict", &runs);
}

/// Trains each of `runs` (name, options) on phantoms, exports it and predicts with it, runs the
/// README's snippet on every export and compares (see [`compare`]).
fn export_round_trip(test_name: &str, runs: &[(&str, Vec<&str>)]) {
    let Some(py) = python() else {
        eprintln!("SKIPPED {test_name}: no .venv with Python (set VIRTUAL_ENV or run `make venv`); the export round trip was NOT checked");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    synth(&data, 80, 11);
    // test images at another size than the model's, so resizing is part of the way
    let test = tmp.path().join("test");
    run_ok(&["data", "synth", "--out", s(&test), "--n", "40", "--image-size", "48", "--seed", "5"]);
    let images = test.join("images");
    let mut cases = Vec::new();
    for (name, extra) in runs {
        let run = tmp.path().join(name);
        train(&data, &run, extra);
        let (export, sub, explain) = export_and_predict(tmp.path(), &run, &images, name);
        let random = tmp.path().join(format!("{name}.random.json"));
        let random_sets = random_rows(&run, &random, 400, name.len() as u64);
        cases.push((name, export, random, tmp.path().join(format!("{name}.python.json")), sub, explain, random_sets));
    }
    let snippet = tmp.path().join("use_export.py");
    std::fs::write(&snippet, readme_snippet()).unwrap();
    let harness = tmp.path().join("harness.py");
    std::fs::write(&harness, HARNESS).unwrap();
    let mut args = vec![s(&harness).to_string(), s(&snippet).to_string()];
    for (_, export, random, result, ..) in &cases {
        args.extend([s(export).to_string(), s(random).to_string(), s(result).to_string()]);
    }
    let o = std::process::Command::new(&py).args(&args).output().unwrap();
    assert!(o.status.success(), "python failed:\n{}", String::from_utf8_lossy(&o.stderr));
    let mut non_empty = 0;
    for (name, export, _, result, sub, explain, random_sets) in &cases {
        non_empty += compare(name, export, result, sub, explain);
        let py_side: PythonSide = serde_json::from_str(&std::fs::read_to_string(result).unwrap()).unwrap();
        for (i, (py, rust)) in py_side.random_concepts.iter().zip(random_sets).enumerate() {
            assert_eq!(py, rust, "{name}: random row {i}: the snippet's decoding differs from conceptree's decoder");
        }
        assert_eq!(py_side.random_concepts.len(), random_sets.len());
    }
    assert!(non_empty > 0, "no run predicted any concept: the comparison of concept sets would be empty");
}

/// `n` rows of random probabilities for `run`'s concepts (a single-label head's summing to less
/// than 1, as a softmax without "none" does) and thresholds spread over (0, 1) concept by concept,
/// written to `file` as JSON; returns the concepts conceptree's decoder gives each row. Uniform
/// multi-label probabilities put children above parents and the spread thresholds put parents'
/// above children's, so every decoding step (cap, single label, threshold, closure) decides
/// something; the run's tuned thresholds are one per level, under which the closure adds nothing
/// the cap has not already let through.
fn random_rows(run: &Path, file: &Path, n: usize, seed: u64) -> Vec<Vec<String>> {
    use conceptree::predict::{LoadOptions, LoadedRun};
    let loaded = LoadedRun::open(run, tch::Device::Cpu, &LoadOptions::default()).unwrap();
    let decoder = loaded.decoder();
    let k = decoder.concepts.len();
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut uniform = move || {
        // xorshift64*: good enough for test data
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32
    };
    let mut probs = ndarray::Array2::<f32>::zeros((n, k));
    for mut row in probs.rows_mut() {
        for (kind, r) in decoder.heads() {
            let draws: Vec<f32> = r.clone().map(|_| uniform()).collect();
            let none = uniform();
            let total: f32 = draws.iter().sum::<f32>() + none;
            for (j, v) in r.clone().zip(draws) {
                row[j] = if *kind == conceptree::model::HeadKind::SingleLabel { v / total } else { v };
            }
        }
    }
    let spread = [0.02f32, 0.3, 0.6, 0.9, 0.15, 0.45, 0.75];
    let per_concept: Vec<f32> = (0..k).map(|j| spread[j % spread.len()]).collect();
    let mut thresholds = conceptree::eval::thresholds::Thresholds::new(0.5);
    thresholds.per_concept = decoder.concepts.iter().cloned().zip(per_concept.iter().copied()).collect();
    let rows: Vec<Vec<f32>> = probs.rows().into_iter().map(|r| r.to_vec()).collect();
    std::fs::write(file, serde_json::json!({ "thresholds": per_concept, "rows": rows }).to_string()).unwrap();
    decoder.decide(&probs, &thresholds).into_iter().map(|s| s.into_iter().collect()).collect()
}

#[test]
fn export_refuses_knn_runs_and_existing_exports() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    synth(&data, 40, 3);
    let knn = tmp.path().join("knn");
    train(&data, &knn, &["--mode", "knn"]);
    let out = tmp.path().join("export");
    let err = run_fails(&["export", "--model", s(&knn), "--out", s(&out)], 2);
    assert!(err.contains("kNN run") && err.contains(s(&knn)), "{err}");
    assert!(!out.exists(), "nothing is written for a refused run");

    let flat = tmp.path().join("flat");
    train(&data, &flat, &["--mode", "flat", "--top-k", "5"]);
    run_ok(&["export", "--model", s(&flat), "--out", s(&out)]);
    let meta: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("model.json")).unwrap()).unwrap();
    assert_eq!((meta["format"].as_str(), meta["precision"].as_str(), meta["decoding"]["hierarchy"].as_bool()), (Some("torchscript"), Some("fp32"), Some(false)));
    assert_eq!(meta["concepts"].as_array().unwrap().len(), 5);
    let provenance: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(flat.join("provenance.json")).unwrap()).unwrap();
    assert_eq!(meta["ontology_hash"], provenance["ontology_hash"]);
    let before = std::fs::read(out.join("model.pt")).unwrap();
    let err = run_fails(&["export", "--model", s(&flat), "--out", s(&out)], 2);
    assert!(err.contains("is not empty") && err.contains("--force"), "{err}");
    assert_eq!(std::fs::read(out.join("model.pt")).unwrap(), before, "a refused export leaves the old one alone");
    run_ok(&["export", "--model", s(&flat), "--out", s(&out), "--force"]);
    // not even --force writes into the run itself (its model.json is the run's own)
    let own = std::fs::read(flat.join("model.json")).unwrap();
    let err = run_fails(&["export", "--model", s(&flat), "--out", s(&flat), "--force"], 2);
    assert!(err.contains("run directory itself"), "{err}");
    assert_eq!(std::fs::read(flat.join("model.json")).unwrap(), own);
    assert!(!flat.join("model.pt").exists());
    // a missing run names it
    let err = run_fails(&["export", "--model", s(&tmp.path().join("nope")), "--out", s(&tmp.path().join("e2"))], 2);
    assert!(err.contains("nope"), "{err}");
}
