//! Open file descriptions shared between fds and between processes (issue 9): fds made by `dup`,
//! `F_DUPFD`, `2>&1` or inherited across fork come back as one description, with one offset, one
//! set of status flags and one object state (a FIFO's bytes, an eventfd's counter, an epoll
//! interest list), for x86_64 and i386 (tests/targets/sharedfd.c); a real program, bash with two
//! background loops writing through one `>FILE 2>&1`, leaves the file complete and in order.
//! A shared epoll instance keeps a watch the child added through an fd of its own; what is
//! still refused: such a watch when the parent holds another file at that fd number.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use psnc_format::model::{FdRef, FdShare};
use psnc_format::Image;
use psnc_tests::{
    alive, assert_running_untraced, capture, restore, spawn_program, wait_for, Bits, ProcGuard,
    RunOpts, Spawn, WorkDir,
};

/// Runs `f` for `bits`, or counts an honest skip for i386 without gcc-multilib.
fn with_bits(bits: Bits, what: &str, f: impl FnOnce()) {
    if psnc_tests::m32_or_skip(bits, what) {
        f()
    }
}

/// The groups of the image at `image`.
fn shares(image: &Path) -> Vec<FdShare> {
    Image::open(image)
        .unwrap_or_else(|e| panic!("{}: {e}", image.display()))
        .checkpoint()
        .fd_shares
        .clone()
}

fn group(fds: &[(u32, i32)]) -> FdShare {
    FdShare {
        fds: fds.iter().map(|&(pid, fd)| FdRef { pid, fd }).collect(),
    }
}

/// Whether fd `a` of `pa` and fd `b` of `pb` are one open file description, as the kernel says.
fn same_description(pa: u32, a: i32, pb: u32, b: i32) -> bool {
    psnc_ptrace::sys::kcmp_file(pa as i32, a, pb as i32, b)
        .unwrap_or_else(|e| panic!("kcmp {pa}:{a} {pb}:{b}: {e}"))
}

const DUP_CHECKS: &[&str] = &[
    "dup_offset",
    "dup_append",
    "dup_setfl_shared",
    "separate_open_flags",
    "dup_write_moves_all",
    "separate_open_offset",
    "cloexec_per_fd",
    "dup_contents",
];

const FORK_CHECKS: &[&str] = &[
    "C:file_offset",
    "R:offset_before",
    "R:child_reported",
    "R:file_offset_shared",
    "R:file_contents",
    "R:epoll_shared",
    "R:fifo_shared",
    "R:eventfd_shared",
];

const EPOLLCHILD_CHECKS: &[&str] = &["R:child_watch"];

#[test]
fn targets_pass_without_a_checkpoint() {
    for bits in [Bits::B64, Bits::B32] {
        with_bits(bits, "sharedfd self-check (i386)", || {
            let mut t = Spawn::new("sharedfd").args(&["dup"]).bits(bits).start();
            t.verify().assert_passed(DUP_CHECKS);
            let mut t = Spawn::new("sharedfd").args(&["fork"]).bits(bits).start();
            let _child = ProcGuard::foreign(t.report().pid_after("UP C "));
            t.verify().assert_passed(FORK_CHECKS);
            let mut t = Spawn::new("sharedfd")
                .args(&["epollchild"])
                .bits(bits)
                .start();
            let _child = ProcGuard::foreign(t.report().pid_after("UP C "));
            t.verify().assert_passed(EPOLLCHILD_CHECKS);
        });
    }
}

/// Fds 3, 4 (dup) and 20 (F_DUPFD_CLOEXEC) of one description, fd 5 a separate open of the
/// same file: the image groups 3, 4 and 20 only, and after restore one offset and one set of
/// status flags serve them (F_SETFL through one shows on the others), close-on-exec per fd.
fn dup_in_one_process(bits: Bits) {
    let mut t = Spawn::new("sharedfd").args(&["dup"]).bits(bits).start();
    let pid = t.pid();
    let image = t.dir.join("image");
    let run = t.capture_kill(&image);
    assert!(!run.stderr.contains("warning"), "{run}");
    assert_eq!(shares(&image), [group(&[(pid, 3), (pid, 4), (pid, 20)])]);
    t.restore(&image, &[], RunOpts::default());
    assert!(same_description(pid, 3, pid, 20));
    assert!(!same_description(pid, 3, pid, 5));
    t.verify().assert_passed(DUP_CHECKS);
}

