//! Generated round trips: arbitrary valid models -> image bytes -> the same model, in both layout
//! classes, and the exact field named when a value does not fit the 32-bit class.
//!
//! The strategies build models that pass `verify::check_model` (unique pids and tids, the leader
//! first, registers of the process's architecture, VMAs page-aligned, sorted and disjoint, page
//! runs inside them, unique fds, 0 or 64 signal actions, stored files where a reference needs
//! one) and exercise every enum variant. For the 32-bit class every class-width field is drawn
//! from the i386 range. The expected page-data and file-data offsets are computed here from the
//! layout rules (runs back to back, files 4096-aligned and deduplicated), not taken from the
//! writer.

use std::collections::HashMap;
use std::io::Cursor;

use proptest::prelude::*;
use proptest::strategy::Union;
use psnc_format::digest::sha256;
use psnc_format::example::{example_checkpoint, page_pattern};
use psnc_format::model::*;
use psnc_format::sections::encode_metadata;
use psnc_format::verify::{check_model, verify_image};
use psnc_format::{FormatError, Image, ImageWriter, LayoutClass};

const PAGE: u64 = 4096;

/// A class-width value: any `u64`, or any `u32` for a model that must fit the 32-bit class,
/// with the edges drawn often.
fn word(narrow: bool) -> BoxedStrategy<u64> {
    let max = if narrow {
        u64::from(u32::MAX)
    } else {
        u64::MAX
    };
    prop_oneof![6 => 0..=max, 1 => Just(0u64), 1 => Just(max), 1 => (0..=max).prop_map(|v| v & !0xfff)].boxed()
}

fn text() -> BoxedStrategy<String> {
    prop_oneof![3 => "[a-z0-9/._-]{0,24}", 1 => "\\PC{0,12}"].boxed()
}

fn bytes(max: usize) -> BoxedStrategy<Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..=max).boxed()
}

fn file_identity() -> impl Strategy<Value = FileIdentity> {
    (
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<i64>(),
        any::<u32>(),
        any::<[u8; 32]>(),
    )
        .prop_map(|(dev, ino, size, mtime_ns, mode, sha256)| FileIdentity {
            dev,
            ino,
            size,
            mtime_ns,
            mode,
            sha256,
        })
}

/// A file reference; `stored` is an index into the case's file list (mapped to the writer's
/// `FileId` when written). A deleted file is always stored, as capture does.
fn file_ref(n_files: usize) -> BoxedStrategy<FileRef> {
    let stored = if n_files == 0 {
        Just(None).boxed()
    } else {
        prop::option::of(0..n_files as u32).boxed()
    };
    (text(), any::<bool>(), file_identity(), stored)
        .prop_map(|(path, deleted, identity, stored)| FileRef {
            path,
            deleted: deleted && stored.is_some(),
            identity,
            stored: stored.map(FileId),
        })
        .boxed()
}

fn siginfo() -> impl Strategy<Value = SigInfo> {
    (1u32..=64, any::<i32>(), bytes(128)).prop_map(|(signo, code, raw)| SigInfo {
        signo,
        code,
        raw,
    })
}

fn thread(tid: u32, arch: Arch, narrow: bool) -> impl Strategy<Value = Thread> {
    let regs = match arch {
        Arch::X86_64 => prop::array::uniform27(any::<u64>())
            .prop_map(Regs::X86_64)
            .boxed(),
        Arch::I386 => prop::array::uniform17(any::<u32>())
            .prop_map(Regs::I386)
            .boxed(),
    };
    let tls = prop::collection::vec(
        any::<[u32; 4]>().prop_map(|[entry_number, base_addr, limit, flags]| UserDesc {
            entry_number,
            base_addr,
            limit,
            flags,
        }),
        0..=3,
    );
    let rseq = prop::option::of(
        (word(narrow), any::<u32>(), any::<u32>(), any::<u32>()).prop_map(
            |(addr, len, sig, flags)| Rseq {
                addr,
                len,
                sig,
                flags,
            },
        ),
    );
    let restart = prop_oneof![
        Just(SyscallRestart::None),
        (any::<u64>(), any::<i64>()).prop_map(|(nr, code)| SyscallRestart::Reissue { nr, code }),
    ];
    let a = (
        text(),
        regs,
        bytes(600),
        any::<u64>(),
        word(narrow),
        word(narrow),
        tls,
    );
    let b = (
        any::<u64>(),
        prop::collection::vec(siginfo(), 0..=2),
        (word(narrow), any::<u32>(), word(narrow)),
        (word(narrow), word(narrow), word(narrow)),
        rseq,
        restart,
    );
    (a, b).prop_map(
        move |((comm, regs, xsave, xstate_bv, fs_base, gs_base, tls), b)| {
            let (
                sigmask,
                pending,
                (sp, flags, size),
                (clear_child_tid, robust_list, robust_list_len),
                rseq,
                restart,
            ) = b;
            Thread {
                tid,
                comm,
                regs,
                xsave,
                xstate_bv,
                fs_base,
                gs_base,
                tls,
                sigmask,
                pending,
                sigaltstack: SigAltStack { sp, flags, size },
                clear_child_tid,
                robust_list,
                robust_list_len,
                rseq,
                restart,
            }
        },
    )
}

