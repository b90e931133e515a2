//! Label files: ImageCLEF 2019, ImageCLEF 2020+ and ROCO concept lists, with strict parsing.
//!
//! | format | example line |
//! | --- | --- |
//! | ImageCLEF 2019 | `id<TAB>C0040405;C0817096` |
//! | ImageCLEF 2020+ | header `ID,CUIs`, then `id,C0040405;C0817096` |
//! | ROCO | `ROCO_99001<TAB><TAB>C0040405<TAB>C0817096` |
//!
//! ROCOv2 and the ImageCLEFmedical 2023-2025 concept files (`ID,CUIs` header, `;` inside the second
//! column, ids such as `ImageCLEFmedical_Caption_2024_train_000001`) are ImageCLEF 2020+ files.
//! The format is detected from the first [`DETECT_LINES`] content lines, not the first alone (the
//! first image of a real ROCO file may have no concept, which makes its line look like ImageCLEF
//! 2019); a captions file (free text after the id) is refused as such. A UTF-8 byte-order mark is
//! dropped. CUIs are held compactly ([`Cui`]): a million-row file fits in a few hundred MiB.
//!
//! Every problem names the file and line. With `skip_bad` a bad row is skipped, counted and
//! reported in [`SkipReport`] instead of failing; nothing is ever dropped silently.
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use crate::cui::is_cui;
use crate::cui::{excerpt, Cui, EXCERPT};

/// Which label-file layout to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LabelFormat {
    /// Detect from the file's lines (default).
    Auto,
    /// `id<TAB>CUI;CUI;...` (ImageCLEF 2019, also conceptree's own output).
    #[value(alias = "imageclef2019", alias = "2019")]
    Clef2019,
    /// `ID,CUIs` header, then `id,CUI;CUI` (ImageCLEF 2020 and later, ROCOv2).
    #[value(alias = "imageclef2020", alias = "2020", alias = "csv")]
    Clef2020,
    /// `ROCO_ID<TAB><TAB>CUI<TAB>CUI...`.
    Roco,
}

impl fmt::Display for LabelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Clef2019 => "clef2019",
            Self::Clef2020 => "clef2020",
            Self::Roco => "roco",
        })
    }
}

impl LabelFormat {
    /// The format's name and layout, for people.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Auto => "detected from the file",
            Self::Clef2019 => "ImageCLEF 2019 (id<TAB>CUI;CUI)",
            Self::Clef2020 => "ImageCLEF 2020+ / ROCOv2 (ID,CUIs header; CUIs separated by ';')",
            Self::Roco => "ROCO (id<TAB><TAB>CUI<TAB>CUI)",
        }
    }
}

impl SkipReport {
    /// "read as <format> (detected)" when the format was detected, for the command to print.
    pub fn detected_note(&self) -> Option<String> {
        self.detected.map(|f| format!("{}: read as {}, detected from its first lines (--format overrides)", self.source, f.describe()))
    }
}

/// One parsed row: an image id and its CUIs (in file order, each once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelRow {
    pub id: String,
    pub cuis: Vec<Cui>,
    /// 1-based line number in the source file.
    pub line: usize,
}

impl LabelRow {
    /// A row from CUI strings (which must be CUIs).
    pub fn new(id: impl Into<String>, cuis: &[&str], line: usize) -> LabelRow {
        LabelRow { id: id.into(), cuis: cuis.iter().map(|c| Cui::parse(c).expect("a CUI")).collect(), line }
    }

    /// The CUIs as upper-case strings.
    pub fn cui_strings(&self) -> Vec<String> {
        self.cuis.iter().map(Cui::to_string).collect()
    }

    /// The CUIs as a set of upper-case strings.
    pub(crate) fn cui_set(&self) -> BTreeSet<String> {
        self.cuis.iter().map(Cui::to_string).collect()
    }
}

/// Options for [`read_labels`].
#[derive(Debug, Clone, Copy)]
pub struct ParseOptions {
    pub format: LabelFormat,
    /// Skip (and count) bad rows instead of failing on the first one.
    pub skip_bad: bool,
    /// Accept rows with no CUI (true for submissions and ImageCLEF ground truth; false for training).
    pub allow_empty: bool,
    /// Reject repeated CUIs within one row (the official submission pre-check does).
    pub reject_repeated_cui: bool,
}

