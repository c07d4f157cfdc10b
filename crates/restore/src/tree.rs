//! Process trees: every process of the image back with its PID, its parent, its process group
//! and its session, the pipes between them shared, and the whole tree released together.
//!
//! ```text
//!  check_tree ─► prepare (one pipe per inode) ─► root stub ─► fork each child from its parent's
//!  stub (clone3 set_tid, SIGCHLD; setsid at once for a session leader) ─► process groups
//!  (leaders, then members) ─► rebuild + finish every process ─► close the tool's ends ─► release
//! ```
//!
//! A child must be forked by its restored parent, so every process is created while all of them
//! are still stubs: the parent's stub runs `clone3` without `CLONE_VM`/`CLONE_THREAD`, with the
//! child's PID in `set_tid` and `SIGCHLD` as exit signal, from the stub's clone instruction. The
//! child, a copy of the stub (code, scratch area, all signals blocked, not single-stepped), runs on
//! into the stub's pause loop, where the restore seizes it and from then on drives it like any
//! task. That is why one restore region serves the whole tree ([`crate::checks::check_tree`]).
//!
//! Sessions and groups, in an order the kernel accepts: a session leader calls `setsid` right
//! after it is forked, before it forks its own children (which must be born into its session);
//! once every process exists, group leaders call `setpgid(0, 0)`, then members join their group.
//! The root's own group and session may lie outside the tree (the shell that started it): the
//! root then gets what a single process gets (a new session, or the restore tool's with
//! `--shell-job`), and the processes that shared them with the root follow it. A group or
//! session of any other process whose leader is not in the image is refused.
//!
//! Zombies (children that had exited unreaped) are forked like the other children, after
//! them, join their sessions and groups with them (a group a zombie leads exists before its
//! members join), and end with their status before any process is rebuilt
//! ([`crate::zombies`]); they are part of the tree checks too.
//!
//! Release: the root as a single process is released (a job-control stop cycle for a
//! multithreaded root, see [`crate::release_through_group_stop`]); every other process is
//! detached in the same tight loop, right before the root, without a stop cycle: a group stop of a
//! child would be reported to its (restored) parent as `CLD_STOPPED`/`CLD_CONTINUED`, which a
//! shell takes for a stopped job. With `--leave-stopped` every process is left in a job-control
//! stop.

use std::collections::BTreeMap;

use psnc_format::model::{Checkpoint, ExitStatus, Process};
use psnc_format::Image;
use psnc_ptrace::{ProcMem, Stop, Sysno, Tracee};

use crate::checks::{inherited_for, Plan};
use crate::error::{RestoreError, Result};
use crate::remote::Task;
use crate::stub::Stub;
use crate::{fds, files, spawn, Options, Restored};

