//! Capture against real processes: what the image holds, that the target is left running and
//! unchanged, and the exact error of every refusal and bad path.

// Helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::time::{Duration, Instant};

use common::*;
use psnc_capture::{capture, CaptureError, Options, Output};
use psnc_format::model::{vm_flags, Arch, FdKind, Regs, SyscallRestart, VmaKind};
use psnc_format::{Image, LayoutClass};
use psnc_proc::ProcDir;
use psnc_ptrace::arch::x86_64 as r;

fn opts(path: &std::path::Path) -> Options {
    Options::new(Output::Path(path.to_path_buf()))
}

/// The data file the patterns target maps privately: 4 pages of 0x42.
fn data_file(dir: &std::path::Path) -> std::path::PathBuf {
    let p = dir.join("data.bin");
    fs::write(&p, vec![0x42u8; 4 * 4096]).unwrap();
    p
}

fn start_patterns(extra: &[&str]) -> Target {
    let dir = tempfile::tempdir().unwrap();
    let data = data_file(dir.path());
    let mut args = vec![data.to_str().unwrap()];
    args.extend_from_slice(extra);
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Target::start(&target("patterns"), &args, dir)
}

#[test]
fn sleep_is_captured_and_keeps_sleeping() {
    let t = Target::start_plain("sleep", &["1000"]);
    let dir = tempfile::tempdir().unwrap();
    let img_path = dir.path().join("sleep.img");
    let summary = capture(t.pid(), &opts(&img_path)).unwrap();
    assert_eq!(summary.pid, t.pid());
    assert!(!summary.killed);
    assert_eq!(summary.image_bytes, fs::metadata(&img_path).unwrap().len());
    t.assert_running_untouched();
    let st = ProcDir::new(t.pid()).stat().unwrap();
    assert_eq!(st.state, 'S', "sleep is not sleeping: {st:?}");

    let img = Image::open(&img_path).unwrap();
    img.verify_data().unwrap();
    assert_eq!(img.class(), LayoutClass::Bits64);
    let ck = img.checkpoint();
    assert_eq!(ck.processes.len(), 1);
    let p = &ck.processes[0];
    assert_eq!(p.pid as i32, t.pid());
    assert_eq!(p.comm, "sleep");
    assert_eq!(p.arch, Arch::X86_64);
    assert_eq!(p.threads.len(), 1);
    assert_eq!(
        summary.pages_stored,
        p.pages.iter().map(|r| r.pages).sum::<u64>()
    );

    // Every VMA of /proc/PID/maps, in order, with its protections.
    let live = maps(t.pid());
    let got: Vec<(u64, u64)> = p.vmas.iter().map(|v| (v.start, v.end)).collect();
    let want: Vec<(u64, u64)> = live.iter().map(|m| (m.start, m.end)).collect();
    assert_eq!(got, want);
    for (v, m) in p.vmas.iter().zip(&live) {
        assert_eq!(v.prot & libc::PROT_READ as u32 != 0, m.read);
        assert_eq!(v.prot & libc::PROT_WRITE as u32 != 0, m.write);
        assert_eq!(v.shared, m.shared);
    }
    // The kernel's own mappings: vdso stored whole, vvar/vsyscall not at all.
    let vdso = p
        .vmas
        .iter()
        .find(|v| v.kind == VmaKind::Vdso)
        .expect("a [vdso]");
    let vdso_bytes = stored(&img, p, vdso.start, vdso.end - vdso.start).expect("vdso stored");
    assert_eq!(
        vdso_bytes,
        live_bytes(t.pid(), vdso.start, (vdso.end - vdso.start) as usize)
    );
    for v in p.vmas.iter().filter(|v| {
        matches!(
            v.kind,
            VmaKind::Vvar | VmaKind::VvarVclock | VmaKind::Vsyscall
        )
    }) {
        assert!(!page_stored(p, v.start), "{:?} stored", v.kind);
    }
    let stack = p
        .vmas
        .iter()
        .find(|v| v.kind == VmaKind::Stack)
        .expect("a [stack]");
    assert_ne!(stack.vm_flags & vm_flags::GROWSDOWN, 0);

    // sleep is in clock_nanosleep: the restart is resolved in the stored registers only.
    let th = &p.threads[0];
    let Regs::X86_64(regs) = th.regs else {
        panic!("{:?}", th.regs)
    };
    assert_eq!(
        th.restart,
        SyscallRestart::Reissue {
            nr: libc::SYS_clock_nanosleep as u64,
            code: -516
        }
    );
    assert_eq!(regs[r::RAX], libc::SYS_clock_nanosleep as u64);
    assert_eq!(regs[r::ORIG_RAX], u64::MAX);
    assert_eq!(
        live_bytes(t.pid(), regs[r::RIP], 2),
        [0x0f, 0x05],
        "rip is not at a syscall instruction"
    );
    assert!(stack.start <= regs[r::RSP] && regs[r::RSP] < stack.end);
    assert_eq!(regs[r::CS], 0x33);
    assert_ne!(th.fs_base, 0);
    assert_eq!(th.fs_base, regs[r::FS_BASE]);
    assert_eq!(th.xsave.len() as u32, ck.identity.host.xsave_size);
    assert_ne!(ck.identity.host.xsave_features & 3, 0);
    assert!(th.rseq.is_some(), "glibc registers rseq");

    // Process-wide state.
    assert_eq!(p.signals.actions.len(), 64);
    assert!(p.mm.brk >= p.mm.start_brk);
    assert_eq!(p.rlimits.len(), 16);
    assert!(!p.auxv.is_empty());
    assert_eq!(
        p.exe.path,
        fs::read_link(format!("/proc/{}/exe", t.pid()))
            .unwrap()
            .to_str()
            .unwrap()
    );
    let exe = p.exe.stored.expect("the executable is stored");
    assert_eq!(img.file_bytes(exe).unwrap(), fs::read(&p.exe.path).unwrap());
    assert_ne!(p.exe.identity.sha256, [0; 32]);
    // Every file mapping refers to stored contents.
    for v in p.vmas.iter().filter(|v| v.kind == VmaKind::File) {
        assert!(
            v.file.as_ref().and_then(|f| f.stored).is_some(),
            "{:#x} not stored",
            v.start
        );
    }
}