fn vma_kind() -> impl Strategy<Value = VmaKind> {
    prop::sample::select(vec![
        VmaKind::Anonymous,
        VmaKind::Heap,
        VmaKind::Stack,
        VmaKind::File,
        VmaKind::Vdso,
        VmaKind::Vvar,
        VmaKind::VvarVclock,
        VmaKind::Vsyscall,
    ])
}

/// A stored page run to write: address, page count, pattern seed.
type RunSpec = (u64, u64, u8);

/// VMAs sorted and disjoint (sometimes adjacent, sometimes at the very top of the class's
/// address space) and at most one short page run inside each.
fn vmas_and_runs(narrow: bool, n_files: usize) -> impl Strategy<Value = (Vec<Vma>, Vec<RunSpec>)> {
    // Highest page number whose page still ends inside the class: end <= 2^32 - 4096 or 2^64 - 4096.
    let top = if narrow {
        (1u64 << 20) - 1
    } else {
        (1u64 << 52) - 1
    };
    let boundary = prop_oneof![6 => 0..=top, 1 => Just(top), 1 => 0u64..64];
    prop::collection::btree_set(boundary, 0..10)
        .prop_flat_map(move |b| {
            let b: Vec<u64> = b.into_iter().collect();
            let n = b.len().saturating_sub(1);
            let per = (
                any::<bool>(),
                (
                    0u32..8,
                    any::<bool>(),
                    vma_kind(),
                    any::<u64>(),
                    prop::option::of(file_ref(n_files)),
                    file_ref(n_files),
                    any::<u32>(),
                ),
                prop::option::of((any::<u64>(), 1u64..=3, any::<u8>())),
            );
            (Just(b), prop::collection::vec(per, n))
        })
        .prop_map(|(b, per)| {
            let mut vmas = Vec::new();
            let mut runs = Vec::new();
            for (
                w,
                (keep, (prot, shared, kind, file_offset, file, file_for_kind, vm_flags), run),
            ) in b.windows(2).zip(per)
            {
                if !keep {
                    continue;
                }
                let (start, end) = (w[0] * PAGE, w[1] * PAGE);
                let file = if kind == VmaKind::File {
                    Some(file_for_kind)
                } else {
                    file
                };
                vmas.push(Vma {
                    start,
                    end,
                    prot,
                    shared,
                    kind,
                    file_offset,
                    file,
                    vm_flags,
                });
                if let Some((off, pages, seed)) = run {
                    let len = w[1] - w[0];
                    let first = w[0] + off % len;
                    runs.push((first * PAGE, pages.min(w[1] - first), seed));
                }
            }
            (vmas, runs)
        })
}

