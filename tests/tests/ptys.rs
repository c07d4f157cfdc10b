//! Pseudo-terminals (issue 10): a pty pair inside the tree comes back as a new pair with the
//! image's termios and window size, every master fd on its master and every slave fd on its
//! slave, and the pair is again the controlling terminal of the session leader that had it,
//! with its foreground group, and the members of that session inherit it. 64-bit and i386. A
//! real program: python3 `pty.fork()` running an interactive bash, driven after the restore.
//! Refused at capture: a session leader whose controlling terminal is a pty of the image but
//! that holds no fd on its slave, and a process whose session leader is outside the image.
//! tmux: its server with two shells, driven through tmux after the restore.

use psnc_format::Image;
use psnc_tests::{cases, targets, Bits, RunOpts, Spawn};

/// Starts the `pty` target, captures it with `--kill`, checks the image's `ttys` record,
/// restores and lets both processes check themselves.
fn roundtrip(bits: Bits) {
    let case = &cases::PTY;
    if bits == Bits::B32 && !targets().m32 {
        psnc_testkit::skip(case.label(bits, "after restore"), psnc_testkit::NO_M32);
        return;
    }
    let mut t = Spawn::new(case.name).bits(bits).start();
    let image = t.dir.join("image");
    t.capture_kill(&image);
    let img = Image::open(&image).expect("the image");
    let ck = img.checkpoint();
    assert_eq!(ck.ptys.len(), 2, "{:?}", ck.ptys);
    let pty = &ck.ptys[0];
    let locked = &ck.ptys[1];
    assert!(
        locked.locked && locked.packet && !pty.locked && !pty.packet,
        "{:?}",
        ck.ptys
    );
    assert!(
        locked.slaves.is_empty() && locked.session == 0,
        "{locked:?}"
    );
    assert_eq!(ck.processes.len(), 3, "parent, child, session member");
    let parent = ck.processes[0].pid;
    let child = ck.processes[1].pid;
    let member = ck.processes[2].pid;
    assert_eq!(pty.masters.len(), 1, "{pty:?}");
    assert_eq!(pty.masters[0].pid, parent, "{pty:?}");
    assert_eq!(
        pty.slaves.iter().map(|r| (r.pid, r.fd)).collect::<Vec<_>>(),
        vec![(child, 0), (child, 1), (child, 2)],
        "{pty:?}"
    );
    assert_eq!((pty.session, pty.foreground), (child, child), "{pty:?}");
    // struct winsize: 37 rows, 101 columns.
    assert_eq!(pty.winsize, [37, 0, 101, 0, 0, 0, 0, 0], "{pty:?}");
    t.restore(&image, &[], RunOpts::default());
    let stat = psnc_proc::ProcDir::new(child as i32)
        .stat()
        .expect("the restored child's stat");
    assert_eq!(stat.session, child as i32);
    assert_ne!(
        stat.tty_nr, 0,
        "the restored child has no controlling terminal"
    );
    assert_eq!(stat.tpgid, child as i32);
    // The member holds no fd on the terminal: its controlling terminal came with its fork.
    let stat = psnc_proc::ProcDir::new(member as i32)
        .stat()
        .expect("the restored member's stat");
    assert_eq!((stat.session, stat.tpgid), (child as i32, child as i32));
    assert_ne!(
        stat.tty_nr, 0,
        "the restored session member has no controlling terminal"
    );
    let r = t.verify();
    r.assert_passed_in(&case.label(bits, "after restore"), case.expect);
    // The old index comes back when it is free on this host (another test may have taken it
    // since the capture freed it): informational.
    for l in r.lines.iter().filter(|l| l.starts_with("INFO pty")) {
        eprintln!("{l}");
    }
}

#[test]
fn a_pty_pair_in_the_tree_x86_64() {
    roundtrip(Bits::B64);
}

#[test]
fn a_pty_pair_in_the_tree_i386() {
    roundtrip(Bits::B32);
}

