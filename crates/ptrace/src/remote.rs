//! Running syscalls inside a stopped thread of the target ("remote syscalls").
//!
//! # The engine
//! One engine serves both modes; only the register convention differs, and [`Regs`](crate::Regs) knows it:
//!
//! 1. save the thread's registers (NT_PRSTATUS);
//! 2. load a copy: number in rax/eax, arguments in rdi, rsi, rdx, r10, r8, r9 (x86_64) or ebx,
//!    ecx, edx, esi, edi, ebp (i386), instruction pointer at a `syscall` (0f 05) or `int 0x80`
//!    (cd 80) instruction mapped executable in the target, and orig_rax = -1;
//! 3. single-step the thread: it executes the instruction, the kernel runs the call and reports
//!    the step as a SIGTRAP signal-delivery-stop right after it;
//! 4. read rax/eax;
//! 5. put the saved registers back, on success and on every error path.
//!
//! Why orig_rax = -1: a thread stopped inside an interrupted syscall has orig_rax = that call and
//! rax = -ERESTART*. When it resumes, the kernel's signal code would apply its restart logic
//! (rax = orig_rax, rip -= 2) to whatever registers it then holds; with -1 it leaves the injected
//! call alone. The saved registers are restored unchanged, so the original call is still restarted
//! when the thread finally runs on.
//!
//! Why single-step and not PTRACE_SYSCALL: the step report is a signal-delivery-stop, inside the
//! kernel's signal path, exactly like the interrupt stop we started from. When the thread resumes
//! from there with the original registers, the kernel applies the syscall-restart logic to them as
//! it would have without us. A syscall-exit-stop is outside that path: a thread resumed from it
//! with rax = -ERESTART* would return that raw value to the program.
//!
//! Signals dequeued while the engine runs (they are not blocked: `PTRACE_SETSIGMASK` would clear
//! the restore-sigmask state of a thread inside sigsuspend/ppoll) are held in the [`Tracee`] and
//! given back at detach; see [`Tracee::held_signals`].
//!
//! # Parking
//! The step report leaves the thread in a SIGTRAP signal-delivery-stop. A tool that died there
//! would have the kernel deliver that SIGTRAP and kill the target, so unless the thread was
//! seized with `PTRACE_O_EXITKILL` (then it dies with the tool anyway) the engine moves it on
//! into an interrupt stop after each call ([`Tracee::park`]); that costs one more stop per call.
//!
//! # The window of borrowed registers
//! Between loading the copy (step 2) and restoring the saved registers (step 5) the thread holds
//! our registers. If the tool dies in that window (SIGKILL, crash), the kernel detaches the
//! thread as it is: it runs (or has run) the injected call, then goes on at the instruction after
//! the `syscall`/`int 0x80` with the injected register values, and usually dies of SIGSEGV or of
//! the pending step SIGTRAP (with `PTRACE_O_EXITKILL` it is killed at once). The window is two
//! ptrace calls and one wait long (microseconds) per call, plus, until the thread is parked, the
//! pending SIGTRAP; outside it a dead tool leaves the target intact (tested by
//! `tests/tool_death.rs`), except that signals the tool held are lost. A scratch page mapped with [`RemoteSyscaller::scratch`] outlives a dead tool
//! as an extra anonymous mapping; it does not harm the program.

use psnc_abi::{KernelSigInfo, SigAction, SigAltStack};

use crate::arch::{Arch, Sysno};
use crate::error::{PtraceError, Result};
use crate::mem::ProcMem;
use crate::tracee::{Stop, Tracee};
use crate::Regs;

/// The timer structs the wrappers below exchange; restore names them by this path.
pub use psnc_abi::timer::{ITimerSpec, ITimerVal};

/// How many unexpected stops (signals, group-stops) one remote syscall tolerates before it gives
/// up: each needs a signal or job-control event, so reaching this means a signal storm.
const MAX_STOPS: usize = 1000;

/// Page size of x86 in both modes; `mmap2` counts its offset in these.
const PAGE: u64 = 4096;

impl Tracee {
    /// Runs syscall `nr` with `args` in this (stopped) thread, using the `syscall`/`int 0x80`
    /// instruction at `insn`, and returns the raw result (`-errno` on failure). The thread's
    /// registers are restored afterwards, also when the call could not be run; see the module
    /// doc for how, and for the window in which a dying tool damages the thread.
    ///
    /// For an i386 thread every value must fit 32 bits (or be a sign-extended negative 32-bit
    /// value such as `-1i64 as u64`); otherwise [`PtraceError::DoesNotFit`].
    pub fn remote_syscall(&mut self, insn: u64, nr: u64, args: &[u64; 6]) -> Result<i64> {
        let saved = self.get_regs()?;
        let arch = saved.arch();
        let insn = fit(self.tid(), arch, "syscall instruction address", insn)?;
        let mut a = [0u64; 6];
        for (d, &s) in a.iter_mut().zip(args) {
            *d = fit(self.tid(), arch, "syscall argument", s)?;
        }
        let mut work = saved;
        work.load_syscall(insn, nr, &a);
        self.set_regs(&work)?;
        // ---- registers borrowed from here ----
        let run = self.step_over_syscall(insn, arch);
        let restored = if self.current_stop().is_some() {
            self.set_regs(&saved)
        } else {
            Ok(())
        };
        // ---- to here ----
        let ret = run?;
        restored?;
        if self.auto_park() {
            self.park()?;
        }
        Ok(ret)
    }

    /// Runs code already mapped in this (stopped) thread's process until it executes the `int3`
    /// at `trap`, and returns the registers it had there. `prepare` sets up a copy of the
    /// thread's registers (instruction pointer and whatever the code takes); orig_rax is -1, as
    /// for a remote syscall. The saved registers are put back afterwards, also on error, and
    /// signals that arrive meanwhile are held (see the module doc).
    ///
    /// This is the engine of a batch: one resume and one stop for many system calls run by a
    /// small loop in the target ([`crate::batch`]), where [`Tracee::remote_syscall`] costs
    /// about ten ptrace round trips per call. A fault of the code itself is
    /// [`PtraceError::InjectionFault`] at the faulting instruction.
    pub fn run_to_trap(&mut self, prepare: impl FnOnce(&mut Regs), trap: u64) -> Result<Regs> {
        let saved = self.start_code(prepare)?;
        self.finish_code(saved, trap)
    }