fn fd_kind(n_files: usize) -> BoxedStrategy<FdKind> {
    let pipe = (
        any::<u64>(),
        any::<bool>(),
        bytes(64),
        any::<u32>(),
        any::<bool>(),
    )
        .prop_map(|(ino, write_end, buffered, capacity, external)| PipeEnd {
            ino,
            write_end,
            buffered,
            capacity,
            external,
        });
    Union::new(vec![
        file_ref(n_files).prop_map(FdKind::Regular).boxed(),
        text().prop_map(|path| FdKind::Directory { path }).boxed(),
        (text(), any::<u64>())
            .prop_map(|(path, rdev)| FdKind::CharDevice { path, rdev })
            .boxed(),
        (text(), any::<u64>())
            .prop_map(|(path, rdev)| FdKind::Tty { path, rdev })
            .boxed(),
        pipe.prop_map(FdKind::Pipe).boxed(),
        (text(), bytes(64))
            .prop_map(|(path, buffered)| FdKind::Fifo { path, buffered })
            .boxed(),
        // Not AF_UNIX (1): a unix socket needs its unix-sockets record.
        (2u32.., any::<u32>(), any::<u64>())
            .prop_map(|(family, sock_type, ino)| FdKind::Socket {
                family,
                sock_type,
                ino,
                unix: None,
            })
            .boxed(),
        (any::<u64>(), any::<bool>())
            .prop_map(|(count, semaphore)| FdKind::EventFd { count, semaphore })
            .boxed(),
        prop::collection::vec((any::<i32>(), any::<u32>(), any::<u64>()), 0..4)
            .prop_map(|w| FdKind::Epoll {
                watches: w
                    .into_iter()
                    .map(|(tfd, events, data)| EpollWatch { tfd, events, data })
                    .collect(),
            })
            .boxed(),
        (
            any::<i32>(),
            any::<u32>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
        )
            .prop_map(|(clockid, settime_flags, ticks, value_ns, interval_ns)| {
                FdKind::TimerFd(TimerFdState {
                    clockid,
                    settime_flags,
                    ticks,
                    value_ns,
                    interval_ns,
                })
            })
            .boxed(),
        prop::collection::vec(
            (
                any::<i32>(),
                any::<u32>(),
                text(),
                any::<u64>(),
                any::<u64>(),
            ),
            0..4,
        )
        .prop_map(|w| FdKind::Inotify {
            watches: w
                .into_iter()
                .map(|(wd, mask, path, ino, dev)| InotifyWatch {
                    wd,
                    mask,
                    path,
                    ino,
                    dev,
                })
                .collect(),
        })
        .boxed(),
        any::<u64>()
            .prop_map(|mask| FdKind::SignalFd { mask })
            .boxed(),
        text().prop_map(|name| FdKind::MemFd { name }).boxed(),
        text().prop_map(|link| FdKind::Other { link }).boxed(),
    ])
    .boxed()
}

fn fds(n_files: usize) -> impl Strategy<Value = Vec<Fd>> {
    prop::collection::btree_set(any::<i32>(), 0..=6)
        .prop_flat_map(move |nums| {
            let n = nums.len();
            (
                Just(nums),
                prop::collection::vec(
                    (any::<u32>(), any::<bool>(), any::<u64>(), fd_kind(n_files)),
                    n,
                ),
            )
        })
        .prop_map(|(nums, per)| {
            nums.into_iter()
                .zip(per)
                .map(|(fd, (flags, cloexec, pos, kind))| Fd {
                    fd,
                    flags,
                    cloexec,
                    pos,
                    kind,
                })
                .collect()
        })
}

fn signals(narrow: bool) -> impl Strategy<Value = ProcessSignals> {
    let action = (word(narrow), any::<u64>(), word(narrow), any::<u64>()).prop_map(
        |(handler, flags, restorer, mask)| SigAction {
            handler,
            flags,
            restorer,
            mask,
        },
    );
    let actions = prop_oneof![1 => Just(Vec::new()), 3 => prop::collection::vec(action, 64)];
    let itimer = (any::<u64>(), any::<u64>()).prop_map(|(value_us, interval_us)| ITimer {
        value_us,
        interval_us,
    });
    let timer = (
        (
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            word(narrow),
        ),
        (any::<u32>(), any::<u64>(), any::<u64>(), any::<u32>()),
    )
        .prop_map(
            |(
                (id, clock, notify, signo, sigev_value),
                (notify_tid, value_ns, interval_ns, overrun),
            )| PosixTimer {
                id,
                clock,
                notify,
                signo,
                sigev_value,
                notify_tid,
                value_ns,
                interval_ns,
                overrun,
            },
        );
    (
        actions,
        prop::collection::vec(siginfo(), 0..=2),
        prop::array::uniform3(itimer),
        prop::collection::vec(timer, 0..=2),
    )
        .prop_map(
            |(actions, shared_pending, itimers, posix_timers)| ProcessSignals {
                actions,
                shared_pending,
                itimers,
                posix_timers,
            },
        )
}

fn creds() -> impl Strategy<Value = Creds> {
    (
        any::<[u32; 4]>(),
        any::<[u32; 4]>(),
        prop::collection::vec(any::<u32>(), 0..=4),
        any::<[u64; 5]>(),
        any::<u32>(),
    )
        .prop_map(|(uids, gids, groups, c, securebits)| Creds {
            uids,
            gids,
            groups,
            cap_inh: c[0],
            cap_prm: c[1],
            cap_eff: c[2],
            cap_bnd: c[3],
            cap_amb: c[4],
            securebits,
        })
}

