//! psnc-imgtool: inspect, verify, compare and convert psnc-cr checkpoint images.
//!
//! Argument parsing and output only; the work is in the `psnc_imgtool` library.

#![forbid(unsafe_code)]

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use psnc_cli::{exit, Exit};
use psnc_format::{LayoutClass, SectionKind};
use psnc_imgtool::diff::{diff_images, DiffOptions, DEFAULT_IGNORE};
use psnc_imgtool::{convert, dump, info, open_flat, open_image, verify, Error};

/// What `info`, `dump` and `verify` can exit with (verify: 65 for an invalid image, like every
/// other subcommand and tool given a bad image).
const READING: &[Exit] = &[Exit::Success, Exit::Usage, Exit::BadImage, Exit::NoInput];
/// What `diff` can exit with: 1 when the images differ, as diff(1).
const DIFF: &[Exit] = &[
    Exit::Success,
    Exit::No,
    Exit::Usage,
    Exit::BadImage,
    Exit::NoInput,
];
/// What `convert` can exit with.
const CONVERT: &[Exit] = &[
    Exit::Success,
    Exit::Usage,
    Exit::BadImage,
    Exit::NoInput,
    Exit::Refused,
    Exit::Failed,
    Exit::CannotWrite,
];
/// Every status of the tool: `convert`'s and diff's 1.
const ALL: &[Exit] = &[
    Exit::Success,
    Exit::No,
    Exit::Usage,
    Exit::BadImage,
    Exit::NoInput,
    Exit::Refused,
    Exit::Failed,
    Exit::CannotWrite,
];