/// Refuses trees the restore cannot rebuild: a process whose parent is not before it in the
/// image, two processes with one PID, mixed modes, sessions and groups whose leader is not in the
/// image (the root's own apart), and `--inherit-fd` arguments no process uses.
pub fn check_tree(ckpt: &Checkpoint, opts: &Options) -> Result<()> {
    let ps = &ckpt.processes;
    let root = &ps[0];
    let mut index: BTreeMap<u32, usize> = BTreeMap::new();
    for (i, p) in ps.iter().enumerate() {
        if index.insert(p.pid, i).is_some() {
            return Err(RestoreError::Inconsistent(format!(
                "the image lists process {} twice",
                p.pid
            )));
        }
        if i > 0 && !index.get(&p.ppid).is_some_and(|&j| j < i) {
            return Err(RestoreError::Inconsistent(format!(
                "process {} comes before its parent {} in the image, or its parent is not in it",
                p.pid, p.ppid
            )));
        }
        if p.arch != root.arch {
            return Err(RestoreError::Unsupported {
                what: format!(
                    "process {} ({:?}) in a tree of {:?} processes (a tree mixing modes)",
                    p.pid, p.arch, root.arch
                ),
            });
        }
    }
    // Zombies take part in sessions and groups like processes (a group may be led by one).
    let mut ids: Vec<Ids> = ps.iter().map(Ids::of_process).collect();
    for z in &ckpt.zombies {
        if !index.contains_key(&z.ppid) {
            return Err(RestoreError::Inconsistent(format!(
                "zombie {} has parent {}, which is not in the image",
                z.pid, z.ppid
            )));
        }
        if ps.iter().flat_map(|p| &p.threads).any(|t| t.tid == z.pid) {
            return Err(RestoreError::Inconsistent(format!(
                "zombie {} has the PID of a thread of the image",
                z.pid
            )));
        }
        ids.push(Ids {
            what: "zombie",
            pid: z.pid,
            ppid: z.ppid,
            pgid: z.pgid,
            sid: z.sid,
        });
    }
    let leaders: BTreeMap<u32, &Ids> = ids.iter().map(|i| (i.pid, i)).collect();
    for p in &ids[1..] {
        let parent = &ps[index[&p.ppid]];
        if p.sid == p.pid {
            if p.pgid != p.pid {
                return Err(RestoreError::Inconsistent(format!(
                    "{} {} leads session {} but is in process group {}",
                    p.what, p.pid, p.sid, p.pgid
                )));
            }
        } else if p.sid != parent.sid {
            return Err(RestoreError::Unsupported {
                what: format!(
                    "{} {} in session {}, which is neither its own nor its parent {}'s \
                     (session {}): its parent changed session after forking it",
                    p.what, p.pid, p.sid, p.ppid, parent.sid
                ),
            });
        }
        let follows_root = p.pgid == root.pgid && p.sid == root.sid;
        let leader = leaders.get(&p.pgid);
        let led = leader.is_some_and(|l| l.pgid == l.pid && l.sid == p.sid);
        if !(follows_root || led) {
            return Err(RestoreError::Unsupported {
                what: format!(
                    "{} {} in process group {}, whose leader is not in the image",
                    p.what, p.pid, p.pgid
                ),
            });
        }
    }
    for i in &opts.inherit_fds {
        let used = ps.iter().any(|p| {
            p.fds
                .iter()
                .any(|f| inherited_for(f.fd, &f.kind, std::slice::from_ref(i)).is_some())
        });
        if !used {
            return Err(RestoreError::InheritFd {
                arg: i.arg.clone(),
                why: "no fd of any process of the image matches it (give fd:M for the image's \
                      fd M, or the resource as the original's /proc/PID/fd link showed it, e.g. \
                      pipe:[1234])"
                    .into(),
            });
        }
    }
    Ok(())
}

/// The ids [`check_tree`] and [`build`] place a process or a zombie by.
struct Ids {
    /// `process` or `zombie`, for the refusals.
    what: &'static str,
    pid: u32,
    ppid: u32,
    pgid: u32,
    sid: u32,
}

impl Ids {
    fn of_process(p: &Process) -> Ids {
        Ids {
            what: "process",
            pid: p.pid,
            ppid: p.ppid,
            pgid: p.pgid,
            sid: p.sid,
        }
    }
}