impl Default for ParseOptions {
    fn default() -> Self {
        Self { format: LabelFormat::Auto, skip_bad: false, allow_empty: false, reject_repeated_cui: false }
    }
}

/// A bad row, skipped under `--skip-bad`.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub line: usize,
    pub id: Option<String>,
    pub reason: String,
}

/// What was skipped while reading, by reason; printed so nothing is lost silently. Also the format
/// the file was read in (when it was detected).
#[derive(Debug, Clone, Default, Serialize)]
pub struct SkipReport {
    pub source: String,
    pub skipped: Vec<Skipped>,
    /// The detected format (`None`: given with `--format`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detected: Option<LabelFormat>,
}

impl SkipReport {
    pub fn is_empty(&self) -> bool {
        self.skipped.is_empty()
    }
    /// Counts per reason kind (the part of the reason before ':').
    pub fn counts(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for s in &self.skipped {
            let kind = s.reason.split(':').next().unwrap_or("").to_string();
            *m.entry(kind).or_insert(0) += 1;
        }
        m
    }
    pub fn merge(&mut self, other: SkipReport) {
        self.skipped.extend(other.skipped);
    }
}

impl fmt::Display for SkipReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.skipped.is_empty() {
            return Ok(());
        }
        writeln!(f, "skipped {} row(s)/image(s) of {}:", self.skipped.len(), self.source)?;
        for (kind, n) in self.counts() {
            writeln!(f, "  {n:>6}  {kind}")?;
        }
        for s in self.skipped.iter().take(5) {
            writeln!(f, "  e.g. line {}{}: {}", s.line, s.id.as_ref().map(|i| format!(" ({i})")).unwrap_or_default(), s.reason)?;
        }
        Ok(())
    }
}

/// Errors while reading label files; each names the file and, where there is one, the line.
#[derive(Debug, thiserror::Error)]
pub enum LabelError {
    #[error("cannot read label file {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}:{line}: {message}")]
    Malformed { path: PathBuf, line: usize, message: String },
    #[error("{path}:{line}: image id '{id}' appears again (first on line {first_line})")]
    DuplicateId { path: PathBuf, line: usize, id: String, first_line: usize },
    #[error("{path}:{line}: '{token}' (image '{id}') is not a UMLS CUI (expected C followed by 7 digits)")]
    BadCui { path: PathBuf, line: usize, id: String, token: String },
    #[error("{path}:{line}: image '{id}' has an empty label set")]
    EmptyLabels { path: PathBuf, line: usize, id: String },
    #[error("{path}:{line}: image '{id}' lists concept {cui} more than once")]
    RepeatedCui { path: PathBuf, line: usize, id: String, cui: String },
    #[error("{path}: no label rows")]
    Empty { path: PathBuf },
    #[error("{path}: cannot detect the label format from line {line}: '{sample}' (use --format clef2019|clef2020|roco)")]
    UnknownFormat { path: PathBuf, line: usize, sample: String },
    #[error("{path}:{line}: this looks like a captions file (free text after the id: '{sample}'), not a concept label file; give the concepts file (ImageCLEF's `*_concepts.csv`, ROCO's `*_cuis.txt`)")]
    Captions { path: PathBuf, line: usize, sample: String },
}

/// How many content lines [`detect`] looks at.
pub(crate) const DETECT_LINES: usize = 200;

/// The format one line suggests: two tabs in a row only occur in ROCO files, a tab otherwise in
/// ImageCLEF 2019 files, a comma in ImageCLEF 2020+ files.
pub(crate) fn detect_format(line: &str) -> Option<LabelFormat> {
    let l = line.trim_end_matches(['\r', '\n']);
    if l.contains("\t\t") {
        return Some(LabelFormat::Roco);
    }
    if l.contains('\t') {
        return Some(LabelFormat::Clef2019);
    }
    l.contains(',').then_some(LabelFormat::Clef2020)
}

