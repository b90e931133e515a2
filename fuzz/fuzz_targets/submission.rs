//! `validate_submission` / `validate_submission_with` on rows derived from arbitrary text
//! (each line `id<TAB>tok;tok;...`, tokens kept as written, blanks included) against a small
//! ground-truth id set. The first byte picks the rules.
#![no_main]
use std::collections::BTreeSet;

use conceptree_fuzz::eval::submission::{validate_submission, validate_submission_with, SubmissionRow, SubmissionRules};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    let gt: BTreeSet<String> = ["img1", "img2", "a"].iter().map(|s| s.to_string()).collect();
    let rows: Vec<SubmissionRow> = text
        .split('\n')
        .enumerate()
        .map(|(i, l)| {
            let (id, toks) = l.split_once('\t').unwrap_or((l, ""));
            let cuis = if toks.is_empty() { vec![] } else { toks.split(';').map(str::to_string).collect() };
            SubmissionRow { id: id.to_string(), tokens: cuis, line: i + 1 }
        })
        .collect();
    let rules = SubmissionRules {
        allow_missing: flags & 1 != 0,
        max_concepts_per_image: if flags & 2 != 0 { Some((flags >> 4) as usize) } else { None },
        require_umls_cui: flags & 4 != 0,
    };
    for result in [
        validate_submission(&gt, &rows, "fuzz.csv", flags & 1 != 0),
        validate_submission_with(&gt, &rows, "fuzz.csv", &rules),
    ] {
        match result {
            Ok(v) => {
                assert!(v.preds.keys().all(|id| gt.contains(id)));
                let covered: BTreeSet<&String> = v.preds.keys().chain(v.missing.iter()).collect();
                assert_eq!(covered.len(), gt.len());
                for cuis in v.preds.values() {
                    assert!(cuis.iter().all(|c| !c.is_empty() && c.trim() == c));
                }
            }
            Err(e) => assert!(e.to_string().starts_with("fuzz.csv"), "{e}"),
        }
    }
});
