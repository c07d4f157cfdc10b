//! The one exit-status scheme of the psnc tools.
//!
//! The numbers are those of sysexits(3), which programs rarely use for their own statuses: with
//! `psnc-restore --foreground`, which exits with the restored program's status (128+N when a
//! signal N killed it), restore's own failures stay distinguishable from the program's.
//!
//! | code | [`Exit`]               | sysexits         | meaning                                         |
//! |------|------------------------|------------------|-------------------------------------------------|
//! | 0    | [`Exit::Success`]      |                  | done                                            |
//! | 1    | [`Exit::No`]           |                  | the answer is no, nothing failed (diff: differ) |
//! | 3    | [`Exit::KillFailed`]   |                  | capture: image written, `--kill` failed         |
//! | 64   | [`Exit::Usage`]        | `EX_USAGE`       | bad command line                                |
//! | 65   | [`Exit::BadImage`]     | `EX_DATAERR`     | corrupt, truncated, foreign, unsupported image  |
//! | 66   | [`Exit::NoInput`]      | `EX_NOINPUT`     | image, PID or file missing or unreadable        |
//! | 69   | [`Exit::Refused`]      | `EX_UNAVAILABLE` | not supported here; nothing created or touched  |
//! | 70   | [`Exit::Failed`]       | `EX_SOFTWARE`    | failed part-way, or an internal error           |
//! | 73   | [`Exit::CannotWrite`]  | `EX_CANTCREAT`   | the output cannot be created or written         |
//! | 77   | [`Exit::NoPermission`] | `EX_NOPERM`      | missing privilege                               |
//!
//! Every error of the image format is classified once, here ([`Exit::reading_image`],
//! [`Exit::writing_image`]), so that the same bad image gives the same status from every tool.
//! [`help`] renders the `Exit status:` block of each tool's `--help` from the same one-line
//! meanings; each tool lists the statuses it can return.

use std::process::ExitCode;

use psnc_format::FormatError;

/// How a psnc tool ended: its exit status, with one meaning shared by every tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Exit {
    /// 0: the tool did what was asked.
    Success,
    /// 1: the tool answered "no" without failing (`psnc-imgtool diff`: the images differ, as
    /// diff(1) does).
    No,
    /// 3: `psnc-capture --kill` wrote the image but could not kill the target (a partial
    /// success, so not one of the sysexits failures).
    KillFailed,
    /// 64 (`EX_USAGE`): bad command line. `--help` and `--version` are [`Exit::Success`].
    Usage,
    /// 65 (`EX_DATAERR`): the image is corrupt, truncated, foreign or of an unsupported version.
    BadImage,
    /// 66 (`EX_NOINPUT`): an input does not exist or cannot be read: the image file, the target
    /// process, a file capture must store.
    NoInput,
    /// 69 (`EX_UNAVAILABLE`): refused before anything was created or touched: the image or the
    /// target holds something not supported, or this machine cannot run it (CPU features,
    /// vdso, PID in use, missing files, no kernel module).
    Refused,
    /// 70 (`EX_SOFTWARE`): failed part-way (a step that failed or was interrupted, or an
    /// internal error): restore killed the half-built process, capture left the target running.
    Failed,
    /// 73 (`EX_CANTCREAT`): the output image cannot be created or written (disk full, I/O
    /// error, permissions).
    CannotWrite,
    /// 77 (`EX_NOPERM`): a privilege is missing (not root, no CAP_CHECKPOINT_RESTORE, ptrace
    /// denied).
    NoPermission,
}

