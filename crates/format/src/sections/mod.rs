//! Section kinds and their frozen on-disk encodings.
//!
//! Each metadata section is a postcard-encoded value of a `*V1` struct. postcard is positional and
//! not self-describing, so these structs are FROZEN: a change of meaning or a new field makes a
//! new struct (`VmaV2`) with a new section version and an explicit conversion, or a new section
//! kind. Enums may only gain variants at the end. Class-width fields are `C::Word` (fixed 4 or 8
//! bytes); every other integer is a postcard varint.
//!
//! One file per section kind, named after the kind as FORMAT.md §5.1 names it; each holds the
//! frozen struct(s) of its section and the model <-> section conversions, where narrowing names
//! the first field that does not fit the class:
//!
//! | file               | kind | FORMAT.md | section body (the file's doc names the parts) |
//! |--------------------|------|-----------|-----------------------------------------------|
//! | `identity.rs`      | 1    | §8.1      | `IdentityV1`                                  |
//! | `processes.rs`     | 2    | §8.2      | `Vec<ProcessV1>`                              |
//! | `threads.rs`       | 3    | §8.3      | `Vec<ThreadV1>`                               |
//! | `vmas.rs`          | 4    | §8.4      | `Vec<VmaV1>`                                  |
//! | `page_index.rs`    | 5    | §8.5      | fixed `layout::PageIndexEntry`s               |
//! | `files.rs`         | 7    | §8.7      | `Vec<StoredFileV1>`                           |
//! | `fds.rs`           | 9    | §8.9      | `Vec<FdV1>`                                   |
//! | `signals.rs`       | 10   | §8.10     | `Vec<SignalsV1>`                              |
//! | `chunk_digests.rs` | 11   | §8.11     | `ChunkDigestsV1`                              |
//! | `epoll.rs`         | 12   | §8.13     | `Vec<EpollV1>`                                |
//! | `event_fds.rs`     | 13   | §8.14     | `Vec<EventFdV1>`                              |
//! | `fd_shares.rs`     | 14   | §8.15     | `Vec<FdShareV1>`                              |
//! | `zombies.rs`       | 16   | §8.17     | `Vec<ZombieV1>`                               |
//! | `aio.rs`           | 17   | §8.18     | `Vec<AioContextV1>`                           |
//! | `shared_memory.rs` | 15   | §8.16     | `Vec<SharedMemoryV1>`                         |
//! | `inet_sockets.rs`  | 18   | §8.19     | `Vec<InetSocketV1>`                           |
//! | `ttys.rs`          | 20   | §8.21     | `Vec<PtyV1>`                                  |
//! | `unix_sockets.rs`  | 19   | §8.20     | `Vec<UnixSocketV1>`                           |
//! | `unix_peers.rs`    | 23   | §8.23     | `Vec<UnixPeerV1>`                             |
//! | `sysv_shm.rs`      | 22   | §8.22     | `Vec<SysvShmV1>`                              |
//! | `parent.rs`        | 24   | §8.24     | `ParentV1`                                    |
//! | `shared.rs`        | —    | §8.12     | `FileRefV1`, `FileIdentityV1`, `SigInfoV1`    |
//! | `codec.rs`         | —    | §6, §7    | postcard and class-width helpers              |
//!
//! The raw sections `page-data` (6) and `file-data` (8) have no struct and no file. This module
//! keeps the kind table and the dispatch ([`encode_metadata`], [`decode_metadata`]) that joins
//! the per-process records of every section into one model. Every struct is re-exported here,
//! so `sections::VmaV1` is the one public path of each.

use crate::class::Class;
use crate::error::{FormatError, Result};
use crate::layout::{SECTION_CHUNKED, SECTION_CRITICAL, SECTION_SAFE_TO_COPY};
use crate::model;

mod aio;
mod chunk_digests;
mod codec;
mod epoll;
mod event_fds;
mod fd_shares;
mod fds;
mod files;
mod identity;
mod inet_sockets;
mod page_index;
mod parent;
mod processes;
mod shared;
mod shared_memory;
mod signals;
mod sysv_shm;
mod threads;
mod ttys;
mod unix_peers;
mod unix_sockets;
mod vmas;
mod zombies;