/// A real program: python3 `pty.fork()` running an interactive bash (readline, job control) on
/// the slave, the python parent keeping the master. It sets a 37x101 window, checks that bash
/// answers, and after the restore drives bash again through the master: a computed marker, the
/// window size as `stty` sees it, the terminal's name, and `/dev/tty` opened by a child of bash.
const PY_PTY_BASH: &str = r#"
import os, pty, select, struct, sys, time, fcntl, termios
log = sys.argv[1]
def say(s):
    with open(log, "a") as f:
        f.write(s + "\n")
pid, fd = pty.fork()
if pid == 0:
    os.execvp("bash", ["bash", "--norc", "--noprofile", "-i"])
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 37, 101, 0, 0))
def drive(cmd, want, timeout=20):
    os.write(fd, cmd.encode())
    buf, end = b"", time.time() + timeout
    while want.encode() not in buf and time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                buf += os.read(fd, 4096)
            except OSError:
                break
    return buf
out = drive("echo READY$((20+1))\n", "READY21")
say("READY" if b"READY21" in out else "NOTREADY %r" % out)
while not os.path.exists(log + ".go"):
    time.sleep(0.01)
out = drive("echo MARK$((6*7)); stty size; tty; (: </dev/tty) && echo TTY$((2+2)); echo END$((1+1))\n", "END2")
say("AFTER %r" % out)
"#;

#[test]
fn python_pty_fork_running_bash_is_driven_after_restore() {
    use psnc_tests::{capture_kill, restore, spawn_program, wait_for, WorkDir};
    use std::process::Command;
    use std::time::Duration;
    let dir = WorkDir::new("pty-bash");
    let log = dir.join("log");
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    let mut p = spawn_program(Command::new("python3").args(["-c", PY_PTY_BASH]).arg(&log));
    wait_for(Duration::from_secs(20), || {
        read().lines().any(|l| l.contains("READY")).then_some(())
    })
    .unwrap_or_else(|| panic!("bash did not answer before the capture:\n{}", read()));
    assert!(read().starts_with("READY\n"), "{}", read());
    let image = dir.join("image");
    capture_kill(&mut p, &image);
    let img = Image::open(&image).expect("the image");
    assert_eq!(
        img.checkpoint().ptys.len(),
        1,
        "{:?}",
        img.checkpoint().ptys
    );
    let r = restore(&image, &[], RunOpts::default());
    assert_eq!(r.pid, p.pid, "restored with another PID");
    std::fs::File::create(psnc_tests::go_path(&log)).expect("the go file");
    let after = wait_for(Duration::from_secs(30), || {
        read()
            .lines()
            .find(|l| l.starts_with("AFTER "))
            .map(String::from)
    })
    .unwrap_or_else(|| panic!("no answer from bash after the restore:\n{}", read()));
    for want in ["MARK42", "37 101", "/dev/pts/", "TTY4", "END2"] {
        assert!(after.contains(want), "{want:?} missing from {after}");
    }
    drop(r);
}

/// A controlling terminal that restore could not give back is refused at capture, with the PID
/// and the terminal, and nothing is changed: the refused process's `/dev/tty` still opens.
/// `mode` (pty.c) names the process to capture in its `REFUSED PID PTS` line.
fn refused(mode: &str, capture_root: bool, why: impl Fn(u32) -> String) {
    let mut t = Spawn::new(cases::PTY.name).args(&[mode]).start();
    let line = t
        .report()
        .lines
        .iter()
        .find_map(|l| l.strip_prefix("REFUSED ").map(String::from))
        .expect("the REFUSED line");
    let (pid, pts) = line.split_once(' ').expect("PID and pts");
    let pid: u32 = pid.parse().expect("a PID");
    let image = t.dir.join("image");
    let target = if capture_root { t.pid() } else { pid };
    let r = psnc_tests::capture(target, &image, &[]);
    r.assert_status(69);
    let why = why(pid);
    let want = format!(
        "PID {pid}: its controlling terminal is the pty {pts} of the image, but {why}; restore \
         could not make it its controlling terminal again"
    );
    assert!(r.stderr.contains(&want), "expected {want:?} in:\n{r}");
    assert!(!image.exists(), "an image after a refused capture");
    psnc_tests::assert_running_untraced(t.pid());
    psnc_tests::assert_running_untraced(pid);
    t.verify().assert_passed(&["pty_dev_tty_untouched"]);
}