    /// The first half of [`Tracee::run_to_trap`]: loads the registers and resumes the thread;
    /// returns the saved registers for [`Tracee::finish_code`]. Starting many threads before
    /// finishing any runs their code side by side.
    pub fn start_code(&mut self, prepare: impl FnOnce(&mut Regs)) -> Result<Regs> {
        let saved = self.get_regs()?;
        let mut work = saved;
        work.load_syscall(saved.ip(), u64::MAX, &[0; 6]);
        prepare(&mut work);
        self.set_regs(&work)?;
        // ---- registers borrowed from here (until finish_code) ----
        if let Err(e) = self.cont(0) {
            let _ = self.set_regs(&saved);
            return Err(e);
        }
        Ok(saved)
    }

    /// The second half of [`Tracee::run_to_trap`]: waits for the `int3` at `trap`, puts
    /// `saved` back (also on error, while the thread is still there) and returns the registers
    /// at the trap.
    pub fn finish_code(&mut self, saved: Regs, trap: u64) -> Result<Regs> {
        let run = self.wait_for_trap(trap);
        let restored = if self.current_stop().is_some() {
            self.set_regs(&saved)
        } else {
            Ok(())
        };
        // ---- to here ----
        let regs = run?;
        restored?;
        if self.auto_park() {
            self.park()?;
        }
        Ok(regs)
    }

    /// Waits (the thread resumed) until the `int3` at `trap` reports (a kernel-made SIGTRAP
    /// with the instruction pointer right after it), holding any other signal and resuming.
    fn wait_for_trap(&mut self, trap: u64) -> Result<Regs> {
        for _ in 0..MAX_STOPS {
            match self.wait_stop()? {
                Stop::Signal(sig) => {
                    let info = self.get_siginfo()?;
                    if sig == libc::SIGTRAP && info.code() > 0 {
                        let regs = self.get_regs()?;
                        if regs.ip() == trap + 1 {
                            return Ok(regs);
                        }
                    }
                    let fault = matches!(
                        sig,
                        libc::SIGSEGV | libc::SIGBUS | libc::SIGILL | libc::SIGFPE | libc::SIGTRAP
                    );
                    if fault && info.code() > 0 {
                        return Err(PtraceError::InjectionFault {
                            tid: self.tid(),
                            signal: sig,
                            addr: self.get_regs()?.ip(),
                        });
                    }
                    self.hold(info);
                }
                Stop::Interrupt | Stop::Group(_) | Stop::Event { .. } | Stop::Syscall => {}
            }
            self.cont(0)?;
        }
        Err(PtraceError::UnexpectedStop {
            tid: self.tid(),
            stop: self.current_stop().unwrap_or(Stop::Interrupt),
            op: "injected code (too many signals)",
        })
    }

    /// Step 3 and 4 of the engine: resume by single-step until the step after the instruction
    /// at `insn` is reported, holding any other signal that shows up.
    fn step_over_syscall(&mut self, insn: u64, arch: Arch) -> Result<i64> {
        let after = insn + arch.syscall_insn().len() as u64;
        for _ in 0..MAX_STOPS {
            self.single_step(0)?;
            match self.wait_stop()? {
                Stop::Signal(sig) => {
                    let info = self.get_siginfo()?;
                    // The step report is a kernel-made SIGTRAP (si_code > 0) after our insn.
                    if sig == libc::SIGTRAP && info.code() > 0 {
                        let regs = self.get_regs()?;
                        if regs.ip() == after {
                            return Ok(regs.syscall_ret());
                        }
                        if regs.ip() != insn {
                            return Err(PtraceError::UnexpectedStop {
                                tid: self.tid(),
                                stop: Stop::Signal(sig),
                                op: "remote syscall (trap at an unexpected address)",
                            });
                        }
                    }
                    // A fault of the instruction at `insn` itself (not executable, not mapped):
                    // ours, not the program's. Do not hold it, or detach would kill the target.
                    let fault = matches!(
                        sig,
                        libc::SIGSEGV | libc::SIGBUS | libc::SIGILL | libc::SIGFPE
                    );
                    if fault && info.code() > 0 && self.get_regs()?.ip() == insn {
                        return Err(PtraceError::InjectionFault {
                            tid: self.tid(),
                            signal: sig,
                            addr: insn,
                        });
                    }
                    // Some other signal (or an old SIGTRAP) dequeued before our call ran.
                    self.hold(info);
                }
                // Interrupt, group-stop, events: nothing ran of ours that they could disturb.
                Stop::Interrupt | Stop::Group(_) | Stop::Event { .. } | Stop::Syscall => {}
            }
        }
        Err(PtraceError::UnexpectedStop {
            tid: self.tid(),
            stop: self.current_stop().unwrap_or(Stop::Interrupt),
            op: "remote syscall (too many signals)",
        })
    }
}

/// Checks that `v` fits a register of `arch`; for i386 accepts sign-extended negative values and
/// truncates them.
pub(crate) fn fit(tid: i32, arch: Arch, what: &'static str, v: u64) -> Result<u64> {
    match arch {
        Arch::X86_64 => Ok(v),
        Arch::I386 => {
            let s = v as i64;
            if v <= u64::from(u32::MAX) || (s < 0 && s >= i64::from(i32::MIN)) {
                Ok(v & u64::from(u32::MAX))
            } else {
                Err(PtraceError::DoesNotFit {
                    tid,
                    what,
                    value: v,
                    arch,
                })
            }
        }
    }
}

/// One executable mapping of the target, as far as finding a syscall instruction needs.
struct ExecMapping {
    start: u64,
    end: u64,
    name: String,
}

fn exec_mappings(pid: i32) -> Result<Vec<ExecMapping>> {
    let maps = psnc_proc::ProcDir::new(pid)
        .maps_lossy()
        .map_err(proc_error)?;
    let mut out: Vec<ExecMapping> = maps
        .into_iter()
        // [vsyscall] is emulated: executing anywhere but its entry points raises SIGSEGV.
        .filter(|m| m.exec && m.path != "[vsyscall]")
        .map(|m| ExecMapping {
            start: m.start,
            end: m.end,
            name: m.path,
        })
        .collect();
    // The vdso always has one (`syscall` in the 64-bit vdso, `int $0x80` in __kernel_vsyscall of
    // the 32-bit one) and is small: search it first.
    out.sort_by_key(|m| m.name != "[vdso]");
    Ok(out)
}

/// A psnc_proc error as this crate's `Io` error, saying whether opening or reading failed.
fn proc_error(e: psnc_proc::ProcError) -> PtraceError {
    let op = match &e {
        psnc_proc::ProcError::Open { .. } => "open",
        psnc_proc::ProcError::Read { .. } => "read",
        psnc_proc::ProcError::Parse { .. } => "parse",
    };
    PtraceError::Io {
        op,
        path: e.path().display().to_string(),
        source: e.into(),
    }
}