/// The format of a label file from its first [`DETECT_LINES`] content lines `(line number, text)`:
/// ROCO when any of them has two tabs in a row (a ROCO row whose image has no concept is
/// `ROCO_ID<TAB>`, which alone would look like ImageCLEF 2019), else the format the first line
/// suggests. A file whose rows carry words rather than CUIs after the id is a captions file.
pub(crate) fn detect<'a>(lines: impl Iterator<Item = (usize, &'a str)>, path: &Path) -> Result<LabelFormat, LabelError> {
    let sample: Vec<(usize, &str)> = lines.take(DETECT_LINES).collect();
    let Some(&(first_no, first)) = sample.first() else { return Err(LabelError::Empty { path: path.to_path_buf() }) };
    let header = first.to_ascii_lowercase();
    if header.starts_with("id,caption") || header.starts_with("id\tcaption") {
        return Err(LabelError::Captions { path: path.to_path_buf(), line: first_no, sample: excerpt(first, 60) });
    }
    // captions: the text after the id has spaces and no CUI, on most sampled rows
    let after_id = |l: &str| l.split_once(['\t', ',']).map(|(_, rest)| rest.trim().to_string()).unwrap_or_default();
    let wordy = sample.iter().filter(|(_, l)| {
        let rest = after_id(l);
        rest.contains(' ') && !rest.split([';', '\t', ',', ' ']).any(crate::cui::is_cui)
    });
    if let Some(&(no, l)) = wordy.clone().next().filter(|_| wordy.count() * 2 > sample.len()) {
        return Err(LabelError::Captions { path: path.to_path_buf(), line: no, sample: excerpt(l, 60) });
    }
    if sample.iter().any(|(_, l)| l.contains("\t\t")) {
        return Ok(LabelFormat::Roco);
    }
    detect_format(first).ok_or_else(|| LabelError::UnknownFormat { path: path.to_path_buf(), line: first_no, sample: excerpt(first, 60) })
}

/// Read and validate a label file. See [`ParseOptions`] for what is an error. The file is read
/// line by line (never whole, each line bounded: [`crate::text`]), so memory grows only with the
/// rows kept; a line that is not UTF-8 is named by line and column.
pub fn read_labels(path: &Path, opts: ParseOptions) -> Result<(Vec<LabelRow>, SkipReport), LabelError> {
    let io = |source| read_error(path, source);
    parse_lines(crate::text::lines(path).map_err(io)?.map(|l| l.map_err(io)), path, opts)
}

/// A read error of a label file: a line too long or not UTF-8 as `FILE:LINE: problem`.
fn read_error(path: &Path, source: std::io::Error) -> LabelError {
    if let Some(t) = crate::text::text_error(&source) {
        return LabelError::Malformed { path: path.to_path_buf(), line: t.line, message: t.problem.to_string() };
    }
    LabelError::Io { path: path.to_path_buf(), source }
}

/// Parse label text (as read from `path`, used in messages).
pub fn parse_labels(text: &str, path: &Path, opts: ParseOptions) -> Result<(Vec<LabelRow>, SkipReport), LabelError> {
    parse_lines(text.lines().map(Ok), path, opts)
}

