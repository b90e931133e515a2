//! Prediction sharded over the user's own scheduler (issue 29): `predict --shard K/N` over 4
//! shards, joined by `conceptree merge`, gives byte for byte the submission and explain file of one
//! unsharded prediction; the merge refuses a missing, doubled or foreign shard with exit code 2.
mod common;

use common::{run_fails, run_ok, s, synth, train};

#[test]
fn four_shards_merged_are_one_prediction_and_bad_sets_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let data = d.join("data");
    synth(&data, 30, 1);
    let (run, other) = (d.join("run"), d.join("other"));
    train(&data, &run, &["--mode", "hierarchical"]);
    train(&data, &other, &["--mode", "hierarchical", "--seed", "2"]);
    let images = data.join("images");
    let one = |out: &std::path::Path, explain: &std::path::Path, extra: &[&str]| {
        let mut args = vec!["predict", "--model", s(&run), "--images", s(&images), "--out", s(out), "--explain", s(explain), "--device", "cpu", "--batch-size", "4"];
        args.extend_from_slice(extra);
        run_ok(&args);
    };
    let (whole, whole_explain) = (d.join("whole.csv"), d.join("whole.jsonl"));
    one(&whole, &whole_explain, &[]);
    let shards: Vec<std::path::PathBuf> = (1..=4).map(|k| d.join(format!("part-{k}.csv"))).collect();
    for (k, p) in shards.iter().enumerate() {
        let spec = format!("{}/4", k + 1);
        one(p, &p.with_extension("jsonl"), &["--shard", &spec]);
        assert!(d.join(format!("part-{}.csv.shard.json", k + 1)).is_file());
    }
    // 30 images in batches of 4 (8 batches) over 4 shards: 8, 8, 8 and 6 rows
    let rows: Vec<usize> = shards.iter().map(|p| std::fs::read_to_string(p).unwrap().lines().count()).collect();
    assert_eq!(rows, vec![8, 8, 8, 6]);
    // merged in any order: the same bytes as one prediction
    let (merged, merged_explain) = (d.join("merged.csv"), d.join("merged.jsonl"));
    let mut args = vec!["merge", "--out", s(&merged), "--explain", s(&merged_explain)];
    let order = [&shards[2], &shards[0], &shards[3], &shards[1]];
    args.extend(order.iter().map(|p| s(p)));
    run_ok(&args);
    assert_eq!(std::fs::read(&merged).unwrap(), std::fs::read(&whole).unwrap(), "the merged submission differs from one prediction");
    assert_eq!(std::fs::read(&merged_explain).unwrap(), std::fs::read(&whole_explain).unwrap(), "the merged explain file differs");

    let out = d.join("bad.csv");
    // a missing shard
    let err = run_fails(&["merge", "--out", s(&out), s(&shards[0]), s(&shards[1]), s(&shards[3])], 2);
    assert!(err.contains("shard(s) 3 of 4 are missing"), "{err}");
    // a doubled one
    let err = run_fails(&["merge", "--out", s(&out), s(&shards[0]), s(&shards[1]), s(&shards[1]), s(&shards[2]), s(&shards[3])], 2);
    assert!(err.contains("shard 2 of 4 is given twice"), "{err}");
    // a foreign one: the same block predicted by another run
    let foreign = d.join("foreign.csv");
    run_ok(&["predict", "--model", s(&other), "--images", s(&images), "--out", s(&foreign), "--explain", s(&d.join("foreign.jsonl")), "--device", "cpu", "--batch-size", "4", "--shard", "3/4"]);
    let err = run_fails(&["merge", "--out", s(&out), s(&shards[0]), s(&shards[1]), s(&foreign), s(&shards[3])], 2);
    assert!(err.contains("foreign.csv") && err.contains("another run"), "{err}");
    // a shard cut short, and a file that is no shard
    let cut = d.join("cut.csv");
    std::fs::copy(&shards[1], &cut).unwrap();
    std::fs::copy(d.join("part-2.csv.shard.json"), d.join("cut.csv.shard.json")).unwrap();
    let text = std::fs::read_to_string(&cut).unwrap();
    std::fs::write(&cut, text.lines().skip(1).map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    let err = run_fails(&["merge", "--out", s(&out), s(&shards[0]), s(&cut), s(&shards[2]), s(&shards[3])], 2);
    assert!(err.contains("cut.csv") && err.contains("7 row(s) where shard 2 of 4 predicts 8"), "{err}");
    // shards of another batch size are another set of blocks
    let big = d.join("big.csv");
    run_ok(&["predict", "--model", s(&run), "--images", s(&images), "--out", s(&big), "--explain", s(&d.join("big.jsonl")), "--device", "cpu", "--batch-size", "8", "--shard", "4/4"]);
    let err = run_fails(&["merge", "--out", s(&out), s(&shards[0]), s(&shards[1]), s(&shards[2]), s(&big)], 2);
    assert!(err.contains("big.csv") && err.contains("--batch-size"), "{err}");
    let err = run_fails(&["merge", "--out", s(&out), s(&whole)], 2);
    assert!(err.contains("no shard record"), "{err}");
    assert!(!out.exists(), "a refused merge writes nothing");
    // the merge never writes over a shard
    let err = run_fails(&["merge", "--out", s(&shards[0]), s(&shards[0]), s(&shards[1]), s(&shards[2]), s(&shards[3])], 2);
    assert!(err.contains("--out"), "{err}");
    // --shard out of range
    let err = run_fails(&["predict", "--model", s(&run), "--images", s(&images), "--out", s(&out), "--shard", "5/4"], 2);
    assert!(err.contains("K must be in 1..=N"), "{err}");
}
