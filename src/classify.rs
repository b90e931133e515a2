//! The one rule behind exit codes, on the ground floor: whether an error is the user's to fix
//! ([`Classify`]), how an I/O error on a path is judged ([`io_is_bad_input`]), and an error with
//! its causes as one message ([`report_chain`]). Every stage's error type implements [`Classify`]
//! by importing this leaf; the aggregate [`crate::error::Error`], which wraps every stage's error,
//! sits above all of them, so no stage imports it.
/// Exit code for success.
pub const EXIT_OK: i32 = 0;
/// Exit code for a failure that is not the user's input (I/O, libtorch, bugs).
pub const EXIT_FAILURE: i32 = 1;
/// Exit code for bad usage or bad input (malformed files, unknown CUIs, missing images...).
pub const EXIT_BAD_INPUT: i32 = 2;

/// Whether an error is the user's to fix (exit code 2) or a failure (exit code 1).
pub trait Classify {
    fn is_bad_input(&self) -> bool;
}

/// An I/O error on a path, classified by what was being done: reading an input the user named is
/// bad input when the file is missing or unreadable; writing fails for reasons of the machine
/// (disk full, read-only file system), except where the path itself is wrong (a directory where a
/// file should be, or the reverse).
pub fn io_is_bad_input(writing: bool, e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    let path_problem = matches!(e.kind(), K::NotADirectory | K::IsADirectory | K::AlreadyExists | K::NotFound | K::InvalidFilename) || crate::text::is_link_loop(e);
    if writing {
        path_problem
    } else {
        path_problem || matches!(e.kind(), K::PermissionDenied | K::InvalidData | K::UnexpectedEof)
    }
}

/// `e` and its sources as one message, skipping causes already quoted by an outer message.
pub fn report_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !text.is_empty() && !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}
