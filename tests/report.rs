//! End-to-end tests of `conceptree analyse`: synthetic phantoms, a prediction file made by
//! perturbing their labels (one image per error kind), the report files, exit codes, and a
//! headless-Chromium rendering of report.html.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use assert_cmd::Command;
use common::chromium::{chromium_cmd, chromium_or_skip, run_limited, Browser};
use common::{read_map, write_map, LabelMap as Map};

mod common;

const CT: &str = "C0040405";
const MRI: &str = "C0024485";
const XR: &str = "C1306645";
const US: &str = "C0041618";
const CHEST: &str = "C0817096";
const ABDOMEN: &str = "C0000726";
const LEFT: &str = "C0205091";
const RIGHT: &str = "C0205090";
const MODALITIES: [&str; 4] = [CT, MRI, XR, US];
/// Anatomy CUIs of the phantoms: head and neck, head, brain, chest, abdomen, knee.
const ANATOMY: [&str; 6] = ["C0460004", "C0018670", "C0006104", CHEST, ABDOMEN, "C0022742"];
/// Root concepts (no ancestors) an image may lack: pneumonia, contrast, axial, coronal.
const EXTRAS: [&str; 4] = ["C0032285", "C0009924", "C0205131", "C0205123"];
const KINDS: [&str; 8] =
    ["correct", "wrong_modality", "wrong_anatomy", "laterality_flipped", "incoherent", "extra_concept", "missed_concept", "mixed"];

fn bin() -> Command {
    Command::cargo_bin("conceptree").expect("binary built")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = bin().args(args).output().expect("runs");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn run_ok(args: &[&str]) -> String {
    let (code, out, err) = run(args);
    assert_eq!(code, 0, "conceptree {args:?} failed:\n{out}\n{err}");
    out
}

/// A phantom data set with a prediction file in which each error kind occurs a known number of
/// times, plus a scores file, two broken images and one image left out of the predictions.
struct Case {
    _dir: tempfile::TempDir,
    root: PathBuf,
    gt: PathBuf,
    pred: PathBuf,
    scores: PathBuf,
    images: PathBuf,
    /// Expected count per kind.
    expected: BTreeMap<&'static str, usize>,
    /// Expected images on the modality confusion diagonal.
    modality_agree: usize,
}

fn other_modality(g: &BTreeSet<String>) -> &'static str {
    MODALITIES.into_iter().find(|m| !g.contains(*m)).unwrap()
}

fn modality_of(g: &BTreeSet<String>) -> String {
    MODALITIES.into_iter().find(|m| g.contains(*m)).expect("every phantom has a modality").to_string()
}

fn extra_for(g: &BTreeSet<String>) -> &'static str {
    EXTRAS.into_iter().find(|e| !g.contains(*e)).expect("some root concept is absent")
}