/// Finds a `syscall` (x86_64) or `int 0x80` (i386) instruction in an executable mapping of
/// process `pid`, the `[vdso]` first. The two bytes need not be at an instruction boundary of the
/// code around them: the engine jumps right to them.
pub fn find_syscall_insn(pid: i32, arch: Arch) -> Result<u64> {
    let mem = ProcMem::open(pid, false)?;
    let pat = arch.syscall_insn();
    // The vdso named by the auxiliary vector first: no need to read all of maps (3 MB and
    // 40 ms for a process of 60,000 VMAs, in every stop).
    if let Some(addr) = vdso_syscall_insn(pid, arch, &mem) {
        return Ok(addr);
    }
    const CHUNK: u64 = 1 << 20;
    for m in exec_mappings(pid)? {
        let mut addr = m.start;
        let mut buf = vec![0u8; CHUNK as usize];
        while addr < m.end {
            // Overlap by one byte so a pattern across two chunks is seen.
            let len = (m.end - addr).min(CHUNK) as usize;
            let n = mem.read_at(addr, &mut buf[..len])?;
            if let Some(i) = buf[..n].windows(2).position(|w| w == pat) {
                return Ok(addr + i as u64);
            }
            if n < len || n < 2 {
                break;
            }
            addr += n as u64 - 1;
        }
    }
    Err(PtraceError::NoSyscallInsn { pid, arch })
}

/// A system-call instruction inside the vdso that `AT_SYSINFO_EHDR` of the auxiliary vector
/// names, searched only within the extent its ELF program headers give (so never in whatever
/// is mapped after it); `None` when there is no such vdso (unmapped, moved, not an ELF image)
/// or no instruction in it, and [`find_syscall_insn`] reads maps instead.
fn vdso_syscall_insn(pid: i32, arch: Arch, mem: &ProcMem) -> Option<u64> {
    const AT_SYSINFO_EHDR: u64 = 33;
    let auxv = std::fs::read(format!("/proc/{pid}/auxv")).ok()?;
    let w = arch.word_size();
    let word = |b: &[u8]| match w {
        8 => u64::from_ne_bytes(b.try_into().unwrap_or([0; 8])),
        _ => u64::from(u32::from_ne_bytes(b.try_into().unwrap_or([0; 4]))),
    };
    let base = auxv
        .chunks_exact(2 * w)
        .find(|e| word(&e[..w]) == AT_SYSINFO_EHDR)
        .map(|e| word(&e[w..]))
        .filter(|&b| b != 0)?;
    let mut head = [0u8; 64];
    mem.read_exact_at(base, &mut head).ok()?;
    let elf64 = match (&head[..4], head[4]) {
        (b"\x7fELF", 2) => true,
        (b"\x7fELF", 1) => false,
        _ => return None,
    };
    let u16_at = |o: usize| u64::from(u16::from_le_bytes([head[o], head[o + 1]]));
    let (phoff, phentsize, phnum) = if elf64 {
        (u64_at(&head, 0x20), u16_at(0x36), u16_at(0x38))
    } else {
        (u64::from(u32_at(&head, 0x1c)), u16_at(0x2a), u16_at(0x2c))
    };
    if phnum == 0 || phnum > 32 || !(32..=64).contains(&phentsize) {
        return None;
    }
    let mut phdrs = vec![0u8; (phentsize * phnum) as usize];
    mem.read_exact_at(base + phoff, &mut phdrs).ok()?;
    // The image's size: the end of its last PT_LOAD (a vdso is linked at 0).
    let size = phdrs
        .chunks_exact(phentsize as usize)
        .filter(|ph| u32_at(ph, 0) == 1)
        .map(|ph| {
            if elf64 {
                u64_at(ph, 0x10).saturating_add(u64_at(ph, 0x28))
            } else {
                u64::from(u32_at(ph, 0x08)).saturating_add(u64::from(u32_at(ph, 0x14)))
            }
        })
        .max()?;
    if size == 0 || size > 1 << 20 {
        return None;
    }
    let mut image = vec![0u8; size as usize];
    let n = mem.read_at(base, &mut image).ok()?;
    let pat = arch.syscall_insn();
    image[..n]
        .windows(2)
        .position(|p| p == pat)
        .map(|i| base + i as u64)
}

/// A scratch area in the target for syscalls that take pointers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Scratch {
    addr: u64,
    len: u64,
    /// Mapped by us (and so unmapped by us), or lent by the caller.
    owned: bool,
}

/// Remote syscalls in one stopped thread, through one syscall instruction, with typed wrappers
/// for the calls capture and restore need.
///
/// Calls that take pointers use a scratch area in the target: by default one page mapped (with a
/// remote mmap) on first need and unmapped by [`RemoteSyscaller::finish`] or on drop; restore can
/// lend an area it owns with [`RemoteSyscaller::set_scratch`]. While it exists the page shows in
/// /proc/PID/maps: read the maps before or after, or skip [`RemoteSyscaller::scratch_range`].
#[derive(Debug)]
pub struct RemoteSyscaller<'t> {
    tracee: &'t mut Tracee,
    insn: u64,
    arch: Arch,
    mem: ProcMem,
    scratch: Option<Scratch>,
    batch: Option<BatchArea>,
}

/// Where [`RemoteSyscaller::batch`] runs its tables: the loop's code page and the table area.
/// Mapped in the target on first use, unmapped by [`RemoteSyscaller::finish`] of the syscaller
/// that mapped it; other threads of the process share it ([`RemoteSyscaller::set_batch_area`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchArea {
    /// The loop ([`crate::batch::loop_code`]), in a page mapped read and execute.
    pub code: u64,
    /// The table area (read-write) and its length.
    pub table: (u64, u64),
    owned: bool,
}

/// Bytes of the table area a syscaller maps: 1,023 x86_64 calls (2,047 i386) per resume.
const BATCH_AREA: u64 = 64 << 10;

