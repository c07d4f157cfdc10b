//! Section kind 16, `zombies` (FORMAT.md §8.17, format 1.3): the frozen `ZombieV1` and its
//! `ExitStatusV1`, version 1, their model conversion, and the checks that tie each zombie to
//! the processes of the image.

use serde::{Deserialize, Serialize};

use crate::error::{FormatError, Result};
use crate::model;

/// How a zombie ended, version 1 (append-only enum; varints, no class-width fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExitStatusV1 {
    /// It exited with `code` (0..=255, `WEXITSTATUS`).
    Exited {
        /// The exit code.
        code: u32,
    },
    /// It was killed by `signal` (1..=64, `WTERMSIG`); `core`: it dumped core.
    Killed {
        /// The signal number.
        signal: u32,
        /// `WCOREDUMP`.
        core: bool,
    },
}

/// One zombie of the tree, version 1 (section `zombies`; see [`model::Zombie`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZombieV1 {
    /// Its PID.
    pub pid: u32,
    /// Its parent, a process of the image.
    pub ppid: u32,
    /// Its process group.
    pub pgid: u32,
    /// Its session.
    pub sid: u32,
    /// How it ended.
    pub status: ExitStatusV1,
}

impl From<&model::Zombie> for ZombieV1 {
    fn from(z: &model::Zombie) -> Self {
        ZombieV1 {
            pid: z.pid,
            ppid: z.ppid,
            pgid: z.pgid,
            sid: z.sid,
            status: match z.status {
                model::ExitStatus::Exited(code) => ExitStatusV1::Exited {
                    code: u32::from(code),
                },
                model::ExitStatus::Killed { signal, core } => ExitStatusV1::Killed {
                    signal: u32::from(signal),
                    core,
                },
            },
        }
    }
}

impl ZombieV1 {
    /// The model zombie; a code above 255 or a signal outside 1..=64 makes the image invalid.
    fn into_model(self) -> Result<model::Zombie> {
        let bad = |field: &str, v: u32| {
            FormatError::Invalid(format!(
                "zombie {} has {field} {v}, which no process can end with",
                self.pid
            ))
        };
        let status = match self.status {
            ExitStatusV1::Exited { code } => {
                model::ExitStatus::Exited(u8::try_from(code).map_err(|_| bad("exit code", code))?)
            }
            ExitStatusV1::Killed { signal, core } => {
                if !(1..=64).contains(&signal) {
                    return Err(bad("signal", signal));
                }
                model::ExitStatus::Killed {
                    signal: signal as u8,
                    core,
                }
            }
        };
        Ok(model::Zombie {
            pid: self.pid,
            ppid: self.ppid,
            pgid: self.pgid,
            sid: self.sid,
            status,
        })
    }
}

/// The model zombies of `records`, checked against `processes` (FORMAT.md §8.17): each zombie's
/// parent is a process of the image, and its PID is neither a process's nor another zombie's.
pub(super) fn decode(
    processes: &[model::Process],
    records: Vec<ZombieV1>,
) -> Result<Vec<model::Zombie>> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(records.len());
    for r in records {
        if processes.iter().any(|p| p.pid == r.pid) || !seen.insert(r.pid) {
            return Err(FormatError::Invalid(format!(
                "the image lists pid {} twice (as a zombie and a process, or as two zombies)",
                r.pid
            )));
        }
        if !processes.iter().any(|p| p.pid == r.ppid) {
            return Err(FormatError::Invalid(format!(
                "zombie {} has parent {}, which is not a process of the image",
                r.pid, r.ppid
            )));
        }
        out.push(r.into_model()?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::ExitStatus;

    #[test]
    fn wait_statuses_decode_as_wait_reports_them() {
        assert_eq!(
            ExitStatus::from_wait_status(7 << 8),
            Some(ExitStatus::Exited(7))
        );
        assert_eq!(
            ExitStatus::from_wait_status(15),
            Some(ExitStatus::Killed {
                signal: 15,
                core: false
            })
        );
        assert_eq!(
            ExitStatus::from_wait_status(0x80 | 11),
            Some(ExitStatus::Killed {
                signal: 11,
                core: true
            })
        );
        // A stop status (0x7f) and bits above the low 16 are no exit.
        assert_eq!(ExitStatus::from_wait_status((19 << 8) | 0x7f), None);
        assert_eq!(ExitStatus::from_wait_status(0x10000), None);
        assert_eq!(ExitStatus::from_wait_status(-1), None);
        for s in [0, 7 << 8, 255 << 8, 9, 0x80 | 6, 64] {
            assert_eq!(ExitStatus::from_wait_status(s).unwrap().wait_status(), s);
        }
        assert_eq!(
            ExitStatus::Killed {
                signal: 11,
                core: true
            }
            .to_string(),
            "killed by signal 11 (core dumped)"
        );
        assert_eq!(ExitStatus::Exited(7).to_string(), "exit 7");
    }

    #[test]
    fn impossible_statuses_are_invalid() {
        let z = |status| ZombieV1 {
            pid: 11,
            ppid: 10,
            pgid: 10,
            sid: 10,
            status,
        };
        let e = z(ExitStatusV1::Exited { code: 256 })
            .into_model()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            FormatError::Invalid(
                "zombie 11 has exit code 256, which no process can end with".into()
            )
            .to_string()
        );
        let e = z(ExitStatusV1::Killed {
            signal: 0,
            core: false,
        })
        .into_model()
        .unwrap_err();
        assert!(e.to_string().contains("zombie 11 has signal 0,"), "{e}");
    }
}
