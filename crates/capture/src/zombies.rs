//! Zombies: children of the tree that exited and that their (stopped) parent has not reaped.
//!
//! A zombie has nothing left to capture but its ids and its exit status; the image keeps them
//! (section `zombies`) so that restore can recreate it and the parent's `wait` still gets the
//! status, and so that a process group it leads still exists for the live members. The status
//! cannot be read with `wait` (that would reap it, and only the parent may): `/proc/PID/stat`
//! field 52 (`exit_code`, Linux 3.5+) holds it in `wait` form, readable by a tracer-capable
//! reader, and final once the task is a zombie. The parent is stopped while the tree is captured,
//! so the zombie stays what it was until the capture detaches or kills the tree.
//!
//! A zombie's children were reparented when it exited, so they are not its children any more:
//! the tree walk never looks below it. A thread-group leader that exited while other threads of
//! its process run is not a zombie (the process lives on); it is refused
//! ([`CaptureError::ZombieInTree`]).

use psnc_format::model::{ExitStatus, Zombie};

use crate::error::{CaptureError, Result};
use crate::procfs::ProcDir;

/// `PF_EXITING` in the `flags` field of `/proc/PID/stat`: the task is in `do_exit`.
const PF_EXITING: u64 = 0x4;

/// What a child of the tree is, as far as its exit goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildState {
    /// Alive (or exiting but not a zombie yet): seize it.
    Live,
    /// Exiting: in `do_exit`, not a zombie yet (the kernel refuses to seize it).
    Exiting,
    /// A zombie, with its record.
    Zombie(Zombie),
    /// Gone or being released (`X`): nothing to capture.
    Gone,
}

/// What child `pid` of `ppid` is now.
pub fn child_state(pid: i32, ppid: i32) -> Result<ChildState> {
    let dir = ProcDir::new(pid);
    let stat = match dir.stat() {
        Ok(s) => s,
        Err(_) if !dir.exists() => return Ok(ChildState::Gone),
        Err(e) => return Err(e),
    };
    match stat.state {
        'X' | 'x' => return Ok(ChildState::Gone),
        'Z' => {}
        _ if stat.flags & PF_EXITING != 0 => return Ok(ChildState::Exiting),
        _ => return Ok(ChildState::Live),
    }
    // The leader of a process whose other threads still run (or are still exiting) shows Z too.
    let tids = match dir.list_numeric("task") {
        Ok(t) => t,
        Err(_) if !dir.exists() => return Ok(ChildState::Gone),
        Err(e) => return Err(e),
    };
    if tids.iter().any(|&t| t != pid) {
        return Err(CaptureError::ZombieInTree { pid, ppid });
    }
    let status = ExitStatus::from_wait_status(stat.exit_code).ok_or_else(|| {
        CaptureError::parse(
            dir.path("stat"),
            format!(
                "field 52 (exit_code) {:#x} of a zombie is no exit status",
                stat.exit_code
            ),
        )
    })?;
    let id = |v: i32, what: &str| {
        u32::try_from(v)
            .map_err(|_| CaptureError::parse(dir.path("stat"), format!("{what} {v} of a zombie")))
    };
    Ok(ChildState::Zombie(Zombie {
        pid: id(pid, "pid")?,
        ppid: id(ppid, "ppid")?,
        pgid: id(stat.pgrp, "pgrp")?,
        sid: id(stat.session, "session")?,
        status,
    }))
}

/// Like [`child_state`], but waits (up to about a second) for a child in `do_exit` to become a
/// zombie or vanish: one that is half-way out can be neither seized nor recorded.
pub fn settled_child_state(pid: i32, ppid: i32) -> Result<ChildState> {
    for _ in 0..1000 {
        match child_state(pid, ppid)? {
            ChildState::Exiting => std::thread::sleep(std::time::Duration::from_millis(1)),
            s => return Ok(s),
        }
    }
    child_state(pid, ppid)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Forks a child that ends as `end` says and waits until it is a zombie; returns its PID.
    fn zombie_child(end: &str) -> i32 {
        let child = std::process::Command::new("sh")
            .args(["-c", end])
            .spawn()
            .expect("sh");
        let pid = child.id() as i32;
        // Not waited for: the Child is leaked on purpose, so that it stays a zombie.
        std::mem::forget(child);
        for _ in 0..2000 {
            if ProcDir::new(pid).stat().is_ok_and(|s| s.state == 'Z') {
                return pid;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        panic!("child {pid} did not become a zombie");
    }

    fn reap(pid: i32) {
        nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None).expect("waitpid");
    }

    #[test]
    fn a_zombie_is_recorded_with_its_status_and_a_live_child_is_live() {
        let me = std::process::id() as i32;
        let exited = zombie_child("exit 7");
        let killed = zombie_child("kill -TERM $$");
        let s = child_state(exited, me).unwrap();
        let ChildState::Zombie(z) = s else {
            panic!("{s:?}")
        };
        assert_eq!(z.status, ExitStatus::Exited(7));
        assert_eq!((z.pid, z.ppid), (exited as u32, me as u32));
        let me_stat = ProcDir::new(me).stat().unwrap();
        assert_eq!(
            (z.pgid, z.sid),
            (me_stat.pgrp as u32, me_stat.session as u32)
        );
        assert_eq!(
            child_state(killed, me).unwrap(),
            ChildState::Zombie(Zombie {
                pid: killed as u32,
                ppid: me as u32,
                pgid: me_stat.pgrp as u32,
                sid: me_stat.session as u32,
                status: ExitStatus::Killed {
                    signal: libc::SIGTERM as u8,
                    core: false
                },
            })
        );
        reap(exited);
        reap(killed);
        assert_eq!(child_state(exited, me).unwrap(), ChildState::Gone);
        assert_eq!(child_state(me, 1).unwrap(), ChildState::Live);
    }
}
