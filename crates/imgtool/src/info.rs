//! `info`: a one-screen summary of an image and its process tree.

use std::collections::{BTreeMap, HashSet};

use prettytable::{format, row, Table};
use psnc_format::layout::HEADER_FLAG_STREAMED;
use psnc_format::model::{Arch, FdKind, Process};
use psnc_format::{Image, SectionKind};
use serde::Serialize;

use crate::view::utc_time;

/// The summary `info` prints (as tables, or as JSON with `--json`).
#[derive(Debug, Clone, Serialize)]
pub struct Info {
    /// The image argument.
    pub image: String,
    /// Format and layout.
    pub format: FormatInfo,
    /// Who made the image, when, where.
    pub identity: IdentityInfo,
    /// How much of each thing the image holds.
    pub counts: Counts,
    /// Stored bytes by kind.
    pub stored: StoredBytes,
    /// The stored files, by id.
    pub files: Vec<FileInfo>,
    /// The process tree, parents before children, with each process's depth.
    pub tree: Vec<ProcessInfo>,
    /// The fds whose other end was outside the image, and what restore does with them.
    pub external_fds: Vec<ExternalFdInfo>,
    /// The open file descriptions that two or more fds share (format 1.3), restored shared.
    pub shared_fds: Vec<SharedFdInfo>,
    /// The AIO contexts (`io_setup` rings) of every process.
    pub aio_contexts: Vec<AioContextInfo>,
    /// The shared memory objects, each stored once.
    pub shared_memory: Vec<SharedMemoryInfo>,
    /// The System V shared memory segments (format 1.3), each stored once.
    pub sysv_shm: Vec<SysvShmInfo>,
    /// The IPv4/IPv6 sockets of every process (format 1.3).
    pub inet_sockets: Vec<InetSocketInfo>,
    /// The unix sockets (format 1.3): pairs, listeners, queued messages.
    pub unix_sockets: Vec<UnixSocketInfo>,
    /// For an incremental image (format 1.4): the parent it needs and what it takes from it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<ParentInfo>,
}

/// The parent of an incremental image.
#[derive(Debug, Clone, Serialize)]
pub struct ParentInfo {
    /// Where the parent was at capture.
    pub path: String,
    /// Its image digest (hex).
    pub digest: String,
    /// Pages taken from it (or from its own parents), not stored here.
    pub pages: u64,
    /// Stored files whose contents are in it.
    pub files: usize,
}

/// One IPv4/IPv6 socket: what restore binds, listens on or connects to.
#[derive(Debug, Clone, Serialize)]
pub struct InetSocketInfo {
    /// The process.
    pub pid: u32,
    /// The fd.
    pub fd: i32,
    /// `tcp`, `tcp6`, `udp` or `udp6`.
    pub proto: String,
    /// `closed`, `bound`, `listening` or `connected`.
    pub state: String,
    /// The local address, `127.0.0.1:8080` or `[::1]:8080`.
    pub local: String,
    /// The peer of a connected UDP socket.
    pub peer: Option<String>,
    /// The listen backlog (0 unless listening).
    pub backlog: u32,
    /// How many socket options restore sets.
    pub options: usize,
}

/// One AF_UNIX socket fd.
#[derive(Debug, Clone, Serialize)]
pub struct UnixSocketInfo {
    /// The process.
    pub pid: u32,
    /// The fd.
    pub fd: i32,
    /// `stream`, `dgram`, `seqpacket`.
    pub sock_type: String,
    /// `connected to socket:[N]`, `listening (backlog N)` or `unconnected`.
    pub state: String,
    /// The bound name (`@name` for the abstract namespace), empty when unbound.
    pub name: String,
    /// Messages (or stream chunks) and bytes in its receive queue.
    pub queued: (usize, usize),
}

/// `addr:port` as `ss` prints it (IPv6 in brackets).
fn inet_addr(a: &psnc_format::model::InetAddr) -> String {
    if let Ok(b) = <[u8; 4]>::try_from(a.addr.as_slice()) {
        format!("{}:{}", std::net::Ipv4Addr::from(b), a.port)
    } else if let Ok(b) = <[u8; 16]>::try_from(a.addr.as_slice()) {
        format!("[{}]:{}", std::net::Ipv6Addr::from(b), a.port)
    } else {
        format!("?:{}", a.port)
    }
}

/// The inet sockets of process `p`, in fd order.
fn inet_sockets(p: &psnc_format::model::Process) -> Vec<InetSocketInfo> {
    use psnc_format::model::InetState;
    p.fds
        .iter()
        .filter_map(|f| match &f.kind {
            FdKind::InetSocket(s) => Some(InetSocketInfo {
                pid: p.pid,
                fd: f.fd,
                proto: format!(
                    "{}{}",
                    if s.sock_type == 1 { "tcp" } else { "udp" },
                    if s.family == 10 { "6" } else { "" }
                ),
                state: match s.state {
                    InetState::Closed => "closed",
                    InetState::Bound => "bound",
                    InetState::Listening => "listening",
                    InetState::Connected => "connected",
                    InetState::Established => "established",
                    InetState::Shut => "closed connection",
                }
                .into(),
                local: inet_addr(&s.local),
                peer: s.peer.as_ref().map(inet_addr),
                backlog: s.backlog,
                options: s.options.len(),
            }),
            _ => None,
        })
        .collect()
}