/// Restores the tree of `image` as `plans` (one per process, from
/// [`crate::checks::check_tree`]) say. A failure kills every process created so far.
pub fn restore_tree(
    image: &Image,
    plans: &[Plan],
    opts: &Options,
    started: std::time::Instant,
    pages_checked: &mut dyn FnMut() -> Result<()>,
) -> Result<Restored> {
    let ckpt = image.checkpoint();
    let ps = &ckpt.processes;
    let segments = crate::sysv_shm::Segments::create(image)?;
    let mut replicas = files::Replicas::new(image);
    let mut pipes = fds::pipe::Pipes::default();
    let mut ptys = fds::tty::Ptys::new(ckpt);
    let mut descriptions = fds::shares::Descriptions::new(ckpt);
    let mut locals = Vec::with_capacity(plans.len());
    for plan in plans {
        locals.push(crate::prepare_shared(
            image,
            plan,
            &mut replicas,
            &mut pipes,
            &mut ptys,
            &mut descriptions,
        )?);
    }
    // Every TCP socket of the tree exists: their peers among them answer the window probes.
    std::mem::take(&mut pipes.tcp).release(ps[0].pid)?;
    // Only the taken-over ends may keep a pipe open once the tree runs, and only the
    // taken-over fds a shared description.
    drop(pipes);
    drop(ptys);
    drop(descriptions);

    let root = &ps[0];
    let (mut root_task, stub) = spawn::start_stub(
        Some(root.pid),
        root.arch,
        plans[0].region,
        !opts.shell_job,
        opts.verbose,
    )?;
    root_task.started = started;
    let mut tasks: Vec<Task> = vec![root_task];
    let notes: Vec<(u32, Vec<String>)> = ps
        .iter()
        .zip(&mut locals)
        .map(|(p, l)| (p.pid, std::mem::take(&mut l.notes)))
        .collect();
    let mut lazy = Vec::new();
    let built = build(&mut tasks, &stub, image, plans, &locals, opts, &mut lazy)
        .and_then(|others| pages_checked().map(|()| others))
        .and_then(|others| segments.commit().map(|()| others));
    drop(locals);
    drop(replicas);
    match built {
        Ok(others) => {
            if let Err(e) = crate::lazy::start_server(image, ps[0].pid, lazy, opts.verbose) {
                for t in tasks.into_iter().rev() {
                    t.kill();
                }
                return Err(e);
            }
            let restored = release(tasks, others, ps, opts)?;
            // Said once the tree exists, as for one process: what each fd reconnected to
            // nothing will see.
            for (plan, p) in plans.iter().zip(ps) {
                for e in &plan.external {
                    eprintln!("psnc-restore: process {}: {e}", p.pid);
                }
            }
            for (pid, lines) in &notes {
                for n in lines {
                    eprintln!("psnc-restore: process {pid}: {n}");
                }
            }
            for z in &ckpt.zombies {
                if let ExitStatus::Killed { signal, core: true } = z.status {
                    eprintln!(
                        "psnc-restore: zombie {}: its parent {} will see it killed by signal \
                         {signal} without the core-dump flag (a core cannot be recreated \
                         without writing one)",
                        z.pid, z.ppid
                    );
                }
            }
            Ok(restored)
        }
        Err(e) => {
            if let Some(t) = tasks.first() {
                t.log(|| format!("failed: {e}; killing the half-built tree"));
            }
            for t in tasks.into_iter().rev() {
                t.kill();
            }
            Err(e)
        }
    }
}