/// Parse the lines of a label file (without their line ends), as they come.
fn parse_lines<S: Into<String>>(lines: impl Iterator<Item = Result<S, LabelError>>, path: &Path, opts: ParseOptions) -> Result<(Vec<LabelRow>, SkipReport), LabelError> {
    let mut report = SkipReport { source: path.display().to_string(), skipped: vec![], detected: None };
    // trailing CRs go, and a UTF-8 byte-order mark (as some editors write) is not part of the
    // first id; both cut in place, so a line read from a file is not copied again
    let clean = |no: usize, l: S| -> String {
        let mut l: String = l.into();
        l.truncate(l.trim_end_matches('\r').len());
        if no == 1 && l.starts_with('\u{feff}') {
            l.drain(..'\u{feff}'.len_utf8());
        }
        l
    };
    let mut lines = lines.enumerate().map(|(i, l)| l.map(|l| (i + 1, clean(i + 1, l))));
    // the first content lines, for detection; parsing then starts over them
    let mut head: Vec<(usize, String)> = Vec::new();
    let mut content = 0;
    while content < DETECT_LINES {
        let Some(l) = lines.next() else { break };
        let l = l?;
        content += usize::from(!l.1.trim().is_empty());
        head.push(l);
    }
    let mut format = opts.format;
    if format == LabelFormat::Auto {
        format = detect(head.iter().map(|(n, l)| (*n, l.as_str())).filter(|(_, l)| !l.trim().is_empty()), path)?;
        report.detected = Some(format);
    }
    let mut rows: Vec<LabelRow> = Vec::new();
    // duplicate ids: a hash of each id kept to the index of its row (16 bytes a row, not a copy
    // of every id); equal hashes are confirmed on the ids themselves
    let mut row_of_hash: HashMap<u64, u32> = HashMap::new();
    let mut hash_collisions: HashMap<String, usize> = HashMap::new();
    let hasher = std::collections::hash_map::RandomState::new();
    let mut header_checked = false;
    for l in head.into_iter().map(Ok).chain(lines) {
        let (line_no, line) = l?;
        if line.trim().is_empty() {
            continue;
        }
        if format == LabelFormat::Clef2020 && !header_checked {
            header_checked = true;
            let lower = line.to_ascii_lowercase();
            if lower.starts_with("id,") {
                continue; // header line
            }
        }
        let parsed = parse_row(&line, line_no, format, path, opts);
        let row = match parsed {
            Ok(r) => r,
            Err(e) if opts.skip_bad => {
                report.skipped.push(Skipped { line: line_no, id: None, reason: skip_reason(&e) });
                continue;
            }
            Err(e) => return Err(e),
        };
        let h = std::hash::BuildHasher::hash_one(&hasher, &row.id);
        let first = match row_of_hash.get(&h) {
            Some(&i) if rows[i as usize].id == row.id => Some(rows[i as usize].line),
            Some(_) => hash_collisions.get(&row.id).copied(),
            None => None,
        };
        if let Some(first) = first {
            let e = LabelError::DuplicateId { path: path.to_path_buf(), line: line_no, id: excerpt(&row.id, EXCERPT), first_line: first };
            if opts.skip_bad {
                report.skipped.push(Skipped { line: line_no, id: Some(row.id), reason: skip_reason(&e) });
                continue;
            }
            return Err(e);
        }
        match row_of_hash.entry(h) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(u32::try_from(rows.len()).map_err(|_| LabelError::Malformed { path: path.to_path_buf(), line: line_no, message: format!("more than {} rows", u32::MAX) })?);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                hash_collisions.insert(row.id.clone(), line_no);
            }
        }
        rows.push(row);
    }
    if rows.is_empty() {
        return Err(LabelError::Empty { path: path.to_path_buf() });
    }
    Ok((rows, report))
}

fn skip_reason(e: &LabelError) -> String {
    let kind = match e {
        LabelError::Malformed { .. } => "malformed row",
        LabelError::DuplicateId { .. } => "duplicate id",
        LabelError::BadCui { .. } => "not a CUI",
        LabelError::EmptyLabels { .. } => "empty label set",
        LabelError::RepeatedCui { .. } => "repeated concept",
        _ => "other",
    };
    format!("{kind}: {e}")
}

fn parse_row(line: &str, line_no: usize, format: LabelFormat, path: &Path, opts: ParseOptions) -> Result<LabelRow, LabelError> {
    let malformed = |message: String| LabelError::Malformed { path: path.to_path_buf(), line: line_no, message };
    let (id, tokens): (&str, Vec<&str>) = match format {
        LabelFormat::Clef2019 => {
            let mut parts = line.splitn(2, '\t');
            let id = parts.next().unwrap_or("");
            let rest = parts.next().ok_or_else(|| malformed("expected 'id<TAB>CUI;CUI;...' (no tab found)".into()))?;
            if rest.contains('\t') {
                return Err(malformed("more than one tab: is this a ROCO file? (use --format roco)".into()));
            }
            (id, rest.split(';').collect())
        }
        LabelFormat::Clef2020 => {
            let mut parts = line.splitn(2, ',');
            let id = parts.next().unwrap_or("");
            let rest = parts.next().ok_or_else(|| malformed("expected 'ID,CUI;CUI;...' (no comma found)".into()))?;
            let rest = rest.trim().trim_matches('"');
            if rest.contains(',') {
                return Err(malformed("more than two columns (CUIs are separated by ';' inside the second column)".into()));
            }
            (id, rest.split(';').collect())
        }
        LabelFormat::Roco => {
            let mut parts = line.split('\t');
            let id = parts.next().unwrap_or("");
            let empty = parts.next();
            if empty.map(|s| !s.is_empty()).unwrap_or(false) {
                return Err(malformed("expected 'ROCO_ID<TAB><TAB>CUI<TAB>...' (second field must be empty)".into()));
            }
            (id, parts.collect())
        }
        LabelFormat::Auto => unreachable!("format resolved before parsing rows"),
    };
    let id = id.trim();
    if let Some(problem) = id_problem(id) {
        return Err(malformed(problem));
    }
    // messages quote at most a short prefix of an id or token: a line may be a gigabyte of garbage
    let id_q = || excerpt(id, EXCERPT);
    let mut cuis: Vec<Cui> = Vec::with_capacity(tokens.len());
    for tok in tokens {
        let tok = tok.trim();
        if tok.is_empty() {
            continue;
        }
        let Some(cui) = Cui::parse(tok) else {
            return Err(LabelError::BadCui { path: path.to_path_buf(), line: line_no, id: id_q(), token: excerpt(tok, EXCERPT) });
        };
        if cuis.contains(&cui) {
            if opts.reject_repeated_cui {
                return Err(LabelError::RepeatedCui { path: path.to_path_buf(), line: line_no, id: id_q(), cui: cui.to_string() });
            }
            continue; // a repeated label in a training file carries no information
        }
        cuis.push(cui);
    }
    if cuis.is_empty() && !opts.allow_empty {
        return Err(LabelError::EmptyLabels { path: path.to_path_buf(), line: line_no, id: id_q() });
    }
    Ok(LabelRow { id: id.to_string(), cuis, line: line_no })
}