/// The name of a `SOCK_*` type of a unix socket.
pub fn unix_type(t: u32) -> String {
    match t {
        1 => "stream".into(),
        2 => "dgram".into(),
        5 => "seqpacket".into(),
        t => format!("type {t}"),
    }
}

/// A unix socket name as `ss` shows it: a path, `@name` for the abstract namespace.
pub fn unix_name(name: &[u8]) -> String {
    match name.split_first() {
        Some((0, rest)) => format!("@{}", String::from_utf8_lossy(rest)),
        _ => String::from_utf8_lossy(name).into_owned(),
    }
}

/// One open file description held by two or more fds (dup, `2>&1`, inherited across fork).
#[derive(Debug, Clone, Serialize)]
pub struct SharedFdInfo {
    /// The fds, as `(pid, fd)`, in image order.
    pub fds: Vec<(u32, i32)>,
    /// What the description is open on: a path, `pipe:[INO]`, or the kind of an anonymous file.
    pub resource: String,
}

/// The shared descriptions of the image, each named by what its first fd is open on.
pub fn shared_fds(ck: &psnc_format::model::Checkpoint) -> Vec<SharedFdInfo> {
    ck.fd_shares
        .iter()
        .map(|s| {
            let first = s.fds.first().and_then(|r| {
                ck.processes
                    .iter()
                    .find(|p| p.pid == r.pid)
                    .and_then(|p| p.fds.iter().find(|f| f.fd == r.fd))
            });
            let resource = match first.map(|f| &f.kind) {
                Some(FdKind::Regular(r)) => r.path.clone(),
                Some(FdKind::Directory { path })
                | Some(FdKind::CharDevice { path, .. })
                | Some(FdKind::Tty { path, .. })
                | Some(FdKind::Fifo { path, .. }) => path.clone(),
                Some(FdKind::Pipe(pe)) => format!("pipe:[{}]", pe.ino),
                Some(FdKind::EventFd { .. }) => "eventfd".into(),
                Some(FdKind::Epoll { .. }) => "epoll instance".into(),
                Some(FdKind::TimerFd(_)) => "timerfd".into(),
                Some(FdKind::SignalFd { .. }) => "signalfd".into(),
                Some(FdKind::Inotify { .. }) => "inotify instance".into(),
                Some(FdKind::Netlink(n)) => format!("netlink socket:[{}]", n.ino),
                Some(FdKind::MemFdObject { object, .. }) => {
                    format!("memfd (shared memory object {object})")
                }
                Some(_) | None => "file".into(),
            };
            SharedFdInfo {
                fds: s.fds.iter().map(|r| (r.pid, r.fd)).collect(),
                resource,
            }
        })
        .collect()
}

/// One AIO context: its ring and the completed events it holds.
#[derive(Debug, Clone, Serialize)]
pub struct AioContextInfo {
    /// The process.
    pub pid: u32,
    /// The context id, which is the ring's address (hex).
    pub context: String,
    /// The ring's length in bytes.
    pub ring_len: u64,
    /// Event slots of the ring.
    pub nr_events: u32,
    /// Completed events not yet consumed (from head to tail).
    pub completed_events: usize,
}

/// One shared memory object (section `shared-memory`).
#[derive(Debug, Clone, Serialize)]
pub struct SharedMemoryInfo {
    /// Its index in the section.
    pub id: usize,
    /// What it is (`anonymous`, or `memfd "NAME" seals 0xN`).
    pub kind: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its stored pages.
    pub pages: u64,
    /// The VMAs mapping it, as `PID:START`.
    pub mappings: Vec<String>,
}

/// One System V shared memory segment (section `sysv-shm`).
#[derive(Debug, Clone, Serialize)]
pub struct SysvShmInfo {
    /// Its identifier, kept at restore.
    pub shmid: i32,
    /// Its key (`0x00000000`: `IPC_PRIVATE`, or removed).
    pub key: String,
    /// Its size in bytes as created.
    pub size: u64,
    /// Owner and mode, as `UID:GID 0oMODE`.
    pub owner: String,
    /// `removed`, `locked`, both or neither.
    pub state: String,
    /// Its stored pages.
    pub pages: u64,
    /// The VMAs attaching it, as `PID:START` (`ro` when read-only).
    pub attachments: Vec<String>,
}