/// Creates every child (from its parent's stub), sets sessions and groups, then rebuilds and
/// finishes every process. Returns the other threads of each process (same order as `tasks`).
fn build(
    tasks: &mut Vec<Task>,
    stub: &Stub,
    image: &Image,
    plans: &[Plan],
    locals: &[crate::LocalFiles],
    opts: &Options,
    lazy: &mut Vec<crate::lazy::Handoff>,
) -> Result<Vec<Vec<Tracee>>> {
    let ckpt = image.checkpoint();
    let ps = &ckpt.processes;
    let index: BTreeMap<u32, usize> = ps.iter().enumerate().map(|(i, p)| (p.pid, i)).collect();
    // The process group each task is in now (a child starts in its parent's).
    let root_pgid = current_pgid(ps[0].pid)?;
    let mut pgids = vec![root_pgid];
    // The root's children inherit its controlling terminal too.
    fds::tty::take_early(&mut tasks[0], &ps[0], ckpt, &locals[0])?;
    for p in &ps[1..] {
        let parent = index[&p.ppid];
        let child = fork_child(&mut tasks[parent], stub, p.pid)?;
        tasks.push(child);
        let task = tasks
            .last_mut()
            .ok_or_else(|| RestoreError::Inconsistent(format!("process {} vanished", p.pid)))?;
        if p.sid == p.pid {
            task.call("starting its session", Sysno::Setsid, &[])?;
            fds::tty::take_early(task, p, ckpt, &locals[index[&p.pid]])?;
            pgids.push(p.pid);
        } else {
            pgids.push(pgids[parent]);
        }
    }
    // The zombies, forked like any child; they die once their sessions and groups exist.
    let mut zombies: Vec<Task> = Vec::with_capacity(ckpt.zombies.len());
    let made = make_zombies(tasks, &mut zombies, &mut pgids, stub, ckpt, &index)
        .and_then(|()| join_groups(tasks, &mut zombies, &mut pgids, ckpt, root_pgid))
        .and_then(|()| end_zombies(tasks, &mut zombies, ckpt, &index));
    if let Err(e) = made {
        for z in zombies {
            z.kill();
        }
        return Err(e);
    }

    // Children keep their parent-death signal: their parent is their restored parent.
    let child_opts = Options {
        keep_pdeathsig: true,
        ..opts.clone()
    };
    let mut others_all = Vec::with_capacity(ps.len());
    for (i, task) in tasks.iter_mut().enumerate() {
        let o = if i == 0 { opts } else { &child_opts };
        let mut others = Vec::new();
        let plan = opts.lazy.then(|| crate::lazy::Plan::of(&ps[i]));
        let mut uffd = None;
        let xsaves = crate::rebuild(
            task,
            stub,
            &mut others,
            image,
            &plans[i],
            &locals[i],
            o,
            plan.as_ref().map(|l| (l, &mut uffd)),
        )?;
        crate::finish(task, &mut others, &ps[i], &xsaves)?;
        if let (Some(uffd), Some(plan)) = (uffd, plan) {
            crate::lazy::register(&uffd, &plan, ps[i].pid)?;
            task.log(|| {
                format!(
                    "lazy: {} VMAs registered, {} pages left to the server",
                    plan.vmas.len(),
                    plan.pages()
                )
            });
            lazy.push(crate::lazy::Handoff {
                process: i,
                uffd,
                plan,
            });
        }
        others_all.push(others);
    }
    Ok(others_all)
}

/// Forks every zombie of `ckpt` from its parent's stub into `zombies` (their group in `pgids`
/// after the processes'); a zombie that led its session starts it at once, like a process.
fn make_zombies(
    tasks: &mut [Task],
    zombies: &mut Vec<Task>,
    pgids: &mut Vec<u32>,
    stub: &Stub,
    ckpt: &Checkpoint,
    index: &BTreeMap<u32, usize>,
) -> Result<()> {
    for (i, z) in ckpt.zombies.iter().enumerate() {
        let parent = index[&z.ppid];
        // Once per parent, before its first zombie.
        if !ckpt.zombies[..i].iter().any(|o| o.ppid == z.ppid) {
            crate::zombies::keep_zombies(&mut tasks[parent])?;
        }
        let mut task = fork_child(&mut tasks[parent], stub, z.pid)?;
        if z.sid == z.pid {
            if let Err(e) = task.call("starting its session", Sysno::Setsid, &[]) {
                task.kill();
                return Err(e);
            }
            pgids.push(z.pid);
        } else {
            pgids.push(pgids[parent]);
        }
        zombies.push(task);
    }
    Ok(())
}

