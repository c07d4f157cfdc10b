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
