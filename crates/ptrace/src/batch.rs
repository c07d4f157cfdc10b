//! Many system calls in one resume of a stopped thread.
//!
//! A remote syscall ([`Tracee::remote_syscall`]) costs about ten ptrace round trips: registers
//! read and written twice, a single-step, a wait, the siginfo. A batch writes a table of calls
//! into the target and runs them with a small loop placed there ([`loop_code`]): one
//! `PTRACE_CONT` and one stop for the whole table, the loop ending at an `int3`
//! ([`Tracee::run_to_trap`]). Restore maps the loop in a page of its region for the whole
//! rebuild; capture maps it into the target for the calls of its stop
//! ([`crate::RemoteSyscaller::batch`]).
//!
//! ```text
//!   area + 0                 control block (8 bytes; i386: entry pointer, count left)
//!   area + CONTROL           entry 0: nr, a0..a5, result   (8 words: 64 / 32 bytes)
//!                            entry 1 ...
//! ```
//!
//! The loop runs the entries in order and stops after the first that fails (a result in
//! -4095..-1), so a failed `mmap` is never followed by calls that assume it worked; the caller
//! learns how many ran, and continues after a failure it tolerates.
//!
//! x86_64 keeps the entry pointer in r12 and the count in r13 (`syscall` clobbers only rax, rcx
//! and r11). i386 has no register to spare (six arguments and the number): esp points at the
//! control block. Both loops were assembled with GNU as; the bytes below carry the assembly.

use crate::arch::{Arch, Regs, Sysno};
use crate::error::{PtraceError, Result};
use crate::mem::ProcMem;
use crate::tracee::Tracee;
use psnc_abi::regs::{i386, x86_64};

/// The x86_64 loop: r12 = the first entry, r13 = how many.
const LOOP_64: &[u8] = &[
    0x4d, 0x85, 0xed, //                 0: test r13, r13
    0x74, 0x3a, //                          jz 0x3f
    0x49, 0x8b, 0x04, 0x24, //              mov rax, [r12]
    0x49, 0x8b, 0x7c, 0x24, 0x08, //        mov rdi, [r12+8]
    0x49, 0x8b, 0x74, 0x24, 0x10, //        mov rsi, [r12+16]
    0x49, 0x8b, 0x54, 0x24, 0x18, //        mov rdx, [r12+24]
    0x4d, 0x8b, 0x54, 0x24, 0x20, //        mov r10, [r12+32]
    0x4d, 0x8b, 0x44, 0x24, 0x28, //        mov r8, [r12+40]
    0x4d, 0x8b, 0x4c, 0x24, 0x30, //        mov r9, [r12+48]
    0x0f, 0x05, //                          syscall
    0x49, 0x89, 0x44, 0x24, 0x38, //        mov [r12+56], rax
    0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff, //  cmp rax, -4095
    0x73, 0x09, //                          jae 0x3f
    0x49, 0x83, 0xc4, 0x40, //              add r12, 64
    0x49, 0xff, 0xcd, //                    dec r13
    0xeb, 0xc1, //                          jmp 0
    0xcc, //                          0x3f: int3
];

/// The i386 loop: esp = the control block, [esp] = the current entry, [esp+4] = how many left.
const LOOP_32: &[u8] = &[
    0x83, 0x7c, 0x24, 0x04, 0x00, //  0: cmp dword [esp+4], 0
    0x74, 0x31, //                       je 0x38
    0x8b, 0x2c, 0x24, //                 mov ebp, [esp]
    0x8b, 0x45, 0x00, //                 mov eax, [ebp]
    0x8b, 0x5d, 0x04, //                 mov ebx, [ebp+4]
    0x8b, 0x4d, 0x08, //                 mov ecx, [ebp+8]
    0x8b, 0x55, 0x0c, //                 mov edx, [ebp+12]
    0x8b, 0x75, 0x10, //                 mov esi, [ebp+16]
    0x8b, 0x7d, 0x14, //                 mov edi, [ebp+20]
    0x8b, 0x6d, 0x18, //                 mov ebp, [ebp+24]
    0xcd, 0x80, //                       int 0x80
    0x8b, 0x2c, 0x24, //                 mov ebp, [esp]
    0x89, 0x45, 0x1c, //                 mov [ebp+28], eax
    0x3d, 0x01, 0xf0, 0xff, 0xff, //     cmp eax, -4095
    0x73, 0x0a, //                       jae 0x38
    0x83, 0x04, 0x24, 0x20, //           add dword [esp], 32
    0xff, 0x4c, 0x24, 0x04, //           dec dword [esp+4]
    0xeb, 0xc8, //                       jmp 0
    0xcc, //                       0x38: int3
];