impl<'t> RemoteSyscaller<'t> {
    /// Binds to `tracee` (which must be stopped) and the instruction at `insn`, which must be
    /// `syscall` for an x86_64 thread, `int 0x80` for an i386 one.
    pub fn new(tracee: &'t mut Tracee, insn: u64) -> Result<RemoteSyscaller<'t>> {
        let arch = tracee.arch()?;
        let mem = ProcMem::open(tracee.tid(), true)?;
        Ok(RemoteSyscaller {
            tracee,
            insn,
            arch,
            mem,
            scratch: None,
            batch: None,
        })
    }

    /// Binds to `tracee`, finding the instruction with [`find_syscall_insn`].
    pub fn find(tracee: &'t mut Tracee) -> Result<RemoteSyscaller<'t>> {
        let arch = tracee.arch()?;
        let insn = find_syscall_insn(tracee.tid(), arch)?;
        Self::new(tracee, insn)
    }

    /// The thread.
    pub fn tracee(&mut self) -> &mut Tracee {
        self.tracee
    }

    /// The thread's mode (fixed when bound).
    pub fn arch(&self) -> Arch {
        self.arch
    }

    /// Address of the syscall instruction used.
    pub fn insn_addr(&self) -> u64 {
        self.insn
    }

    /// The target's memory, for reading and writing what the calls use.
    pub fn mem(&self) -> &ProcMem {
        &self.mem
    }

    /// Forks the process of this (stopped) thread into a copy-on-write snapshot of its memory:
    /// a remote `clone(0, ...)` (no exit signal, so the process gets no SIGCHLD) with
    /// `PTRACE_O_TRACECLONE` set for the call, so that the child is attached to this tracer and
    /// stopped before it runs an instruction. It never runs: [`Snapshot`] kills it when dropped.
    /// Its parent, the process, must reap it afterwards (a `wait4` with `__WALL`): the kernel
    /// leaves a child without exit signal a zombie until then.
    pub fn fork_snapshot(&mut self) -> Result<Snapshot> {
        self.tracee
            .set_options(crate::Options::PTRACE_O_TRACECLONE)?;
        let r = self.syscall(Sysno::Clone, &[0, 0, 0, 0, 0]);
        let reset = self.tracee.set_options(crate::Options::empty());
        let pid = r? as i32;
        let child = match Tracee::adopt(pid) {
            Ok(c) => c,
            Err(e) => {
                // Never let it run the parent's code.
                let _ = crate::sys::tkill(pid, libc::SIGKILL);
                return Err(e);
            }
        };
        reset?;
        Ok(Snapshot {
            pid,
            tracee: Some(child),
        })
    }

    /// Runs `sysno` with up to six arguments; returns the raw result (`-errno` on failure).
    pub fn syscall_raw(&mut self, sysno: Sysno, args: &[u64]) -> Result<i64> {
        let nr = sysno.nr(self.arch).ok_or(PtraceError::NoSyscallNr {
            sysno,
            arch: self.arch,
        })?;
        let mut a = [0u64; 6];
        for (d, &s) in a.iter_mut().zip(args) {
            *d = s;
        }
        self.tracee.remote_syscall(self.insn, nr, &a)
    }

    /// Runs `sysno`; a result in -4095..-1 becomes [`PtraceError::RemoteSyscall`].
    pub fn syscall(&mut self, sysno: Sysno, args: &[u64]) -> Result<u64> {
        let r = self.syscall_raw(sysno, args)?;
        self.checked(sysno, r)
    }

    /// The raw result `r` of `sysno`: -4095..-1 as [`PtraceError::RemoteSyscall`], else the
    /// value as an unsigned word of the thread's mode.
    fn checked(&self, sysno: Sysno, r: i64) -> Result<u64> {
        if (-4095..0).contains(&r) {
            return Err(PtraceError::RemoteSyscall {
                tid: self.tracee.tid(),
                sysno,
                errno: nix::errno::Errno::from_raw(-r as i32),
            });
        }
        // Results of i386 calls are addresses or counts below 4 GiB: undo the sign extension.
        Ok(r as u64 & self.arch.word_max())
    }

    /// `getpid()` in the target (its TGID as the target sees it).
    pub fn getpid(&mut self) -> Result<i32> {
        Ok(self.syscall(Sysno::Getpid, &[])? as i32)
    }

    /// `mmap(addr, len, prot, flags, fd, offset)` in the target; for i386 this is `mmap2` and
    /// `offset` must be a multiple of 4096.
    pub fn mmap(
        &mut self,
        addr: u64,
        len: u64,
        prot: i32,
        flags: i32,
        fd: i32,
        offset: u64,
    ) -> Result<u64> {
        let off = match self.arch {
            Arch::X86_64 => offset,
            Arch::I386 => {
                if offset % PAGE != 0 {
                    return Err(PtraceError::RemoteSyscall {
                        tid: self.tracee.tid(),
                        sysno: Sysno::Mmap,
                        errno: nix::errno::Errno::EINVAL,
                    });
                }
                offset / PAGE
            }
        };
        self.syscall(
            Sysno::Mmap,
            &[
                addr,
                len,
                prot as u64,
                flags as u32 as u64,
                i64::from(fd) as u64,
                off,
            ],
        )
    }

    /// `munmap(addr, len)` in the target.
    pub fn munmap(&mut self, addr: u64, len: u64) -> Result<()> {
        self.syscall(Sysno::Munmap, &[addr, len]).map(drop)
    }

    /// `mprotect(addr, len, prot)` in the target.
    pub fn mprotect(&mut self, addr: u64, len: u64, prot: i32) -> Result<()> {
        self.syscall(Sysno::Mprotect, &[addr, len, prot as u64])
            .map(drop)
    }

    /// `brk(addr)` in the target; `brk(0)` returns the current break, which is in neither
    /// /proc/PID/stat nor maps.
    pub fn brk(&mut self, addr: u64) -> Result<u64> {
        self.syscall(Sysno::Brk, &[addr])
    }

    /// `close(fd)` in the target.
    pub fn close(&mut self, fd: i32) -> Result<()> {
        self.syscall(Sysno::Close, &[fd as u64]).map(drop)
    }

    /// Opens `path` in the target (`openat(AT_FDCWD, path, flags, mode)`, the path passed through
    /// the scratch area, so at most its length minus one bytes) and returns the new fd. For an
    /// i386 target add `O_LARGEFILE` (0o100000) yourself when the file may exceed 2 GiB: the
    /// kernel adds it only for 64-bit callers.
    pub fn open(&mut self, path: &[u8], flags: i32, mode: u32) -> Result<i32> {
        let (addr, len) = self.scratch()?;
        if path.contains(&0) || path.len() as u64 >= len {
            return Err(PtraceError::RemoteSyscall {
                tid: self.tracee.tid(),
                sysno: Sysno::Openat,
                errno: nix::errno::Errno::ENAMETOOLONG,
            });
        }
        let mut z = path.to_vec();
        z.push(0);
        self.mem.write_at(addr, &z)?;
        let at_fdcwd = i64::from(libc::AT_FDCWD) as u64;
        Ok(self.syscall(
            Sysno::Openat,
            &[at_fdcwd, addr, flags as u32 as u64, u64::from(mode)],
        )? as i32)
    }

    /// `lseek(fd, offset, whence)` in the target, with the full 64-bit offset in both modes: for
    /// i386 this is `_llseek(fd, offset >> 32, offset & 0xffffffff, &result, whence)`, the
    /// offset split over two registers and the result returned through the scratch area.
    pub fn lseek(&mut self, fd: i32, offset: i64, whence: i32) -> Result<u64> {
        match self.arch {
            Arch::X86_64 => self.syscall(Sysno::Lseek, &[fd as u64, offset as u64, whence as u64]),
            Arch::I386 => {
                let (addr, _) = self.scratch()?;
                let off = offset as u64;
                let mut b = [0u8; 8];
                self.call_with_out(
                    Sysno::Lseek,
                    &[
                        fd as u64,
                        off >> 32,
                        off & u64::from(u32::MAX),
                        addr,
                        whence as u64,
                    ],
                    &mut b,
                )?;
                Ok(u64_at(&b, 0))
            }
        }
    }

    /// Uses `[addr, addr + len)` of the target as scratch area instead of mapping a page; the
    /// caller keeps owning it (it is not unmapped). Unmaps a page this syscaller mapped before.
    pub fn set_scratch(&mut self, addr: u64, len: u64) -> Result<()> {
        self.release_scratch()?;
        self.scratch = Some(Scratch {
            addr,
            len,
            owned: false,
        });
        Ok(())
    }

    /// The scratch area, mapping one page in the target on first use. Its address and length.
    pub fn scratch(&mut self) -> Result<(u64, u64)> {
        if let Some(s) = self.scratch {
            return Ok((s.addr, s.len));
        }
        let addr = self.mmap(
            0,
            PAGE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )?;
        self.scratch = Some(Scratch {
            addr,
            len: PAGE,
            owned: true,
        });
        Ok((addr, PAGE))
    }

    /// Where the scratch area is, if one exists now.
    pub fn scratch_range(&self) -> Option<(u64, u64)> {
        self.scratch.map(|s| (s.addr, s.len))
    }

    fn release_scratch(&mut self) -> Result<()> {
        if let Some(s) = self.scratch.take() {
            if s.owned {
                self.munmap(s.addr, s.len)?;
            }
        }
        Ok(())
    }

    /// Unmaps the scratch page and the batch area (those this syscaller mapped) and reports
    /// errors, unlike drop.
    pub fn finish(mut self) -> Result<()> {
        let batch = self.release_batch();
        self.release_scratch()?;
        batch
    }

    /// The batch area, mapping it in the target on first use: a page with the loop, mapped
    /// read-execute and written through `/proc/PID/mem`, and [`BATCH_AREA`] bytes of table.
    pub fn batch_area(&mut self) -> Result<BatchArea> {
        if let Some(b) = self.batch {
            return Ok(b);
        }
        let anon = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
        let table = self.mmap(
            0,
            BATCH_AREA,
            libc::PROT_READ | libc::PROT_WRITE,
            anon,
            -1,
            0,
        )?;
        let code = match self.mmap(0, PAGE, libc::PROT_READ | libc::PROT_EXEC, anon, -1, 0) {
            Ok(c) => c,
            Err(e) => {
                let _ = self.munmap(table, BATCH_AREA);
                return Err(e);
            }
        };
        let area = BatchArea {
            code,
            table: (table, BATCH_AREA),
            owned: true,
        };
        // Owned from here: finish (or drop) unmaps both, also when the write fails.
        self.batch = Some(area);
        self.mem
            .write_at(code, crate::batch::loop_code(self.arch))?;
        Ok(area)
    }

    /// Runs this thread's batches in `area` (another syscaller's, of the same process), which
    /// this one does not unmap.
    pub fn set_batch_area(&mut self, area: BatchArea) -> Result<()> {
        self.release_batch()?;
        self.batch = Some(BatchArea {
            owned: false,
            ..area
        });
        Ok(())
    }

    fn release_batch(&mut self) -> Result<()> {
        if let Some(b) = self.batch.take() {
            if b.owned {
                let code = self.munmap(b.code, PAGE);
                self.munmap(b.table.0, b.table.1)?;
                code?;
            }
        }
        Ok(())
    }

    /// Runs `calls` in order with as few resumes of the thread as their number allows (see
    /// [`crate::batch`]); stops at the first that fails, returning the raw results of those
    /// that ran (the failed one last). Memory the calls read or write must be elsewhere (the
    /// scratch area), not in the batch area.
    pub fn batch_raw(&mut self, calls: &[(Sysno, [u64; 6])]) -> Result<Vec<i64>> {
        let area = self.batch_area()?;
        let entries = self.entries(calls)?;
        self.tracee
            .run_batches(&self.mem, area.code, area.table, &entries)
    }

    /// `calls` as batch entries of this thread's mode ([`crate::batch::entry`]).
    fn entries(&self, calls: &[(Sysno, [u64; 6])]) -> Result<Vec<crate::batch::Entry>> {
        let tid = self.tracee.tid();
        calls
            .iter()
            .map(|&(sysno, args)| crate::batch::entry(tid, self.arch, sysno, args))
            .collect()
    }

    /// [`RemoteSyscaller::batch_raw`], with a failed call as [`PtraceError::RemoteSyscall`].
    pub fn batch(&mut self, calls: &[(Sysno, [u64; 6])]) -> Result<Vec<u64>> {
        let raw = self.batch_raw(calls)?;
        // Only the last can have failed.
        raw.iter()
            .zip(calls)
            .map(|(&r, c)| self.checked(c.0, r))
            .collect()
    }

    /// Zeroes `len` bytes of scratch, runs `sysno` with `args`, reads the `len` bytes back.
    fn call_with_out(&mut self, sysno: Sysno, args: &[u64], out: &mut [u8]) -> Result<u64> {
        let (addr, _) = self.scratch()?;
        let zero = vec![0u8; out.len()];
        self.mem.write_at(addr, &zero)?;
        let r = self.syscall(sysno, args)?;
        self.mem.read_exact_at(addr, out)?;
        Ok(r)
    }

    /// The handler of signal `sig` (`rt_sigaction(sig, NULL, &old, 8)`).
    pub fn get_sigaction(&mut self, sig: i32) -> Result<SigAction> {
        let (addr, _) = self.scratch()?;
        let mut b = [0u8; 32];
        let n = SigAction::kernel_len(self.arch);
        self.call_with_out(Sysno::RtSigaction, &[sig as u64, 0, addr, 8], &mut b[..n])?;
        Ok(SigAction::from_bytes(self.arch, &b))
    }

    /// Installs a handler for `sig` (`rt_sigaction(sig, &act, NULL, 8)`).
    pub fn set_sigaction(&mut self, sig: i32, act: &SigAction) -> Result<()> {
        let (addr, _) = self.scratch()?;
        self.mem.write_at(addr, &act.to_bytes(self.arch))?;
        self.syscall(Sysno::RtSigaction, &[sig as u64, addr, 0, 8])
            .map(drop)
    }

    /// The handlers of signals 1..=64, in order (index 0 is signal 1). SIGKILL and SIGSTOP
    /// always read as SIG_DFL.
    pub fn get_all_sigactions(&mut self) -> Result<Vec<SigAction>> {
        self.get_sigactions(u64::MAX)
    }

    /// The handlers of signals 1..=64, asked (`rt_sigaction`) only for the signals in `which`
    /// (bit n-1 for signal n); the others are given as `SIG_DFL` with no flags and an empty
    /// mask.
    ///
    /// The calls run as one batch ([`RemoteSyscaller::batch`]), each writing its handler into
    /// its own slot of the scratch area.
    pub fn get_sigactions(&mut self, which: u64) -> Result<Vec<SigAction>> {
        let (addr, len) = self.scratch()?;
        let n = SigAction::kernel_len(self.arch) as u64;
        let sigs: Vec<u64> = (1..=64)
            .filter(|s| which & (1u64 << (s - 1)) != 0)
            .collect();
        if sigs.len() as u64 * n > len {
            return (1..=64)
                .map(|sig| {
                    if which & (1u64 << (sig - 1)) != 0 {
                        self.get_sigaction(sig)
                    } else {
                        Ok(SigAction::default())
                    }
                })
                .collect();
        }
        self.mem
            .write_at(addr, &vec![0u8; (sigs.len() as u64 * n) as usize])?;
        let calls: Vec<(Sysno, [u64; 6])> = sigs
            .iter()
            .enumerate()
            .map(|(i, &sig)| (Sysno::RtSigaction, [sig, 0, addr + i as u64 * n, 8, 0, 0]))
            .collect();
        self.batch(&calls)?;
        let mut b = vec![0u8; (sigs.len() as u64 * n) as usize];
        self.mem.read_exact_at(addr, &mut b)?;
        let mut out = vec![SigAction::default(); 64];
        for (i, &sig) in sigs.iter().enumerate() {
            let mut one = [0u8; 32];
            one[..n as usize].copy_from_slice(&b[i * n as usize..(i + 1) * n as usize]);
            out[sig as usize - 1] = SigAction::from_bytes(self.arch, &one);
        }
        Ok(out)
    }

    /// The alternate signal stack (`sigaltstack(NULL, &old)`).
    pub fn get_sigaltstack(&mut self) -> Result<SigAltStack> {
        let (addr, _) = self.scratch()?;
        let mut b = [0u8; 24];
        let n = SigAltStack::kernel_len(self.arch);
        self.call_with_out(Sysno::Sigaltstack, &[0, addr], &mut b[..n])?;
        Ok(SigAltStack::from_bytes(self.arch, &b))
    }

    /// Sets the alternate signal stack (`sigaltstack(&ss, NULL)`); EPERM while the thread runs
    /// on the current one, so restore sets it before the final registers.
    pub fn set_sigaltstack(&mut self, ss: &SigAltStack) -> Result<()> {
        let (addr, _) = self.scratch()?;
        self.mem.write_at(addr, &ss.to_bytes(self.arch))?;
        self.syscall(Sysno::Sigaltstack, &[addr, 0]).map(drop)
    }

    /// Interval timer `which` (ITIMER_REAL 0, VIRTUAL 1, PROF 2) of the process.
    pub fn getitimer(&mut self, which: i32) -> Result<ITimerVal> {
        let (addr, _) = self.scratch()?;
        let mut b = [0u8; 32];
        let n = psnc_abi::timer::kernel_len(self.arch);
        self.call_with_out(Sysno::Getitimer, &[which as u64, addr], &mut b[..n])?;
        Ok(ITimerVal::from_bytes(self.arch, &b))
    }

    /// Arms interval timer `which` (`setitimer(which, &val, NULL)`).
    pub fn setitimer(&mut self, which: i32, val: &ITimerVal) -> Result<()> {
        let (addr, _) = self.scratch()?;
        self.mem.write_at(addr, &val.to_bytes(self.arch))?;
        self.syscall(Sysno::Setitimer, &[which as u64, addr, 0])
            .map(drop)
    }

    /// The setting of POSIX timer `id` (`timer_gettime(id, &cur)`); ids are listed in
    /// /proc/PID/timers.
    pub fn timer_gettime(&mut self, id: i32) -> Result<ITimerSpec> {
        let (addr, _) = self.scratch()?;
        let mut b = [0u8; 32];
        let n = psnc_abi::timer::kernel_len(self.arch);
        self.call_with_out(Sysno::TimerGettime, &[id as u64, addr], &mut b[..n])?;
        Ok(ITimerSpec::from_bytes(self.arch, &b))
    }

    /// Arms POSIX timer `id` (`timer_settime(id, flags, &spec, NULL)`; flags 0 or
    /// TIMER_ABSTIME).
    pub fn timer_settime(&mut self, id: i32, flags: i32, spec: &ITimerSpec) -> Result<()> {
        let (addr, _) = self.scratch()?;
        self.mem.write_at(addr, &spec.to_bytes(self.arch))?;
        self.syscall(Sysno::TimerSettime, &[id as u64, flags as u64, addr, 0])
            .map(drop)
    }

    /// The thread's clear_child_tid address (`prctl(PR_GET_TID_ADDRESS, &addr)`; needs
    /// CONFIG_CHECKPOINT_RESTORE). The kernel stores a full 64-bit pointer also for i386 callers.
    pub fn prctl_get_tid_address(&mut self) -> Result<u64> {
        let (addr, _) = self.scratch()?;
        let mut b = [0u8; 8];
        self.call_with_out(
            Sysno::Prctl,
            &[libc::PR_GET_TID_ADDRESS as u64, addr],
            &mut b,
        )?;
        Ok(u64_at(&b, 0))
    }

    /// The parent-death signal (`prctl(PR_GET_PDEATHSIG, &sig)`), 0 when none.
    pub fn prctl_get_pdeathsig(&mut self) -> Result<i32> {
        let (addr, _) = self.scratch()?;
        let mut b = [0u8; 4];
        self.call_with_out(Sysno::Prctl, &[libc::PR_GET_PDEATHSIG as u64, addr], &mut b)?;
        Ok(u32_at(&b, 0) as i32)
    }

    /// Whether the process is a child subreaper (`prctl(PR_GET_CHILD_SUBREAPER, &flag)`).
    pub fn prctl_get_child_subreaper(&mut self) -> Result<bool> {
        let (addr, _) = self.scratch()?;
        let mut b = [0u8; 4];
        self.call_with_out(
            Sysno::Prctl,
            &[libc::PR_GET_CHILD_SUBREAPER as u64, addr],
            &mut b,
        )?;
        Ok(u32_at(&b, 0) != 0)
    }

    /// The dumpable flag (`prctl(PR_GET_DUMPABLE)`): 0, 1 or 2.
    pub fn prctl_get_dumpable(&mut self) -> Result<i32> {
        Ok(self.syscall(Sysno::Prctl, &[libc::PR_GET_DUMPABLE as u64])? as i32)
    }

    /// Queues signal `info` for thread `tid` of process `tgid`, from inside the target
    /// (`rt_tgsigqueueinfo`), keeping its si_code, si_pid, si_uid and value: a signal sent from
    /// outside cannot claim a kernel si_code or another sender. The kernel accepts si_code >= 0
    /// (and SI_TKILL) only when the calling thread's TID equals `tgid`: run it in the thread-group
    /// leader, for any thread of the process. For an i386 target the siginfo is converted to the
    /// compat layout first. The signal must be blocked in `tid`, or it is delivered as soon as
    /// the thread runs.
    pub fn rt_tgsigqueueinfo(&mut self, tgid: i32, tid: i32, info: &KernelSigInfo) -> Result<()> {
        let (addr, _) = self.scratch()?;
        let bytes = match self.arch {
            Arch::X86_64 => *info,
            Arch::I386 => psnc_abi::siginfo::to_compat(info),
        };
        self.mem.write_at(addr, &bytes.0)?;
        self.syscall(
            Sysno::RtTgsigqueueinfo,
            &[tgid as u64, tid as u64, info.signo() as u64, addr],
        )
        .map(drop)
    }

    /// The thread's robust-futex list head and length, asked from inside it
    /// (`get_robust_list(0, &head, &len)`); for an i386 thread this is the compat list, which
    /// the tool's own `get_robust_list` cannot see.
    pub fn get_robust_list(&mut self) -> Result<(u64, u64)> {
        let (addr, _) = self.scratch()?;
        let w = self.arch.word_size() as u64;
        let mut b = [0u8; 16];
        let n = 2 * w as usize;
        self.call_with_out(Sysno::GetRobustList, &[0, addr, addr + w], &mut b[..n])?;
        Ok(match self.arch {
            Arch::X86_64 => (u64_at(&b, 0), u64_at(&b, 8)),
            Arch::I386 => (u64::from(u32_at(&b, 0)), u64::from(u32_at(&b, 4))),
        })
    }
}

/// What [`RemoteSyscaller::get_thread_calls`] asks one thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ThreadCalls {
    /// `sigaltstack(NULL, &old)`.
    pub sigaltstack: SigAltStack,
    /// `prctl(PR_GET_TID_ADDRESS)`: the thread's clear_child_tid.
    pub clear_child_tid: u64,
    /// `get_robust_list(0, ...)`: head and length, asked of i386 threads only.
    pub robust_list: Option<(u64, u64)>,
}

/// What [`RemoteSyscaller::get_process_calls`] asks a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProcessCalls {
    /// `brk(0)`: the program break.
    pub brk: u64,
    /// `prctl(PR_GET_DUMPABLE)`.
    pub dumpable: u32,
    /// `prctl(PR_GET_PDEATHSIG, &sig)`.
    pub pdeathsig: u32,
    /// `prctl(PR_GET_CHILD_SUBREAPER, &flag)`.
    pub child_subreaper: bool,
    /// `prctl(PR_GET_SECUREBITS)`.
    pub securebits: u32,
    /// `getitimer` of ITIMER_REAL, ITIMER_VIRTUAL and ITIMER_PROF.
    pub itimers: [ITimerVal; 3],
}

