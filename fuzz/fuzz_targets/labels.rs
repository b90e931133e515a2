//! `parse_labels` on arbitrary text, for every `LabelFormat` (Auto included), with `skip_bad`
//! on and off. The first byte picks `allow_empty` / `reject_repeated_cui`; the rest is the file.
#![no_main]
use std::collections::HashSet;
use std::path::Path;

use conceptree_fuzz::data::labels::{is_cui, parse_labels, LabelError, LabelFormat, ParseOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    let path = Path::new("fuzz/labels.tsv");
    for format in [LabelFormat::Auto, LabelFormat::Clef2019, LabelFormat::Clef2020, LabelFormat::Roco] {
        for skip_bad in [false, true] {
            let opts = ParseOptions { format, skip_bad, allow_empty: flags & 1 != 0, reject_repeated_cui: flags & 2 != 0 };
            match parse_labels(&text, path, opts) {
                Ok((rows, report)) => {
                    // invariants: non-empty, unique ids, well-formed upper-case CUIs, lines in range
                    assert!(!rows.is_empty());
                    let mut ids = HashSet::new();
                    let n_lines = text.lines().count();
                    for r in &rows {
                        assert!(ids.insert(r.id.as_str()), "duplicate id {} accepted", r.id);
                        assert!(!r.id.is_empty() && !r.id.contains(char::is_whitespace));
                        assert!(r.line >= 1 && r.line <= n_lines);
                        assert!(r.cui_strings().iter().all(|c| is_cui(c) && c.starts_with('C')));
                        assert!(opts.allow_empty || !r.cuis.is_empty());
                    }
                    if !skip_bad {
                        assert!(report.is_empty());
                    }
                    let _ = report.to_string();
                    let _ = report.counts();
                }
                Err(e) => {
                    // every error names the file
                    assert!(e.to_string().contains("fuzz/labels.tsv"), "{e}");
                    if skip_bad {
                        assert!(
                            matches!(e, LabelError::Empty { .. } | LabelError::UnknownFormat { .. }),
                            "skip_bad still failed on a row: {e}"
                        );
                    }
                }
            }
        }
    }
});
