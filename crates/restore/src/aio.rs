//! AIO contexts (`io_setup`), recreated inside the task (see [`psnc_format::model::AioContext`]
//! and FORMAT.md §8.18).
//!
//! A context cannot be mapped like memory: its ring belongs to a kernel object. For each one,
//! [`restore_contexts`]:
//!
//! 1. keeps the ring's address free (a `PROT_NONE` placeholder, so that no other ring created
//!    here lands on it);
//! 2. runs `io_setup` with the `nr_events` that grows into a ring of the image's size (the
//!    kernel sizes rings by the number of possible CPUs: `crate::checks` refused the image
//!    before anything existed when this host makes another size);
//! 3. moves the kernel's own tail (which only completions move; the header in memory is a copy)
//!    to the image's `tail` by completing dummy writes of one byte to `/dev/null`, which complete
//!    inside `io_submit`, consuming them by storing `head` as CRIU does (the kernel reads `head`
//!    back from the ring), and wrapping once when `tail < head` so the kernel's slot accounting
//!    ends up as if the events had come in order;
//! 4. writes the image's completed events into their slots and sets `head`;
//! 5. moves the ring to its address with `mremap` (the kernel's `aio_ring_mremap` then makes
//!    the context id that address again), replacing the placeholder.
//!
//! Requests that were in flight at capture are not in the image and never complete.

use psnc_abi::aio::{
    io_setup_nr_events, AioRingHeader, Iocb, AIO_RING_HEADER_SIZE, IOCB_CMD_PWRITE, IOCB_SIZE,
    IO_EVENT_SIZE,
};
use psnc_format::model::{AioContext, Arch, Process};
use psnc_ptrace::Sysno;

use crate::error::{RestoreError, Result};
use crate::remote::Task;

const PROT_NONE: u64 = 0;
const MAP_PRIVATE: u64 = 0x02;
const MAP_ANONYMOUS: u64 = 0x20;
const MAP_FIXED_NOREPLACE: u64 = 0x10_0000;
const MREMAP_MAYMOVE: u64 = 1;
const MREMAP_FIXED: u64 = 2;
const AT_FDCWD: i64 = -100;
const O_WRONLY: u64 = 1;
const O_CLOEXEC: u64 = 0o2_000_000;

// The scratch area while a ring is rebuilt.
const IOCB_AT: u64 = 0;
const BUF_AT: u64 = IOCB_SIZE as u64;
const CTX_AT: u64 = BUF_AT + 8;
const PATH_AT: u64 = CTX_AT + 8;
const PTRS_AT: u64 = 128;
/// Most dummy requests submitted by one `io_submit` (their pointers fill 32 KiB of scratch).
const MAX_BATCH: u32 = 4096;

/// Recreates every AIO context of `p` at its address, with its head, tail and completed events.
pub fn restore_contexts(task: &mut Task, p: &Process) -> Result<()> {
    for a in &p.aio {
        task.call(
            &format!("keeping the address of AIO ring {:#x} free", a.ring),
            Sysno::Mmap,
            &[
                a.ring,
                a.ring_len,
                PROT_NONE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
                u64::MAX,
                0,
            ],
        )?;
    }
    for a in &p.aio {
        restore_context(task, p.pid, a)?;
    }
    if !p.aio.is_empty() {
        task.log(|| format!("{} AIO context(s) restored", p.aio.len()));
    }
    Ok(())
}