impl RemoteSyscaller<'_> {
    /// The process-wide state only the process reports, in one batch (one resume): the break,
    /// dumpable, the parent-death signal, child-subreaper, the securebits and the three
    /// interval timers. Each output has its own slot of the scratch area.
    pub fn get_process_calls(&mut self) -> Result<ProcessCalls> {
        let (addr, _) = self.scratch()?;
        // Slots: pdeathsig at 0, child_subreaper at 4, the itimers at 16, 48 and 80.
        self.mem.write_at(addr, &[0u8; 128])?;
        let timer = |w: u64| addr + 16 + 32 * w;
        let calls = [
            (Sysno::Brk, [0, 0, 0, 0, 0, 0]),
            (Sysno::Prctl, [libc::PR_GET_DUMPABLE as u64, 0, 0, 0, 0, 0]),
            (
                Sysno::Prctl,
                [libc::PR_GET_PDEATHSIG as u64, addr, 0, 0, 0, 0],
            ),
            (
                Sysno::Prctl,
                [libc::PR_GET_CHILD_SUBREAPER as u64, addr + 4, 0, 0, 0, 0],
            ),
            (
                Sysno::Prctl,
                [libc::PR_GET_SECUREBITS as u64, 0, 0, 0, 0, 0],
            ),
            (Sysno::Getitimer, [0, timer(0), 0, 0, 0, 0]),
            (Sysno::Getitimer, [1, timer(1), 0, 0, 0, 0]),
            (Sysno::Getitimer, [2, timer(2), 0, 0, 0, 0]),
        ];
        let r = self.batch(&calls)?;
        let mut b = [0u8; 128];
        self.mem.read_exact_at(addr, &mut b)?;
        let itimer = |w: usize| {
            let mut t = [0u8; 32];
            t.copy_from_slice(&b[16 + 32 * w..48 + 32 * w]);
            ITimerVal::from_bytes(self.arch, &t)
        };
        Ok(ProcessCalls {
            brk: r[0],
            dumpable: r[1] as u32,
            pdeathsig: u32_at(&b, 0),
            child_subreaper: u32_at(&b, 4) != 0,
            securebits: r[4] as u32,
            itimers: [itimer(0), itimer(1), itimer(2)],
        })
    }

    /// The state only the thread itself reports, in one batch (one resume): its alternate
    /// signal stack, its clear_child_tid address and, for an i386 thread, its compat robust
    /// list (an x86_64 thread's is read from outside).
    pub fn get_thread_calls(&mut self) -> Result<ThreadCalls> {
        let (addr, _) = self.scratch()?;
        self.mem.write_at(addr, &[0u8; THREAD_OUT as usize])?;
        self.batch(&ThreadCalls::calls(self.arch, addr))?;
        let mut b = [0u8; THREAD_OUT as usize];
        self.mem.read_exact_at(addr, &mut b)?;
        Ok(ThreadCalls::decode(self.arch, &b))
    }
}

