//! A small, deterministic, synthetic checkpoint.
//!
//! Used to generate the example images of spec/examples/ (and the golden images), by the format
//! tests, imgtool's tests and the benchmarks. It exercises every section and most enum variants,
//! with fixed values so the bytes are reproducible.

use std::io::Write;

use crate::class::LayoutClass;
use crate::error::Result;
use crate::model::*;
use crate::writer::ImageWriter;

/// Fixed creation time of the examples (2026-01-01T00:00:00Z), so their bytes are reproducible.
pub const EXAMPLE_CREATED_NS: u64 = 1_767_225_600_000_000_000;

/// A deterministic page pattern: page `n` of a run at `addr`.
pub fn page_pattern(addr: u64, pages: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(pages as usize * 4096);
    for i in 0..pages as usize * 4096 {
        let a = addr.wrapping_add(i as u64);
        v.push((a ^ (a >> 8) ^ (a >> 16)) as u8);
    }
    v
}

/// The example process for `arch`, without page runs or stored files (the writer adds those).
pub fn example_checkpoint(arch: Arch) -> Checkpoint {
    let (base, stack, vdso, regs, auxv) = match arch {
        Arch::X86_64 => {
            let mut r = [0u64; 27];
            r[16] = 0x40_1000; // rip
            r[17] = 0x33; // cs
            r[18] = 0x246; // eflags
            r[19] = 0x7ffc_0000_0ff0; // rsp
            r[20] = 0x2b; // ss
            r[15] = u64::MAX; // orig_rax
            let mut auxv = Vec::new();
            for (k, v) in [(6u64, 4096u64), (33, 0x7ffc_1000_0000), (0, 0)] {
                auxv.extend_from_slice(&k.to_le_bytes());
                auxv.extend_from_slice(&v.to_le_bytes());
            }
            (
                0x40_0000u64,
                0x7ffc_0000_0000u64,
                0x7ffc_1000_0000u64,
                Regs::X86_64(r),
                auxv,
            )
        }
        Arch::I386 => {
            let mut r = [0u32; 17];
            r[12] = 0x0804_9000; // eip
            r[13] = 0x23; // cs
            r[14] = 0x246; // eflags
            r[15] = 0xffd0_0ff0; // esp
            r[16] = 0x2b; // ss
            r[11] = u32::MAX; // orig_eax
            let mut auxv = Vec::new();
            for (k, v) in [(6u32, 4096u32), (33, 0xf7f0_0000), (0, 0)] {
                auxv.extend_from_slice(&k.to_le_bytes());
                auxv.extend_from_slice(&v.to_le_bytes());
            }
            (
                0x0804_8000u64,
                0xffd0_0000u64,
                0xf7f0_0000u64,
                Regs::I386(r),
                auxv,
            )
        }
    };
    let exe = FileRef {
        path: "/usr/bin/example".into(),
        deleted: false,
        identity: FileIdentity {
            dev: 0x801,
            ino: 4242,
            size: 8192,
            mtime_ns: 1_700_000_000_000_000_000,
            mode: 0o100755,
            sha256: [0; 32],
        },
        stored: None,
    };
    let mut actions = vec![SigAction::default(); 64];
    actions[9] = SigAction {
        handler: base + 0x1100,
        flags: 0x0400_0004,
        restorer: base + 0x1200,
        mask: 1 << 14,
    };
    let mut xsave = vec![0u8; 576];
    xsave[512..520].copy_from_slice(&3u64.to_le_bytes());
    let mut ck = Checkpoint {
        identity: Identity {
            tool_version: "0.1.0".into(),
            created_ns: EXAMPLE_CREATED_NS,
            host: Host {
                kernel_release: "6.18.0-example".into(),
                machine: "x86_64".into(),
                hostname: "example".into(),
                cpu_vendor: "AuthenticAMD".into(),
                cpu_model: "Example CPU".into(),
                cpu_flags: vec!["avx".into(), "avx2".into(), "sse2".into()],
                xsave_features: 0x7,
                xsave_size: 832,
            },
            capture_uid: 0,
            capture_gid: 0,
            capture_cmdline: vec![
                "psnc-capture".into(),
                "42".into(),
                "-o".into(),
                "example.psnc".into(),
            ],
        },
        processes: vec![Process {
            pid: 42,
            ppid: 1,
            pgid: 42,
            sid: 42,
            arch,
            comm: "example".into(),
            creds: Creds {
                uids: [1000; 4],
                gids: [1000; 4],
                groups: vec![1000, 27],
                cap_bnd: 0x1ff_ffff_ffff,
                ..Default::default()
            },
            cwd: "/home/example".into(),
            root: "/".into(),
            umask: 0o022,
            personality: 0,
            rlimits: vec![
                Rlimit {
                    cur: 8 << 20,
                    max: u64::MAX
                };
                16
            ],
            exe: exe.clone(),
            mm: MmFields {
                start_code: base,
                end_code: base + 0x2000,
                start_data: base + 0x3000,
                end_data: base + 0x3100,
                start_brk: base + 0x5000,
                brk: base + 0x6000,
                start_stack: stack + 0xf00,
                arg_start: stack + 0xf80,
                arg_end: stack + 0xf90,
                env_start: stack + 0xf90,
                env_end: stack + 0xff0,
            },
            auxv,
            cmdline: b"example\0--count\0".to_vec(),
            dumpable: 1,
            no_new_privs: false,
            pdeathsig: 0,
            child_subreaper: false,
            seccomp_mode: 0,
            threads: vec![Thread {
                tid: 42,
                comm: "example".into(),
                regs,
                xsave,
                xstate_bv: 3,
                fs_base: 0,
                gs_base: 0,
                tls: if arch == Arch::I386 {
                    vec![UserDesc {
                        entry_number: 12,
                        base_addr: 0xf7e0_0000,
                        limit: 0xfffff,
                        flags: 0x51,
                    }]
                } else {
                    Vec::new()
                },
                sigmask: 1 << 9,
                pending: vec![SigInfo {
                    signo: 10,
                    code: -1,
                    raw: {
                        let mut r = vec![0u8; 128];
                        r[0] = 10;
                        r[8] = 0xff;
                        r
                    },
                }],
                sigaltstack: SigAltStack {
                    sp: base + 0x8000,
                    flags: 0,
                    size: 0x2000,
                },
                clear_child_tid: base + 0x3050,
                robust_list: base + 0x3060,
                robust_list_len: if arch == Arch::I386 { 12 } else { 24 },
                rseq: Some(Rseq {
                    addr: base + 0x3080,
                    len: 32,
                    sig: 0x5305_3053,
                    flags: 0,
                }),
                restart: SyscallRestart::Reissue { nr: 35, code: -516 },
            }],
            vmas: vec![
                Vma {
                    start: base,
                    end: base + 0x3000,
                    prot: 5,
                    shared: false,
                    kind: VmaKind::File,
                    file_offset: 0,
                    file: Some(exe.clone()),
                    vm_flags: 0,
                },
                Vma {
                    start: base + 0x3000,
                    end: base + 0x4000,
                    prot: 3,
                    shared: false,
                    kind: VmaKind::File,
                    file_offset: 0x2000,
                    file: Some(exe.clone()),
                    vm_flags: 0,
                },
                Vma {
                    start: base + 0x5000,
                    end: base + 0x6000,
                    prot: 3,
                    shared: false,
                    kind: VmaKind::Heap,
                    file_offset: 0,
                    file: None,
                    vm_flags: 0,
                },
                Vma {
                    start: base + 0x8000,
                    end: base + 0xa000,
                    prot: 3,
                    shared: false,
                    kind: VmaKind::Anonymous,
                    file_offset: 0,
                    file: None,
                    vm_flags: vm_flags::DONTDUMP,
                },
                Vma {
                    start: stack,
                    end: stack + 0x1000,
                    prot: 3,
                    shared: false,
                    kind: VmaKind::Stack,
                    file_offset: 0,
                    file: None,
                    vm_flags: vm_flags::GROWSDOWN,
                },
                Vma {
                    start: vdso - 0x4000,
                    end: vdso,
                    prot: 1,
                    shared: false,
                    kind: VmaKind::Vvar,
                    file_offset: 0,
                    file: None,
                    vm_flags: vm_flags::IO,
                },
                Vma {
                    start: vdso,
                    end: vdso + 0x1000,
                    prot: 5,
                    shared: false,
                    kind: VmaKind::Vdso,
                    file_offset: 0,
                    file: None,
                    vm_flags: 0,
                },
            ],
            pages: Vec::new(),
            fds: vec![
                Fd {
                    fd: 0,
                    flags: 2,
                    cloexec: false,
                    pos: 0,
                    kind: FdKind::Tty {
                        path: "/dev/pts/0".into(),
                        rdev: 0x8800,
                    },
                },
                Fd {
                    fd: 1,
                    flags: 1,
                    cloexec: false,
                    pos: 0,
                    kind: FdKind::CharDevice {
                        path: "/dev/null".into(),
                        rdev: 0x103,
                    },
                },
                Fd {
                    fd: 3,
                    flags: 0o2001,
                    cloexec: true,
                    pos: 4100,
                    kind: FdKind::Regular(FileRef {
                        path: "/tmp/example.log".into(),
                        deleted: false,
                        identity: FileIdentity {
                            dev: 0x801,
                            ino: 77,
                            size: 4100,
                            mtime_ns: 1,
                            mode: 0o100644,
                            sha256: [0; 32],
                        },
                        stored: None,
                    }),
                },
                Fd {
                    fd: 4,
                    flags: 0,
                    cloexec: false,
                    pos: 0,
                    kind: FdKind::Pipe(PipeEnd {
                        ino: 9001,
                        write_end: false,
                        buffered: b"unread".to_vec(),
                        capacity: 65536,
                        external: false,
                    }),
                },
                Fd {
                    fd: 5,
                    flags: 1,
                    cloexec: false,
                    pos: 0,
                    kind: FdKind::Pipe(PipeEnd {
                        ino: 9001,
                        write_end: true,
                        buffered: Vec::new(),
                        capacity: 65536,
                        external: false,
                    }),
                },
                Fd {
                    fd: 6,
                    flags: 0,
                    cloexec: false,
                    pos: 0,
                    kind: FdKind::Directory {
                        path: "/home/example".into(),
                    },
                },
                // Section 12 (format 1.1): EPOLLIN on the pipe with a cookie that needs all 64
                // bits, EPOLLIN|EPOLLOUT|EPOLLET on the log file.
                Fd {
                    fd: 7,
                    flags: 2,
                    cloexec: true,
                    pos: 0,
                    kind: FdKind::Epoll {
                        watches: vec![
                            EpollWatch {
                                tfd: 4,
                                events: 0x1,
                                data: 0x1122_3344_5566_7788,
                            },
                            EpollWatch {
                                tfd: 3,
                                events: 0x8000_0005,
                                data: 3,
                            },
                        ],
                    },
                },
                // Section 13 (format 1.2): an eventfd in semaphore mode, an absolute
                // CLOCK_REALTIME timer with TFD_TIMER_CANCEL_ON_SET and one unread expiry, a
                // signalfd for SIGUSR1 and SIGRTMIN+2, an inotify instance with two watches.
                Fd {
                    fd: 8,
                    flags: 0o4002,
                    cloexec: false,
                    pos: 0,
                    kind: FdKind::EventFd {
                        count: 5,
                        semaphore: true,
                    },
                },
                Fd {
                    fd: 9,
                    flags: 2,
                    cloexec: true,
                    pos: 0,
                    kind: FdKind::TimerFd(TimerFdState {
                        clockid: 0,
                        settime_flags: 3,
                        ticks: 1,
                        value_ns: 1_767_225_700_000_000_000,
                        interval_ns: 0,
                    }),
                },
                Fd {
                    fd: 10,
                    flags: 0o4002,
                    cloexec: false,
                    pos: 0,
                    kind: FdKind::SignalFd {
                        mask: 0x8_0000_0200,
                    },
                },
                Fd {
                    fd: 11,
                    flags: 0o4000,
                    cloexec: false,
                    pos: 0,
                    kind: FdKind::Inotify {
                        watches: vec![
                            InotifyWatch {
                                wd: 1,
                                mask: 0x100,
                                path: "/home/example".into(),
                                ino: 0x2a3,
                                dev: 0xfe00,
                            },
                            InotifyWatch {
                                wd: 3,
                                mask: 0x2,
                                path: "/tmp/example.log".into(),
                                ino: 0x2a4,
                                dev: 0xfe00,
                            },
                        ],
                    },
                },
                // Section 14 (format 1.3): fd 12 is a dup of the log file's fd 3, one open
                // file description (one offset, one set of flags).
                Fd {
                    fd: 12,
                    flags: 0o2001,
                    cloexec: false,
                    pos: 4100,
                    kind: FdKind::Regular(FileRef {
                        path: "/tmp/example.log".into(),
                        deleted: false,
                        identity: FileIdentity {
                            dev: 0x801,
                            ino: 77,
                            size: 4100,
                            mtime_ns: 1,
                            mode: 0o100644,
                            sha256: [0; 32],
                        },
                        stored: None,
                    }),
                },
            ],
            signals: ProcessSignals {
                actions,
                shared_pending: vec![SigInfo {
                    signo: 12,
                    code: 0,
                    raw: {
                        let mut r = vec![0u8; 128];
                        r[0] = 12;
                        r
                    },
                }],
                itimers: [
                    ITimer {
                        value_us: 250_000,
                        interval_us: 500_000,
                    },
                    ITimer::default(),
                    ITimer::default(),
                ],
                posix_timers: vec![PosixTimer {
                    id: 0,
                    clock: 1,
                    notify: 0,
                    signo: 14,
                    sigev_value: 7,
                    notify_tid: 0,
                    value_ns: 1_000_000,
                    interval_ns: 0,
                    overrun: 0,
                }],
            },
            // None: the examples of spec/examples are regenerated with the format's next minor.
            aio: Vec::new(),
        }],
        files: Vec::new(),
        fd_shares: vec![FdShare {
            fds: vec![FdRef { pid: 42, fd: 3 }, FdRef { pid: 42, fd: 12 }],
        }],
        zombies: Vec::new(),
        shared_memory: Vec::new(),
        ptys: Vec::new(),
        sysv_shm: Vec::new(),
        unix_peers: Vec::new(),
        parent: None,
    };
    ck.processes[0].vmas.sort_by_key(|v| v.start);
    ck
}