fn mm(narrow: bool) -> impl Strategy<Value = MmFields> {
    prop::collection::vec(word(narrow), 11).prop_map(|w| MmFields {
        start_code: w[0],
        end_code: w[1],
        start_data: w[2],
        end_data: w[3],
        start_brk: w[4],
        brk: w[5],
        start_stack: w[6],
        arg_start: w[7],
        arg_end: w[8],
        env_start: w[9],
        env_end: w[10],
    })
}

/// One process with the given pid and thread ids (the leader's tid is the pid).
fn process(
    pid: u32,
    tids: Vec<u32>,
    narrow: bool,
    n_files: usize,
) -> impl Strategy<Value = (Process, Vec<RunSpec>)> {
    prop::sample::select(vec![Arch::X86_64, Arch::I386])
        .prop_flat_map(move |arch| {
            let threads: Vec<_> = tids.iter().map(|&t| thread(t, arch, narrow)).collect();
            let a = (
                any::<[u32; 3]>(),
                text(),
                creds(),
                text(),
                text(),
                any::<[u32; 2]>(),
            );
            let b = (
                prop::collection::vec(
                    (any::<u64>(), any::<u64>()).prop_map(|(cur, max)| Rlimit { cur, max }),
                    0..=16,
                ),
                file_ref(n_files),
                mm(narrow),
                bytes(96),
                bytes(64),
                (
                    any::<u32>(),
                    any::<bool>(),
                    any::<u32>(),
                    any::<bool>(),
                    any::<u32>(),
                ),
            );
            let c = (
                threads,
                vmas_and_runs(narrow, n_files),
                fds(n_files),
                signals(narrow),
            );
            (Just(arch), a, b, c)
        })
        .prop_map(move |(arch, a, b, c)| {
            let ([ppid, pgid, sid], comm, creds, cwd, root, [umask, personality]) = a;
            let (
                rlimits,
                exe,
                mm,
                auxv,
                cmdline,
                (dumpable, no_new_privs, pdeathsig, child_subreaper, seccomp_mode),
            ) = b;
            let (threads, (vmas, runs), fds, signals) = c;
            let p = Process {
                pid,
                ppid,
                pgid,
                sid,
                arch,
                comm,
                creds,
                cwd,
                root,
                umask,
                personality,
                rlimits,
                exe,
                mm,
                auxv,
                cmdline,
                dumpable,
                no_new_privs,
                pdeathsig,
                child_subreaper,
                seccomp_mode,
                threads,
                vmas,
                pages: Vec::new(),
                fds,
                signals,
                aio: Vec::new(),
            };
            (p, runs)
        })
}

fn identity() -> impl Strategy<Value = Identity> {
    let host = (
        (text(), text(), text(), text(), text()),
        (
            prop::collection::vec(text(), 0..=4),
            any::<u64>(),
            any::<u32>(),
        ),
    )
        .prop_map(
            |(
                (kernel_release, machine, hostname, cpu_vendor, cpu_model),
                (cpu_flags, xsave_features, xsave_size),
            )| Host {
                kernel_release,
                machine,
                hostname,
                cpu_vendor,
                cpu_model,
                cpu_flags,
                xsave_features,
                xsave_size,
            },
        );
    (
        text(),
        any::<u64>(),
        host,
        any::<u32>(),
        any::<u32>(),
        prop::collection::vec(text(), 0..=4),
    )
        .prop_map(
            |(tool_version, created_ns, host, capture_uid, capture_gid, capture_cmdline)| {
                Identity {
                    tool_version,
                    created_ns,
                    host,
                    capture_uid,
                    capture_gid,
                    capture_cmdline,
                }
            },
        )
}

/// A generated checkpoint with the bulk data still to write.
#[derive(Debug, Clone)]
struct Case {
    /// The model; `FileRef::stored` indexes `files`, `pages` and `files` are empty.
    ck: Checkpoint,
    /// Per process, the page runs to write.
    runs: Vec<Vec<RunSpec>>,
    /// Files to store: path and contents (duplicates included, to exercise deduplication).
    files: Vec<(String, Vec<u8>)>,
}

