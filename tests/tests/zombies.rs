//! Zombies (issue 9): children that exited and that their parent had not reaped at capture are
//! restored as zombies of the restored parent, with their PIDs and exit statuses, so that the
//! parent reaps them after the restore (an exit code, a signal); a zombie group leader keeps
//! its group for the live member; the parent's SIGCHLD is as the image says (none made by the
//! restore, a blocked one still pending); a real program, python3 with `os.fork()` and a delayed
//! `os.waitpid`, reaps its children after the restore (exit 5 and 255, SIGKILL, a real-time
//! signal, SIGSEGV with a core: restored without the core flag, which restore says). 64-bit and i386. A zombie PID given to
//! psnc-capture alone is still refused: there is nothing to capture.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use psnc_format::model::{ExitStatus, Zombie};
use psnc_format::Image;
use psnc_tests::{
    capture, cases, proc_state, run, spawn_program, targets, tool, wait_for, Bits, Case, Report,
    RunOpts, Spawn, Target, WorkDir,
};

/// The PIDs of the `ZOMBIES Z1 Z2 LIVE L` line of the report: (zombies, live child).
fn pids(r: &Report) -> (Vec<u32>, u32) {
    let line = r
        .lines
        .iter()
        .find_map(|l| l.strip_prefix("ZOMBIES "))
        .unwrap_or_else(|| panic!("no ZOMBIES line in:\n{}", r.lines.join("\n")));
    let w: Vec<&str> = line.split_whitespace().collect();
    let n = |s: &str| s.parse::<u32>().expect("a PID");
    (vec![n(w[0]), n(w[1])], n(w[3]))
}

fn zombies_of(image: &Path) -> Vec<Zombie> {
    let img = Image::open(image).unwrap_or_else(|e| panic!("{}: {e}", image.display()));
    img.checkpoint().zombies.clone()
}

/// `psnc-imgtool info IMAGE`, which must show each zombie as `<defunct>` with its status.
fn assert_info_shows(image: &Path, rows: &[(u32, &str)]) {
    let path = image.to_str().expect("utf-8 path");
    let r = run(&tool("psnc-imgtool"), &["info", path], RunOpts::default());
    r.assert_ok();
    for &(pid, status) in rows {
        let row = r
            .stdout
            .lines()
            .find(|l| l.contains(&format!("└─ {pid} ")))
            .unwrap_or_else(|| panic!("no row of zombie {pid} in:\n{}", r.stdout));
        assert!(
            row.contains(&format!("<defunct> ({status})")),
            "zombie {pid} row {row:?}"
        );
    }
}

/// The independent Python reader (spec/reader) decodes the real image's zombies the same way.
fn assert_python_reader_shows(image: &Path, rows: &[(u32, &str)]) {
    let reader = psnc_tests::package_dir().join("../spec/reader/psnc_reader.py");
    let path = image.to_str().expect("utf-8 path");
    let r = run(
        Path::new("python3"),
        &[reader.to_str().expect("utf-8 path"), path],
        RunOpts::default(),
    );
    r.assert_ok();
    for &(pid, status) in rows {
        let line = r
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("zombie {pid} <defunct> ")))
            .unwrap_or_else(|| panic!("no zombie {pid} in:\n{}", r.stdout));
        assert!(line.ends_with(&format!(", {status}")), "{line:?}");
    }
}

/// Starts `case`, waits until its zombies are zombies, captures with `--kill`, checks the image
/// against `want` (statuses of the two zombies, in order), restores, checks that the zombies
/// are zombies of the restored parent again, and lets the target check itself.
fn roundtrip(case: &Case, bits: Bits, want: [ExitStatus; 2], shown: [&str; 2]) -> Target {
    if bits == Bits::B32 && !targets().m32 {
        psnc_testkit::skip(
            format!(
                "{} {}",
                case.label(bits, "after restore"),
                case.args.join(" ")
            ),
            psnc_testkit::NO_M32,
        );
        return Spawn::new(case.name).args(case.args).start();
    }
    let mut t = Spawn::new(case.name).args(case.args).bits(bits).start();
    let (zs, live) = pids(&t.report());
    let image = t.dir.join("image");
    let run = t.capture_kill(&image);
    assert!(run.stderr.contains(" with 2 zombie(s) into "), "{run}");
    let got = zombies_of(&image);
    assert_eq!(
        got.iter()
            .map(|z| (z.pid, z.ppid, z.status))
            .collect::<Vec<_>>(),
        vec![(zs[0], t.pid(), want[0]), (zs[1], t.pid(), want[1])],
        "{got:?}"
    );
    assert_info_shows(&image, &[(zs[0], shown[0]), (zs[1], shown[1])]);
    assert_python_reader_shows(&image, &[(zs[0], shown[0]), (zs[1], shown[1])]);
    t.restore(&image, &[], RunOpts::default());
    for (&z, &status) in zs.iter().zip(&want) {
        let stat = psnc_proc::ProcDir::new(z as i32)
            .stat()
            .expect("the zombie's stat");
        assert_eq!((stat.state, stat.ppid), ('Z', t.pid() as i32), "zombie {z}");
        assert_eq!(ExitStatus::from_wait_status(stat.exit_code), Some(status));
    }
    assert!(
        !matches!(proc_state(live), None | Some('Z')),
        "the live child {live} does not run after the restore"
    );
    t.verify()
        .assert_passed_in(&case.label(bits, "after restore"), case.expect);
    t
}

