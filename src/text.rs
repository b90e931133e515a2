//! Reading the text files users give (label files, submissions, id and concept lists, scores and
//! explain JSON lines, ontology TSV and RRF files, token files): bounded, and precise about what
//! is wrong.
//!
//! Every such reader goes through [`TextLines`] (line by line) or [`read_text`] (a whole file,
//! read line by line). A line longer than [`MAX_LINE_BYTES`] is refused, so a wrong file
//! (`/dev/zero`, an image, a binary) fails at once instead of filling memory; a byte sequence
//! that is not UTF-8 is refused with its line, column (1-based, in bytes) and byte offset. Both
//! come back as [`std::io::Error`]s of kind `InvalidData` carrying a [`TextError`], so each
//! stage's "cannot read FILE: ..." error names the file, and the error is bad input (exit 2).
//! [`is_link_loop`] tells a symbolic link loop among the paths users give.
use std::io::{BufRead, Read};
use std::path::Path;

/// `ELOOP`, "too many levels of symbolic links" (its `io::ErrorKind` is not stable yet).
#[cfg(any(target_os = "linux", target_os = "android"))]
const ELOOP: i32 = 40;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const ELOOP: i32 = 62; // macOS and the BSDs

/// Whether `e` is a symbolic link loop (a path a user gave that cannot be resolved).
pub(crate) fn is_link_loop(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(ELOOP)
}

/// Longest line accepted in a text input, in bytes (1 MiB, the line end included). The longest
/// real line is a ROCO or explain record of a few KiB.
pub(crate) const MAX_LINE_BYTES: usize = 1 << 20;

/// What is wrong with a text file, at which line (1-based).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {problem}")]
pub(crate) struct TextError {
    pub line: usize,
    pub problem: TextProblem,
}

/// What is wrong with one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TextProblem {
    #[error("the line is longer than 1 MiB ({} bytes): not a text file of the kind expected", MAX_LINE_BYTES)]
    LineTooLong,
    #[error("byte 0x{byte:02X} at column {column} (byte {offset} of the file) is not UTF-8 text; save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)")]
    NotUtf8 { column: usize, offset: u64, byte: u8 },
}

impl From<TextError> for std::io::Error {
    fn from(e: TextError) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e)
    }
}

/// The [`TextError`] inside an error from this module's readers, if that is what it is: for a
/// reader whose errors read `FILE:LINE: problem`.
pub(crate) fn text_error(e: &std::io::Error) -> Option<&TextError> {
    e.get_ref().and_then(|i| i.downcast_ref::<TextError>())
}

/// The lines of a text input, without their line ends (`\n` or `\r\n`), as
/// [`BufRead::lines`] gives them, but bounded and with line numbers in errors (see the module
/// docs). After an error the iterator ends.
pub struct TextLines<R> {
    reader: R,
    line: usize,
    offset: u64,
    done: bool,
    keep_ends: bool,
}

impl<R: BufRead> TextLines<R> {
    pub fn new(reader: R) -> TextLines<R> {
        TextLines { reader, line: 0, offset: 0, done: false, keep_ends: false }
    }

    /// The next line with its line end as in the file (`None` at the end).
    fn next_raw(&mut self) -> Option<std::io::Result<String>> {
        if self.done {
            return None;
        }
        let mut buf = Vec::new();
        let limit = MAX_LINE_BYTES as u64;
        let n = match (&mut self.reader).take(limit).read_until(b'\n', &mut buf) {
            Ok(n) => n,
            Err(e) => {
                self.done = true;
                return Some(Err(e));
            }
        };
        if n == 0 {
            self.done = true;
            return None;
        }
        self.line += 1;
        if n as u64 == limit && buf.last() != Some(&b'\n') {
            self.done = true;
            return Some(Err(TextError { line: self.line, problem: TextProblem::LineTooLong }.into()));
        }
        let start = self.offset;
        self.offset += n as u64;
        match String::from_utf8(buf) {
            Ok(s) => Some(Ok(s)),
            Err(e) => {
                self.done = true;
                let at = e.utf8_error().valid_up_to();
                let byte = e.as_bytes()[at];
                Some(Err(TextError { line: self.line, problem: TextProblem::NotUtf8 { column: at + 1, offset: start + at as u64, byte } }.into()))
            }
        }
    }
}

