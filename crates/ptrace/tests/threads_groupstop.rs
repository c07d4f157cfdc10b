//! Remote syscalls in every thread of a multithreaded target, and in a group-stopped target.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

use common::{slept, wait_state, Target};
use psnc_ptrace::{Arch, OnSignal, Options, RemoteSyscaller, Stop, Sysno, Tracee};

const SLEEP_MS: u64 = 1500;

fn tids(pid: i32) -> Vec<i32> {
    psnc_proc::ProcDir::new(pid)
        .list_numeric("task")
        .expect("task dir")
}

/// Seize all threads, stop them (interrupt all first, then wait), inject gettid in each through
/// one instruction found once, detach: every thread's nanosleep still completes in full.
fn all_threads(a: Arch) {
    let Some(exe) = common::build("threads", a) else {
        psnc_testkit::skip!(format!("all_threads {a:?}"), psnc_testkit::NO_M32);
    };
    let mut child = Command::new(exe)
        .arg(SLEEP_MS.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("ready");
    assert_eq!(line, "ready\n");
    let pid = child.id() as i32;
    std::thread::sleep(std::time::Duration::from_millis(50));
    let tids = tids(pid);
    assert_eq!(tids.len(), 5);

    let mut ts: Vec<Tracee> = tids
        .iter()
        .map(|&t| Tracee::seize(t, Options::PTRACE_O_EXITKILL).expect("seize"))
        .collect();
    for t in &mut ts {
        t.interrupt().expect("interrupt");
    }
    for t in &mut ts {
        assert_eq!(
            t.wait_for_stop(OnSignal::Hold).expect("stop"),
            Stop::Interrupt
        );
    }
    let insn = psnc_ptrace::find_syscall_insn(pid, a).expect("insn");
    // Found in the vdso the auxiliary vector names, without reading maps: check against them.
    let maps = psnc_proc::ProcDir::new(pid).maps().expect("maps");
    let vdso = maps.iter().find(|m| m.path == "[vdso]").expect("a vdso");
    assert!(
        vdso.start <= insn && insn + 2 <= vdso.end && vdso.exec,
        "{insn:#x} is not in the vdso {:#x}-{:#x}",
        vdso.start,
        vdso.end
    );
    for t in &mut ts {
        let tid = t.tid();
        let regs = t.get_regs().expect("regs");
        assert!(regs.in_restartable_syscall(), "thread {tid}: {regs:?}");
        let mut sc = RemoteSyscaller::new(t, insn).expect("syscaller");
        assert_eq!(sc.syscall(Sysno::Gettid, &[]).expect("gettid"), tid as u64);
        assert_eq!(sc.getpid().expect("getpid"), pid);
        drop(sc);
        assert_eq!(t.get_regs().expect("regs"), regs);
    }
    for t in ts {
        t.detach().expect("detach");
    }
    let mut rest = String::new();
    out.read_to_string(&mut rest).expect("output");
    assert!(child.wait().expect("wait").success(), "{rest}");
    assert!(rest.ends_with("done\n"), "{rest}");
    for l in rest.lines().filter(|l| l.starts_with('t')) {
        assert!(
            l.contains("ret=0 errno=0") && l.ends_with("tid_ok=1"),
            "{l}"
        );
        let ms: u64 = l
            .split("ms=")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|v| v.parse().ok())
            .expect("ms");
        assert!(ms + 20 >= SLEEP_MS, "{l}");
    }
    assert_eq!(
        rest.lines().filter(|l| l.starts_with('t')).count(),
        4,
        "{rest}"
    );
}

#[test]
fn x86_64_threads() {
    all_threads(Arch::X86_64);
}

#[test]
fn i386_threads() {
    all_threads(Arch::I386);
}

/// A target stopped by SIGSTOP (as `psnc-restore --leave-stopped` leaves one) reports a
/// group-stop; remote syscalls work from it, and after detach it is still stopped until SIGCONT.
#[test]
fn group_stopped_target_stays_stopped() {
    let tgt = Target::start(Arch::X86_64, SLEEP_MS).expect("target");
    let pid = tgt.pid();
    let p = nix::unistd::Pid::from_raw(pid);
    nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGSTOP).expect("SIGSTOP");
    wait_state(pid, 'T');
    let mut t = Tracee::seize(pid, Options::empty()).expect("seize");
    assert_eq!(
        t.stop(OnSignal::Hold).expect("stop"),
        Stop::Group(libc::SIGSTOP)
    );
    let regs = t.get_regs().expect("regs");
    {
        let mut sc = RemoteSyscaller::find(&mut t).expect("syscaller");
        assert_eq!(sc.getpid().expect("getpid"), pid);
        assert_eq!(sc.brk(0).expect("brk"), tgt.ready.brk);
    }
    assert!(t.held_signals().is_empty(), "{:?}", t.held_signals());
    assert_eq!(t.get_regs().expect("regs"), regs);
    t.detach().expect("detach");
    std::thread::sleep(std::time::Duration::from_millis(100));
    wait_state(pid, 'T');
    nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGCONT).expect("SIGCONT");
    let (out, code) = tgt.finish();
    assert_eq!(code, 0, "{out}");
    let (ret, errno, _) = slept(&out);
    // The stop interrupted nanosleep with -ERESTART_RESTARTBLOCK; it resumes after SIGCONT.
    assert_eq!((ret, errno), (0, 0), "{out}");
}

fn start_threads(ms: u64) -> (std::process::Child, i32) {
    let exe = common::build("threads", Arch::X86_64).expect("build");
    let mut child = Command::new(exe)
        .arg(ms.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("ready");
    let pid = child.id() as i32;
    (child, pid)
}

/// Killing through every thread's tracee in /proc order (leader first), as a capture with
/// --kill may do: no call blocks on the leader, every call succeeds.
#[test]
fn kill_through_every_thread() {
    let (mut child, pid) = start_threads(10_000);
    let mut ts: Vec<Tracee> = tids(pid)
        .iter()
        .map(|&t| Tracee::seize(t, Options::empty()).expect("seize"))
        .collect();
    for t in &mut ts {
        t.stop(OnSignal::Deliver).expect("stop");
    }
    for t in ts {
        t.kill().expect("kill");
    }
    // The leader is reaped by its parent (us) once the tracees are gone.
    let st = child.wait().expect("wait");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&st),
        Some(libc::SIGKILL)
    );
}

/// kill_all reaps every thread, the leader last.
#[test]
fn kill_all_reaps_every_thread() {
    let (mut child, pid) = start_threads(10_000);
    let mut ts: Vec<Tracee> = tids(pid)
        .iter()
        .map(|&t| Tracee::seize(t, Options::empty()).expect("seize"))
        .collect();
    for t in &mut ts {
        t.stop(OnSignal::Deliver).expect("stop");
    }
    psnc_ptrace::kill_all(ts).expect("kill_all");
    // We are also the parent, so the tracer's wait reaped the leader.
    assert!(!psnc_proc::ProcDir::new(pid).exists());
    let _ = child.wait();
}
