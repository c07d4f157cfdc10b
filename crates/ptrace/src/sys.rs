//! Plain syscalls the tool makes for itself, each wrapped once with its errno turned into a
//! [`PtraceError::Syscall`] naming the call and the process.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;

use crate::error::{PtraceError, Result};

fn check(op: &'static str, pid: i32, r: libc::c_long) -> Result<libc::c_long> {
    if r < 0 {
        Err(PtraceError::Syscall {
            op,
            pid,
            errno: Errno::last(),
        })
    } else {
        Ok(r)
    }
}

/// Turns a returned descriptor number into an owned fd.
fn owned_fd(op: &'static str, pid: i32, r: libc::c_long) -> Result<OwnedFd> {
    let fd = check(op, pid, r)?;
    let fd = i32::try_from(fd).map_err(|_| PtraceError::Syscall {
        op,
        pid,
        errno: Errno::EBADF,
    })?;
    // SAFETY: the kernel just returned `fd` as a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sends `sig` to one thread (`tkill`).
pub fn tkill(tid: i32, sig: i32) -> Result<()> {
    // SAFETY: tkill takes two integers and touches no memory of ours.
    let r = unsafe { libc::syscall(libc::SYS_tkill, tid, sig) };
    check("tkill", tid, r)?;
    Ok(())
}

/// A pidfd for process `pid` (`pidfd_open`, 5.3+).
pub fn pidfd_open(pid: i32) -> Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and touches no memory of ours.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    owned_fd("pidfd_open", pid, r)
}

/// A duplicate, in this process, of descriptor `fd` of the process behind `pidfd`
/// (`pidfd_getfd`, 5.6+): same open file description, so offsets and flags are shared. Needs
/// ptrace access to the target. `pid` only names the process in errors.
pub fn pidfd_getfd(pidfd: BorrowedFd<'_>, pid: i32, fd: i32) -> Result<OwnedFd> {
    // SAFETY: pidfd_getfd takes a descriptor, a number and flags and touches no memory of ours.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
    owned_fd("pidfd_getfd", pid, r)
}

/// Whether fd `fd1` of process `pid1` and fd `fd2` of process `pid2` are one open file
/// description (`kcmp(KCMP_FILE)`, CONFIG_CHECKPOINT_RESTORE): a file shared across fork or
/// dup, whose offset and status flags move together. Needs ptrace access to both processes.
pub fn kcmp_file(pid1: i32, fd1: i32, pid2: i32, fd2: i32) -> Result<bool> {
    const KCMP_FILE: libc::c_long = 0;
    // SAFETY: kcmp with KCMP_FILE takes two pids, a type and two descriptor numbers and touches
    // no memory of ours.
    let r = unsafe { libc::syscall(libc::SYS_kcmp, pid1, pid2, KCMP_FILE, fd1, fd2) };
    // 0 = equal, 1/2 = ordered unequal, 3 = not comparable.
    Ok(check("kcmp", pid1, r)? == 0)
}

/// How fd `fd1` of process `pid1` and fd `fd2` of process `pid2` order by open file description
/// (`kcmp(KCMP_FILE)`): `Equal` when they are one description. The kernel orders distinct
/// descriptions consistently (by their obfuscated addresses) for as long as both exist, so a
/// caller can sort or binary-search fds by description with a few calls each. Needs ptrace
/// access to both processes.
pub fn kcmp_file_order(pid1: i32, fd1: i32, pid2: i32, fd2: i32) -> Result<std::cmp::Ordering> {
    const KCMP_FILE: libc::c_long = 0;
    // SAFETY: kcmp with KCMP_FILE takes two pids, a type and two descriptor numbers and touches
    // no memory of ours.
    let r = unsafe { libc::syscall(libc::SYS_kcmp, pid1, pid2, KCMP_FILE, fd1, fd2) };
    match check("kcmp", pid1, r)? {
        0 => Ok(std::cmp::Ordering::Equal),
        1 => Ok(std::cmp::Ordering::Less),
        2 => Ok(std::cmp::Ordering::Greater),
        // 3, "unequal but not ordered", is never returned for KCMP_FILE; say so if it is.
        _ => Err(PtraceError::Syscall {
            op: "kcmp (no order for two open file descriptions)",
            pid: pid1,
            errno: Errno::EINVAL,
        }),
    }
}