/// An fd whose other end was held by no process of the image: a pipe, FIFO or unix socket the
/// process inherited from whoever started it, or a connection to a daemon.
#[derive(Debug, Clone, Serialize)]
pub struct ExternalFdInfo {
    /// The process.
    pub pid: u32,
    /// The fd.
    pub fd: i32,
    /// `pipe:[INO]`, the FIFO's path, or `socket:[INO]`.
    pub resource: String,
    /// `pipe`, `fifo`, or `unix stream` / `unix datagram` / `unix seqpacket`.
    pub kind: String,
    /// `read` or `write`; for a socket, `peer NAME`.
    pub end: String,
    /// Bytes buffered in it at capture (all fds of the pipe together).
    pub buffered: usize,
    /// What psnc-restore does with it.
    pub restore: String,
}

/// The unix socket fds of `p` whose peer was outside the image (`unix-peers`), in fd order.
pub fn unix_external_fds(ck: &psnc_format::model::Checkpoint, p: &Process) -> Vec<ExternalFdInfo> {
    p.fds
        .iter()
        .filter_map(|f| {
            let FdKind::Socket {
                ino,
                sock_type,
                unix: Some(u),
                ..
            } = &f.kind
            else {
                return None;
            };
            let peer = ck.unix_peers.iter().find(|x| x.ino == *ino)?;
            let name = match peer.name.split_first() {
                None => format!("socket:[{}] (unnamed)", peer.peer_ino),
                Some((0, rest)) => format!("@{}", String::from_utf8_lossy(rest)),
                Some(_) => String::from_utf8_lossy(&peer.name).into_owned(),
            };
            let queued: usize = u.queued.iter().map(Vec::len).sum();
            let restore = if peer.name.is_empty() || queued > 0 {
                "new pair, other end closed (queued bytes, then EOF; EPIPE); or --inherit-fd"
            } else {
                "connected to the peer's name again if something accepts there; or --inherit-fd"
            };
            let kind = match *sock_type {
                2 => "unix datagram",  // SOCK_DGRAM
                5 => "unix seqpacket", // SOCK_SEQPACKET
                _ => "unix stream",
            };
            Some(ExternalFdInfo {
                pid: p.pid,
                fd: f.fd,
                resource: format!("socket:[{ino}]"),
                kind: kind.into(),
                end: format!("peer {name}"),
                buffered: queued,
                restore: restore.into(),
            })
        })
        .collect()
}

