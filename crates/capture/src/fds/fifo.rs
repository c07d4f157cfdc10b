//! FIFOs (named pipes): reopened by path at restore, with the bytes buffered in them.
//!
//! A FIFO is told apart by the `stat` of the file behind `/proc/PID/fd/N`; its buffered bytes
//! are copied without consuming them through the target's fd, with the same [`PipePeek`] as
//! pipes' ([`super::pipe`]). Model type: [`FdKind::Fifo`] in `psnc_format::model`.
//!
//! Like a pipe's, a FIFO's bytes are read once and stored with its lowest fd: restore puts back
//! what each fd carries into the one FIFO they all open, so bytes stored with every fd would
//! come back once per fd. Fds are of the same FIFO when the files behind them have the same
//! device and inode. Whether the FIFO's other end was in the process is not recorded: restore
//! tells it from the access modes of the fds of each path.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;

use psnc_format::model::{Fd, FdKind};

use crate::error::Result;

use super::pipe::PipePeek;
use super::with_pid;

/// The [`FdKind::Fifo`] of a FIFO open at `path`; its bytes come later ([`fill_buffers`]).
pub(super) fn classify(path: &str) -> FdKind {
    FdKind::Fifo {
        path: path.to_string(),
        buffered: Vec::new(),
    }
}

/// Fills the buffered bytes of every FIFO in `fds` (sorted by number), read with `peek` through
/// the lowest fd of each FIFO, which alone carries them.
pub(super) fn fill_buffers(pid: i32, fds: &mut [Fd], peek: &mut dyn PipePeek) -> Result<()> {
    fill_buffers_by(pid, fds, peek, |n, path| {
        // The file behind the target's fd; its path when that cannot be read (it is only a
        // shortcut to find the fds of one FIFO).
        match std::fs::metadata(format!("/proc/{pid}/fd/{n}")) {
            Ok(m) => format!("{}:{}", m.dev(), m.ino()),
            Err(_) => path.to_string(),
        }
    })
}

/// [`fill_buffers`] with the identity of the FIFO behind fd `n` (open at `path`) given by `same`.
fn fill_buffers_by(
    pid: i32,
    fds: &mut [Fd],
    peek: &mut dyn PipePeek,
    same: impl Fn(i32, &str) -> String,
) -> Result<()> {
    let mut seen: HashMap<String, i32> = HashMap::new();
    for fd in fds.iter_mut() {
        let n = fd.fd;
        if let FdKind::Fifo { buffered, path } = &mut fd.kind {
            if seen.insert(same(n, path), n).is_some() {
                continue;
            }
            let (bytes, _) = peek.peek(n).map_err(|e| with_pid(e, pid))?;
            *buffered = bytes;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::CaptureError;
    use crate::fds::pipe::NoPipePeek;

    struct FakePeek;
    impl PipePeek for FakePeek {
        fn peek(&mut self, fd: i32) -> Result<(Vec<u8>, u32)> {
            Ok((vec![fd as u8], 65536))
        }
    }

    #[test]
    fn fifo_bytes_are_read_once_per_fifo() {
        let fifo = |fd: i32, path: &str| Fd {
            fd,
            flags: 0,
            cloexec: false,
            pos: 0,
            kind: classify(path),
        };
        let mut fds = vec![fifo(3, "/tmp/f"), fifo(5, "/tmp/g"), fifo(6, "/tmp/f")];
        let by_path = |_: i32, path: &str| path.to_string();
        fill_buffers_by(1, &mut fds, &mut FakePeek, by_path).unwrap();
        let bytes: Vec<&Vec<u8>> = fds
            .iter()
            .map(|f| match &f.kind {
                FdKind::Fifo { buffered, .. } => buffered,
                _ => unreachable!(),
            })
            .collect();
        // Fd 6 is the FIFO of fd 3: its bytes are fd 3's.
        assert_eq!(bytes, [&vec![3], &vec![5], &vec![]]);

        // A refusal of the peek gets the process's PID.
        let err = fill_buffers_by(42, &mut fds, &mut NoPipePeek, by_path).unwrap_err();
        assert!(
            matches!(&err, CaptureError::Unsupported { pid: 42, what, .. } if what == "fd 3"),
            "{err:?}"
        );
    }
}
