//! One seized thread: stopping it, waiting for it, reading and writing its state, letting it go.
//!
//! A [`Tracee`] is created by `PTRACE_SEIZE`, which, unlike `PTRACE_ATTACH`, sends no SIGSTOP:
//! the target's job-control state and its parent see nothing. [`Tracee::stop`] then asks for a
//! `PTRACE_INTERRUPT` stop and waits for it. Dropping a `Tracee` detaches it, so every exit path of
//! the tool, errors included, lets the target run on.
//!
//! # Signals that arrive while we stop a thread
//! A signal queued for the thread is dequeued by the kernel when the thread resumes and reported
//! to us as a signal-delivery-stop. If we resumed it with signal 0 the signal would be lost.
//! [`OnSignal`] chooses what to do: let the thread take it now (as CRIU does; the handler frame is
//! set up and the interrupt stop follows) or keep the thread in that stop and hold the signal,
//! which [`Tracee::detach`] (and `Drop`) then re-injects with its original `siginfo_t`
//! (`PTRACE_SETSIGINFO` + `PTRACE_DETACH` with the signal). Signals reported during a remote
//! syscall are held the same way; see [`Tracee::held_signals`].
//!
//! # When the tool dies
//! The kernel detaches the tracees of a dead tracer. A thread in an interrupt or group stop then
//! simply runs on; a thread in a signal-delivery-stop takes that stop's signal. That is right for
//! a held signal and fatal for the SIGTRAP a remote syscall leaves, which is why the engine parks
//! threads in an interrupt stop after each call ([`Tracee::park`]). Held signals themselves live
//! only in the tool and are lost with it.

use nix::errno::Errno;
use nix::sys::ptrace::Options;

use psnc_abi::{KernelSigInfo, Rseq, UserDesc};

use crate::arch::{Arch, Regs, PRSTATUS_LEN_I386, PRSTATUS_LEN_X86_64};
use crate::error::{PtraceError, Result};

const NT_PRSTATUS: usize = 1;
const NT_X86_XSTATE: usize = 0x202;
const PTRACE_GET_THREAD_AREA: libc::c_uint = 25;
const PTRACE_SET_THREAD_AREA: libc::c_uint = 26;
/// `PTRACE_GET_RSEQ_CONFIGURATION` (5.13+).
const PTRACE_GET_RSEQ_CONFIGURATION: libc::c_uint = 0x420f;
/// Upper bound for the XSAVE area: AMX tile data makes it ~11 KiB on current CPUs; the kernel
/// shortens the iovec to the real size.
const XSTATE_MAX: usize = 64 * 1024;

/// Why a thread is in a ptrace-stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The stop `PTRACE_INTERRUPT` asked for (`PTRACE_EVENT_STOP` with SIGTRAP).
    Interrupt,
    /// A group-stop (`PTRACE_EVENT_STOP` with the stopping signal): the process was stopped by
    /// SIGSTOP/SIGTSTP/SIGTTIN/SIGTTOU. Detaching leaves it stopped, as it should be.
    Group(i32),
    /// A signal-delivery-stop: the thread is about to take this signal.
    Signal(i32),
    /// A syscall-entry or -exit stop (`PTRACE_SYSCALL` with `PTRACE_O_TRACESYSGOOD`).
    Syscall,
    /// Another `PTRACE_EVENT_*` stop (clone, exec, exit, ...), with its event number and signal.
    Event {
        /// The `PTRACE_EVENT_*` number.
        event: i32,
        /// The signal in the wait status.
        sig: i32,
    },
}

/// What [`Tracee::stop`] does with a signal that the thread dequeues before it reaches the
/// interrupt stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnSignal {
    /// Let the thread take it (handler frame set up, or default action), then stop. The state
    /// read afterwards is consistent, and nothing needs re-injecting. CRIU does this.
    Deliver,
    /// Stop in the signal-delivery-stop and hold the signal in the [`Tracee`]; it is re-injected
    /// with its siginfo at detach, and a capture can store it as pending.
    Hold,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Running,
    Stopped(Stop),
    Gone,
}

/// One seized thread.
///
/// Dropping it detaches the thread (re-injecting a held signal); errors there are ignored, since
/// a thread that is gone needs no detach.
#[derive(Debug)]
pub struct Tracee {
    tid: i32,
    state: State,
    held: Vec<KernelSigInfo>,
    /// Mode seen at the current stop, so that `set_regs` can check the layout without asking the
    /// kernel again. Cleared on every resume.
    arch_cache: Option<Arch>,
    /// Park the thread in an interrupt stop after each remote syscall (see [`Tracee::park`]).
    auto_park: bool,
}

