//! Fds whose other end is outside the captured process (issue 9): a process started from a
//! pipeline (stdin a pipe from an outside writer, stdout a pipe to an outside reader, each
//! holding unread bytes) or by a supervisor (FIFOs), captured with `--kill` and restored
//! - without flags: new pipes holding the bytes, other ends closed, one line per fd on stderr;
//! - with `--inherit-fd` for both pipes: connected to new outside peers;
//! - with `--external=refuse`: refused before anything exists;
//!
//! FIFOs whose outside peers are gone or kept them open, and a real program (python3 reading
//! its stdin from a pipe). 64-bit and i386.

use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::fcntl::OFlag;
use psnc_tests::{
    alive, capture_kill, close_inherited_fds, restore_run, run, targets, tool, wait_for, Bits,
    ProcGuard, RunOpts, Spawn, Target, ToolRun, WorkDir,
};

const IN_BYTES: &str = "psnc-stdin-bytes-unread-at-capture\n";
const OUT_BYTES: &str = "psnc-stdout-bytes\n";
const NEW_IN: &str = "psnc-new-input\n";
const NEW_OUT: &str = "psnc-new-output\n";
const MORE_IN: &str = "psnc-more-input\n";

fn pipe() -> (OwnedFd, OwnedFd) {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).expect("pipe2")
}

fn bits_to_test() -> Vec<Bits> {
    if targets().m32 {
        vec![Bits::B64, Bits::B32]
    } else {
        eprintln!("SKIP i386: gcc-multilib is not installed");
        vec![Bits::B64]
    }
}

/// The `/proc/PID/fd/N` link of the target's fd `fd`.
fn link(pid: u32, fd: i32) -> String {
    fs::read_link(format!("/proc/{pid}/fd/{fd}"))
        .expect("fd link")
        .to_str()
        .expect("utf-8 link")
        .to_string()
}

/// The number of the target's fd whose link is `target`.
fn fd_of(pid: u32, target: &Path) -> i32 {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd dir")
        .filter_map(|e| e.ok())
        .find(|e| fs::read_link(e.path()).is_ok_and(|l| l == target))
        .and_then(|e| e.file_name().to_str()?.parse().ok())
        .unwrap_or_else(|| panic!("no fd of {pid} on {}", target.display()))
}

/// Makes the restored process (PID on the tool's stdout) the target's process.
fn adopt(t: &mut Target, r: &ToolRun) {
    r.assert_ok();
    let pid: u32 = r
        .stdout
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no PID on stdout:\n{r}"));
    assert_eq!(pid, t.pid(), "restored with another PID");
    t.proc = ProcGuard::foreign(pid);
}

/// The external target in `mode` with stdin a pipe holding IN_BYTES from the harness and stdout
/// a pipe to the harness; returns it and the harness's (stdin writer, stdout reader).
fn start_pipes(mode: &str, bits: Bits) -> (Target, OwnedFd, OwnedFd) {
    let (in_r, in_w) = pipe();
    let (out_r, out_w) = pipe();
    let mut w = fs::File::from(in_w);
    w.write_all(IN_BYTES.as_bytes()).expect("fill stdin");
    let t = Spawn::new("external")
        .bits(bits)
        .args(&[mode])
        .stdin(Stdio::from(in_r))
        .stdout(out_w)
        .start();
    (t, OwnedFd::from(w), out_r)
}

fn gone_line_read(res: &str) -> String {
    format!(
        "psnc-restore: fd 0: {res} (read end, {} buffered bytes) had its writer outside the image; \
         restored as a new pipe holding those bytes, its other end closed: reads see them, then \
         EOF; to reconnect it, restore with --inherit-fd fd[N]:{res}",
        IN_BYTES.len()
    )
}

fn gone_line_write(res: &str) -> String {
    format!(
        "psnc-restore: fd 1: {res} (write end, {} buffered bytes) had its reader outside the \
         image; restored as a new pipe holding those bytes, its other end closed: writes fail \
         with EPIPE (the process ignores SIGPIPE); to reconnect it, restore with --inherit-fd \
         fd[N]:{res}",
        OUT_BYTES.len()
    )
}

/// What the `eof` mode checks: the fds and their modes, the buffered bytes in both directions,
/// then EOF on stdin and EPIPE on stdout.
const EOF_CHECKS: &[&str] = &[
    "fd_kinds",
    "fd_modes",
    "in_buffered",
    "in_eof",
    "in_bytes",
    "out_buffered",
    "out_epipe",
];

/// Without a checkpoint: the target's own checks hold once both peers are gone.
#[test]
fn pipes_native_selfcheck() {
    for bits in bits_to_test() {
        let (mut t, w, r) = start_pipes("eof", bits);
        drop((w, r));
        t.verify().assert_passed(EOF_CHECKS);
    }
}

