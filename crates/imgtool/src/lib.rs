//! psnc-imgtool: inspect, verify, compare and convert psnc-cr checkpoint images.
//!
//! The `psnc-imgtool` binary parses arguments and prints; the work of every subcommand lives here
//! so that tests call the same code the tool runs:
//!
//! | subcommand | module      | result                                                       |
//! |------------|-------------|--------------------------------------------------------------|
//! | `info`     | [`info`]    | [`info::Info`], a summary (table or JSON)                    |
//! | `dump`     | [`dump`]    | every decoded field; hex dump and search of stored memory    |
//! | `verify`   | [`verify`]  | [`verify::Outcome`]: valid, or the first failed check        |
//! | `diff`     | [`diff`]    | [`diff::DiffReport`]: field paths and differing page ranges  |
//! | `convert`  | [`convert`] | the image rewritten in the other layout class                |
//!
//! [`view`] turns the model into the `serde_json::Value` that `dump` prints and `diff` walks (named
//! registers, bytes as hex), [`memory`] answers "what is stored at this address", [`progress`]
//! draws progress bars on a terminal only.
//!
//! Exit statuses are the scheme of all three tools ([`psnc_cli::Exit`]); [`Error::exit_status`]
//! maps each error to one, and the binary documents them in its `--help`.

#![forbid(unsafe_code)]

use std::io::{self, IsTerminal, Read};
use std::path::Path;

use psnc_cli::Exit;
use psnc_format::{FormatError, Image};

pub mod convert;
pub mod diff;
pub mod dump;
pub mod info;
pub mod memory;
pub mod progress;
pub mod verify;
pub mod view;

/// The one error type of imgtool. Each variant names the image (as given on the command line) and
/// what to do where the user can act.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The image could not be opened or read (I/O, truncated, corrupt, foreign, newer major).
    #[error("{image}: {source}")]
    Image {
        /// The image argument (`-` for stdin).
        image: String,
        /// What the format crate found.
        #[source]
        source: FormatError,
    },
    /// `--pid` names a process the image does not hold.
    #[error("{image}: no process with pid {pid} in the image (it holds pids {available:?})")]
    NoSuchPid {
        /// The image argument.
        image: String,
        /// The requested pid.
        pid: u32,
        /// The pids the image holds.
        available: Vec<u32>,
    },
    /// The search pattern is empty.
    #[error("the search pattern is empty: give --search TEXT or --search-hex HEX with at least one byte")]
    EmptyPattern,
    /// `--search-hex` is not hex.
    #[error("--search-hex {text:?} is not hex ({why}): write the bytes as hex digits, e.g. 48656c6c6f or \"48 65 6c\"")]
    BadHex {
        /// The argument.
        text: String,
        /// The decoder's message.
        why: String,
    },
    /// `--addr` plus `--len` passes the end of the address space.
    #[error("address range {addr:#x} + {len:#x} bytes passes the end of the address space")]
    AddressOverflow {
        /// Start address.
        addr: u64,
        /// Length.
        len: u64,
    },
    /// `--len` is larger than a hex dump is meant for.
    #[error("--len {len} is too long for a hex dump (at most {max} bytes); dump a smaller range")]
    DumpTooLong {
        /// The requested length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// `--ignore` names something that is not a field name or path.
    #[error("--ignore {pattern:?}: {why}; give a field name (ppid), a path (processes[*].threads[0].regs.rip), identity or memory")]
    BadIgnore {
        /// The pattern as given.
        pattern: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Both images of `diff` are `-`.
    #[error("both images are '-': only one image can come from stdin")]
    TwoStdin,
    /// `convert` refused: a value does not fit the target layout class. Nothing was written.
    #[error("{image}: cannot convert: {source}; nothing was written")]
    DoesNotFit {
        /// The image argument.
        image: String,
        /// The target class.
        to: psnc_format::LayoutClass,
        /// The first field that does not fit (`FormatError::FieldTooWide`).
        #[source]
        source: FormatError,
    },
    /// `convert` refused an input that does not verify: rewriting it would give corrupt data
    /// fresh, valid digests.
    #[error("{image}: refusing to convert an image that does not verify: {source}; run `psnc-imgtool verify {image}`")]
    InvalidInput {
        /// The image argument.
        image: String,
        /// The first failed check.
        #[source]
        source: FormatError,
    },
    /// `convert` of an incremental image: its parents' pages would be lost.
    #[error("{image} is an incremental image (psnc-capture --parent): convert works on full images; make one with `psnc-imgtool merge {image} -o FULL [--to 32|64]`")]
    Incremental {
        /// The image argument.
        image: String,
    },
    /// Writing the converted image failed (the partial output was removed).
    #[error("writing {output}: {source}")]
    Write {
        /// The output argument.
        output: String,
        /// The failure.
        #[source]
        source: FormatError,
    },
}

impl Error {
    /// The exit status this error maps to: the image's own problems as every tool classifies
    /// them, bad arguments as usage errors.
    pub fn exit_status(&self) -> Exit {
        match self {
            Error::Image { source, .. } => Exit::reading_image(source),
            Error::InvalidInput { source, .. } => Exit::reading_image(source),
            Error::Write { source, .. } => Exit::writing_image(source),
            Error::DoesNotFit { .. } | Error::Incremental { .. } => Exit::Refused,
            Error::NoSuchPid { .. }
            | Error::EmptyPattern
            | Error::BadHex { .. }
            | Error::AddressOverflow { .. }
            | Error::DumpTooLong { .. }
            | Error::BadIgnore { .. }
            | Error::TwoStdin => Exit::Usage,
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Opens the image named by a command-line argument: a path, or `-` for stdin (spooled to a
/// memfd by the format crate, then checked like a file).
pub fn open_image(arg: &str) -> Result<Image> {
    let r = if arg == "-" {
        let stdin = io::stdin();
        if stdin.is_terminal() {
            return Err(Error::Image {
                image: arg.into(),
                source: FormatError::Io {
                    action: "reading the image from stdin",
                    source: io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "stdin is a terminal; pipe an image into it",
                    ),
                },
            });
        }
        Image::from_reader(stdin.lock())
    } else {
        Image::open(Path::new(arg))
    };
    r.map_err(|source| Error::Image {
        image: arg.into(),
        source,
    })
}

/// [`open_image`], and for an incremental image its parents too ([`Image::with_parents`]):
/// the flattened view, which `merge`, `diff` and the memory views of `dump` work on.
/// `parent` replaces the parent path the image records.
pub fn open_flat(arg: &str, parent: Option<&Path>) -> Result<Image> {
    let img = open_image(arg)?;
    let own = (arg != "-").then(|| Path::new(arg));
    img.with_parents(own, parent)
        .map_err(|source| Error::Image {
            image: arg.into(),
            source,
        })
}

/// Opens an image from any reader (tests, and stdin through [`open_image`]).
pub fn open_reader(name: &str, r: impl Read) -> Result<Image> {
    Image::from_reader(r).map_err(|source| Error::Image {
        image: name.into(),
        source,
    })
}