/// What makes `id` unfit to be an image id (`None`: it is fit): empty, or holding whitespace
/// (spaces, tabs, line breaks), which no label or submission format can carry. The one definition
/// of a valid id: the label readers refuse such ids, and `predict` refuses to write them.
pub(crate) fn id_problem(id: &str) -> Option<String> {
    if id.is_empty() {
        return Some("empty image id".into());
    }
    id.contains(char::is_whitespace).then(|| format!("image id '{}' contains whitespace", excerpt(id, EXCERPT)))
}

/// A list of CUIs (a secondary-score concept set, say): CUIs separated by line breaks, commas,
/// semicolons, tabs or spaces; `#` starts a comment; a header word such as `CUI` on the first
/// line is skipped. Anything else that is not a CUI is an error naming the file and line.
pub fn read_concept_list(path: &Path) -> Result<BTreeSet<String>, LabelError> {
    let text = crate::text::read_text(path).map_err(|source| read_error(path, source))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut out = BTreeSet::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("");
        for tok in line.split(['\t', ',', ';', ' ', '\r']).filter(|t| !t.is_empty()) {
            match Cui::parse(tok) {
                Some(c) => {
                    out.insert(c.to_string());
                }
                None if i == 0 && out.is_empty() && tok.chars().all(|c| c.is_ascii_alphabetic() || c == '_') => {} // a header word
                None => return Err(LabelError::BadCui { path: path.to_path_buf(), line: i + 1, id: "(concept list)".into(), token: excerpt(tok, EXCERPT) }),
            }
        }
    }
    if out.is_empty() {
        return Err(LabelError::Empty { path: path.to_path_buf() });
    }
    Ok(out)
}

/// Write rows in ImageCLEF 2019 format (`id<TAB>CUI;CUI`), the submission format.
pub(crate) fn write_clef2019(path: &Path, rows: impl IntoIterator<Item = (String, Vec<String>)>) -> std::io::Result<()> {
    use std::io::Write;
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    for (id, cuis) in rows {
        write_clef2019_row(&mut w, &id, &cuis)?;
    }
    w.flush()
}

/// One submission row, `id<TAB>CUI;CUI` and a newline.
pub(crate) fn write_clef2019_row(w: &mut impl std::io::Write, id: &str, cuis: &[String]) -> std::io::Result<()> {
    writeln!(w, "{id}\t{}", cuis.join(";"))
}