/// How many stops [`Tracee::park`] and the detach path go through before they give up: each
/// extra stop needs another signal, so reaching this means a signal storm.
const MAX_STOPS: usize = 1000;

/// Issues one ptrace request and turns errno into a [`PtraceError`].
///
/// # Safety
/// `addr` and `data` must be what `req` expects: for requests that read or write through them,
/// valid for the size the request implies.
unsafe fn ptrace_raw(
    op: &'static str,
    req: libc::c_uint,
    tid: i32,
    addr: usize,
    data: usize,
) -> Result<libc::c_long> {
    Errno::clear();
    // SAFETY: the caller guarantees `addr` and `data` fit `req`.
    let r = unsafe { libc::ptrace(req, tid, addr, data) };
    if r == -1 {
        let errno = Errno::last();
        // PEEK requests may return -1 as data; none is issued through here, but be exact.
        if errno != Errno::UnknownErrno {
            return Err(PtraceError::Ptrace { op, tid, errno });
        }
    }
    Ok(r)
}

/// `waitpid(tid, __WALL)`, retried on EINTR; returns the raw status.
fn wait_raw(tid: i32, op: &'static str) -> Result<i32> {
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: `status` is a valid, writable c_int for the duration of the call.
        let r = unsafe { libc::waitpid(tid, &mut status, libc::__WALL) };
        if r == tid {
            return Ok(status);
        }
        let errno = Errno::last();
        if errno != Errno::EINTR {
            return Err(PtraceError::Ptrace { op, tid, errno });
        }
    }
}

impl Tracee {
    /// Seizes one thread with `PTRACE_SEIZE`; the thread keeps running until [`Tracee::stop`] or
    /// [`Tracee::interrupt`]. `PTRACE_O_TRACESYSGOOD` is always added so that syscall-stops
    /// cannot be taken for SIGTRAP deliveries. Pass e.g. `Options::PTRACE_O_EXITKILL` (restore:
    /// the half-built task dies with the tool) or `PTRACE_O_SUSPEND_SECCOMP`.
    ///
    /// Without EXITKILL the target must survive the tool's death, so remote syscalls park the
    /// thread after each call (see [`Tracee::park`]); with it they do not, which saves a stop
    /// per call. [`Tracee::set_auto_park`] overrides the choice.
    pub fn seize(tid: i32, options: Options) -> Result<Tracee> {
        let opts = options | Options::PTRACE_O_TRACESYSGOOD;
        // SAFETY: PTRACE_SEIZE takes the options in `data` and reads no memory.
        unsafe {
            ptrace_raw(
                "PTRACE_SEIZE",
                libc::PTRACE_SEIZE,
                tid,
                0,
                opts.bits() as usize,
            )
        }?;
        Ok(Tracee {
            tid,
            state: State::Running,
            held: Vec::new(),
            arch_cache: None,
            auto_park: !options.contains(Options::PTRACE_O_EXITKILL),
        })
    }

    /// Takes over a child that a traced thread's `clone` made while `PTRACE_O_TRACECLONE` was
    /// set: the kernel attached it to this tracer already; this waits for its first stop.
    pub fn adopt(tid: i32) -> Result<Tracee> {
        let mut t = Tracee {
            tid,
            state: State::Running,
            held: Vec::new(),
            arch_cache: None,
            auto_park: true,
        };
        t.wait_stop()?;
        Ok(t)
    }

    /// The thread id.
    pub fn tid(&self) -> i32 {
        self.tid
    }

    /// The stop the thread is in, or `None` while it runs (or is gone).
    pub fn current_stop(&self) -> Option<Stop> {
        match self.state {
            State::Stopped(s) => Some(s),
            _ => None,
        }
    }

    /// Signals the thread dequeued while we held it stopped and that were not delivered yet,
    /// oldest first. They are re-injected at detach (the first with its exact siginfo; see
    /// [`Tracee::detach`]). A capture stores them as the thread's pending signals.
    pub fn held_signals(&self) -> &[KernelSigInfo] {
        &self.held
    }

    /// Takes the held signals out of the tracee: the caller becomes responsible for them (e.g. a
    /// capture that kills the target after storing them).
    pub fn take_held_signals(&mut self) -> Vec<KernelSigInfo> {
        std::mem::take(&mut self.held)
    }

    /// Whether remote syscalls park the thread in an interrupt stop after each call.
    pub fn set_auto_park(&mut self, on: bool) {
        self.auto_park = on;
    }

