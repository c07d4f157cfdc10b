//! Credentials: uids, gids, supplementary groups, securebits and the capability sets, per
//! thread; and what a credential change resets (dumpable, the parent-death signal).
//!
//! Model: [`psnc_format::model::Creds`], and `dumpable` and `pdeathsig` of
//! [`psnc_format::model::Process`]. The credentials are set in every thread (the kernel keeps
//! them per thread) and come last in the rebuild, but for `PR_SET_DUMPABLE` and
//! `PR_SET_PDEATHSIG`, which they reset (see the order in the crate doc).

use psnc_format::model::{Creds, Process};
use psnc_ptrace::Sysno;

use crate::error::Result;
use crate::remote::Task;

const PR_SET_DUMPABLE: u64 = 4;
const PR_SET_PDEATHSIG: u64 = 1;
const PR_SET_SECUREBITS: u64 = 28;
const PR_GET_SECUREBITS: u64 = 27;
const PR_CAPBSET_DROP: u64 = 24;
const PR_CAP_AMBIENT: u64 = 47;
const PR_CAP_AMBIENT_RAISE: u64 = 2;
const PR_CAP_AMBIENT_CLEAR_ALL: u64 = 4;
const SECBIT_NO_SETUID_FIXUP: u64 = 1 << 2;
const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// The highest capability number this kernel knows.
fn cap_last_cap() -> u32 {
    psnc_proc::system::cap_last_cap().unwrap_or(40)
}

/// Whether the task already holds credentials `c`, so that [`restore_creds`] would change
/// nothing: the usual case of a root restore of a root process. Every thread was cloned from the
/// leader and inherited its credentials, which came from the restore tool through the stub's
/// exec; skipping saves about ten remote calls per thread. Reads the leader's ids, groups and
/// capability sets from `/proc/PID/status` and its securebits with one remote `prctl`.
pub fn creds_in_place(task: &mut Task, c: &Creds) -> Result<bool> {
    let Ok(status) = psnc_proc::ProcDir::new(task.pid).status() else {
        return Ok(false);
    };
    let mut groups = c.groups.clone();
    groups.sort_unstable();
    groups.dedup();
    let mut have_groups = status.groups.clone();
    have_groups.sort_unstable();
    have_groups.dedup();
    let same = status.uids == c.uids
        && status.gids == c.gids
        && have_groups == groups
        && status.cap_inh == c.cap_inh
        && status.cap_prm == c.cap_prm
        && status.cap_eff == c.cap_eff
        && status.cap_bnd == c.cap_bnd
        && status.cap_amb == c.cap_amb;
    if !same {
        return Ok(false);
    }
    let bits = task.call(
        "reading the securebits",
        Sysno::Prctl,
        &[PR_GET_SECUREBITS, 0, 0, 0, 0],
    )?;
    Ok(bits == u64::from(c.securebits))
}

/// Credentials of one thread (they are per thread in the kernel: every thread runs this), in
/// the one order that works from root: groups, then ids while
/// SECBIT_NO_SETUID_FIXUP keeps the capabilities, then securebits, the bounding set (needs
/// CAP_SETPCAP), the capability sets, and the ambient set (needs them permitted and inheritable).
pub fn restore_creds(task: &mut Task, c: &Creds) -> Result<()> {
    let step = "setting the supplementary groups";
    let groups: Vec<u8> = c.groups.iter().flat_map(|g| g.to_le_bytes()).collect();
    let addr = task.put(step, 0, &groups)?;
    task.call(step, Sysno::Setgroups, &[c.groups.len() as u64, addr])?;
    task.call(
        "keeping capabilities across the id change",
        Sysno::Prctl,
        &[PR_SET_SECUREBITS, SECBIT_NO_SETUID_FIXUP],
    )?;
    let [rg, eg, sg, fg] = c.gids.map(u64::from);
    task.call("setting the gids", Sysno::Setresgid, &[rg, eg, sg])?;
    // setfs[ug]id return the old value and report no error.
    task.call_raw("setting the fsgid", Sysno::Setfsgid, &[fg])?;
    let [ru, eu, su, fu] = c.uids.map(u64::from);
    task.call("setting the uids", Sysno::Setresuid, &[ru, eu, su])?;
    task.call_raw("setting the fsuid", Sysno::Setfsuid, &[fu])?;
    task.call(
        "setting the securebits",
        Sysno::Prctl,
        &[PR_SET_SECUREBITS, u64::from(c.securebits)],
    )?;
    for cap in 0..=cap_last_cap().min(63) {
        if c.cap_bnd & (1u64 << cap) == 0 {
            task.call(
                &format!("dropping capability {cap} from the bounding set"),
                Sysno::Prctl,
                &[PR_CAPBSET_DROP, u64::from(cap)],
            )?;
        }
    }
    let step = "setting the capabilities";
    let mut b = Vec::with_capacity(8 + 24);
    b.extend_from_slice(&LINUX_CAPABILITY_VERSION_3.to_le_bytes());
    b.extend_from_slice(&0i32.to_le_bytes());
    for half in [0u32, 32] {
        for set in [c.cap_eff, c.cap_prm, c.cap_inh] {
            b.extend_from_slice(&((set >> half) as u32).to_le_bytes());
        }
    }
    let hdr = task.put(step, 0, &b)?;
    task.call(step, Sysno::Capset, &[hdr, hdr + 8])?;
    task.call(
        "clearing the ambient set",
        Sysno::Prctl,
        &[PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0],
    )?;
    for cap in 0..64u64 {
        if c.cap_amb & (1 << cap) != 0 {
            task.call(
                &format!("raising ambient capability {cap}"),
                Sysno::Prctl,
                &[PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0],
            )?;
        }
    }
    Ok(())
}

/// What a credential change resets: dumpable, and the parent-death signal (only restored when
/// the restore tool stays the parent, i.e. `--foreground`; otherwise its exit would fire it).
pub fn after_creds(task: &mut Task, p: &Process, keep_pdeathsig: bool) -> Result<()> {
    if p.dumpable <= 1 {
        task.call(
            "setting dumpable",
            Sysno::Prctl,
            &[PR_SET_DUMPABLE, u64::from(p.dumpable)],
        )?;
    }
    if keep_pdeathsig && p.pdeathsig != 0 {
        task.call(
            "setting the parent-death signal",
            Sysno::Prctl,
            &[PR_SET_PDEATHSIG, u64::from(p.pdeathsig)],
        )?;
    }
    Ok(())
}