const CHILDREN: [ExitStatus; 2] = [
    ExitStatus::Exited(7),
    ExitStatus::Killed {
        // SIGTERM.
        signal: 15,
        core: false,
    },
];
const CHILDREN_SHOWN: [&str; 2] = ["exit 7", "killed by signal 15"];

#[test]
fn zombie_children_are_reaped_after_restore_x86_64() {
    roundtrip(&cases::ZOMBIE_CHILDREN, Bits::B64, CHILDREN, CHILDREN_SHOWN);
}

#[test]
fn zombie_children_are_reaped_after_restore_i386() {
    roundtrip(&cases::ZOMBIE_CHILDREN, Bits::B32, CHILDREN, CHILDREN_SHOWN);
}

#[test]
fn a_blocked_sigchld_of_zombies_stays_pending_x86_64() {
    roundtrip(&cases::ZOMBIE_BLOCKED, Bits::B64, CHILDREN, CHILDREN_SHOWN);
}

#[test]
fn a_blocked_sigchld_of_zombies_stays_pending_i386() {
    roundtrip(&cases::ZOMBIE_BLOCKED, Bits::B32, CHILDREN, CHILDREN_SHOWN);
}

const LEADER: [ExitStatus; 2] = [ExitStatus::Exited(3), ExitStatus::Exited(0)];
const LEADER_SHOWN: [&str; 2] = ["exit 3", "exit 0"];

/// G leads its group (M, live, is a member) and S its session; both are zombies. The image
/// keeps their groups and sessions, and the restore recreates them before M joins G's group.
fn leader(bits: Bits) {
    let t = roundtrip(&cases::ZOMBIE_LEADER, bits, LEADER, LEADER_SHOWN);
    if bits == Bits::B32 && !targets().m32 {
        return;
    }
    let image = t.dir.join("image");
    let img = Image::open(&image).expect("the image");
    let root_sid = img.checkpoint().processes[0].sid;
    let z = zombies_of(&image);
    // G in R's session (the harness's), S in its own.
    assert_eq!((z[0].pgid, z[0].sid), (z[0].pid, root_sid), "{z:?}");
    assert_eq!((z[1].pgid, z[1].sid), (z[1].pid, z[1].pid), "{z:?}");
}

#[test]
fn a_zombie_group_leader_keeps_its_group_x86_64() {
    leader(Bits::B64);
}

#[test]
fn a_zombie_group_leader_keeps_its_group_i386() {
    leader(Bits::B32);
}

/// A real program: python3 forks children that end with 5, with 255, by SIGKILL, by a
/// real-time signal (SIGRTMIN + 6) and by SIGSEGV with a core dump (in the test's directory),
/// and reaps them only when told to, after the restore.
const PY_DELAYED_WAIT: &str = r#"
import os, resource, signal, sys, time
log = sys.argv[1]
def say(s):
    with open(log, "a") as f:
        f.write(s + "\n")
def core():
    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    os.chdir(os.path.dirname(log))
    os.kill(os.getpid(), signal.SIGSEGV)
ends = [lambda: os._exit(5), lambda: os._exit(255),
        lambda: os.kill(os.getpid(), signal.SIGKILL),
        lambda: os.kill(os.getpid(), signal.SIGRTMIN + 6), core]
kids = []
for end in ends:
    pid = os.fork()
    if pid == 0:
        end()
        time.sleep(5)
        os._exit(99)
    kids.append(pid)
for pid in kids:
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
say("CHILDREN " + " ".join(str(k) for k in kids))
while not os.path.exists(log + ".go"):
    time.sleep(0.01)
for pid in kids:
    p, status = os.waitpid(pid, 0)
    say("REAPED %d %d" % (p, status))
say("END")
while True:
    time.sleep(1)
"#;