#[test]
fn memory_patterns_are_stored_byte_exact_and_the_target_runs_on() {
    let t = start_patterns(&[]);
    let dir = tempfile::tempdir().unwrap();
    let img_path = dir.path().join("p.img");
    let before = t.last_count();
    capture(t.pid(), &opts(&img_path)).unwrap();
    t.assert_running_untouched();
    assert!(t.last_count() > before);

    let img = Image::open(&img_path).unwrap();
    let p = &img.checkpoint().processes[0];

    // Heap and bss: every byte.
    assert_eq!(
        stored(&img, p, t.addr("heap"), 64 * 4096).expect("heap stored"),
        pattern(0x11, 64 * 4096)
    );
    assert_eq!(
        stored(&img, p, t.addr("bss"), 3 * 4096).expect("bss stored"),
        pattern(0x77, 3 * 4096)
    );

    // The big mapping: touched pages stored exactly, the holes not at all.
    let big = t.addr("big");
    for i in 0..256u64 {
        let a = big + i * 4096;
        if i % 4 == 0 {
            assert_eq!(
                stored(&img, p, a, 4096).expect("touched page"),
                pattern(0x20 + i as u32, 4096)
            );
        } else {
            assert!(!page_stored(p, a), "hole page {i} stored");
        }
    }
    let vma = p
        .vmas
        .iter()
        .find(|v| v.start <= big && big < v.end)
        .unwrap();
    assert_eq!(vma.kind, VmaKind::Anonymous);

    // PROT_NONE: recorded without protections, its present page read through /proc/PID/mem.
    let guard = t.addr("guard");
    let gv = p.vmas.iter().find(|v| v.start == guard).expect("guard VMA");
    assert_eq!(gv.prot, 0);
    assert_eq!(
        stored(&img, p, guard, 4096).expect("guard page"),
        pattern(0x5a, 4096)
    );
    assert!(!page_stored(p, guard + 4096));

    // Private file mapping: only the copied-on-write page is memory; the rest is the file.
    let fmap = t.addr("fmap");
    let fv = p.vmas.iter().find(|v| v.start == fmap).expect("file VMA");
    assert_eq!(fv.kind, VmaKind::File);
    assert!(!fv.shared);
    let f = fv.file.as_ref().unwrap();
    assert!(f.path.ends_with("data.bin"), "{}", f.path);
    assert_eq!(
        img.file_bytes(f.stored.unwrap()).unwrap(),
        vec![0x42u8; 4 * 4096]
    );
    assert_eq!(
        stored(&img, p, fmap + 2 * 4096, 4096).expect("COW page"),
        pattern(0xc3, 4096)
    );
    for i in [0u64, 1, 3] {
        assert!(
            !page_stored(p, fmap + i * 4096),
            "clean file page {i} stored"
        );
    }

    // Page runs are sorted, inside one VMA each.
    for w in p.pages.windows(2) {
        assert!(w[0].addr + w[0].pages * 4096 <= w[1].addr);
    }
    for run in &p.pages {
        assert!(p
            .vmas
            .iter()
            .any(|v| v.start <= run.addr && run.addr + run.pages * 4096 <= v.end));
    }
}