/// Bytes of output one thread's [`ThreadCalls`] write: sigaltstack at 0 (24 bytes), the tid
/// address at 32, the robust list at 48.
const THREAD_OUT: u64 = 64;

impl ThreadCalls {
    /// The calls of a thread of mode `arch`, writing into `[out, out + THREAD_OUT)`.
    fn calls(arch: Arch, out: u64) -> Vec<(Sysno, [u64; 6])> {
        let w = arch.word_size() as u64;
        let mut calls = vec![
            (Sysno::Sigaltstack, [0, out, 0, 0, 0, 0]),
            (
                Sysno::Prctl,
                [libc::PR_GET_TID_ADDRESS as u64, out + 32, 0, 0, 0, 0],
            ),
        ];
        if arch == Arch::I386 {
            calls.push((Sysno::GetRobustList, [0, out + 48, out + 48 + w, 0, 0, 0]));
        }
        calls
    }

    /// What the calls wrote: `THREAD_OUT` bytes.
    fn decode(arch: Arch, b: &[u8]) -> ThreadCalls {
        let n = SigAltStack::kernel_len(arch);
        let mut ss = [0u8; 24];
        ss[..n].copy_from_slice(&b[..n]);
        ThreadCalls {
            sigaltstack: SigAltStack::from_bytes(arch, &ss),
            clear_child_tid: u64_at(b, 32),
            robust_list: (arch == Arch::I386)
                .then(|| (u64::from(u32_at(b, 48)), u64::from(u32_at(b, 52)))),
        }
    }
}