    pub(crate) fn auto_park(&self) -> bool {
        self.auto_park
    }

    /// Moves the thread out of a signal-delivery-stop into an interrupt stop, where a dying tool
    /// leaves nothing behind.
    ///
    /// A remote syscall ends in the SIGTRAP signal-delivery-stop that reports the single-step.
    /// If the tool died there, the kernel would detach the thread and deliver that SIGTRAP
    /// (whose default action kills the process): the kernel delivers the stop's signal unless a
    /// tracer cancels it. An interrupt stop (`PTRACE_EVENT_STOP`) has no signal to deliver. So:
    /// request an interrupt, resume with the signal cancelled; the thread reaches the interrupt
    /// stop in the same pass through the kernel's signal code, before any user instruction and
    /// before the syscall-restart logic. Signals dequeued on the way are held. The signal of the
    /// current stop is discarded, so call this only when it is the step trap or already held.
    /// Threads in other stops are left alone. Returns the stop reached.
    pub fn park(&mut self) -> Result<Stop> {
        for _ in 0..MAX_STOPS {
            match self.state {
                State::Stopped(Stop::Signal(_)) => {}
                State::Stopped(s) => return Ok(s),
                _ => {
                    return Err(PtraceError::NotStopped {
                        tid: self.tid,
                        op: "park",
                    })
                }
            }
            // A trap clears a pending interrupt request, so ask again on every round.
            self.interrupt()?;
            self.resume(libc::PTRACE_CONT, "PTRACE_CONT", 0)?;
            if let Stop::Signal(_) = self.wait_stop()? {
                let info = self.get_siginfo()?;
                self.held.push(info);
            }
        }
        Err(PtraceError::UnexpectedStop {
            tid: self.tid,
            stop: self.current_stop().unwrap_or(Stop::Interrupt),
            op: "park (too many signals)",
        })
    }

    /// Changes the ptrace options (`PTRACE_SETOPTIONS`); TRACESYSGOOD stays on.
    pub fn set_options(&mut self, options: Options) -> Result<()> {
        let opts = options | Options::PTRACE_O_TRACESYSGOOD;
        // SAFETY: PTRACE_SETOPTIONS takes the options in `data` and reads no memory.
        unsafe {
            ptrace_raw(
                "PTRACE_SETOPTIONS",
                libc::PTRACE_SETOPTIONS,
                self.tid,
                0,
                opts.bits() as usize,
            )
        }?;
        Ok(())
    }

    /// Asks the running thread to stop (`PTRACE_INTERRUPT`); follow with [`Tracee::wait_stop`].
    /// Interrupting many threads first and waiting afterwards stops them in parallel.
    pub fn interrupt(&mut self) -> Result<()> {
        // SAFETY: PTRACE_INTERRUPT reads no memory.
        unsafe { ptrace_raw("PTRACE_INTERRUPT", libc::PTRACE_INTERRUPT, self.tid, 0, 0) }?;
        Ok(())
    }

    /// Waits for the next event of the thread and classifies it. An exit or a fatal signal is an
    /// error ([`PtraceError::Exited`], [`PtraceError::Killed`]); the tracee is then gone.
    pub fn wait_stop(&mut self) -> Result<Stop> {
        let status = wait_raw(self.tid, "waitpid")?;
        self.arch_cache = None;
        if libc::WIFEXITED(status) {
            self.state = State::Gone;
            return Err(PtraceError::Exited {
                tid: self.tid,
                status: libc::WEXITSTATUS(status),
                op: "waitpid",
            });
        }
        if libc::WIFSIGNALED(status) {
            self.state = State::Gone;
            return Err(PtraceError::Killed {
                tid: self.tid,
                signal: libc::WTERMSIG(status),
                op: "waitpid",
            });
        }
        let sig = libc::WSTOPSIG(status);
        let event = status >> 16;
        let stop = if event == libc::PTRACE_EVENT_STOP {
            if sig == libc::SIGTRAP {
                Stop::Interrupt
            } else {
                Stop::Group(sig)
            }
        } else if event != 0 {
            Stop::Event { event, sig }
        } else if sig == libc::SIGTRAP | 0x80 {
            Stop::Syscall
        } else {
            Stop::Signal(sig)
        };
        self.state = State::Stopped(stop);
        Ok(stop)
    }