fn restore_context(task: &mut Task, pid: u32, a: &AioContext) -> Result<()> {
    let step = format!("recreating AIO context {:#x}", a.ring);
    let ctx_addr = task.put(&step, CTX_AT, &[0u8; 8])?;
    task.call(
        &step,
        Sysno::IoSetup,
        &[u64::from(io_setup_nr_events(a.nr_events)), ctx_addr],
    )?;
    let mut b = [0u8; 8];
    task.mem
        .read_exact_at(ctx_addr, &mut b)
        .map_err(task.step_err(&step))?;
    let ctx = match task.arch {
        Arch::X86_64 => u64::from_ne_bytes(b),
        Arch::I386 => u64::from(u32::from_ne_bytes([b[0], b[1], b[2], b[3]])),
    };
    let fresh = read_header(task, &step, ctx)?;
    if fresh.nr != a.nr_events {
        // checks::check_aio_rings predicted another size: the kernel's arithmetic changed.
        let _ = task.call_raw(&step, Sysno::IoDestroy, &[ctx]);
        return Err(RestoreError::Inconsistent(format!(
            "{step} of process {pid}: io_setup made a ring of {} slots, not {}",
            fresh.nr, a.nr_events
        )));
    }
    if a.head != 0 || a.tail != 0 {
        advance(task, &step, ctx, a)?;
    }
    // The completed events, into the slots from head to tail.
    let slot = |i: u32| ctx + u64::from(AIO_RING_HEADER_SIZE) + u64::from(i * IO_EVENT_SIZE);
    for (k, ev) in a.events.chunks(IO_EVENT_SIZE as usize).enumerate() {
        let i = (a.head + k as u32) % a.nr_events;
        task.write(&step, slot(i), ev)?;
    }
    let now = read_header(task, &step, ctx)?;
    if (now.head, now.tail) != (a.head, a.tail) {
        return Err(RestoreError::Inconsistent(format!(
            "{step}: the rebuilt ring has head {} and tail {}, not {} and {}",
            now.head, now.tail, a.head, a.tail
        )));
    }
    let moved = task.call(
        &format!("moving AIO ring {ctx:#x} to {:#x}", a.ring),
        Sysno::Mremap,
        &[
            ctx,
            a.ring_len,
            a.ring_len,
            MREMAP_MAYMOVE | MREMAP_FIXED,
            a.ring,
        ],
    )?;
    if moved != a.ring {
        return Err(RestoreError::Inconsistent(format!(
            "{step}: mremap put the ring at {moved:#x}"
        )));
    }
    task.log(|| {
        format!(
            "AIO context {:#x}: {} slots, head {}, tail {}, {} completed event(s)",
            a.ring,
            a.nr_events,
            a.head,
            a.tail,
            a.events.len() / IO_EVENT_SIZE as usize
        )
    });
    Ok(())
}

fn read_header(task: &Task, step: &str, ctx: u64) -> Result<AioRingHeader> {
    let mut h = [0u8; AIO_RING_HEADER_SIZE as usize];
    task.mem
        .read_exact_at(ctx, &mut h)
        .map_err(task.step_err(step))?;
    Ok(AioRingHeader::from_bytes(&h))
}

/// Moves the kernel's tail of the new ring `ctx` to `a.tail` and its head to `a.head` with
/// dummy writes to `/dev/null`.
fn advance(task: &mut Task, step: &str, ctx: u64, a: &AioContext) -> Result<()> {
    let path = task.put_str(step, PATH_AT, "/dev/null")?;
    let fd = task.call(
        step,
        Sysno::Openat,
        &[AT_FDCWD as u64, path, O_WRONLY | O_CLOEXEC, 0],
    )?;
    let iocb = Iocb {
        data: 0,
        opcode: IOCB_CMD_PWRITE,
        fildes: fd as u32,
        buf: task.scratch.0 + BUF_AT,
        nbytes: 1,
        offset: 0,
    };
    let iocb_addr = task.put(step, IOCB_AT, &iocb.to_bytes())?;
    // Requests to complete: up to tail, after one full turn when tail is behind head.
    let count = if a.tail < a.head {
        a.nr_events + a.tail
    } else {
        a.tail
    };
    let batch = (a.nr_events - 1).min(MAX_BATCH);
    let word = task.arch.word_size();
    let mut ptrs = Vec::with_capacity(batch as usize * word);
    for _ in 0..batch {
        match task.arch {
            Arch::X86_64 => ptrs.extend_from_slice(&iocb_addr.to_ne_bytes()),
            Arch::I386 => ptrs.extend_from_slice(&(iocb_addr as u32).to_ne_bytes()),
        }
    }
    let ptrs_addr = task.put(step, PTRS_AT, &ptrs)?;
    let mut done = 0u32;
    // Each round frees every slot it filled, so a round submits at least one request; the
    // bound only guards against a kernel that behaves otherwise.
    for _ in 0..=2 * count {
        if done >= count {
            break;
        }
        let n = (count - done).min(batch);
        let r = task.call(step, Sysno::IoSubmit, &[ctx, u64::from(n), ptrs_addr])?;
        done += r as u32;
        // Consume what was completed (the kernel reads head back from the ring), but never past
        // the image's head: the events from there on are the image's.
        let head = if done < a.head { done } else { a.head };
        task.write(step, ctx + 8, &head.to_ne_bytes())?;
    }
    task.call(step, Sysno::Close, &[fd])?;
    if done != count {
        return Err(RestoreError::Inconsistent(format!(
            "{step}: only {done} of {count} requests to move the ring's tail were accepted"
        )));
    }
    Ok(())
}
