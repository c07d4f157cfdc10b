//! Refusals before anything is created: each with its exact error, and no process left behind.
//!
//! The images are synthetic (written with psnc-format's writer), so each test controls the one
//! thing that must be refused. No test in this file creates a child process on success, so "no
//! child of ours exists afterwards" means the refusal created none.
#![allow(clippy::unwrap_used)]

use psnc_format::model::*;
use psnc_format::{FormatError, Image, ImageWriter, LayoutClass};
use psnc_proc::ProcDir;
use psnc_restore::{restore, InheritFd, InheritTarget, Options, RestoreError};

/// A PID that no process uses now (high, below pid_max).
fn free_pid() -> u32 {
    let max: u32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(32768);
    (max / 2..max)
        .rev()
        .find(|p| !ProcDir::new(*p as i32).exists())
        .unwrap()
}

/// Every child of every thread of this test process.
fn our_children() -> Vec<i32> {
    let me = ProcDir::current();
    let mut out = Vec::new();
    for t in me.list_numeric("task").unwrap() {
        out.extend(me.task(t).children().unwrap_or_default());
    }
    out
}

/// A minimal image of one process: one anonymous page holding 0x5a, a stored executable.
fn synthetic(pid: u32, cpu_flags: &[&str], exe_stored: bool) -> Vec<u8> {
    synthetic_with(pid, cpu_flags, exe_stored, |_| {})
}

/// [`synthetic`], with `edit` applied to the model before it is written.
fn synthetic_with(
    pid: u32,
    cpu_flags: &[&str],
    exe_stored: bool,
    edit: impl FnOnce(&mut Checkpoint),
) -> Vec<u8> {
    let mut w = ImageWriter::new(Vec::new(), LayoutClass::Bits64).unwrap();
    let run = w.write_pages(0x40_0000, &[0x5a; 4096]).unwrap();
    let exe_id = exe_stored.then(|| {
        w.store_file("/nonexistent/psnc-exe", b"\x7fELF not really")
            .unwrap()
    });
    let thread = Thread {
        tid: pid,
        regs: Regs::X86_64([0; 27]),
        ..Thread::default()
    };
    let process = Process {
        pid,
        ppid: 1,
        pgid: pid,
        sid: pid,
        comm: "synthetic".into(),
        cwd: "/".into(),
        root: "/".into(),
        exe: FileRef {
            path: "/nonexistent/psnc-exe".into(),
            stored: exe_id,
            ..FileRef::default()
        },
        threads: vec![thread],
        vmas: vec![Vma {
            start: 0x40_0000,
            end: 0x40_1000,
            prot: 3,
            ..Vma::default()
        }],
        pages: vec![run],
        ..Process::default()
    };
    let ckpt = Checkpoint {
        identity: Identity {
            host: Host {
                cpu_flags: cpu_flags.iter().map(|s| s.to_string()).collect(),
                ..Host::default()
            },
            ..Identity::default()
        },
        processes: vec![process],
        files: Vec::new(),
        fd_shares: Vec::new(),
        zombies: Vec::new(),
        shared_memory: Vec::new(),
        ptys: Vec::new(),
        sysv_shm: Vec::new(),
        unix_peers: Vec::new(),
        parent: None,
    };
    let mut ckpt = ckpt;
    edit(&mut ckpt);
    w.finish(ckpt).unwrap()
}

#[test]
fn truncated_image_is_refused_at_open() {
    let bytes = synthetic(free_pid(), &[], true);
    for cut in [1, 100, bytes.len() / 2] {
        let err = Image::from_vec(bytes[..bytes.len() - cut].to_vec()).unwrap_err();
        assert!(
            matches!(
                err,
                FormatError::BadTrailer { .. } | FormatError::Truncated { .. }
            ),
            "cut {cut}: {err:?}"
        );
    }
}

#[test]
fn flipped_page_byte_is_refused_before_anything_is_created() {
    let pid = free_pid();
    let mut bytes = synthetic(pid, &[], true);
    // The page data section starts at 4096 and holds the 0x5a page.
    assert_eq!(bytes[4096 + 100], 0x5a);
    bytes[4096 + 100] ^= 1;
    let image = Image::from_vec(bytes).unwrap();
    let err = restore(&image, &Options::default()).unwrap_err();
    assert!(
        matches!(err, RestoreError::Image(FormatError::DigestMismatch { .. })),
        "{err:?}"
    );
    assert!(err.is_refusal());
    assert!(!ProcDir::new(pid as i32).exists());
    assert!(our_children().is_empty());
}

#[test]
fn pid_in_use_is_refused_naming_the_holder() {
    let me = std::process::id();
    let image = Image::from_vec(synthetic(me, &[], true)).unwrap();
    let err = restore(&image, &Options::default()).unwrap_err();
    let comm = ProcDir::current().comm().unwrap();
    assert!(
        matches!(&err, RestoreError::PidInUse { pid, comm: c } if *pid == me && *c == comm),
        "{err:?}"
    );
    assert!(err.to_string().contains(&format!("PID {me} is in use")));
    assert!(our_children().is_empty());
}

/// A zombie child of the synthetic process, in its group and session.
fn zombie(pid: u32, ppid: u32, status: ExitStatus) -> Zombie {
    Zombie {
        pid,
        ppid,
        pgid: ppid,
        sid: ppid,
        status,
    }
}