    /// Interrupts the thread and waits until it is in a ptrace-stop; `on_signal` says what to do
    /// with a signal the thread dequeues on the way (see the module doc). Returns the stop.
    pub fn stop(&mut self, on_signal: OnSignal) -> Result<Stop> {
        if let State::Stopped(s) = self.state {
            return Ok(s);
        }
        self.interrupt()?;
        self.wait_for_stop(on_signal)
    }

    /// The waiting half of [`Tracee::stop`], for callers that interrupted many threads first.
    pub fn wait_for_stop(&mut self, on_signal: OnSignal) -> Result<Stop> {
        loop {
            let stop = self.wait_stop()?;
            match stop {
                Stop::Signal(sig) => match on_signal {
                    OnSignal::Deliver => {
                        // A trap that begins after our interrupt request clears it (the
                        // kernel's "any trap clears pending STOP trap"): renew it, or the
                        // thread could run on after taking the signal.
                        self.interrupt()?;
                        self.resume(libc::PTRACE_CONT, "PTRACE_CONT", sig)?
                    }
                    OnSignal::Hold => {
                        let info = self.get_siginfo()?;
                        self.held.push(info);
                        return Ok(stop);
                    }
                },
                _ => return Ok(stop),
            }
        }
    }

    fn require_stopped(&self, op: &'static str) -> Result<()> {
        match self.state {
            State::Stopped(_) => Ok(()),
            _ => Err(PtraceError::NotStopped { tid: self.tid, op }),
        }
    }

    fn resume(&mut self, req: libc::c_uint, op: &'static str, sig: i32) -> Result<()> {
        // SAFETY: the resume requests take a signal number in `data` and read no memory.
        unsafe { ptrace_raw(op, req, self.tid, 0, sig as usize) }?;
        self.state = State::Running;
        self.arch_cache = None;
        Ok(())
    }

    /// Lets the thread run (`PTRACE_CONT`), delivering `sig` if non-zero. Held signals stay held.
    pub fn cont(&mut self, sig: i32) -> Result<()> {
        self.require_stopped("PTRACE_CONT")?;
        self.resume(libc::PTRACE_CONT, "PTRACE_CONT", sig)
    }

    /// Runs one instruction (`PTRACE_SINGLESTEP`), delivering `sig` if non-zero.
    pub fn single_step(&mut self, sig: i32) -> Result<()> {
        self.require_stopped("PTRACE_SINGLESTEP")?;
        self.resume(libc::PTRACE_SINGLESTEP, "PTRACE_SINGLESTEP", sig)
    }

    /// Runs to the next syscall entry or exit (`PTRACE_SYSCALL`), delivering `sig` if non-zero.
    pub fn cont_syscall(&mut self, sig: i32) -> Result<()> {
        self.require_stopped("PTRACE_SYSCALL")?;
        self.resume(libc::PTRACE_SYSCALL, "PTRACE_SYSCALL", sig)
    }

    /// Detaches, letting the thread run on (or stay group-stopped). Held signals are given back:
    /// the first with its exact siginfo, through a signal-delivery-stop for it
    /// (`PTRACE_SETSIGINFO` + `PTRACE_DETACH` with the signal; when the thread is in another
    /// stop, a `tkill` of the same signal brings it into one); the others (rare: several signals
    /// during one stop) are re-sent with `tkill`, which keeps the signal but not its siginfo.
    ///
    /// Held signals live in this process only: if the tool dies before detaching, they are lost.
    pub fn detach(mut self) -> Result<()> {
        self.detach_inner()
    }

    fn detach_inner(&mut self) -> Result<()> {
        match self.state {
            State::Gone => return Ok(()),
            State::Running => {
                // PTRACE_DETACH needs a ptrace-stop.
                self.interrupt()?;
                self.wait_for_stop(OnSignal::Hold)?;
            }
            State::Stopped(_) => {}
        }
        if !self.held.is_empty() && !matches!(self.state, State::Stopped(Stop::Signal(_))) {
            self.enter_signal_stop_for_held()?;
        }
        let mut sig = 0;
        let mut rest = std::mem::take(&mut self.held);
        if matches!(self.state, State::Stopped(Stop::Signal(_))) && !rest.is_empty() {
            let first = rest.remove(0);
            self.set_siginfo(&first)?;
            sig = first.signo();
        }
        // SAFETY: PTRACE_DETACH takes a signal number in `data` and reads no memory.
        unsafe {
            ptrace_raw(
                "PTRACE_DETACH",
                libc::PTRACE_DETACH,
                self.tid,
                0,
                sig as usize,
            )
        }?;
        self.state = State::Gone;
        for info in rest {
            crate::sys::tkill(self.tid, info.signo())?;
        }
        Ok(())
    }

