//! System V shared memory, from the tool itself: `shmctl(IPC_STAT)` of a segment a target
//! attaches, and at restore creating a segment with a chosen identifier (`shm_next_id`), setting
//! its owner and mode, filling it through an attachment of the tool's own, and removing it.
//!
//! The tool must be in the target's IPC namespace: a `shmid` names a segment of the caller's.

use std::io::Write;

use nix::errno::Errno;

use crate::error::{PtraceError, Result};

/// `SHM_DEST` in `shm_perm.mode`: marked for removal, gone at its last detach.
pub const SHM_DEST: u32 = 0o1000;
/// `SHM_LOCKED` in `shm_perm.mode`: locked in memory (`shmctl(SHM_LOCK)`).
pub const SHM_LOCKED: u32 = 0o2000;
/// `shmat` flag: attach read-only.
pub const SHM_RDONLY: i32 = 0o10000;
/// `shmat` flag: attach executable.
pub const SHM_EXEC: i32 = 0o100000;
/// Where the identifier of the next IPC object of the namespace is chosen (`-1`: the kernel's
/// choice). Writing it needs `CAP_CHECKPOINT_RESTORE` or `CAP_SYS_ADMIN` over the namespace.
pub const SHM_NEXT_ID: &str = "/proc/sys/kernel/shm_next_id";

fn err(op: &'static str, shmid: i32) -> PtraceError {
    PtraceError::Syscall {
        op,
        pid: shmid,
        errno: Errno::last(),
    }
}

/// What `shmctl(IPC_STAT)` says of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShmStat {
    /// Its key (`IPC_PRIVATE`, 0, once marked for removal).
    pub key: i32,
    /// `shm_perm.mode`: the permission bits with [`SHM_DEST`] and [`SHM_LOCKED`].
    pub mode: u32,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Creator uid.
    pub cuid: u32,
    /// Creator gid.
    pub cgid: u32,
    /// Its size in bytes as created.
    pub size: u64,
    /// The number of VMAs attaching it, in every process.
    pub nattch: u64,
}

/// `shmctl(shmid, IPC_STAT)`. Errors name the segment by its id (in the `pid` field).
pub fn stat(shmid: i32) -> Result<ShmStat> {
    // SAFETY: shmid_ds is plain data; all zeros is a valid value for it.
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: IPC_STAT writes one shmid_ds to the pointer, which points to one.
    let r = unsafe { libc::shmctl(shmid, libc::IPC_STAT, &mut ds) };
    if r < 0 {
        return Err(err("shmctl(IPC_STAT)", shmid));
    }
    Ok(ShmStat {
        key: ds.shm_perm.__key,
        mode: u32::from(ds.shm_perm.mode),
        uid: ds.shm_perm.uid,
        gid: ds.shm_perm.gid,
        cuid: ds.shm_perm.cuid,
        cgid: ds.shm_perm.cgid,
        size: ds.shm_segsz as u64,
        nattch: ds.shm_nattch as u64,
    })
}

/// `shmget(key, size, flags)`: the identifier of the segment found or created.
pub fn get(key: i32, size: u64, flags: i32) -> Result<i32> {
    // SAFETY: shmget takes integers and touches no memory of ours.
    let r = unsafe { libc::shmget(key, size as libc::size_t, flags) };
    if r < 0 {
        return Err(err("shmget", key));
    }
    Ok(r)
}

/// Creates a segment whose identifier is `shmid`, by writing [`SHM_NEXT_ID`] first (the kernel
/// resets it to -1 when it uses it). `key` 0 is `IPC_PRIVATE`; `mode` the permission bits.
/// Fails with `ENOSPC` when the identifier's slot is taken, and with `EADDRINUSE` (this
/// function's own answer, after removing what it made) when another process created an IPC
/// object in between and took the identifier.
pub fn create_with_id(shmid: i32, key: i32, size: u64, mode: u32) -> Result<()> {
    let next = |v: i32| -> Result<()> {
        std::fs::OpenOptions::new()
            .write(true)
            .open(SHM_NEXT_ID)
            .and_then(|mut f| f.write_all(v.to_string().as_bytes()))
            .map_err(|e| PtraceError::Syscall {
                op: "write(/proc/sys/kernel/shm_next_id)",
                pid: shmid,
                errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
            })
    };
    next(shmid)?;
    let flags = libc::IPC_CREAT | libc::IPC_EXCL | (mode & 0o777) as i32;
    let got = get(key, size, flags);
    // Left set after a failure, the next IPC object anyone creates would take the id.
    let _ = next(-1);
    let got = got?;
    if got != shmid {
        let _ = remove(got);
        return Err(PtraceError::Syscall {
            op: "shmget with shm_next_id",
            pid: shmid,
            errno: Errno::EADDRINUSE,
        });
    }
    Ok(())
}