#[test]
fn fds_of_each_kind_and_the_pipe_keeps_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_string();
    let t = Target::start(&target("fds"), &[&d], dir);
    let img_dir = tempfile::tempdir().unwrap();
    let img_path = img_dir.path().join("f.img");
    capture(t.pid(), &opts(&img_path)).unwrap();
    t.assert_running_untouched();
    // tee copied the pipe's bytes without consuming them.
    let n = t
        .output()
        .lines()
        .filter(|l| l.starts_with("pipe "))
        .count();
    t.wait_for(
        |l| {
            l.starts_with("pipe ")
                && t.output()
                    .lines()
                    .filter(|l| l.starts_with("pipe "))
                    .count()
                    > n + 2
        },
        Duration::from_secs(10),
    );
    assert!(
        t.output()
            .lines()
            .filter(|l| l.starts_with("pipe "))
            .all(|l| l == "pipe 10"),
        "{}",
        t.output()
    );

    let img = Image::open(&img_path).unwrap();
    let p = &img.checkpoint().processes[0];
    let fd = |n: i32| {
        p.fds
            .iter()
            .find(|f| f.fd == n)
            .unwrap_or_else(|| panic!("no fd {n}: {:?}", p.fds))
    };
    let FdKind::Pipe(r) = &fd(3).kind else {
        panic!("{:?}", fd(3))
    };
    let FdKind::Pipe(w) = &fd(4).kind else {
        panic!("{:?}", fd(4))
    };
    assert_eq!(r.ino, w.ino);
    assert!(!r.write_end && w.write_end);
    assert!(!r.external && !w.external);
    assert_eq!(r.buffered, b"hello pipe");
    assert!(w.buffered.is_empty());
    assert!(r.capacity >= 4096);

    let FdKind::Regular(a) = &fd(5).kind else {
        panic!("{:?}", fd(5))
    };
    assert!(a.path.ends_with("/append.txt"));
    assert!(!a.deleted);
    assert_eq!(fd(5).flags & libc::O_APPEND as u32, libc::O_APPEND as u32);
    assert_eq!(fd(5).pos, 6);
    assert_eq!(
        a.stored, None,
        "a file still on disk is reopened by path, not stored"
    );

    let FdKind::Regular(g) = &fd(6).kind else {
        panic!("{:?}", fd(6))
    };
    assert!(g.deleted);
    assert!(g.path.ends_with("/gone.txt"), "{}", g.path);
    assert_eq!(
        img.file_bytes(g.stored.expect("deleted file stored"))
            .unwrap(),
        b"deleted contents"
    );

    assert_eq!(
        fd(7).kind,
        FdKind::CharDevice {
            path: "/dev/null".into(),
            rdev: libc::makedev(1, 3)
        }
    );
    let FdKind::Directory { path } = &fd(8).kind else {
        panic!("{:?}", fd(8))
    };
    assert_eq!(path, t.dir.path().to_str().unwrap());
    assert!(!fd(3).cloexec);
}