/// The stored pages of the example: `(address, page count)` runs, inside the example's VMAs.
pub fn example_runs(arch: Arch) -> Vec<(u64, u64)> {
    let (base, stack, vdso) = match arch {
        Arch::X86_64 => (0x40_0000u64, 0x7ffc_0000_0000u64, 0x7ffc_1000_0000u64),
        Arch::I386 => (0x0804_8000, 0xffd0_0000, 0xf7f0_0000),
    };
    let mut runs = vec![
        (base + 0x3000, 1),
        (base + 0x5000, 1),
        (base + 0x8000, 2),
        (stack, 1),
        (vdso, 1),
    ];
    runs.sort_unstable();
    runs
}

/// Writes the complete example image (pages, the stored executable, metadata) to `out`.
pub fn write_example<W: Write>(out: W, arch: Arch, class: LayoutClass) -> Result<W> {
    let mut ck = example_checkpoint(arch);
    let mut w = ImageWriter::new(out, class)?;
    let p = &mut ck.processes[0];
    for (addr, pages) in example_runs(arch) {
        p.pages
            .push(w.write_pages(addr, &page_pattern(addr, pages))?);
    }
    let exe_bytes: Vec<u8> = (0..8192u32).map(|i| (i % 253) as u8).collect();
    let id = w.store_file(&p.exe.path, &exe_bytes)?;
    p.exe.stored = Some(id);
    p.exe.identity.sha256 = crate::digest::sha256(&exe_bytes);
    let exe = p.exe.clone();
    for v in p.vmas.iter_mut().filter(|v| v.kind == VmaKind::File) {
        v.file = Some(exe.clone());
    }
    w.finish(ck)
}

