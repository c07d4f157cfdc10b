//! Section kind 20, `ttys` (FORMAT.md §8.21, format 1.3): the frozen `PtyV1`, version 1, its
//! model conversion and the checks that tie every pair to fds of the `fds` section.

use serde::{Deserialize, Serialize};

use super::fd_shares::FdRefV1;
use crate::error::{FormatError, Result};
use crate::model;

/// Unix98 pty slaves: major 136 (`UNIX98_PTY_SLAVE_MAJOR`), minor = the pair's index.
const PTS_MAJOR: u64 = 136;

/// The `st_rdev` of `/dev/pts/<index>` (glibc's `makedev(136, index)`).
pub fn pts_rdev(index: u32) -> u64 {
    let minor = u64::from(index);
    ((PTS_MAJOR & 0xfff) << 8)
        | ((PTS_MAJOR & !0xfff) << 32)
        | (minor & 0xff)
        | ((minor & !0xff) << 12)
}

/// One pseudo-terminal pair, version 1 (see [`model::Pty`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PtyV1 {
    /// The index at capture (`/dev/pts/<index>`).
    pub index: u32,
    /// The slave was locked.
    pub locked: bool,
    /// The master was in packet mode.
    pub packet: bool,
    /// The kernel `struct termios`, 36 bytes.
    pub termios: Vec<u8>,
    /// The `struct winsize`, 8 bytes.
    pub winsize: Vec<u8>,
    /// The fds on the master.
    pub masters: Vec<FdRefV1>,
    /// The fds on the slave.
    pub slaves: Vec<FdRefV1>,
    /// The session it controls (its leader's PID), 0 for none.
    pub session: u32,
    /// The foreground process group when `session` is set.
    pub foreground: u32,
}

fn refs_v1(r: &[model::FdRef]) -> Vec<FdRefV1> {
    r.iter()
        .map(|r| FdRefV1 {
            pid: r.pid,
            fd: r.fd,
        })
        .collect()
}

fn refs_model(r: Vec<FdRefV1>) -> Vec<model::FdRef> {
    r.into_iter()
        .map(|r| model::FdRef {
            pid: r.pid,
            fd: r.fd,
        })
        .collect()
}

impl From<&model::Pty> for PtyV1 {
    fn from(p: &model::Pty) -> Self {
        PtyV1 {
            index: p.index,
            locked: p.locked,
            packet: p.packet,
            termios: p.termios.clone(),
            winsize: p.winsize.clone(),
            masters: refs_v1(&p.masters),
            slaves: refs_v1(&p.slaves),
            session: p.session,
            foreground: p.foreground,
        }
    }
}

/// The model pairs, once each agrees with the fds of `processes` (§8.21): 36 termios bytes,
/// 8 winsize bytes, one record per index, at least one master fd, every master fd a
/// `PtyMaster` of that index and every slave fd a terminal of device 136:index, and the
/// session, when set, a session leader of the image.
pub(super) fn decode(processes: &[model::Process], records: Vec<PtyV1>) -> Result<Vec<model::Pty>> {
    let mut out: Vec<model::Pty> = Vec::with_capacity(records.len());
    for r in records {
        let bad = |what: String| FormatError::Invalid(format!("pty {}: {what}", r.index));
        if out.iter().any(|p| p.index == r.index) {
            return Err(bad("two records".into()));
        }
        if r.termios.len() != 36 || r.winsize.len() != 8 {
            return Err(bad(format!(
                "{} termios bytes and {} winsize bytes (36 and 8 expected)",
                r.termios.len(),
                r.winsize.len()
            )));
        }
        if r.masters.is_empty() {
            return Err(bad("no master fd".into()));
        }
        let kind = |f: &FdRefV1| {
            processes
                .iter()
                .find(|p| p.pid == f.pid)
                .and_then(|p| p.fds.iter().find(|x| x.fd == f.fd))
                .map(|x| &x.kind)
        };
        for m in &r.masters {
            if !matches!(kind(m), Some(model::FdKind::PtyMaster { index }) if *index == r.index) {
                return Err(bad(format!(
                    "fd {} of pid {} is not its master in the fds section",
                    m.fd, m.pid
                )));
            }
        }
        for s in &r.slaves {
            if !matches!(kind(s), Some(model::FdKind::Tty { rdev, .. }) if *rdev == pts_rdev(r.index))
            {
                return Err(bad(format!(
                    "fd {} of pid {} is not its slave in the fds section",
                    s.fd, s.pid
                )));
            }
        }
        if r.session != 0
            && !processes
                .iter()
                .any(|p| p.pid == r.session && p.sid == r.session)
        {
            return Err(bad(format!(
                "session {} is not a session leader of the image",
                r.session
            )));
        }
        out.push(model::Pty {
            index: r.index,
            locked: r.locked,
            packet: r.packet,
            termios: r.termios,
            winsize: r.winsize,
            masters: refs_model(r.masters),
            slaves: refs_model(r.slaves),
            session: r.session,
            foreground: r.foreground,
        });
    }
    Ok(out)
}