/// Inspect, verify, compare and convert psnc-cr checkpoint images.
///
/// IMAGE is a path, or `-` to read the image from stdin (it is spooled to memory first).
#[derive(Parser, Debug)]
#[command(name = "psnc-imgtool", version, after_help = exit::help(ALL, &[]))]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Summarize an image and its process tree.
    ///
    /// Prints format version, layout class, identity (tool version, creation time, host kernel,
    /// CPU, XSAVE), counts of processes, threads and VMAs, stored bytes by kind (pages, files,
    /// metadata), the stored files, and the process tree with each command line.
    #[command(after_help = exit::help(READING, &[]))]
    Info {
        /// The image (`-` = stdin).
        image: String,
        /// Print the same summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print every decoded field, hex-dump or search stored memory.
    #[command(long_about = dump_about(), after_help = exit::help(READING, &[]))]
    Dump {
        /// The image (`-` = stdin).
        image: String,
        /// Only this section.
        #[arg(long, value_name = "KIND", value_parser = parse_section)]
        section: Option<SectionKind>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Only this process (sections), or the process whose memory --addr/--search reads
        /// (default: the first process for --addr, every process for --search).
        #[arg(long)]
        pid: Option<u32>,
        /// Hex-dump the stored memory at this address (hex with 0x, or decimal).
        #[arg(long, value_name = "ADDR", value_parser = parse_u64, conflicts_with_all = ["section", "search", "search_hex"])]
        addr: Option<u64>,
        /// Number of bytes to dump with --addr [default: 256].
        #[arg(long, value_name = "N", value_parser = parse_u64, requires = "addr")]
        len: Option<u64>,
        /// Find this text in stored memory; print each hit's address, VMA and context.
        #[arg(long, value_name = "TEXT", conflicts_with_all = ["section", "search_hex"])]
        search: Option<String>,
        /// Find these bytes (hex, e.g. 7f454c46 or "7f 45 4c 46") in stored memory.
        #[arg(long, value_name = "HEX", conflicts_with = "section")]
        search_hex: Option<String>,
        /// Stop a search after this many hits.
        #[arg(long, value_name = "N", default_value_t = 100)]
        max_hits: usize,
    },
    /// Check an image's integrity and invariants.
    ///
    /// Checks magic, version, section table, whole-image and every section digest, the page and
    /// file data chunk digests, and the model invariants (VMAs sorted and disjoint, page runs
    /// inside VMAs, threads in their process, file references resolve).
    ///
    /// Exits 0 when valid, 65 when not (naming the first failure, as every tool exits for a bad
    /// image), 66 when the file cannot be read.
    /// For an incremental image (psnc-capture --parent), also its parent chain: each parent
    /// found (where the image records it, or next to it), the very image it was captured
    /// against (its digest), and valid in full. Exits 66 when a parent cannot be found.
    #[command(after_help = exit::help(READING, &[]))]
    Verify {
        /// The image (`-` = stdin).
        image: String,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// The parent of an incremental image, in place of the path it records.
        #[arg(long, value_name = "IMAGE")]
        parent: Option<PathBuf>,
    },
    /// Compare two images field by field and page by page.
    ///
    /// Incremental images are compared with their parents' pages merged in: an incremental
    /// image and its merged copy compare equal.
    ///
    /// One line per differing field, with a path such as processes[0].threads[1].regs.rip, and
    /// for memory the ranges of pages that differ, with page and byte counts. Like diff(1):
    /// exit 0 equal, 1 different, another status (65, 66, ...) on an error.
    ///
    /// Where the data lies in the file (page run offsets, file offsets) and the layout class are
    /// not compared: an image and its conversion compare equal.
    #[command(after_help = exit::help(DIFF, &[]))]
    Diff {
        /// The first image (`-` = stdin).
        a: String,
        /// The second image (`-` = stdin).
        b: String,
        /// Leave things out of the comparison. Bare `--ignore` ignores the identity section
        /// (creation time, tool version, host, capturing user and command line), so two captures
        /// of the same stopped process compare equal. `--ignore=RULE,...` takes rules:
        /// `identity`; `memory` (no page comparison); `rseq` (the CPU-number fields the kernel
        /// rewrites in each thread's rseq area); a field name, ignored wherever it occurs
        /// (e.g. ppid, itimers, posix_timers, created_ns); or a path with [*] for any index
        /// (e.g. processes[*].threads[*].regs.rax).
        #[arg(
            long,
            value_name = "RULE,...",
            num_args = 0..=1,
            require_equals = true,
            default_missing_value = DEFAULT_IGNORE,
            value_delimiter = ',',
            action = clap::ArgAction::Append
        )]
        ignore: Vec<String>,
        /// Print the differences as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Rewrite an image in the other layout class (32-bit or 64-bit fields).
    ///
    /// The conversion is lossless or refused: converting to 32 refuses, naming the first field that does not fit,
    /// and writes nothing (an x86_64 process always has one: its stack lies above 4 GiB). The
    /// identity is kept, so 32 -> 64 -> 32 gives back the same bytes. Unknown ancillary
    /// sections are carried over only when flagged safe to copy. The input is verified first.
    /// The output is written atomically (mode 0600); `-o -` streams it to stdout.
    #[command(after_help = exit::help(CONVERT, &[]))]
    Convert {
        /// The image (`-` = stdin).
        image: String,
        /// The target layout class.
        #[arg(long, value_enum)]
        to: Class,
        /// The output path (`-` = stdout).
        #[arg(short = 'o', long, value_name = "OUT")]
        output: String,
    },
    /// Flatten an incremental image and its parents into one full image.
    ///
    /// An image made with psnc-capture --parent needs its parent (and the parent's parents) to
    /// restore; the merged image holds every page and stored file itself and restores alone.
    /// Every image of the chain is verified first. The identity is the incremental image's.
    /// A full image is copied as it is (in another layout class with --to). The output is
    /// written atomically (mode 0600); `-o -` streams it to stdout.
    #[command(after_help = exit::help(CONVERT, &[]))]
    Merge {
        /// The incremental image (`-` = stdin, with --parent).
        image: String,
        /// The output path (`-` = stdout).
        #[arg(short = 'o', long, value_name = "OUT")]
        output: String,
        /// The parent, in place of the path the image records.
        #[arg(long, value_name = "IMAGE")]
        parent: Option<PathBuf>,
        /// The layout class of the output (default: the image's).
        #[arg(long, value_enum)]
        to: Option<Class>,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Class {
    #[value(name = "32")]
    Bits32,
    #[value(name = "64")]
    Bits64,
}

/// `dump --help`: the section names come from the format crate, so the list cannot drift.
fn dump_about() -> String {
    let mut kinds = SectionKind::ALL.to_vec();
    kinds.sort_by_key(|k| k.number());
    let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
    format!(
        "Print every decoded field, hex-dump or search stored memory.\n\n\
         Without --addr/--search: the header, the section table and every decoded field, \
         section by section (or only --section KIND, only --pid PID).\n\n\
         Section names: {}.\n\n\
         The hex dump shows `--` for bytes the image does not store and says why (never \
         touched, file-backed, kernel-provided, not mapped). For an incremental image, --addr \
         and --search read through its parent chain.",
        names.join(", ")
    )
}

impl From<Class> for LayoutClass {
    fn from(c: Class) -> LayoutClass {
        match c {
            Class::Bits32 => LayoutClass::Bits32,
            Class::Bits64 => LayoutClass::Bits64,
        }
    }
}

fn parse_section(s: &str) -> Result<SectionKind, String> {
    SectionKind::from_name(s).ok_or_else(|| {
        let names: Vec<&str> = SectionKind::ALL.iter().map(|k| k.name()).collect();
        format!("unknown section {s:?}; one of: {}", names.join(", "))
    })
}

fn parse_u64(s: &str) -> Result<u64, String> {
    let t = s.trim().replace('_', "");
    let r = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16),
        None => t.parse(),
    };
    r.map_err(|e| format!("{s:?} is not a number (hex with 0x, or decimal): {e}"))
}