pub use aio::AioContextV1;
pub use chunk_digests::ChunkDigestsV1;
pub use codec::postcard_dec;
use codec::postcard_enc;
pub use epoll::{EpollV1, EpollWatchV1};
pub use event_fds::{EventFdStateV1, EventFdV1, InotifyWatchV1};
pub use fd_shares::{FdRefV1, FdShareV1};
pub use fds::{FdKindV1, FdV1, PipeEndV1};
pub use files::StoredFileV1;
pub use identity::{HostV1, IdentityV1};
pub use inet_sockets::{InetSocketV1, InetStateV1, SockOptionV1, TcpRepairV1};
pub use parent::{check as check_parent, ParentRunV1, ParentV1};
pub use processes::{ArchV1, CredsV1, MmV1, ProcessV1, RlimitV1};
pub use shared::{FileIdentityV1, FileRefV1, SigInfoV1};
pub use shared_memory::{
    maps_shared_memory, SharedMappingV1, SharedMemoryKindV1, SharedMemoryV1, SharedPageRunV1,
};
pub use signals::{ITimerV1, PosixTimerV1, SigActionV1, SignalsV1};
pub use sysv_shm::{SysvAttachV1, SysvShmV1};
pub use threads::{RegsV1, RestartV1, RseqV1, SigAltStackV1, ThreadV1, UserDescV1};
pub use ttys::{pts_rdev, PtyV1};
pub use unix_peers::UnixPeerV1;
pub use unix_sockets::{UnixSocketFileV1, UnixSocketV1};
pub use vmas::{VmaKindV1, VmaV1};
pub use zombies::{ExitStatusV1, ZombieV1};

/// The section kinds of format 1.x.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SectionKind {
    /// [`IdentityV1`]: versions, time, host, capturing user.
    Identity,
    /// `Vec<ProcessV1>`: the process tree.
    Processes,
    /// `Vec<ThreadV1>`: every thread of every process.
    Threads,
    /// `Vec<VmaV1>`: every VMA of every process.
    Vmas,
    /// Fixed [`PageIndexEntry`](crate::layout::PageIndexEntry) structs: where each stored page
    /// run's bytes are.
    PageIndex,
    /// Raw page contents, every run 4096-aligned; chunked digest.
    PageData,
    /// `Vec<StoredFileV1>`: the stored-file table.
    Files,
    /// Raw stored file contents, each file 4096-aligned; chunked digest.
    FileData,
    /// `Vec<FdV1>`: open file descriptors.
    Fds,
    /// `Vec<SignalsV1>`: per-process signal dispositions, shared pending signals, timers.
    Signals,
    /// [`ChunkDigestsV1`]: the per-chunk digests of one chunked section (ancillary).
    ChunkDigests,
    /// `Vec<EpollV1>`: the interest lists of epoll fds (format 1.1). Written only when some
    /// process has an epoll fd, so images without one stay readable by 1.0 readers; critical,
    /// because an epoll fd restored without its watches would never wake its waiters.
    Epoll,
    /// `Vec<EventFdV1>`: the state of eventfds, timerfds, signalfds and inotify instances
    /// (format 1.2). Written only when some process has one, so images without one stay readable
    /// by 1.1 readers; critical, because a 1.1 reader would restore them without their state.
    EventFds,
    /// `Vec<FdShareV1>`: the open file descriptions held by two or more fds (format 1.3).
    /// Written only when some description is shared, so images without one stay readable by
    /// 1.2 readers; critical, because a 1.2 reader would restore each fd with a description of
    /// its own, and their offsets would no longer move together.
    FdShares,
    /// `Vec<ZombieV1>`: the zombies of the tree and their exit status (format 1.3). Written only
    /// when the tree has a zombie, so images without one stay readable by older readers;
    /// critical, because an older reader would restore the tree without them and the parent's
    /// `wait` would never get their status.
    Zombies,
    /// `Vec<AioContextV1>`: the AIO contexts (`io_setup` rings) of every process. Written only
    /// when some process has one, so images without one stay readable by older readers;
    /// critical, because a reader that skipped it would restore the processes without their
    /// contexts.
    Aio,
    /// `Vec<SharedMemoryV1>`: shared memory objects, their stored pages and the VMAs that map
    /// them (format 1.3). Written only when some process has shared anonymous memory, so images
    /// without it stay readable by older readers; critical, because an older reader would find
    /// VMAs without their contents.
    SharedMemory,
    /// `Vec<InetSocketV1>`: the state of IPv4/IPv6 sockets (format 1.3). Written only when
    /// some process has one, so images without one stay readable by older readers; critical,
    /// because a reader that skipped it would not know what the socket was bound to.
    InetSockets,
    /// `Vec<PtyV1>`: the pseudo-terminal pairs whose master is an fd of the image, with their
    /// slave fds and the session they control (format 1.3). Written only when some fd is a pty
    /// master, so images without one stay readable by older readers; critical, because a
    /// reader that skipped it would restore neither end of the pair.
    Ttys,
    /// `Vec<UnixSocketV1>`: the state of every AF_UNIX socket fd: name, peer, listening
    /// backlog, shutdown, options and queued messages (format 1.3). Written only when some fd
    /// is a unix socket; critical, because a reader that skipped it would not know the sockets.
    UnixSockets,
    /// `Vec<SysvShmV1>`: the System V shared memory segments attached by some process, their
    /// stored pages and their attachments (format 1.3). Written only when some process attaches
    /// one; critical, because a reader that skipped it would find VMAs without their contents.
    SysvShm,
    /// `Vec<UnixPeerV1>`: the unix sockets connected to a socket no process of the image holds,
    /// with that peer's name (format 1.3). Written only when there is one; critical, because a
    /// reader that skipped it would take those sockets for pairs with a missing end.
    UnixPeers,
    /// [`ParentV1`]: the image an incremental image was captured against, and which pages and
    /// stored files are that image's (format 1.4). Written only by `psnc-capture --parent`;
    /// critical, because a reader that skipped it would restore those pages as zeros.
    Parent,
}