fn make_case() -> Case {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let data = root.join("data");
    run_ok(&["data", "synth", "--out", s(&data), "--n", "20", "--size", "32"]);
    let mut gt = read_map(&data.join("labels.csv"));
    assert_eq!(gt.len(), 20);
    let mut pred = gt.clone();
    let ids: Vec<String> = gt.keys().cloned().collect();
    let mut free: Vec<String> = ids.clone();

    // Laterality flip: prefer a phantom with a side; otherwise give one a side in the GT.
    let lat = free.iter().position(|id| gt[id].contains(LEFT) || gt[id].contains(RIGHT)).unwrap_or(0);
    let id = free.remove(lat);
    let g = gt.get_mut(&id).unwrap();
    if !g.contains(LEFT) && !g.contains(RIGHT) {
        g.insert(LEFT.to_string());
    }
    let mut p = g.clone();
    if p.remove(LEFT) {
        p.insert(RIGHT.to_string());
    } else {
        p.remove(RIGHT);
        p.insert(LEFT.to_string());
    }
    pred.insert(id.clone(), p);

    let mut take = || free.remove(0);
    // Wrong modality (its image file will be deleted).
    let wm = take();
    let mut p = gt[&wm].clone();
    let m = modality_of(&p);
    p.remove(&m);
    p.insert(other_modality(&gt[&wm]).to_string());
    pred.insert(wm.clone(), p);
    // Wrong anatomy (its image file will be corrupted).
    let wa = take();
    let mut p: BTreeSet<String> = gt[&wa].iter().filter(|c| !ANATOMY.contains(&c.as_str())).cloned().collect();
    p.insert(if gt[&wa].contains(CHEST) { ABDOMEN } else { CHEST }.to_string());
    pred.insert(wa.clone(), p);
    // Incoherent: a second modality chain.
    let inc = take();
    pred.get_mut(&inc).unwrap().insert(other_modality(&gt[&inc]).to_string());
    // Extra: a root concept the image lacks.
    let ex = take();
    pred.get_mut(&ex).unwrap().insert(extra_for(&gt[&ex]).to_string());
    // Missed: the modality dropped.
    let mi = take();
    let m = modality_of(&gt[&mi]);
    pred.get_mut(&mi).unwrap().remove(&m);
    // Mixed: modality dropped and an extra root concept added.
    let mx = take();
    let m = modality_of(&gt[&mx]);
    let p = pred.get_mut(&mx).unwrap();
    p.remove(&m);
    p.insert(extra_for(&gt[&mx]).to_string());
    // Missing prediction: analysed as empty, so missed.
    let gone = take();
    pred.remove(&gone);

    let gt_path = root.join("gt.tsv");
    let pred_path = root.join("pred.tsv");
    write_map(&gt_path, &gt);
    write_map(&pred_path, &pred);

    // Scores: GT concepts 0.8, every other phantom concept 0.2 -> perfect for t in (0.2, 0.8].
    let all: BTreeSet<&str> =
        MODALITIES.iter().chain(&ANATOMY).chain(&EXTRAS).copied().chain([LEFT, RIGHT]).chain(gt.values().flatten().map(String::as_str)).collect();
    let scores: String = gt
        .iter()
        .map(|(id, g)| {
            let pairs: Vec<String> = all.iter().map(|c| format!("{c}:{}", if g.contains(*c) { 0.8 } else { 0.2 })).collect();
            format!("{id}\t{}\n", pairs.join(";"))
        })
        .collect();
    let scores_path = root.join("scores.tsv");
    std::fs::write(&scores_path, scores).unwrap();

    let images = data.join("images");
    std::fs::remove_file(images.join(format!("{wm}.jpg"))).unwrap();
    std::fs::write(images.join(format!("{wa}.jpg")), b"this is not a jpeg").unwrap();

    let expected: BTreeMap<&str, usize> = [
        ("correct", 12),
        ("wrong_modality", 1),
        ("wrong_anatomy", 1),
        ("laterality_flipped", 1),
        ("incoherent", 1),
        ("extra_concept", 1),
        ("missed_concept", 2),
        ("mixed", 1),
    ]
    .into();
    // Off the modality diagonal: wrong modality, incoherent (several), missed, mixed, missing.
    Case { _dir: dir, root, gt: gt_path, pred: pred_path, scores: scores_path, images, expected, modality_agree: 15 }
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn analyse(c: &Case, out: &Path, extra: &[&str]) -> String {
    let mut args = vec!["analyse", "--gt", s(&c.gt), "--pred", s(&c.pred), "--images", s(&c.images), "--out", s(out), "--allow-missing"];
    args.extend_from_slice(extra);
    run_ok(&args)
}

#[test]
fn analyse_end_to_end_with_scores() {
    let c = make_case();
    let out = c.root.join("report");
    let stdout = analyse(&c, &out, &["--scores", s(&c.scores), "--samples", "2"]);
    assert!(stdout.contains("ImageCLEF F1") && stdout.contains("summary.md"), "{stdout}");
    assert!(stdout.contains("2 sample image(s) without thumbnail"), "{stdout}");
    for f in ["report.html", "summary.md", "analysis.json", "per_level_f1.svg", "concept_f1_vs_frequency.svg", "error_kinds.svg", "threshold_curve.svg"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let j = read_json(&out.join("analysis.json"));
    let counts: BTreeMap<String, usize> = j["error_counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["kind"].as_str().unwrap().to_string(), k["count"].as_u64().unwrap() as usize))
        .collect();
    let kinds: Vec<&str> = j["error_counts"].as_array().unwrap().iter().map(|k| k["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, KINDS, "precedence order");
    for (k, n) in &c.expected {
        assert_eq!(counts[*k], *n, "count of {k}: {counts:?}");
    }
    assert_eq!(j["images"].as_array().unwrap().len(), 20);
    assert_eq!(j["images"].as_array().unwrap().iter().filter(|im| im["missing_prediction"] == true).count(), 1);
    assert_eq!(j["missing_thumbnails"], 2);
    let modality = j["confusions"].as_array().unwrap().iter().find(|t| t["level"] == "modality").expect("modality table");
    let total: u64 = modality["counts"].as_array().unwrap().iter().flat_map(|r| r.as_array().unwrap()).map(|n| n.as_u64().unwrap()).sum();
    assert_eq!(total, 20);
    assert_eq!(modality["n_agree"], c.modality_agree);
    assert!(modality["cols"].as_array().unwrap().iter().any(|k| k == "several"));
    let tc = &j["threshold_curve"];
    assert_eq!(tc["best_f1"].as_f64().unwrap(), 1.0);
    assert!((tc["best_threshold"].as_f64().unwrap() - 0.25).abs() < 1e-6, "{}", tc["best_threshold"]);
    // The official figure in the JSON is the one `evaluate` prints.
    let ev = run_ok(&["evaluate", "--gt", s(&c.gt), "--pred", s(&c.pred), "--allow-missing", "--json"]);
    let ev: serde_json::Value = serde_json::from_str(&ev).unwrap();
    assert_eq!(ev["imageclef_f1"], j["metrics"]["imageclef_f1"]);

    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    // Samples: 2 correct, 2 missed, one of each other kind = 10 rows, 2 without image.
    assert_eq!(html.matches("<img src=\"data:image/jpeg;base64,").count(), 8);
    assert_eq!(html.matches("class=\"ph\"").count(), 2);
    for k in KINDS {
        assert!(html.contains(&format!("id=\"kind-{k}\"")), "section {k}");
    }
    assert!(html.contains("X-Ray Computed Tomography") && html.contains("Best global threshold"));
    assert_eq!(html.matches("<svg").count(), 4);
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(md.contains("**ImageCLEF F1: ") && md.contains("## Confusion tables") && md.contains("| Wrong modality | 1 |"));
}

#[test]
fn analyse_without_scores_or_images() {
    let c = make_case();
    let out = c.root.join("plain");
    run_ok(&["analyse", "--gt", s(&c.gt), "--pred", s(&c.pred), "--out", s(&out), "--allow-missing", "--samples", "1"]);
    assert!(!out.join("threshold_curve.svg").exists());
    let j = read_json(&out.join("analysis.json"));
    assert!(j["threshold_curve"].is_null());
    // 8 kinds, one sample each, none with a thumbnail: no images directory.
    assert_eq!(j["missing_thumbnails"], 8);
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("Skipped: no scores file given"));
    assert!(!html.contains("data:image/jpeg;base64"));
    // An images directory that does not exist is reported, not fatal.
    let out2 = c.root.join("nodir");
    run_ok(&["analyse", "--gt", s(&c.gt), "--pred", s(&c.pred), "--images", s(&c.root.join("nope")), "--out", s(&out2), "--allow-missing"]);
    let html = std::fs::read_to_string(out2.join("report.html")).unwrap();
    assert!(html.contains("does not exist"));
}

#[test]
fn analyse_bad_input_exits_2() {
    let c = make_case();
    let out = c.root.join("bad");
    // A GT image missing from the predictions, without --allow-missing.
    let (code, _, err) = run(&["analyse", "--gt", s(&c.gt), "--pred", s(&c.pred), "--out", s(&out)]);
    assert_eq!(code, 2, "{err}");
    // A malformed prediction line.
    let bad_pred = c.root.join("bad_pred.tsv");
    std::fs::write(&bad_pred, "SYN_00000\tC0040405;C0040405\n").unwrap();
    let (code, _, err) = run(&["analyse", "--gt", s(&c.gt), "--pred", s(&bad_pred), "--out", s(&out), "--allow-missing"]);
    assert_eq!(code, 2, "{err}");
    // A malformed scores file names its line.
    let bad_scores = c.root.join("bad_scores.tsv");
    std::fs::write(&bad_scores, "SYN_00000\tC0040405:0.5\nSYN_00001\tC0040405:7\n").unwrap();
    let (code, _, err) =
        run(&["analyse", "--gt", s(&c.gt), "--pred", s(&c.pred), "--out", s(&out), "--allow-missing", "--scores", s(&bad_scores)]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("bad_scores.tsv:2"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Headless Chromium

#[test]
fn report_renders_in_headless_chromium() {
    let Some(bin) = chromium_or_skip() else { return };
    let c = make_case();
    let out = c.root.join("report");
    analyse(&c, &out, &["--scores", s(&c.scores)]);
    let html = out.join("report.html");
    let url = format!("file://{}", html.display());
    let tmp = tempfile::tempdir().unwrap();

    let shot = tmp.path().join("shot.png");
    let mut cmd = chromium_cmd(&bin, &tmp.path().join("profile1"));
    cmd.arg(format!("--screenshot={}", shot.display())).arg("--window-size=1200,1600").arg(&url);
    run_limited(cmd, &tmp.path().join("shot.log"), Duration::from_secs(60)).unwrap();
    assert!(shot.is_file(), "no screenshot written");
    let img = image::open(&shot).expect("screenshot decodes").to_luma8();
    assert_eq!((img.width(), img.height()), (1200, 1600));
    let px: Vec<f64> = img.pixels().map(|p| f64::from(p.0[0])).collect();
    let mean = px.iter().sum::<f64>() / px.len() as f64;
    let var = px.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / px.len() as f64;
    let dark = px.iter().filter(|v| **v < 128.0).count() as f64 / px.len() as f64;
    assert!(var > 100.0 && dark > 0.005, "screenshot looks blank: mean {mean:.1}, variance {var:.1}, dark share {dark:.4}");
    if let Ok(keep) = std::env::var("CONCEPTREE_SCREENSHOT_DIR") {
        let _ = std::fs::create_dir_all(&keep);
        let _ = std::fs::copy(&shot, Path::new(&keep).join("report.png"));
        let _ = std::fs::copy(&html, Path::new(&keep).join("report.html"));
    }

    let dom_path = tmp.path().join("dom.html");
    let mut cmd = chromium_cmd(&bin, &tmp.path().join("profile2"));
    cmd.arg("--dump-dom").arg(&url);
    run_limited(cmd, &dom_path, Duration::from_secs(60)).unwrap();
    let dom = std::fs::read_to_string(&dom_path).unwrap();
    let j = read_json(&out.join("analysis.json"));
    let f1 = format!("{:.4}", j["metrics"]["imageclef_f1"].as_f64().unwrap());
    assert!(dom.contains("Concept detection: error analysis"), "headline missing from the DOM");
    assert!(dom.contains("ImageCLEF F1") && dom.contains(&f1), "ImageCLEF F1 {f1} missing from the DOM");
    assert!(dom.contains("data:image/jpeg;base64"));
}

/// A confusion table of 13 columns (12 anatomy concepts with long names, and "none") at a
/// 1300 px window: the page does not overflow sideways (where its right columns would be cut
/// off), and every table either fits or scrolls sideways inside its own box.
#[test]
fn a_wide_confusion_table_scrolls_in_its_box_at_1300_px() {
    let Some(bin) = chromium_or_skip() else { return };
    let tmp = tempfile::tempdir().unwrap();
    // anatomy concepts of the built-in ontology, none a part of another
    let anatomy = [
        "C0039493", "C0037303", "C0225883", "C0225860", "C0225844", "C0149566", "C0009437", "C0024957", "C0030580", "C0035561", "C0007272", "C0032005",
    ];
    let (mut gt, mut pred) = (Map::new(), Map::new());
    for i in 0..36 {
        let id = format!("img{i:02}");
        let a = anatomy[i % anatomy.len()];
        // every other image read as the next concept; one image without anatomy
        let p = if i % 2 == 1 { anatomy[(i + 1) % anatomy.len()] } else { a };
        let set = |c: &str| if i == 35 { BTreeSet::from([CT.to_string()]) } else { BTreeSet::from([CT.to_string(), c.to_string()]) };
        gt.insert(id.clone(), set(a));
        pred.insert(id, set(p));
    }
    let (gt_path, pred_path, out) = (tmp.path().join("gt.tsv"), tmp.path().join("pred.tsv"), tmp.path().join("report"));
    write_map(&gt_path, &gt);
    write_map(&pred_path, &pred);
    run_ok(&["analyse", "--gt", s(&gt_path), "--pred", s(&pred_path), "--out", s(&out)]);
    let url = format!("file://{}", out.join("report.html").display());
    let mut b = Browser::launch(&bin, &tmp.path().join("profile"), &url, 1300, 900).unwrap();
    b.wait_for("document.readyState === 'complete'", Duration::from_secs(30)).unwrap();
    let js = r#"(() => {
        const view = document.documentElement.clientWidth;
        const tables = [...document.querySelectorAll('table')].map(t => {
            const box = t.parentElement;
            const scrolls = ['auto', 'scroll'].includes(getComputedStyle(box).overflowX);
            return { cols: t.rows[0].cells.length, right: t.getBoundingClientRect().right, box_right: box.getBoundingClientRect().right,
                     width: t.scrollWidth, box_width: box.clientWidth, scrolls };
        });
        return JSON.stringify({ view, page: document.documentElement.scrollWidth, tables });
    })()"#;
    let v: serde_json::Value = serde_json::from_str(b.eval(js).unwrap().as_str().unwrap()).unwrap();
    let view = v["view"].as_f64().unwrap();
    assert!(view >= 1250.0, "{v}");
    assert!(v["page"].as_f64().unwrap() <= view, "the page overflows sideways, its right part cut off: {v}");
    let tables = v["tables"].as_array().unwrap();
    let wide = tables.iter().find(|t| t["cols"].as_u64() == Some(15)).unwrap_or_else(|| panic!("no 13-column confusion table: {v}"));
    assert!(wide["width"].as_f64().unwrap() > wide["box_width"].as_f64().unwrap(), "the test table should be wider than the page: {wide}");
    for t in tables {
        let fits = t["right"].as_f64().unwrap() <= view + 0.5;
        let scrolls = t["scrolls"].as_bool().unwrap() && t["box_right"].as_f64().unwrap() <= view + 0.5;
        assert!(fits || scrolls, "a table is cut off: {t}");
    }
}

// ---------------------------------------------------------------------------------------------
// Every listed image of every error kind against that kind's rule as the report words it

/// The rules exactly as the report shows them (analysis.json `error_counts[].description`, the
/// "rule" column of the page), in precedence order. [`rule_holds`] is written from these words;
/// if the wording changes, this test fails until the checker is read against the new words.
const RULES: [(&str, &str); 8] = [
    ("correct", "the prediction equals the ground truth"),
    (
        "wrong_modality",
        "a ground-truth modality concept is not predicted and another modality concept is predicted instead (e.g. CT read as MRI; a wrong sub-type of the modality counts too)",
    ),
    (
        "wrong_anatomy",
        "the modality concepts match the ground truth exactly, but a ground-truth anatomy concept is not predicted and another anatomy concept is predicted instead",
    ),
    (
        "laterality_flipped",
        "the modality and anatomy concepts match the ground truth exactly, and the ground truth says left (not right) while the prediction says right (not left), or the reverse",
    ),
    (
        "incoherent",
        "the prediction contradicts the ontology while the ground truth does not: two modalities of which neither is a sub-type of the other, or a concept without one of its broader concepts (counting the broader concepts that occur anywhere in the ground truth)",
    ),
    ("extra_concept", "everything in the ground truth is predicted, plus something more"),
    ("missed_concept", "nothing wrong is predicted, but some ground-truth concept is missing (including an empty or missing prediction)"),
    (
        "mixed",
        "some ground-truth concepts are missed and some wrong ones predicted, and no rule above applies (e.g. a wrong plane or view, or a missed modality together with a wrong anatomy or side)",
    ),
];

type Set = BTreeSet<String>;

fn on_level<'a>(o: &conceptree::ontology::Ontology, s: &'a Set, level: conceptree::ontology::Level) -> BTreeSet<&'a str> {
    s.iter().filter(|c| o.level_of(c) == Some(level)).map(String::as_str).collect()
}

/// "contradicts the ontology": two modalities of which neither is a sub-type of the other, or a
/// concept without one of its broader concepts that occur in the ground truth (`vocab`).
fn contradicts_ontology(o: &conceptree::ontology::Ontology, vocab: &Set, s: &Set) -> bool {
    use conceptree::ontology::Level;
    let mods = on_level(o, s, Level::Modality);
    let two_modalities =
        mods.iter().any(|a| mods.iter().any(|b| a != b && !o.ancestors(a).contains(*b) && !o.ancestors(b).contains(*a)));
    let without_broader = s.iter().any(|c| o.ancestors(c).iter().any(|a| vocab.contains(a) && !s.contains(a)));
    two_modalities || without_broader
}

/// Whether the rule of `kind` (as worded in [`RULES`]) holds for ground truth `g`, prediction `p`.
fn rule_holds(kind: &str, o: &conceptree::ontology::Ontology, vocab: &Set, g: &Set, p: &Set) -> bool {
    use conceptree::ontology::Level::{Anatomy, Modality};
    let (gm, pm, ga, pa) = (on_level(o, g, Modality), on_level(o, p, Modality), on_level(o, g, Anatomy), on_level(o, p, Anatomy));
    let says = |s: &Set, side: &str| s.contains(side);
    match kind {
        "correct" => p == g,
        "wrong_modality" => gm.iter().any(|c| !p.contains(*c)) && pm.iter().any(|c| !g.contains(*c)),
        "wrong_anatomy" => gm == pm && ga.iter().any(|c| !p.contains(*c)) && pa.iter().any(|c| !g.contains(*c)),
        "laterality_flipped" => {
            gm == pm
                && ga == pa
                && ((says(g, LEFT) && !says(g, RIGHT) && says(p, RIGHT) && !says(p, LEFT))
                    || (says(g, RIGHT) && !says(g, LEFT) && says(p, LEFT) && !says(p, RIGHT)))
        }
        "incoherent" => contradicts_ontology(o, vocab, p) && !contradicts_ontology(o, vocab, g),
        "extra_concept" => p.is_superset(g) && p != g,
        "missed_concept" => p.is_subset(g) && p != g,
        "mixed" => g.difference(p).next().is_some() && p.difference(g).next().is_some(),
        other => panic!("unknown kind {other}"),
    }
}

/// 300 phantoms whose ground truth is varied (sub-modalities, a side added, no modality, a brain
/// without its head, empty) and predictions perturbed at random (seeded): modalities replaced,
/// dropped, added or refined; anatomy replaced, dropped or cut to its leaf; sides flipped, added
/// or dropped; other concepts dropped or added from the whole ontology; empty or missing.
fn varied_case() -> (tempfile::TempDir, PathBuf, PathBuf, Map) {
    use conceptree::ontology::{Level, Ontology};
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};
    let o = Ontology::builtin();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    run_ok(&["data", "synth", "--out", s(&data), "--n", "300", "--size", "32", "--seed", "11"]);
    let mut gt = read_map(&data.join("labels.csv"));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2024);
    let sub_of = |m: &str| -> Vec<String> { o.descendants(m).into_iter().collect() };
    let all: Vec<String> = o.concepts().map(|c| c.cui.clone()).collect();
    let top_modalities: Vec<&str> = o.concepts_of_level(Level::Modality).into_iter().filter(|c| o.ancestors(c).is_empty()).collect();
    let anatomy: Vec<&str> = o.concepts_of_level(Level::Anatomy);
    for g in gt.values_mut() {
        let r: f64 = rng.gen();
        let m = MODALITIES.iter().find(|m| g.contains(**m)).map(|m| m.to_string());
        if r < 0.3 {
            if let Some(m) = &m {
                if let Some(sub) = sub_of(m).choose(&mut rng) {
                    g.insert(sub.clone());
                }
            }
        } else if r < 0.55 && !g.contains(LEFT) && !g.contains(RIGHT) {
            g.insert(if rng.gen_bool(0.5) { LEFT } else { RIGHT }.to_string());
        } else if r < 0.59 {
            if let Some(m) = &m {
                g.remove(m);
            }
        } else if r < 0.61 {
            g.retain(|c| o.level_of(c) != Some(Level::Anatomy));
            g.insert("C0006104".into()); // brain without head: an incoherent ground truth
        } else if r < 0.62 {
            g.clear();
        }
    }
    let mut pred: Map = BTreeMap::new();
    for (id, g) in &gt {
        let mut p = g.clone();
        let ops = rng.gen_range(0..=3);
        for _ in 0..ops {
            let pm: Vec<String> = on_level(&o, &p, Level::Modality).into_iter().map(str::to_string).collect();
            let pa: Vec<String> = on_level(&o, &p, Level::Anatomy).into_iter().map(str::to_string).collect();
            match rng.gen_range(0..15) {
                0 => {
                    // replace the modality chain by another top modality (maybe with a sub-type)
                    p.retain(|c| !pm.contains(c));
                    let t = top_modalities.choose(&mut rng).unwrap().to_string();
                    if rng.gen_bool(0.3) {
                        if let Some(sub) = sub_of(&t).choose(&mut rng) {
                            p.insert(sub.clone());
                        }
                    }
                    p.insert(t);
                }
                1 => p.retain(|c| !pm.contains(c)),
                2 => {
                    p.insert(top_modalities.choose(&mut rng).unwrap().to_string());
                }
                3 => {
                    if let Some(m) = pm.first() {
                        if let Some(sub) = sub_of(m).choose(&mut rng) {
                            p.insert(sub.clone());
                        }
                    }
                }
                4 => {
                    p.retain(|c| !pa.contains(c));
                    let a = anatomy.choose(&mut rng).unwrap().to_string();
                    if rng.gen_bool(0.7) {
                        p.extend(o.ancestors(&a));
                    }
                    p.insert(a);
                }
                5 => {
                    if let Some(a) = pa.choose(&mut rng) {
                        p.remove(a);
                    }
                }
                6 | 14 => {
                    let had = (p.remove(LEFT), p.remove(RIGHT));
                    match had {
                        (true, false) => p.insert(RIGHT.into()),
                        (false, true) => p.insert(LEFT.into()),
                        _ => p.insert(if rng.gen_bool(0.5) { LEFT } else { RIGHT }.into()),
                    };
                }
                7 => {
                    p.remove(LEFT);
                    p.remove(RIGHT);
                }
                8 | 9 => {
                    let v: Vec<String> = p.iter().cloned().collect();
                    if let Some(c) = v.choose(&mut rng) {
                        p.remove(c);
                    }
                }
                10 | 11 => {
                    p.insert(all.choose(&mut rng).unwrap().clone());
                }
                12 => p.clear(),
                _ => {}
            }
        }
        if rng.gen_bool(0.02) {
            continue; // no prediction line at all
        }
        pred.insert(id.clone(), p);
    }
    let gt_path = dir.path().join("gt.tsv");
    let pred_path = dir.path().join("pred.tsv");
    write_map(&gt_path, &gt);
    write_map(&pred_path, &pred);
    (dir, gt_path, pred_path, gt)
}

fn json_set(v: &serde_json::Value) -> Set {
    v.as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect()
}

#[test]
fn every_listed_image_obeys_its_kinds_rule_as_written() {
    let o = conceptree::ontology::Ontology::builtin();
    let (dir, gt_path, pred_path, gt) = varied_case();
    let out = dir.path().join("report");
    run_ok(&["analyse", "--gt", s(&gt_path), "--pred", s(&pred_path), "--out", s(&out), "--allow-missing", "--samples", "1000"]);
    let j = read_json(&out.join("analysis.json"));
    let vocab: Set = gt.values().flatten().map(|c| c.to_uppercase()).collect();

    // The rules the report shows are the ones checked here, in this order.
    let shown: Vec<(String, String)> = j["error_counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["kind"].as_str().unwrap().to_string(), k["description"].as_str().unwrap().to_string()))
        .collect();
    let expected: Vec<(String, String)> = RULES.iter().map(|(k, d)| (k.to_string(), d.to_string())).collect();
    assert_eq!(shown, expected, "the report's rules changed: re-read rule_holds against them");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    for (_, rule) in RULES {
        assert!(html.contains(rule), "rule not shown on the page: {rule}");
    }

    // Every analysed image: its kind's rule holds, and no earlier kind's rule does.
    let images = j["images"].as_array().unwrap();
    assert!(images.len() > 280, "{} images analysed", images.len());
    let mut by_kind: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut sets: BTreeMap<String, (Set, Set)> = BTreeMap::new();
    for im in images {
        let id = im["id"].as_str().unwrap().to_string();
        let kind = im["kind"].as_str().unwrap();
        let (matched, missed, extra) = (json_set(&im["matched"]), json_set(&im["missed"]), json_set(&im["extra"]));
        let g: Set = matched.union(&missed).cloned().collect();
        let p: Set = matched.union(&extra).cloned().collect();
        let upper: Set = gt[&id].iter().map(|c| c.to_uppercase()).collect();
        assert_eq!(g, upper, "{id}: matched + missed is the ground truth");
        let pos = RULES.iter().position(|(k, _)| *k == kind).unwrap_or_else(|| panic!("{id}: unknown kind {kind}"));
        assert!(rule_holds(kind, &o, &vocab, &g, &p), "{id} is listed as {kind} but its rule does not hold:\n  ground truth {g:?}\n  prediction {p:?}");
        for (earlier, _) in &RULES[..pos] {
            assert!(!rule_holds(earlier, &o, &vocab, &g, &p), "{id} is listed as {kind} but the earlier rule {earlier} holds:\n  ground truth {g:?}\n  prediction {p:?}");
        }
        // A level kind names the level the image first goes wrong on.
        let level = match kind {
            "wrong_modality" => Some("modality"),
            "wrong_anatomy" => Some("anatomy"),
            "laterality_flipped" => Some("laterality"),
            _ => None,
        };
        if let Some(l) = level {
            assert_eq!(im["first_wrong_level"], l, "{id} ({kind})");
        }
        by_kind.entry(kind.to_string()).or_default().push(id.clone());
        sets.insert(id, (g, p));
    }
    println!("images per kind: {:?}", by_kind.iter().map(|(k, v)| (k, v.len())).collect::<Vec<_>>());
    // The case is varied: every kind has members.
    for (k, _) in RULES {
        let n = by_kind.get(k).map_or(0, Vec::len);
        assert!(n >= 3, "only {n} images of kind {k}: {:?}", by_kind.iter().map(|(k, v)| (k, v.len())).collect::<Vec<_>>());
    }

    // The sample rows (JSON and page) list each image under its own kind, with its own sets.
    for ks in j["samples"].as_array().unwrap() {
        let kind = ks["kind"].as_str().unwrap();
        let rows = ks["samples"].as_array().unwrap();
        assert_eq!(rows.len(), by_kind.get(kind).map_or(0, Vec::len), "{kind}: --samples 1000 lists them all");
        for row in rows {
            let id = row["id"].as_str().unwrap();
            assert!(by_kind[kind].iter().any(|x| x == id), "{id} listed under {kind}");
            let (g, p) = &sets[id];
            let cuis = |v: &serde_json::Value| -> Set { v.as_array().unwrap().iter().map(|c| c["cui"].as_str().unwrap().to_string()).collect() };
            assert_eq!(&cuis(&row["gt"]), g, "{id}");
            assert_eq!(&cuis(&row["pred"]), p, "{id}");
        }
    }
    for (kind, ids) in &by_kind {
        let start = html.find(&format!("<section class=\"kind\" id=\"kind-{kind}\">")).unwrap_or_else(|| panic!("section {kind}"));
        let section = &html[start..start + html[start..].find("</section>").unwrap()];
        let listed: Vec<&str> = section.split("<b>").skip(1).map(|t| &t[..t.find("</b>").unwrap()]).collect();
        assert_eq!(listed, *ids, "images listed on the page under {kind}");
    }
}