fn case(narrow: bool) -> impl Strategy<Value = Case> {
    let files = prop::collection::vec((text(), prop_oneof![bytes(64), bytes(9000)]), 0..=3)
        .prop_flat_map(|files| {
            // Sometimes repeat a file under another path: it must be stored once.
            let n = files.len();
            (any::<bool>(), any::<prop::sample::Index>()).prop_map(move |(dup, i)| {
                let mut files = files.clone();
                if dup && n > 0 {
                    let (_, c) = files[i.index(n)].clone();
                    files.push(("/dup/path".into(), c));
                }
                files
            })
        });
    let shape = prop::collection::vec(1usize..=3, 1..=3).prop_flat_map(|threads| {
        let total: usize = threads.iter().sum();
        (
            Just(threads),
            prop::collection::btree_set(any::<u32>(), total),
        )
    });
    (files, shape, identity())
        .prop_flat_map(move |(files, (threads, ids), identity)| {
            let ids: Vec<u32> = ids.into_iter().collect();
            let mut procs = Vec::new();
            let mut at = 0;
            for n in threads {
                let tids = ids[at..at + n].to_vec();
                at += n;
                procs.push(process(tids[0], tids, narrow, files.len()));
            }
            (Just(files), procs, Just(identity))
        })
        .prop_map(|(files, procs, identity)| {
            let (processes, runs) = procs.into_iter().unzip();
            Case {
                ck: Checkpoint {
                    identity,
                    processes,
                    files: Vec::new(),
                    fd_shares: Vec::new(),
                    zombies: Vec::new(),
                    shared_memory: Vec::new(),
                    ptys: Vec::new(),
                    sysv_shm: Vec::new(),
                    unix_peers: Vec::new(),
                    parent: None,
                },
                runs,
                files,
            }
        })
}

/// The bytes of a run: a pattern that differs per seed, run and page.
fn run_bytes(seed: u8, addr: u64, pages: u64) -> Vec<u8> {
    let mut v = page_pattern(addr, pages);
    for (i, b) in v.iter_mut().enumerate() {
        *b ^= seed.wrapping_add((i / 4096) as u8);
    }
    v
}

/// Writes `case` in `class`. Returns the image and the model a reader must decode, with the
/// data offsets computed from the layout rules.
fn write(
    case: &Case,
    class: LayoutClass,
    seekable: bool,
) -> Result<(Vec<u8>, Checkpoint), FormatError> {
    let out = Cursor::new(Vec::new());
    let mut w = ImageWriter::new(out, class)?;
    let mut ck = case.ck.clone();
    let mut page_offset = 0u64;
    for (p, runs) in ck.processes.iter_mut().zip(&case.runs) {
        for &(addr, pages, seed) in runs {
            let run = w.write_pages(addr, &run_bytes(seed, addr, pages))?;
            assert_eq!(
                run,
                PageRun {
                    addr,
                    pages,
                    data_offset: page_offset
                }
            );
            page_offset += pages * PAGE;
            p.pages.push(run);
        }
    }
    // Expected stored-file table: first path of each distinct content, each 4096-aligned.
    let mut table: Vec<StoredFile> = Vec::new();
    let mut by_sha = HashMap::new();
    let mut ids = Vec::new();
    let mut file_offset = 0u64;
    for (path, contents) in &case.files {
        let id = w.store_file(path, contents)?;
        let sha = sha256(contents);
        let want = *by_sha.entry(sha).or_insert_with(|| {
            file_offset = file_offset.next_multiple_of(PAGE);
            table.push(StoredFile {
                sha256: sha,
                size: contents.len() as u64,
                path: path.clone(),
                data_offset: file_offset,
            });
            file_offset += contents.len() as u64;
            FileId(table.len() as u32 - 1)
        });
        assert_eq!(id, want, "{path}");
        ids.push(id);
    }
    let map = |r: &mut FileRef| r.stored = r.stored.map(|i| ids[i.0 as usize]);
    for p in &mut ck.processes {
        map(&mut p.exe);
        for v in &mut p.vmas {
            if let Some(f) = &mut v.file {
                map(f);
            }
        }
        for f in &mut p.fds {
            if let FdKind::Regular(r) = &mut f.kind {
                map(r);
            }
        }
    }
    let bytes = if seekable {
        w.finish_seekable(ck.clone())?
    } else {
        w.finish(ck.clone())?
    }
    .into_inner();
    ck.files = table;
    Ok((bytes, ck))
}

