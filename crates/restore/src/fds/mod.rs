//! The image's fds: installed into the rebuilt task at their numbers, each kind of fd through the
//! module of its kind.
//!
//! Model: [`psnc_format::model::Fd`] and the per-kind state in [`psnc_format::model::FdKind`].
//!
//! | kind                                   | module        |
//! |----------------------------------------|---------------|
//! | epoll instances and their watches      | [`epoll`]     |

pub mod epoll;

use psnc_format::model::{Fd, Process};
use psnc_ptrace::Sysno;

use crate::error::Result;
use crate::files::LocalFiles;
use crate::remote::{Extra, Task};

const F_SETFD: u64 = 2;

/// Installs the image's fds at their numbers, each taken from the restore tool with
/// `pidfd_getfd` (same open file description: offset and status flags come along).
///
/// Epoll instances come last: each is created in the task with `epoll_create1` once every
/// other fd exists, and only when all of them exist are the watches added, so that a watch can
/// name any fd of the process, another epoll fd included. The kernel keys a watch by file and fd
/// number, so `EPOLL_CTL_ADD` must run in the task with the image's fd numbers.
pub fn install_fds(task: &mut Task, p: &Process, local: &LocalFiles, pidfd: u64) -> Result<()> {
    for (f, l) in p.fds.iter().zip(&local.fds) {
        if let Some(ours) = l.raw() {
            install_fd(task, f, ours, pidfd)?;
        }
    }
    epoll::install(task, p)
}

fn install_fd(task: &mut Task, f: &Fd, ours: i32, pidfd: u64) -> Result<()> {
    let step = format!("installing fd {}", f.fd);
    task.log(|| format!("{step} from our fd {ours}"));
    // pidfd_getfd gives a close-on-exec fd at the lowest free number.
    let tmp = task.call(&step, Extra::PidfdGetfd, &[pidfd, ours as u64, 0])?;
    let target = f.fd as u64;
    if tmp == target {
        if !f.cloexec {
            task.call(&step, Sysno::Fcntl, &[tmp, F_SETFD, 0])?;
        }
        return Ok(());
    }
    let flags = if f.cloexec { libc::O_CLOEXEC as u64 } else { 0 };
    task.call(&step, Sysno::Dup3, &[tmp, target, flags])?;
    task.call(&step, Sysno::Close, &[tmp])?;
    Ok(())
}