/// Every `PtyMaster` fd of the image has its pair's record, and is listed in it.
pub(super) fn check_masters(processes: &[model::Process], ptys: &[model::Pty]) -> Result<()> {
    for p in processes {
        for f in &p.fds {
            if let model::FdKind::PtyMaster { index } = f.kind {
                let me = model::FdRef {
                    pid: p.pid,
                    fd: f.fd,
                };
                if !ptys
                    .iter()
                    .any(|t| t.index == index && t.masters.contains(&me))
                {
                    return Err(FormatError::Invalid(format!(
                        "fd {} of pid {} is the master of pty {index}, which has no record in \
                         the ttys section",
                        f.fd, p.pid
                    )));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The body spec/reader/test_reader.py decodes (`TTYS_BODY`): the two readers agree.
    #[test]
    fn encoding_matches_the_python_readers_bytes() {
        let r = |pid, fd| FdRefV1 { pid, fd };
        let body = vec![PtyV1 {
            index: 3,
            locked: false,
            packet: false,
            termios: (0..36).collect(),
            winsize: vec![37, 0, 101, 0, 0, 0, 0, 0],
            masters: vec![r(42, 5)],
            slaves: vec![r(42, 0)],
            session: 42,
            foreground: 42,
        }];
        let mut want = vec![1, 3, 0, 0, 36];
        want.extend(0..36u8);
        want.extend([8, 37, 0, 101, 0, 0, 0, 0, 0, 1, 42, 10, 1, 42, 0, 42, 42]);
        assert_eq!(postcard::to_allocvec(&body).unwrap(), want);
    }

    fn process() -> model::Process {
        let fd = |fd, kind| model::Fd {
            fd,
            flags: 2,
            cloexec: false,
            pos: 0,
            kind,
        };
        model::Process {
            pid: 42,
            sid: 42,
            fds: vec![
                fd(
                    0,
                    model::FdKind::Tty {
                        path: "/dev/pts/3".into(),
                        rdev: pts_rdev(3),
                    },
                ),
                fd(5, model::FdKind::PtyMaster { index: 3 }),
            ],
            ..Default::default()
        }
    }

    fn record() -> PtyV1 {
        PtyV1 {
            index: 3,
            locked: false,
            packet: false,
            termios: vec![0; 36],
            winsize: vec![0; 8],
            masters: vec![FdRefV1 { pid: 42, fd: 5 }],
            slaves: vec![FdRefV1 { pid: 42, fd: 0 }],
            session: 42,
            foreground: 42,
        }
    }

    /// Each disagreement between a record and the fds is refused with its exact message.
    #[test]
    fn records_must_name_their_fds() {
        let ps = vec![process()];
        let ptys = decode(&ps, vec![record()]).unwrap();
        check_masters(&ps, &ptys).unwrap();
        let msg = |r: Vec<PtyV1>| decode(&ps, r).unwrap_err().to_string();
        let inv = "invalid model: ";
        type Case = (fn(&mut PtyV1), &'static str);
        let cases: [Case; 5] = [
            (
                |r| r.termios = vec![0; 35],
                "pty 3: 35 termios bytes and 8 winsize bytes (36 and 8 expected)",
            ),
            (|r| r.masters.clear(), "pty 3: no master fd"),
            (
                |r| r.masters[0].fd = 0,
                "pty 3: fd 0 of pid 42 is not its master in the fds section",
            ),
            (
                |r| r.slaves[0].fd = 5,
                "pty 3: fd 5 of pid 42 is not its slave in the fds section",
            ),
            (
                |r| r.session = 7,
                "pty 3: session 7 is not a session leader of the image",
            ),
        ];
        for (change, want) in cases {
            let mut r = record();
            change(&mut r);
            assert_eq!(msg(vec![r]), format!("{inv}{want}"));
        }
        assert_eq!(
            msg(vec![record(), record()]),
            format!("{inv}pty 3: two records")
        );
        assert_eq!(
            check_masters(&ps, &[]).unwrap_err().to_string(),
            format!(
                "{inv}fd 5 of pid 42 is the master of pty 3, which has no record in the ttys \
                 section"
            )
        );
    }

    #[test]
    fn pts_rdev_matches_libc() {
        for i in [0u32, 3, 255, 256, 4000] {
            assert_eq!(pts_rdev(i), libc::makedev(136, i));
        }
    }
}