#[test]
fn kill_kills_only_after_the_image_is_written() {
    // A shell is the parent, so it (not this test, the tracer) collects the exit status.
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        "sleep 1000 & echo $! > {0}/pid; wait $!; echo $? > {0}/status.tmp; mv {0}/status.tmp {0}/status",
        dir.path().display()
    );
    let mut sh = std::process::Command::new("sh")
        .args(["-c", &script])
        .spawn()
        .unwrap();
    let pid_file = dir.path().join("pid");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let pid: i32 = loop {
        if let Some(p) = fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            if ProcDir::new(p).comm().is_ok_and(|c| c == "sleep") {
                break p;
            }
        }
        assert!(std::time::Instant::now() < deadline, "sleep did not start");
        std::thread::sleep(Duration::from_millis(5));
    };
    let img_path = dir.path().join("k.img");
    let mut o = opts(&img_path);
    o.kill = true;
    let summary = capture(pid, &o).unwrap();
    assert!(summary.killed);
    Image::open(&img_path).unwrap().verify_data().unwrap();
    assert!(sh.wait().unwrap().success());
    assert_eq!(
        fs::read_to_string(dir.path().join("status"))
            .unwrap()
            .trim(),
        "137",
        "not killed by SIGKILL"
    );
}

#[test]
fn no_store_files_stores_only_deleted_files() {
    let t = Target::start_plain("sleep", &["1000"]);
    let dir = tempfile::tempdir().unwrap();
    let img_path = dir.path().join("n.img");
    let mut o = opts(&img_path);
    o.store_files = false;
    let summary = capture(t.pid(), &o).unwrap();
    assert_eq!(summary.files_stored, 0);
    let img = Image::open(&img_path).unwrap();
    let p = &img.checkpoint().processes[0];
    assert_eq!(p.exe.stored, None);
    // The identity is still recorded, hash included, so restore can check the file on disk.
    assert_ne!(p.exe.identity.sha256, [0; 32]);
    assert!(img.checkpoint().files.is_empty());
}

#[test]
fn layout_32_refuses_a_64_bit_process() {
    let t = Target::start_plain("sleep", &["1000"]);
    let dir = tempfile::tempdir().unwrap();
    let img_path = dir.path().join("l.img");
    let mut o = opts(&img_path);
    o.layout = Some(LayoutClass::Bits32);
    let err = capture(t.pid(), &o).unwrap_err();
    assert!(
        matches!(err, CaptureError::LayoutTooNarrow { pid, arch: "x86_64" } if pid == t.pid()),
        "{err:?}"
    );
    assert!(dir_entries(dir.path()).is_empty());
    t.assert_running_untouched();
}

#[test]
fn no_such_process() {
    let dir = tempfile::tempdir().unwrap();
    // PIDs above pid_max never exist.
    let err = capture(i32::MAX, &opts(&dir.path().join("x.img"))).unwrap_err();
    assert!(
        matches!(err, CaptureError::NoSuchProcess { pid: i32::MAX }),
        "{err:?}"
    );
    assert_eq!(err.to_string(), format!("no process with PID {}", i32::MAX));
    assert!(dir_entries(dir.path()).is_empty());
}

#[test]
fn kernel_thread_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = capture(2, &opts(&dir.path().join("x.img"))).unwrap_err();
    assert!(
        matches!(&err, CaptureError::KernelThread { pid: 2, comm } if comm == "kthreadd"),
        "{err:?}"
    );
    assert!(dir_entries(dir.path()).is_empty());
}

