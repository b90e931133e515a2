//! `Ontology::from_umls_rrf` on arbitrary files. The input is split at its first two NUL bytes
//! into MRCONSO.RRF, MRREL.RRF and MRSTY.RRF (raw bytes, so invalid UTF-8 is exercised too),
//! written to a per-process temp dir. The first byte picks whether to pass `restrict_to`.
#![no_main]
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::OnceLock;

use conceptree_fuzz::ontology::Ontology;
use libfuzzer_sys::fuzz_target;

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("conceptree-fuzz-rrf-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("create temp dir");
        d
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let mut parts = rest.splitn(3, |&b| b == 0);
    let files = ["MRCONSO.RRF", "MRREL.RRF", "MRSTY.RRF"];
    let d = dir();
    for (i, name) in files.iter().enumerate() {
        let part = parts.next();
        let path = d.join(name);
        // bit 2+i: leave the file out entirely (missing file must be an Io error)
        if flags & (4 << i) != 0 {
            let _ = std::fs::remove_file(&path);
        } else {
            std::fs::write(&path, part.unwrap_or(b"")).expect("write rrf");
        }
    }
    let restrict: BTreeSet<String> = ["C0000001", "C0000002", "C0000003", "A"].iter().map(|s| s.to_string()).collect();
    let restrict_to = if flags & 1 != 0 { Some(&restrict) } else { None };
    match Ontology::from_umls_rrf(d, restrict_to) {
        Ok(o) => {
            if let Some(set) = restrict_to {
                assert!(o.concepts().all(|c| set.contains(&c.cui)));
            }
            let cuis: Vec<String> = o.concepts().map(|c| c.cui.clone()).collect();
            for c in cuis.iter().take(16) {
                let _ = o.ancestors(c);
                let _ = o.depth(c);
                let _ = o.level_of(c);
            }
            let _ = o.stats();
            let _ = o.content_hash();
            // a UMLS-seeded file may fail validation, but must not panic
            let _ = Ontology::from_tsv_str(&o.to_tsv(), "seeded.tsv");
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains(".RRF"), "error does not name the file: {msg}");
        }
    }
});
