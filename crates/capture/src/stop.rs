//! Holding the target still: every thread seized and in a ptrace-stop.
//!
//! [`Frozen::freeze`] uses `PTRACE_SEIZE` + `PTRACE_INTERRUPT`, never SIGSTOP, so the target's
//! job-control state and its parent see nothing. Threads are seized in rounds: list
//! `/proc/PID/task`, seize and interrupt every new thread, wait for the stops, and list again until
//! a round finds no new thread (a thread may create another between the listing and its stop)
//! and the kernel's `Threads:` count in `/proc/PID/status` equals the threads held (a listing can
//! miss a thread while others exit).
//! A stopped thread creates nothing, so a process converges in two or three rounds unless its
//! threads live shorter than one round (a thread that creates its successor and exits at once).
//! After [`max_seize_rounds`] listings that all found new threads the capture is refused with
//! [`CaptureError::ThreadsUnsettled`], every thread seized so far detached, the target untouched.
//!
//! Every exit path lets the target go: [`Frozen::thaw`] detaches every thread, and dropping a
//! `Frozen` (an error, a panic that unwinds) detaches them too. If the tool itself dies, the kernel
//! detaches its tracees. Signals a thread dequeues on the way to its stop are held by the ptrace
//! crate and given back at detach ([`OnSignal::Hold`]); capture stores them as pending.
//!
//! A later pre-copy capture only needs a different moment to call `freeze`; the interface stays.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::ptrace::Options;
use psnc_format::model::Zombie;
use psnc_ptrace::{OnSignal, PtraceError, Stop, Tracee};

use crate::error::{CaptureError, Result};
use crate::procfs::ProcDir;

/// How many listings of `/proc/PID/task` may find new threads before the capture gives up on a
/// process that keeps creating threads. The first listing always finds some (every thread is
/// new), so 2 is the smallest bound a process with a stable thread set passes.
pub const DEFAULT_SEIZE_ROUNDS: usize = 100;

/// Environment variable that overrides [`DEFAULT_SEIZE_ROUNDS`] (a positive number). Meant for
/// tests: on a fast machine a churning process converges within the default, and a test of the
/// refusal needs a bound it cannot meet.
pub const SEIZE_ROUNDS_ENV: &str = "PSNC_SEIZE_ROUNDS";