#[test]
fn own_pid_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let me = std::process::id() as i32;
    let err = capture(me, &opts(&dir.path().join("x.img"))).unwrap_err();
    assert!(
        matches!(err, CaptureError::SelfCapture { pid } if pid == me),
        "{err:?}"
    );
}

#[test]
fn missing_output_directory_leaves_the_target_untouched() {
    let t = start_patterns(&[]);
    let dir = tempfile::tempdir().unwrap();
    let img_path = dir.path().join("missing").join("x.img");
    let err = capture(t.pid(), &opts(&img_path)).unwrap_err();
    let CaptureError::Output { path, source } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(path, &img_path);
    assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
    assert!(dir_entries(dir.path()).is_empty());
    t.assert_running_untouched();
}

#[test]
fn zombie_is_refused() {
    // A child that has exited and is not reaped.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id() as i32;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while ProcDir::new(pid).state().unwrap() != 'Z' {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(2));
    }
    let dir = tempfile::tempdir().unwrap();
    let err = capture(pid, &opts(&dir.path().join("x.img"))).unwrap_err();
    assert!(
        matches!(err, CaptureError::Zombie { pid: p } if p == pid),
        "{err:?}"
    );
    child.wait().unwrap();
}

/// Captures a `refuse` target in `mode` and returns the error, checking the target is untouched
/// and no image was left.
fn refused(mode: &str) -> (CaptureError, Target) {
    let t = Target::start(&target("refuse"), &[mode], tempfile::tempdir().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let err = capture(t.pid(), &opts(&dir.path().join("x.img"))).unwrap_err();
    assert!(
        dir_entries(dir.path()).is_empty(),
        "left behind: {:?}",
        dir_entries(dir.path())
    );
    t.assert_running_untouched();
    (err, t)
}

fn ready_value(t: &Target) -> String {
    t.output()
        .lines()
        .find_map(|l| l.strip_prefix("ready "))
        .unwrap()
        .to_string()
}

#[test]
fn socket_fd_is_refused_by_family_name() {
    let (err, t) = refused("socket");
    let fd = ready_value(&t);
    let CaptureError::UnsupportedSocket { pid, fd: n, kind } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*pid, t.pid());
    assert_eq!(n.to_string(), fd);
    assert!(
        kind.starts_with("a packet socket (AF_PACKET, SOCK_DGRAM)"),
        "{kind}"
    );
    assert!(err.to_string().contains("close it in the process or leave"));
}

#[test]
fn io_uring_is_refused() {
    let (err, t) = refused("io_uring");
    let fd = ready_value(&t);
    assert!(
        matches!(&err, CaptureError::Unsupported { what, kind, .. } if *what == format!("fd {fd}") && kind == "an io_uring instance (anon_inode:[io_uring])"),
        "{err:?}"
    );
}

#[test]
fn hugetlb_memfd_is_refused() {
    let (err, t) = refused("memfd");
    let fd = ready_value(&t);
    assert_eq!(
        err.to_string(),
        format!(
            "PID {}: fd {fd} is a memfd on hugetlbfs (MFD_HUGETLB, /memfd:buf (deleted)), which \
             psnc-capture does not support yet",
            t.pid()
        )
    );
}

#[test]
fn sysv_shared_memory_is_captured_once_with_its_attachment() {
    let t = Target::start(&target("refuse"), &["sysv"], tempfile::tempdir().unwrap());
    let addr = u64::from_str_radix(ready_value(&t).trim_start_matches("0x"), 16).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let img_path = dir.path().join("x.img");
    capture(t.pid(), &opts(&img_path)).unwrap();
    let img = Image::open(&img_path).unwrap();
    let segs = &img.checkpoint().sysv_shm;
    assert_eq!(segs.len(), 1, "{segs:?}");
    let s = &segs[0];
    // Removed at once by the target: key IPC_PRIVATE, SHM_DEST, one page written.
    assert_eq!(
        (s.key, s.size, s.mode, s.removed),
        (0, 4096, 0o600, true),
        "{s:?}"
    );
    assert_eq!(s.pages.len(), 1, "{s:?}");
    assert_eq!(
        img.page_bytes(&s.pages[0]).unwrap()[0],
        1,
        "the segment's first byte"
    );
    assert_eq!(s.attachments.len(), 1);
    assert_eq!(s.attachments[0].start, addr);
    assert!(!s.attachments[0].read_only);
    t.assert_running_untouched();
}