impl<R: BufRead> Iterator for TextLines<R> {
    type Item = std::io::Result<String>;

    fn next(&mut self) -> Option<Self::Item> {
        let keep = self.keep_ends;
        self.next_raw().map(|r| {
            r.map(|mut l| {
                if !keep {
                    if l.ends_with('\n') {
                        l.pop();
                        if l.ends_with('\r') {
                            l.pop();
                        }
                    }
                }
                l
            })
        })
    }
}

/// The lines of the file at `path` ([`TextLines`]).
pub fn lines(path: &Path) -> std::io::Result<TextLines<std::io::BufReader<std::fs::File>>> {
    Ok(TextLines::new(std::io::BufReader::with_capacity(1 << 16, std::fs::File::open(path)?)))
}

/// The whole text of the file at `path`, byte for byte as it is (line ends included), read
/// through [`TextLines`]: the drop-in for `std::fs::read_to_string` on a user's file.
pub fn read_text(path: &Path) -> std::io::Result<String> {
    let mut lines = lines(path)?;
    lines.keep_ends = true;
    let mut text = String::new();
    for l in lines {
        text.push_str(&l?);
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(bytes: &[u8]) -> Vec<std::io::Result<String>> {
        TextLines::new(bytes).collect()
    }

    fn error_of(e: &std::io::Error) -> TextError {
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
        text_error(e).expect("a TextError inside").clone()
    }

    #[test]
    fn lines_drop_their_ends_like_std() {
        let got: Vec<String> = lines_of(b"a\r\nb\n\nc").into_iter().map(Result::unwrap).collect();
        assert_eq!(got, ["a", "b", "", "c"]);
        let std_lines: Vec<String> = b"a\r\nb\n\nc".lines().map(Result::unwrap).collect();
        assert_eq!(got, std_lines);
    }

    #[test]
    fn a_latin1_byte_is_named_by_line_column_and_offset() {
        let r = lines_of(b"ok\nid\tC0000001\ncaf\xe9\tC1\nnever read\n");
        assert_eq!(r.len(), 3, "the iterator ends at the error");
        let e = r[2].as_ref().unwrap_err();
        assert_eq!(error_of(e), TextError { line: 3, problem: TextProblem::NotUtf8 { column: 4, offset: 18, byte: 0xE9 } });
        let msg = e.to_string();
        assert!(msg.starts_with("line 3: byte 0xE9 at column 4") && msg.contains("UTF-8"), "{msg}");
    }

    #[test]
    fn a_line_over_the_bound_is_refused_without_reading_on() {
        // an endless reader (like /dev/zero): refused after one bounded line
        let zero = std::io::BufReader::new(std::io::repeat(0));
        let mut it = TextLines::new(zero);
        let e = it.next().unwrap().unwrap_err();
        assert_eq!(error_of(&e), TextError { line: 1, problem: TextProblem::LineTooLong });
        assert!(it.next().is_none());
        // exactly at the bound (line end included) is accepted
        let mut ok = vec![b'x'; MAX_LINE_BYTES - 1];
        ok.push(b'\n');
        ok.extend_from_slice(&vec![b'y'; MAX_LINE_BYTES + 1]);
        let r = lines_of(&ok);
        assert_eq!(r[0].as_ref().unwrap().len(), MAX_LINE_BYTES - 1);
        assert_eq!(error_of(r[1].as_ref().unwrap_err()), TextError { line: 2, problem: TextProblem::LineTooLong });
    }

    #[test]
    fn read_text_keeps_the_bytes() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("t.txt");
        std::fs::write(&f, "\u{feff}a\r\nb\n\nc").unwrap();
        assert_eq!(read_text(&f).unwrap(), std::fs::read_to_string(&f).unwrap());
        std::fs::write(&f, b"a\n\xff").unwrap();
        let e = read_text(&f).unwrap_err();
        assert_eq!(error_of(&e), TextError { line: 2, problem: TextProblem::NotUtf8 { column: 1, offset: 2, byte: 0xFF } });
    }
}
