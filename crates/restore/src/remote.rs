//! The task being rebuilt, as the restore drives it: one traced thread, one system-call
//! instruction to run calls from, and a scratch area for their arguments.
//!
//! Every remote call goes through [`Task::call`], which names the step in its error, so a failure
//! reads "restoring process 4242: recreating mapping 0x400000-0x401000: mmap failed: EEXIST".
//! The calls are numbered by [`Sysno`], psnc-abi's one table for both modes, restore-only calls
//! such as `pidfd_getfd`, `setresuid` and `capset` included.
//!
//! Calls that take no memory arguments and come by the thousand (an `mmap` per VMA, an
//! `mprotect` or `madvise` per VMA) go through [`Task::batch`]: their table is written to the
//! scratch area and the batch loop (in a page of the restore's region, [`crate::placement`]) runs
//! it in one resume of the task, where each
//! [`Task::call`] costs about ten ptrace round trips. A process with 60,000 VMAs is rebuilt
//! with 15 resumes instead of 60,000.

use psnc_abi::{Arch, Sysno};
use psnc_ptrace::{ProcMem, PtraceError, RemoteSyscaller, Tracee};

use crate::error::{RestoreError, Result};

/// The traced task being rebuilt.
#[derive(Debug)]
pub struct Task {
    /// Its PID (= the image's).
    pub pid: i32,
    /// The traced (only, for now) thread.
    pub tracee: Tracee,
    /// Its mode.
    pub arch: Arch,
    /// Address of the system-call instruction calls run from.
    pub insn: u64,
    /// The batch loop ([`psnc_ptrace::batch`]) in the restore's region, mapped with the
    /// scratch area; without it [`Task::batch`] runs its calls one by one.
    pub batch: Option<u64>,
    /// `/proc/PID/mem`, opened for writing.
    pub mem: ProcMem,
    /// Scratch area: address and length.
    pub scratch: (u64, u64),
    /// Print each step on stderr.
    pub verbose: bool,
    /// When the restore started, for the times in the step log.
    pub started: std::time::Instant,
}

impl Task {
    /// Runs `f` with `thread` (another thread of the same process) as the traced thread: its
    /// remote calls run in that thread, with the same memory, instruction and scratch area.
    pub fn in_thread<T>(
        &mut self,
        thread: &mut Tracee,
        f: impl FnOnce(&mut Task) -> Result<T>,
    ) -> Result<T> {
        std::mem::swap(&mut self.tracee, thread);
        let r = f(self);
        std::mem::swap(&mut self.tracee, thread);
        r
    }

    /// Kills the half-built task (SIGKILL) and reaps it.
    pub fn kill(self) {
        let _ = self.tracee.kill();
    }

    /// Prints a step of the rebuild when verbose.
    pub fn log(&self, msg: impl FnOnce() -> String) {
        if self.verbose {
            eprintln!(
                "psnc-restore: {:8.3}s [{}] {}",
                self.started.elapsed().as_secs_f64(),
                self.pid,
                msg()
            );
        }
    }

    /// Wraps a ptrace error as a failed step.
    pub fn step_err(&self, step: impl Into<String>) -> impl FnOnce(PtraceError) -> RestoreError {
        let pid = self.pid as u32;
        let step = step.into();
        move |source| RestoreError::Step { pid, step, source }
    }

    /// Runs `sysno` with `args` in the task; an error result becomes
    /// [`RestoreError::RemoteCall`] naming `step`.
    pub fn call(&mut self, step: &str, sysno: Sysno, args: &[u64]) -> Result<u64> {
        let r = self.call_raw(step, sysno, args)?;
        self.checked(step, sysno, r)
    }

    /// The raw result `r` of `sysno`: an error in -4095..-1 as [`RestoreError::RemoteCall`]
    /// naming `step`, else the value as an unsigned word of the task's mode.
    pub fn checked(&self, step: &str, sysno: Sysno, r: i64) -> Result<u64> {
        if (-4095..0).contains(&r) {
            return Err(RestoreError::RemoteCall {
                pid: self.pid as u32,
                step: step.to_string(),
                call: sysno.kernel_name(self.arch),
                errno: nix::errno::Errno::from_raw(-r as i32),
            });
        }
        // Results of i386 calls are addresses or counts below 4 GiB: undo the sign extension.
        Ok(r as u64 & self.arch.word_max())
    }

    /// Runs `sysno` and returns the raw result (`-errno` on failure).
    pub fn call_raw(&mut self, step: &str, sysno: Sysno, args: &[u64]) -> Result<i64> {
        let nr = sysno
            .nr(self.arch)
            .ok_or(PtraceError::NoSyscallNr {
                sysno,
                arch: self.arch,
            })
            .map_err(self.step_err(step))?;
        let mut a = [0u64; 6];
        for (d, &s) in a.iter_mut().zip(args) {
            *d = s;
        }
        let insn = self.insn;
        self.tracee
            .remote_syscall(insn, nr, &a)
            .map_err(self.step_err(step))
    }

