//! Fork snapshot (`--pre-copy=fork`, and `auto` where write tracking cannot be armed): the
//! memory of each process is read from a copy-on-write copy of it, a child made by a remote
//! `clone` in the stop, after the process runs on. The stop then lasts about as long as
//! `fork()` of the process (copying its page tables) plus the rest of the capture, not as long
//! as the memory copy.
//!
//! ```text
//!  stop      Snapshots::take       per process: clone(0) in its leader with PTRACE_O_TRACECLONE:
//!                                  the child is attached to the tool and stopped before its
//!                                  first instruction; it never runs
//!            collect               everything as in a plain stop, but the pages of private
//!                                  memory are planned, not read (split_plan); those of VMAs a
//!                                  child does not get (MADV_DONTFORK) or gets as zeros
//!                                  (MADV_WIPEONFORK), and all shared memory, are read now
//!  running   the planned pages     read from the snapshot with process_vm_readv
//!            Snapshots::reap       the snapshots killed; each parent stopped a moment (its
//!                                  leader alone) for a remote wait4(__WALL), which reaps the
//!                                  child it never knew of (no exit signal: no SIGCHLD either)
//! ```
//!
//! While the copy runs, each process has one more child (in `/proc/PID/task/*/children`, and a
//! `waitpid(-1, __WALL)` of its own could reap it), the copy holds the process's descriptors
//! (a pipe's reader sees no end of file from it meanwhile), and pages the process writes are
//! copied by the kernel for it. Deleted files still open are stored after the pages, while the
//! process runs, like the executable and libraries (a deleted file the process writes during
//! the copy may be stored newer than its memory).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use psnc_format::model::{vm_flags, Vma};
use psnc_ptrace::{OnSignal, Options, RemoteSyscaller, Snapshot, Tracee};

use crate::error::{CaptureError, Result};
use crate::memory::{PagePlan, PageRange};
use crate::procfs::PAGE_SIZE;
use crate::stop::FrozenTree;

/// The snapshots of a stopped tree, by the PID of the process each copies.
#[derive(Debug, Default)]
pub struct Snapshots {
    by_pid: HashMap<i32, Snapshot>,
    /// Processes without one (the clone failed), with the reason: read while stopped.
    pub missing: Vec<(i32, String)>,
}

impl Snapshots {
    /// A snapshot of every process of `tree` (stopped), made in its leader; the threads are
    /// parked again afterwards.
    pub fn take(tree: &mut FrozenTree) -> Result<Snapshots> {
        let mut s = Snapshots::default();
        for f in tree.processes().iter_mut() {
            let pid = f.pid();
            let made = match f.threads().first_mut() {
                Some(leader) => RemoteSyscaller::find(leader).and_then(|mut sc| {
                    let snap = sc.fork_snapshot();
                    let finished = sc.finish();
                    let snap = snap?;
                    finished.map(|()| snap)
                }),
                None => {
                    s.missing.push((pid, "no thread".into()));
                    continue;
                }
            };
            f.park()?;
            match made {
                Ok(snap) => {
                    s.by_pid.insert(pid, snap);
                }
                Err(e) => s.missing.push((pid, e.to_string())),
            }
        }
        Ok(s)
    }

    /// Whether some process has a snapshot.
    pub fn any(&self) -> bool {
        !self.by_pid.is_empty()
    }

    /// The snapshot of process `pid`, if it has one.
    pub fn of(&self, pid: i32) -> Option<i32> {
        self.by_pid.get(&pid).map(Snapshot::pid)
    }

    /// Kills the snapshots and reaps each through its parent (a moment's stop of the parent's
    /// leader for a remote `wait4`). Returns the longest of those stops. Best effort: a parent
    /// that is gone needs no reaping; one that cannot be stopped keeps a zombie child until it
    /// waits for it.
    pub fn reap(self) -> Duration {
        let mut longest = Duration::ZERO;
        for (parent, snap) in self.by_pid {
            let child = snap.pid();
            drop(snap);
            let started = Instant::now();
            if let Ok(mut leader) = Tracee::seize(parent, Options::empty()) {
                if leader.stop(OnSignal::Hold).is_ok() {
                    if let Ok(mut sc) = RemoteSyscaller::find(&mut leader) {
                        let flags = (libc::WNOHANG | libc::__WALL) as u32 as u64;
                        let _ =
                            sc.syscall_raw(psnc_ptrace::Sysno::Wait4, &[child as u64, 0, flags, 0]);
                        let _ = sc.finish();
                    }
                }
                let _ = leader.detach();
            }
            longest = longest.max(started.elapsed());
        }
        longest
    }

    /// Why some processes have no snapshot, as for the pre-copy's `untracked`.
    pub fn missing_reason(&self) -> Option<String> {
        (!self.missing.is_empty()).then(|| {
            self.missing
                .iter()
                .map(|(pid, why)| format!("PID {pid}: {why}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }
}

/// Splits `plan` into what must be read now, while stopped (pages of VMAs the snapshot does
/// not have as they are: `MADV_DONTFORK`, `MADV_WIPEONFORK`), and what the snapshot gives.
pub fn split_plan(plan: &PagePlan, vmas: &[Vma]) -> (PagePlan, PagePlan) {
    let not_copied = vm_flags::DONTFORK | vm_flags::WIPEONFORK;
    let mut now = PagePlan::default();
    let mut later = PagePlan::default();
    for r in &plan.ranges {
        let end = r.end();
        let mut at = r.start;
        let mut i = vmas.partition_point(|v| v.end <= at);
        while at < end {
            let (v_end, stopped) = match vmas.get(i).filter(|v| v.start <= at) {
                Some(v) => (v.end.min(end), v.vm_flags & not_copied != 0),
                // Not in any VMA (cannot happen for a plan of the same maps): read it now.
                None => (end, true),
            };
            let piece = PageRange {
                start: at,
                pages: (v_end - at) / PAGE_SIZE,
                readable: r.readable,
            };
            if stopped {
                now.ranges.push(piece);
            } else {
                later.ranges.push(piece);
            }
            at = v_end;
            i += 1;
        }
    }
    (now, later)
}

/// The error of a capture whose snapshot could not be read.
pub fn read_error(pid: i32, snapshot: i32, e: CaptureError) -> CaptureError {
    CaptureError::PreCopy {
        pid,
        why: format!("reading the fork snapshot {snapshot}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vma(start: u64, end: u64, flags: u32) -> Vma {
        Vma {
            start,
            end,
            vm_flags: flags,
            ..Default::default()
        }
    }

    #[test]
    fn pages_a_fork_does_not_copy_are_read_in_the_stop() {
        let p = PAGE_SIZE;
        let vmas = [
            vma(0, 4 * p, 0),
            vma(4 * p, 6 * p, vm_flags::WIPEONFORK),
            vma(6 * p, 8 * p, vm_flags::DONTFORK),
            vma(8 * p, 9 * p, 0),
        ];
        let plan = PagePlan {
            ranges: vec![
                PageRange {
                    start: p,
                    pages: 6,
                    readable: true,
                },
                PageRange {
                    start: 8 * p,
                    pages: 1,
                    readable: true,
                },
            ],
        };
        let (now, later) = split_plan(&plan, &vmas);
        let span = |pl: &PagePlan| -> Vec<(u64, u64)> {
            pl.ranges.iter().map(|r| (r.start / p, r.pages)).collect()
        };
        assert_eq!(span(&now), vec![(4, 2), (6, 1)]);
        assert_eq!(span(&later), vec![(1, 3), (8, 1)]);
    }
}