/// `shmctl(IPC_SET)`: owner, group and permission bits.
pub fn set_owner(shmid: i32, uid: u32, gid: u32, mode: u32) -> Result<()> {
    // SAFETY: shmid_ds is plain data; all zeros is a valid value for it.
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    ds.shm_perm.uid = uid;
    ds.shm_perm.gid = gid;
    ds.shm_perm.mode = (mode & 0o777) as libc::c_ushort;
    // SAFETY: IPC_SET reads uid, gid and mode from the shmid_ds the pointer points to.
    let r = unsafe { libc::shmctl(shmid, libc::IPC_SET, &mut ds) };
    if r < 0 {
        return Err(err("shmctl(IPC_SET)", shmid));
    }
    Ok(())
}

/// `shmctl(IPC_RMID)`: gone now, or at its last detach when attached.
pub fn remove(shmid: i32) -> Result<()> {
    // SAFETY: IPC_RMID ignores the buffer argument.
    let r = unsafe { libc::shmctl(shmid, libc::IPC_RMID, std::ptr::null_mut()) };
    if r < 0 {
        return Err(err("shmctl(IPC_RMID)", shmid));
    }
    Ok(())
}

/// `shmctl(SHM_LOCK)`: its pages stay in memory.
pub fn lock(shmid: i32) -> Result<()> {
    // SAFETY: SHM_LOCK ignores the buffer argument.
    let r = unsafe { libc::shmctl(shmid, libc::SHM_LOCK, std::ptr::null_mut()) };
    if r < 0 {
        return Err(err("shmctl(SHM_LOCK)", shmid));
    }
    Ok(())
}

/// A segment attached in this process, detached on drop.
#[derive(Debug)]
pub struct Attached {
    addr: *mut u8,
    len: usize,
}

impl Attached {
    /// Attaches segment `shmid` of `len` bytes (its size rounded up to a page: what `shmat`
    /// maps) wherever the kernel chooses, read-only or read-write.
    pub fn new(shmid: i32, len: u64, read_only: bool) -> Result<Attached> {
        let flags = if read_only { SHM_RDONLY } else { 0 };
        // SAFETY: shmat with a null address maps the segment where nothing of ours is mapped.
        let p = unsafe { libc::shmat(shmid, std::ptr::null(), flags) };
        if p as isize == -1 {
            return Err(err("shmat", shmid));
        }
        Ok(Attached {
            addr: p.cast(),
            len: len as usize,
        })
    }

    /// Its bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `addr` is the start of a live attachment of at least `len` readable bytes;
        // other processes may write them meanwhile, which for plain bytes is no more than
        // seeing them change.
        unsafe { std::slice::from_raw_parts(self.addr, self.len) }
    }

    /// Copies `bytes` to offset `at` of a read-write attachment; `EINVAL` when they do not lie
    /// inside it.
    pub fn write_at(&mut self, at: u64, bytes: &[u8]) -> Result<()> {
        let at = at as usize;
        if !at.checked_add(bytes.len()).is_some_and(|e| e <= self.len) {
            return Err(PtraceError::Syscall {
                op: "writing a shm attachment",
                pid: 0,
                errno: Errno::EINVAL,
            });
        }
        // SAFETY: the range was checked to lie inside the attachment, mapped read-write by
        // `new(.., false)` (a read-only one faults, which the caller rules out).
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.addr.add(at), bytes.len()) };
        Ok(())
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        // SAFETY: `addr` was returned by shmat and is detached once, here.
        unsafe { libc::shmdt(self.addr.cast()) };
    }
}
