//! The process tree: which processes a capture takes, the checks on each one before it is
//! seized, and what the processes of the tree share.
//!
//! `psnc-capture PID` takes PID and every descendant. [`crate::stop::FrozenTree`] seizes them
//! parents first: once a process is stopped it can fork no more, so the list of its children
//! (`/proc/PID/task/TID/children` of each of its threads, read after its last thread stopped) is
//! final. A child that exits before it is seized is gone and not captured; one that already exited
//! and waits for its parent (a zombie) is recorded with its exit status ([`crate::zombies`]),
//! and nothing below it is walked (its children were reparented).
//!
//! The root's own parent, process group and session may lie outside the tree (the shell that
//! started it); every other process's parent is in the tree by construction (an orphan reparented
//! to a subreaper outside is no longer a descendant, so it is not part of the capture).
//!
//! What the processes share:
//! - pipes: one pipe per inode across the tree ([`link_pipes`]): both ends where they were, the
//!   buffered bytes stored once (with the first process, at its lowest fd of that pipe), and
//!   `external` only when no process of the image holds the other end; a FIFO's bytes likewise
//!   only with the first process that holds it ([`link_fifos`]);
//! - open file descriptions shared between processes (across fork) or between fds of one process
//!   (`dup`, `2>&1`), of every kind: grouped over the whole tree by [`crate::fds::shares`]
//!   (`kcmp(KCMP_FILE)`) and recorded once each, so that restore opens each description once;
//! - shared anonymous memory is refused in any process already ([`crate::memory`]).

use std::collections::{HashMap, HashSet};

use psnc_format::model::{FdKind, Process};

use crate::error::{CaptureError, Result};
use crate::procfs::ProcDir;

/// The children of every thread `tids` of process `pid`, in the order the kernel lists them.
pub fn children(pid: i32, tids: &[i32]) -> Result<Vec<i32>> {
    let dir = ProcDir::new(pid);
    let mut out = Vec::new();
    for &tid in tids {
        let name = format!("task/{tid}/children");
        let text = dir.read_string(&name)?;
        for word in text.split_whitespace() {
            let child = word
                .parse::<i32>()
                .map_err(|_| CaptureError::parse(dir.path(&name), word))?;
            if !out.contains(&child) {
                out.push(child);
            }
        }
    }
    Ok(out)
}

/// The PID namespace of `pid` (the `pid:[INODE]` link of `/proc/PID/ns/pid`).
fn pid_namespace(pid: i32) -> Result<String> {
    ProcDir::new(pid).read_link("ns/pid")
}

/// Refuses a process the tool cannot see with the same PID as the kernel shows it to the
/// process itself: one in another PID namespace than the tool's.
pub fn check_namespace(pid: i32) -> Result<()> {
    let ours = pid_namespace(std::process::id() as i32)?;
    let theirs = pid_namespace(pid)?;
    if theirs != ours {
        return Err(CaptureError::OtherPidNamespace { pid, theirs, ours });
    }
    Ok(())
}

/// Checks live child `pid` of `ppid` before it is seized (zombies are told apart before, by
/// [`crate::zombies::child_state`]): in the tool's PID namespace, a plain fork child (exit
/// signal SIGCHLD), and everything [`crate::preflight`] checks.
pub fn admit_child(pid: i32, ppid: i32) -> Result<()> {
    let stat = ProcDir::new(pid).stat()?;
    check_namespace(pid)?;
    if stat.exit_signal != libc::SIGCHLD {
        return Err(CaptureError::Unsupported {
            pid,
            what: format!("child of PID {ppid}"),
            kind: format!(
                "a process whose exit signal is {} instead of SIGCHLD (clone without SIGCHLD)",
                stat.exit_signal
            ),
        });
    }
    crate::preflight(pid)
}