#[test]
fn seccomp_filter_is_refused() {
    let (err, t) = refused("seccomp");
    assert!(
        matches!(err, CaptureError::SeccompFilter { pid } if pid == t.pid()),
        "{err:?}"
    );
}

/// `SigPnd`, `ShdPnd` and `SigBlk` of a live process.
fn signal_lines(pid: i32) -> [u64; 3] {
    let s = ProcDir::new(pid).status().unwrap();
    [s.sig_pnd, s.shd_pnd, s.sig_blk]
}

#[test]
fn process_and_signal_state() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path().to_str().unwrap().to_string();
    let t = Target::start(&target("state"), &[&cwd], dir);
    let ready = ready_value(&t);
    let mut it = ready
        .split(' ')
        .map(|a| u64::from_str_radix(a.trim_start_matches("0x"), 16).unwrap());
    let (handler, alt) = (it.next().unwrap(), it.next().unwrap());
    let before = signal_lines(t.pid());
    let img_dir = tempfile::tempdir().unwrap();
    let img_path = img_dir.path().join("s.img");
    capture(t.pid(), &opts(&img_path)).unwrap();
    t.assert_running_untouched();
    assert_eq!(
        signal_lines(t.pid()),
        before,
        "pending signals or mask changed"
    );

    let img = Image::open(&img_path).unwrap();
    let p = &img.checkpoint().processes[0];
    let bit = |sig: i32| 1u64 << (sig - 1);

    // Handlers.
    let usr1 = p.signals.actions[libc::SIGUSR1 as usize - 1];
    assert_eq!(usr1.handler, handler);
    const SA_RESTORER: u64 = 0x0400_0000;
    let want = (libc::SA_SIGINFO | libc::SA_RESTART) as u64 | SA_RESTORER;
    assert_eq!(usr1.flags & want, want);
    assert_ne!(usr1.restorer, 0);
    assert_eq!(usr1.mask, bit(libc::SIGTERM));
    assert_eq!(
        p.signals.actions[libc::SIGALRM as usize - 1].handler,
        1,
        "SIG_IGN"
    );
    assert_eq!(
        p.signals.actions[libc::SIGINT as usize - 1].handler,
        0,
        "SIG_DFL"
    );

    // Queues with full siginfo: sigqueue (SI_QUEUE, value 42) shared, tgkill (SI_TKILL) private.
    assert_eq!(
        p.signals.shared_pending.len(),
        1,
        "{:?}",
        p.signals.shared_pending
    );
    let q = &p.signals.shared_pending[0];
    assert_eq!((q.signo, q.code), (libc::SIGUSR1 as u32, libc::SI_QUEUE));
    assert_eq!(q.raw.len(), 128);
    assert_eq!(
        i32::from_ne_bytes(q.raw[16..20].try_into().unwrap()),
        t.pid(),
        "si_pid"
    );
    assert_eq!(
        i32::from_ne_bytes(q.raw[24..28].try_into().unwrap()),
        42,
        "si_value"
    );
    let th = &p.threads[0];
    assert_eq!(th.pending.len(), 1, "{:?}", th.pending);
    assert_eq!(
        (th.pending[0].signo, th.pending[0].code),
        (libc::SIGUSR2 as u32, libc::SI_TKILL)
    );
    assert_eq!(
        th.sigmask & (bit(libc::SIGUSR1) | bit(libc::SIGUSR2)),
        bit(libc::SIGUSR1) | bit(libc::SIGUSR2)
    );
    assert_eq!(
        (th.sigaltstack.sp, th.sigaltstack.size, th.sigaltstack.flags),
        (alt, 65536, 0)
    );
    assert_ne!(th.clear_child_tid, 0, "glibc sets clear_child_tid");
    assert_ne!(th.robust_list, 0, "glibc registers a robust list");

    // Timers.
    let real = p.signals.itimers[0];
    assert_eq!(real.interval_us, 50_000_000);
    assert!(
        real.value_us > 90_000_000 && real.value_us <= 100_000_000,
        "{real:?}"
    );
    assert_eq!(p.signals.posix_timers.len(), 1);
    let pt = p.signals.posix_timers[0];
    assert_eq!(
        (pt.clock, pt.signo, pt.notify, pt.sigev_value),
        (
            libc::CLOCK_MONOTONIC as u32,
            libc::SIGRTMIN() as u32 + 1,
            0,
            7
        )
    );
    assert!(
        pt.value_ns > 190_000_000_000 && pt.value_ns <= 200_000_000_000,
        "{pt:?}"
    );
    assert_eq!(pt.interval_ns, 0);

    // Process state.
    assert_eq!(p.umask, 0o027);
    assert_eq!(
        p.rlimits[libc::RLIMIT_NOFILE as usize],
        psnc_format::model::Rlimit {
            cur: 1000,
            max: 2000
        }
    );
    assert_eq!(p.comm, "statetarget");
    assert_eq!(p.threads[0].comm, "statetarget");
    assert_eq!(p.cwd, cwd);
    assert_eq!(p.root, "/");
    assert_eq!(p.pdeathsig, libc::SIGHUP as u32);
    assert!(p.child_subreaper);
    assert!(p.no_new_privs);
    assert_eq!(p.dumpable, 1);
    assert_eq!(p.seccomp_mode, 0);
    assert_eq!(p.ppid, std::process::id());
    assert_eq!(p.creds.uids, [0; 4]);
    assert_eq!(p.creds.cap_eff, p.creds.cap_prm);
    assert!(
        p.mm.start_code < p.mm.end_code
            && p.mm.arg_start < p.mm.arg_end
            && p.mm.env_start < p.mm.env_end
    );
    assert!(p.mm.brk >= p.mm.start_brk);
    assert!(p
        .cmdline
        .starts_with(target("state").to_str().unwrap().as_bytes()));
}

