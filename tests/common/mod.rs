//! Helpers shared by the end-to-end tests: the real binary, its outcomes, and tiny generated data.
#![allow(dead_code)] // each test file uses its own subset

pub mod chromium;
pub mod http;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use assert_cmd::Command;

/// The `conceptree` binary under test.
pub fn bin() -> Command {
    Command::cargo_bin("conceptree").expect("binary built")
}

/// A path as a command-line argument.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

/// Exit code, stdout and stderr of `conceptree args...`.
pub fn run<S: AsRef<str>>(args: &[S]) -> (i32, String, String) {
    let out = bin().args(args.iter().map(|a| a.as_ref())).output().expect("runs");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Stdout of a command that must succeed.
pub fn run_ok<S: AsRef<str>>(args: &[S]) -> String {
    let (code, out, err) = run(args);
    let shown: Vec<&str> = args.iter().map(|a| a.as_ref()).collect();
    assert_eq!(code, 0, "conceptree {shown:?} failed:\n{out}\n{err}");
    out
}

/// Stderr of a command that must fail with `code`.
pub fn run_fails<S: AsRef<str>>(args: &[S], code: i32) -> String {
    let (got, out, err) = run(args);
    let shown: Vec<&str> = args.iter().map(|a| a.as_ref()).collect();
    assert_eq!(got, code, "conceptree {shown:?}:\n{out}\n{err}");
    err
}

/// Concepts by image id, as in a label or prediction file.
pub type LabelMap = BTreeMap<String, BTreeSet<String>>;

/// An `id<TAB>CUI;CUI` file (ImageCLEF 2019, the phantoms' and `predict`'s layout).
pub fn read_map(path: &Path) -> LabelMap {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (id, c) = l.split_once('\t').unwrap();
            (id.to_string(), c.split(';').filter(|x| !x.is_empty()).map(str::to_string).collect())
        })
        .collect()
}

/// Writes `m` as an `id<TAB>CUI;CUI` file.
pub fn write_map(path: &Path, m: &LabelMap) {
    let text: String = m.iter().map(|(id, c)| format!("{id}\t{}\n", c.iter().cloned().collect::<Vec<_>>().join(";"))).collect();
    std::fs::write(path, text).unwrap();
}

/// `n` phantoms of 32 px in `dir`.
pub fn synth(dir: &Path, n: usize, seed: u64) {
    run_ok(&["data", "synth", "--out", s(dir), "--n", &n.to_string(), "--image-size", "32", "--seed", &seed.to_string()]);
}

/// The arguments of a one-epoch tiny-trunk run on phantoms in `data`, into `out`.
pub fn train_args<'a>(data: &'a Path, out: &'a Path) -> Vec<String> {
    let labels = data.join("labels.csv");
    let images = data.join("images");
    [
        "train", "--labels", s(&labels), "--images", s(&images), "--out", s(out), "--trunk", "tiny", "--image-size", "32", "--epochs", "1", "--batch-size", "16", "--lr", "1e-3",
        "--device", "cpu",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect()
}

/// `args` without `flags` and their values.
pub fn without(args: Vec<String>, flags: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        if flags.contains(&a.as_str()) {
            it.next();
        } else {
            out.push(a);
        }
    }
    out
}

/// `args` with the value after `flag` replaced (the flag appended when it is not there).
pub fn set(mut args: Vec<String>, flag: &str, value: &str) -> Vec<String> {
    match args.iter().position(|a| a == flag) {
        Some(i) => args[i + 1] = value.to_string(),
        None => args.extend([flag.to_string(), value.to_string()]),
    }
    args
}

/// `base` followed by `extra`.
pub fn with(base: &[String], extra: &[&str]) -> Vec<String> {
    base.iter().cloned().chain(extra.iter().map(|a| a.to_string())).collect()
}

/// Train a one-epoch tiny-trunk run (plus `extra` options, which replace the defaults they name);
/// it must succeed.
pub fn train(data: &Path, out: &Path, extra: &[&str]) {
    let mut args = train_args(data, out);
    if extra.windows(2).any(|w| w == ["--mode", "knn"]) {
        // knn trains nothing: options of training are refused there
        args = without(args, &["--epochs", "--lr"]);
    }
    let mut i = 0;
    while i < extra.len() {
        let takes_value = i + 1 < extra.len() && !extra[i + 1].starts_with("--");
        if takes_value && args.iter().any(|a| a == extra[i]) {
            args = set(args, extra[i], extra[i + 1]);
            i += 2;
        } else {
            args.push(extra[i].to_string());
            i += 1;
        }
    }
    run_ok(&args);
}

/// The binary as a plain `std::process::Command` (to spawn and kill it).
pub fn std_bin() -> std::process::Command {
    use assert_cmd::cargo::CommandCargoExt;
    std::process::Command::cargo_bin("conceptree").expect("binary built")
}