/// Joins the ends of each pipe across the processes of the tree: a pipe is `external` only
/// when no process of the image holds its other end, and its buffered bytes (each process's
/// collection copied them once for itself) are kept only at the first process's lowest fd.
pub fn link_pipes(processes: &mut [Process]) {
    // Per inode: (a read end in the tree, a write end in the tree).
    let mut ends: HashMap<u64, (bool, bool)> = HashMap::new();
    for p in processes.iter() {
        for fd in &p.fds {
            if let FdKind::Pipe(pe) = &fd.kind {
                let e = ends.entry(pe.ino).or_default();
                if pe.write_end {
                    e.1 = true;
                } else {
                    e.0 = true;
                }
            }
        }
    }
    // Inodes whose bytes a process before this one already holds.
    let mut stored: HashSet<u64> = HashSet::new();
    for p in processes.iter_mut() {
        let mut mine: Vec<u64> = Vec::new();
        for fd in &mut p.fds {
            if let FdKind::Pipe(pe) = &mut fd.kind {
                let (r, w) = ends.get(&pe.ino).copied().unwrap_or_default();
                pe.external = !(r && w);
                if stored.contains(&pe.ino) {
                    pe.buffered.clear();
                } else if !mine.contains(&pe.ino) {
                    mine.push(pe.ino);
                }
            }
        }
        stored.extend(mine);
    }
}

/// Keeps the bytes buffered in a FIFO that several processes of the tree hold (a reader and a
/// writer, each with its own open) only in the first of them: each process's collection copied
/// them for itself, and restore puts back the bytes of every FIFO fd it reopens.
pub fn link_fifos(processes: &mut [Process]) {
    let mut stored: HashSet<String> = HashSet::new();
    for p in processes.iter_mut() {
        let mut mine: Vec<String> = Vec::new();
        for fd in &mut p.fds {
            if let FdKind::Fifo { path, buffered } = &mut fd.kind {
                if stored.contains(path.as_str()) {
                    buffered.clear();
                } else if !mine.contains(path) {
                    mine.push(path.clone());
                }
            }
        }
        stored.extend(mine);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use psnc_format::model::{Fd, PipeEnd};

    fn pipe(fd: i32, ino: u64, write_end: bool, bytes: &[u8]) -> Fd {
        Fd {
            fd,
            flags: 0,
            cloexec: false,
            pos: 0,
            kind: FdKind::Pipe(PipeEnd {
                ino,
                write_end,
                buffered: bytes.to_vec(),
                external: true,
                ..Default::default()
            }),
        }
    }

    fn end(p: &Process, i: usize) -> &PipeEnd {
        match &p.fds[i].kind {
            FdKind::Pipe(pe) => pe,
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_pipe_across_two_processes_is_internal_with_its_bytes_once() {
        let parent = Process {
            pid: 10,
            fds: vec![pipe(3, 7, true, b"abc"), pipe(4, 8, false, b"")],
            ..Default::default()
        };
        let child = Process {
            pid: 11,
            ppid: 10,
            fds: vec![pipe(3, 7, false, b"abc"), pipe(5, 9, false, b"zz")],
            ..Default::default()
        };
        let mut ps = vec![parent, child];
        link_pipes(&mut ps);
        assert!(!end(&ps[0], 0).external);
        assert_eq!(end(&ps[0], 0).buffered, b"abc");
        assert!(!end(&ps[1], 0).external);
        assert!(end(&ps[1], 0).buffered.is_empty());
        // Only a read end in the tree: external, bytes kept.
        assert!(end(&ps[0], 1).external);
        assert!(end(&ps[1], 1).external);
        assert_eq!(end(&ps[1], 1).buffered, b"zz");
    }

    #[test]
    fn a_fifo_across_two_processes_keeps_its_bytes_once() {
        let fifo = |fd: i32, bytes: &[u8]| Fd {
            fd,
            flags: 0,
            cloexec: false,
            pos: 0,
            kind: FdKind::Fifo {
                path: "/tmp/f".into(),
                buffered: bytes.to_vec(),
            },
        };
        let mut ps = vec![
            Process {
                pid: 10,
                fds: vec![fifo(3, b"ab")],
                ..Default::default()
            },
            Process {
                pid: 11,
                fds: vec![fifo(4, b"ab")],
                ..Default::default()
            },
        ];
        link_fifos(&mut ps);
        let bytes = |p: &Process| match &p.fds[0].kind {
            FdKind::Fifo { buffered, .. } => buffered.clone(),
            _ => unreachable!(),
        };
        assert_eq!(bytes(&ps[0]), b"ab");
        assert!(bytes(&ps[1]).is_empty());
    }

    #[test]
    fn own_children_are_listed() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let me = std::process::id() as i32;
        // This thread forked it; the other test threads come and go (reading the children of
        // one that just exited would fail), so only this one is asked.
        let tids = [nix::unistd::gettid().as_raw()];
        let kids = children(me, &tids).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(kids.contains(&(child.id() as i32)), "{kids:?}");
    }
}