    /// Runs `calls` in order and returns their results (as [`Task::call`] does); stops at the
    /// first that fails, which becomes [`RestoreError::RemoteCall`] naming its step, and the
    /// calls after it are not run.
    pub fn batch(&mut self, calls: &[Call]) -> Result<Vec<u64>> {
        let raw = self.batch_until_error(calls)?;
        // Only the last can have failed.
        raw.iter()
            .zip(calls)
            .map(|(&r, c)| self.checked(&c.step, c.sysno, r))
            .collect()
    }

    /// Runs every call of `calls`, a failed one included, and returns each raw result
    /// (`-errno` on failure), for callers that tolerate some errors.
    pub fn batch_raw(&mut self, calls: &[Call]) -> Result<Vec<i64>> {
        let mut out = Vec::with_capacity(calls.len());
        while out.len() < calls.len() {
            let done = self.batch_until_error(&calls[out.len()..])?;
            out.extend(done);
        }
        Ok(out)
    }

    /// Runs `calls` until the first that fails; returns the raw results of those that ran, the
    /// failed one last. Without the batch loop, one remote call each.
    fn batch_until_error(&mut self, calls: &[Call]) -> Result<Vec<i64>> {
        let Some(entry) = self.batch else {
            let mut out = Vec::with_capacity(calls.len());
            for c in calls {
                let r = self.call_raw(&c.step, c.sysno, &c.args)?;
                out.push(r);
                if (-4095..0).contains(&r) {
                    break;
                }
            }
            return Ok(out);
        };
        let tid = self.tracee.tid();
        let entries = calls
            .iter()
            .map(|c| {
                psnc_ptrace::batch::entry(tid, self.arch, c.sysno, c.args)
                    .map_err(self.step_err(&c.step))
            })
            .collect::<Result<Vec<_>>>()?;
        let step = match calls.first() {
            Some(c) => format!("{} (a batch of {})", c.step, calls.len()),
            None => return Ok(Vec::new()),
        };
        let tables = (self.scratch.0, self.data_offset());
        self.tracee
            .run_batches(&self.mem, entry, tables, &entries)
            .map_err(self.step_err(&step))
    }

    /// Where the data of a batch's calls goes in the scratch area (an offset for
    /// [`Task::put`]): its second half; the first holds the batch's tables.
    pub fn data_offset(&self) -> u64 {
        self.scratch.1 / 2
    }

    /// Writes `bytes` into the task's memory at `addr`, through protections.
    pub fn write(&self, step: &str, addr: u64, bytes: &[u8]) -> Result<()> {
        self.mem.write_at(addr, bytes).map_err(self.step_err(step))
    }

    /// Copies `bytes` to the scratch area at `offset` and returns their address in the task.
    pub fn put(&self, step: &str, offset: u64, bytes: &[u8]) -> Result<u64> {
        let end = offset.checked_add(bytes.len() as u64);
        if !end.is_some_and(|e| e <= self.scratch.1) {
            return Err(RestoreError::Inconsistent(format!(
                "{step}: {} bytes of arguments do not fit the {}-byte scratch area",
                bytes.len(),
                self.scratch.1
            )));
        }
        let addr = self.scratch.0 + offset;
        self.write(step, addr, bytes)?;
        Ok(addr)
    }

    /// A NUL-terminated copy of `s` in the scratch area at `offset`.
    pub fn put_str(&self, step: &str, offset: u64, s: &str) -> Result<u64> {
        let mut b = s.as_bytes().to_vec();
        b.push(0);
        self.put(step, offset, &b)
    }

    /// psnc-ptrace's typed wrappers (sigaction, sigaltstack, itimers) on this task, with the
    /// restore's scratch area lent to them. `f` runs with the syscaller; errors name `step`.
    pub fn with_syscaller<T>(
        &mut self,
        step: &str,
        f: impl FnOnce(&mut RemoteSyscaller<'_>) -> psnc_ptrace::Result<T>,
    ) -> Result<T> {
        let pid = self.pid as u32;
        let (insn, (saddr, slen)) = (self.insn, self.scratch);
        let wrap = |source| RestoreError::Step {
            pid,
            step: step.to_string(),
            source,
        };
        let mut sc = RemoteSyscaller::new(&mut self.tracee, insn).map_err(wrap)?;
        sc.set_scratch(saddr, slen).map_err(wrap)?;
        let out = f(&mut sc).map_err(wrap)?;
        sc.finish().map_err(wrap)?;
        Ok(out)
    }
}

/// One system call of a [`Task::batch`]: only register arguments (memory it reads or writes
/// must be in place before the batch runs).
#[derive(Debug, Clone)]
pub struct Call {
    /// What the call is for, named in its error.
    pub step: String,
    /// The call.
    pub sysno: Sysno,
    /// Its six arguments (unused ones 0).
    pub args: [u64; 6],
}

impl Call {
    /// A call of `sysno` with `args` (up to six; the rest are 0).
    pub fn new(step: String, sysno: Sysno, args: &[u64]) -> Call {
        let mut a = [0u64; 6];
        for (d, &s) in a.iter_mut().zip(args) {
            *d = s;
        }
        Call {
            step,
            sysno,
            args: a,
        }
    }
}