#[test]
fn a_session_leader_without_an_fd_on_its_terminal_is_refused() {
    refused("noslave", true, |_| {
        "it leads the session and holds no fd on the slave".into()
    });
}

#[test]
fn a_terminal_whose_session_leader_is_outside_the_image_is_refused() {
    // M and its session leader C hold the master; M is captured alone.
    refused("member", false, |m| {
        let sid = psnc_proc::ProcDir::new(m as i32)
            .stat()
            .expect("M's stat")
            .session;
        format!("its session leader {sid} is not in the image")
    });
}

/// The root of the tree leads its session (started by `setsid`) and has its own pty as
/// controlling terminal: python3 opens a pair, takes the slave (`TIOCSCTTY`) and forks a child
/// that inherits the terminal without an fd on it. After the restore the child opens
/// `/dev/tty` again and writes through it; the root reads that from the master.
const PY_ROOT_LEADER: &str = r#"
import fcntl, os, pty, select, sys, termios, time
log = sys.argv[1]
def say(s):
    with open(log, "a") as f:
        f.write(s + "\n")
master, slave = pty.openpty()
fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
r, w = os.pipe()
if os.fork() == 0:
    os.close(master)
    os.close(slave)
    os.close(w)
    while True:
        n = os.read(r, 1)
        if not n:
            os._exit(0)
        fd = os.open("/dev/tty", os.O_WRONLY)
        os.write(fd, b"VIA-DEV-TTY\n")
        os.close(fd)
os.close(r)
say("READY")
while not os.path.exists(log + ".go"):
    time.sleep(0.01)
os.write(w, b"x")
buf, end = b"", time.time() + 20
while b"VIA-DEV-TTY" not in buf and time.time() < end:
    if select.select([master], [], [], 0.2)[0]:
        buf += os.read(master, 4096)
say("AFTER %r sid %d" % (buf, os.getsid(0)))
"#;

#[test]
fn a_root_session_leader_and_its_child_keep_their_terminal() {
    use psnc_tests::{restore, spawn_program, wait_for, WorkDir};
    use std::process::Command;
    use std::time::Duration;
    let dir = WorkDir::new("pty-root");
    let log = dir.join("log");
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    // setsid forks when it leads a group (spawn_program makes it one): the session leader is
    // python, its child; `-w` keeps setsid waiting for it.
    let mut s = spawn_program(
        Command::new("setsid")
            .args(["-w", "python3", "-c", PY_ROOT_LEADER])
            .arg(&log),
    );
    wait_for(Duration::from_secs(20), || {
        read().contains("READY").then_some(())
    })
    .unwrap_or_else(|| panic!("python did not start:\n{}", read()));
    let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", s.pid))
        .expect("setsid's children");
    let pid: u32 = children
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .expect("python's PID");
    let image = dir.join("image");
    psnc_tests::capture(pid, &image, &["--kill"]).assert_ok();
    // python is setsid's child: setsid reaps it, then ends.
    assert!(
        s.reap(Duration::from_secs(10)).is_some(),
        "setsid still runs"
    );
    let img = Image::open(&image).expect("the image");
    let ck = img.checkpoint();
    assert_eq!(ck.ptys.len(), 1, "{:?}", ck.ptys);
    assert_eq!(ck.ptys[0].session, pid, "{:?}", ck.ptys);
    let r = restore(&image, &[], RunOpts::default());
    assert_eq!(r.pid, pid, "restored with another PID");
    std::fs::File::create(psnc_tests::go_path(&log)).expect("the go file");
    let after = wait_for(Duration::from_secs(30), || {
        read()
            .lines()
            .find(|l| l.starts_with("AFTER "))
            .map(String::from)
    })
    .unwrap_or_else(|| panic!("no answer after the restore:\n{}", read()));
    assert!(after.contains("VIA-DEV-TTY"), "{after}");
    assert!(after.ends_with(&format!("sid {pid}")), "{after}");
    drop(r);
}

