//! Event fds (issue 9): eventfds, timerfds, a signalfd and an inotify instance in one epoll
//! event loop come back with their state (counters, semaphore mode, clocks, time left, absolute
//! expiries, unread expirations, masks, watches with their wd numbers, O_NONBLOCK), for x86_64
//! and i386; and a real program, python3 with `os.eventfd` and `selectors`, keeps counting.
//! The refusals of the other anonymous-inode kinds are in capture_errors.rs.

use std::path::Path;

use psnc_format::model::{FdKind, InotifyWatch};
use psnc_format::Image;
use psnc_tests::{
    cases, python_log_roundtrip, restore_run, targets, Bits, ProcGuard, RunOpts, Spawn, Target,
};

/// Captures with `--kill`, checks what the image recorded, restores with `-v`, returns the log.
fn checkpoint_restore(t: &mut Target, bits: Bits) -> String {
    let image = t.dir.join("image");
    t.capture_kill(&image);
    check_image(&image, t.pid(), t.dir.path(), bits);
    let r = restore_run(&image, &["-v"], RunOpts::default());
    r.assert_ok();
    let pid: u32 = r
        .stdout
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("psnc-restore printed no PID:\n{r}"));
    assert_eq!(pid, t.pid(), "the restored process has another PID");
    t.proc = ProcGuard::foreign(pid);
    r.stderr
}

/// The image holds the fds as the target set them up (tests/targets/eventfds.c).
fn check_image(image: &Path, pid: u32, dir: &Path, bits: Bits) {
    let img = Image::open(image).unwrap_or_else(|e| panic!("{}: {e}", image.display()));
    let p = img
        .checkpoint()
        .processes
        .iter()
        .find(|p| p.pid == pid)
        .expect("the target in the image");
    let kind = |n: i32| {
        &p.fds
            .iter()
            .find(|f| f.fd == n)
            .unwrap_or_else(|| panic!("no fd {n} ({bits:?})"))
            .kind
    };
    assert_eq!(
        kind(10),
        &FdKind::EventFd {
            count: 7,
            semaphore: true
        }
    );
    assert_eq!(
        kind(11),
        &FdKind::EventFd {
            count: 1_000_000_000_000,
            semaphore: false
        }
    );
    let FdKind::TimerFd(t14) = kind(14) else {
        panic!("fd 14 is {:?}", kind(14))
    };
    assert_eq!((t14.clockid, t14.settime_flags, t14.interval_ns), (0, 3, 0));
    let FdKind::TimerFd(t15) = kind(15) else {
        panic!("fd 15 is {:?}", kind(15))
    };
    assert_eq!((t15.clockid, t15.interval_ns), (7, 1_800_000_000_000));
    let FdKind::TimerFd(t16) = kind(16) else {
        panic!("fd 16 is {:?}", kind(16))
    };
    assert_eq!((t16.ticks, t16.value_ns), (1, 0), "{t16:?}");
    // SIGUSR1 (10) and SIGRTMIN+1 (35).
    assert_eq!(
        kind(17),
        &FdKind::SignalFd {
            mask: 1 << 9 | 1 << 34
        }
    );
    let FdKind::Inotify { watches } = kind(18) else {
        panic!("fd 18 is {:?}", kind(18))
    };
    let dir = std::fs::canonicalize(dir).expect("canonical dir");
    let path = |name: &str| dir.join(name).to_str().expect("a UTF-8 path").to_string();
    let (wdir, wfile) = (path("watched"), path("watched-file"));
    let got: Vec<(i32, u32, &str)> = watches
        .iter()
        .map(|w: &InotifyWatch| (w.wd, w.mask, w.path.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (1, libc_in::CREATE, wdir.as_str()),
            (3, libc_in::MODIFY, wfile.as_str()),
        ]
    );
}

/// The inotify mask bits the target uses.
mod libc_in {
    pub const MODIFY: u32 = 0x2;
    pub const CREATE: u32 = 0x100;
}

fn roundtrip(bits: Bits) {
    let mut t = Spawn::new(cases::EVENTFDS.name)
        .args(cases::EVENTFDS.args)
        .bits(bits)
        .start();
    let log = checkpoint_restore(&mut t, bits);
    assert!(
        log.contains(
            "inotify fd 18: 2 watches restored with their wd numbers; events queued at capture \
             are not kept"
        ),
        "-v does not say what inotify loses:\n{log}"
    );
    t.verify().assert_passed(cases::EVENTFDS.expect);
}

#[test]
fn event_fds_x86_64() {
    roundtrip(Bits::B64);
}

#[test]
fn event_fds_i386() {
    if !targets().m32 {
        eprintln!("skipped: no -m32 targets (install gcc-multilib; scripts/test.sh does)");
        return;
    }
    roundtrip(Bits::B32);
}

/// Each tick writes the tick number to an eventfd; every second tick the selector sees it
/// readable and the loop reads the sum of the last two. The log line is `tick total_read`: a
/// counter lost at capture would break the sum.
const PY_EVENTFD: &str = r#"
import os, selectors, sys, time
log = sys.argv[1]
efd = os.eventfd(0, os.EFD_NONBLOCK)
sel = selectors.DefaultSelector()
sel.register(efd, selectors.EVENT_READ)
total = 0
i = 0
while True:
    i += 1
    os.eventfd_write(efd, i)
    if i % 2 == 0:
        for key, _ in sel.select(timeout=1):
            total += os.eventfd_read(key.fd)
    with open(log, "a") as f:
        f.write(f"{i} {total}\n")
    time.sleep(0.03)
"#;

#[test]
fn python3_eventfd_selector() {
    for f in python_log_roundtrip("py-eventfd", PY_EVENTFD) {
        let (i, total) = (f[0], f[1]);
        let want = if i % 2 == 0 {
            i * (i + 1) / 2
        } else {
            (i - 1) * i / 2
        };
        assert_eq!(total, want, "eventfd counter lost at tick {i}: {f:?}");
    }
}
