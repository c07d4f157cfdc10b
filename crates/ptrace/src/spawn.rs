//! Creating a fresh task for a restore: `clone3` (with a chosen PID when asked), then `execveat`
//! of an executable held in a file descriptor (a memfd), with a personality set before the exec.
//!
//! The child is created *held*: it waits on a pipe before it execs, so the caller can seize it
//! (and so set `PTRACE_O_EXITKILL`) before it runs a single instruction of the new program.
//! [`HeldChild::exec`] releases it and reports whether the exec succeeded, through a second,
//! close-on-exec pipe: end-of-file means the exec went through, eight bytes mean a step in the
//! child failed (step number and errno). Dropping a [`HeldChild`] without releasing it makes the
//! child exit and reaps it.
//!
//! Between `clone3` and `execveat` the child is a copy of a possibly multithreaded process, so it
//! runs only async-signal-safe system calls on memory prepared before the clone (the argument
//! vectors are built in the parent). The `clone3` call itself lives here because the child-side
//! path must not allocate, lock, or return into Rust code that assumes a single owner of any
//! resource.

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

use crate::error::{PtraceError, Result};

/// What the held child does when it is released.
#[derive(Debug)]
pub struct ExecSpec<'a> {
    /// The executable, exec'd with `execveat(fd, "", ..., AT_EMPTY_PATH)`. It may be close-on-exec
    /// (an ELF, unlike a script, does not need its fd after the exec).
    pub exe: BorrowedFd<'a>,
    /// `argv`, including `argv[0]`.
    pub argv: Vec<CString>,
    /// The environment.
    pub envp: Vec<CString>,
    /// Create the child with this PID (`clone3` `set_tid`, needs CAP_CHECKPOINT_RESTORE or
    /// CAP_SYS_ADMIN); `None` lets the kernel choose.
    pub set_tid: Option<i32>,
    /// `personality(2)` value set in the child before the exec (e.g. with `ADDR_NO_RANDOMIZE`).
    pub personality: Option<u32>,
    /// Call `setsid()` in the child, making it the leader of a new session and process group.
    pub new_session: bool,
}

/// A child created by [`spawn_held`] that has not exec'd yet.
#[derive(Debug)]
pub struct HeldChild {
    pid: i32,
    pidfd: Option<OwnedFd>,
    /// Write end of the release pipe; closing it without writing makes the child exit.
    go: Option<OwnedFd>,
    /// Read end of the status pipe (close-on-exec in the child).
    status: Option<OwnedFd>,
    reaped: bool,
}

/// Steps of the child, reported with the errno when one fails.
const STEP_RELEASE: u32 = 1;
const STEP_SETSID: u32 = 2;
const STEP_PERSONALITY: u32 = 3;
const STEP_EXECVEAT: u32 = 4;

fn step_name(step: u32) -> &'static str {
    match step {
        STEP_RELEASE => "wait for release (child)",
        STEP_SETSID => "setsid (child)",
        STEP_PERSONALITY => "personality (child)",
        STEP_EXECVEAT => "execveat (child)",
        _ => "unknown step (child)",
    }
}

/// Makes a pipe whose both ends are close-on-exec in this process.
fn pipe_cloexec() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|errno| PtraceError::Syscall {
        op: "pipe2",
        pid: 0,
        errno,
    })
}

/// Creates a child that waits, then execs `spec.exe` when [`HeldChild::exec`] is called.
///
/// Fails with `Syscall { op: "clone3", errno: EEXIST }` when `spec.set_tid` is a PID in use, and
/// with `EPERM` without the capability to choose a PID.
pub fn spawn_held(spec: &ExecSpec<'_>) -> Result<HeldChild> {
    let (go_rd, go_wr) = pipe_cloexec()?;
    let (st_rd, st_wr) = pipe_cloexec()?;

    // Everything the child touches is prepared here: it must not allocate after the clone.
    let mut argv: Vec<*const libc::c_char> = spec.argv.iter().map(|s| s.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = spec.envp.iter().map(|s| s.as_ptr()).collect();
    envp.push(std::ptr::null());
    let empty = c"";
    let set_tid: [libc::pid_t; 1] = [spec.set_tid.unwrap_or(0)];
    let mut pidfd: libc::c_int = -1;
    let args = libc::clone_args {
        flags: libc::CLONE_PIDFD as u64,
        pidfd: std::ptr::addr_of_mut!(pidfd) as u64,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: libc::SIGCHLD as u64,
        stack: 0,
        stack_size: 0,
        tls: 0,
        set_tid: if spec.set_tid.is_some() {
            set_tid.as_ptr() as u64
        } else {
            0
        },
        set_tid_size: u64::from(spec.set_tid.is_some()),
        cgroup: 0,
    };

    // SAFETY: clone3 without CLONE_VM and without a stack behaves like fork: the child gets a
    // copy of the address space and returns here with 0. `args` and the buffers it points to
    // (`set_tid`, `pidfd`) live across the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            std::ptr::addr_of!(args),
            std::mem::size_of::<libc::clone_args>(),
        )
    };
    if ret == 0 {
        // In the child. Only raw, async-signal-safe system calls from here on.
        child_after_clone(
            spec,
            go_rd.as_raw_fd(),
            st_wr.as_raw_fd(),
            argv.as_ptr(),
            envp.as_ptr(),
            empty.as_ptr(),
        );
    }
    if ret < 0 {
        return Err(PtraceError::Syscall {
            op: "clone3",
            pid: spec.set_tid.unwrap_or(0),
            errno: Errno::last(),
        });
    }
    let pid = ret as i32;
    // SAFETY: with CLONE_PIDFD the kernel stored a new pidfd, owned by nobody else, in `pidfd`.
    let pidfd = (pidfd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(pidfd) });
    drop(go_rd);
    drop(st_wr);
    Ok(HeldChild {
        pid,
        pidfd,
        go: Some(go_wr),
        status: Some(st_rd),
        reaped: false,
    })
}