    /// Brings the thread from an interrupt (or other non-signal) stop into a signal-delivery-stop
    /// for the first held signal: queue the same signal with `tkill` and let the thread dequeue
    /// it. Signals dequeued before it are held too. A blocked signal would not be dequeued: it
    /// is left to the `tkill` fallback of detach.
    fn enter_signal_stop_for_held(&mut self) -> Result<()> {
        let sig = self.held[0].signo();
        if !(1..=64).contains(&sig) || self.get_sigmask()? & (1u64 << (sig - 1)) != 0 {
            return Ok(());
        }
        crate::sys::tkill(self.tid, sig)?;
        for _ in 0..MAX_STOPS {
            self.resume(libc::PTRACE_CONT, "PTRACE_CONT", 0)?;
            match self.wait_stop()? {
                Stop::Signal(s) if s == sig => return Ok(()),
                Stop::Signal(_) => {
                    let info = self.get_siginfo()?;
                    self.held.push(info);
                }
                _ => {}
            }
        }
        Err(PtraceError::UnexpectedStop {
            tid: self.tid,
            stop: self.current_stop().unwrap_or(Stop::Interrupt),
            op: "detach (re-injecting a held signal)",
        })
    }

    /// Kills the whole process the thread belongs to (SIGKILL) and reaps this thread. Held
    /// signals are dropped.
    ///
    /// The kernel reports a thread-group leader's exit only after all its other threads are
    /// released, and traced ones are released only when their tracer reaps them: waiting for
    /// the leader while its siblings are seized by us would never end. So for a leader with
    /// other threads this sends the SIGKILL and returns without reaping; use [`kill_all`] to
    /// kill a multithreaded process and reap every thread in the right order.
    pub fn kill(mut self) -> Result<()> {
        self.held.clear();
        let leader_with_siblings = is_leader_with_siblings(self.tid);
        match crate::sys::tkill(self.tid, libc::SIGKILL) {
            // Already dying: another thread's kill took the whole group.
            Ok(())
            | Err(PtraceError::Syscall {
                errno: Errno::ESRCH,
                ..
            }) => {}
            Err(e) => return Err(e),
        }
        if leader_with_siblings {
            self.state = State::Gone;
            return Ok(());
        }
        self.reap()
    }

