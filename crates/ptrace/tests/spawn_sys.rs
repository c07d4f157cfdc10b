//! Creating tasks: clone3 with a chosen PID, and the held child that execs from a memfd.

// Tests of psnc-ptrace, the one crate allowed unsafe code: raw calls that set up a target's state.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io::Write;
use std::os::fd::AsFd;

use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use psnc_ptrace::spawn::{spawn_held, ExecSpec};
use psnc_ptrace::sys::{self, Clone3Result};
use psnc_ptrace::PtraceError;

/// A PID that is free now (away from the next ones the kernel hands out).
fn free_pid() -> i32 {
    let last: i32 = std::fs::read_to_string("/proc/sys/kernel/ns_last_pid")
        .expect("ns_last_pid")
        .trim()
        .parse()
        .expect("pid");
    let max: i32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .expect("pid_max")
        .trim()
        .parse()
        .expect("max");
    // Away from where the kernel hands out PIDs next, wrapping at pid_max.
    (last + 1000..max)
        .chain(1000..last)
        .find(|p| !psnc_proc::ProcDir::new(*p).exists())
        .expect("a free pid")
}

fn memfd_with(bytes: &[u8]) -> std::fs::File {
    let fd = sys::memfd_create(c"psnc-test-exe", 0).expect("memfd");
    let mut f = std::fs::File::from(fd);
    f.write_all(bytes).expect("write memfd");
    f
}

#[test]
fn clone3_creates_the_pid_asked_for_and_refuses_one_in_use() {
    // A PID free when chosen can be taken before clone3 runs (another test binary forks
    // meanwhile), and a PID with no /proc entry can still be held as the process group or
    // session ID of live processes: EEXIST then means "choose again".
    let mut attempt = 0;
    let (forked, want) = loop {
        let want = free_pid();
        // SAFETY: the child only calls _exit, which is async-signal-safe.
        match unsafe { sys::clone3_with_set_tid(want, 0, libc::SIGCHLD as u64) } {
            Err(PtraceError::Syscall {
                op: "clone3",
                errno: Errno::EEXIST,
                ..
            }) if attempt < 5 => attempt += 1,
            r => break (r.expect("clone3"), want),
        }
    };
    match forked {
        Clone3Result::Child => {
            // SAFETY: ends the child at once without running any of the parent's state.
            unsafe { libc::_exit(3) }
        }
        Clone3Result::Parent(pid) => {
            assert_eq!(pid, want);
            assert_eq!(
                waitpid(Pid::from_raw(pid), None).expect("wait"),
                WaitStatus::Exited(Pid::from_raw(pid), 3)
            );
        }
    }
    let mine = std::process::id() as i32;
    // SAFETY: clone3 fails before creating a child when the PID is taken.
    let e =
        unsafe { sys::clone3_with_set_tid(mine, 0, libc::SIGCHLD as u64) }.expect_err("pid in use");
    assert!(
        matches!(e, PtraceError::Syscall { op: "clone3", errno: Errno::EEXIST, pid } if pid == mine),
        "{e}"
    );
}

#[test]
fn held_child_execs_from_a_memfd_with_the_chosen_pid() {
    let exe = memfd_with(&std::fs::read("/bin/true").expect("read /bin/true"));
    // A PID free when chosen can be taken before clone3 runs (a build or another test binary
    // forks meanwhile): EEXIST then means "choose again", not a failure of spawn_held.
    let mut attempt = 0;
    let (held, want) = loop {
        let want = free_pid();
        let spec = ExecSpec {
            exe: exe.as_fd(),
            argv: vec![CString::new("true").expect("cstr")],
            envp: vec![],
            set_tid: Some(want),
            personality: Some(libc::ADDR_NO_RANDOMIZE as u32),
            new_session: true,
        };
        match spawn_held(&spec) {
            Err(PtraceError::Syscall {
                op: "clone3",
                errno: Errno::EEXIST,
                ..
            }) if attempt < 5 => {
                attempt += 1;
            }
            r => break (r.expect("spawn_held"), want),
        }
    };
    assert_eq!(held.pid(), want);
    let (pid, _pidfd) = held.exec().expect("exec");
    assert_eq!(
        waitpid(Pid::from_raw(pid), None).expect("wait"),
        WaitStatus::Exited(Pid::from_raw(pid), 0)
    );
}

#[test]
fn held_child_reports_a_failed_exec() {
    let exe = memfd_with(b"not an executable at all");
    // Make it executable-permission-wise: memfds are created 0777, so execveat fails on the
    // contents (ENOEXEC).
    let spec = ExecSpec {
        exe: exe.as_fd(),
        argv: vec![CString::new("x").expect("cstr")],
        envp: vec![],
        set_tid: None,
        personality: None,
        new_session: false,
    };
    let held = spawn_held(&spec).expect("spawn_held");
    let e = held.exec().expect_err("exec of garbage");
    assert!(
        matches!(
            e,
            PtraceError::Syscall {
                op: "execveat (child)",
                errno: Errno::ENOEXEC,
                ..
            }
        ),
        "{e}"
    );
}