/// Bytes before the table in the area: the i386 control block (unused by x86_64).
pub const CONTROL: u64 = 8;

/// The loop for a thread of mode `arch`; its last byte is the `int3` it ends at.
pub fn loop_code(arch: Arch) -> &'static [u8] {
    match arch {
        Arch::X86_64 => LOOP_64,
        Arch::I386 => LOOP_32,
    }
}

/// Bytes per table entry: eight words of the mode.
pub fn entry_size(arch: Arch) -> u64 {
    8 * arch.word_size() as u64
}

/// How many entries fit an area of `len` bytes.
pub fn capacity(arch: Arch, len: u64) -> usize {
    (len.saturating_sub(CONTROL) / entry_size(arch)) as usize
}

/// One call of a batch: the number of the mode and six arguments.
pub type Entry = (u64, [u64; 6]);

/// `sysno` with `args` as an entry for a thread `tid` of mode `arch`: the number looked up, the
/// arguments checked to fit its registers as for a remote syscall (for i386, 32 bits or a
/// sign-extended negative value).
pub fn entry(tid: i32, arch: Arch, sysno: Sysno, args: [u64; 6]) -> Result<Entry> {
    let nr = sysno
        .nr(arch)
        .ok_or(PtraceError::NoSyscallNr { sysno, arch })?;
    let mut a = [0u64; 6];
    for (d, s) in a.iter_mut().zip(args) {
        *d = crate::remote::fit(tid, arch, "syscall argument", s)?;
    }
    Ok((nr, a))
}

/// A batch running in a thread ([`Tracee::start_batch`]), for [`Tracee::finish_batch`].
#[derive(Debug)]
#[must_use = "a started batch holds the thread's registers until it is finished"]
pub struct Started {
    saved: Regs,
    arch: Arch,
    area: u64,
    n: usize,
    trap: u64,
}

impl Tracee {
    /// Runs `calls` in this (stopped) thread with the loop at `code` (mapped executable in
    /// its process, [`loop_code`]), the table in `[area, area + len)` (writable, through `mem`,
    /// the process's `/proc/PID/mem`). Returns the raw result of each call that ran: all of
    /// them, or up to and including the first that failed. At most [`capacity`] calls.
    pub fn run_batch(
        &mut self,
        mem: &ProcMem,
        code: u64,
        area: (u64, u64),
        calls: &[Entry],
    ) -> Result<Vec<i64>> {
        let started = self.start_batch(mem, code, area, calls)?;
        self.finish_batch(mem, started)
    }

    /// [`Tracee::run_batch`] for any number of calls: as many runs of the loop as the area's
    /// [`capacity`] needs, stopping after the first call that fails. Returns the raw results
    /// of the calls that ran (the failed one last).
    pub fn run_batches(
        &mut self,
        mem: &ProcMem,
        code: u64,
        area: (u64, u64),
        calls: &[Entry],
    ) -> Result<Vec<i64>> {
        let per = capacity(self.arch()?, area.1).max(1);
        let mut out = Vec::with_capacity(calls.len());
        for chunk in calls.chunks(per) {
            let done = self.run_batch(mem, code, area, chunk)?;
            let failed =
                done.len() < chunk.len() || done.last().is_some_and(|r| (-4095..0).contains(r));
            out.extend(done);
            if failed {
                break;
            }
        }
        Ok(out)
    }