/// tmux (Debian's, a terminal multiplexer nobody wrote for this project): its server holds the
/// masters of two windows, each an interactive bash leading its own session on a slave; the
/// server listens on a socket path that every `tmux` command connects to. Captured with both
/// shells, restored, the shells keep their variables and window sizes, a new window opens on a
/// new pty of the restored server, and `kill-server` ends it.
#[test]
fn tmux_server_with_two_shells_is_driven_after_restore() {
    use psnc_tests::{alive, capture, restore, wait_for, ProcGuard, WorkDir};
    use std::process::Command;
    use std::time::Duration;
    if Command::new("tmux").arg("-V").output().is_err() {
        psnc_testkit::skip(
            "tmux",
            "tmux is not installed (scripts/test.sh installs it)",
        );
        return;
    }
    let dir = WorkDir::new("tmux");
    let sock = dir.join("sock");
    let tmux = |args: &[&str]| -> String {
        psnc_tests::output_ok(
            Command::new("tmux")
                .arg("-S")
                .arg(&sock)
                .args(["-f", "/dev/null"])
                .args(args)
                .env_remove("TMUX"),
        )
    };
    let shell = "bash --norc --noprofile -i";
    tmux(&[
        "new-session",
        "-d",
        "-s",
        "t",
        "-x",
        "91",
        "-y",
        "27",
        shell,
    ]);
    tmux(&["new-window", "-t", "t", shell]);
    let pane = |w: &str| tmux(&["capture-pane", "-p", "-t", &format!("t:{w}")]);
    // Types a line into window w and waits for `want` in its pane.
    let drive = |w: &str, line: &str, want: &str| -> String {
        tmux(&["send-keys", "-t", &format!("t:{w}"), line, "Enter"]);
        wait_for(Duration::from_secs(20), || {
            let p = pane(w);
            p.contains(want).then_some(p)
        })
        .unwrap_or_else(|| panic!("window {w}: no {want:?} after {line:?}:\n{}", pane(w)))
    };
    drive("0", "X=41; echo set$((X+1))", "set42");
    drive("1", "Y=6; echo set$((Y*7))", "set42");
    // The window size as the shell sees it, before and after.
    let size = |w: &str| -> String {
        tmux(&["send-keys", "-t", &format!("t:{w}"), "clear", "Enter"]);
        let p = drive(w, "echo size$(stty size | tr ' ' x)e$((1+1))", "e2\n");
        p.lines()
            .filter_map(|l| l.strip_prefix("size")?.strip_suffix("e2"))
            .next_back()
            .map(String::from)
            .unwrap_or_else(|| panic!("no size in window {w}:\n{p}"))
    };
    let size_before = size("0");
    let pid: u32 = tmux(&["display-message", "-p", "#{pid}"])
        .trim()
        .parse()
        .expect("the server's pid");
    let mut server = ProcGuard::foreign(pid);
    let image = dir.join("image");
    let r = capture(pid, &image, &["--kill"]);
    r.assert_ok();
    assert!(
        r.stderr.contains("and 2 descendants"),
        "the server and its two shells:\n{r}"
    );
    wait_for(Duration::from_secs(10), || (!server.alive()).then_some(()))
        .expect("the tmux server still runs after --kill");
    let restored = restore(&image, &[], RunOpts::default());
    assert_eq!(restored.pid, pid);
    drive("0", "echo after$X", "after41");
    assert_eq!(size("0"), size_before, "window 0's size");
    drive(
        "1",
        "echo after$((Y*7)); (: </dev/tty) && echo tty$((2*2))",
        "tty4",
    );
    tmux(&["new-window", "-t", "t", shell]);
    drive("2", "echo new$((5*5))", "new25");
    tmux(&["kill-server"]);
    wait_for(Duration::from_secs(10), || (!alive(pid)).then_some(()))
        .expect("the restored tmux server did not end on kill-server");
    drop(restored);
}