/// The external fds of `p`, in fd order. A pipe is external when capture marked it so; a FIFO
/// when the process holds only its read or only its write end (no fd is `O_RDWR`).
pub fn external_fds(p: &Process) -> Vec<ExternalFdInfo> {
    let write = |flags: u32| flags & O_ACCMODE == O_WRONLY;
    let rdwr = |flags: u32| flags & O_ACCMODE == O_RDWR;
    // FIFO path -> (read end held, write end held); pipe or FIFO -> buffered bytes.
    let mut fifo_ends: BTreeMap<&str, (bool, bool)> = BTreeMap::new();
    let mut buffered: BTreeMap<String, usize> = BTreeMap::new();
    for f in &p.fds {
        match &f.kind {
            FdKind::Fifo { path, buffered: b } => {
                let e = fifo_ends.entry(path.as_str()).or_default();
                e.0 |= !write(f.flags);
                e.1 |= write(f.flags) || rdwr(f.flags);
                *buffered.entry(path.clone()).or_default() += b.len();
            }
            FdKind::Pipe(pe) => {
                *buffered.entry(format!("pipe:[{}]", pe.ino)).or_default() += pe.buffered.len();
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for f in &p.fds {
        let (resource, kind, write_end) = match &f.kind {
            FdKind::Pipe(pe) if pe.external => (format!("pipe:[{}]", pe.ino), "pipe", pe.write_end),
            FdKind::Fifo { path, .. } => match fifo_ends.get(path.as_str()) {
                Some((true, true)) | None => continue,
                Some(_) => (path.clone(), "fifo", write(f.flags)),
            },
            _ => continue,
        };
        let restore = match (kind, write_end) {
            ("pipe", false) => "new pipe holding the bytes, then EOF; or --inherit-fd",
            ("pipe", true) => "new pipe without a reader (EPIPE); or --inherit-fd",
            (_, false) => "reopened by path holding the bytes; EOF until a writer opens it",
            (_, true) => "reopened by path; EPIPE until a reader opens it",
        };
        out.push(ExternalFdInfo {
            pid: p.pid,
            fd: f.fd,
            buffered: buffered.get(&resource).copied().unwrap_or(0),
            resource,
            kind: kind.into(),
            end: if write_end { "write" } else { "read" }.into(),
            restore: restore.into(),
        });
    }
    out
}

/// The access-mode bits of open flags (the same on every Linux architecture).
const O_ACCMODE: u32 = 3;
const O_WRONLY: u32 = 1;
const O_RDWR: u32 = 2;

/// Format and layout of the image.
#[derive(Debug, Clone, Serialize)]
pub struct FormatInfo {
    /// `major.minor`.
    pub version: String,
    /// `32-bit` or `64-bit`.
    pub layout_class: String,
    /// Written as a stream (header table offset 0).
    pub streamed: bool,
    /// Number of sections in the table.
    pub sections: usize,
    /// Image size in bytes.
    pub size: u64,
}

/// The identity section, with the creation time also as a date.
#[derive(Debug, Clone, Serialize)]
pub struct IdentityInfo {
    /// Version of the capturing tool.
    pub tool_version: String,
    /// Creation time, ns since the epoch.
    pub created_ns: u64,
    /// Creation time, UTC.
    pub created: String,
    /// Kernel release.
    pub kernel: String,
    /// `uname -m`.
    pub machine: String,
    /// Host name.
    pub hostname: String,
    /// CPU vendor.
    pub cpu_vendor: String,
    /// CPU model.
    pub cpu_model: String,
    /// Number of CPU feature flags recorded.
    pub cpu_flags: usize,
    /// XCR0.
    pub xsave_features: String,
    /// XSAVE area size.
    pub xsave_size: u32,
    /// Capturing uid.
    pub capture_uid: u32,
    /// Capturing gid.
    pub capture_gid: u32,
    /// Capture command line.
    pub capture_cmdline: Vec<String>,
}

/// Object counts.
#[derive(Debug, Clone, Serialize)]
pub struct Counts {
    /// Processes.
    pub processes: usize,
    /// Threads of all processes.
    pub threads: usize,
    /// VMAs of all processes.
    pub vmas: usize,
    /// Open fds of all processes.
    pub fds: usize,
    /// Stored page runs.
    pub page_runs: usize,
    /// Stored files.
    pub files: usize,
    /// Zombies (children that exited unreaped); absent from the JSON when there are none.
    #[serde(skip_serializing_if = "is_zero")]
    pub zombies: usize,
    /// Pseudo-terminal pairs (section `ttys`); absent from the JSON when there are none.
    #[serde(skip_serializing_if = "is_zero")]
    pub ptys: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Stored bytes by kind.
#[derive(Debug, Clone, Serialize)]
pub struct StoredBytes {
    /// Stored pages (of the processes and of the shared memory objects).
    pub pages: u64,
    /// Bytes of stored pages.
    pub page_bytes: u64,
    /// Bytes of stored file contents.
    pub file_bytes: u64,
    /// Bytes of every other section (metadata, page index, chunk digests, unknown sections).
    pub metadata_bytes: u64,
    /// Header, alignment padding, section table and trailer.
    pub overhead_bytes: u64,
}

/// One stored file.
#[derive(Debug, Clone, Serialize)]
pub struct FileInfo {
    /// Its id (`FileRef::stored`).
    pub id: usize,
    /// A path it was seen under.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of its contents.
    pub sha256: String,
}

/// One process of the tree.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessInfo {
    /// Depth in the tree (0 for a root).
    pub depth: usize,
    /// Process id.
    pub pid: u32,
    /// Parent process id.
    pub ppid: u32,
    /// `x86_64` or `i386`.
    pub arch: String,
    /// Command name.
    pub comm: String,
    /// Threads.
    pub threads: usize,
    /// VMAs.
    pub vmas: usize,
    /// Stored pages.
    pub pages: u64,
    /// The command line, split at NUL bytes.
    pub cmdline: Vec<String>,
    /// For a zombie: how it ended (`exit 7`, `killed by signal 15`); absent for a process.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zombie: Option<String>,
}

/// The arch name used everywhere in imgtool output.
pub fn arch_name(a: Arch) -> &'static str {
    match a {
        Arch::X86_64 => "x86_64",
        Arch::I386 => "i386",
    }
}

/// Splits `/proc/PID/cmdline` bytes into arguments.
pub fn split_cmdline(b: &[u8]) -> Vec<String> {
    let b = b.strip_suffix(&[0]).unwrap_or(b);
    if b.is_empty() {
        return Vec::new();
    }
    b.split(|c| *c == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// Processes in tree order: each root (parent not in the image) followed by its descendants.
/// Processes caught in a parent cycle (a corrupt image) come last, as roots.
pub fn tree_order(procs: &[Process]) -> Vec<(usize, &Process)> {
    let pids: HashSet<u32> = procs.iter().map(|p| p.pid).collect();
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    fn visit<'a>(
        p: &'a Process,
        depth: usize,
        procs: &'a [Process],
        seen: &mut HashSet<u32>,
        out: &mut Vec<(usize, &'a Process)>,
    ) {
        if !seen.insert(p.pid) {
            return;
        }
        out.push((depth, p));
        for c in procs.iter().filter(|c| c.ppid == p.pid && c.pid != p.pid) {
            visit(c, depth + 1, procs, seen, out);
        }
    }
    for p in procs
        .iter()
        .filter(|p| !pids.contains(&p.ppid) || p.ppid == p.pid)
    {
        visit(p, 0, procs, &mut seen, &mut out);
    }
    for p in procs {
        visit(p, 0, procs, &mut seen, &mut out);
    }
    out
}

/// Builds the summary of `img`; `image` is the argument it was opened from.
pub fn info(img: &Image, image: &str) -> Info {
    let ck = img.checkpoint();
    let id = &ck.identity;
    let h = &id.host;
    let procs = &ck.processes;
    let page_bytes = img.page_data().len() as u64;
    let file_bytes = img.file_data().len() as u64;
    let raw = [
        SectionKind::PageData.number(),
        SectionKind::FileData.number(),
    ];
    let metadata_bytes: u64 = img
        .sections()
        .iter()
        .filter(|e| !raw.contains(&e.kind))
        .map(|e| e.length)
        .sum();
    let size = img.bytes().len() as u64;
    Info {
        image: image.into(),
        format: FormatInfo {
            version: format!("{}.{}", img.version().0, img.version().1),
            layout_class: img.class().to_string(),
            streamed: img.header().flags & HEADER_FLAG_STREAMED != 0,
            sections: img.sections().len(),
            size,
        },
        identity: IdentityInfo {
            tool_version: id.tool_version.clone(),
            created_ns: id.created_ns,
            created: utc_time(id.created_ns),
            kernel: h.kernel_release.clone(),
            machine: h.machine.clone(),
            hostname: h.hostname.clone(),
            cpu_vendor: h.cpu_vendor.clone(),
            cpu_model: h.cpu_model.clone(),
            cpu_flags: h.cpu_flags.len(),
            xsave_features: format!("{:#x}", h.xsave_features),
            xsave_size: h.xsave_size,
            capture_uid: id.capture_uid,
            capture_gid: id.capture_gid,
            capture_cmdline: id.capture_cmdline.clone(),
        },
        counts: Counts {
            processes: procs.len(),
            threads: procs.iter().map(|p| p.threads.len()).sum(),
            vmas: procs.iter().map(|p| p.vmas.len()).sum(),
            fds: procs.iter().map(|p| p.fds.len()).sum(),
            page_runs: procs.iter().map(|p| p.pages.len()).sum(),
            files: ck.files.len(),
            zombies: ck.zombies.len(),
            ptys: ck.ptys.len(),
        },
        stored: StoredBytes {
            pages: procs
                .iter()
                .flat_map(|p| &p.pages)
                .chain(ck.shared_memory.iter().flat_map(|o| &o.pages))
                .chain(ck.sysv_shm.iter().flat_map(|s| &s.pages))
                .map(|r| r.pages)
                .sum(),
            page_bytes,
            file_bytes,
            metadata_bytes,
            overhead_bytes: size.saturating_sub(page_bytes + file_bytes + metadata_bytes),
        },
        files: ck
            .files
            .iter()
            .enumerate()
            .map(|(i, f)| FileInfo {
                id: i,
                path: f.path.clone(),
                size: f.size,
                sha256: hex::encode(f.sha256),
            })
            .collect(),
        tree: tree_order(procs)
            .into_iter()
            .flat_map(|(depth, p)| {
                let me = ProcessInfo {
                    depth,
                    pid: p.pid,
                    ppid: p.ppid,
                    arch: arch_name(p.arch).into(),
                    comm: p.comm.clone(),
                    threads: p.threads.len(),
                    vmas: p.vmas.len(),
                    pages: p.pages.iter().map(|r| r.pages).sum(),
                    cmdline: split_cmdline(&p.cmdline),
                    zombie: None,
                };
                // A zombie right under its parent: it has no threads, memory or name left.
                let zombies =
                    ck.zombies
                        .iter()
                        .filter(|z| z.ppid == p.pid)
                        .map(move |z| ProcessInfo {
                            depth: depth + 1,
                            pid: z.pid,
                            ppid: z.ppid,
                            arch: arch_name(p.arch).into(),
                            comm: String::new(),
                            threads: 0,
                            vmas: 0,
                            pages: 0,
                            cmdline: Vec::new(),
                            zombie: Some(z.status.to_string()),
                        });
                std::iter::once(me).chain(zombies)
            })
            .collect(),
        external_fds: procs
            .iter()
            .flat_map(|p| {
                let mut v = external_fds(p);
                v.extend(unix_external_fds(ck, p));
                v
            })
            .collect(),
        shared_fds: shared_fds(ck),
        aio_contexts: procs
            .iter()
            .flat_map(|p| {
                p.aio.iter().map(|a| AioContextInfo {
                    pid: p.pid,
                    context: format!("{:#x}", a.ring),
                    ring_len: a.ring_len,
                    nr_events: a.nr_events,
                    completed_events: a.events.len() / 32,
                })
            })
            .collect(),
        shared_memory: ck
            .shared_memory
            .iter()
            .enumerate()
            .map(|(i, o)| SharedMemoryInfo {
                id: i,
                kind: match &o.kind {
                    psnc_format::model::SharedMemoryKind::Anonymous => "anonymous".into(),
                    psnc_format::model::SharedMemoryKind::Memfd { name, seals } => {
                        format!("memfd {name:?} seals {seals:#x}")
                    }
                },
                size: o.size,
                pages: o.pages.iter().map(|r| r.pages).sum(),
                mappings: o
                    .mappings
                    .iter()
                    .map(|m| format!("{}:{:#x}", m.pid, m.start))
                    .collect(),
            })
            .collect(),
        sysv_shm: ck
            .sysv_shm
            .iter()
            .map(|s| SysvShmInfo {
                shmid: s.shmid,
                key: format!("{:#010x}", s.key),
                size: s.size,
                owner: format!("{}:{} {:#o}", s.uid, s.gid, s.mode),
                state: [(s.removed, "removed"), (s.locked, "locked")]
                    .iter()
                    .filter(|(b, _)| *b)
                    .map(|(_, n)| *n)
                    .collect::<Vec<_>>()
                    .join(","),
                pages: s.pages.iter().map(|r| r.pages).sum(),
                attachments: s
                    .attachments
                    .iter()
                    .map(|a| {
                        let ro = if a.read_only { " ro" } else { "" };
                        format!("{}:{:#x}{ro}", a.pid, a.start)
                    })
                    .collect(),
            })
            .collect(),
        inet_sockets: procs.iter().flat_map(inet_sockets).collect(),
        unix_sockets: procs
            .iter()
            .flat_map(|p| {
                p.fds.iter().filter_map(|f| match &f.kind {
                    FdKind::Socket {
                        sock_type,
                        unix: Some(u),
                        ..
                    } => Some(UnixSocketInfo {
                        pid: p.pid,
                        fd: f.fd,
                        sock_type: unix_type(*sock_type),
                        state: match u.state {
                            10 => format!("listening (backlog {})", u.backlog),
                            _ if u.peer_ino != 0 => format!("connected to socket:[{}]", u.peer_ino),
                            _ => "unconnected".into(),
                        },
                        name: unix_name(&u.name),
                        queued: (u.queued.len(), u.queued.iter().map(Vec::len).sum()),
                    }),
                    _ => None,
                })
            })
            .collect(),
        parent: ck.parent.as_ref().map(|p| ParentInfo {
            path: p.path.clone(),
            digest: psnc_format::chain::hex(&p.digest),
            pages: p.pages.iter().map(|r| r.pages).sum(),
            files: p.files.len(),
        }),
    }
}

/// Human-readable byte count: `12288 (12.0 KiB)`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{n} ({v:.1} {})", UNITS[u])
    }
}

fn quote_args(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl Info {
    /// The summary as tables: the image, then the process tree, then the stored files.
    pub fn render(&self) -> String {
        let i = &self.identity;
        let mut t = Table::new();
        t.set_format(*format::consts::FORMAT_CLEAN);
        let rows: Vec<(&str, String)> = vec![
            ("image", self.image.clone()),
            ("format version", self.format.version.clone()),
            ("layout class", self.format.layout_class.clone()),
            (
                "written as",
                if self.format.streamed {
                    "stream".into()
                } else {
                    "file (seekable)".into()
                },
            ),
            ("size", bytes(self.format.size)),
            ("sections", self.format.sections.to_string()),
            ("tool version", i.tool_version.clone()),
            ("created", format!("{} ({} ns)", i.created, i.created_ns)),
            (
                "captured by",
                format!(
                    "uid {} gid {}: {}",
                    i.capture_uid,
                    i.capture_gid,
                    quote_args(&i.capture_cmdline)
                ),
            ),
            (
                "host",
                format!("{} ({}), kernel {}", i.hostname, i.machine, i.kernel),
            ),
            (
                "cpu",
                format!("{} {} ({} flags)", i.cpu_vendor, i.cpu_model, i.cpu_flags),
            ),
            (
                "xsave",
                format!("features {}, {} bytes", i.xsave_features, i.xsave_size),
            ),
            ("processes", self.counts.processes.to_string()),
            ("zombies", self.counts.zombies.to_string()),
            ("threads", self.counts.threads.to_string()),
            ("vmas", self.counts.vmas.to_string()),
            ("fds", self.counts.fds.to_string()),
            ("ptys", self.counts.ptys.to_string()),
            (
                "pages",
                format!(
                    "{} in {} runs: {}{}",
                    self.stored.pages,
                    self.counts.page_runs,
                    bytes(self.stored.page_bytes),
                    match self.stored.page_bytes.checked_sub(self.stored.pages * 4096) {
                        Some(extra) if extra > 0 => format!(
                            " ({} of it older copies of pages written during a pre-copy, \
                             referenced by no run)",
                            bytes(extra)
                        ),
                        _ => String::new(),
                    }
                ),
            ),
            (
                "files",
                format!("{}: {}", self.counts.files, bytes(self.stored.file_bytes)),
            ),
            ("metadata", bytes(self.stored.metadata_bytes)),
            ("overhead", bytes(self.stored.overhead_bytes)),
            (
                "parent",
                self.parent.as_ref().map_or(String::new(), |p| {
                    format!(
                        "{} (digest {}…): {} pages and {} files are its; restore needs it",
                        p.path,
                        &p.digest[..16],
                        p.pages,
                        p.files
                    )
                }),
            ),
        ];
        for (k, v) in rows {
            if k == "zombies" && self.counts.zombies == 0
                || k == "ptys" && self.counts.ptys == 0
                || k == "parent" && self.parent.is_none()
            {
                continue;
            }
            t.add_row(row![k, v]);
        }
        let mut out = t.to_string();

        let mut tree = Table::new();
        tree.set_format(*format::consts::FORMAT_NO_LINESEP_WITH_TITLE);
        tree.set_titles(row![
            "PID", "PPID", "ARCH", "THREADS", "VMAS", "PAGES", "COMMAND"
        ]);
        for p in &self.tree {
            let indent = if p.depth == 0 {
                String::new()
            } else {
                format!("{}└─ ", "   ".repeat(p.depth - 1))
            };
            let cmd = if let Some(status) = &p.zombie {
                format!("<defunct> ({status})")
            } else if p.cmdline.is_empty() {
                format!("[{}]", p.comm)
            } else {
                quote_args(&p.cmdline)
            };
            tree.add_row(row![
                format!("{indent}{}", p.pid),
                p.ppid,
                p.arch,
                p.threads,
                p.vmas,
                p.pages,
                cmd
            ]);
        }
        out.push_str("\nprocess tree:\n");
        out.push_str(&tree.to_string());

        if !self.external_fds.is_empty() {
            let mut ext = Table::new();
            ext.set_format(*format::consts::FORMAT_NO_LINESEP_WITH_TITLE);
            ext.set_titles(row!["PID", "FD", "RESOURCE", "END", "BUFFERED", "RESTORE"]);
            for e in &self.external_fds {
                ext.add_row(row![e.pid, e.fd, e.resource, e.end, e.buffered, e.restore]);
            }
            out.push_str("\nfds whose other end was outside the image:\n");
            out.push_str(&ext.to_string());
        }

        if !self.shared_fds.is_empty() {
            let mut shared = Table::new();
            shared.set_format(*format::consts::FORMAT_NO_LINESEP_WITH_TITLE);
            shared.set_titles(row!["FDS (PID:FD)", "OPEN ON"]);
            for s in &self.shared_fds {
                let fds: Vec<String> = s.fds.iter().map(|(p, f)| format!("{p}:{f}")).collect();
                shared.add_row(row![fds.join(" "), s.resource]);
            }
            out.push_str("\nopen file descriptions shared by several fds (restored shared):\n");
            out.push_str(&shared.to_string());
        }

        if !self.aio_contexts.is_empty() {
            let mut aio = Table::new();
            aio.set_format(*format::consts::FORMAT_NO_LINESEP_WITH_TITLE);
            aio.set_titles(row!["PID", "CONTEXT", "RING", "SLOTS", "COMPLETED"]);
            for a in &self.aio_contexts {
                aio.add_row(row![
                    a.pid,
                    a.context,
                    bytes(a.ring_len),
                    a.nr_events,
                    a.completed_events
                ]);
            }
            out.push_str("\nAIO contexts:\n");
            out.push_str(&aio.to_string());
        }

        if !self.shared_memory.is_empty() {
            let mut shm = Table::new();
            shm.set_format(*format::consts::FORMAT_NO_LINESEP_WITH_TITLE);
            shm.set_titles(row!["ID", "KIND", "SIZE", "PAGES", "MAPPED BY (PID:START)"]);
            for o in &self.shared_memory {
                shm.add_row(row![o.id, o.kind, o.size, o.pages, o.mappings.join(" ")]);
            }
            out.push_str("\nshared memory (stored once):\n");
            out.push_str(&shm.to_string());
        }

        if !self.sysv_shm.is_empty() {
            let mut t = Table::new();
            t.set_format(*format::consts::FORMAT_NO_LINESEP_WITH_TITLE);
            t.set_titles(row![
                "SHMID",
                "KEY",
                "SIZE",
                "OWNER MODE",
                "STATE",
                "PAGES",
                "ATTACHED BY (PID:START)"
            ]);
            for x in &self.sysv_shm {
                t.add_row(row![
                    x.shmid,
                    x.key,
                    x.size,
                    x.owner,
                    x.state,
                    x.pages,
                    x.attachments.join(" ")
                ]);
            }
            out.push_str("\nSystem V shared memory (stored once):\n");
            out.push_str(&t.to_string());
        }

        if !self.inet_sockets.is_empty() {
            let mut inet = Table::new();
            inet.set_format(*format::consts::FORMAT_NO_LINESEP_WITH_TITLE);
            inet.set_titles(row![
                "PID", "FD", "PROTO", "STATE", "LOCAL", "PEER", "BACKLOG", "OPTIONS"
            ]);
            for s in &self.inet_sockets {
                inet.add_row(row![
                    s.pid,
                    s.fd,
                    s.proto,
                    s.state,
                    s.local,
                    s.peer.as_deref().unwrap_or("-"),
                    s.backlog,
                    s.options
                ]);
            }
            out.push_str("\nIPv4/IPv6 sockets:\n");
            out.push_str(&inet.to_string());
        }

        if !self.unix_sockets.is_empty() {
            let mut t = Table::new();
            t.set_format(*format::consts::FORMAT_NO_LINESEP_WITH_TITLE);
            t.set_titles(row!["PID", "FD", "TYPE", "STATE", "NAME", "QUEUED"]);
            for u in &self.unix_sockets {
                t.add_row(row![
                    u.pid,
                    u.fd,
                    u.sock_type,
                    u.state,
                    u.name,
                    format!("{} msgs, {} bytes", u.queued.0, u.queued.1)
                ]);
            }
            out.push_str("\nunix sockets:\n");
            out.push_str(&t.to_string());
        }

        if !self.files.is_empty() {
            let mut files = Table::new();
            files.set_format(*format::consts::FORMAT_NO_LINESEP_WITH_TITLE);
            files.set_titles(row!["ID", "SIZE", "SHA256", "PATH"]);
            for f in &self.files {
                files.add_row(row![f.id, f.size, hex_prefix(&f.sha256), f.path]);
            }
            out.push_str("\nstored files:\n");
            out.push_str(&files.to_string());
        }
        out
    }
}

fn hex_prefix(s: &str) -> String {
    s.get(..16)
        .map_or_else(|| s.to_string(), |p| format!("{p}…"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_splits_at_nul() {
        assert_eq!(split_cmdline(b"example\0--count\0"), ["example", "--count"]);
        assert!(split_cmdline(b"").is_empty());
        assert_eq!(quote_args(&["a b".into(), "c".into()]), "'a b' c");
    }

    #[test]
    fn external_fds_are_outside_pipes_and_half_held_fifos() {
        use psnc_format::model::{Fd, PipeEnd};
        let fd = |fd: i32, flags: u32, kind: FdKind| Fd {
            fd,
            flags,
            cloexec: false,
            pos: 0,
            kind,
        };
        let pipe = |ino, write_end, external, n: usize| {
            FdKind::Pipe(PipeEnd {
                ino,
                write_end,
                external,
                buffered: vec![0; n],
                capacity: 65536,
            })
        };
        let fifo = |path: &str, n: usize| FdKind::Fifo {
            path: path.into(),
            buffered: vec![0; n],
        };
        let p = Process {
            pid: 7,
            fds: vec![
                fd(0, 0, pipe(10, false, true, 12)),
                fd(1, 1, pipe(11, true, true, 5)),
                fd(2, 1, pipe(11, true, true, 0)),
                fd(3, 0, pipe(12, false, false, 3)),
                fd(4, 1, pipe(12, true, false, 0)),
                fd(5, 0, fifo("/run/in", 4)),
                fd(6, 2, fifo("/run/both", 0)),
                fd(7, 0, fifo("/run/pair", 0)),
                fd(8, 1, fifo("/run/pair", 0)),
            ],
            ..Default::default()
        };
        let got: Vec<(i32, String, String, usize)> = external_fds(&p)
            .into_iter()
            .map(|e| (e.fd, e.resource, e.end, e.buffered))
            .collect();
        let want = |fd, r: &str, e: &str, n| (fd, r.to_string(), e.to_string(), n);
        assert_eq!(
            got,
            [
                want(0, "pipe:[10]", "read", 12),
                want(1, "pipe:[11]", "write", 5),
                want(2, "pipe:[11]", "write", 5),
                want(5, "/run/in", "read", 4),
            ]
        );
    }

    #[test]
    fn tree_puts_children_under_parents_and_survives_cycles() {
        let p = |pid, ppid| Process {
            pid,
            ppid,
            ..Default::default()
        };
        let procs = [p(10, 1), p(12, 11), p(11, 10), p(20, 21), p(21, 20)];
        let order: Vec<(usize, u32)> = tree_order(&procs)
            .into_iter()
            .map(|(d, p)| (d, p.pid))
            .collect();
        assert_eq!(order, [(0, 10), (1, 11), (2, 12), (0, 20), (1, 21)]);
    }
}