/// Writes `s` to stdout; a closed pipe (`| head`) ends the output quietly.
fn print(s: &str) -> Result<(), Error> {
    let mut out = io::stdout().lock();
    match out.write_all(s.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(Error::Write {
            output: "stdout".into(),
            source: psnc_format::FormatError::Io {
                action: "writing the output",
                source: e,
            },
        }),
        _ => Ok(()),
    }
}

fn json<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_string_pretty(v) {
        Ok(s) => s + "\n",
        Err(e) => format!("{{\"error\": \"cannot serialize: {e}\"}}\n"),
    }
}

fn run(cli: Cli) -> Result<Exit, Error> {
    match cli.cmd {
        Cmd::Info {
            image,
            json: as_json,
        } => {
            let img = open_image(&image)?;
            let i = info::info(&img, &image);
            print(&if as_json { json(&i) } else { i.render() })?;
            Ok(Exit::Success)
        }
        Cmd::Dump {
            image,
            section,
            json: as_json,
            pid,
            addr,
            len,
            search,
            search_hex,
            max_hits,
        } => {
            // The memory views read an incremental image's parents too; the sections are its own.
            let img = if addr.is_some() || search.is_some() || search_hex.is_some() {
                open_flat(&image, None)?
            } else {
                open_image(&image)?
            };
            if let Some(addr) = addr {
                let d = dump::addr_dump(&img, &image, pid, addr, len.unwrap_or(256))?;
                print(&if as_json { json(&d) } else { d.render() })?;
            } else if search.is_some() || search_hex.is_some() {
                let needle = match (&search, &search_hex) {
                    (Some(t), _) => t.as_bytes().to_vec(),
                    (None, Some(h)) => dump::parse_hex_pattern(h)?,
                    (None, None) => Vec::new(),
                };
                let hits = dump::search(&img, &image, pid, &needle, max_hits)?;
                print(&if as_json {
                    json(&hits)
                } else {
                    dump::render_hits(&hits, &needle, max_hits)
                })?;
            } else {
                dump::check_pid(&img, &image, pid)?;
                let out = if as_json {
                    json(&dump::dump_value(&img, section, pid))
                } else {
                    dump::dump_text(&img, section, pid)
                };
                print(&out)?;
            }
            Ok(Exit::Success)
        }
        Cmd::Verify {
            image,
            json: as_json,
            parent,
        } => {
            let r = verify::verify_arg(&image, parent.as_deref())?;
            print(&if as_json { json(&r) } else { r.render() })?;
            Ok(match &r.failure {
                None => Exit::Success,
                Some((_, e)) => Exit::reading_image(e),
            })
        }
        Cmd::Diff {
            a,
            b,
            ignore,
            json: as_json,
        } => {
            if a == "-" && b == "-" {
                return Err(Error::TwoStdin);
            }
            let opts = DiffOptions::from_args(&ignore)?;
            let ia = open_flat(&a, None)?;
            let ib = open_flat(&b, None)?;
            let r = diff_images(&ia, &ib, &opts)?;
            print(&if as_json { json(&r) } else { r.render() })?;
            Ok(if r.is_equal() {
                Exit::Success
            } else {
                Exit::No
            })
        }
        Cmd::Merge {
            image,
            output,
            parent,
            to,
        } => {
            let img = open_flat(&image, parent.as_deref())?;
            let to = to.map_or(img.class(), LayoutClass::from);
            let report = if output == "-" {
                let (_, r) = convert::convert_to_writer(&img, &image, to, io::stdout().lock())?;
                r
            } else {
                convert::convert_to_path(&img, &image, to, &PathBuf::from(&output))?
            };
            eprint!("{}", report.render(&output));
            if !img.chain().is_empty() {
                eprintln!("  merged {} parent image(s) into it", img.chain().len());
            }
            Ok(Exit::Success)
        }
        Cmd::Convert { image, to, output } => {
            let to = LayoutClass::from(to);
            let img = open_image(&image)?;
            let report = if output == "-" {
                let (_, r) = convert::convert_to_writer(&img, &image, to, io::stdout().lock())?;
                r
            } else {
                convert::convert_to_path(&img, &image, to, &PathBuf::from(&output))?
            };
            eprint!("{}", report.render(&output));
            Ok(Exit::Success)
        }
    }
}

fn main() -> ExitCode {
    let cli = match psnc_cli::parse_args::<Cli>() {
        Ok(cli) => cli,
        Err(status) => return status.into(),
    };
    match run(cli) {
        Ok(status) => status.into(),
        Err(e) => {
            eprintln!("psnc-imgtool: {e}");
            e.exit_status().into()
        }
    }
}
