//! Section kind 14, `fd-shares` (FORMAT.md §8.15, format 1.3): the frozen `FdShareV1` and its
//! `FdRefV1`, version 1, their model conversion, and the checks that tie every group to fds of
//! the `fds` section.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::error::{FormatError, Result};
use crate::model;

/// One fd of one process, version 1 (see [`model::FdRef`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FdRefV1 {
    /// The process.
    pub pid: u32,
    /// The fd number in it.
    pub fd: i32,
}

/// One open file description held by two or more fds, version 1 (section `fd-shares`, format
/// 1.3; see [`model::FdShare`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FdShareV1 {
    /// The fds of the description, in image order (process order, then fd number).
    pub fds: Vec<FdRefV1>,
}

impl FdShareV1 {
    /// The record of one group.
    pub(super) fn from_model(s: &model::FdShare) -> Self {
        FdShareV1 {
            fds: s
                .fds
                .iter()
                .map(|r| FdRefV1 {
                    pid: r.pid,
                    fd: r.fd,
                })
                .collect(),
        }
    }

    /// The group of the model.
    pub(super) fn into_model(self) -> model::FdShare {
        model::FdShare {
            fds: self
                .fds
                .into_iter()
                .map(|r| model::FdRef {
                    pid: r.pid,
                    fd: r.fd,
                })
                .collect(),
        }
    }
}

/// Checks the groups against the fds of `processes` (§8.15): every group has two or more
/// members, each an fd of the image, no fd is in two groups (or twice in one), and the members
/// of a group are of one kind with one set of status flags and one offset, as one description
/// has. A reader that accepted less would hand one description to fds the image says differ.
pub(super) fn check(processes: &[model::Process], shares: &[model::FdShare]) -> Result<()> {
    let mut seen = HashSet::new();
    for (i, s) in shares.iter().enumerate() {
        if s.fds.len() < 2 {
            return Err(FormatError::Invalid(format!(
                "fd-shares group {i} has {} fd(s); a group has two or more",
                s.fds.len()
            )));
        }
        let mut first: Option<(&model::FdRef, &model::Fd)> = None;
        for r in &s.fds {
            if !seen.insert(*r) {
                return Err(FormatError::Invalid(format!(
                    "fd {} of pid {} is in the fd-shares section twice",
                    r.fd, r.pid
                )));
            }
            let f = processes
                .iter()
                .find(|p| p.pid == r.pid)
                .and_then(|p| p.fds.iter().find(|f| f.fd == r.fd))
                .ok_or_else(|| {
                    FormatError::Invalid(format!(
                        "fd-shares group {i} names fd {} of pid {}, which is not in the image",
                        r.fd, r.pid
                    ))
                })?;
            match first {
                None => first = Some((r, f)),
                Some((r0, f0)) => {
                    if std::mem::discriminant(&f0.kind) != std::mem::discriminant(&f.kind)
                        || f0.flags != f.flags
                        || f0.pos != f.pos
                    {
                        return Err(FormatError::Invalid(format!(
                            "fd-shares group {i}: fd {} of pid {} and fd {} of pid {} differ in \
                             kind, flags or offset, so they cannot be one open file description",
                            r0.fd, r0.pid, r.fd, r.pid
                        )));
                    }
                }
            }
        }
    }
    Ok(())
}
