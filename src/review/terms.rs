//! The vocabulary a reviewer searches to add a missing term: every concept of the ontology by its
//! name, and by its UMLS synonyms when an MRCONSO.RRF file is given (the English strings of each
//! concept, as the Metathesaurus lists them).
//!
//! A query matches a concept when each of its words starts a word of the concept's name or of one
//! of its synonyms (case-insensitive), or when it is the concept's CUI. Results are ranked: the
//! name itself, a name starting with the query, a name matching, then a synonym matching; shorter
//! names first within a rank.
use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use serde::Serialize;

use super::ReviewError;
use crate::ontology::{Level, Ontology};

/// Longest query accepted (characters).
pub(crate) const MAX_QUERY: usize = 100;

struct Entry {
    cui: String,
    name: String,
    level: Option<Level>,
    name_words: Vec<String>,
    name_lc: String,
    synonyms: Vec<(String, Vec<String>)>,
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    pub cui: String,
    pub name: String,
    pub level: Option<Level>,
    /// The synonym that matched, when the name did not.
    pub synonym: Option<String>,
}

/// The searchable vocabulary.
pub struct Terms {
    entries: Vec<Entry>,
    by_cui: HashMap<String, usize>,
}

fn words(s: &str) -> Vec<String> {
    s.to_lowercase().split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_string).collect()
}

fn matches(query: &[String], text_words: &[String]) -> bool {
    query.iter().all(|q| text_words.iter().any(|w| w.starts_with(q.as_str())))
}

impl Terms {
    /// The ontology's concepts, with `synonyms` (CUI -> strings) where given.
    pub fn new(onto: &Ontology, synonyms: Option<&HashMap<String, Vec<String>>>) -> Terms {
        let mut entries: Vec<Entry> = onto
            .concepts()
            .map(|c| {
                let syn = synonyms
                    .and_then(|s| s.get(&c.cui))
                    .map(|v| v.iter().filter(|s| !s.eq_ignore_ascii_case(&c.name)).map(|s| (s.clone(), words(s))).collect())
                    .unwrap_or_default();
                Entry { cui: c.cui.clone(), name: c.name.clone(), level: onto.level_of(&c.cui), name_words: words(&c.name), name_lc: c.name.to_lowercase(), synonyms: syn }
            })
            .collect();
        entries.sort_by(|a, b| a.cui.cmp(&b.cui));
        let by_cui = entries.iter().enumerate().map(|(i, e)| (e.cui.clone(), i)).collect();
        Terms { entries, by_cui }
    }

    /// Name and level of `cui`, if the vocabulary has it.
    pub fn get(&self, cui: &str) -> Option<(&str, Option<Level>)> {
        self.by_cui.get(cui).map(|&i| (self.entries[i].name.as_str(), self.entries[i].level))
    }

    /// Number of concepts.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// At most `limit` concepts matching `query` (see the module docs), best first.
    pub fn search(&self, query: &str, limit: usize) -> Vec<Hit> {
        let q = query.trim();
        if let Some(cui) = crate::cui::parse_cui(q) {
            return self.by_cui.get(&cui).map(|&i| vec![self.hit(i, None)]).unwrap_or_default();
        }
        let qw = words(q);
        if qw.is_empty() {
            return vec![];
        }
        let q_lc = q.to_lowercase();
        let mut ranked: Vec<(u8, usize, usize, Option<String>)> = Vec::new();
        for (i, e) in self.entries.iter().enumerate() {
            let rank = if e.name_lc == q_lc {
                Some((0, None))
            } else if e.name_lc.starts_with(&q_lc) {
                Some((1, None))
            } else if matches(&qw, &e.name_words) {
                Some((2, None))
            } else {
                e.synonyms.iter().find(|(_, w)| matches(&qw, w)).map(|(s, _)| (3, Some(s.clone())))
            };
            if let Some((r, syn)) = rank {
                ranked.push((r, e.name.len(), i, syn));
            }
        }
        ranked.sort_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)));
        ranked.into_iter().take(limit).map(|(_, _, i, syn)| self.hit(i, syn)).collect()
    }

    fn hit(&self, i: usize, synonym: Option<String>) -> Hit {
        let e = &self.entries[i];
        Hit { cui: e.cui.clone(), name: e.name.clone(), level: e.level, synonym }
    }
}