/// Writes, reads back and compares everything: model, page bytes, file bytes, invariants.
fn round_trip(case: &Case, class: LayoutClass, seekable: bool) -> Image {
    let (bytes, want) =
        write(case, class, seekable).expect("a valid model in its class must write");
    let img = Image::from_vec(bytes).expect("a written image must open");
    assert_eq!(img.class(), class);
    assert_eq!(img.checkpoint(), &want);
    verify_image(&img).expect("a written image must verify");
    check_model(
        &want,
        img.page_data().len() as u64,
        img.file_data().len() as u64,
    )
    .expect("the generated model is valid");
    for (p, runs) in img.checkpoint().processes.iter().zip(&case.runs) {
        for (run, &(addr, pages, seed)) in p.pages.iter().zip(runs) {
            assert_eq!(
                img.page_bytes(run).expect("run in range"),
                run_bytes(seed, addr, pages)
            );
        }
    }
    for (i, (_, contents)) in case.files.iter().enumerate() {
        let id = want
            .files
            .iter()
            .position(|f| f.sha256 == sha256(contents))
            .expect("stored");
        assert_eq!(
            img.file_bytes(FileId(id as u32)).expect("file in range"),
            &contents[..],
            "file {i}"
        );
    }
    img
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn any_valid_model_round_trips_in_the_64_bit_class(case in case(false), seekable in any::<bool>()) {
        round_trip(&case, LayoutClass::Bits64, seekable);
    }

    #[test]
    fn any_i386_range_model_round_trips_in_both_classes(case in case(true), seekable in any::<bool>()) {
        let narrow = round_trip(&case, LayoutClass::Bits32, seekable);
        let wide = round_trip(&case, LayoutClass::Bits64, seekable);
        prop_assert_eq!(narrow.checkpoint(), wide.checkpoint());
        prop_assert_eq!(narrow.page_data(), wide.page_data());
        prop_assert_eq!(narrow.file_data(), wide.file_data());
        prop_assert!(narrow.bytes().len() < wide.bytes().len());
    }

    /// A streamed image read from a pipe-like reader is the same as one read from memory.
    #[test]
    fn streamed_images_read_from_a_stream(case in case(true)) {
        let (bytes, want) = write(&case, LayoutClass::Bits32, false).expect("write");
        let img = Image::from_reader(&bytes[..]).expect("read from a stream");
        prop_assert_eq!(img.checkpoint(), &want);
        prop_assert_eq!(img.header().table_offset, 0);
    }

    /// One value above 2^32 in any class-width field makes the 32-bit writer refuse, naming it.
    #[test]
    fn a_wide_value_anywhere_is_refused_by_the_32_bit_class(case in case(true), pick in any::<prop::sample::Index>(), high in (1u64 << 32)..=u64::MAX) {
        let mut case = case;
        let fields = class_width_fields(&mut case.ck);
        prop_assume!(!fields.is_empty());
        let n = fields.len();
        let (name, field) = fields.into_iter().nth(pick.index(n)).expect("in range");
        *field = high;
        let r = write(&case, LayoutClass::Bits32, false);
        prop_assert!(
            matches!(&r, Err(FormatError::FieldTooWide { field, value, bits: 32 }) if *field == name && *value == high),
            "{}: {:?}", name, r.map(|_| ())
        );
        // The 64-bit class holds it.
        prop_assert!(write(&case, LayoutClass::Bits64, false).is_ok());
    }
}

/// Every class-width field of the model that the writer narrows, with the name it must report,
/// in the order the writer encodes them.
fn class_width_fields(ck: &mut Checkpoint) -> Vec<(String, &mut u64)> {
    let mut out: Vec<(String, &mut u64)> = Vec::new();
    for p in &mut ck.processes {
        let pid = p.pid;
        let m = &mut p.mm;
        for (f, v) in [
            ("start_code", &mut m.start_code),
            ("end_code", &mut m.end_code),
            ("start_data", &mut m.start_data),
            ("end_data", &mut m.end_data),
            ("start_brk", &mut m.start_brk),
            ("brk", &mut m.brk),
            ("start_stack", &mut m.start_stack),
            ("arg_start", &mut m.arg_start),
            ("arg_end", &mut m.arg_end),
            ("env_start", &mut m.env_start),
            ("env_end", &mut m.env_end),
        ] {
            out.push((format!("process {pid} mm.{f}"), v));
        }
        for t in &mut p.threads {
            let at = format!("thread {} (pid {pid})", t.tid);
            out.push((format!("{at}.fs_base"), &mut t.fs_base));
            out.push((format!("{at}.gs_base"), &mut t.gs_base));
            out.push((format!("{at}.sigaltstack.sp"), &mut t.sigaltstack.sp));
            out.push((format!("{at}.sigaltstack.size"), &mut t.sigaltstack.size));
            out.push((format!("{at}.clear_child_tid"), &mut t.clear_child_tid));
            out.push((format!("{at}.robust_list"), &mut t.robust_list));
            out.push((format!("{at}.robust_list_len"), &mut t.robust_list_len));
            if let Some(r) = &mut t.rseq {
                out.push((format!("{at}.rseq.addr"), &mut r.addr));
            }
        }
        for v in &mut p.vmas {
            // The name carries the start as it was before narrowing failed.
            let at = format!("vma {:#x} (pid {pid})", v.start);
            out.push((format!("{at}.end"), &mut v.end));
        }
        for (i, a) in p.signals.actions.iter_mut().enumerate() {
            let at = format!("process {pid} sigaction {}", i + 1);
            out.push((format!("{at}.handler"), &mut a.handler));
            out.push((format!("{at}.restorer"), &mut a.restorer));
        }
        for t in &mut p.signals.posix_timers {
            out.push((
                format!("process {pid} posix timer {}.sigev_value", t.id),
                &mut t.sigev_value,
            ));
        }
    }
    out
}