/// Puts every process and zombie into its process group: leaders first, so that every
/// member's group exists when it joins. `pgids` holds the group each is in now: the processes,
/// then the zombies.
fn join_groups(
    tasks: &mut [Task],
    zombies: &mut [Task],
    pgids: &mut [u32],
    ckpt: &Checkpoint,
    root_pgid: u32,
) -> Result<()> {
    let ps = &ckpt.processes;
    let ids: Vec<(u32, u32, u32)> = ps
        .iter()
        .map(|p| (p.pid, p.pgid, p.sid))
        .chain(ckpt.zombies.iter().map(|z| (z.pid, z.pgid, z.sid)))
        .collect();
    let wanted: Vec<u32> = ids
        .iter()
        .map(|&(_, pgid, sid)| {
            if pgid == ps[0].pgid && sid == ps[0].sid {
                root_pgid
            } else {
                pgid
            }
        })
        .collect();
    let n = tasks.len();
    for leaders in [true, false] {
        for (i, &(pid, _, _)) in ids.iter().enumerate().skip(1) {
            if (wanted[i] == pid) != leaders || pgids[i] == wanted[i] {
                continue;
            }
            let target = if leaders { 0 } else { u64::from(wanted[i]) };
            let task = if i < n {
                &mut tasks[i]
            } else {
                &mut zombies[i - n]
            };
            task.call("joining its process group", Sysno::Setpgid, &[0, target])?;
            pgids[i] = wanted[i];
        }
    }
    Ok(())
}

/// Ends every zombie with its status ([`crate::zombies::end`]), then discards the `SIGCHLD`s
/// that queued for their parents (the image's pending signals are queued later).
fn end_zombies(
    tasks: &mut [Task],
    zombies: &mut Vec<Task>,
    ckpt: &Checkpoint,
    index: &BTreeMap<u32, usize>,
) -> Result<()> {
    // In order; `zombies` keeps the ones still to end, for the caller to kill on an error.
    for z in &ckpt.zombies {
        let mut task = zombies.remove(0);
        if let Err(e) = crate::zombies::end(&mut task, z) {
            task.kill();
            return Err(e);
        }
    }
    let mut parents: Vec<usize> = ckpt.zombies.iter().map(|z| index[&z.ppid]).collect();
    parents.sort_unstable();
    parents.dedup();
    for i in parents {
        crate::zombies::discard_sigchld(&mut tasks[i])?;
    }
    Ok(())
}

/// The process group of `pid` now, from `/proc/PID/stat`.
fn current_pgid(pid: u32) -> Result<u32> {
    let stat = psnc_proc::ProcDir::new(pid as i32)
        .stat()
        .map_err(|e| RestoreError::Io {
            what: "reading".into(),
            path: e.path().display().to_string(),
            source: e.into(),
        })?;
    Ok(stat.pgrp as u32)
}

/// Forks child `pid` from the stub of `parent` (a plain fork child: no flags, SIGCHLD) and
/// returns it as a task, seized and stopped in the stub's pause loop.
fn fork_child(parent: &mut Task, stub: &Stub, pid: u32) -> Result<Task> {
    let step = format!("forking child {pid}");
    let tracee =
        crate::threads::clone_seized(parent, stub, 0, libc::SIGCHLD as u64, pid, step.clone())?;
    let mem = match ProcMem::open(pid as i32, true) {
        Ok(m) => m,
        Err(e) => {
            let _ = tracee.kill();
            return Err(RestoreError::Step {
                pid,
                step,
                source: e,
            });
        }
    };
    Ok(Task {
        pid: pid as i32,
        tracee,
        arch: parent.arch,
        insn: stub.syscall_addr,
        batch: parent.batch,
        mem,
        scratch: parent.scratch,
        verbose: parent.verbose,
        started: parent.started,
    })
}

/// Puts a task that holds its final state into a job-control stop without running it: SIGSTOP in
/// place of its pending step trap.
fn enter_group_stop(task: &mut Task) -> Result<()> {
    let pid = task.pid as u32;
    let err = |source| RestoreError::Step {
        pid,
        step: "stopping the restored process".into(),
        source,
    };
    task.tracee.cont(libc::SIGSTOP).map_err(err)?;
    loop {
        match task.tracee.wait_stop().map_err(err)? {
            Stop::Group(_) => return Ok(()),
            Stop::Signal(sig) => task.tracee.cont(sig).map_err(err)?,
            _ => task.tracee.cont(0).map_err(err)?,
        }
    }
}

