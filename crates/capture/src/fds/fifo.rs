//! FIFOs (named pipes): reopened by path at restore, with the bytes buffered in them.
//!
//! A FIFO is told apart by the `stat` of the file behind `/proc/PID/fd/N`; its buffered bytes
//! are copied without consuming them through the target's fd, with the same [`PipePeek`] as
//! pipes' ([`super::pipe`]). Model type: [`FdKind::Fifo`] in `psnc_format::model`.

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

/// Fills the buffered bytes of every FIFO in `fds`, read through each fd with `peek`.
pub(super) fn fill_buffers(pid: i32, fds: &mut [Fd], peek: &mut dyn PipePeek) -> Result<()> {
    for fd in fds.iter_mut() {
        let n = fd.fd;
        if let FdKind::Fifo { buffered, .. } = &mut fd.kind {
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
    fn fifo_bytes_are_read_through_each_fd() {
        let fifo = |fd: i32| Fd {
            fd,
            flags: 0,
            cloexec: false,
            pos: 0,
            kind: classify("/tmp/f"),
        };
        let mut fds = vec![fifo(3), fifo(6)];
        fill_buffers(1, &mut fds, &mut FakePeek).unwrap();
        let bytes: Vec<&Vec<u8>> = fds
            .iter()
            .map(|f| match &f.kind {
                FdKind::Fifo { buffered, .. } => buffered,
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(bytes, [&vec![3], &vec![6]]);

        // A refusal of the peek gets the process's PID.
        let err = fill_buffers(42, &mut fds, &mut NoPipePeek).unwrap_err();
        assert!(
            matches!(&err, CaptureError::Unsupported { pid: 42, what, .. } if what == "fd 3"),
            "{err:?}"
        );
    }
}