const WIDE: u64 = 1 << 32;

/// The i386 example, written in the 32-bit class after `edit`.
fn narrow_example(edit: impl FnOnce(&mut Checkpoint)) -> Result<Vec<u8>, FormatError> {
    let mut ck = example_checkpoint(Arch::I386);
    edit(&mut ck);
    let w = ImageWriter::new(Vec::new(), LayoutClass::Bits32)?;
    w.finish(ck)
}

fn assert_too_wide(r: Result<Vec<u8>, FormatError>, want: &str, value: u64) {
    assert!(
        matches!(&r, Err(FormatError::FieldTooWide { field, value: v, bits: 32 }) if field == want && *v == value),
        "want {want} = {value:#x}: {:?}",
        r.map(|_| ())
    );
}

#[test]
fn narrowing_names_each_class_width_field_exactly() {
    narrow_example(|_| ()).expect("the i386 example fits");
    type Edit = fn(&mut Checkpoint);
    let cases: [(&str, Edit); 17] = [
        ("process 42 mm.start_code", |c| {
            c.processes[0].mm.start_code = WIDE
        }),
        ("process 42 mm.start_stack", |c| {
            c.processes[0].mm.start_stack = WIDE
        }),
        ("process 42 mm.env_end", |c| {
            c.processes[0].mm.env_end = WIDE
        }),
        ("thread 42 (pid 42).fs_base", |c| {
            c.processes[0].threads[0].fs_base = WIDE
        }),
        ("thread 42 (pid 42).gs_base", |c| {
            c.processes[0].threads[0].gs_base = WIDE
        }),
        ("thread 42 (pid 42).sigaltstack.sp", |c| {
            c.processes[0].threads[0].sigaltstack.sp = WIDE
        }),
        ("thread 42 (pid 42).sigaltstack.size", |c| {
            c.processes[0].threads[0].sigaltstack.size = WIDE
        }),
        ("thread 42 (pid 42).clear_child_tid", |c| {
            c.processes[0].threads[0].clear_child_tid = WIDE
        }),
        ("thread 42 (pid 42).robust_list", |c| {
            c.processes[0].threads[0].robust_list = WIDE
        }),
        ("thread 42 (pid 42).robust_list_len", |c| {
            c.processes[0].threads[0].robust_list_len = WIDE
        }),
        ("thread 42 (pid 42).rseq.addr", |c| {
            c.processes[0].threads[0].rseq.as_mut().expect("rseq").addr = WIDE
        }),
        ("vma 0x100000000 (pid 42).start", |c| {
            c.processes[0].vmas[0].start = WIDE
        }),
        ("vma 0xffd00000 (pid 42).end", |c| {
            let v = c.processes[0]
                .vmas
                .iter_mut()
                .find(|v| v.kind == VmaKind::Stack)
                .expect("stack");
            v.end = WIDE;
        }),
        ("process 42 sigaction 10.handler", |c| {
            c.processes[0].signals.actions[9].handler = WIDE
        }),
        ("process 42 sigaction 64.restorer", |c| {
            c.processes[0].signals.actions[63].restorer = WIDE
        }),
        ("process 42 posix timer 0.sigev_value", |c| {
            c.processes[0].signals.posix_timers[0].sigev_value = WIDE
        }),
        ("page run 0x100000000 (pid 42).addr", |c| {
            c.processes[0].pages.push(PageRun {
                addr: WIDE,
                pages: 1,
                data_offset: 0,
            });
        }),
    ];
    for (want, edit) in cases {
        assert_too_wide(narrow_example(edit), want, WIDE);
    }
    let r = narrow_example(|c| {
        c.processes[0].pages.push(PageRun {
            addr: 0x1000,
            pages: WIDE + 1,
            data_offset: 0,
        })
    });
    assert_too_wide(r, "page run 0x1000 (pid 42).pages", WIDE + 1);
    let r = narrow_example(|c| {
        c.processes[0].pages.push(PageRun {
            addr: 0x1000,
            pages: 1,
            data_offset: u64::MAX,
        })
    });
    assert_too_wide(r, "page run 0x1000 (pid 42).data_offset", u64::MAX);
    // The stored-file table is filled by the writer; its encoder narrows it the same way.
    let mut ck = example_checkpoint(Arch::I386);
    ck.files = vec![
        StoredFile {
            sha256: [0; 32],
            size: 1,
            path: "/lib/a.so".into(),
            data_offset: 0,
        },
        StoredFile {
            sha256: [1; 32],
            size: WIDE,
            path: "/lib/big.so".into(),
            data_offset: 4096,
        },
    ];
    let r = encode_metadata::<psnc_format::class::C32>(&ck).map(|_| Vec::new());
    assert_too_wide(r, "stored file 1 (/lib/big.so).size", WIDE);
}