    /// Waits until the (killed) thread is gone.
    fn reap(&mut self) -> Result<()> {
        loop {
            match self.wait_stop() {
                Ok(_) => {
                    // A stop that raced with the kill; let it go on to die.
                    let _ = self.resume(libc::PTRACE_CONT, "PTRACE_CONT", 0);
                }
                Err(PtraceError::Killed { .. } | PtraceError::Exited { .. }) => return Ok(()),
                // Reaped already (by us through another path, or by its parent after detach).
                Err(PtraceError::Ptrace {
                    errno: Errno::ECHILD,
                    ..
                }) => {
                    self.state = State::Gone;
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The 64-bit register view (`PTRACE_GETREGS`), whatever mode the thread runs in. For a
    /// compat task this is where CS says 0x23; restore of i386 registers uses [`Tracee::get_regs`].
    pub fn get_regs_x86_64_view(&self) -> Result<[u64; 27]> {
        self.require_stopped("PTRACE_GETREGS")?;
        let mut r = [0u64; 27];
        // SAFETY: PTRACE_GETREGS writes one user_regs_struct (27 x u64 on x86_64) to `data`,
        // which points at exactly that much writable memory.
        unsafe {
            ptrace_raw(
                "PTRACE_GETREGS",
                libc::PTRACE_GETREGS,
                self.tid,
                0,
                r.as_mut_ptr() as usize,
            )
        }?;
        Ok(r)
    }

    fn getregset(&self, op: &'static str, nt: usize, buf: &mut [u8]) -> Result<usize> {
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: PTRACE_GETREGSET writes at most iov_len bytes to iov_base (our buffer, alive
        // for the call) and updates iov_len in `iov`, which we own.
        unsafe {
            ptrace_raw(
                op,
                libc::PTRACE_GETREGSET,
                self.tid,
                nt,
                &mut iov as *mut libc::iovec as usize,
            )
        }?;
        Ok(iov.iov_len)
    }

    fn setregset(&self, op: &'static str, nt: usize, buf: &[u8]) -> Result<()> {
        let mut iov = libc::iovec {
            iov_base: buf.as_ptr() as *mut libc::c_void,
            iov_len: buf.len(),
        };
        // SAFETY: PTRACE_SETREGSET only reads iov_len bytes from iov_base (our buffer, alive for
        // the call).
        unsafe {
            ptrace_raw(
                op,
                libc::PTRACE_SETREGSET,
                self.tid,
                nt,
                &mut iov as *mut libc::iovec as usize,
            )
        }?;
        Ok(())
    }

    /// The thread's mode: CS from the 64-bit view, cross-checked with the size of NT_PRSTATUS
    /// (216 bytes x86_64, 68 bytes i386).
    pub fn arch(&mut self) -> Result<Arch> {
        if let Some(a) = self.arch_cache {
            return Ok(a);
        }
        let cs = self.get_regs_x86_64_view()?[crate::arch::x86_64::CS];
        let from_cs = Arch::from_cs(cs).ok_or(PtraceError::UnknownCs { tid: self.tid, cs })?;
        let mut buf = [0u8; PRSTATUS_LEN_X86_64];
        let len = self.getregset("PTRACE_GETREGSET(NT_PRSTATUS)", NT_PRSTATUS, &mut buf)?;
        if Arch::from_prstatus_len(len) != Some(from_cs) {
            return Err(PtraceError::ArchMismatch {
                tid: self.tid,
                cs,
                regset_len: len,
            });
        }
        self.arch_cache = Some(from_cs);
        Ok(from_cs)
    }

    /// General-purpose registers in the thread's own layout (NT_PRSTATUS).
    pub fn get_regs(&mut self) -> Result<Regs> {
        self.require_stopped("PTRACE_GETREGSET")?;
        let mut buf = [0u8; PRSTATUS_LEN_X86_64];
        let len = self.getregset("PTRACE_GETREGSET(NT_PRSTATUS)", NT_PRSTATUS, &mut buf)?;
        let regs = Regs::from_bytes(&buf[..len]).ok_or(PtraceError::RegsetSize {
            tid: self.tid,
            regset: "NT_PRSTATUS",
            len,
            expected: &[PRSTATUS_LEN_X86_64, PRSTATUS_LEN_I386],
        })?;
        self.arch_cache = Some(regs.arch());
        Ok(regs)
    }

    /// Writes general-purpose registers (NT_PRSTATUS). The layout must match the thread's mode:
    /// a 68-byte i386 set written to a 64-bit thread would fill only r15..r10 and leave the rest,
    /// so it is refused with [`PtraceError::WrongArch`].
    pub fn set_regs(&mut self, regs: &Regs) -> Result<()> {
        self.require_stopped("PTRACE_SETREGSET")?;
        let arch = self.arch()?;
        if arch != regs.arch() {
            return Err(PtraceError::WrongArch {
                tid: self.tid,
                thread: arch,
                given: regs.arch(),
            });
        }
        self.setregset(
            "PTRACE_SETREGSET(NT_PRSTATUS)",
            NT_PRSTATUS,
            &regs.to_bytes(),
        )
    }

    /// The XSAVE area (NT_X86_XSTATE), as long as the kernel makes it on this CPU. Bytes 0..511
    /// are the FXSAVE legacy area, 464..511 the software-reserved words with XCR0, 512..519
    /// XSTATE_BV.
    pub fn get_xstate(&self) -> Result<Vec<u8>> {
        self.require_stopped("PTRACE_GETREGSET")?;
        let mut buf = vec![0u8; XSTATE_MAX];
        let len = self.getregset("PTRACE_GETREGSET(NT_X86_XSTATE)", NT_X86_XSTATE, &mut buf)?;
        buf.truncate(len);
        Ok(buf)
    }

    /// Writes the XSAVE area. The kernel wants exactly the size [`Tracee::get_xstate`] returns
    /// on this CPU (EFAULT otherwise) and refuses features XCR0 lacks (EINVAL).
    pub fn set_xstate(&self, xstate: &[u8]) -> Result<()> {
        self.require_stopped("PTRACE_SETREGSET")?;
        self.setregset("PTRACE_SETREGSET(NT_X86_XSTATE)", NT_X86_XSTATE, xstate)
    }

    /// One GDT TLS entry of a compat task (`PTRACE_GET_THREAD_AREA`, entries 12..14).
    pub fn get_thread_area(&self, entry: u32) -> Result<UserDesc> {
        self.require_stopped("PTRACE_GET_THREAD_AREA")?;
        let mut d = [0u8; UserDesc::LEN];
        // SAFETY: PTRACE_GET_THREAD_AREA writes one struct user_desc (16 bytes) to `data`, a
        // buffer of exactly that size.
        unsafe {
            ptrace_raw(
                "PTRACE_GET_THREAD_AREA",
                PTRACE_GET_THREAD_AREA,
                self.tid,
                entry as usize,
                d.as_mut_ptr() as usize,
            )
        }?;
        Ok(UserDesc::from_bytes(&d))
    }

    /// Sets one GDT TLS entry (`PTRACE_SET_THREAD_AREA`, entry from `desc.entry_number`).
    pub fn set_thread_area(&self, desc: &UserDesc) -> Result<()> {
        self.require_stopped("PTRACE_SET_THREAD_AREA")?;
        let d = desc.to_bytes();
        // SAFETY: PTRACE_SET_THREAD_AREA reads one struct user_desc (16 bytes) from `data`, a
        // buffer of exactly that size.
        unsafe {
            ptrace_raw(
                "PTRACE_SET_THREAD_AREA",
                PTRACE_SET_THREAD_AREA,
                self.tid,
                desc.entry_number as usize,
                d.as_ptr() as usize,
            )
        }?;
        Ok(())
    }

    /// The blocked-signal mask (`PTRACE_GETSIGMASK`), bit n-1 for signal n.
    ///
    /// For a thread inside sigsuspend/ppoll/pselect this is the temporary mask of that call; the
    /// real one is in the kernel's saved_sigmask, which ptrace cannot read.
    pub fn get_sigmask(&self) -> Result<u64> {
        self.require_stopped("PTRACE_GETSIGMASK")?;
        let mut mask = 0u64;
        // SAFETY: PTRACE_GETSIGMASK writes `addr` (= 8) bytes to `data`, a u64 we own.
        unsafe {
            ptrace_raw(
                "PTRACE_GETSIGMASK",
                libc::PTRACE_GETSIGMASK,
                self.tid,
                8,
                &mut mask as *mut u64 as usize,
            )
        }?;
        Ok(mask)
    }

    /// Sets the blocked-signal mask (`PTRACE_SETSIGMASK`). Note that the kernel also clears the
    /// thread's restore-sigmask flag, so do not call this on a live target inside sigsuspend.
    pub fn set_sigmask(&self, mask: u64) -> Result<()> {
        self.require_stopped("PTRACE_SETSIGMASK")?;
        // SAFETY: PTRACE_SETSIGMASK reads `addr` (= 8) bytes from `data`, a u64 we own.
        unsafe {
            ptrace_raw(
                "PTRACE_SETSIGMASK",
                libc::PTRACE_SETSIGMASK,
                self.tid,
                8,
                &mask as *const u64 as usize,
            )
        }?;
        Ok(())
    }

    /// The siginfo of the signal-delivery-stop the thread is in (`PTRACE_GETSIGINFO`).
    pub fn get_siginfo(&self) -> Result<KernelSigInfo> {
        self.require_stopped("PTRACE_GETSIGINFO")?;
        let mut info = KernelSigInfo([0; 128]);
        // SAFETY: PTRACE_GETSIGINFO writes one siginfo_t (128 bytes) to `data`.
        unsafe {
            ptrace_raw(
                "PTRACE_GETSIGINFO",
                libc::PTRACE_GETSIGINFO,
                self.tid,
                0,
                info.0.as_mut_ptr() as usize,
            )
        }?;
        Ok(info)
    }

    /// Replaces the siginfo of the signal about to be delivered (`PTRACE_SETSIGINFO`).
    pub fn set_siginfo(&self, info: &KernelSigInfo) -> Result<()> {
        self.require_stopped("PTRACE_SETSIGINFO")?;
        // SAFETY: PTRACE_SETSIGINFO reads one siginfo_t (128 bytes) from `data`.
        unsafe {
            ptrace_raw(
                "PTRACE_SETSIGINFO",
                libc::PTRACE_SETSIGINFO,
                self.tid,
                0,
                info.0.as_ptr() as usize,
            )
        }?;
        Ok(())
    }

    /// Pending signals, without dequeuing them (`PTRACE_PEEKSIGINFO`): the thread's own queue, or
    /// with `shared` the process-wide one. Reads in batches until the queue is exhausted.
    pub fn peek_siginfo(&self, shared: bool) -> Result<Vec<KernelSigInfo>> {
        self.require_stopped("PTRACE_PEEKSIGINFO")?;
        const BATCH: usize = 32;
        let mut out = Vec::new();
        loop {
            let mut buf = [[0u8; 128]; BATCH];
            let args = libc::ptrace_peeksiginfo_args {
                off: out.len() as u64,
                flags: if shared {
                    libc::PTRACE_PEEKSIGINFO_SHARED
                } else {
                    0
                },
                nr: BATCH as i32,
            };
            // SAFETY: PTRACE_PEEKSIGINFO reads the args struct at `addr` and writes at most
            // `nr` (= BATCH) siginfo_t of 128 bytes to `data`, which is exactly that large.
            let n = unsafe {
                ptrace_raw(
                    "PTRACE_PEEKSIGINFO",
                    libc::PTRACE_PEEKSIGINFO,
                    self.tid,
                    &args as *const libc::ptrace_peeksiginfo_args as usize,
                    buf.as_mut_ptr() as usize,
                )
            }?;
            let n = usize::try_from(n).unwrap_or(0).min(BATCH);
            out.extend(buf[..n].iter().map(|b| KernelSigInfo(*b)));
            if n < BATCH {
                return Ok(out);
            }
        }
    }

    /// The thread's rseq registration (`PTRACE_GET_RSEQ_CONFIGURATION`, Linux 5.13+); `addr` 0
    /// when none is registered.
    pub fn get_rseq(&self) -> Result<Rseq> {
        self.require_stopped("PTRACE_GET_RSEQ_CONFIGURATION")?;
        let mut raw = [0u8; Rseq::PTRACE_CONFIG_LEN];
        // SAFETY: the request writes at most `addr` (= 24, the struct's size) bytes to `data`.
        unsafe {
            ptrace_raw(
                "PTRACE_GET_RSEQ_CONFIGURATION",
                PTRACE_GET_RSEQ_CONFIGURATION,
                self.tid,
                raw.len(),
                raw.as_mut_ptr() as usize,
            )
        }?;
        Ok(Rseq::from_ptrace_config(&raw))
    }

    /// The message of the last `PTRACE_EVENT_*` stop (`PTRACE_GETEVENTMSG`), e.g. a new TID.
    pub fn get_event_msg(&self) -> Result<u64> {
        self.require_stopped("PTRACE_GETEVENTMSG")?;
        let mut msg: libc::c_ulong = 0;
        // SAFETY: PTRACE_GETEVENTMSG writes one unsigned long to `data`.
        unsafe {
            ptrace_raw(
                "PTRACE_GETEVENTMSG",
                libc::PTRACE_GETEVENTMSG,
                self.tid,
                0,
                &mut msg as *mut libc::c_ulong as usize,
            )
        }?;
        Ok(msg)
    }

    /// Records a signal the engine dequeued, to be given back at detach.
    pub(crate) fn hold(&mut self, info: KernelSigInfo) {
        self.held.push(info);
    }
}

/// True when `tid` is a thread-group leader (TID = TGID) and its group has other threads.
fn is_leader_with_siblings(tid: i32) -> bool {
    let dir = psnc_proc::ProcDir::new(tid);
    let tasks = dir.list_numeric("task").map(|t| t.len()).unwrap_or(0);
    let tgid = dir.status_field("Tgid").ok().flatten();
    tgid == Some(tid.to_string()) && tasks > 1
}

/// Kills a process through its seized threads (one SIGKILL takes the whole group) and reaps
/// every thread: the others first, the leader last, since the kernel reports a leader's exit
/// only after its other threads are released. Returns the first error, after trying all.
pub fn kill_all(threads: Vec<Tracee>) -> Result<()> {
    let Some(first) = threads.first() else {
        return Ok(());
    };
    let tgid = psnc_proc::ProcDir::new(first.tid)
        .status_field("Tgid")
        .ok()
        .flatten()
        .and_then(|v| v.parse::<i32>().ok());
    let mut threads = threads;
    // Leader last.
    threads.sort_by_key(|t| Some(t.tid) == tgid);
    let mut result = Ok(());
    let mut sent = false;
    for mut t in threads {
        t.held.clear();
        if !sent {
            match crate::sys::tkill(t.tid, libc::SIGKILL) {
                Ok(())
                | Err(PtraceError::Syscall {
                    errno: Errno::ESRCH,
                    ..
                }) => sent = true,
                Err(e) => {
                    result = result.and(Err(e));
                    continue;
                }
            }
        }
        if let Err(e) = t.reap() {
            result = result.and(Err(e));
        }
        t.state = State::Gone;
    }
    result
}

impl Drop for Tracee {
    fn drop(&mut self) {
        let _ = self.detach_inner();
    }
}