/// (1) Both peers exited before the capture; restored with no flags: the process reads the
/// buffered bytes, then EOF, its writes fail with EPIPE, and the restore said so per fd.
#[test]
fn pipes_without_flags_get_their_bytes_then_eof() {
    for bits in bits_to_test() {
        let (mut t, w, r) = start_pipes("eof", bits);
        let (stdin, stdout) = (link(t.pid(), 0), link(t.pid(), 1));
        drop((w, r)); // the outside writer and reader are gone before the capture
        let image = t.dir.join("image");
        t.capture_kill(&image);

        let info = run(
            &tool("psnc-imgtool"),
            &["info", image.to_str().expect("utf-8 path")],
            RunOpts::default(),
        );
        info.assert_ok();
        assert!(
            info.stdout
                .contains("fds whose other end was outside the image:"),
            "{info}"
        );
        for (res, end, n, what) in [
            (
                &stdin,
                "read",
                IN_BYTES.len(),
                "new pipe holding the bytes, then EOF; or --inherit-fd",
            ),
            (
                &stdout,
                "write",
                OUT_BYTES.len(),
                "new pipe without a reader (EPIPE); or --inherit-fd",
            ),
        ] {
            let row = info.stdout.lines().find(|l| l.contains(res.as_str()));
            let ok = row.is_some_and(|l| {
                // | PID | FD | RESOURCE | END | BUFFERED | RESTORE |
                let cols: Vec<&str> = l.split('|').map(str::trim).collect();
                let fd = if end == "read" { "0" } else { "1" };
                cols.get(1..7)
                    == Some(&[&t.pid().to_string(), fd, res, end, &n.to_string(), what][..])
            });
            assert!(ok, "no row for {res} ({end}, {n}):\n{info}");
        }

        let r = restore_run(&image, &[], RunOpts::default());
        adopt(&mut t, &r);
        assert_eq!(
            r.stderr,
            format!("{}\n{}\n", gone_line_read(&stdin), gone_line_write(&stdout)),
            "{r}"
        );
        t.verify().assert_passed(EOF_CHECKS);
    }
}

/// (2) Restored with `--inherit-fd` for both: the process reads only the new writer's bytes and
/// its writes reach the new reader; nothing is said about external fds.
#[test]
fn pipes_with_inherit_fd_reach_new_peers() {
    for bits in bits_to_test() {
        let (mut t, w, r) = start_pipes("inherit", bits);
        let (stdin, stdout) = (link(t.pid(), 0), link(t.pid(), 1));
        let image = t.dir.join("image");
        t.capture_kill(&image); // the peers are still there at capture
        drop((w, r));

        let (new_in_r, new_in_w) = pipe();
        let (new_out_r, new_out_w) = pipe();
        // The tool gets the new stdout pipe as its fd 3, reopened through /proc (a shell
        // redirection: std's Command hands over no fd but stdio).
        let script = format!(
            "exec \"$0\" \"$@\" 3>/proc/{}/fd/{}",
            std::process::id(),
            new_out_w.as_raw_fd()
        );
        let psnc_restore = tool("psnc-restore");
        let in_arg = format!("fd[0]:{stdin}");
        let out_arg = format!("fd[3]:{stdout}");
        let r = run(
            Path::new("bash"),
            &[
                "-c",
                &script,
                psnc_restore.to_str().expect("utf-8 path"),
                image.to_str().expect("utf-8 path"),
                "--inherit-fd",
                &in_arg,
                "--inherit-fd",
                &out_arg,
            ],
            RunOpts {
                stdin: Some(Stdio::from(new_in_r)),
                ..RunOpts::default()
            },
        );
        adopt(&mut t, &r);
        assert_eq!(r.stderr, "", "{r}");
        drop(new_out_w);
        let mut w = fs::File::from(new_in_w);
        w.write_all(NEW_IN.as_bytes()).expect("write the new stdin");
        drop(w);
        t.verify()
            .assert_passed(&["fd_kinds", "fd_modes", "in_new_bytes", "out_write"]);
        nix::fcntl::fcntl(
            new_out_r.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETFL(OFlag::O_NONBLOCK),
        )
        .expect("O_NONBLOCK");
        let mut got = vec![0u8; 4096];
        let n = fs::File::from(new_out_r)
            .read(&mut got)
            .expect("read the new stdout");
        assert_eq!(
            String::from_utf8_lossy(&got[..n]),
            NEW_OUT,
            "the new reader got other bytes"
        );
    }
}