#[test]
fn dup_fds_share_offset_and_flags() {
    dup_in_one_process(Bits::B64);
}

#[test]
fn dup_fds_share_offset_and_flags_i386() {
    with_bits(Bits::B32, "sharedfd dup (i386)", || {
        dup_in_one_process(Bits::B32)
    });
}

/// A parent and a child sharing a regular file, a FIFO, an eventfd and an epoll instance (one
/// of whose watches the child added): one description each after restore, across the two
/// processes; the child's write moves the parent's offset, its bytes and counter reach the
/// parent, and the parent's epoll fd reports the child's watch.
fn shared_across_fork(bits: Bits) {
    let mut t = Spawn::new("sharedfd").args(&["fork"]).bits(bits).start();
    let r = t.pid();
    let c = t.report().pid_after("UP C ");
    let image = t.dir.join("image");
    t.capture_kill(&image);
    let gone = wait_for(Duration::from_secs(10), || (!alive(c)).then_some(()));
    assert!(gone.is_some(), "the child {c} still runs after --kill");
    // Fds 0 to 2, inherited from the harness, are shared across the fork too.
    assert_eq!(
        shares(&image),
        (0..=6)
            .map(|fd| group(&[(r, fd), (c, fd)]))
            .collect::<Vec<_>>()
    );
    t.restore(&image, &[], RunOpts::default());
    let _child = ProcGuard::foreign(c);
    for fd in 3..=6 {
        assert!(same_description(r, fd, c, fd), "fd {fd}");
    }
    assert!(!same_description(r, 3, c, 4));
    t.verify().assert_passed(FORK_CHECKS);
}

#[test]
fn descriptions_shared_across_fork() {
    shared_across_fork(Bits::B64);
}

#[test]
fn descriptions_shared_across_fork_i386() {
    with_bits(Bits::B32, "sharedfd fork (i386)", || {
        shared_across_fork(Bits::B32)
    });
}

/// A shared epoll instance with a watch the child added through an fd of its own (fd 4, which
/// the parent does not have): restored with that watch added in the child, so the parent's
/// epoll fd reports the child's eventfd.
fn watch_added_by_the_child(bits: Bits) {
    let mut t = Spawn::new("sharedfd")
        .args(&["epollchild"])
        .bits(bits)
        .start();
    let r = t.pid();
    let c = t.report().pid_after("UP C ");
    let image = t.dir.join("image");
    t.capture_kill(&image);
    let gone = wait_for(Duration::from_secs(10), || (!alive(c)).then_some(()));
    assert!(gone.is_some(), "the child {c} still runs after --kill");
    t.restore(&image, &[], RunOpts::default());
    let _child = ProcGuard::foreign(c);
    assert!(same_description(r, 3, c, 3));
    t.verify().assert_passed(EPOLLCHILD_CHECKS);
}

#[test]
fn shared_epoll_keeps_a_watch_only_the_child_can_name() {
    watch_added_by_the_child(Bits::B64);
}

#[test]
fn shared_epoll_keeps_a_watch_only_the_child_can_name_i386() {
    with_bits(Bits::B32, "sharedfd epollchild (i386)", || {
        watch_added_by_the_child(Bits::B32)
    });
}

/// The same, but the parent holds another file at the child's fd number: restore adds a shared
/// instance's watch in the first process with an fd of that number, where it would watch the
/// wrong file, so capture refuses, naming both epoll fds, and the tree runs on.
fn watch_named_otherwise(bits: Bits) {
    let t = Spawn::new("sharedfd")
        .args(&["epollclash"])
        .bits(bits)
        .start();
    let r = t.pid();
    let c = t.report().pid_after("UP C ");
    let _child = ProcGuard::foreign(c);
    let image = t.dir.join("image");
    let run = capture(r, &image, &["--kill"]);
    run.assert_status(69);
    let want = format!(
        "PID {r} fd 3 and PID {c} fd 3 share an epoll instance that watches fd 4, but in PID {r}, \
         the first of them with an fd 4, fd 4 now refers to another file"
    );
    assert!(run.stderr.contains(&want), "expected {want:?} in:\n{run}");
    assert!(!image.exists(), "an image after a failed capture");
    assert_running_untraced(r);
    assert_running_untraced(c);
}