/// Rows as a map id -> CUI set.
pub fn to_map(rows: &[LabelRow]) -> BTreeMap<String, BTreeSet<String>> {
    rows.iter().map(|r| (r.id.clone(), r.cui_set())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, opts: ParseOptions) -> Result<(Vec<LabelRow>, SkipReport), LabelError> {
        parse_labels(text, Path::new("labels.txt"), opts)
    }

    #[test]
    fn detects_the_three_formats() {
        assert_eq!(detect_format("img1\tC0040405;C0817096"), Some(LabelFormat::Clef2019));
        assert_eq!(detect_format("ID,CUIs"), Some(LabelFormat::Clef2020));
        assert_eq!(detect_format("ROCO_99001\t\tC0040405\tC0817096"), Some(LabelFormat::Roco));
        assert_eq!(detect_format("just words"), None);
    }

    #[test]
    fn detection_reads_many_rows_not_the_first_alone() {
        // a real ROCO file whose first image has no concept: its first line looks like ImageCLEF 2019
        let roco = "ROCO_99001\t\nROCO_99002\t\tC0040405\tC0817096\r\nROCO_99003\t\tC0024485\r\n";
        let (rows, rep) = parse(roco, ParseOptions { allow_empty: true, ..Default::default() }).unwrap();
        assert_eq!(rep.detected, Some(LabelFormat::Roco));
        assert_eq!(rows.len(), 3);
        assert!(rows[0].cuis.is_empty());
        assert_eq!(rows[1].cui_strings(), vec!["C0040405", "C0817096"], "CRLF stripped");
        // ROCOv2 / ImageCLEFmedical 2023-2025 concept files: `ID,CUIs`, `;` inside
        let clef24 = "\u{feff}ID,CUIs\nImageCLEFmedical_Caption_2024_train_000001,C0040405;C0817096\nImageCLEFmedical_Caption_2024_train_000002,\"C0024485\"\n";
        let (rows, rep) = parse(clef24, ParseOptions::default()).unwrap();
        assert_eq!(rep.detected, Some(LabelFormat::Clef2020));
        assert_eq!(rows[0].id, "ImageCLEFmedical_Caption_2024_train_000001", "no byte-order mark in the id");
        assert_eq!(rows[1].cui_strings(), vec!["C0024485"]);
        // given explicitly, nothing is detected
        let (_, rep) = parse(roco, ParseOptions { format: LabelFormat::Roco, allow_empty: true, ..Default::default() }).unwrap();
        assert_eq!(rep.detected, None);
    }

    #[test]
    fn concept_lists_in_any_layout() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("secondary.txt");
        std::fs::write(&f, "CUI\nc0040405\nC0024485, C1306645 # x-ray\n\n").unwrap();
        assert_eq!(read_concept_list(&f).unwrap().into_iter().collect::<Vec<_>>(), vec!["C0024485", "C0040405", "C1306645"]);
        std::fs::write(&f, "C0040405\nlung\n").unwrap();
        let e = read_concept_list(&f).unwrap_err().to_string();
        assert!(e.contains("secondary.txt:2") && e.contains("'lung'"), "{e}");
    }

    #[test]
    fn a_captions_file_is_refused_as_such() {
        for text in [
            "ID,Caption\nImageCLEFmedical_Caption_2024_train_000001,Computed tomography of the chest\n",
            "ROCO_99001\tAxial CT scan of the abdomen with contrast\nROCO_99002\tChest radiograph shows an effusion\n",
        ] {
            let e = parse(text, ParseOptions::default()).unwrap_err();
            assert!(matches!(e, LabelError::Captions { .. }), "{e}");
            assert!(e.to_string().contains("captions file"), "{e}");
        }
    }

    #[test]
    fn parses_clef2019_and_uppercases() {
        let (rows, rep) = parse("a\tC0040405;c0817096\nb\tC0024485\n", ParseOptions::default()).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].cui_strings(), vec!["C0040405", "C0817096"]);
        assert_eq!(rows[1].line, 2);
        assert!(rep.is_empty());
    }

    #[test]
    fn parses_clef2020_with_header() {
        let (rows, _) = parse("ID,CUIs\nx1,C0040405;C0817096\nx2,C0024485\n", ParseOptions::default()).unwrap();
        assert_eq!(rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), vec!["x1", "x2"]);
        assert_eq!(rows[0].line, 2);
    }

    #[test]
    fn parses_roco() {
        let (rows, _) = parse("ROCO_1\t\tC0040405\tC0817096\n", ParseOptions::default()).unwrap();
        assert_eq!(rows[0].cuis.len(), 2);
    }

    #[test]
    fn bad_cui_names_line_and_token() {
        let e = parse("a\tC0040405\nb\tC004;C0817096\n", ParseOptions::default()).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("labels.txt:2"), "{msg}");
        assert!(msg.contains("'C004'"), "{msg}");
    }

    #[test]
    fn a_file_reads_as_its_text_parses_bom_crlf_and_duplicates_included() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("l.csv");
        let text = "\u{feff}a\tC0000001;C0000002\r\n\r\nb\tC0000003\r\nc\tc0000004\n";
        std::fs::write(&path, text).unwrap();
        let opts = ParseOptions::default();
        let (rows, rep) = read_labels(&path, opts).unwrap();
        assert_eq!((rows.clone(), rep.detected), (parse_labels(text, &path, opts).unwrap().0, Some(LabelFormat::Clef2019)));
        assert_eq!(rows.iter().map(|r| (r.id.as_str(), r.cui_strings().join(";"), r.line)).collect::<Vec<_>>(), [("a", "C0000001;C0000002".to_string(), 1), ("b", "C0000003".into(), 3), ("c", "C0000004".into(), 4)]);
        // many rows, one duplicate far from its first line: both lines named; with --skip-bad it is counted
        let mut big: String = (0..5000).map(|i| format!("ID{i}\tC{:07}\n", i % 97)).collect();
        big += "ID1234\tC0000001\n";
        std::fs::write(&path, &big).unwrap();
        match read_labels(&path, opts) {
            Err(LabelError::DuplicateId { line: 5001, first_line: 1235, id, .. }) => assert_eq!(id, "ID1234"),
            other => panic!("{other:?}"),
        }
        let (rows, rep) = read_labels(&path, ParseOptions { skip_bad: true, ..opts }).unwrap();
        assert_eq!((rows.len(), rep.skipped.len(), rep.skipped[0].line), (5000, 1, 5001));
    }

    #[test]
    fn duplicate_id_is_an_error_naming_both_lines() {
        let e = parse("a\tC0040405\nb\tC0040405\na\tC0817096\n", ParseOptions::default()).unwrap_err();
        assert!(matches!(e, LabelError::DuplicateId { line: 3, first_line: 1, .. }), "{e}");
    }

    #[test]
    fn empty_label_set_is_an_error_for_training_only() {
        let e = parse("a\t\n", ParseOptions { format: LabelFormat::Clef2019, ..Default::default() }).unwrap_err();
        assert!(matches!(e, LabelError::EmptyLabels { line: 1, .. }), "{e}");
        let opts = ParseOptions { format: LabelFormat::Clef2019, allow_empty: true, ..Default::default() };
        let (rows, _) = parse("a\t\n", opts).unwrap();
        assert!(rows[0].cuis.is_empty());
    }

    #[test]
    fn malformed_row_without_tab() {
        let e = parse("a\tC0040405\nnonsense-line\n", ParseOptions { format: LabelFormat::Clef2019, ..Default::default() })
            .unwrap_err();
        assert!(matches!(e, LabelError::Malformed { line: 2, .. }), "{e}");
    }

    #[test]
    fn skip_bad_counts_every_skipped_row() {
        let text = "a\tC0040405\nb\tXYZ\nc\t\na\tC0817096\nd\tC0024485\n";
        let (rows, rep) = parse(text, ParseOptions { skip_bad: true, ..Default::default() }).unwrap();
        assert_eq!(rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), vec!["a", "d"]);
        assert_eq!(rep.skipped.len(), 3);
        let counts = rep.counts();
        assert_eq!(counts["not a CUI"], 1);
        assert_eq!(counts["empty label set"], 1);
        assert_eq!(counts["duplicate id"], 1);
        assert!(rep.to_string().contains("skipped 3"));
    }

    #[test]
    fn repeated_cui_rejected_when_asked() {
        let opts = ParseOptions { reject_repeated_cui: true, ..Default::default() };
        let e = parse("a\tC0040405;c0040405\n", opts).unwrap_err();
        assert!(matches!(e, LabelError::RepeatedCui { .. }), "{e}");
        let (rows, _) = parse("a\tC0040405;c0040405\n", ParseOptions::default()).unwrap();
        assert_eq!(rows[0].cui_strings(), vec!["C0040405"]);
    }

    #[test]
    fn empty_file_is_an_error() {
        assert!(matches!(parse("\n\n", ParseOptions::default()), Err(LabelError::Empty { .. })));
    }
}