#[test]
fn i386_process_gets_the_32_bit_layout_and_its_own_registers() {
    let exe = target_i386(
        "counter32",
        "#include <stdio.h>\n#include <unistd.h>\nint main(void){\n printf(\"ready\\n\"); fflush(stdout);\n \
         for (unsigned long n = 1;; n++) { printf(\"count %lu ok\\n\", n); fflush(stdout); usleep(100000); }\n}\n",
    );
    let t = Target::start(&exe, &[], tempfile::tempdir().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let img_path = dir.path().join("i386.img");
    // The restart assertion below needs the thread inside its nanosleep: it sleeps 100 ms per
    // 10 us of work, and the capture starts once /proc says it sleeps, so that a loaded machine
    // that leaves it runnable (stopped in user mode, nothing to restart) does not fail the test.
    let deadline = Instant::now() + Duration::from_secs(10);
    while ProcDir::new(t.pid()).status().unwrap().state != 'S' {
        assert!(Instant::now() < deadline, "the target never sleeps");
        std::thread::sleep(Duration::from_millis(1));
    }
    capture(t.pid(), &opts(&img_path)).unwrap();
    t.assert_running_untouched();
    let img = Image::open(&img_path).unwrap();
    assert_eq!(img.class(), LayoutClass::Bits32);
    let p = &img.checkpoint().processes[0];
    assert_eq!(p.arch, Arch::I386);
    let th = &p.threads[0];
    let Regs::I386(regs) = th.regs else {
        panic!("{:?}", th.regs)
    };
    assert_eq!(regs[psnc_ptrace::arch::i386::CS], 0x23);
    assert!(
        matches!(th.restart, SyscallRestart::Reissue { .. }),
        "{:?}",
        th.restart
    );
    // glibc keeps the i386 TLS in GDT entry 12.
    assert_eq!(
        th.tls.iter().map(|d| d.entry_number).collect::<Vec<_>>(),
        vec![12, 13, 14]
    );
    assert_ne!(th.tls[0].base_addr, 0);
    assert!(p
        .vmas
        .iter()
        .all(|v| v.end <= 1 << 32 || v.kind == VmaKind::Vsyscall));
}

#[test]
fn every_thread_is_seized_and_captured_leader_first() {
    let t = Target::start(&target("threads"), &[], tempfile::tempdir().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let img_path = dir.path().join("t.img");
    let summary = capture(t.pid(), &opts(&img_path)).unwrap();
    assert_eq!(summary.threads, 4);
    t.assert_running_untouched();
    let proc_dir = ProcDir::new(t.pid());
    let tasks: Vec<u32> = proc_dir
        .list_numeric("task")
        .unwrap()
        .into_iter()
        .map(|tid| tid as u32)
        .collect();
    for tid in &tasks {
        let status = proc_dir.task(*tid as i32).status().unwrap();
        assert_eq!(status.tracer_pid, 0, "thread {tid} still traced");
    }
    let img = Image::open(&img_path).unwrap();
    let p = &img.checkpoint().processes[0];
    let tids: Vec<u32> = p.threads.iter().map(|th| th.tid).collect();
    assert_eq!(tids[0] as i32, t.pid());
    let mut sorted = tids.clone();
    sorted.sort_unstable();
    let mut live = tasks;
    live.sort_unstable();
    assert_eq!(sorted, live);
    // Each thread has its own TLS and stack.
    let mut fs_bases: Vec<u64> = p.threads.iter().map(|th| th.fs_base).collect();
    fs_bases.sort_unstable();
    fs_bases.dedup();
    assert_eq!(fs_bases.len(), 4);
}

/// A small tmpfs mounted for one test, unmounted on drop.
struct SmallFs(tempfile::TempDir);

impl SmallFs {
    fn mount(size: &str) -> SmallFs {
        let dir = tempfile::tempdir().unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap()
            .success();
        assert!(ok, "mounting a tmpfs (the tests run as root)");
        SmallFs(dir)
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.0.path())
            .status();
    }
}

#[test]
fn disk_full_leaves_no_image_and_the_target_untouched() {
    let t = start_patterns(&[]);
    let fs_ = SmallFs::mount("256k");
    let img_path = fs_.0.path().join("full.img");
    let err = capture(t.pid(), &opts(&img_path)).unwrap_err();
    let CaptureError::Format {
        path,
        source: psnc_format::FormatError::Io { source, .. },
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(path, &img_path);
    assert_eq!(source.raw_os_error(), Some(libc::ENOSPC), "{err}");
    assert!(
        dir_entries(fs_.0.path()).is_empty(),
        "{:?}",
        dir_entries(fs_.0.path())
    );
    t.assert_running_untouched();
}

#[test]
fn a_stopped_process_stays_stopped() {
    let mut t = Target::start_plain("sleep", &["1000"]);
    let pid = nix::unistd::Pid::from_raw(t.pid());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let proc_dir = ProcDir::new(t.pid());
    let state = || proc_dir.state().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while state() != 'T' {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(2));
    }
    // The parent (this test) sees the stop once.
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    let flags = WaitPidFlag::WUNTRACED | WaitPidFlag::WCONTINUED | WaitPidFlag::WNOHANG;
    assert!(matches!(
        waitpid(pid, Some(flags)).unwrap(),
        WaitStatus::Stopped(_, nix::sys::signal::Signal::SIGSTOP)
    ));

    let dir = tempfile::tempdir().unwrap();
    capture(t.pid(), &opts(&dir.path().join("st.img"))).unwrap();
    assert_eq!(state(), 'T', "the job-control stop was lost");
    // No new stop or continue event reached the parent.
    assert_eq!(waitpid(pid, Some(flags)).unwrap(), WaitStatus::StillAlive);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    while state() != 'S' {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = t.child.kill();
}
