//! Every path a user takes: the cases a newcomer's trial broke (wrong results without a word,
//! crashes and raw errors), each run through the real binary.
mod common;

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

/// Phantoms in `dir` and a finished one-epoch hierarchical run of them in `run`.
fn trained(dir: &Path) -> (PathBuf, PathBuf) {
    let data = dir.join("data");
    synth(&data, 60, 11);
    let run = dir.join("run");
    train(&data, &run, &["--mode", "hierarchical", "--levels", "modality,anatomy,laterality"]);
    (data, run)
}

fn predict_args(run: &Path, data: &Path, out: &Path) -> Vec<String> {
    ["predict", "--model", s(run), "--images", s(&data.join("images")), "--out", s(out), "--device", "cpu"].map(String::from).to_vec()
}

#[test]
fn a_second_trainer_is_refused_while_the_first_holds_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    synth(&data, 200, 3);
    let run = tmp.path().join("run");
    let args = set(train_args(&data, &run), "--epochs", "3");
    let mut first = std_bin().args(&args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let t0 = Instant::now();
    while !std::fs::read_to_string(run.join("run.lock")).is_ok_and(|h| h.contains("pid")) {
        assert!(t0.elapsed() < Duration::from_secs(60), "the first trainer never took the lock");
        std::thread::sleep(Duration::from_millis(10));
    }
    let err = run_fails(&args, 2);
    assert!(err.contains("in use by another conceptree process") && err.contains(&format!("pid {}", first.id())), "{err}");
    // reading it (predict) waits for the trainer too
    let err = run_fails(&predict_args(&run, &data, &tmp.path().join("p.csv")), 2);
    assert!(err.contains("in use by another conceptree process"), "{err}");
    assert!(first.wait().unwrap().success());
    // one run's metrics, not two interleaved
    assert_eq!(std::fs::read_to_string(run.join("metrics.jsonl")).unwrap().lines().count(), 3);
}

#[test]
fn predict_refuses_what_would_change_its_predictions() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, run_dir) = trained(tmp.path());
    let out = tmp.path().join("p.csv");
    let args = predict_args(&run_dir, &data, &out);
    run_ok(&args);
    let reference = std::fs::read_to_string(&out).unwrap();
    // thresholds.json gone: refused, unless one threshold is asked for (and said)
    let thresholds = std::fs::read(run_dir.join("thresholds.json")).unwrap();
    std::fs::remove_file(run_dir.join("thresholds.json")).unwrap();
    let err = run_fails(&args, 2);
    assert!(err.contains("thresholds.json is missing") && err.contains("--threshold"), "{err}");
    let (code, _, err) = run(&with(&args, &["--threshold", "0.4"]));
    assert!(code == 0 && err.contains("--threshold 0.4"), "{err}");
    std::fs::write(run_dir.join("thresholds.json"), thresholds).unwrap();
    // thresholds out of range
    for bad in ["2", "-0.5", "NaN", "0"] {
        let err = run_fails(&with(&args, &[&format!("--threshold={bad}")]), 2);
        assert!(err.contains("--threshold") && err.contains("(0, 1]"), "{bad}: {err}");
    }
    // another ontology (a learned concept removed): refused, unless allowed (and said)
    let edited = tmp.path().join("edited.tsv");
    let own = std::fs::read_to_string(run_dir.join("ontology.tsv")).unwrap();
    let learned: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run_dir.join("model.json")).unwrap()).unwrap();
    // a learned concept that is nobody's parent, so the edited file stays a valid ontology
    let is_parent = |c: &str| own.lines().any(|l| l.split('\t').nth(3).is_some_and(|p| p.contains(c)));
    let cui = learned["heads"].as_array().unwrap().iter().flat_map(|h| h["concepts"].as_array().unwrap()).map(|c| c.as_str().unwrap()).find(|c| !is_parent(c)).unwrap().to_string();
    std::fs::write(&edited, own.lines().filter(|l| !l.starts_with(&cui)).collect::<Vec<_>>().join("\n")).unwrap();
    let edited_args = with(&args, &["--ontology", s(&edited)]);
    let err = run_fails(&edited_args, 2);
    assert!(err.contains("another ontology") && err.contains("--allow-ontology-change"), "{err}");
    let (code, _, err) = run(&with(&edited_args, &["--allow-ontology-change"]));
    assert!(code == 0 && err.contains("differs from the ontology the run was trained with"), "{err}");
    // by default the run's own copy decides: the same predictions as before
    run_ok(&args);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), reference);
    // an unfinished run: refused (its last weights only with --allow-unfinished and one threshold)
    let summary = std::fs::read(run_dir.join("summary.json")).unwrap();
    std::fs::remove_file(run_dir.join("summary.json")).unwrap();
    let err = run_fails(&args, 2);
    assert!(err.contains("has not finished training") && err.contains("--resume"), "{err}");
    run_ok(&with(&args, &["--allow-unfinished", "--threshold", "0.5"]));
    std::fs::write(run_dir.join("summary.json"), summary).unwrap();
    // damaged or missing weights: named, with what to do
    let weights = std::fs::read(run_dir.join("model.safetensors")).unwrap();
    std::fs::write(run_dir.join("model.safetensors"), &weights[..weights.len() / 2]).unwrap();
    let err = run_fails(&args, 2);
    assert!(err.contains("model.safetensors cannot be loaded") && err.contains("train the run again") && !err.contains("Os {"), "{err}");
    std::fs::remove_file(run_dir.join("model.safetensors")).unwrap();
    let err = run_fails(&args, 2);
    assert!(err.contains("model.safetensors cannot be loaded (the file does not exist)"), "{err}");
}

