//! The task being rebuilt, as the restore drives it: one traced thread, one system-call
//! instruction to run calls from, and a scratch area for their arguments.
//!
//! Every remote call goes through [`Task::call`], which names the step in its error, so a failure
//! reads "restoring process 4242: recreating mapping 0x400000-0x401000: mmap failed: EEXIST".
//! The calls psnc-ptrace's [`Sysno`] table does not list (restore-only ones such as
//! `pidfd_getfd`, `setresuid`, `capset`) are numbered here, in [`Extra`], for both modes.

use psnc_format::model::{self, Arch};
use psnc_ptrace::{ProcMem, PtraceError, RemoteSyscaller, Sysno, Tracee};

use crate::error::{RestoreError, Result};

/// The ptrace crate's mode for a model mode.
pub fn ptrace_arch(a: Arch) -> psnc_ptrace::Arch {
    match a {
        Arch::X86_64 => psnc_ptrace::Arch::X86_64,
        Arch::I386 => psnc_ptrace::Arch::I386,
    }
}

/// The ptrace crate's registers for the model's.
pub fn ptrace_regs(r: &model::Regs) -> psnc_ptrace::Regs {
    match r {
        model::Regs::X86_64(v) => psnc_ptrace::Regs::X86_64(*v),
        model::Regs::I386(v) => psnc_ptrace::Regs::I386(*v),
    }
}

/// Restore-only system calls, with their numbers in each mode (x86_64 from `libc::SYS_*`, i386
/// from the kernel's `syscall_32.tbl`, checked against `asm/unistd_32.h` by a test).
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extra {
    PidfdOpen,
    PidfdGetfd,
    CloseRange,
    /// i386: `setresuid32`.
    Setresuid,
    /// i386: `setresgid32`.
    Setresgid,
    /// i386: `setgroups32` (32-bit gids).
    Setgroups,
    /// i386: `setfsuid32`.
    Setfsuid,
    /// i386: `setfsgid32`.
    Setfsgid,
    Capset,
    RtSigqueueinfo,
    Mlock2,
    Chroot,
}

impl Extra {
    /// The number in `arch`.
    pub fn nr(self, arch: psnc_ptrace::Arch) -> u64 {
        let (x64, x32): (libc::c_long, u64) = match self {
            Extra::PidfdOpen => (libc::SYS_pidfd_open, 434),
            Extra::PidfdGetfd => (libc::SYS_pidfd_getfd, 438),
            Extra::CloseRange => (libc::SYS_close_range, 436),
            Extra::Setresuid => (libc::SYS_setresuid, 208),
            Extra::Setresgid => (libc::SYS_setresgid, 210),
            Extra::Setgroups => (libc::SYS_setgroups, 206),
            Extra::Setfsuid => (libc::SYS_setfsuid, 215),
            Extra::Setfsgid => (libc::SYS_setfsgid, 216),
            Extra::Capset => (libc::SYS_capset, 185),
            Extra::RtSigqueueinfo => (libc::SYS_rt_sigqueueinfo, 178),
            Extra::Mlock2 => (libc::SYS_mlock2, 376),
            Extra::Chroot => (libc::SYS_chroot, 61),
        };
        match arch {
            psnc_ptrace::Arch::X86_64 => x64 as u64,
            psnc_ptrace::Arch::I386 => x32,
        }
    }

    /// The kernel's name in `arch`, as after `__NR_` in the uapi headers.
    pub fn kernel_name(self, arch: psnc_ptrace::Arch) -> &'static str {
        let i386 = arch == psnc_ptrace::Arch::I386;
        match self {
            Extra::PidfdOpen => "pidfd_open",
            Extra::PidfdGetfd => "pidfd_getfd",
            Extra::CloseRange => "close_range",
            Extra::Setresuid if i386 => "setresuid32",
            Extra::Setresuid => "setresuid",
            Extra::Setresgid if i386 => "setresgid32",
            Extra::Setresgid => "setresgid",
            Extra::Setgroups if i386 => "setgroups32",
            Extra::Setgroups => "setgroups",
            Extra::Setfsuid if i386 => "setfsuid32",
            Extra::Setfsuid => "setfsuid",
            Extra::Setfsgid if i386 => "setfsgid32",
            Extra::Setfsgid => "setfsgid",
            Extra::Capset => "capset",
            Extra::RtSigqueueinfo => "rt_sigqueueinfo",
            Extra::Mlock2 => "mlock2",
            Extra::Chroot => "chroot",
        }
    }

    /// Every entry, for the number test.
    pub const ALL: &'static [Extra] = &[
        Extra::PidfdOpen,
        Extra::PidfdGetfd,
        Extra::CloseRange,
        Extra::Setresuid,
        Extra::Setresgid,
        Extra::Setgroups,
        Extra::Setfsuid,
        Extra::Setfsgid,
        Extra::Capset,
        Extra::RtSigqueueinfo,
        Extra::Mlock2,
        Extra::Chroot,
    ];
}