impl SectionKind {
    /// Every kind, in the order a writer emits them.
    pub const ALL: [SectionKind; 23] = [
        SectionKind::PageData,
        SectionKind::FileData,
        SectionKind::Identity,
        SectionKind::Processes,
        SectionKind::Threads,
        SectionKind::Vmas,
        SectionKind::PageIndex,
        SectionKind::Files,
        SectionKind::Fds,
        SectionKind::Signals,
        SectionKind::Epoll,
        SectionKind::EventFds,
        SectionKind::FdShares,
        SectionKind::Zombies,
        SectionKind::Aio,
        SectionKind::SharedMemory,
        SectionKind::InetSockets,
        SectionKind::Ttys,
        SectionKind::UnixSockets,
        SectionKind::SysvShm,
        SectionKind::UnixPeers,
        SectionKind::Parent,
        SectionKind::ChunkDigests,
    ];

    /// The kind number in the section table.
    pub fn number(self) -> u32 {
        match self {
            SectionKind::Identity => 1,
            SectionKind::Processes => 2,
            SectionKind::Threads => 3,
            SectionKind::Vmas => 4,
            SectionKind::PageIndex => 5,
            SectionKind::PageData => 6,
            SectionKind::Files => 7,
            SectionKind::FileData => 8,
            SectionKind::Fds => 9,
            SectionKind::Signals => 10,
            SectionKind::ChunkDigests => 11,
            SectionKind::Epoll => 12,
            SectionKind::EventFds => 13,
            SectionKind::FdShares => 14,
            SectionKind::Zombies => 16,
            SectionKind::Aio => 17,
            SectionKind::SharedMemory => 15,
            SectionKind::InetSockets => 18,
            SectionKind::Ttys => 20,
            SectionKind::UnixSockets => 19,
            SectionKind::SysvShm => 22,
            SectionKind::UnixPeers => 23,
            SectionKind::Parent => 24,
        }
    }