#[test]
fn image_files_are_found_in_any_case_and_two_files_of_one_id_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, run_dir) = trained(tmp.path());
    let images = data.join("images");
    let first = std::fs::read_to_string(data.join("labels.csv")).unwrap().lines().next().unwrap().split('\t').next().unwrap().to_string();
    // an upper-case extension is found by training and prediction alike
    std::fs::rename(images.join(format!("{first}.jpg")), images.join(format!("{first}.JPG"))).unwrap();
    let args = train_args(&data, &tmp.path().join("upper"));
    run_ok(&args);
    let out = tmp.path().join("p.csv");
    run_ok(&predict_args(&run_dir, &data, &out));
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().filter(|l| l.starts_with(&format!("{first}\t"))).count(), 1);
    // the same id as .JPG and .png: an error naming both files, everywhere
    image::GrayImage::new(8, 8).save(images.join(format!("{first}.png"))).unwrap();
    let err = run_fails(&predict_args(&run_dir, &data, &out), 2);
    assert!(err.contains(&format!("{first}.JPG")) && err.contains(&format!("{first}.png")), "{err}");
    let args = train_args(&data, &tmp.path().join("twice"));
    let err = run_fails(&args, 2);
    assert!(err.contains(&format!("{first}.JPG")) && err.contains(&format!("{first}.png")), "{err}");
    // --skip-bad skips it, counted
    let (code, stdout, err) = run(&with(&predict_args(&run_dir, &data, &out), &["--skip-bad"]));
    assert!(code == 0 && stdout.contains("(1 skipped)") && err.contains("ambiguous image"), "{stdout}\n{err}");
    // hidden files and folders named like images are not images: left out, and said
    std::fs::remove_file(images.join(format!("{first}.png"))).unwrap();
    std::fs::write(images.join(format!("._{first}.jpg")), b"resource fork").unwrap();
    std::fs::create_dir(images.join("folder.jpg")).unwrap();
    let (code, _, err) = run(&predict_args(&run_dir, &data, &out));
    assert!(code == 0 && err.contains("1 hidden file") && err.contains("folder.jpg"), "{err}");
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 60);
    // a symbolic link loop named like an image is said to be one (not a directory)
    std::os::unix::fs::symlink("loop.jpg", images.join("loop.jpg")).unwrap();
    let (code, _, err) = run(&predict_args(&run_dir, &data, &out));
    assert!(code == 0 && err.contains("1 director(ies)") && err.contains("1 symbolic link loop(s) such as") && err.contains("loop.jpg"), "{err}");
}