impl RemoteSyscaller<'_> {
    /// [`RemoteSyscaller::get_thread_calls`] of every thread of `others` (the other stopped
    /// threads of this syscaller's process), run side by side: each thread gets its own slot
    /// of the batch area (table and outputs), all of a group are resumed before any is waited
    /// for, and the group's slots are written and read back with one access each. A process of
    /// 1,024 threads costs five groups, not 1,024 round trips of the tool.
    pub fn get_thread_calls_of(&mut self, others: &mut [Tracee]) -> Result<Vec<ThreadCalls>> {
        let area = self.batch_area()?;
        let arch = self.arch;
        let ncalls = ThreadCalls::calls(arch, 0).len() as u64;
        let table_len = crate::batch::CONTROL + ncalls * crate::batch::entry_size(arch);
        // Per thread: control block and table, then its outputs, rounded to a cache line.
        let slot = (table_len + THREAD_OUT).div_ceil(64) * 64;
        let per_group = ((area.table.1 / slot) as usize).max(1);
        let mut out = Vec::with_capacity(others.len());
        for group in others.chunks_mut(per_group) {
            let span = (slot * group.len() as u64) as usize;
            self.mem.write_at(area.table.0, &vec![0u8; span])?;
            let mut started = Vec::with_capacity(group.len());
            let mut failed = None;
            for (i, t) in group.iter_mut().enumerate() {
                let base = area.table.0 + i as u64 * slot;
                let calls = ThreadCalls::calls(arch, base + table_len);
                match self
                    .entries(&calls)
                    .and_then(|e| t.start_batch(&self.mem, area.code, (base, table_len), &e))
                {
                    Ok(s) => started.push(s),
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            // Every started thread is finished (its registers put back), whatever failed.
            let mut results = Vec::with_capacity(started.len());
            for (t, s) in group.iter_mut().zip(started) {
                let tid = t.tid();
                match t.finish_batch(&self.mem, s) {
                    Ok(r) => results.push((tid, r)),
                    Err(e) => {
                        failed.get_or_insert(e);
                    }
                }
            }
            if let Some(e) = failed {
                return Err(e);
            }
            let calls = ThreadCalls::calls(arch, 0);
            for (tid, r) in &results {
                if let Some((i, &bad)) = r.iter().enumerate().find(|(_, r)| (-4095..0).contains(*r))
                {
                    return Err(PtraceError::RemoteSyscall {
                        tid: *tid,
                        sysno: calls[i].0,
                        errno: nix::errno::Errno::from_raw(-bad as i32),
                    });
                }
            }
            let mut b = vec![0u8; span];
            self.mem.read_exact_at(area.table.0, &mut b)?;
            for i in 0..group.len() {
                let o = (i as u64 * slot + table_len) as usize;
                out.push(ThreadCalls::decode(arch, &b[o..o + THREAD_OUT as usize]));
            }
        }
        Ok(out)
    }
}

impl Drop for RemoteSyscaller<'_> {
    fn drop(&mut self) {
        let _ = self.release_batch();
        let _ = self.release_scratch();
    }
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_ne_bytes(a)
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[o..o + 4]);
    u32::from_ne_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn i386_arguments_must_fit() {
        assert_eq!(fit(1, Arch::I386, "x", u64::MAX).ok(), Some(0xffff_ffff));
        assert_eq!(fit(1, Arch::I386, "x", 0x1234).ok(), Some(0x1234));
        assert!(matches!(
            fit(1, Arch::I386, "x", 0x1_0000_0000),
            Err(PtraceError::DoesNotFit {
                value: 0x1_0000_0000,
                ..
            })
        ));
        assert_eq!(
            fit(1, Arch::X86_64, "x", 0x1_0000_0000).ok(),
            Some(0x1_0000_0000)
        );
    }
}

/// A copy-on-write snapshot of a process's memory ([`RemoteSyscaller::fork_snapshot`]): a
/// child made by `clone` that is stopped before its first instruction and never runs. Its
/// memory reads as the parent's did at the clone. Dropping it kills it (SIGKILL, reaped by this
/// tracer); it is never detached, which would let it run the parent's code.
#[derive(Debug)]
pub struct Snapshot {
    pid: i32,
    tracee: Option<Tracee>,
}

impl Snapshot {
    /// The snapshot's PID (for `process_vm_readv`).
    pub fn pid(&self) -> i32 {
        self.pid
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        if let Some(t) = self.tracee.take() {
            let _ = t.kill();
        }
    }
}
