//! Section kind 17, `aio` (FORMAT.md §8.18): the frozen `AioContextV1`, version 1, its model
//! conversion and the join of each record to its process.

use serde::{Deserialize, Serialize};

use super::codec::narrow;
use super::owner;
use crate::class::{Class, Word};
use crate::error::{FormatError, Result};
use crate::model;

/// Size of one `struct io_event` in `events`.
const IO_EVENT_SIZE: u64 = 32;

/// One AIO context of a process, version 1 (see [`model::AioContext`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct AioContextV1<C: Class> {
    /// The owning process.
    pub pid: u32,
    /// The ring's address, which is the context id.
    pub ring: C::Word,
    /// The ring mapping's length in bytes.
    pub ring_len: C::Word,
    /// The ring's number of event slots.
    pub nr_events: u32,
    /// The ring header's `head`.
    pub head: u32,
    /// The ring header's `tail`.
    pub tail: u32,
    /// The completed events from `head` to `tail`, 32 bytes each.
    pub events: Vec<u8>,
}

impl<C: Class> AioContextV1<C> {
    pub(super) fn from_model(pid: u32, a: &model::AioContext) -> Result<Self> {
        let at = format!("AIO context {:#x} (pid {pid})", a.ring);
        Ok(AioContextV1 {
            pid,
            ring: narrow!(a, at, ring),
            ring_len: narrow!(a, at, ring_len),
            nr_events: a.nr_events,
            head: a.head,
            tail: a.tail,
            events: a.events.clone(),
        })
    }

    /// The model record, once its fields agree with each other (§8.18): a ring of whole pages
    /// with `nr_events` slots after its 32-byte header, `head` and `tail` below `nr_events`, and
    /// one 32-byte event for each slot from `head` to `tail`.
    fn into_model(self) -> Result<model::AioContext> {
        let a = model::AioContext {
            ring: self.ring.widen(),
            ring_len: self.ring_len.widen(),
            nr_events: self.nr_events,
            head: self.head,
            tail: self.tail,
            events: self.events,
        };
        let bad = |what: String| {
            FormatError::Invalid(format!(
                "AIO context {:#x} of pid {}: {what}",
                a.ring, self.pid
            ))
        };
        if a.ring % 4096 != 0 || a.ring_len == 0 || a.ring_len % 4096 != 0 {
            return Err(bad(format!(
                "the ring {:#x}+{:#x} is not whole pages",
                a.ring, a.ring_len
            )));
        }
        if u64::from(a.nr_events) != (a.ring_len - 32) / IO_EVENT_SIZE {
            return Err(bad(format!(
                "{} event slots do not fill a {}-byte ring",
                a.nr_events, a.ring_len
            )));
        }
        if a.head >= a.nr_events || a.tail >= a.nr_events {
            return Err(bad(format!(
                "head {} or tail {} is not below nr_events {}",
                a.head, a.tail, a.nr_events
            )));
        }
        let pending = if a.tail >= a.head {
            a.tail - a.head
        } else {
            a.nr_events - a.head + a.tail
        };
        if a.events.len() as u64 != u64::from(pending) * IO_EVENT_SIZE {
            return Err(bad(format!(
                "{} bytes of events for the {pending} slots from head {} to tail {}",
                a.events.len(),
                a.head,
                a.tail
            )));
        }
        Ok(a)
    }
}

/// Joins the records to their processes, each process's contexts sorted by address. Two
/// records of one ring, or a ring that overlaps a VMA of its process, make the image invalid.
pub(super) fn attach<C: Class>(
    processes: &mut [model::Process],
    records: Vec<AioContextV1<C>>,
) -> Result<()> {
    for r in records {
        let pid = r.pid;
        let a = r.into_model()?;
        let p = owner(processes, pid, &format!("AIO context {:#x}", a.ring))?;
        let end = a.ring.saturating_add(a.ring_len);
        if p.aio
            .iter()
            .any(|o| o.ring < end && a.ring < o.ring.saturating_add(o.ring_len))
            || p.vmas.iter().any(|v| v.start < end && a.ring < v.end)
        {
            return Err(FormatError::Invalid(format!(
                "AIO context {:#x} of pid {pid} overlaps another mapping of its process",
                a.ring
            )));
        }
        p.aio.push(a);
        p.aio.sort_by_key(|a| a.ring);
    }
    Ok(())
}