    /// The kind for a number, if this reader knows it.
    pub fn from_number(n: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.number() == n)
    }

    /// The name used in messages, `--section` and the spec.
    pub fn name(self) -> &'static str {
        match self {
            SectionKind::Identity => "identity",
            SectionKind::Processes => "processes",
            SectionKind::Threads => "threads",
            SectionKind::Vmas => "vmas",
            SectionKind::PageIndex => "page-index",
            SectionKind::PageData => "page-data",
            SectionKind::Files => "files",
            SectionKind::FileData => "file-data",
            SectionKind::Fds => "fds",
            SectionKind::Signals => "signals",
            SectionKind::ChunkDigests => "chunk-digests",
            SectionKind::Epoll => "epoll",
            SectionKind::EventFds => "event-fds",
            SectionKind::FdShares => "fd-shares",
            SectionKind::Zombies => "zombies",
            SectionKind::Aio => "aio",
            SectionKind::SharedMemory => "shared-memory",
            SectionKind::InetSockets => "inet-sockets",
            SectionKind::Ttys => "ttys",
            SectionKind::UnixSockets => "unix-sockets",
            SectionKind::SysvShm => "sysv-shm",
            SectionKind::UnixPeers => "unix-peers",
            SectionKind::Parent => "parent",
        }
    }

    /// Parses a name as printed by [`SectionKind::name`].
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }

    /// The newest version of this section's encoding that this crate reads and writes.
    pub fn current_version(self) -> u16 {
        1
    }

    /// The section flags a writer sets.
    pub fn flags(self) -> u16 {
        match self {
            SectionKind::PageData | SectionKind::FileData => SECTION_CRITICAL | SECTION_CHUNKED,
            SectionKind::ChunkDigests => SECTION_SAFE_TO_COPY,
            _ => SECTION_CRITICAL,
        }
    }

    /// Whether the section's body is raw bytes (not postcard).
    pub fn is_raw(self) -> bool {
        matches!(
            self,
            SectionKind::PageData | SectionKind::FileData | SectionKind::PageIndex
        )
    }

    /// Whether the section must appear exactly once in a 1.x image. The others appear at most
    /// once (chunk-digests once per chunked section).
    pub fn required(self) -> bool {
        !matches!(
            self,
            SectionKind::ChunkDigests
                | SectionKind::Epoll
                | SectionKind::EventFds
                | SectionKind::FdShares
                | SectionKind::Zombies
                | SectionKind::Aio
                | SectionKind::SharedMemory
                | SectionKind::InetSockets
                | SectionKind::Ttys
                | SectionKind::UnixSockets
                | SectionKind::SysvShm
                | SectionKind::UnixPeers
                | SectionKind::Parent
        )
    }
}

impl std::fmt::Display for SectionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Name of a section kind number for messages, known or not.
pub fn kind_name(n: u32) -> String {
    SectionKind::from_number(n).map_or_else(|| format!("unknown kind {n:#x}"), |k| k.name().into())
}

/// The encoded metadata sections of a checkpoint, in writing order.
pub struct EncodedMetadata {
    /// `(kind, body)` pairs.
    pub sections: Vec<(SectionKind, Vec<u8>)>,
}