#[test]
fn python3_reaps_its_children_after_restore() {
    let dir = WorkDir::new("py-zombie");
    let log = dir.join("log");
    let mut p = spawn_program(
        Command::new("python3")
            .args(["-c", PY_DELAYED_WAIT])
            .arg(&log),
    );
    let lines = || std::fs::read_to_string(&log).unwrap_or_default();
    let kids: Vec<u32> = wait_for(Duration::from_secs(20), || {
        lines().lines().find_map(|l| {
            let rest = l.strip_prefix("CHILDREN ")?;
            Some(
                rest.split_whitespace()
                    .filter_map(|w| w.parse().ok())
                    .collect(),
            )
        })
    })
    .unwrap_or_else(|| panic!("python3 reported no children:\n{}", lines()));
    let image = dir.join("image");
    psnc_tests::capture_kill(&mut p, &image);
    let killed = |signal, core| ExitStatus::Killed { signal, core };
    // glibc's SIGRTMIN, which python3's signal.SIGRTMIN is.
    let rtmin = nix::libc::SIGRTMIN() as u8;
    let zombies = zombies_of(&image);
    // Whether the kernel wrote a core depends on core_pattern and the filesystem.
    let cored = zombies.get(4).is_some_and(|z| z.status == killed(11, true));
    let want = [
        ExitStatus::Exited(5),
        ExitStatus::Exited(255),
        killed(9, false),
        killed(rtmin + 6, false),
        killed(11, cored),
    ];
    assert_eq!(
        zombies
            .iter()
            .map(|z| (z.pid, z.ppid, z.status))
            .collect::<Vec<_>>(),
        kids.iter()
            .zip(want)
            .map(|(&k, w)| (k, p.pid, w))
            .collect::<Vec<_>>()
    );
    let r = psnc_tests::restore_run(&image, &[], RunOpts::default());
    r.assert_ok();
    let _restored = psnc_tests::ProcGuard::foreign(p.pid);
    let note = format!(
        "psnc-restore: zombie {}: its parent {} will see it killed by signal 11 without the \
         core-dump flag (a core cannot be recreated without writing one)",
        kids[4], p.pid
    );
    if cored {
        assert!(r.stderr.contains(&note), "expected {note:?} in:\n{r}");
    } else {
        assert!(!r.stderr.contains("core-dump flag"), "{r}");
        psnc_testkit::skip(
            "zombies: the restore's note on a zombie that dumped core",
            "the kernel wrote no core here (core_pattern or RLIMIT_CORE)",
        );
    }
    std::fs::File::create(dir.join("log.go")).expect("the go file");
    wait_for(Duration::from_secs(20), || {
        lines().contains("END\n").then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "python3 did not reap its children after the restore:\n{}",
            lines()
        )
    });
    let reaped: Vec<String> = lines()
        .lines()
        .filter_map(|l| l.strip_prefix("REAPED ").map(str::to_string))
        .collect();
    // Raw wait statuses: the restored SIGSEGV zombie has no core flag.
    let statuses = [5 << 8, 255 << 8, 9, i32::from(rtmin) + 6, 11];
    assert_eq!(
        reaped,
        kids.iter()
            .zip(statuses)
            .map(|(k, st)| format!("{k} {st}"))
            .collect::<Vec<_>>()
    );
    assert!(proc_state(p.pid).is_some_and(|s| s != 'Z'), "python3 died");
}

/// A zombie PID on its own is still refused: it has nothing to capture.
#[test]
fn a_zombie_pid_alone_is_refused() {
    let t = Spawn::new("zombie").args(&["children"]).start();
    let (zs, _) = pids(&t.report());
    let image = t.dir.join("image");
    let r = capture(zs[0], &image, &[]);
    r.assert_status(66);
    let msg = format!(
        "PID {} is a zombie (it has exited); there is nothing to capture",
        zs[0]
    );
    assert!(r.stderr.contains(&msg), "expected {msg:?} in:\n{r}");
    assert!(!image.exists());
}

/// A child whose main thread exited while another thread runs shows as a zombie in `/proc`
/// but is not one: refused, naming it and its parent, and the tree runs on.
#[test]
fn a_child_whose_main_thread_exited_is_refused() {
    let t = Spawn::new("zombie").args(&["deadleader"]).start();
    let d: u32 = t
        .report()
        .lines
        .iter()
        .find_map(|l| l.strip_prefix("DEAD ")?.trim().parse().ok())
        .expect("a DEAD line");
    let image = t.dir.join("image");
    let r = capture(t.pid(), &image, &[]);
    r.assert_status(69);
    let msg = format!(
        "PID {d}, a child of PID {}, shows as a zombie but still has other threads (its main \
         thread exited while they run, or it is still exiting); psnc-capture cannot capture \
         such a process",
        t.pid()
    );
    assert!(r.stderr.contains(&msg), "expected {msg:?} in:\n{r}");
    assert!(!image.exists());
    psnc_tests::assert_running_untraced(t.pid());
}