/// An image whose id a submission cannot carry (`sp ace.jpg`): predict refuses it, naming the
/// file and the way out, or with --skip-bad leaves it out and counts it; what it writes,
/// evaluate takes.
#[test]
fn predict_never_writes_an_id_its_readers_refuse() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, run_dir) = trained(tmp.path());
    let images = data.join("images");
    let first = std::fs::read_to_string(data.join("labels.csv")).unwrap().lines().next().unwrap().split('\t').next().unwrap().to_string();
    std::fs::copy(images.join(format!("{first}.jpg")), images.join("sp ace.jpg")).unwrap();
    let out = tmp.path().join("p.csv");
    let args = predict_args(&run_dir, &data, &out);
    let err = run_fails(&args, 2);
    assert!(err.contains("sp ace.jpg") && err.contains("whitespace") && err.contains("rename") && err.contains("--skip-bad"), "{err}");
    assert!(!out.exists());
    let (code, stdout, err) = run(&with(&args, &["--skip-bad"]));
    assert!(code == 0 && stdout.contains("(1 skipped)") && err.contains("id a submission cannot carry"), "{stdout}\n{err}");
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 60);
    run_ok(&["evaluate", "--gt", s(&data.join("labels.csv")), "--pred", s(&out)]);
    // the same id from an --ids list: the list's line
    let ids = tmp.path().join("ids.txt");
    std::fs::write(&ids, format!("{first}\nsp ace\n")).unwrap();
    let err = run_fails(&with(&args, &["--ids", s(&ids)]), 2);
    assert!(err.contains("ids.txt:2") && err.contains("whitespace"), "{err}");
}