impl Exit {
    /// Every status, in the order of their numbers.
    pub const ALL: &'static [Exit] = &[
        Exit::Success,
        Exit::No,
        Exit::KillFailed,
        Exit::Usage,
        Exit::BadImage,
        Exit::NoInput,
        Exit::Refused,
        Exit::Failed,
        Exit::CannotWrite,
        Exit::NoPermission,
    ];

    /// The number the process exits with.
    pub const fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::No => 1,
            Exit::KillFailed => 3,
            Exit::Usage => 64,
            Exit::BadImage => 65,
            Exit::NoInput => 66,
            Exit::Refused => 69,
            Exit::Failed => 70,
            Exit::CannotWrite => 73,
            Exit::NoPermission => 77,
        }
    }

    /// The one-line meaning printed in every tool's `--help`, in the same words everywhere.
    pub const fn meaning(self) -> &'static str {
        match self {
            Exit::Success => "success",
            Exit::No => "the answer is no (diff: the images differ); nothing failed",
            Exit::KillFailed => "the image was written, but --kill could not kill the target",
            Exit::Usage => "bad command line",
            Exit::BadImage => {
                "the image is corrupt, truncated, foreign or of an unsupported version"
            }
            Exit::NoInput => {
                "an input does not exist or cannot be read: the image, the target process or its \
                 files"
            }
            Exit::Refused => {
                "refused, nothing was created or touched: unsupported, or this machine cannot \
                 run it"
            }
            Exit::Failed => {
                "failed part-way; capture leaves the target running, restore kills the \
                 half-built process"
            }
            Exit::CannotWrite => "the output image cannot be created or written",
            Exit::NoPermission => "missing privilege (root, CAP_CHECKPOINT_RESTORE, ptrace)",
        }
    }

    /// The status of a tool that could not read an image (or stream) because of `e`.
    ///
    /// I/O errors mean the input is missing or unreadable ([`Exit::NoInput`]); everything the
    /// reader finds wrong with the bytes is [`Exit::BadImage`]. Errors only the writer raises
    /// mean a bug ([`Exit::Failed`]).
    pub fn reading_image(e: &FormatError) -> Exit {
        match e {
            FormatError::Io { .. } => Exit::NoInput,
            FormatError::Truncated { .. }
            | FormatError::BadMagic { .. }
            | FormatError::BadTrailer { .. }
            | FormatError::UnsupportedMajor { .. }
            | FormatError::BadClass(_)
            | FormatError::BadByteOrder(_)
            | FormatError::BadHeader(_)
            | FormatError::BadSectionExtent { .. }
            | FormatError::UnknownCriticalSection { .. }
            | FormatError::UnsupportedSectionVersion { .. }
            | FormatError::SectionCount { .. }
            | FormatError::DigestMismatch { .. }
            | FormatError::Decode { .. }
            | FormatError::FieldTooWide { .. }
            | FormatError::Invalid(_)
            | FormatError::DataOutOfRange { .. } => Exit::BadImage,
            FormatError::WriterState(_) => Exit::Failed,
            FormatError::ParentMissing { .. } => Exit::NoInput,
            FormatError::ParentMismatch { .. } => Exit::BadImage,
            FormatError::Parent { source, .. } => Exit::reading_image(source),
        }
    }

    /// The status of a tool whose writing of an image failed because of `e`.
    ///
    /// I/O errors mean the output cannot be created or written ([`Exit::CannotWrite`]); a value
    /// too wide for the chosen layout class is a refusal ([`Exit::Refused`]: nothing is left
    /// behind); anything else means the tool built a wrong model or misused the writer, a bug
    /// ([`Exit::Failed`]).
    pub fn writing_image(e: &FormatError) -> Exit {
        match e {
            FormatError::Io { .. } => Exit::CannotWrite,
            FormatError::FieldTooWide { .. } => Exit::Refused,
            FormatError::Truncated { .. }
            | FormatError::BadMagic { .. }
            | FormatError::BadTrailer { .. }
            | FormatError::UnsupportedMajor { .. }
            | FormatError::BadClass(_)
            | FormatError::BadByteOrder(_)
            | FormatError::BadHeader(_)
            | FormatError::BadSectionExtent { .. }
            | FormatError::UnknownCriticalSection { .. }
            | FormatError::UnsupportedSectionVersion { .. }
            | FormatError::SectionCount { .. }
            | FormatError::DigestMismatch { .. }
            | FormatError::Decode { .. }
            | FormatError::Invalid(_)
            | FormatError::WriterState(_)
            | FormatError::DataOutOfRange { .. } => Exit::Failed,
            // Reading a parent while writing (capture --parent, merge): as when reading.
            FormatError::ParentMissing { .. }
            | FormatError::ParentMismatch { .. }
            | FormatError::Parent { .. } => Exit::reading_image(e),
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e.code())
    }
}

/// The `Exit status:` block of a tool's `--help` (clap's `after_help`): one line per status the
/// tool can return, with the shared meaning, then the tool's `extra` lines `(label, text)` for
/// statuses outside the scheme (restore's pass-through of the restored program's status).
pub fn help(statuses: &[Exit], extra: &[(&str, &str)]) -> String {
    let mut out = String::from("Exit status:\n");
    for s in statuses {
        out.push_str(&format!("  {:<4}{}\n", s.code(), s.meaning()));
    }
    for (label, text) in extra {
        out.push_str(&format!("  {label:<4}{text}\n"));
    }
    out.pop();
    out
}

/// Parses the command line into `P` like `P::parse()`, but a bad command line is
/// [`Exit::Usage`] (64) instead of clap's own 2; `--help` and `--version` print and give
/// [`Exit::Success`]. The caller returns the `Err` status at once.
pub fn parse_args<P: clap::Parser>() -> Result<P, Exit> {
    P::try_parse().map_err(|e| {
        // Help and version go to stdout, errors to stderr (clap decides); a closed stream has
        // nobody left to tell.
        let _ = e.print();
        if e.use_stderr() {
            Exit::Usage
        } else {
            Exit::Success
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_numbers_are_the_sysexits_ones() {
        let codes: Vec<u8> = Exit::ALL.iter().map(|e| e.code()).collect();
        assert_eq!(codes, [0, 1, 3, 64, 65, 66, 69, 70, 73, 77]);
    }

    #[test]
    fn every_status_is_listed_once_and_has_a_one_line_meaning() {
        for (i, e) in Exit::ALL.iter().enumerate() {
            assert!(!Exit::ALL[i + 1..].contains(e), "{e:?} twice");
            assert!(
                !e.meaning().contains('\n') && e.meaning().len() < 96,
                "{e:?}"
            );
        }
    }

    #[test]
    fn a_corrupt_image_is_a_data_error_and_a_missing_one_no_input() {
        let io = || FormatError::Io {
            action: "opening the image",
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert_eq!(Exit::reading_image(&io()), Exit::NoInput);
        assert_eq!(Exit::writing_image(&io()), Exit::CannotWrite);
        let bad = FormatError::BadMagic {
            found: [0; 8],
            expected: *b"PSNCCKPT",
        };
        assert_eq!(Exit::reading_image(&bad), Exit::BadImage);
        let wide = FormatError::FieldTooWide {
            field: "vma .end".into(),
            value: 1 << 40,
            bits: 32,
        };
        assert_eq!(Exit::writing_image(&wide), Exit::Refused);
        assert_eq!(
            Exit::reading_image(&FormatError::WriterState("x")),
            Exit::Failed
        );
    }

    #[test]
    fn the_help_block_lists_the_given_statuses_in_the_shared_words() {
        assert_eq!(
            help(
                &[Exit::Success, Exit::Usage],
                &[("N", "the program's status")]
            ),
            "Exit status:\n  0   success\n  64  bad command line\n  N   the program's status"
        );
    }
}