/// Copies up to `len` bytes from pipe `fd_in` to pipe `fd_out` without consuming them (`tee`).
/// With `nonblock`, returns EAGAIN-as-error instead of waiting for data; 0 means the input pipe
/// is empty (and has no writer).
pub fn tee(
    fd_in: BorrowedFd<'_>,
    fd_out: BorrowedFd<'_>,
    len: usize,
    nonblock: bool,
) -> Result<usize> {
    let flags = if nonblock { libc::SPLICE_F_NONBLOCK } else { 0 };
    // SAFETY: tee takes two descriptors, a length and flags and touches no memory of ours.
    let r = unsafe { libc::tee(fd_in.as_raw_fd(), fd_out.as_raw_fd(), len, flags) };
    Ok(check("tee", 0, r as libc::c_long)? as usize)
}

/// An anonymous memory file (`memfd_create`); `flags` e.g. `libc::MFD_CLOEXEC`.
pub fn memfd_create(name: &CStr, flags: u32) -> Result<OwnedFd> {
    // SAFETY: `name` is a valid NUL-terminated string for the duration of the call.
    let r = unsafe { libc::memfd_create(name.as_ptr(), flags) };
    owned_fd("memfd_create", 0, libc::c_long::from(r))
}

/// Sets this process's personality and returns the previous one; `0xffffffff` only queries.
pub fn personality(persona: u32) -> Result<u32> {
    // SAFETY: personality takes an integer and touches no memory of ours.
    let r = unsafe { libc::personality(libc::c_ulong::from(persona)) };
    Ok(check("personality", 0, libc::c_long::from(r))? as u32)
}

/// The robust-futex list head of thread `tid` and its length (`get_robust_list`). For a compat
/// (i386) thread this returns the 64-bit list, which is empty: its list is the compat one, read
/// with the remote [`crate::RemoteSyscaller::get_robust_list`].
pub fn get_robust_list(tid: i32) -> Result<(u64, u64)> {
    let mut head: usize = 0;
    let mut len: usize = 0;
    // SAFETY: get_robust_list writes one pointer to `head` and one size_t to `len`, both ours.
    let r = unsafe {
        libc::syscall(
            libc::SYS_get_robust_list,
            tid,
            &mut head as *mut usize,
            &mut len as *mut usize,
        )
    };
    check("get_robust_list", tid, r)?;
    Ok((head as u64, len as u64))
}

/// Result of [`clone3_with_set_tid`] in each of the two processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clone3Result {
    /// In the parent: the child's PID (the one asked for).
    Parent(i32),
    /// In the child.
    Child,
}

/// Creates a child process with PID `tid` in this PID namespace (`clone3` with `set_tid`, 5.5+,
/// needs CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN). `flags` are clone flags without CLONE_VM /
/// CLONE_THREAD (the child gets a copy of this address space, as with fork); `exit_signal` is
/// usually SIGCHLD. EEXIST means the PID is taken.
///
/// # Safety
/// As for `fork`: in a multithreaded caller the child may only call async-signal-safe functions
/// until it execs or exits.
pub unsafe fn clone3_with_set_tid(tid: i32, flags: u64, exit_signal: u64) -> Result<Clone3Result> {
    let set_tid: [libc::pid_t; 1] = [tid];
    let mut args = [0u64; 11];
    args[0] = flags; // flags
    args[4] = exit_signal; // exit_signal
    args[8] = set_tid.as_ptr() as u64; // set_tid
    args[9] = 1; // set_tid_size
                 // SAFETY: clone3 reads `size_of_val(&args)` bytes of struct clone_args (11 u64, CLONE_ARGS
                 // _SIZE_VER2) and the one pid_t at set_tid; both live across the call. Without CLONE_VM the
                 // child runs on a copy of our memory; the caller upholds the fork contract.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            args.as_mut_ptr(),
            std::mem::size_of_val(&args),
        )
    };
    match check("clone3", tid, r)? {
        0 => Ok(Clone3Result::Child),
        pid => Ok(Clone3Result::Parent(pid as i32)),
    }
}

/// A new eventfd with counter 0 (`eventfd2`); `flags` e.g. `libc::EFD_SEMAPHORE`. The initial
/// value of the syscall is only 32 bits wide: write the counter afterwards.
pub fn eventfd(flags: i32) -> Result<OwnedFd> {
    // SAFETY: eventfd2 takes two integers and touches no memory of ours.
    let r = unsafe { libc::syscall(libc::SYS_eventfd2, 0, flags) };
    owned_fd("eventfd2", 0, r)
}

/// A new userfaultfd of this process (`userfaultfd(flags)`), e.g. to probe what the kernel
/// supports before a restore relies on it.
pub fn userfaultfd(flags: i32) -> Result<OwnedFd> {
    // SAFETY: userfaultfd takes one integer and touches no memory of ours.
    let r = unsafe { libc::syscall(libc::SYS_userfaultfd, flags) };
    owned_fd("userfaultfd", 0, r)
}

