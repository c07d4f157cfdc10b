//! The kernel state of the rebuilt task beyond its memory and its process-wide attributes:
//! files, per-thread state, and finally the registers.
//!
//! Process-wide and per-thread state are separate functions because a multithreaded restore
//! (issue 4) runs [`restore_thread_state`] and [`finish_thread`] once per thread, each in its own
//! traced thread, and the rest once. Order matters and is fixed here:
//! - `PR_SET_MM_MAP` before rlimits (the kernel checks RLIMIT_DATA against the new brk);
//! - fds before rlimits (an fd above the image's RLIMIT_NOFILE could not be installed after);
//! - signals are queued while every signal is blocked, and the real mask is set last, so nothing
//!   is delivered before the task runs on its own;
//! - `sigaltstack` before the final registers (it fails with EPERM while the stack pointer is on
//!   the alternate stack);
//! - credentials last but for `PR_SET_DUMPABLE` and `PR_SET_PDEATHSIG`, which a credential
//!   change resets;
//! - the scratch area is unmapped by the very last remote call.

use psnc_format::model::{EpollWatch, Fd, FdKind, Process, Thread};
use psnc_ptrace::{SigAltStack, Sysno, UserDesc};

use crate::error::{RestoreError, Result};
use crate::files::LocalFiles;
use crate::process::PR_SET_NAME;
use crate::remote::{ptrace_regs, Extra, Task};
use crate::signals::siginfo_bytes;

const F_SETFD: u64 = 2;
const ARCH_REQ_XCOMP_PERM: u64 = 0x1023;
const XFEATURE_XTILEDATA: u32 = 18;
/// XSAVE components that sit at the same place in every standard-format layout: x87 and SSE in
/// the legacy area, AVX (YMM_Hi128) at byte 576.
const XSTATE_FIXED_LAYOUT: u64 = 0b111;
const XSAVE_FIXED_END: usize = 576 + 256;

pub(crate) fn u64_at(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(o..o + 8) {
        a.copy_from_slice(s);
    }
    u64::from_le_bytes(a)
}

/// The XSAVE area to write for `t` on this machine (`host` is the stub's own area): the image's
/// when the layouts agree, re-laid when only fixed-place components are live, else a refusal.
pub fn xsave_for_host(t: &Thread, host: &[u8], image_xcr0: u64) -> Result<Option<Vec<u8>>> {
    if t.xsave.is_empty() {
        return Ok(None);
    }
    let host_xcr0 = u64_at(host, 464);
    let missing = t.xstate_bv & !host_xcr0;
    if missing != 0 {
        return Err(RestoreError::XsaveFeatures {
            image: image_xcr0,
            host: host_xcr0,
            missing,
        });
    }
    if t.xsave.len() == host.len() {
        return Ok(Some(t.xsave.clone()));
    }
    if t.xstate_bv & !XSTATE_FIXED_LAYOUT != 0 || t.xsave.len() < XSAVE_FIXED_END.min(host.len()) {
        return Err(RestoreError::XsaveLayout {
            tid: t.tid,
            image: t.xsave.len(),
            host: host.len(),
            live: t.xstate_bv,
        });
    }
    let mut out = vec![0u8; host.len()];
    let n = XSAVE_FIXED_END.min(host.len());
    out[..n].copy_from_slice(&t.xsave[..n]);
    // The software-reserved words describe this machine, not the image's.
    out[464..512].copy_from_slice(&host[464..512]);
    Ok(Some(out))
}

/// Installs the image's fds at their numbers, each taken from the restore tool with
/// `pidfd_getfd` (same open file description: offset and status flags come along).
///
/// Epoll instances come last: each is created in the task with `epoll_create1` once every
/// other fd exists, and only when all of them exist are the watches added, so that a watch can
/// name any fd of the process, another epoll fd included. The kernel keys a watch by file and fd
/// number, so `EPOLL_CTL_ADD` must run in the task with the image's fd numbers.
pub fn install_fds(task: &mut Task, p: &Process, local: &LocalFiles, pidfd: u64) -> Result<()> {
    for (f, l) in p.fds.iter().zip(&local.fds) {
        if let Some(ours) = l.raw() {
            install_fd(task, f, ours, pidfd)?;
        }
    }
    let epolls: Vec<(&Fd, &[EpollWatch])> = p
        .fds
        .iter()
        .filter_map(|f| match &f.kind {
            FdKind::Epoll { watches } => Some((f, watches.as_slice())),
            _ => None,
        })
        .collect();
    for (f, _) in &epolls {
        create_epoll(task, f)?;
    }
    for (f, watches) in &epolls {
        for w in *watches {
            add_epoll_watch(task, f.fd, w)?;
        }
    }
    Ok(())
}