/// The bound on seize rounds: `$PSNC_SEIZE_ROUNDS` when it holds a positive number, else
/// [`DEFAULT_SEIZE_ROUNDS`].
pub fn max_seize_rounds() -> usize {
    std::env::var(SEIZE_ROUNDS_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(DEFAULT_SEIZE_ROUNDS)
}

/// A process whose every thread is seized and stopped.
#[derive(Debug)]
pub struct Frozen {
    pid: i32,
    /// The threads, the thread-group leader first, then by TID.
    threads: Vec<Tracee>,
    /// The stop each thread reported.
    stops: Vec<Stop>,
    since: Instant,
    /// How many listings of `/proc/PID/task` the seize took.
    rounds: usize,
}

/// Turns a ptrace error on thread `tid` of `pid` into a capture error, recognising the cases the
/// user can act on.
pub fn trace_error(pid: i32, tid: i32, what: &str, e: PtraceError) -> CaptureError {
    match &e {
        PtraceError::Ptrace {
            errno: Errno::EPERM,
            ..
        } => CaptureError::PermissionDenied {
            pid,
            what: what.to_string(),
        },
        PtraceError::Ptrace {
            errno: Errno::ESRCH,
            ..
        } if !ProcDir::new(pid).exists() => CaptureError::NoSuchProcess { pid },
        PtraceError::Exited { .. } | PtraceError::Killed { .. } if tid == pid => {
            CaptureError::NoSuchProcess { pid }
        }
        _ => CaptureError::Trace {
            pid,
            tid,
            what: what.to_string(),
            source: e,
        },
    }
}

/// Whether thread `tid` has exited or is in its exit (a zombie or dead in `/proc`), so that a
/// failed seize means "gone" rather than a real error.
fn thread_gone(proc_dir: &ProcDir, tid: i32) -> bool {
    match proc_dir.task(tid).stat() {
        Ok(stat) => matches!(stat.state, 'Z' | 'X' | 'x'),
        Err(_) => !proc_dir.task(tid).exists(),
    }
}

impl Frozen {
    /// Reaps `child`, a dead child of this (stopped) process, with a remote
    /// `wait4(child, NULL, WNOHANG | __WALL)` in its leader. Best effort: a child not dead yet,
    /// or reaped already, is left to whoever waits for it.
    fn reap_child(&mut self, child: i32) {
        let Some(leader) = self.threads.first_mut() else {
            return;
        };
        if let Ok(mut sc) = psnc_ptrace::RemoteSyscaller::find(leader) {
            let flags = (libc::WNOHANG | libc::__WALL) as u32 as u64;
            let _ = sc.syscall_raw(psnc_ptrace::Sysno::Wait4, &[child as u64, 0, flags, 0]);
            let _ = sc.finish();
        }
    }

    /// Seizes and stops every thread of `pid`, with the bound of [`max_seize_rounds`]. On error
    /// every thread seized so far is detached before returning.
    pub fn freeze(pid: i32) -> Result<Frozen> {
        Frozen::freeze_within(pid, max_seize_rounds())
    }

    /// Seizes and stops every thread of `pid`, giving up with
    /// [`CaptureError::ThreadsUnsettled`] when `max_rounds` listings of `/proc/PID/task` in a row
    /// found new threads. On error every thread seized so far is detached before returning.
    pub fn freeze_within(pid: i32, max_rounds: usize) -> Result<Frozen> {
        let proc_dir = ProcDir::new(pid);
        let since = Instant::now();
        let mut threads: Vec<Tracee> = Vec::new();
        let mut stops = Vec::new();
        // Every TID seized or found gone: a TID is tried once (the kernel does not reuse a TID
        // while the process lives on, apart from wrap-around, which a few rounds cannot reach).
        let mut seen: HashSet<i32> = HashSet::new();
        for round in 1..=max_rounds {
            let tids = proc_dir.list_numeric("task")?;
            let mut new: Vec<Tracee> = Vec::new();
            for tid in tids {
                if !seen.insert(tid) {
                    continue;
                }
                match Tracee::seize(tid, Options::empty()) {
                    Ok(mut t) => {
                        t.interrupt()
                            .map_err(|e| trace_error(pid, tid, "PTRACE_INTERRUPT", e))?;
                        new.push(t);
                    }
                    // A thread that exited between the listing and the seize (ESRCH), or is
                    // exiting (EPERM: the kernel refuses to attach to a task in its exit).
                    Err(PtraceError::Ptrace {
                        errno: Errno::ESRCH | Errno::EPERM,
                        ..
                    }) if tid != pid && thread_gone(&proc_dir, tid) => continue,
                    Err(e) => return Err(trace_error(pid, tid, "PTRACE_SEIZE", e)),
                }
            }
            if new.is_empty() {
                if threads.is_empty() {
                    return Err(CaptureError::NoSuchProcess { pid });
                }
                // A listing of `/proc/PID/task` can miss a live thread: the kernel's readdir
                // walks the thread list without a lock and stops early when the thread it stands
                // on is released meanwhile, which a process whose threads exit all the time makes
                // likely. The kernel's own count settles it: every live thread we do not hold
                // keeps `Threads:` above ours. A thread still in its exit counts too, for the
                // microseconds until it is released, so a mismatch is worth another round.
                if proc_dir.status()?.threads as usize != threads.len() {
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                }
                // Leader first, then by TID.
                let mut order: Vec<usize> = (0..threads.len()).collect();
                order.sort_by_key(|&i| (threads[i].tid() != pid, threads[i].tid()));
                let mut slots: Vec<Option<(Tracee, Stop)>> =
                    threads.into_iter().zip(stops).map(Some).collect();
                let (threads, stops) = order.into_iter().filter_map(|i| slots[i].take()).unzip();
                return Ok(Frozen {
                    pid,
                    threads,
                    stops,
                    since,
                    rounds: round,
                });
            }
            for mut t in new {
                let tid = t.tid();
                match t.wait_for_stop(OnSignal::Hold) {
                    Ok(stop) => {
                        threads.push(t);
                        stops.push(stop);
                    }
                    // A thread that exited before it stopped: gone, nothing to capture.
                    Err(PtraceError::Exited { .. } | PtraceError::Killed { .. }) if tid != pid => {}
                    Err(e) => return Err(trace_error(pid, tid, "waiting for the stop", e)),
                }
            }
        }
        // `threads` goes out of scope here: every seized thread is detached, held signals given
        // back, and the process runs on as before.
        Err(CaptureError::ThreadsUnsettled {
            pid,
            rounds: max_rounds,
        })
    }

    /// How many listings of `/proc/PID/task` the seize took (the last one found nothing new).
    pub fn rounds(&self) -> usize {
        self.rounds
    }

    /// The process.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The stopped threads, the thread-group leader first.
    pub fn threads(&mut self) -> &mut [Tracee] {
        &mut self.threads
    }

    /// The stop each thread reported, in the order of [`Frozen::threads`].
    pub fn stops(&self) -> &[Stop] {
        &self.stops
    }

    /// Puts every thread back into an interrupt stop after remote syscalls.
    ///
    /// The remote-syscall engine single-steps, so a thread ends up in the SIGTRAP
    /// signal-delivery-stop that reports the step. If the tool died there (SIGKILL, crash), the
    /// kernel would detach the thread and deliver that SIGTRAP, killing the target. From an
    /// interrupt stop (a `PTRACE_EVENT_STOP`) a dead tool leaves nothing to deliver. So: ask for
    /// an interrupt, resume with the SIGTRAP cancelled, and wait for the interrupt stop, which the
    /// thread reaches in the same signal path, before the kernel's syscall-restart logic runs.
    /// Threads already in an interrupt or group stop are left alone.
    pub fn park(&mut self) -> Result<()> {
        let pid = self.pid;
        for (t, stop) in self.threads.iter_mut().zip(self.stops.iter_mut()) {
            let tid = t.tid();
            if !matches!(t.current_stop(), Some(Stop::Signal(_))) {
                continue;
            }
            t.interrupt()
                .map_err(|e| trace_error(pid, tid, "PTRACE_INTERRUPT", e))?;
            t.cont(0)
                .map_err(|e| trace_error(pid, tid, "PTRACE_CONT", e))?;
            loop {
                match t
                    .wait_for_stop(OnSignal::Hold)
                    .map_err(|e| trace_error(pid, tid, "waiting for the stop", e))?
                {
                    // Another signal dequeued on the way: held, and on to the interrupt.
                    Stop::Signal(_) => t
                        .cont(0)
                        .map_err(|e| trace_error(pid, tid, "PTRACE_CONT", e))?,
                    s => {
                        *stop = s;
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// How long the target has been stopped so far.
    pub fn stopped_for(&self) -> Duration {
        self.since.elapsed()
    }

    /// Detaches every thread, letting the target run on exactly as before (held signals given
    /// back). Returns how long the target was stopped. Every thread is detached even if one
    /// fails; the first error is returned.
    pub fn thaw(self) -> Result<Duration> {
        let pid = self.pid;
        let since = self.since;
        let mut first = None;
        for t in self.threads {
            let tid = t.tid();
            if let Err(e) = t.detach() {
                first.get_or_insert(trace_error(pid, tid, "PTRACE_DETACH", e));
            }
        }
        let stopped = since.elapsed();
        match first {
            Some(e) => Err(e),
            None => Ok(stopped),
        }
    }

    /// Kills the process while it is still stopped (so it cannot change anything after the
    /// capture) and waits until every thread is gone. Returns how long it was stopped.
    pub fn kill(self) -> Result<Duration> {
        let pid = self.pid;
        let since = self.since;
        // One SIGKILL takes the group; kill_all reaps the leader last (its exit is reported
        // only after the rest of the group) and reads /proc once, not once per thread.
        psnc_ptrace::kill_all(self.threads).map_err(|e| trace_error(pid, pid, "SIGKILL", e))?;
        Ok(since.elapsed())
    }
}

/// Default bound on the number of processes of one captured tree: a tree that grows past it
/// while being seized (a fork bomb) is refused with [`CaptureError::TreeUnsettled`].
pub const DEFAULT_TREE_MAX: usize = 4096;

/// Environment variable that overrides [`DEFAULT_TREE_MAX`] (a positive number), for tests.
pub const TREE_MAX_ENV: &str = "PSNC_TREE_MAX";

/// The bound on the processes of a tree: `$PSNC_TREE_MAX` when it holds a positive number, else
/// [`DEFAULT_TREE_MAX`].
pub fn max_tree_processes() -> usize {
    std::env::var(TREE_MAX_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(DEFAULT_TREE_MAX)
}

/// Every process of a captured tree, each [`Frozen`]: the root first, parents before children.
///
/// Processes are seized parents first: a process whose every thread is stopped can fork no
/// more, so the children its threads list once it is stopped are all it has; each of them is
/// seized in turn (a child that exited in between is gone and left out, or, unreaped, recorded
/// as a zombie: [`crate::zombies`]). A last pass lists the children of every process again and
/// must find nothing new but zombies. Dropping the tree (any error)
/// detaches every process seized so far: a failed capture leaves the whole tree running.
#[derive(Debug)]
pub struct FrozenTree {
    procs: Vec<Frozen>,
    /// The zombie children of the tree's processes ([`crate::zombies`]), in the order found.
    zombies: Vec<Zombie>,
}

impl FrozenTree {
    /// Seizes `root` and, with `children`, every descendant, as the type doc says.
    pub fn freeze(root: i32, children: bool) -> Result<FrozenTree> {
        let mut tree = FrozenTree {
            procs: vec![Frozen::freeze(root)?],
            zombies: Vec::new(),
        };
        // Once stopped: /proc/PID/ns needs ptrace access, which the seize just proved.
        crate::tree::check_namespace(root)?;
        if !children {
            return Ok(tree);
        }
        let max = max_tree_processes();
        let mut seen: HashSet<i32> = HashSet::from([root]);
        let mut next = 0;
        while next < tree.procs.len() {
            let parent = tree.procs[next].pid();
            next += 1;
            let tids: Vec<i32> = tree.procs[next - 1]
                .threads
                .iter()
                .map(|t| t.tid())
                .collect();
            for child in crate::tree::children(parent, &tids)? {
                if !seen.insert(child) {
                    continue;
                }
                if tree.procs.len() >= max {
                    return Err(CaptureError::TreeUnsettled {
                        pid: root,
                        why: format!("it grew past {max} processes (${TREE_MAX_ENV})"),
                    });
                }
                use crate::zombies::{settled_child_state, ChildState};
                match settled_child_state(child, parent)? {
                    ChildState::Zombie(z) => {
                        tree.zombies.push(z);
                        continue;
                    }
                    ChildState::Gone => continue,
                    ChildState::Live | ChildState::Exiting => {}
                }
                match crate::tree::admit_child(child, parent).and_then(|()| Frozen::freeze(child)) {
                    Ok(f) => tree.procs.push(f),
                    // Exited (and reaped: its parent ignores SIGCHLD) before it was seized.
                    Err(CaptureError::NoSuchProcess { pid }) if pid == child => {}
                    // Exiting while it was checked or seized (the kernel refuses to attach to a
                    // task in its exit): a zombie now, or gone.
                    Err(e) => match settled_child_state(child, parent)? {
                        ChildState::Zombie(z) => tree.zombies.push(z),
                        ChildState::Gone => {}
                        ChildState::Live | ChildState::Exiting => return Err(e),
                    },
                }
            }
        }
        // Every process is stopped now; its children cannot change any more. Each one listed
        // must be in the tree: one that was skipped as gone but is a zombie now (it exited
        // between its seize and its stop) is recorded like any zombie.
        let mut known: HashSet<i32> = tree.procs.iter().map(|f| f.pid()).collect();
        known.extend(tree.zombies.iter().map(|z| z.pid as i32));
        let mut late = Vec::new();
        for f in &tree.procs {
            let tids: Vec<i32> = f.threads.iter().map(|t| t.tid()).collect();
            for c in crate::tree::children(f.pid(), &tids)? {
                if known.contains(&c) {
                    continue;
                }
                match crate::zombies::settled_child_state(c, f.pid())? {
                    crate::zombies::ChildState::Zombie(z) => late.push(z),
                    crate::zombies::ChildState::Gone => {}
                    _ => {
                        return Err(CaptureError::TreeUnsettled {
                            pid: root,
                            why: format!("PID {} has a child {c} that was not seized", f.pid()),
                        })
                    }
                }
            }
        }
        tree.zombies.extend(late);
        Ok(tree)
    }

    /// The zombies among the children of the tree's processes, in the order found.
    pub fn zombies(&self) -> &[Zombie] {
        &self.zombies
    }

    /// The processes, the root first, parents before children.
    pub fn processes(&mut self) -> &mut [Frozen] {
        &mut self.procs
    }

    /// How many processes the tree holds.
    pub fn len(&self) -> usize {
        self.procs.len()
    }

    /// Whether the tree is empty (never: it holds at least its root).
    pub fn is_empty(&self) -> bool {
        self.procs.is_empty()
    }

    /// The root.
    pub fn root(&self) -> i32 {
        self.procs[0].pid()
    }

    /// Total seize rounds of every process.
    pub fn rounds(&self) -> usize {
        self.procs.iter().map(|f| f.rounds).sum()
    }

    /// Threads of every process.
    pub fn threads(&self) -> usize {
        self.procs.iter().map(|f| f.threads.len()).sum()
    }

    /// Detaches every process (children first, so no parent runs while a child is still held);
    /// returns how long the root was stopped. Every process is detached even if one fails.
    pub fn thaw(self) -> Result<Duration> {
        let since = self.procs[0].since;
        let mut first = None;
        for f in self.procs.into_iter().rev() {
            if let Err(e) = f.thaw() {
                first.get_or_insert(e);
            }
        }
        match first {
            Some(e) => Err(e),
            None => Ok(since.elapsed()),
        }
    }

    /// Kills every process while still stopped, children first, and waits until the children
    /// and the zombies are gone from `/proc` (reaped by whoever inherits them once their parent
    /// is dead), so that their PIDs are free for a restore once this returns. Returns how long
    /// the root was stopped.
    ///
    /// A killed child stays a zombie until its parent waits for it, and once the parent is dead
    /// too, until whoever inherits it does (an init that reaps late keeps the PID taken for a
    /// second or more). So each child, and each zombie, is reaped by a remote `wait4` in its
    /// parent, which is still stopped (children are killed before their parents), as soon as
    /// it is dead; only what that misses is left to the wait for `/proc`.
    pub fn kill(self) -> Result<Duration> {
        let since = self.procs[0].since;
        let children: Vec<i32> = self.procs[1..]
            .iter()
            .map(|f| f.pid())
            .chain(self.zombies.iter().map(|z| z.pid as i32))
            .collect();
        let mut procs = self.procs;
        let parent = |procs: &[Frozen], pid: i32| {
            let ppid = ProcDir::new(pid).stat().ok()?.ppid;
            procs.iter().position(|f| f.pid() == ppid)
        };
        for z in &self.zombies {
            if let Some(p) = parent(&procs, z.pid as i32) {
                procs[p].reap_child(z.pid as i32);
            }
        }
        let mut first = None;
        // Parents come before children: from the end, every child dies before its parent.
        while let Some(f) = procs.pop() {
            let pid = f.pid();
            let p = parent(&procs, pid);
            if let Err(e) = f.kill() {
                first.get_or_insert(e);
            }
            if let Some(p) = p {
                procs[p].reap_child(pid);
            }
        }
        let stopped = since.elapsed();
        let deadline = Instant::now() + Duration::from_secs(5);
        while children.iter().any(|&c| ProcDir::new(c).exists()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        match first {
            Some(e) => Err(e),
            None => Ok(stopped),
        }
    }
}