/// (3) `--external=refuse`: refused before anything exists, naming the fd, its resource and the
/// --inherit-fd that would satisfy it.
#[test]
fn pipes_refused_with_external_refuse() {
    for bits in bits_to_test() {
        let (mut t, w, r) = start_pipes("eof", bits);
        let stdin = link(t.pid(), 0);
        let pid = t.pid();
        drop((w, r));
        let image = t.dir.join("image");
        t.capture_kill(&image);
        let r = restore_run(&image, &["--external=refuse"], RunOpts::default());
        r.assert_status(i32::from(psnc_cli::Exit::Refused.code()));
        assert_eq!(
            r.stderr,
            format!(
                "psnc-restore: fd 0 is {stdin} (read end), whose other end was outside the image, \
                 and --external=refuse is given; hand it one with --inherit-fd fd[N]:{stdin} (or \
                 fd[N]:fd:0), or restore without --external=refuse to have it recreated holding its \
                 {} buffered bytes (a unix socket whose peer had a name is connected to that name \
                 again)\n",
                IN_BYTES.len()
            ),
            "{r}"
        );
        assert!(r.stdout.is_empty(), "{r}");
        assert!(!alive(pid), "PID {pid} is taken after a refusal");
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "PID {pid} exists after a refusal"
        );
    }
}

