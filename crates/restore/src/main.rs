//! psnc-restore: restore a process from a psnc-cr image.
//!
//! Thin: argument parsing, the foreground wait, messages and exit codes. The work is
//! `psnc_restore::restore`.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use psnc_cli::{exit, Exit};
use psnc_format::Image;
use psnc_restore::{restore, ExternalMode, InheritFd, Options, RestoreError, StdioMode};

/// Every status psnc-restore itself can exit with; with --foreground the restored program's own
/// status follows (the sysexits numbers keep the two apart).
const STATUSES: &[Exit] = &[
    Exit::Success,
    Exit::Usage,
    Exit::BadImage,
    Exit::NoInput,
    Exit::Refused,
    Exit::Failed,
    Exit::NoPermission,
];

/// What `--help` says after the exit statuses.
const INHERIT_FD_HELP: &str = "\
Without --foreground the restored process runs on its own and its PID is printed on stdout.

--inherit-fd fd[N]:RES gives the restored process this tool's fd N in place of RES: either
`fd:M` (the image's fd M) or a resource name as the original's /proc/PID/fd links showed it,
e.g. `pipe:[1234]`, or a path. Needed for sockets whose other end was outside the image; the
refusal without it names the fd and its resource.

Pipes whose other end was outside the image (stdin from a shell pipeline, stdout to a logger):
with --external=recreate (the default) each becomes a new pipe holding the bytes buffered in it
at capture, its other end closed: reads see those bytes, then EOF; writes fail with EPIPE (and
raise SIGPIPE unless the process ignores it). One line per such fd on stderr says so and gives
the --inherit-fd fd[N]:pipe:[1234] that would reconnect it; --inherit-fd always takes precedence
(the bytes buffered at capture are then not put into the handed-in pipe). --external=refuse
refuses the image instead, before creating anything. FIFOs are reopened by path in both modes,
never blocking on a missing peer.";

fn after_help() -> String {
    let statuses = exit::help(
        STATUSES,
        &[(
            "N",
            "with --foreground: the restored process's exit status (128+S when killed by signal S)",
        )],
    );
    format!("{statuses}\n\n{INHERIT_FD_HELP}")
}

/// Restore a process captured by psnc-capture, with its PID, memory, files and registers.
#[derive(Debug, Parser)]
#[command(name = "psnc-restore", version, about, after_help = after_help())]
struct Cli {
    /// The image file, or `-` to read it from stdin.
    image: String,
    /// Wait for the restored process, forward SIGINT/SIGTERM to it, exit with its status.
    #[arg(long)]
    foreground: bool,
    /// Leave the restored process stopped (SIGSTOP) instead of letting it run.
    #[arg(long)]
    leave_stopped: bool,
    /// Hand a resource in from outside: fd[N]:fd:M or fd[N]:RESOURCE (repeatable).
    #[arg(long = "inherit-fd", value_name = "fd[N]:RES")]
    inherit_fd: Vec<String>,
    /// Pipes whose other end was outside the image, without --inherit-fd: recreate them
    /// (holding their buffered bytes, other end closed) or refuse the image.
    #[arg(long, value_enum, value_name = "MODE", default_value_t = ExternalArg::Recreate)]
    external: ExternalArg,
    /// Stay in this shell's session and job; reopen terminals by path.
    #[arg(long)]
    shell_job: bool,
    /// What the image's terminal fds become (without --shell-job). The ends of a pty pair whose
    /// master is in the image always come back as a new pair.
    #[arg(long, value_enum, default_value_t = StdioArg::Inherit)]
    stdio: StdioArg,
    /// For an incremental image (psnc-capture --parent): where its parent image is, in place
    /// of the path the image records (a file of that name next to the image is tried too).
    /// The parent must be the very image it was captured against (its digest is checked);
    /// the parent's own parents are found the same way, from the parent's place.
    #[arg(long, value_name = "IMAGE")]
    parent: Option<std::path::PathBuf>,
    /// Let the process run before its memory is filled: its private anonymous memory (heap,
    /// stacks, anonymous mappings; not executable, not locked) comes on first touch through a
    /// userfaultfd, and in the background until all of it is there, from a server process this
    /// tool starts before it lets the processes run (it ends by itself once every page is
    /// filled; -v reports it), which holds nothing of this tool but stderr. Every
    /// chunk of the image is checked against its digest before any byte of it is used: a bad
    /// one found after the process started kills it, with the reason on stderr. The image
    /// must stay in place until the server ends, and the server must not be killed before
    /// (the pages it had not filled would read as zeros). A tree is served by one server.
    #[arg(long)]
    lazy: bool,
    /// Log each step on stderr.
    #[arg(short, long)]
    verbose: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StdioArg {
    /// This tool's own stdin/stdout/stderr.
    Inherit,
    /// /dev/null.
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ExternalArg {
    /// A new pipe holding the buffered bytes, its other end closed; one line each on stderr.
    Recreate,
    /// Refuse the image before creating anything.
    Refuse,
}

fn main() -> ExitCode {
    let cli = match psnc_cli::parse_args::<Cli>() {
        Ok(cli) => cli,
        Err(status) => return status.into(),
    };
    let inherit_fds = match cli
        .inherit_fd
        .iter()
        .map(|a| InheritFd::parse(a))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(v) => v,
        Err(e) => {
            eprintln!("psnc-restore: {e}");
            return e.exit_status().into();
        }
    };
    let opts = Options {
        leave_stopped: cli.leave_stopped,
        shell_job: cli.shell_job,
        stdio: match cli.stdio {
            StdioArg::Inherit => StdioMode::Inherit,
            StdioArg::Null => StdioMode::Null,
        },
        inherit_fds,
        external: match cli.external {
            ExternalArg::Recreate => ExternalMode::Recreate,
            ExternalArg::Refuse => ExternalMode::Refuse,
        },
        keep_pdeathsig: cli.foreground,
        verbose: cli.verbose,
        lazy: cli.lazy,
    };
    let image = if cli.image == "-" {
        Image::from_reader(std::io::stdin().lock())
    } else {
        Image::open(&cli.image)
    };
    // An incremental image: its parents, checked in full, merged into one view.
    let own_path = (cli.image != "-").then(|| std::path::Path::new(&cli.image));
    let image = image.and_then(|i| i.with_parents(own_path, cli.parent.as_deref()));
    let image = match image {
        Ok(i) => i,
        Err(e) => {
            let e = RestoreError::from(e);
            eprintln!("psnc-restore: {}: {e}", cli.image);
            return e.exit_status().into();
        }
    };
    if cli.verbose {
        for l in image.chain() {
            eprintln!(
                "psnc-restore: parent {} (digest {}…) verified: {} pages from it",
                l.path.display(),
                &psnc_format::chain::hex(&l.digest)[..16],
                l.pages
            );
        }
    }
    // Forwarded signals are blocked before the process exists, so none is lost in between; the
    // restored process gets its own mask from the image.
    let forwarded = {
        let mut s = SigSet::empty();
        s.add(Signal::SIGINT);
        s.add(Signal::SIGTERM);
        s
    };
    if cli.foreground {
        if let Err(e) = forwarded.thread_block() {
            eprintln!("psnc-restore: blocking SIGINT/SIGTERM: {e}");
            return Exit::Failed.into();
        }
    }
    let restored = match restore(&image, &opts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("psnc-restore: {e}");
            return e.exit_status().into();
        }
    };
    drop(image);
    if !cli.foreground {
        println!("{}", restored.pid);
        return ExitCode::SUCCESS;
    }
    foreground(restored.pid, forwarded)
}

/// Waits for the restored process `pid`, forwarding the `forwarded` signals to it, and exits
/// with its status.
fn foreground(pid: u32, forwarded: SigSet) -> ExitCode {
    let pid = Pid::from_raw(pid as i32);
    std::thread::spawn(move || loop {
        if let Ok(sig) = forwarded.wait() {
            let _ = nix::sys::signal::kill(pid, sig);
        }
    });
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return ExitCode::from(code as u8),
            Ok(WaitStatus::Signaled(_, sig, _)) => return ExitCode::from(128 + sig as u8),
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                eprintln!("psnc-restore: waiting for process {pid}: {e}");
                return Exit::Failed.into();
            }
        }
    }
}
