//! Section kind 10, `signals` (FORMAT.md §8.10): the frozen `SignalsV1` with its `SigActionV1`,
//! `ITimerV1` and `PosixTimerV1`, version 1, and their model conversions.

use serde::{Deserialize, Serialize};

use super::codec::narrow;
use super::shared::SigInfoV1;
use crate::class::{Class, Word};
use crate::error::Result;
use crate::model;

/// A signal disposition, version 1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(bound = "")]
#[allow(missing_docs)]
pub struct SigActionV1<C: Class> {
    pub handler: C::Word,
    pub flags: u64,
    pub restorer: C::Word,
    pub mask: u64,
}

/// An interval timer, version 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct ITimerV1 {
    pub value_us: u64,
    pub interval_us: u64,
}

/// A POSIX timer, version 1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(bound = "")]
#[allow(missing_docs)]
pub struct PosixTimerV1<C: Class> {
    pub id: u32,
    pub clock: u32,
    pub notify: u32,
    pub signo: u32,
    pub sigev_value: C::Word,
    pub notify_tid: u32,
    pub value_ns: u64,
    pub interval_ns: u64,
    pub overrun: u32,
}

/// Process-wide signal state, version 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "")]
#[allow(missing_docs)]
pub struct SignalsV1<C: Class> {
    /// The owning process.
    pub pid: u32,
    pub actions: Vec<SigActionV1<C>>,
    pub shared_pending: Vec<SigInfoV1>,
    pub itimers: [ITimerV1; 3],
    pub posix_timers: Vec<PosixTimerV1<C>>,
}

impl<C: Class> SignalsV1<C> {
    pub(super) fn from_model(pid: u32, s: &model::ProcessSignals) -> Result<Self> {
        let mut actions = Vec::with_capacity(s.actions.len());
        for (i, a) in s.actions.iter().enumerate() {
            let at = format!("process {pid} sigaction {}", i + 1);
            actions.push(SigActionV1 {
                handler: narrow!(a, at, handler),
                flags: a.flags,
                restorer: narrow!(a, at, restorer),
                mask: a.mask,
            });
        }
        let mut posix_timers = Vec::with_capacity(s.posix_timers.len());
        for t in &s.posix_timers {
            let at = format!("process {pid} posix timer {}", t.id);
            posix_timers.push(PosixTimerV1 {
                id: t.id,
                clock: t.clock,
                notify: t.notify,
                signo: t.signo,
                sigev_value: narrow!(t, at, sigev_value),
                notify_tid: t.notify_tid,
                value_ns: t.value_ns,
                interval_ns: t.interval_ns,
                overrun: t.overrun,
            });
        }
        let it = |t: &model::ITimer| ITimerV1 {
            value_us: t.value_us,
            interval_us: t.interval_us,
        };
        Ok(SignalsV1 {
            pid,
            actions,
            shared_pending: s.shared_pending.iter().map(SigInfoV1::from).collect(),
            itimers: [it(&s.itimers[0]), it(&s.itimers[1]), it(&s.itimers[2])],
            posix_timers,
        })
    }

    pub(super) fn into_model(self) -> model::ProcessSignals {
        let it = |t: &ITimerV1| model::ITimer {
            value_us: t.value_us,
            interval_us: t.interval_us,
        };
        model::ProcessSignals {
            actions: self
                .actions
                .iter()
                .map(|a| model::SigAction {
                    handler: a.handler.widen(),
                    flags: a.flags,
                    restorer: a.restorer.widen(),
                    mask: a.mask,
                })
                .collect(),
            shared_pending: self.shared_pending.into_iter().map(Into::into).collect(),
            itimers: [
                it(&self.itimers[0]),
                it(&self.itimers[1]),
                it(&self.itimers[2]),
            ],
            posix_timers: self
                .posix_timers
                .iter()
                .map(|t| model::PosixTimer {
                    id: t.id,
                    clock: t.clock,
                    notify: t.notify,
                    signo: t.signo,
                    sigev_value: t.sigev_value.widen(),
                    notify_tid: t.notify_tid,
                    value_ns: t.value_ns,
                    interval_ns: t.interval_ns,
                    overrun: t.overrun,
                })
                .collect(),
        }
    }
}
