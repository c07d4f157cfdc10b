//! Credentials: user and group ids, supplementary groups, the capability sets and securebits.
//!
//! All but securebits come from procfs (`Uid`, `Gid`, `Groups` and the `Cap*` lines of
//! `/proc/PID/status`, that is the leader's); securebits are kernel-only state
//! (`PR_GET_SECUREBITS` in the leader: remote `prctl` or `/dev/checkpoint` `GET_TASK_MISC2`, see
//! [`crate::source`]). The model holds one set per process. Model type: [`Creds`] in
//! `psnc_format::model`.

use psnc_format::model::Creds;

use crate::procfs::Status;
use crate::source::KernelProcessState;

/// The credentials of the process from its `status` and the kernel-only `kernel` state.
pub fn collect(status: &Status, kernel: &KernelProcessState) -> Creds {
    Creds {
        uids: status.uids,
        gids: status.gids,
        groups: status.groups.clone(),
        cap_inh: status.cap_inh,
        cap_prm: status.cap_prm,
        cap_eff: status.cap_eff,
        cap_bnd: status.cap_bnd,
        cap_amb: status.cap_amb,
        securebits: kernel.securebits,
    }
}