fn create_epoll(task: &mut Task, f: &Fd) -> Result<()> {
    let step = format!("creating epoll fd {}", f.fd);
    let flags = if f.cloexec {
        libc::EPOLL_CLOEXEC as u64
    } else {
        0
    };
    let tmp = task.call(&step, Sysno::EpollCreate1, &[flags])?;
    let target = f.fd as u64;
    if tmp != target {
        task.call(&step, Sysno::Dup3, &[tmp, target, flags])?;
        task.call(&step, Sysno::Close, &[tmp])?;
    }
    Ok(())
}

/// `EPOLL_CTL_ADD` with the recorded mask and data. The kernel adds `EPOLLERR | EPOLLHUP` to
/// every watch, so a one-shot watch that had fired (mask without event bits) comes back armed
/// for those two only; an edge-triggered watch whose file is ready reports one edge again.
fn add_epoll_watch(task: &mut Task, epfd: i32, w: &EpollWatch) -> Result<()> {
    let step = format!("adding the watch of fd {} to epoll fd {epfd}", w.tfd);
    // struct epoll_event: u32 events, u64 data, 12 bytes in both modes.
    let mut ev = [0u8; 12];
    ev[..4].copy_from_slice(&w.events.to_le_bytes());
    ev[4..].copy_from_slice(&w.data.to_le_bytes());
    let at = task.put(&step, 0, &ev)?;
    task.call(
        &step,
        Sysno::EpollCtl,
        &[epfd as u64, libc::EPOLL_CTL_ADD as u64, w.tfd as u64, at],
    )?;
    Ok(())
}

fn install_fd(task: &mut Task, f: &Fd, ours: i32, pidfd: u64) -> Result<()> {
    let step = format!("installing fd {}", f.fd);
    task.log(|| format!("{step} from our fd {ours}"));
    // pidfd_getfd gives a close-on-exec fd at the lowest free number.
    let tmp = task.call(&step, Extra::PidfdGetfd, &[pidfd, ours as u64, 0])?;
    let target = f.fd as u64;
    if tmp == target {
        if !f.cloexec {
            task.call(&step, Sysno::Fcntl, &[tmp, F_SETFD, 0])?;
        }
        return Ok(());
    }
    let flags = if f.cloexec { libc::O_CLOEXEC as u64 } else { 0 };
    task.call(&step, Sysno::Dup3, &[tmp, target, flags])?;
    task.call(&step, Sysno::Close, &[tmp])?;
    Ok(())
}

/// Per-thread kernel state, run inside that thread: name, sigaltstack, rseq, robust list and
/// clear_child_tid.
pub fn restore_thread_state(task: &mut Task, t: &Thread) -> Result<()> {
    if !t.comm.is_empty() {
        let step = format!("thread {}: setting its name", t.tid);
        let mut comm: Vec<u8> = t.comm.as_bytes().iter().copied().take(15).collect();
        comm.push(0);
        let addr = task.put(&step, 0, &comm)?;
        task.call(&step, Sysno::Prctl, &[PR_SET_NAME, addr])?;
    }
    let ss = &t.sigaltstack;
    if ss.sp != 0 || ss.size != 0 || ss.flags & libc::SS_DISABLE as u32 == 0 {
        let alt = SigAltStack {
            sp: ss.sp,
            flags: ss.flags as i32,
            size: ss.size,
        };
        task.with_syscaller(&format!("thread {}: setting sigaltstack", t.tid), |sc| {
            sc.set_sigaltstack(&alt)
        })?;
    }
    if let Some(r) = t.rseq.filter(|r| r.addr != 0) {
        let step = format!("thread {}: registering rseq at {:#x}", t.tid, r.addr);
        task.call(
            &step,
            Sysno::Rseq,
            &[r.addr, u64::from(r.len), 0, u64::from(r.sig)],
        )?;
    }
    if t.robust_list != 0 {
        let step = format!("thread {}: setting the robust list", t.tid);
        task.call(
            &step,
            Sysno::SetRobustList,
            &[t.robust_list, t.robust_list_len],
        )?;
    }
    if t.clear_child_tid != 0 {
        let step = format!("thread {}: set_tid_address", t.tid);
        task.call(&step, Sysno::SetTidAddress, &[t.clear_child_tid])?;
    }
    Ok(())
}