#[test]
fn a_zombie_whose_pid_is_in_use_is_refused_naming_the_holder() {
    let pid = free_pid();
    let me = std::process::id();
    let bytes = synthetic_with(pid, &[], true, |ck| {
        ck.zombies = vec![zombie(me, pid, ExitStatus::Exited(7))];
    });
    let image = Image::from_vec(bytes).unwrap();
    let err = restore(&image, &Options::default()).unwrap_err();
    let comm = ProcDir::current().comm().unwrap();
    assert!(
        matches!(&err, RestoreError::PidInUse { pid, comm: c } if *pid == me && *c == comm),
        "{err:?}"
    );
    assert!(err.is_refusal());
    assert!(!ProcDir::new(pid as i32).exists());
    assert!(our_children().is_empty());
}

#[test]
fn a_zombie_killed_by_a_signal_that_cannot_kill_is_refused() {
    let pid = free_pid();
    let bytes = synthetic_with(pid, &[], true, |ck| {
        ck.zombies = vec![zombie(
            pid - 1,
            pid,
            ExitStatus::Killed {
                signal: libc::SIGCONT as u8,
                core: false,
            },
        )];
    });
    let image = Image::from_vec(bytes).unwrap();
    let err = restore(&image, &Options::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "the image is inconsistent: zombie {} was killed by signal {}, whose default action \
             does not end a process",
            pid - 1,
            libc::SIGCONT
        )
    );
    assert!(err.is_refusal());
    assert!(our_children().is_empty());
}

#[test]
fn missing_cpu_feature_is_refused_with_its_name() {
    let host = psnc_restore::cpu::host_flags().unwrap();
    let Some(missing) = psnc_restore::cpu::USER_ISA_FLAGS
        .iter()
        .find(|f| !host.contains(**f))
    else {
        psnc_testkit::skip!(
            "missing_cpu_feature_is_refused_with_its_name",
            "this CPU has every flag of USER_ISA_FLAGS (none is missing to be refused)"
        );
    };
    let pid = free_pid();
    // Flags this CPU has, plus one it lacks, plus non-ISA flags that must not matter.
    let image = Image::from_vec(synthetic(
        pid,
        &["sse2", missing, "hypervisor", "not_a_flag"],
        true,
    ))
    .unwrap();
    let err = restore(&image, &Options::default()).unwrap_err();
    assert!(
        matches!(&err, RestoreError::CpuFeatures { missing: m } if *m == vec![missing.to_string()]),
        "{err:?}"
    );
    assert!(err.to_string().contains(missing));
    assert!(!ProcDir::new(pid as i32).exists());
    assert!(our_children().is_empty());
}

#[test]
fn missing_unstored_executable_is_refused() {
    let pid = free_pid();
    let image = Image::from_vec(synthetic(pid, &[], false)).unwrap();
    let err = restore(&image, &Options::default()).unwrap_err();
    assert!(
        matches!(&err, RestoreError::MissingFile { path, used_by, .. }
            if path == "/nonexistent/psnc-exe" && used_by == "the executable"),
        "{err:?}"
    );
    assert!(our_children().is_empty());
}

#[test]
fn unmatched_inherit_fd_is_refused() {
    let pid = free_pid();
    let image = Image::from_vec(synthetic(pid, &[], true)).unwrap();
    let opts = Options {
        inherit_fds: vec![InheritFd::parse("fd[0]:pipe:[42]").unwrap()],
        ..Options::default()
    };
    let err = restore(&image, &opts).unwrap_err();
    assert!(
        matches!(&err, RestoreError::InheritFd { arg, .. } if arg == "fd[0]:pipe:[42]"),
        "{err:?}"
    );
}

#[test]
fn inherit_fd_arguments_parse() {
    let a = InheritFd::parse("fd[7]:fd:3").unwrap();
    assert_eq!((a.ours, a.target), (7, InheritTarget::Fd(3)));
    let b = InheritFd::parse("fd[5]:pipe:[1234]").unwrap();
    assert_eq!(
        (b.ours, b.target),
        (5, InheritTarget::Resource("pipe:[1234]".into()))
    );
    for bad in [
        "7:fd:3",
        "fd[x]:fd:3",
        "fd[7]fd:3",
        "fd[7]:",
        "fd[7]:fd:x",
        "fd[-1]:fd:3",
    ] {
        assert!(
            matches!(InheritFd::parse(bad), Err(RestoreError::InheritFd { arg, .. }) if arg == bad),
            "{bad}"
        );
    }
}

/// A shared anonymous mapping whose object the image does not hold (a valid image: no writer
/// makes one, the format allows it) is refused by address before anything is created.
#[test]
fn shared_anonymous_memory_without_its_object_is_refused() {
    let pid = free_pid();
    let mut ck = Image::from_vec(synthetic(pid, &[], true))
        .unwrap()
        .checkpoint()
        .clone();
    ck.processes[0].pages.clear();
    ck.processes[0].vmas[0].shared = true;
    let mut w = ImageWriter::new(Vec::new(), LayoutClass::Bits64).unwrap();
    let id = w
        .store_file("/nonexistent/psnc-exe", b"\x7fELF not really")
        .unwrap();
    ck.processes[0].exe.stored = Some(id);
    ck.files.clear();
    let image = Image::from_vec(w.finish(ck).unwrap()).unwrap();
    let err = restore(&image, &Options::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "mapping 0x400000-0x401000 (shared anonymous memory without its contents in the image) \
         cannot be restored yet"
    );
    assert!(our_children().is_empty());
}