/// `conceptree args`, killed and failed after `limit`: an input read without bound would hang.
fn run_within(args: &[&str], limit: Duration) -> (i32, String) {
    let mut child = std_bin().args(args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{args:?} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Every reader of a user's text file is bounded and precise: `/dev/zero` (one endless line) is
/// refused at once, a Latin-1 byte is named by file, line and column, and a symbolic link loop
/// is bad input like any other unreadable path; exit code 2 for all.
#[test]
fn text_inputs_are_read_bounded_and_errors_name_the_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    synth(&data, 20, 5);
    let labels = data.join("labels.csv");
    let text = std::fs::read_to_string(&labels).unwrap();
    // line 3's id gets a Latin-1 'e acute' after its first two characters
    let mut latin1 = Vec::new();
    for (i, l) in text.lines().enumerate() {
        if i == 2 {
            latin1.extend_from_slice(&l.as_bytes()[..2]);
            latin1.push(0xE9);
            latin1.extend_from_slice(&l.as_bytes()[2..]);
        } else {
            latin1.extend_from_slice(l.as_bytes());
        }
        latin1.push(b'\n');
    }
    let bad = tmp.path().join("latin1.csv");
    std::fs::write(&bad, &latin1).unwrap();
    let onto = tmp.path().join("latin1.tsv");
    let concepts = std::fs::read_to_string(data.join("concepts.tsv")).unwrap();
    std::fs::write(&onto, [concepts.as_bytes(), b"# caf\xe9\n"].concat()).unwrap();
    let onto_line = concepts.lines().count() + 1;
    let scores = tmp.path().join("scores.tsv");
    std::fs::write(&scores, b"# scores\nimg\xe9\tC0040405:0.5\n").unwrap();
    let loop_path = tmp.path().join("loop.csv");
    std::os::unix::fs::symlink("loop.csv", &loop_path).unwrap();
    let l = s(&labels);
    let zero = "/dev/zero";
    let report = tmp.path().join("report");
    let db = tmp.path().join("r.sqlite");
    let (images, run) = (data.join("images"), tmp.path().join("run"));
    let cases: Vec<(Vec<&str>, Vec<String>)> = vec![
        (vec!["evaluate", "--gt", l, "--pred", zero], vec!["/dev/zero:1".into(), "1 MiB".into()]),
        (vec!["evaluate", "--gt", zero, "--pred", l], vec!["/dev/zero:1".into()]),
        (vec!["evaluate", "--gt", l, "--pred", l, "--secondary", zero], vec!["/dev/zero:1".into()]),
        (vec!["data", "stats", "--labels", zero], vec!["/dev/zero:1".into()]),
        (vec!["ontology", "validate", zero], vec!["/dev/zero".into(), "line 1".into()]),
        (vec!["train", "--labels", l, "--images", s(&images), "--out", s(&run), "--trunk", "tiny", "--groups", zero], vec!["/dev/zero".into(), "line 1".into()]),
        (vec!["evaluate", "--gt", s(&bad), "--pred", l], vec!["latin1.csv:3: byte 0xE9 at column 3".into()]),
        (vec!["data", "stats", "--labels", s(&bad)], vec!["latin1.csv:3".into(), "UTF-8".into()]),
        (vec!["review", "serve", "--db", s(&db), "--images", s(&images), "--pred", s(&bad)], vec!["latin1.csv:3".into()]),
        (vec!["ontology", "validate", s(&onto)], vec!["latin1.tsv".into(), format!("line {onto_line}: byte 0xE9 at column 6")]),
        (vec!["analyse", "--gt", l, "--pred", l, "--out", s(&report), "--scores", s(&scores)], vec!["scores.tsv:2".into(), "0xE9".into()]),
        (vec!["evaluate", "--gt", l, "--pred", s(&loop_path)], vec!["loop.csv".into(), "symbolic links".into()]),
    ];
    for (args, want) in cases {
        let (code, err) = run_within(&args, Duration::from_secs(60));
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(want.iter().all(|w| err.contains(w.as_str())) && err.len() < 600, "{args:?}: {err}");
    }
}

#[test]
fn output_folders_must_be_new_or_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    synth(&data, 12, 1);
    // a smaller set over an existing one would leave stale images beside it
    let err = run_fails(&["data", "synth", "--out", s(&data), "--n", "5", "--image-size", "32"], 2);
    assert!(err.contains("is not empty") && err.contains("--force"), "{err}");
    run_ok(&["data", "synth", "--out", s(&data), "--n", "12", "--image-size", "32", "--seed", "1", "--force"]);
    // a run into somebody's folder
    let mine = tmp.path().join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join("notes.txt"), "keep me").unwrap();
    let args = train_args(&data, &mine);
    let err = run_fails(&args, 2);
    assert!(err.contains("notes.txt") && err.contains("--force"), "{err}");
    // --out is a file
    let file = tmp.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let args = train_args(&data, &file);
    let err = run_fails(&args, 2);
    assert!(err.contains("exists and is not a directory"), "{err}");
}

/// Run `args` with its standard output closed before it writes: it must end quietly (success, or
/// the SIGPIPE a closed pipe sends), never with a panic.
fn closed_pipe(args: &[&str]) {
    let mut child = std_bin().args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    drop(child.stdout.take());
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success() || status.signal() == Some(13), "{args:?}: {status:?}\n{err}");
    assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{args:?}: {err}");
}

#[test]
fn no_command_panics_on_a_closed_pipe() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    synth(&data, 30, 2);
    let labels = data.join("labels.csv");
    closed_pipe(&["evaluate", "--gt", s(&labels), "--pred", s(&labels)]);
    closed_pipe(&["evaluate", "--gt", s(&labels), "--pred", s(&labels), "--json"]);
    closed_pipe(&["data", "stats", "--labels", s(&labels)]);
    closed_pipe(&["ontology", "dot"]);
    closed_pipe(&["ontology", "stats"]);
    closed_pipe(&["ontology", "show", "C0006104"]);
    closed_pipe(&["ontology", "map", "--labels", s(&labels)]);
    closed_pipe(&["doctor"]);
    closed_pipe(&["--help"]);
}