#[test]
fn shared_epoll_watch_the_parent_names_otherwise_is_refused() {
    watch_named_otherwise(Bits::B64);
}

#[test]
fn shared_epoll_watch_the_parent_names_otherwise_is_refused_i386() {
    with_bits(Bits::B32, "sharedfd epollclash (i386)", || {
        watch_named_otherwise(Bits::B32)
    });
}

/// A real program: bash with `exec >FILE 2>&1` and two background subshells that write
/// numbered lines through stdout and stderr, one description at one offset for all three
/// processes (no O_APPEND: with a description each, the writers would overwrite each other's
/// lines). They pace themselves with `read -t` on a FIFO that all of them hold open (another
/// shared description), so no short-lived child exists to be caught as a zombie. After the
/// restore the file is whole: every line well formed, each writer's numbers consecutive from 0,
/// and both ran on past the capture.
#[test]
fn bash_background_jobs_append_to_one_redirect() {
    let dir = WorkDir::new("redirect-jobs");
    let log = dir.join("log");
    let fifo = dir.join("pace");
    let script = r#"
exec >"$1" 2>&1
mkfifo "$2" && exec 3<>"$2"
(i=0; while [ $i -lt 400 ]; do echo "A $i"; i=$((i+1)); read -t 0.02 -u 3; done) &
(j=0; while [ $j -lt 400 ]; do echo "B $j" >&2; j=$((j+1)); read -t 0.02 -u 3; done) &
wait
echo END
"#;
    let mut bash = spawn_program(
        Command::new("bash")
            .args(["-c", script, "bash"])
            .arg(&log)
            .arg(&fifo)
            .current_dir(dir.path()),
    );
    let jobs = wait_for(Duration::from_secs(10), || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let kids: Vec<u32> =
            std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", bash.pid))
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect();
        (text.lines().count() >= 40 && kids.len() == 2).then_some(kids)
    })
    .expect("two background jobs writing");
    let image = dir.join("image");
    let run = capture(bash.pid, &image, &["--kill", "--json"]);
    run.assert_ok();
    assert!(bash.reap(Duration::from_secs(10)).is_some());
    let before = std::fs::read_to_string(&log).expect("log").lines().count();
    let groups = shares(&image);
    // stdout and stderr of all three processes are one description.
    assert!(
        groups.iter().any(|g| g.fds.len() == 6
            && jobs.iter().chain([&bash.pid]).all(|p| {
                g.fds.contains(&FdRef { pid: *p, fd: 1 })
                    && g.fds.contains(&FdRef { pid: *p, fd: 2 })
            })),
        "{groups:?}"
    );
    let gone = wait_for(Duration::from_secs(10), || {
        jobs.iter().all(|&p| !alive(p)).then_some(())
    });
    assert!(gone.is_some(), "the jobs still run after --kill");
    let root = restore(&image, &[], RunOpts::default());
    let _jobs: Vec<ProcGuard> = jobs.iter().map(|&p| ProcGuard::foreign(p)).collect();
    let ended = wait_for(Duration::from_secs(120), || {
        (!alive(root.pid)).then_some(())
    });
    assert!(ended.is_some(), "the restored script did not finish");
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(!text.contains('\0'), "holes in the log:\n{text:?}");
    let (mut a, mut b) = (0, 0);
    let mut lines = text.lines();
    for line in lines.by_ref() {
        match line.split_once(' ') {
            Some(("A", n)) if n == a.to_string() => a += 1,
            Some(("B", n)) if n == b.to_string() => b += 1,
            _ if line == "END" => break,
            _ => panic!("line {line:?} out of order (next A {a}, next B {b}):\n{text}"),
        }
    }
    assert_eq!((a, b), (400, 400), "{text}");
    assert_eq!(lines.next(), None, "{text}");
    assert!(before < 800, "the jobs finished before the capture");
}
