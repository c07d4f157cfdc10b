//! psnc-capture: capture a running process into a checkpoint image.
//!
//! Thin: parses arguments, calls [`psnc_capture::capture`], prints the summary or the error.

#![forbid(unsafe_code)]

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use psnc_capture::interrupt::Interrupts;
use psnc_capture::{capture, KmodMode, Options, Output, PreCopyMode};
use psnc_cli::{exit, Exit};
use psnc_format::LayoutClass;

/// Every status psnc-capture can exit with. A failed capture leaves the target running and
/// unchanged and no image behind, whatever the status.
const STATUSES: &[Exit] = &[
    Exit::Success,
    Exit::KillFailed,
    Exit::Usage,
    Exit::NoInput,
    Exit::Refused,
    Exit::Failed,
    Exit::CannotWrite,
    Exit::NoPermission,
];

#[derive(Debug, Parser)]
#[command(
    name = "psnc-capture",
    version,
    about = "Capture a running process into a self-contained checkpoint image.",
    long_about = "Capture a running, unmodified process into one self-contained checkpoint image.\n\n\
        The process and its descendants (unless --no-children) are stopped with PTRACE_SEIZE + \
        PTRACE_INTERRUPT (no SIGSTOP: their parents and job control see nothing), captured, and \
        released: they keep running unless --kill is given. A failed capture leaves every one of \
        them running and unchanged and leaves no file under IMAGE.",
    after_help = exit::help(STATUSES, &[])
)]
struct Args {
    /// The process to capture, with all its descendants (unless --no-children).
    pid: i32,

    /// Capture PID alone, not its descendants. Pipes it shares with them are stored as external
    /// (like any pipe to a process outside the image), with their buffered bytes.
    #[arg(long)]
    no_children: bool,

    /// Image file to write (`-` for standard output).
    #[arg(short = 'o', long = "output", value_name = "IMAGE")]
    output: PathBuf,

    /// Kill the process once the image is safely written (it stays stopped until then).
    #[arg(long)]
    kill: bool,

    /// Do not store the executable and mapped files in the image; restore then needs them on
    /// disk, unchanged. Deleted files are stored regardless.
    #[arg(long)]
    no_store_files: bool,

    /// Layout class of the image: 32 or 64 bits (default: the process's own, 32 for i386).
    #[arg(long, value_name = "32|64", value_parser = parse_layout)]
    layout: Option<LayoutClass>,

    /// Print the summary as JSON on stdout (on stderr when the image goes to stdout).
    #[arg(long)]
    json: bool,

    /// Where the kernel-only state (handlers, timers, sigaltstack, brk, prctl values) comes
    /// from: `always` the module /dev/checkpoint (fail without it), `never` system calls run
    /// inside the target, `auto` the module when it is loaded and supported, else system calls.
    /// With the module nothing is run in the target (except timer_gettime for POSIX timers).
    #[arg(long, value_name = "auto|always|never", default_value = "auto")]
    kmod: KmodMode,

    /// Copy memory while the processes run, so that they are stopped only for the pages they
    /// write meanwhile and the rest of the state: a short first stop creates a userfaultfd in
    /// each process (one userfaultfd() and one close() run inside it) with which the tool
    /// write-protects their private memory (asynchronous mode: a write is never blocked, only
    /// noted) and copies it; rounds copy again what was written, then the final stop copies the
    /// last written pages. Closing the userfaultfd removes every trace before they run on.
    /// Needs Linux 6.7 (UFFD_FEATURE_WP_ASYNC, PAGEMAP_SCAN). `auto` falls back to copying
    /// everything stopped where that is not available (-v and --json say why), `always` fails
    /// instead (the processes left running), `never` copies everything stopped. Shared memory
    /// is always copied stopped. `fork` (and `auto` where the tracking cannot be armed, unless
    /// the module is the source) reads the memory from a copy-on-write fork of each process
    /// instead, made in the stop by one clone() run inside it: the child is stopped before its
    /// first instruction, never runs, and is killed and reaped (a moment's stop of its parent
    /// for a wait4) once its memory is read. Not with --kill, where the target stays stopped
    /// anyway.
    #[arg(long, value_name = "auto|always|fork|never", default_value = "auto")]
    pre_copy: PreCopyMode,

