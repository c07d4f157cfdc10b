//! AIO contexts (`io_setup`): each is its ring mapping, `/[aio] (deleted)` in
//! `/proc/PID/maps`, whose address is the context id. [`crate::memory`] leaves these mappings
//! out of the VMAs and hands them here; [`collect`] reads each ring's header and the completed
//! events it holds into a [`AioContext`] (restore recreates the context, see the restore
//! crate's `aio` module).
//!
//! What capture can and cannot see of a context:
//!
//! * The ring header (`nr`, `head`, `tail`, magic and feature words): a ring that does not look
//!   as the kernel lays it out, or whose `head`/`tail` is not below `nr`, is refused
//!   ([`CaptureError::AioRing`]).
//! * The completed events from `head` to `tail`: stored; the next `io_getevents` after restore
//!   returns them.
//! * Requests in flight (submitted, not completed: an `O_DIRECT` read on its way, an
//!   `IOCB_CMD_POLL` waiting for its file) leave no trace in the ring or in `/proc` until they
//!   complete. Capture detects the ones that complete while the tree is stopped: it reads each
//!   ring again ([`check_unchanged`]) at the end of the capture, after a short settling time,
//!   and refuses when `tail` moved ([`CaptureError::AioInFlight`]). A request that stays
//!   pending longer than that cannot be seen from user space; the image then lacks it (restore
//!   never completes it), and capture says so in a warning ([`warning`]).

use psnc_abi::aio::{AioRingHeader, AIO_RING_HEADER_SIZE, IO_EVENT_SIZE};
use psnc_format::model::{AioContext, Process};

use crate::error::{CaptureError, Result};
use crate::memory::{MemorySource, TargetMemory};
use crate::procfs::MapsEntry;

/// The name `/proc/PID/maps` gives an AIO ring.
const RING_NAME: &str = "/[aio] (deleted)";

/// Whether `entry` is an AIO ring (the kernel maps one, shared, per context).
pub fn is_ring(entry: &MapsEntry) -> bool {
    entry.shared && entry.path == RING_NAME
}

/// The header of the ring at `ring`.
fn header(ring: u64, mem: &mut TargetMemory) -> Result<AioRingHeader> {
    let mut b = [0u8; AIO_RING_HEADER_SIZE as usize];
    mem.read(ring, &mut b, true)?;
    Ok(AioRingHeader::from_bytes(&b))
}

/// The contexts of process `pid` whose rings are `rings` (maps entries, by address): header
/// checked, completed events read.
pub fn collect(pid: i32, rings: &[MapsEntry], mem: &mut TargetMemory) -> Result<Vec<AioContext>> {
    let mut out = Vec::with_capacity(rings.len());
    for r in rings {
        let ring_len = r.end - r.start;
        let h = header(r.start, mem)?;
        h.check(ring_len).map_err(|why| CaptureError::AioRing {
            pid,
            ctx: r.start,
            why,
        })?;
        // The slots from head to tail, in two pieces when they wrap at nr.
        let slot =
            |i: u32| r.start + u64::from(AIO_RING_HEADER_SIZE) + u64::from(i * IO_EVENT_SIZE);
        let mut events = vec![0u8; (h.pending() * IO_EVENT_SIZE) as usize];
        let first = if h.tail >= h.head {
            h.tail - h.head
        } else {
            h.nr - h.head
        };
        let split = (first * IO_EVENT_SIZE) as usize;
        if split > 0 {
            mem.read(slot(h.head), &mut events[..split], true)?;
        }
        if split < events.len() {
            mem.read(slot(0), &mut events[split..], true)?;
        }
        out.push(AioContext {
            ring: r.start,
            ring_len,
            nr_events: h.nr,
            head: h.head,
            tail: h.tail,
            events,
        });
    }
    Ok(out)
}

/// How long [`check_unchanged`] lets completions settle: the kernel completes some requests
/// (a poll woken without an event mask, e.g. by inotify) from its workqueue, a moment after the
/// event that completed them.
const SETTLE: std::time::Duration = std::time::Duration::from_millis(20);

/// Reads every ring of `processes` again, at the end of the capture, while they are all still
/// stopped: a `tail` that moved since [`collect`] means a request completed while the process
/// was stopped, so it had requests in flight.
pub fn check_unchanged(processes: &[Process]) -> Result<()> {
    if processes.iter().all(|p| p.aio.is_empty()) {
        return Ok(());
    }
    std::thread::sleep(SETTLE);
    for p in processes.iter().filter(|p| !p.aio.is_empty()) {
        let pid = p.pid as i32;
        let mut mem = TargetMemory::open(pid)?;
        for a in &p.aio {
            let h = header(a.ring, &mut mem)?;
            if h.tail != a.tail {
                return Err(CaptureError::AioInFlight {
                    pid,
                    ctx: a.ring,
                    before: a.tail,
                    after: h.tail,
                });
            }
        }
    }
    Ok(())
}

/// The warning capture prints for a process with AIO contexts: what it could not check.
pub fn warning(pid: i32, contexts: &[AioContext]) -> Option<String> {
    if contexts.is_empty() {
        return None;
    }
    let ids: Vec<String> = contexts.iter().map(|a| format!("{:#x}", a.ring)).collect();
    Some(format!(
        "PID {pid}: AIO context(s) {}: a request still in flight (submitted, not completed) \
         cannot be seen from user space and is not in the image; the restored process never \
         gets its completion",
        ids.join(", ")
    ))
}