/// A new timerfd on clock `clockid` (`timerfd_create`); `flags` e.g. `libc::TFD_CLOEXEC`.
pub fn timerfd_create(clockid: i32, flags: i32) -> Result<OwnedFd> {
    // SAFETY: timerfd_create takes two integers and touches no memory of ours.
    let r = unsafe { libc::syscall(libc::SYS_timerfd_create, clockid, flags) };
    owned_fd("timerfd_create", 0, r)
}

fn timespec_ns(t: &libc::timespec) -> u64 {
    (t.tv_sec as u64).saturating_mul(1_000_000_000) + t.tv_nsec as u64
}

fn ns_timespec(ns: u64) -> libc::timespec {
    libc::timespec {
        tv_sec: (ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (ns % 1_000_000_000) as libc::c_long,
    }
}

/// Arms (or with `value_ns` 0 disarms) timerfd `fd` (`timerfd_settime`); `flags` e.g.
/// `libc::TFD_TIMER_ABSTIME`. Resets the count of unread expirations to 0.
pub fn timerfd_settime(
    fd: BorrowedFd<'_>,
    flags: i32,
    value_ns: u64,
    interval_ns: u64,
) -> Result<()> {
    let new = libc::itimerspec {
        it_interval: ns_timespec(interval_ns),
        it_value: ns_timespec(value_ns),
    };
    // SAFETY: timerfd_settime reads one itimerspec from `new`, ours, and writes nothing (null
    // old value).
    let r = unsafe {
        libc::syscall(
            libc::SYS_timerfd_settime,
            fd.as_raw_fd(),
            flags,
            &new as *const libc::itimerspec,
            std::ptr::null_mut::<libc::itimerspec>(),
        )
    };
    check("timerfd_settime", 0, r)?;
    Ok(())
}

/// The time to the next expiry and the period of timerfd `fd`, in nanoseconds
/// (`timerfd_gettime`). For a periodic timer that expired this also counts the expirations
/// since then into its unread ticks, as a read would, so fdinfo's `ticks` is exact afterwards.
pub fn timerfd_gettime(fd: BorrowedFd<'_>) -> Result<(u64, u64)> {
    let mut cur = libc::itimerspec {
        it_interval: ns_timespec(0),
        it_value: ns_timespec(0),
    };
    // SAFETY: timerfd_gettime writes one itimerspec to `cur`, ours.
    let r = unsafe {
        libc::syscall(
            libc::SYS_timerfd_gettime,
            fd.as_raw_fd(),
            &mut cur as *mut libc::itimerspec,
        )
    };
    check("timerfd_gettime", 0, r)?;
    Ok((timespec_ns(&cur.it_value), timespec_ns(&cur.it_interval)))
}

/// Sets the count of unread expirations of timerfd `fd` (`TFD_IOC_SET_TICKS`, needs
/// CONFIG_CHECKPOINT_RESTORE); a reader then sees them. Call it after [`timerfd_settime`],
/// which resets the count.
pub fn timerfd_set_ticks(fd: BorrowedFd<'_>, ticks: u64) -> Result<()> {
    // _IOW('T', 0, u64)
    const TFD_IOC_SET_TICKS: libc::c_ulong = 0x4008_5400;
    // SAFETY: the ioctl reads one u64 from `ticks`, ours.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), TFD_IOC_SET_TICKS, &ticks as *const u64) };
    check("ioctl(TFD_IOC_SET_TICKS)", 0, libc::c_long::from(r))?;
    Ok(())
}

/// A new signalfd for the signals of `mask` (bit `n - 1` for signal `n`, all 64 signals)
/// (`signalfd4`); `flags` e.g. `libc::SFD_CLOEXEC`.
pub fn signalfd(mask: u64, flags: i32) -> Result<OwnedFd> {
    // SAFETY: signalfd4 reads an 8-byte kernel sigset from `mask`, ours.
    let r = unsafe {
        libc::syscall(
            libc::SYS_signalfd4,
            -1,
            &mask as *const u64,
            std::mem::size_of::<u64>(),
            flags,
        )
    };
    owned_fd("signalfd4", 0, r)
}

/// A new inotify instance (`inotify_init1`); `flags` e.g. `libc::IN_CLOEXEC`.
pub fn inotify_init1(flags: i32) -> Result<OwnedFd> {
    // SAFETY: inotify_init1 takes an integer and touches no memory of ours.
    let r = unsafe { libc::inotify_init1(flags) };
    owned_fd("inotify_init1", 0, libc::c_long::from(r))
}

/// Adds (or updates) the watch of `path` with `mask` on inotify instance `fd` and returns its
/// watch descriptor (`inotify_add_watch`).
pub fn inotify_add_watch(fd: BorrowedFd<'_>, path: &CStr, mask: u32) -> Result<i32> {
    // SAFETY: `path` is a valid NUL-terminated string for the duration of the call.
    let r = unsafe { libc::inotify_add_watch(fd.as_raw_fd(), path.as_ptr(), mask) };
    Ok(check("inotify_add_watch", 0, libc::c_long::from(r))? as i32)
}

/// Removes watch `wd` from inotify instance `fd` (`inotify_rm_watch`); the kernel queues an
/// `IN_IGNORED` event for it.
pub fn inotify_rm_watch(fd: BorrowedFd<'_>, wd: i32) -> Result<()> {
    // SAFETY: inotify_rm_watch takes a descriptor and an integer and touches no memory of ours.
    let r = unsafe { libc::inotify_rm_watch(fd.as_raw_fd(), wd) };
    check("inotify_rm_watch", 0, libc::c_long::from(r))?;
    Ok(())
}

/// Opens the file that the file handle (`handle_type`, `handle` bytes, as fdinfo of an inotify
/// or fanotify mark shows them) names on the filesystem of `mount_fd` (`open_by_handle_at`,
/// needs CAP_DAC_READ_SEARCH); `flags` e.g. `libc::O_PATH`.
pub fn open_by_handle_at(
    mount_fd: BorrowedFd<'_>,
    handle_type: i32,
    handle: &[u8],
    flags: i32,
) -> Result<OwnedFd> {
    // struct file_handle { u32 handle_bytes; i32 handle_type; u8 f_handle[]; }, built in u32
    // words so it is aligned.
    let mut buf = vec![0u32; 2 + handle.len().div_ceil(4)];
    buf[0] = handle.len() as u32;
    buf[1] = handle_type as u32;
    let bytes: Vec<u8> = buf.iter().flat_map(|w| w.to_ne_bytes()).collect();
    let mut raw = bytes;
    raw[8..8 + handle.len()].copy_from_slice(handle);
    for (w, c) in buf.iter_mut().zip(raw.chunks_exact(4)) {
        *w = u32::from_ne_bytes([c[0], c[1], c[2], c[3]]);
    }
    // SAFETY: the kernel reads `handle_bytes` (= handle.len()) bytes of handle after the 8-byte
    // header of `buf`, which holds them; nothing is written.
    let r = unsafe {
        libc::syscall(
            libc::SYS_open_by_handle_at,
            mount_fd.as_raw_fd(),
            buf.as_ptr(),
            flags,
        )
    };
    owned_fd("open_by_handle_at", 0, r)
}

/// The current time of clock `clockid` in nanoseconds (`clock_gettime`); the alarm clocks read
/// as their base clocks.
pub fn clock_gettime_ns(clockid: i32) -> Result<u64> {
    let mut t = ns_timespec(0);
    // SAFETY: clock_gettime writes one timespec to `t`, ours.
    let r = unsafe { libc::clock_gettime(clockid, &mut t) };
    check("clock_gettime", 0, libc::c_long::from(r))?;
    Ok(timespec_ns(&t))
}

/// The kernel's `struct termios` (the `TCGETS`/`TCSETS` layout, the same for x86_64 and i386
/// processes): four 32-bit flag words, the line discipline, 19 control characters.
pub type TermiosBytes = [u8; 36];

/// The kernel's `struct winsize`: rows, columns, x and y pixels, 16 bits each.
pub type WinsizeBytes = [u8; 8];

fn tty_ioctl_int_get(op: &'static str, fd: BorrowedFd<'_>, req: libc::c_ulong) -> Result<i32> {
    let mut v: libc::c_int = 0;
    // SAFETY: `req` is a tty ioctl that writes one int to the pointer, which points to `v`.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), req as _, &mut v as *mut libc::c_int) };
    check(op, 0, r as libc::c_long)?;
    Ok(v)
}

fn tty_ioctl_int_set(
    op: &'static str,
    fd: BorrowedFd<'_>,
    req: libc::c_ulong,
    v: i32,
) -> Result<()> {
    let v: libc::c_int = v;
    // SAFETY: `req` is a tty ioctl that reads one int from the pointer, which points to `v`.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), req as _, &v as *const libc::c_int) };
    check(op, 0, r as libc::c_long)?;
    Ok(())
}

/// The index N of the pty whose master is `fd` (`TIOCGPTN`): its slave is `/dev/pts/N`.
pub fn pty_number(fd: BorrowedFd<'_>) -> Result<u32> {
    Ok(tty_ioctl_int_get("ioctl(TIOCGPTN)", fd, libc::TIOCGPTN as _)? as u32)
}

/// Whether the slave of pty master `fd` is locked (`TIOCGPTLCK`): it cannot be opened then.
pub fn pty_locked(fd: BorrowedFd<'_>) -> Result<bool> {
    Ok(tty_ioctl_int_get("ioctl(TIOCGPTLCK)", fd, libc::TIOCGPTLCK as _)? != 0)
}

/// Locks or unlocks the slave of pty master `fd` (`TIOCSPTLCK`).
pub fn set_pty_locked(fd: BorrowedFd<'_>, locked: bool) -> Result<()> {
    tty_ioctl_int_set(
        "ioctl(TIOCSPTLCK)",
        fd,
        libc::TIOCSPTLCK as _,
        locked as i32,
    )
}

/// Whether pty master `fd` is in packet mode (`TIOCGPKT`).
pub fn pty_packet(fd: BorrowedFd<'_>) -> Result<bool> {
    Ok(tty_ioctl_int_get("ioctl(TIOCGPKT)", fd, libc::TIOCGPKT as _)? != 0)
}

/// Turns packet mode of pty master `fd` on or off (`TIOCPKT`).
pub fn set_pty_packet(fd: BorrowedFd<'_>, packet: bool) -> Result<()> {
    tty_ioctl_int_set("ioctl(TIOCPKT)", fd, libc::TIOCPKT as _, packet as i32)
}

/// The termios of the terminal `fd` (`TCGETS`; on a pty master, the pair's).
pub fn tcgets(fd: BorrowedFd<'_>) -> Result<TermiosBytes> {
    let mut t: TermiosBytes = [0; 36];
    // SAFETY: TCGETS writes one 36-byte kernel `struct termios` to the pointer, which points
    // to a buffer of that size.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TCGETS as _, t.as_mut_ptr()) };
    check("ioctl(TCGETS)", 0, r as libc::c_long)?;
    Ok(t)
}

/// Sets the termios of the terminal `fd` at once (`TCSETS`).
pub fn tcsets(fd: BorrowedFd<'_>, t: &TermiosBytes) -> Result<()> {
    // SAFETY: TCSETS reads one 36-byte kernel `struct termios` from the pointer, which points
    // to a buffer of that size.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TCSETS as _, t.as_ptr()) };
    check("ioctl(TCSETS)", 0, r as libc::c_long)?;
    Ok(())
}

/// The window size of the terminal `fd` (`TIOCGWINSZ`).
pub fn get_winsize(fd: BorrowedFd<'_>) -> Result<WinsizeBytes> {
    let mut w: WinsizeBytes = [0; 8];
    // SAFETY: TIOCGWINSZ writes one 8-byte `struct winsize` to the pointer, which points to a
    // buffer of that size.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ as _, w.as_mut_ptr()) };
    check("ioctl(TIOCGWINSZ)", 0, r as libc::c_long)?;
    Ok(w)
}

/// Sets the window size of the terminal `fd` (`TIOCSWINSZ`).
pub fn set_winsize(fd: BorrowedFd<'_>, w: &WinsizeBytes) -> Result<()> {
    // SAFETY: TIOCSWINSZ reads one 8-byte `struct winsize` from the pointer, which points to a
    // buffer of that size.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ as _, w.as_ptr()) };
    check("ioctl(TIOCSWINSZ)", 0, r as libc::c_long)?;
    Ok(())
}

/// Forks this process to carry on work after the tool's own exit (psnc-restore's lazy server):
/// `Ok(true)` in the child, which is put in a session of its own (a terminal hang-up of the
/// tool's session does not kill it), `Ok(false)` in the parent.
///
/// Call it only while the process has a single thread: the child gets a copy of the calling
/// thread alone, and a lock another thread held at the fork would stay locked in it.
pub fn fork_detached() -> Result<bool> {
    // SAFETY: the caller guarantees a single-threaded process (see above), so the child's copy
    // of the address space holds no lock owned by a thread that does not exist in it; the
    // child only goes on with the caller's own code.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            let _ = nix::unistd::setsid();
            Ok(true)
        }
        Ok(nix::unistd::ForkResult::Parent { .. }) => Ok(false),
        Err(errno) => Err(PtraceError::Syscall {
            op: "fork",
            pid: 0,
            errno,
        }),
    }
}