    /// Make an incremental image: store only the pages and files that differ from the image
    /// PARENT (an earlier capture of this tree, full or incremental) and refer to PARENT for
    /// the rest. Every page is compared by content, so the result restores exactly what a
    /// full image would; shared memory is stored in full. PARENT is verified first (the target
    /// is not touched if it is bad). Restore needs PARENT and its own parents where the image
    /// records them (their absolute paths) or next to the new image; `psnc-imgtool merge`
    /// makes one full image of a chain.
    #[arg(long, value_name = "PARENT")]
    parent: Option<PathBuf>,

    /// Capture established TCP connections (IPv4, IPv6) so that restore continues them: each
    /// is read in repair mode (TCP_REPAIR, needs CAP_NET_ADMIN), sequence numbers, both queues,
    /// options and window included. The kernel sends nothing for it meanwhile: with --kill the
    /// socket is closed in repair mode (no FIN, no RST), else it leaves repair mode and the
    /// target goes on. With --kill the connections are locked until the restore: an nftables
    /// table `inet psnc_lock_<PID>` (made with `nft`, the nftables package) drops their packets,
    /// so that a peer that sends meanwhile is not answered with a reset; psnc-restore removes it
    /// (on another host, remove it with `nft delete table inet psnc_lock_<PID>`). Without nft
    /// the capture says there is no lock. Restore must run where the connection's local address
    /// exists. Half-closed and closing
    /// connections (FIN_WAIT*, CLOSE_WAIT, LAST_ACK, CLOSING, TIME_WAIT, SYN_*) are refused.
    #[arg(long, conflicts_with = "tcp_close")]
    tcp_established: bool,

    /// Capture TCP connections (established or in any other state) as closed: restore gives
    /// the program a socket shut down both ways, on which reads return 0 (end of file) and
    /// writes fail with EPIPE. With --kill the peer gets a reset (RST) when the target dies, so
    /// that no half-closed connection keeps the restored server from binding its port again;
    /// without --kill the connection goes on in the running target.
    #[arg(long)]
    tcp_close: bool,

    /// Log each step on stderr (and which way each piece of kernel state was read).
    #[arg(short, long)]
    verbose: bool,
}

fn parse_layout(s: &str) -> Result<LayoutClass, String> {
    match s {
        "32" => Ok(LayoutClass::Bits32),
        "64" => Ok(LayoutClass::Bits64),
        _ => Err(format!("{s:?} is not a layout class; use 32 or 64")),
    }
}

fn main() -> ExitCode {
    // Before anything else (and before any thread exists): SIGINT/SIGTERM/SIGHUP become a clean
    // stop at the next safe point instead of an exit in the middle of a remote syscall.
    let interrupts = match Interrupts::install() {
        Ok(i) => Some(Arc::new(i)),
        Err(e) => {
            eprintln!("psnc-capture: cannot watch for SIGINT/SIGTERM: {e}");
            None
        }
    };
    let args = match psnc_cli::parse_args::<Args>() {
        Ok(a) => a,
        Err(status) => return status.into(),
    };
    let to_stdout = args.output.as_os_str() == "-";
    if to_stdout && std::io::stdout().is_terminal() {
        eprintln!("psnc-capture: refusing to write an image to a terminal; redirect stdout or use -o FILE");
        return Exit::Usage.into();
    }
    let mut opts = Options::new(if to_stdout {
        Output::Stdout
    } else {
        Output::Path(args.output.clone())
    });
    opts.kill = args.kill;
    opts.store_files = !args.no_store_files;
    opts.layout = args.layout;
    opts.verbose = args.verbose;
    opts.tcp = if args.tcp_established {
        psnc_capture::fds::tcp::TcpMode::Established
    } else if args.tcp_close {
        psnc_capture::fds::tcp::TcpMode::Close
    } else {
        psnc_capture::fds::tcp::TcpMode::Refuse
    };
    opts.kmod = args.kmod;
    opts.pre_copy = args.pre_copy;
    opts.parent = args.parent.clone();
    opts.children = !args.no_children;
    opts.interrupts = interrupts;
    opts.cmdline = std::env::args().collect();

    match capture(args.pid, &opts) {
        Ok(summary) => {
            for w in &summary.warnings {
                eprintln!("psnc-capture: warning: {w}");
            }
            if args.json {
                let json = summary.to_json().to_string();
                if to_stdout {
                    eprintln!("{json}");
                } else {
                    println!("{json}");
                }
            } else {
                eprintln!("psnc-capture: {}", summary.line());
            }
            Exit::Success.into()
        }
        Err(e) => {
            eprintln!("psnc-capture: {e}");
            e.exit_status().into()
        }
    }
}