/// Encodes every metadata section (all but the raw data sections) of `ck` in class `C`.
pub fn encode_metadata<C: Class>(ck: &model::Checkpoint) -> Result<EncodedMetadata> {
    let mut processes = Vec::new();
    let mut threads = Vec::new();
    let mut vmas = Vec::new();
    let mut fds = Vec::new();
    let mut signals = Vec::new();
    let mut epolls = Vec::new();
    let mut event_fds = Vec::new();
    let mut aio = Vec::new();
    let mut inet = Vec::new();
    let mut unix_sockets = Vec::new();
    let mut index = Vec::new();
    for p in &ck.processes {
        processes.push(ProcessV1::<C>::from_model(p)?);
        for t in &p.threads {
            threads.push(ThreadV1::<C>::from_model(p.pid, t)?);
        }
        for v in &p.vmas {
            vmas.push(VmaV1::<C>::from_model(p.pid, v)?);
        }
        for f in &p.fds {
            fds.push(FdV1::from_model(p.pid, f));
            if let model::FdKind::Epoll { watches } = &f.kind {
                epolls.push(EpollV1::from_model(p.pid, f.fd, watches));
            }
            event_fds.extend(EventFdV1::from_model(p.pid, f));
            inet.extend(InetSocketV1::from_model(p.pid, f));
            unix_sockets.extend(UnixSocketV1::from_model(p.pid, f));
        }
        signals.push(SignalsV1::<C>::from_model(p.pid, &p.signals)?);
        for a in &p.aio {
            aio.push(AioContextV1::<C>::from_model(p.pid, a)?);
        }
        page_index::encode_runs::<C>(p.pid, &p.pages, &mut index)?;
    }
    let mut files = Vec::new();
    for (i, f) in ck.files.iter().enumerate() {
        files.push(StoredFileV1::<C>::from_model(i, f)?);
    }
    let mut shared_memory = Vec::new();
    for (i, m) in ck.shared_memory.iter().enumerate() {
        shared_memory.push(SharedMemoryV1::<C>::from_model(i, m)?);
    }
    let mut sysv_shm = Vec::new();
    for s in &ck.sysv_shm {
        sysv_shm.push(SysvShmV1::<C>::from_model(s)?);
    }
    let mut sections = vec![
        postcard_enc(SectionKind::Identity, &IdentityV1::from(&ck.identity))?,
        postcard_enc(SectionKind::Processes, &processes)?,
        postcard_enc(SectionKind::Threads, &threads)?,
        postcard_enc(SectionKind::Vmas, &vmas)?,
        (SectionKind::PageIndex, index),
        postcard_enc(SectionKind::Files, &files)?,
        postcard_enc(SectionKind::Fds, &fds)?,
        postcard_enc(SectionKind::Signals, &signals)?,
    ];
    // Only when needed: an image without epoll fds stays a valid 1.0 image for older readers.
    if !epolls.is_empty() {
        sections.push(postcard_enc(SectionKind::Epoll, &epolls)?);
    }
    // Likewise: an image without event fds stays a valid 1.1 image.
    if !event_fds.is_empty() {
        sections.push(postcard_enc(SectionKind::EventFds, &event_fds)?);
    }
    // Likewise: an image where no description is shared stays a valid 1.2 image.
    if !ck.fd_shares.is_empty() {
        let shares: Vec<FdShareV1> = ck.fd_shares.iter().map(FdShareV1::from_model).collect();
        sections.push(postcard_enc(SectionKind::FdShares, &shares)?);
    }
    // Likewise: an image without zombies stays readable by readers before 1.3.
    if !ck.zombies.is_empty() {
        let zombies: Vec<ZombieV1> = ck.zombies.iter().map(ZombieV1::from).collect();
        sections.push(postcard_enc(SectionKind::Zombies, &zombies)?);
    }
    // Likewise for AIO contexts (§8.18).
    if !aio.is_empty() {
        sections.push(postcard_enc(SectionKind::Aio, &aio)?);
    }
    // Likewise: an image without shared memory stays readable by older readers.
    if !shared_memory.is_empty() {
        sections.push(postcard_enc(SectionKind::SharedMemory, &shared_memory)?);
    }
    // Likewise for IPv4/IPv6 sockets (§8.19).
    if !inet.is_empty() {
        sections.push(postcard_enc(SectionKind::InetSockets, &inet)?);
    }
    // Likewise for pseudo-terminals (§8.21).
    if !ck.ptys.is_empty() {
        let ptys: Vec<PtyV1> = ck.ptys.iter().map(PtyV1::from).collect();
        sections.push(postcard_enc(SectionKind::Ttys, &ptys)?);
    }
    // Likewise for unix sockets (§8.20).
    if !unix_sockets.is_empty() {
        sections.push(postcard_enc(SectionKind::UnixSockets, &unix_sockets)?);
    }
    // Likewise for System V shared memory (§8.22).
    if !sysv_shm.is_empty() {
        sections.push(postcard_enc(SectionKind::SysvShm, &sysv_shm)?);
    }
    // Likewise for unix sockets whose peer is outside (§8.23).
    if !ck.unix_peers.is_empty() {
        let peers: Vec<UnixPeerV1> = ck.unix_peers.iter().map(UnixPeerV1::from).collect();
        sections.push(postcard_enc(SectionKind::UnixPeers, &peers)?);
    }
    // Only in an incremental image (§8.24): a full image stays readable by 1.3 readers.
    if let Some(p) = &ck.parent {
        sections.push(postcard_enc(
            SectionKind::Parent,
            &ParentV1::<C>::from_model(p)?,
        )?);
    }
    Ok(EncodedMetadata { sections })
}