/// The child's side: wait for release, set up, exec; report the failing step and exit otherwise.
fn child_after_clone(
    spec: &ExecSpec<'_>,
    go_rd: RawFd,
    st_wr: RawFd,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    empty: *const libc::c_char,
) -> ! {
    let fail = |step: u32, errno: i32| -> ! {
        let mut msg = [0u8; 8];
        msg[..4].copy_from_slice(&step.to_le_bytes());
        msg[4..].copy_from_slice(&errno.to_le_bytes());
        // SAFETY: writes 8 bytes from a live stack buffer to a pipe fd the child owns.
        unsafe { libc::write(st_wr, msg.as_ptr().cast(), msg.len()) };
        // SAFETY: _exit ends the child without running any of the parent's atexit handlers.
        unsafe { libc::_exit(127) }
    };
    let mut byte = 0u8;
    // SAFETY: reads one byte into a live stack buffer from a pipe fd the child owns.
    let n = unsafe { libc::read(go_rd, std::ptr::addr_of_mut!(byte).cast(), 1) };
    if n != 1 {
        // The parent dropped its HeldChild: exit quietly.
        // SAFETY: as above.
        unsafe { libc::_exit(127) }
    }
    if spec.new_session {
        // SAFETY: setsid takes no arguments and only changes this process's session.
        if unsafe { libc::setsid() } < 0 {
            fail(STEP_SETSID, Errno::last_raw());
        }
    }
    if let Some(p) = spec.personality {
        // SAFETY: personality takes a plain integer.
        if unsafe { libc::personality(libc::c_ulong::from(p)) } < 0 {
            fail(STEP_PERSONALITY, Errno::last_raw());
        }
    }
    // SAFETY: `empty`, `argv` and `envp` point to NUL-terminated strings and NULL-terminated
    // pointer arrays built before the clone; the child's copy of the address space still holds
    // them. On success execveat does not return.
    unsafe {
        libc::execveat(
            spec.exe.as_raw_fd(),
            empty,
            argv.cast(),
            envp.cast(),
            libc::AT_EMPTY_PATH,
        )
    };
    fail(STEP_EXECVEAT, Errno::last_raw())
}

impl HeldChild {
    /// The child's PID.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// A pidfd for the child (from `CLONE_PIDFD`), if the kernel gave one.
    pub fn pidfd(&self) -> Option<BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        self.pidfd.as_ref().map(|f| f.as_fd())
    }

    /// Releases the child and waits until it has exec'd (or failed to). On success returns the
    /// PID and the pidfd; the caller now owns the child (it must wait for it). On failure the
    /// child has exited and is reaped, unless it is traced (then the tracer must reap it).
    pub fn exec(mut self) -> Result<(i32, Option<OwnedFd>)> {
        let go = self.go.take();
        let status = self.status.take();
        if let Some(go) = &go {
            nix::unistd::write(go, &[1u8]).map_err(|errno| PtraceError::Syscall {
                op: "write (release child)",
                pid: self.pid,
                errno,
            })?;
        }
        drop(go);
        let mut msg = [0u8; 8];
        let mut got = 0;
        if let Some(status) = &status {
            while got < msg.len() {
                match nix::unistd::read(status.as_raw_fd(), &mut msg[got..]) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(Errno::EINTR) => continue,
                    Err(errno) => {
                        return Err(PtraceError::Syscall {
                            op: "read (child status)",
                            pid: self.pid,
                            errno,
                        })
                    }
                }
            }
        }
        if got == 0 {
            self.reaped = true; // the caller owns the running child now
            return Ok((self.pid, self.pidfd.take()));
        }
        let step = u32::from_le_bytes([msg[0], msg[1], msg[2], msg[3]]);
        let errno = i32::from_le_bytes([msg[4], msg[5], msg[6], msg[7]]);
        Err(PtraceError::Syscall {
            op: step_name(step),
            pid: self.pid,
            errno: Errno::from_raw(errno),
        })
    }
}

impl Drop for HeldChild {
    fn drop(&mut self) {
        // Closing the release pipe unread makes a held child exit; a failed exec exits by itself.
        self.go = None;
        if !self.reaped {
            // Reaps the child unless a tracer already did (then ECHILD, harmless).
            let _ = nix::sys::wait::waitpid(
                nix::unistd::Pid::from_raw(self.pid),
                Some(nix::sys::wait::WaitPidFlag::__WALL),
            );
        }
    }
}