/// Lets the whole tree go, as the module doc says.
fn release(
    tasks: Vec<Task>,
    others: Vec<Vec<Tracee>>,
    ps: &[Process],
    opts: &Options,
) -> Result<Restored> {
    let root = ps[0].pid;
    let root_cycle = !opts.leave_stopped && crate::release_through_group_stop(&ps[0]);
    let mut tasks = tasks;
    for (i, task) in tasks.iter_mut().enumerate() {
        if opts.leave_stopped || (i == 0 && root_cycle) {
            enter_group_stop(task)?;
        }
    }
    let verbose = tasks[0].verbose;
    let restore_started = tasks[0].started;
    let started = std::time::Instant::now();
    // Nothing but PTRACE_DETACH in this loop, children first and the root last. A thread whose
    // detach fails is detached again when its Tracee drops; the others are released all the same.
    let mut failed = None;
    let mut threads = 0;
    for (task, others) in tasks.into_iter().zip(others).rev() {
        let pid = task.pid as u32;
        threads += others.len() + 1;
        for t in others.into_iter().chain(std::iter::once(task.tracee)) {
            if let Err(e) = t.detach() {
                failed.get_or_insert((pid, e));
            }
        }
    }
    let detached = started.elapsed();
    if root_cycle {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(root as i32),
            nix::sys::signal::Signal::SIGCONT,
        )
        .map_err(|errno| RestoreError::RemoteCall {
            pid: root,
            step: "releasing the threads together".into(),
            call: "kill(SIGCONT)",
            errno,
        })?;
    }
    if verbose {
        eprintln!(
            "psnc-restore: {:8.3}s [{root}] released {} process(es), {threads} thread(s): \
             detached in {:.3} ms{}",
            restore_started.elapsed().as_secs_f64(),
            ps.len(),
            detached.as_secs_f64() * 1e3,
            if opts.leave_stopped {
                ", left in job-control stops"
            } else {
                ""
            }
        );
    }
    if let Some((pid, e)) = failed {
        return Err(RestoreError::Step {
            pid,
            step: "detaching from the restored process".into(),
            source: e,
        });
    }
    Ok(Restored {
        pid: root,
        stopped: opts.leave_stopped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use psnc_format::model::Arch;

    /// A process with only the ids the tree checks look at.
    fn p(pid: u32, ppid: u32, pgid: u32, sid: u32) -> Process {
        Process {
            pid,
            ppid,
            pgid,
            sid,
            ..Default::default()
        }
    }

    fn check(ps: Vec<Process>) -> Result<()> {
        let ckpt = Checkpoint {
            processes: ps,
            ..Default::default()
        };
        check_tree(&ckpt, &Options::default())
    }

    fn message(r: Result<()>) -> String {
        r.expect_err("a refusal").to_string()
    }

    #[test]
    fn a_session_with_a_background_job_passes() {
        // The root outside its shell's group and session; S a session leader below it, A a
        // group leader with member A2, B in S's group, C following the root.
        check(vec![
            p(10, 1, 5, 5),
            p(11, 10, 11, 11),
            p(12, 11, 12, 11),
            p(13, 12, 12, 11),
            p(14, 11, 11, 11),
            p(15, 10, 5, 5),
        ])
        .unwrap();
    }

    #[test]
    fn a_parent_after_its_child_is_inconsistent() {
        let m = message(check(vec![
            p(10, 1, 10, 10),
            p(12, 11, 10, 10),
            p(11, 10, 10, 10),
        ]));
        assert_eq!(
            m,
            "the image is inconsistent: process 12 comes before its parent 11 in the image, or its \
             parent is not in it"
        );
    }

    #[test]
    fn a_pid_twice_is_inconsistent() {
        let m = message(check(vec![p(10, 1, 10, 10), p(10, 10, 10, 10)]));
        assert_eq!(
            m,
            "the image is inconsistent: the image lists process 10 twice"
        );
    }

    #[test]
    fn a_group_whose_leader_is_outside_is_refused() {
        let m = message(check(vec![p(10, 1, 10, 10), p(11, 10, 7, 10)]));
        assert_eq!(
            m,
            "cannot restore process 11 in process group 7, whose leader is not in the image: \
             not supported yet"
        );
    }

    #[test]
    fn a_session_neither_own_nor_the_parents_is_refused() {
        let m = message(check(vec![
            p(10, 1, 10, 10),
            p(11, 10, 11, 11),
            p(12, 11, 10, 10),
        ]));
        assert_eq!(
            m,
            "cannot restore process 12 in session 10, which is neither its own nor its parent \
             11's (session 11): its parent changed session after forking it: not supported yet"
        );
    }

    #[test]
    fn a_session_leader_outside_its_own_group_is_inconsistent() {
        let m = message(check(vec![p(10, 1, 10, 10), p(11, 10, 10, 11)]));
        assert_eq!(
            m,
            "the image is inconsistent: process 11 leads session 11 but is in process group 10"
        );
    }

    fn zombie(pid: u32, ppid: u32, pgid: u32, sid: u32) -> psnc_format::model::Zombie {
        psnc_format::model::Zombie {
            pid,
            ppid,
            pgid,
            sid,
            status: ExitStatus::Exited(1),
        }
    }

    fn check_with_zombies(
        ps: Vec<Process>,
        zombies: Vec<psnc_format::model::Zombie>,
    ) -> Result<()> {
        let ckpt = Checkpoint {
            processes: ps,
            zombies,
            ..Default::default()
        };
        check_tree(&ckpt, &Options::default())
    }

    #[test]
    fn a_group_led_by_a_zombie_passes() {
        // 12 is a zombie leading group 12; 13 is a live member.
        check_with_zombies(
            vec![p(10, 1, 5, 5), p(13, 10, 12, 5)],
            vec![zombie(12, 10, 12, 5), zombie(14, 10, 14, 14)],
        )
        .unwrap();
    }

    #[test]
    fn zombies_that_do_not_fit_the_tree_are_refused() {
        let m = message(check_with_zombies(
            vec![p(10, 1, 10, 10)],
            vec![zombie(12, 10, 7, 10)],
        ));
        assert_eq!(
            m,
            "cannot restore zombie 12 in process group 7, whose leader is not in the image: \
             not supported yet"
        );
        let m = message(check_with_zombies(
            vec![p(10, 1, 10, 10)],
            vec![zombie(12, 11, 10, 10)],
        ));
        assert_eq!(
            m,
            "the image is inconsistent: zombie 12 has parent 11, which is not in the image"
        );
        let m = message(check_with_zombies(
            vec![p(10, 1, 10, 10)],
            vec![zombie(12, 10, 10, 12)],
        ));
        assert_eq!(
            m,
            "the image is inconsistent: zombie 12 leads session 12 but is in process group 10"
        );
        let mut z = zombie(12, 10, 10, 10);
        z.status = ExitStatus::Killed {
            signal: libc::SIGCHLD as u8,
            core: false,
        };
        assert_eq!(
            crate::zombies::check(&z).unwrap_err().to_string(),
            "the image is inconsistent: zombie 12 was killed by signal 17, whose default action \
             does not end a process"
        );
    }

    #[test]
    fn a_tree_mixing_modes_is_refused() {
        let mut child = p(11, 10, 10, 10);
        child.arch = Arch::I386;
        let m = message(check(vec![p(10, 1, 10, 10), child]));
        assert_eq!(
            m,
            "cannot restore process 11 (I386) in a tree of X86_64 processes (a tree mixing \
             modes): not supported yet"
        );
    }
}