#[test]
fn garbage_is_quoted_briefly_and_a_byte_order_mark_is_not_part_of_an_id() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    synth(&data, 20, 4);
    let labels = data.join("labels.csv");
    // one token of a million characters
    let bad = tmp.path().join("bad.csv");
    std::fs::write(&bad, format!("img1\tC0000001;{}\n", "X".repeat(1 << 20))).unwrap();
    for args in [vec!["data", "stats", "--labels", s(&bad)], vec!["evaluate", "--gt", s(&labels), "--pred", s(&bad)]] {
        let err = run_fails(&args, 2);
        assert!(err.len() < 600 && err.contains("bad.csv:1"), "{} bytes: {}", err.len(), &err[..err.len().min(300)]);
    }
    // a UTF-8 BOM before the first id: stripped
    let text = std::fs::read_to_string(&labels).unwrap();
    let bom = tmp.path().join("bom.csv");
    std::fs::write(&bom, format!("\u{feff}{text}")).unwrap();
    let stats: serde_json::Value = serde_json::from_str(&run_ok(&["data", "stats", "--labels", s(&bom), "--json"])).unwrap();
    let plain: serde_json::Value = serde_json::from_str(&run_ok(&["data", "stats", "--labels", s(&labels), "--json"])).unwrap();
    assert_eq!(stats, plain);
    let mut args = train_args(&data, &tmp.path().join("run"));
    let pos = args.iter().position(|a| a == "--labels").unwrap() + 1;
    args[pos] = s(&bom).to_string();
    run_ok(&args);
    // and in an ontology file
    let onto = tmp.path().join("o.tsv");
    std::fs::write(&onto, format!("\u{feff}{}", std::fs::read_to_string(data.join("concepts.tsv")).unwrap())).unwrap();
    run_ok(&["ontology", "validate", s(&onto)]);
}

#[test]
fn resume_starts_over_when_no_epoch_finished_and_works_from_anywhere() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    synth(&data, 120, 5);
    let full = tmp.path().join("full");
    let killed = tmp.path().join("killed");
    let args = |out: &Path| set(train_args(&data, out), "--epochs", "2");
    run_ok(&args(&full));
    // killed before its first epoch ended: config.json written, no checkpoint
    let mut child = std_bin().args(args(&killed)).stderr(Stdio::null()).spawn().unwrap();
    let t0 = Instant::now();
    while !killed.join("config.json").exists() {
        assert!(t0.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!killed.join("checkpoint.safetensors").exists(), "the kill came too late for this test");
    // resumed from another working directory: starts over, and ends where the uninterrupted run did
    let out = std_bin().args(["train", "--resume", s(&killed)]).current_dir("/").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.contains("starts from the beginning"), "{err}");
    assert_eq!(std::fs::read(killed.join("model.safetensors")).unwrap(), std::fs::read(full.join("model.safetensors")).unwrap());
    // a finished run is not resumed, and --resume takes no other option
    let err = run_fails(&["train", "--resume", s(&killed)], 2);
    assert!(err.contains("has finished training"), "{err}");
    let err = run_fails(&["train", "--resume", s(&killed), "--epochs", "5"], 2);
    assert!(err.contains("--epochs cannot be given"), "{err}");
}

#[test]
fn predict_explain_feeds_analyse_and_shows_the_decoder_path() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, run_dir) = trained(tmp.path());
    let out = tmp.path().join("p.csv");
    let explain = tmp.path().join("explain.jsonl");
    run_ok(&with(&predict_args(&run_dir, &data, &out), &["--explain", s(&explain)]));
    let first: serde_json::Value = serde_json::from_str(std::fs::read_to_string(&explain).unwrap().lines().next().unwrap()).unwrap();
    for d in first["decisions"].as_array().unwrap() {
        // the score the threshold saw never exceeds the probability (the cap only lowers it)
        assert!(d["score"].as_f64().unwrap() <= d["probability"].as_f64().unwrap() + 1e-6 || d["head"] == "modality", "{d}");
        assert!(d["threshold"].as_f64().is_some() && d["decision"].is_string(), "{d}");
    }
    let stdout = run_ok(&["analyse", "--gt", s(&data.join("labels.csv")), "--pred", s(&out), "--scores", s(&explain), "--out", s(&tmp.path().join("report"))]);
    assert!(stdout.contains("best global threshold"), "{stdout}");
}