/// Queues a thread's pending signals with their full siginfo. Runs in the thread-group leader:
/// the kernel lets a task queue a signal with a kernel `si_code` only to its own thread group,
/// from the thread whose TID is the group's ID.
pub fn queue_thread_signals(task: &mut Task, pid: u32, t: &Thread) -> Result<()> {
    for s in &t.pending {
        let step = format!("thread {}: queueing signal {}", t.tid, s.signo);
        let info = psnc_ptrace::SigInfo(siginfo_bytes(&s.raw));
        task.with_syscaller(&step, |sc| {
            sc.rt_tgsigqueueinfo(pid as i32, t.tid as i32, &info)
        })?;
    }
    Ok(())
}

/// Asks for AMX state permission when the thread's XSAVE area holds live tile data.
pub fn request_xstate_perm(task: &mut Task, t: &Thread) -> Result<()> {
    if task.arch == psnc_ptrace::Arch::X86_64 && t.xstate_bv & (1 << XFEATURE_XTILEDATA) != 0 {
        task.call(
            "requesting AMX state permission",
            Sysno::ArchPrctl,
            &[ARCH_REQ_XCOMP_PERM, u64::from(XFEATURE_XTILEDATA)],
        )?;
    }
    Ok(())
}

/// The thread's final user-visible state, written through ptrace with no more remote calls:
/// i386 TLS entries, registers, XSAVE area, and the signal mask.
pub fn finish_thread(task: &mut Task, t: &Thread, xsave: Option<&[u8]>) -> Result<()> {
    let tid = t.tid;
    for d in &t.tls {
        let desc = UserDesc {
            entry_number: d.entry_number,
            base_addr: d.base_addr,
            limit: d.limit,
            flags: d.flags,
        };
        task.tracee
            .set_thread_area(&desc)
            .map_err(task.step_err(format!(
                "thread {tid}: setting TLS entry {}",
                d.entry_number
            )))?;
    }
    let regs = ptrace_regs(&t.regs);
    task.tracee
        .set_regs(&regs)
        .map_err(task.step_err(format!("thread {tid}: setting the registers")))?;
    if let Some(x) = xsave {
        task.tracee
            .set_xstate(x)
            .map_err(task.step_err(format!("thread {tid}: setting the XSAVE area")))?;
    }
    task.tracee
        .set_sigmask(t.sigmask)
        .map_err(task.step_err(format!("thread {tid}: setting the signal mask")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thread(xsave_len: usize, bv: u64) -> Thread {
        let mut xsave = vec![0xab; xsave_len];
        xsave[512..520].copy_from_slice(&bv.to_le_bytes());
        Thread {
            xsave,
            xstate_bv: bv,
            ..Thread::default()
        }
    }

    fn host(len: usize, xcr0: u64) -> Vec<u8> {
        let mut h = vec![0u8; len];
        h[464..472].copy_from_slice(&xcr0.to_le_bytes());
        h
    }

    #[test]
    fn xsave_same_layout_is_kept() {
        let t = thread(2696, 0xe7);
        assert_eq!(
            xsave_for_host(&t, &host(2696, 0x2e7), 0x2e7).unwrap(),
            Some(t.xsave.clone())
        );
    }

    #[test]
    fn xsave_missing_component_is_refused() {
        let t = thread(2696, 0xe7);
        let err = xsave_for_host(&t, &host(2696, 0x7), 0xe7).unwrap_err();
        assert!(matches!(
            err,
            RestoreError::XsaveFeatures {
                missing: 0xe0,
                host: 0x7,
                ..
            }
        ));
    }

    #[test]
    fn xsave_relaid_when_only_avx_is_live() {
        let t = thread(2696, 0x7);
        let out = xsave_for_host(&t, &host(1088, 0x7), 0xe7).unwrap().unwrap();
        assert_eq!(out.len(), 1088);
        assert_eq!(&out[..464], &t.xsave[..464]);
        assert_eq!(&out[512..832], &t.xsave[512..832]);
        assert!(out[832..].iter().all(|&b| b == 0));
        let t = thread(2696, 0xe7);
        assert!(matches!(
            xsave_for_host(&t, &host(1088, 0xff), 0xe7),
            Err(RestoreError::XsaveLayout {
                image: 2696,
                host: 1088,
                ..
            })
        ));
    }
}