/// English synonyms per CUI from UMLS `MRCONSO.RRF` (`path` is the file or the folder holding
/// it), for the CUIs `keep` accepts: the `STR` column of rows with `LAT=ENG` that are not
/// suppressed (`SUPPRESS` other than `O`, `E`, `Y`), each string once (case-insensitive).
pub(crate) fn read_mrconso(path: &Path, keep: &dyn Fn(&str) -> bool) -> Result<HashMap<String, Vec<String>>, ReviewError> {
    let file_path = if path.is_dir() { path.join("MRCONSO.RRF") } else { path.to_path_buf() };
    let file = File::open(&file_path).map_err(|source| ReviewError::Read { path: file_path.clone(), source })?;
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    let mut seen: HashMap<String, BTreeSet<String>> = HashMap::new();
    for (i, line) in crate::text::TextLines::new(BufReader::new(file)).enumerate() {
        let line = line.map_err(|source| ReviewError::Read { path: file_path.clone(), source })?;
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split('|').collect();
        if f.len() < 17 {
            return Err(ReviewError::Input { path: file_path.clone(), line: i + 1, message: format!("expected the 18 '|'-separated fields of MRCONSO.RRF, found {}", f.len().saturating_sub(1)) });
        }
        let (cui, lat, text, suppress) = (f[0], f[1], f[14], f[16]);
        if !crate::cui::is_canonical_cui(cui) {
            return Err(ReviewError::Input { path: file_path.clone(), line: i + 1, message: format!("'{}' is not a CUI", crate::cui::excerpt(cui, crate::cui::EXCERPT)) });
        }
        if lat != "ENG" || matches!(suppress, "O" | "E" | "Y") || text.trim().is_empty() || !keep(cui) {
            continue;
        }
        if seen.entry(cui.to_string()).or_default().insert(text.to_lowercase()) {
            out.entry(cui.to_string()).or_default().push(text.to_string());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::Classify;

    #[test]
    fn search_ranks_names_then_synonyms() {
        let onto = Ontology::builtin();
        let t = Terms::new(&onto, None);
        assert_eq!(t.len(), onto.len());
        let hits = t.search("pneumo", 10);
        assert_eq!(hits[0].cui, "C0032285", "Pneumonia starts with the query: {hits:?}");
        assert!(hits.iter().all(|h| h.name.to_lowercase().contains("pneumo")), "{hits:?}");
        assert_eq!(t.search("c0032285", 5)[0].name, onto.get("C0032285").unwrap().name);
        assert!(t.search("C9999999", 5).is_empty());
        assert!(t.search("  ", 5).is_empty() && t.search("%%%", 5).is_empty());
        assert_eq!(t.search("tomography computed", 3)[0].cui, "C0040405", "words in any order");
        assert!(t.search("e", 4).len() <= 4);

        let syn = HashMap::from([("C0032285".to_string(), vec!["Pneumonia".to_string(), "Lung inflammation".to_string()])]);
        let t = Terms::new(&onto, Some(&syn));
        let hits = t.search("lung infl", 5);
        assert_eq!(hits[0].cui, "C0032285");
        assert_eq!(hits[0].synonym.as_deref(), Some("Lung inflammation"));
    }

    #[test]
    fn mrconso_synonyms() {
        let tmp = tempfile::tempdir().unwrap();
        let rows = [
            "C0032285|ENG|P|L1|PF|S1|Y|A1||||MTH|PN|C1|Pneumonia|0|N||",
            "C0032285|ENG|S|L2|VO|S2|Y|A2||||MSH|SY|C2|Lung inflammation|0|N||",
            "C0032285|ENG|S|L2|VO|S3|Y|A3||||MSH|SY|C2|lung Inflammation|0|N||",
            "C0032285|FRE|P|L3|PF|S4|Y|A4||||MSHFRE|PN|C3|Pneumonie|0|N||",
            "C0032285|ENG|S|L4|VO|S5|N|A5||||MSH|SY|C4|Obsolete pneumonia term|0|O||",
            "C0040405|ENG|S|L5|VO|S6|Y|A6||||MSH|SY|C5|CAT scan|0|N||",
        ];
        std::fs::write(tmp.path().join("MRCONSO.RRF"), rows.join("\n") + "\n").unwrap();
        let s = read_mrconso(tmp.path(), &|c| c == "C0032285").unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s["C0032285"], vec!["Pneumonia".to_string(), "Lung inflammation".to_string()]);
        std::fs::write(tmp.path().join("bad.RRF"), "C0032285|ENG|P\n").unwrap();
        let e = read_mrconso(&tmp.path().join("bad.RRF"), &|_| true).unwrap_err();
        assert!(e.to_string().contains("bad.RRF:1") && e.is_bad_input(), "{e}");
        assert!(read_mrconso(&tmp.path().join("none.RRF"), &|_| true).unwrap_err().is_bad_input());
    }
}