#[test]
fn narrowing_names_the_first_field_that_does_not_fit() {
    // Within the mm fields, in declaration order.
    let r = narrow_example(|c| {
        c.processes[0].mm.env_end = WIDE + 2;
        c.processes[0].mm.end_data = WIDE + 1;
    });
    assert_too_wide(r, "process 42 mm.end_data", WIDE + 1);
    // A process's own fields before its threads, its threads before its VMAs, VMAs before
    // signals, signals before page runs.
    let r = narrow_example(|c| {
        c.processes[0].threads[0].fs_base = WIDE + 1;
        c.processes[0].mm.brk = WIDE + 2;
    });
    assert_too_wide(r, "process 42 mm.brk", WIDE + 2);
    let r = narrow_example(|c| {
        c.processes[0].vmas[0].end = WIDE + 1;
        c.processes[0].threads[0].robust_list = WIDE + 2;
    });
    assert_too_wide(r, "thread 42 (pid 42).robust_list", WIDE + 2);
    let r = narrow_example(|c| {
        c.processes[0].signals.actions[0].handler = WIDE + 1;
        c.processes[0].vmas[1].end = WIDE + 2;
    });
    assert_too_wide(r, "vma 0x804b000 (pid 42).end", WIDE + 2);
    let r = narrow_example(|c| {
        c.processes[0].pages.push(PageRun {
            addr: WIDE,
            pages: 1,
            data_offset: 0,
        });
        c.processes[0].signals.posix_timers[0].sigev_value = WIDE + 1;
    });
    assert_too_wide(r, "process 42 posix timer 0.sigev_value", WIDE + 1);
    // Processes in order: the first process's threads before the second process's mm.
    let r = narrow_example(|c| {
        let mut second = c.processes[0].clone();
        second.pid = 43;
        second.threads[0].tid = 43;
        second.mm.start_code = WIDE + 2;
        c.processes[0].threads[0].gs_base = WIDE + 1;
        c.processes.push(second);
    });
    assert_too_wide(r, "thread 42 (pid 42).gs_base", WIDE + 1);
    // An x86_64 process never fits: its stack lies above 4 GiB.
    let mut ck = example_checkpoint(Arch::X86_64);
    ck.processes[0].pages.clear();
    let r = ImageWriter::new(Vec::new(), LayoutClass::Bits32).and_then(|w| w.finish(ck));
    assert_too_wide(r, "process 42 mm.start_stack", 0x7ffc_0000_0f00);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// The writer's streaming hasher (chunks hashed on its thread or the caller's, whichever is
    /// free) gives the same digests, in order, as hashing the whole data at once, however the
    /// stream is cut into pieces.
    #[test]
    fn streaming_chunk_digests_match_whole_data_digests(
        len in 0usize..200_000,
        chunk_shift in 12u32..=14,
        cuts in prop::collection::vec(1usize..40_000, 1..50),
        seed in any::<u8>(),
    ) {
        let data: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(31) ^ seed ^ (i >> 12) as u8).collect();
        let chunk = 1usize << chunk_shift;
        let mut h = psnc_format::digest::ChunkHasher::new(chunk);
        let mut at = 0;
        for c in cuts.iter().cycle() {
            if at >= len {
                break;
            }
            let end = (at + c).min(len);
            h.update(&data[at..end]);
            at = end;
        }
        prop_assert_eq!(h.finish(), psnc_format::digest::chunk_digests(&data, chunk));
    }
}
