//! UMLS concept identifiers (CUIs): `C` followed by exactly seven digits.
//!
//! The one place that says what a CUI looks like. Label files and submissions accept either case
//! and store CUIs upper-cased ([`parse_cui`]); ontology files must already be canonical
//! ([`is_canonical_cui`]). Everything downstream keeps CUIs as upper-case strings.

/// True when `s` has the UMLS CUI form: `C` (either case) followed by exactly 7 ASCII digits.
pub fn is_cui(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 8 && (b[0] == b'C' || b[0] == b'c') && b[1..].iter().all(u8::is_ascii_digit)
}

/// True for a CUI in canonical form: an upper-case `C` and seven digits (as ontology files hold them).
pub(crate) fn is_canonical_cui(s: &str) -> bool {
    is_cui(s) && s.starts_with('C')
}

/// The canonical (upper-case) form of `s` when it is a CUI.
pub(crate) fn parse_cui(s: &str) -> Option<String> {
    is_cui(s).then(|| s.to_ascii_uppercase())
}

/// A CUI held as its number: four bytes, `Copy`, ordered as its text (`C` and 7 digits) is. Label
/// files hold millions of CUIs; as strings they would cost ten times the memory.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cui(u32);

impl Cui {
    /// The CUI `s` (either case), if it is one.
    pub fn parse(s: &str) -> Option<Cui> {
        is_cui(s).then(|| Cui(s[1..].parse().expect("seven digits")))
    }
}

impl std::fmt::Display for Cui {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "C{:07}", self.0)
    }
}

impl std::fmt::Debug for Cui {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "C{:07}", self.0)
    }
}

impl serde::Serialize for Cui {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl PartialEq<str> for Cui {
    fn eq(&self, other: &str) -> bool {
        Cui::parse(other) == Some(*self)
    }
}

/// At most `max` characters of `s` for an error message, with `…` and the full length when cut:
/// an offending token can be a gigabyte of garbage, and a message must stay readable.
pub fn excerpt(s: &str, max: usize) -> String {
    let mut it = s.char_indices();
    match it.nth(max) {
        None => s.to_string(),
        Some((cut, _)) => format!("{}… ({} bytes)", &s[..cut], s.len()),
    }
}

/// The usual length of [`excerpt`]s in messages.
pub const EXCERPT: usize = 40;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cui_forms() {
        assert!(is_cui("C0040405") && is_cui("c0040405"));
        assert!(is_canonical_cui("C0040405") && !is_canonical_cui("c0040405"));
        for bad in ["", "C004040", "C00404055", "X0040405", "C004040a", "C0040405 ", "Ｃ0040405"] {
            assert!(!is_cui(bad), "{bad:?}");
        }
        assert_eq!(parse_cui("c0000001").as_deref(), Some("C0000001"));
        assert_eq!(parse_cui("C1"), None);
    }

    #[test]
    fn compact_cuis_round_trip_and_order_as_text() {
        let a = Cui::parse("c0040405").unwrap();
        assert_eq!(a.to_string(), "C0040405");
        assert_eq!(Cui::parse("C0000001").unwrap().to_string(), "C0000001");
        assert!(Cui::parse("C1").is_none() && Cui::parse("X0040405").is_none());
        let mut v = vec![Cui::parse("C1000000").unwrap(), Cui::parse("C0200000").unwrap(), Cui::parse("C0030000").unwrap()];
        v.sort();
        let text: Vec<String> = v.iter().map(|c| c.to_string()).collect();
        let mut sorted = text.clone();
        sorted.sort();
        assert_eq!(text, sorted);
        assert_eq!(std::mem::size_of::<Cui>(), 4);
        assert!(a == *"C0040405");
    }

    #[test]
    fn excerpts_cut_long_tokens_on_char_boundaries() {
        assert_eq!(excerpt("short", 10), "short");
        assert_eq!(excerpt("abcdef", 3), "abc… (6 bytes)");
        let s = "é".repeat(100);
        assert_eq!(excerpt(&s, 2), "éé… (200 bytes)");
        let huge = "x".repeat(1 << 20);
        assert!(excerpt(&huge, EXCERPT).len() < 80);
    }
}
