//! The one error type of the crate.
//!
//! The text parsers are pure functions of a file's content and do not know where it came from, so
//! they return a [`ParseError`] (the line, when the file has lines that matter, and what was
//! wrong, quoting the text). The readers on [`crate::ProcDir`] add the path and return a
//! [`ProcError`]. Opening and reading stay apart because callers report them apart (ptrace says
//! `open /proc/N/maps: ...` or `read /proc/N/maps: ...`).

use std::path::PathBuf;

/// Why a `/proc` file could not be read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    /// The file could not be opened (the process may have exited: `ENOENT`, `ESRCH`).
    #[error("cannot open {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },

    /// The file was opened but reading it failed.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },

    /// The file's content is not what the parser expects.
    #[error("cannot parse {path}: {detail}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Where and what: the line (if any) and the offending field or text.
        detail: ParseError,
    },
}

impl ProcError {
    /// The file the error is about.
    pub fn path(&self) -> &std::path::Path {
        match self {
            ProcError::Open { path, .. }
            | ProcError::Read { path, .. }
            | ProcError::Parse { path, .. } => path,
        }
    }

    /// The I/O error behind an [`ProcError::Open`] or [`ProcError::Read`], `None` for a parse
    /// error.
    pub fn io_error(&self) -> Option<&std::io::Error> {
        match self {
            ProcError::Open { source, .. } | ProcError::Read { source, .. } => Some(source),
            ProcError::Parse { .. } => None,
        }
    }
}

/// For callers whose own API returns `std::io::Result`: an open or read error becomes the
/// underlying error unchanged (same kind, same `raw_os_error`), a parse error becomes
/// `InvalidData` carrying the full message.
impl From<ProcError> for std::io::Error {
    fn from(e: ProcError) -> Self {
        match e {
            ProcError::Open { source, .. } | ProcError::Read { source, .. } => source,
            parse @ ProcError::Parse { .. } => {
                std::io::Error::new(std::io::ErrorKind::InvalidData, parse.to_string())
            }
        }
    }
}

/// What was wrong in a `/proc` file's text: the 1-based line (for files read line by line) and a
/// message that names the field and quotes the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{detail}", line.map(|n| format!("line {n}: ")).unwrap_or_default())]
pub struct ParseError {
    /// The 1-based line number, `None` when the message names a field instead.
    pub line: Option<usize>,
    /// What was wrong, naming the field and quoting the offending text.
    pub detail: String,
}

impl ParseError {
    /// An error about a named field (no line number).
    pub fn field(detail: impl Into<String>) -> Self {
        ParseError {
            line: None,
            detail: detail.into(),
        }
    }

    /// An error on line `line` (1-based).
    pub fn at_line(line: usize, detail: impl Into<String>) -> Self {
        ParseError {
            line: Some(line),
            detail: detail.into(),
        }
    }

    /// The error as a [`ProcError`] about the file `path`.
    pub fn in_file(self, path: impl Into<PathBuf>) -> ProcError {
        ProcError::Parse {
            path: path.into(),
            detail: self,
        }
    }
}

impl From<String> for ParseError {
    fn from(detail: String) -> Self {
        ParseError::field(detail)
    }
}

impl From<&str> for ParseError {
    fn from(detail: &str) -> Self {
        ParseError::field(detail)
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = ProcError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_file_and_line() {
        let e = ParseError::at_line(3, "bad start \"zz\"").in_file("/proc/1/maps");
        assert_eq!(
            e.to_string(),
            "cannot parse /proc/1/maps: line 3: bad start \"zz\""
        );
        let e = ParseError::field("field 6 missing (have 5)").in_file("/proc/1/stat");
        assert_eq!(
            e.to_string(),
            "cannot parse /proc/1/stat: field 6 missing (have 5)"
        );
        assert!(e.io_error().is_none());
        assert_eq!(e.path(), std::path::Path::new("/proc/1/stat"));
    }

    #[test]
    fn io_conversion_keeps_the_errno() {
        let e = ProcError::Open {
            path: "/proc/0/maps".into(),
            source: std::io::Error::from_raw_os_error(libc::ENOENT),
        };
        assert_eq!(
            e.io_error().and_then(|e| e.raw_os_error()),
            Some(libc::ENOENT)
        );
        let io: std::io::Error = e.into();
        assert_eq!(io.raw_os_error(), Some(libc::ENOENT));
        let io: std::io::Error = ParseError::field("x").in_file("/proc/cpuinfo").into();
        assert_eq!(io.kind(), std::io::ErrorKind::InvalidData);
        assert_eq!(io.to_string(), "cannot parse /proc/cpuinfo: x");
    }
}