    /// The first half of [`Tracee::run_batch`]: writes the table and resumes the thread in
    /// the loop. Threads of one process, each with its own area, run their batches side by
    /// side when all are started before any is finished.
    pub fn start_batch(
        &mut self,
        mem: &ProcMem,
        code: u64,
        (area, len): (u64, u64),
        calls: &[Entry],
    ) -> Result<Started> {
        let arch = self.arch()?;
        let n = calls.len().min(capacity(arch, len));
        let mut table = Vec::with_capacity(CONTROL as usize + n * entry_size(arch) as usize);
        let base = area + CONTROL;
        // The control block (read by the i386 loop only), then the entries.
        table.extend_from_slice(&(base as u32).to_le_bytes());
        table.extend_from_slice(&(n as u32).to_le_bytes());
        for &(nr, args) in &calls[..n] {
            for v in std::iter::once(nr).chain(args).chain([0]) {
                match arch {
                    Arch::X86_64 => table.extend_from_slice(&v.to_le_bytes()),
                    Arch::I386 => table.extend_from_slice(&(v as u32).to_le_bytes()),
                }
            }
        }
        mem.write_at(area, &table)?;
        let saved = self.start_code(|r| {
            r.set_ip(code);
            match r {
                Regs::X86_64(r) => {
                    r[x86_64::R12] = base;
                    r[x86_64::R13] = n as u64;
                }
                Regs::I386(r) => r[i386::ESP] = area as u32,
            }
        })?;
        Ok(Started {
            saved,
            arch,
            area,
            n,
            trap: code + loop_code(arch).len() as u64 - 1,
        })
    }

    /// The second half of [`Tracee::run_batch`]: waits for the loop's end, puts the thread's
    /// registers back and reads the results.
    pub fn finish_batch(&mut self, mem: &ProcMem, s: Started) -> Result<Vec<i64>> {
        let regs = self.finish_code(s.saved, s.trap)?;
        let (arch, n) = (s.arch, s.n);
        let left = match regs {
            Regs::X86_64(r) => r[x86_64::R13],
            Regs::I386(_) => {
                let mut cb = [0u8; 8];
                mem.read_exact_at(s.area, &mut cb)?;
                u64::from(u32::from_le_bytes([cb[4], cb[5], cb[6], cb[7]]))
            }
        }
        .min(n as u64);
        // Every call before the one `left` counts from ran; that one too when it failed.
        let ran = n - left as usize + usize::from(left > 0);
        let size = entry_size(arch) as usize;
        let mut results = vec![0u8; ran * size];
        mem.read_exact_at(s.area + CONTROL, &mut results)?;
        let word = arch.word_size();
        Ok(results
            .chunks_exact(size)
            .map(|e| {
                let r = &e[7 * word..];
                match arch {
                    Arch::X86_64 => i64::from_le_bytes(r[..8].try_into().unwrap_or([0; 8])),
                    Arch::I386 => {
                        i64::from(i32::from_le_bytes(r[..4].try_into().unwrap_or([0; 4])))
                    }
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each loop's jumps land on its start and on its final `int3`.
    #[test]
    fn loops_jump_to_their_start_and_their_trap() {
        for (code, je, jae, jmp) in [(LOOP_64, 3, 0x34, 0x3d), (LOOP_32, 5, 0x2c, 0x36)] {
            let target = |at: usize| (at as i64 + 2 + i64::from(code[at + 1] as i8)) as usize;
            assert_eq!(code[je], 0x74, "je/jz");
            assert_eq!(target(je), code.len() - 1);
            assert_eq!(code[jae], 0x73);
            assert_eq!(target(jae), code.len() - 1);
            assert_eq!(code[jmp], 0xeb);
            assert_eq!(target(jmp), 0);
            assert_eq!(code[code.len() - 1], 0xcc);
        }
        assert_eq!(LOOP_64.len(), 64);
        assert_eq!(LOOP_32.len(), 57);
    }

    #[test]
    fn capacity_leaves_room_for_the_control_block() {
        assert_eq!(capacity(Arch::X86_64, 256 << 10), 4095);
        assert_eq!(capacity(Arch::I386, 256 << 10), 8191);
        assert_eq!(capacity(Arch::X86_64, 4), 0);
    }
}