/// The name the incremental example records for its parent: the example image of its class,
/// next to it (a relative path is relative to the image's directory).
pub fn example_name(class: LayoutClass) -> &'static str {
    match class {
        LayoutClass::Bits32 => "example-32.psnc",
        LayoutClass::Bits64 => "example-64.psnc",
    }
}

/// The incremental example (format 1.4): the example process captured again against the
/// example image `parent` (its bytes, as [`write_example`] writes them for `arch` and `class`).
/// The second run's pages changed (every byte inverted) and are stored; the other runs and the
/// executable are the parent's, named in the `parent` section.
pub fn write_incremental_example<W: Write>(
    out: W,
    parent: &[u8],
    arch: Arch,
    class: LayoutClass,
) -> Result<W> {
    let digest = crate::reader::Image::from_vec(parent.to_vec())?
        .trailer()
        .image_sha256;
    let mut ck = example_checkpoint(arch);
    ck.identity.created_ns += 60_000_000_000;
    let mut w = ImageWriter::new(out, class)?;
    let runs = example_runs(arch);
    let p = &mut ck.processes[0];
    let (addr, pages) = runs[1];
    let changed: Vec<u8> = page_pattern(addr, pages).iter().map(|b| !b).collect();
    p.pages.push(w.write_pages(addr, &changed)?);
    let exe_bytes: Vec<u8> = (0..8192u32).map(|i| (i % 253) as u8).collect();
    let sha = crate::digest::sha256(&exe_bytes);
    let id = w.file_in_parent(&p.exe.path, sha, exe_bytes.len() as u64);
    p.exe.stored = Some(id);
    p.exe.identity.sha256 = sha;
    let exe = p.exe.clone();
    for v in p.vmas.iter_mut().filter(|v| v.kind == VmaKind::File) {
        v.file = Some(exe.clone());
    }
    ck.parent = Some(Parent {
        digest,
        path: example_name(class).into(),
        pages: runs
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != 1)
            .map(|(_, &(addr, pages))| ParentRun {
                pid: 42,
                addr,
                pages,
            })
            .collect(),
        files: Vec::new(),
    });
    w.finish(ck)
}