/// A system call to run remotely: from psnc-ptrace's table or restore's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// A call of [`Sysno`].
    Sys(Sysno),
    /// A restore-only call.
    Extra(Extra),
}

impl From<Sysno> for Call {
    fn from(s: Sysno) -> Call {
        Call::Sys(s)
    }
}

impl From<Extra> for Call {
    fn from(e: Extra) -> Call {
        Call::Extra(e)
    }
}

impl Call {
    fn name(self, arch: psnc_ptrace::Arch) -> &'static str {
        match self {
            Call::Sys(s) => s.kernel_name(arch),
            Call::Extra(e) => e.kernel_name(arch),
        }
    }
}

/// The traced task being rebuilt.
#[derive(Debug)]
pub struct Task {
    /// Its PID (= the image's).
    pub pid: i32,
    /// The traced (only, for now) thread.
    pub tracee: Tracee,
    /// Its mode.
    pub arch: psnc_ptrace::Arch,
    /// Address of the system-call instruction calls run from.
    pub insn: u64,
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

    /// Runs `call` with `args` in the task; an error result becomes [`RestoreError::RemoteCall`]
    /// naming `step`.
    pub fn call(&mut self, step: &str, call: impl Into<Call>, args: &[u64]) -> Result<u64> {
        let call = call.into();
        let r = self.call_raw(step, call, args)?;
        if (-4095..0).contains(&r) {
            return Err(RestoreError::RemoteCall {
                pid: self.pid as u32,
                step: step.to_string(),
                call: call.name(self.arch),
                errno: nix::errno::Errno::from_raw(-r as i32),
            });
        }
        Ok(match self.arch {
            psnc_ptrace::Arch::X86_64 => r as u64,
            psnc_ptrace::Arch::I386 => r as u64 & u64::from(u32::MAX),
        })
    }

    /// Runs `call` and returns the raw result (`-errno` on failure).
    pub fn call_raw(&mut self, step: &str, call: impl Into<Call>, args: &[u64]) -> Result<i64> {
        let call = call.into();
        let nr = match call {
            Call::Sys(s) => s.nr(self.arch).ok_or(PtraceError::NoSyscallNr {
                sysno: s,
                arch: self.arch,
            }),
            Call::Extra(e) => Ok(e.nr(self.arch)),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The i386 numbers must be the kernel's; the uapi header is generated from its table.
    #[test]
    fn extra_numbers_match_uapi_headers() {
        for (arch, header) in [
            (psnc_ptrace::Arch::I386, "asm/unistd_32.h"),
            (psnc_ptrace::Arch::X86_64, "asm/unistd_64.h"),
        ] {
            let Ok(h) = std::fs::read_to_string(format!("/usr/include/x86_64-linux-gnu/{header}"))
                .or_else(|_| std::fs::read_to_string(format!("/usr/include/{header}")))
            else {
                psnc_testkit::skip(
                    format!("extra_numbers_match_uapi_headers {arch:?}"),
                    format!("no {header} (install linux-libc-dev)"),
                );
                continue;
            };
            for &e in Extra::ALL {
                let want = format!("#define __NR_{} ", e.kernel_name(arch));
                let line = h.lines().find(|l| l.starts_with(&want));
                let nr: Option<u64> = line.and_then(|l| l[want.len()..].trim().parse().ok());
                assert_eq!(nr, Some(e.nr(arch)), "{}", e.kernel_name(arch));
            }
        }
    }
}