/// The metadata section bodies a decoder needs, by kind.
pub struct MetadataBodies<'a> {
    /// `(kind, offset in the image, body)`.
    pub bodies: Vec<(SectionKind, u64, &'a [u8])>,
}

impl<'a> MetadataBodies<'a> {
    /// An optional section: absent is fine, more than one is an error.
    fn get_optional(&self, kind: SectionKind) -> Result<Option<(u64, &'a [u8])>> {
        let mut found = self.bodies.iter().filter(|(k, _, _)| *k == kind);
        match (found.next(), found.count()) {
            (None, _) => Ok(None),
            (Some((_, o, b)), 0) => Ok(Some((*o, *b))),
            (Some(_), more) => Err(FormatError::SectionCount {
                kind: kind.name(),
                count: more + 1,
            }),
        }
    }

    fn get(&self, kind: SectionKind) -> Result<(u64, &'a [u8])> {
        self.bodies
            .iter()
            .find(|(k, _, _)| *k == kind)
            .map(|(_, o, b)| (*o, *b))
            .ok_or(FormatError::SectionCount {
                kind: kind.name(),
                count: 0,
            })
    }
}

/// The process `pid` that per-process record `what` names; every such pid must be in the image
/// (FORMAT.md §8.12). The section files that join records to processes use it too.
fn owner<'m>(
    procs: &'m mut [model::Process],
    pid: u32,
    what: &str,
) -> Result<&'m mut model::Process> {
    procs.iter_mut().find(|p| p.pid == pid).ok_or_else(|| {
        FormatError::Invalid(format!(
            "{what} belongs to pid {pid}, which is not in the image"
        ))
    })
}

