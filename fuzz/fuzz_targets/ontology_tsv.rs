//! The curated ontology format: `Ontology::from_tsv_str`, `Ontology::validate_tsv_str` and the
//! semantic-type table parser `SemtypeTable::parse`, on arbitrary text. A loaded ontology is
//! queried, written back with `to_tsv` and re-read (same content hash).
#![no_main]
use std::collections::BTreeSet;

use conceptree_fuzz::ontology::{Level, Ontology, SemtypeTable};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let problems = Ontology::validate_tsv_str(&text, "fuzz.tsv");
    for p in &problems {
        assert!(p.to_string().starts_with("fuzz.tsv"), "{p}");
    }
    match Ontology::from_tsv_str(&text, "fuzz.tsv") {
        Ok(o) => {
            assert!(problems.is_empty(), "loaded, yet validate reports {problems:?}");
            let cuis: Vec<String> = o.concepts().map(|c| c.cui.clone()).collect();
            if cuis.is_empty() {
                return; // a header alone is a valid, empty ontology
            }
            for c in cuis.iter().take(16) {
                let _ = o.ancestors(c);
                let _ = o.descendants(c);
                let _ = o.depth(c);
                let _ = o.show(c);
                let _ = o.lowest_common_ancestor(c, &cuis[0]);
            }
            let set: BTreeSet<String> = cuis.iter().take(8).cloned().collect();
            let _ = o.closure(&set);
            let _ = o.is_coherent(&set);
            let _ = o.modality_count(&set);
            let _ = o.ancestor_matrix(&cuis[..cuis.len().min(16)]);
            let _ = o.stats();
            let _ = o.roots();
            let _ = o.leaves();
            for l in Level::ALL {
                let _ = o.concepts_of_level(l);
            }
            let _ = o.to_dot(None, None);
            let _ = o.to_dot(Some(&cuis[0]), Some(Level::Modality));
            let back = Ontology::from_tsv_str(&o.to_tsv(), "roundtrip.tsv")
                .unwrap_or_else(|e| panic!("to_tsv output does not load: {e}"));
            assert_eq!(back.content_hash(), o.content_hash(), "to_tsv round trip changed the content");
        }
        Err(e) => {
            assert!(!problems.is_empty());
            assert!(e.to_string().contains("fuzz.tsv"), "{e}");
        }
    }
    if let Err(problems) = SemtypeTable::parse(&text, "semtypes.tsv") {
        assert!(!problems.is_empty());
    }
});