/// FIFOs `in` (the target reads, the harness writes IN_BYTES) and `out` (the target writes
/// OUT_BYTES, the harness reads nothing); returns the target, the FIFOs' directory (removed when
/// dropped), their paths and the harness's ends.
fn start_fifos(
    mode: &str,
    bits: Bits,
) -> (Target, WorkDir, [std::path::PathBuf; 2], OwnedFd, OwnedFd) {
    let dir = WorkDir::new("fifos");
    let fin = dir.join("in");
    let fout = dir.join("out");
    for p in [&fin, &fout] {
        nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    }
    // The reader of `out` first: the target opens it for writing without waiting.
    let out_r: OwnedFd = fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
        .open(&fout)
        .expect("open out for reading")
        .into();
    let t = Spawn::new("external")
        .bits(bits)
        .args(&[
            mode,
            fin.to_str().expect("utf-8 path"),
            fout.to_str().expect("utf-8 path"),
        ])
        .start();
    let mut in_w = fs::OpenOptions::new()
        .write(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
        .open(&fin)
        .expect("open in for writing");
    in_w.write_all(IN_BYTES.as_bytes()).expect("write in");
    (t, dir, [fin, fout], OwnedFd::from(in_w), out_r)
}

fn fifo_lines(pid_fds: (i32, i32), fin: &Path, fout: &Path) -> String {
    let (i, o) = pid_fds;
    let (fin, fout) = (fin.display(), fout.display());
    format!(
        "psnc-restore: fd {i}: FIFO {fin} (read end, {} buffered bytes) had its writer outside \
         the image; reopened by path holding those bytes: reads see them, then EOF while no \
         process has the path open for writing; to reconnect it, restore with --inherit-fd \
         fd[N]:{fin}\n\
         psnc-restore: fd {o}: FIFO {fout} (write end, {} buffered bytes) had its reader outside \
         the image; reopened by path holding those bytes: writes fail with EPIPE (the process \
         ignores SIGPIPE) while no process has the path open for reading; to reconnect it, \
         restore with --inherit-fd fd[N]:{fout}\n",
        IN_BYTES.len(),
        OUT_BYTES.len()
    )
}

/// FIFOs whose outside peers are gone by the capture: reopened without blocking, the bytes put
/// back once, then EOF and EPIPE; the restore said so per fd.
#[test]
fn fifos_with_gone_peers() {
    for bits in bits_to_test() {
        let (mut t, _dir, [fin, fout], in_w, out_r) = start_fifos("fifo", bits);
        let fds = (fd_of(t.pid(), &fin), fd_of(t.pid(), &fout));
        drop((in_w, out_r));
        let image = t.dir.join("image");
        t.capture_kill(&image);
        let r = restore_run(&image, &[], RunOpts::default());
        adopt(&mut t, &r);
        assert_eq!(r.stderr, fifo_lines(fds, &fin, &fout), "{r}");
        t.verify().assert_passed(EOF_CHECKS);
    }
}

/// FIFOs whose outside peers kept them open across the capture and the restore: the bytes still
/// in them are not put back a second time, and both FIFOs still connect the process to them.
#[test]
fn fifos_with_live_peers() {
    for bits in bits_to_test() {
        for checkpoint in [false, true] {
            let (mut t, _dir, [fin, fout], in_w, out_r) = start_fifos("fifo-live", bits);
            let fds = (fd_of(t.pid(), &fin), fd_of(t.pid(), &fout));
            if checkpoint {
                let image = t.dir.join("image");
                t.capture_kill(&image);
                let r = restore_run(&image, &[], RunOpts::default());
                adopt(&mut t, &r);
                assert_eq!(r.stderr, fifo_lines(fds, &fin, &fout), "{r}");
            }
            let mut w = fs::File::from(in_w);
            w.write_all(MORE_IN.as_bytes()).expect("write more");
            drop(w);
            t.verify().assert_passed(&[
                "fd_kinds",
                "fd_modes",
                "in_buffered_once",
                "in_bytes",
                "out_buffered_once",
                "out_write",
            ]);
            let mut got = Vec::new();
            let mut f = fs::File::from(out_r);
            let mut buf = [0u8; 4096];
            while let Ok(n) = f.read(&mut buf) {
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            assert_eq!(
                String::from_utf8_lossy(&got),
                format!("{OUT_BYTES}{NEW_OUT}"),
                "the outside reader got other bytes (checkpoint: {checkpoint})"
            );
        }
    }
}

/// A python3 program that reads its stdin (a pipe whose writer has exited, holding 40000 bytes)
/// only when told to; captured and restored with no flags, it reads every byte, then EOF.
const PY_READER: &str = r#"
import os, sys, time
ready, go, out = sys.argv[1:4]
open(ready, "w").close()
while not os.path.exists(go):
    time.sleep(0.01)
data = sys.stdin.buffer.read()
with open(out + ".tmp", "wb") as f:
    f.write(data)
os.rename(out + ".tmp", out)
time.sleep(1000)
"#;

#[test]
fn python3_reads_its_buffered_stdin_after_restore() {
    let dir = WorkDir::new("pystdin");
    let (ready, go, out) = (dir.join("ready"), dir.join("go"), dir.join("out"));
    let data: Vec<u8> = (0..40000u32).map(|i| (i * 7 % 251) as u8).collect();
    let (r, w) = pipe();
    close_inherited_fds();
    let mut cmd = Command::new("python3");
    cmd.args(["-c", PY_READER])
        .args([&ready, &go, &out])
        .stdin(Stdio::from(r))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut p = ProcGuard::child(cmd.spawn().expect("start python3"));
    wait_for(Duration::from_secs(20), || ready.exists().then_some(()))
        .expect("python3 never got ready");
    let stdin = link(p.pid, 0);
    let mut w = fs::File::from(w);
    w.write_all(&data).expect("fill python's stdin");
    drop(w); // the writer exits before the capture
    let image = dir.join("image");
    capture_kill(&mut p, &image);
    let r = restore_run(&image, &[], RunOpts::default());
    r.assert_ok();
    let _restored = ProcGuard::foreign(r.stdout.trim().parse().expect("PID on stdout"));
    assert_eq!(
        r.stderr,
        format!(
            "psnc-restore: fd 0: {stdin} (read end, 40000 buffered bytes) had its writer outside \
             the image; restored as a new pipe holding those bytes, its other end closed: reads \
             see them, then EOF; to reconnect it, restore with --inherit-fd fd[N]:{stdin}\n"
        ),
        "{r}"
    );
    fs::File::create(&go).expect("create go");
    let got = wait_for(Duration::from_secs(20), || fs::read(&out).ok())
        .expect("python3 wrote no result after restore");
    assert_eq!(got.len(), data.len(), "python3 read another byte count");
    assert!(got == data, "python3 read other bytes");
}

/// The same with `--lazy`: the lazy server, which outlives the tool, holds none of the tool's
/// descriptors, so the recreated stdin pipe still ends (EOF) after its bytes.
#[test]
fn pipes_get_their_bytes_then_eof_with_a_lazy_restore() {
    let (mut t, w, r) = start_pipes("eof", Bits::B64);
    drop((w, r));
    let image = t.dir.join("image");
    t.capture_kill(&image);
    // The server held back (a test-only pause before each background step), so that it is
    // still there when the process reads its stdin to the end.
    let r = restore_run(
        &image,
        &["--lazy"],
        RunOpts {
            env: vec![("PSNC_LAZY_PAUSE_MS", "20000".into())],
            ..RunOpts::default()
        },
    );
    adopt(&mut t, &r);
    // The server (the tool's copy that outlives it, with the image on its command line) holds
    // only the null device on 0 and 1, stderr, and its userfaultfd.
    let image_arg = image.to_string_lossy().into_owned();
    let server = std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&image_arg))
        })
        .expect("the lazy server runs");
    let _server = psnc_tests::ProcGuard::foreign(server);
    let held: Vec<String> = std::fs::read_dir(format!("/proc/{server}/fd"))
        .expect("its fds")
        .filter_map(|e| {
            let e = e.ok()?;
            let n: i32 = e.file_name().to_str()?.parse().ok()?;
            let target = std::fs::read_link(e.path()).ok()?;
            let target = target.to_string_lossy().into_owned();
            (n > 2 && target != "anon_inode:[userfaultfd]").then(|| format!("{n} -> {target}"))
        })
        .collect();
    assert!(
        held.is_empty(),
        "the lazy server holds the tool's fds: {held:?}"
    );
    t.verify().assert_passed(EOF_CHECKS);
}