/// Decodes the metadata sections of class `C` into a model.
pub fn decode_metadata<C: Class>(m: &MetadataBodies<'_>) -> Result<model::Checkpoint> {
    let (o, b) = m.get(SectionKind::Identity)?;
    let identity: IdentityV1 = postcard_dec(SectionKind::Identity, o, b)?;
    let (o, b) = m.get(SectionKind::Processes)?;
    let procs: Vec<ProcessV1<C>> = postcard_dec(SectionKind::Processes, o, b)?;
    let mut processes: Vec<model::Process> = procs.into_iter().map(ProcessV1::into_model).collect();

    let (o, b) = m.get(SectionKind::Threads)?;
    let threads: Vec<ThreadV1<C>> = postcard_dec(SectionKind::Threads, o, b)?;
    for t in threads {
        let pid = t.pid;
        owner(&mut processes, pid, &format!("thread {}", t.tid))?
            .threads
            .push(t.into_model());
    }
    let (o, b) = m.get(SectionKind::Vmas)?;
    let vmas: Vec<VmaV1<C>> = postcard_dec(SectionKind::Vmas, o, b)?;
    for v in vmas {
        let pid = v.pid;
        owner(&mut processes, pid, "a vma")?
            .vmas
            .push(v.into_model());
    }
    let (o, b) = m.get(SectionKind::Fds)?;
    let fds: Vec<FdV1> = postcard_dec(SectionKind::Fds, o, b)?;
    for f in fds {
        let pid = f.pid;
        owner(&mut processes, pid, &format!("fd {}", f.fd))?
            .fds
            .push(f.into_model());
    }
    if let Some((o, b)) = m.get_optional(SectionKind::Epoll)? {
        let epolls: Vec<EpollV1> = postcard_dec(SectionKind::Epoll, o, b)?;
        epoll::attach(&mut processes, epolls)?;
    }
    let records: Vec<EventFdV1> = match m.get_optional(SectionKind::EventFds)? {
        Some((o, b)) => postcard_dec(SectionKind::EventFds, o, b)?,
        None => Vec::new(),
    };
    event_fds::attach(&mut processes, records)?;
    let records: Vec<InetSocketV1> = match m.get_optional(SectionKind::InetSockets)? {
        Some((o, b)) => postcard_dec(SectionKind::InetSockets, o, b)?,
        None => Vec::new(),
    };
    inet_sockets::attach(&mut processes, records)?;
    if let Some((o, b)) = m.get_optional(SectionKind::Aio)? {
        let records: Vec<AioContextV1<C>> = postcard_dec(SectionKind::Aio, o, b)?;
        aio::attach(&mut processes, records)?;
    }
    let records: Vec<UnixSocketV1> = match m.get_optional(SectionKind::UnixSockets)? {
        Some((o, b)) => postcard_dec(SectionKind::UnixSockets, o, b)?,
        None => Vec::new(),
    };
    unix_sockets::attach(&mut processes, records)?;
    let (o, b) = m.get(SectionKind::Signals)?;
    let sigs: Vec<SignalsV1<C>> = postcard_dec(SectionKind::Signals, o, b)?;
    for s in sigs {
        let pid = s.pid;
        owner(&mut processes, pid, "a signal record")?.signals = s.into_model();
    }
    let (o, b) = m.get(SectionKind::PageIndex)?;
    page_index::decode_into::<C>(o, b, &mut processes)?;
    let (o, b) = m.get(SectionKind::Files)?;
    let files: Vec<StoredFileV1<C>> = postcard_dec(SectionKind::Files, o, b)?;
    let fd_shares: Vec<model::FdShare> = match m.get_optional(SectionKind::FdShares)? {
        Some((o, b)) => {
            let shares: Vec<FdShareV1> = postcard_dec(SectionKind::FdShares, o, b)?;
            shares.into_iter().map(FdShareV1::into_model).collect()
        }
        None => Vec::new(),
    };
    fd_shares::check(&processes, &fd_shares)?;
    let zombies = match m.get_optional(SectionKind::Zombies)? {
        Some((o, b)) => zombies::decode(&processes, postcard_dec(SectionKind::Zombies, o, b)?)?,
        None => Vec::new(),
    };
    let shared_memory: Vec<model::SharedMemory> = match m.get_optional(SectionKind::SharedMemory)? {
        Some((o, b)) => {
            let objects: Vec<SharedMemoryV1<C>> = postcard_dec(SectionKind::SharedMemory, o, b)?;
            objects
                .into_iter()
                .map(SharedMemoryV1::into_model)
                .collect()
        }
        None => Vec::new(),
    };
    shared_memory::check(&processes, &shared_memory)?;
    let sysv_shm: Vec<model::SysvShm> = match m.get_optional(SectionKind::SysvShm)? {
        Some((o, b)) => {
            let segments: Vec<SysvShmV1<C>> = postcard_dec(SectionKind::SysvShm, o, b)?;
            segments.into_iter().map(SysvShmV1::into_model).collect()
        }
        None => Vec::new(),
    };
    sysv_shm::check(&processes, &shared_memory, &sysv_shm)?;
    let ptys = match m.get_optional(SectionKind::Ttys)? {
        Some((o, b)) => ttys::decode(&processes, postcard_dec(SectionKind::Ttys, o, b)?)?,
        None => Vec::new(),
    };
    ttys::check_masters(&processes, &ptys)?;
    let unix_peers: Vec<model::UnixPeer> = match m.get_optional(SectionKind::UnixPeers)? {
        Some((o, b)) => {
            let records: Vec<UnixPeerV1> = postcard_dec(SectionKind::UnixPeers, o, b)?;
            records.into_iter().map(Into::into).collect()
        }
        None => Vec::new(),
    };
    unix_peers::check(&processes, &unix_peers)?;
    let parent = match m.get_optional(SectionKind::Parent)? {
        Some((o, b)) => Some(postcard_dec::<ParentV1<C>>(SectionKind::Parent, o, b)?.into_model()),
        None => None,
    };
    let ck = model::Checkpoint {
        identity: identity.into(),
        processes,
        files: files.into_iter().map(StoredFileV1::into_model).collect(),
        fd_shares,
        zombies,
        shared_memory,
        ptys,
        sysv_shm,
        unix_peers,
        parent,
    };
    parent::check(&ck)?;
    Ok(ck)
}
