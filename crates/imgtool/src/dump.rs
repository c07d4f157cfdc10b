//! `dump`: every decoded field, section by section; a hex dump of stored memory at an address; a
//! search of stored memory.
//!
//! The section contents come from [`crate::view`], so the text and the JSON show the same fields,
//! and a field added to the model appears in the dump without a change here.

use prettytable::{format, row, Table};
use psnc_format::layout::{
    HEADER_FLAG_STREAMED, SECTION_CHUNKED, SECTION_CRITICAL, SECTION_SAFE_TO_COPY,
};
use psnc_format::model::{FdKind, Process, SigAction};
use psnc_format::sections::kind_name;
use psnc_format::{Image, SectionKind};
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::memory::{describe_vma, hex_with_gaps, hexdump, Hit, ProcessMemory, Segment};
use crate::view::{self, to_value};
use crate::{Error, Result};

/// The largest `--len` of a hex dump: a dump is for reading, not for extracting memory.
pub const MAX_DUMP_LEN: u64 = 16 << 20;

/// Context bytes shown on each side of a search hit.
pub const SEARCH_CONTEXT: u64 = 16;

fn flag_names(flags: u16) -> String {
    let mut v = Vec::new();
    if flags & SECTION_CRITICAL != 0 {
        v.push("critical");
    } else {
        v.push("ancillary");
    }
    if flags & SECTION_SAFE_TO_COPY != 0 {
        v.push("safe-to-copy");
    }
    if flags & SECTION_CHUNKED != 0 {
        v.push("chunked");
    }
    v.join(",")
}

/// What the reader did with a section: decoded it, or skipped it and why.
pub fn section_status(kind: u32, version: u16) -> &'static str {
    match SectionKind::from_number(kind) {
        Some(k) if version <= k.current_version() => "decoded",
        Some(_) => "skipped: newer version (ancillary)",
        None => "skipped: unknown kind (ancillary)",
    }
}

/// Section kinds in the order of their numbers (identity, processes, ...): the model's order,
/// not the file's.
pub fn display_order() -> [SectionKind; SectionKind::ALL.len()] {
    let mut all = SectionKind::ALL;
    all.sort_by_key(|k| k.number());
    all
}

/// The header and trailer as read.
pub fn header_view(img: &Image) -> Value {
    let h = img.header();
    let t = img.trailer();
    json!({
        "size": img.bytes().len(),
        "format_version": format!("{}.{}", h.major, h.minor),
        "class": img.class().to_string(),
        "byte_order": "little-endian",
        "header_size": h.header_size,
        "flags": h.flags,
        "streamed": h.flags & HEADER_FLAG_STREAMED != 0,
        "chunk_size": 1u64 << h.chunk_shift,
        "table_offset": h.table_offset,
        "trailer": {
            "table_offset": t.table_offset,
            "table_count": t.table_count,
            "image_sha256": hex::encode(t.image_sha256),
        },
    })
}

/// The section table, one object per entry in table order.
pub fn table_view(img: &Image) -> Value {
    let entries = img
        .sections()
        .iter()
        .enumerate()
        .map(|(i, e)| {
            json!({
                "index": i,
                "kind": e.kind,
                "name": kind_name(e.kind),
                "version": e.version,
                "flags": e.flags,
                "flag_names": flag_names(e.flags),
                "offset": e.offset,
                "length": e.length,
                "sha256": hex::encode(e.sha256),
                "status": section_status(e.kind, e.version),
            })
        })
        .collect();
    Value::Array(entries)
}

/// `v` with `"pid": pid` as its first field.
fn with_pid(pid: u32, v: Value) -> Value {
    let mut m = Map::new();
    m.insert("pid".into(), pid.into());
    if let Value::Object(inner) = v {
        m.extend(inner);
    }
    Value::Object(m)
}

fn raw_section_view(img: &Image, kind: SectionKind, count_key: &str, count: usize) -> Value {
    let entry = img.sections().iter().find(|e| e.kind == kind.number());
    let mut m = Map::new();
    if let Some(e) = entry {
        m.insert("offset".into(), e.offset.into());
        m.insert("length".into(), e.length.into());
        m.insert("sha256".into(), hex::encode(e.sha256).into());
    }
    if let Some(c) = img.chunk_digests(kind) {
        m.insert("chunks".into(), c.digests.len().into());
    }
    m.insert(count_key.into(), count.into());
    Value::Object(m)
}

fn signals_view(p: &Process) -> Value {
    let mut v = to_value(&p.signals);
    if let Some(Value::Array(actions)) = v.get_mut("actions") {
        for (i, a) in actions.iter_mut().enumerate() {
            *a = with_pid_key("signo", i as u64 + 1, std::mem::take(a));
        }
    }
    view::hexify_bytes(&mut v);
    with_pid(p.pid, v)
}

fn with_pid_key(key: &str, n: u64, v: Value) -> Value {
    let mut m = Map::new();
    m.insert(key.into(), n.into());
    if let Value::Object(inner) = v {
        m.extend(inner);
    }
    Value::Object(m)
}

/// The decoded contents of one section kind, for the processes `pid` selects (all when `None`).
pub fn section_view(img: &Image, kind: SectionKind, pid: Option<u32>) -> Value {
    let ck = img.checkpoint();
    let procs: Vec<&Process> = ck
        .processes
        .iter()
        .filter(|p| pid.map_or(true, |x| x == p.pid))
        .collect();
    let per_proc = |f: &dyn Fn(&Process) -> Vec<Value>| -> Value {
        Value::Array(procs.iter().flat_map(|p| f(p)).collect())
    };
    match kind {
        SectionKind::Identity => {
            let mut v = to_value(&ck.identity);
            view::hexify_bytes(&mut v);
            v
        }
        SectionKind::Processes => per_proc(&|p| {
            let mut v = view::process_view(p);
            if let Value::Object(m) = &mut v {
                for k in ["threads", "vmas", "pages", "fds", "signals"] {
                    m.shift_remove(k);
                }
            }
            vec![v]
        }),
        SectionKind::Threads => per_proc(&|p| {
            p.threads
                .iter()
                .map(|t| with_pid(p.pid, view::thread_view(t)))
                .collect()
        }),
        SectionKind::Vmas => per_proc(&|p| {
            p.vmas
                .iter()
                .map(|v| {
                    let mut x = to_value(v);
                    view::hexify_bytes(&mut x);
                    with_pid(p.pid, x)
                })
                .collect()
        }),
        SectionKind::PageIndex => per_proc(&|p| {
            p.pages
                .iter()
                .map(|r| with_pid(p.pid, to_value(r)))
                .collect()
        }),
        SectionKind::PageData => {
            let runs: usize = ck.processes.iter().map(|p| p.pages.len()).sum();
            let mut v = raw_section_view(img, kind, "runs", runs);
            let pages: u64 = ck
                .processes
                .iter()
                .flat_map(|p| &p.pages)
                .map(|r| r.pages)
                .sum();
            if let Value::Object(m) = &mut v {
                m.insert("pages".into(), pages.into());
            }
            v
        }
        SectionKind::Files => Value::Array(
            ck.files
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    let mut x = to_value(f);
                    view::hexify_bytes(&mut x);
                    with_pid_key("id", i as u64, x)
                })
                .collect(),
        ),
        SectionKind::FileData => raw_section_view(img, kind, "files", ck.files.len()),
        SectionKind::Fds => per_proc(&|p| {
            p.fds
                .iter()
                .map(|f| {
                    let mut x = to_value(f);
                    view::hexify_bytes(&mut x);
                    with_pid(p.pid, x)
                })
                .collect()
        }),
        SectionKind::Signals => per_proc(&|p| vec![signals_view(p)]),
        SectionKind::Epoll => per_proc(&|p| {
            p.fds
                .iter()
                .filter_map(|f| match &f.kind {
                    FdKind::Epoll { watches } => Some(with_pid(
                        p.pid,
                        json!({ "fd": f.fd, "watches": to_value(watches) }),
                    )),
                    _ => None,
                })
                .collect()
        }),
        SectionKind::EventFds => per_proc(&|p| {
            p.fds
                .iter()
                .filter_map(|f| {
                    let state = match &f.kind {
                        FdKind::EventFd { count, semaphore } => {
                            json!({ "eventfd": { "count": count, "semaphore": semaphore } })
                        }
                        FdKind::TimerFd(t) => json!({ "timerfd": to_value(t) }),
                        FdKind::SignalFd { mask } => {
                            json!({ "signalfd": { "mask": format!("{mask:#x}") } })
                        }
                        FdKind::Inotify { watches } => {
                            json!({ "inotify": { "watches": to_value(watches) } })
                        }
                        _ => return None,
                    };
                    Some(with_pid(p.pid, json!({ "fd": f.fd, "state": state })))
                })
                .collect()
        }),
        // A group belongs to every process with an fd in it for `--pid`.
        SectionKind::FdShares => Value::Array(
            ck.fd_shares
                .iter()
                .filter(|s| pid.map_or(true, |x| s.fds.iter().any(|f| f.pid == x)))
                .map(|s| json!({ "fds": to_value(&s.fds) }))
                .collect(),
        ),
        // A zombie belongs to its parent for `--pid`.
        SectionKind::Zombies => Value::Array(
            ck.zombies
                .iter()
                .filter(|z| pid.map_or(true, |x| x == z.ppid))
                .map(|z| {
                    let mut v = to_value(z);
                    if let Value::Object(m) = &mut v {
                        m.insert("status_text".into(), z.status.to_string().into());
                        m.insert("wait_status".into(), z.status.wait_status().into());
                    }
                    v
                })
                .collect(),
        ),
        SectionKind::Aio => per_proc(&|p| {
            p.aio
                .iter()
                .map(|a| {
                    with_pid(
                        p.pid,
                        json!({
                            "context": format!("{:#x}", a.ring),
                            "ring_len": a.ring_len,
                            "nr_events": a.nr_events,
                            "head": a.head,
                            "tail": a.tail,
                            "completed_events": hex::encode(&a.events),
                        }),
                    )
                })
                .collect()
        }),
        SectionKind::SharedMemory => Value::Array(
            ck.shared_memory
                .iter()
                .enumerate()
                .map(|(i, o)| {
                    json!({
                        "id": i,
                        "kind": to_value(&o.kind),
                        "dev": o.dev,
                        "ino": o.ino,
                        "size": o.size,
                        "pages": o.pages.iter().map(|r| json!({
                            "offset": format!("{:#x}", r.addr),
                            "pages": r.pages,
                            "data_offset": r.data_offset,
                        })).collect::<Vec<_>>(),
                        "mappings": o.mappings.iter().map(|m| json!({
                            "pid": m.pid,
                            "start": format!("{:#x}", m.start),
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect(),
        ),
        // A segment belongs to every process attaching it for `--pid`.
        SectionKind::SysvShm => Value::Array(
            ck.sysv_shm
                .iter()
                .filter(|s| pid.map_or(true, |x| s.attachments.iter().any(|a| a.pid == x)))
                .map(|s| {
                    json!({
                        "key": format!("{:#010x}", s.key),
                        "shmid": s.shmid,
                        "mode": format!("{:#o}", s.mode),
                        "uid": s.uid,
                        "gid": s.gid,
                        "cuid": s.cuid,
                        "cgid": s.cgid,
                        "size": s.size,
                        "removed": s.removed,
                        "locked": s.locked,
                        "pages": s.pages.iter().map(|r| json!({
                            "offset": format!("{:#x}", r.addr),
                            "pages": r.pages,
                            "data_offset": r.data_offset,
                        })).collect::<Vec<_>>(),
                        "attachments": s.attachments.iter().map(|a| json!({
                            "pid": a.pid,
                            "start": format!("{:#x}", a.start),
                            "read_only": a.read_only,
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect(),
        ),
        // A pair belongs to every process with an fd on it for `--pid`.
        SectionKind::Ttys => Value::Array(
            ck.ptys
                .iter()
                .filter(|t| {
                    pid.map_or(true, |x| {
                        t.masters.iter().chain(&t.slaves).any(|f| f.pid == x)
                    })
                })
                .map(|t| {
                    json!({
                        "index": t.index,
                        "locked": t.locked,
                        "packet": t.packet,
                        "termios": hex::encode(&t.termios),
                        "winsize": hex::encode(&t.winsize),
                        "masters": to_value(&t.masters),
                        "slaves": to_value(&t.slaves),
                        "session": t.session,
                        "foreground": t.foreground,
                    })
                })
                .collect(),
        ),
        SectionKind::InetSockets => per_proc(&|p| {
            p.fds
                .iter()
                .filter_map(|f| match &f.kind {
                    FdKind::InetSocket(s) => Some(with_pid(
                        p.pid,
                        json!({ "fd": f.fd, "socket": to_value(s) }),
                    )),
                    _ => None,
                })
                .collect()
        }),
        SectionKind::UnixSockets => per_proc(&|p| {
            p.fds
                .iter()
                .filter_map(|f| match &f.kind {
                    FdKind::Socket {
                        sock_type,
                        ino,
                        unix: Some(u),
                        ..
                    } => Some(with_pid(
                        p.pid,
                        json!({
                            "fd": f.fd,
                            "ino": ino,
                            "type": crate::info::unix_type(*sock_type),
                            "state": u.state,
                            "peer_ino": u.peer_ino,
                            "name": crate::info::unix_name(&u.name),
                            "file": u.file.map(|x| json!({
                                "mode": format!("{:o}", x.mode), "uid": x.uid, "gid": x.gid,
                            })),
                            "backlog": u.backlog,
                            "shutdown": u.shutdown,
                            "passcred": u.passcred,
                            "rcvbuf": u.rcvbuf,
                            "sndbuf": u.sndbuf,
                            "queued": u.queued.iter().map(hex::encode).collect::<Vec<_>>(),
                        }),
                    )),
                    _ => None,
                })
                .collect()
        }),
        SectionKind::UnixPeers => Value::Array(
            ck.unix_peers
                .iter()
                .map(|u| {
                    json!({
                        "ino": u.ino,
                        "peer_ino": u.peer_ino,
                        "name": String::from_utf8_lossy(&u.name).replace('\0', "@"),
                    })
                })
                .collect(),
        ),
        SectionKind::Parent => match &ck.parent {
            Some(par) => json!({
                "digest": psnc_format::chain::hex(&par.digest),
                "path": par.path,
                "pages": par.pages.iter().filter(|r| pid.map_or(true, |x| x == r.pid)).map(|r| json!({
                    "pid": r.pid,
                    "addr": r.addr,
                    "pages": r.pages,
                })).collect::<Vec<_>>(),
                "files": par.files.iter().map(|f| f.0).collect::<Vec<_>>(),
            }),
            None => Value::Null,
        },
        SectionKind::ChunkDigests => Value::Array(
            [SectionKind::PageData, SectionKind::FileData]
                .into_iter()
                .filter_map(|k| {
                    let c = img.chunk_digests(k)?;
                    Some(json!({
                        "section": kind_name(c.section_kind),
                        "chunk_size": c.chunk_size,
                        "digests": c.digests.iter().map(hex::encode).collect::<Vec<_>>(),
                    }))
                })
                .collect(),
        ),
    }
}

/// Checks that `pid`, when given, is a process of the image.
pub fn check_pid(img: &Image, image: &str, pid: Option<u32>) -> Result<()> {
    let procs = &img.checkpoint().processes;
    match pid {
        Some(p) if !procs.iter().any(|x| x.pid == p) => Err(Error::NoSuchPid {
            image: image.into(),
            pid: p,
            available: procs.iter().map(|x| x.pid).collect(),
        }),
        _ => Ok(()),
    }
}

/// The whole dump (or one section) as JSON.
pub fn dump_value(img: &Image, section: Option<SectionKind>, pid: Option<u32>) -> Value {
    let mut m = Map::new();
    let table = table_view(img);
    match section {
        None => {
            m.insert("header".into(), header_view(img));
            m.insert("sections".into(), table);
            for k in display_order() {
                m.insert(k.name().into(), section_view(img, k, pid));
            }
        }
        Some(k) => {
            let rows = table.as_array().map_or_else(Vec::new, |t| {
                t.iter()
                    .filter(|e| e["kind"] == k.number())
                    .cloned()
                    .collect()
            });
            m.insert("sections".into(), Value::Array(rows));
            m.insert(k.name().into(), section_view(img, k, pid));
        }
    }
    Value::Object(m)
}

fn table_text(img: &Image, only: Option<SectionKind>) -> String {
    let mut t = Table::new();
    t.set_format(*format::consts::FORMAT_NO_LINESEP_WITH_TITLE);
    t.set_titles(row![
        "#", "kind", "ver", "flags", "offset", "length", "sha256", "status"
    ]);
    for (i, e) in img.sections().iter().enumerate() {
        if only.is_some_and(|k| k.number() != e.kind) {
            continue;
        }
        t.add_row(row![
            i,
            kind_name(e.kind),
            e.version,
            flag_names(e.flags),
            format!("{:#x}", e.offset),
            e.length,
            hex::encode(&e.sha256[..8]) + "…",
            section_status(e.kind, e.version)
        ]);
    }
    t.to_string()
}

/// Hides the default (SIG_DFL, no flags) signal actions of a signals view, for the text dump.
fn drop_default_actions(v: &mut Value) {
    let default = to_value(&SigAction::default());
    let Some(list) = v.as_array_mut() else { return };
    for s in list {
        let Some(Value::Array(actions)) = s.get_mut("actions") else {
            continue;
        };
        let total = actions.len();
        actions.retain(|a| {
            let mut a = a.clone();
            if let Value::Object(m) = &mut a {
                m.shift_remove("signo");
            }
            a != default
        });
        let note = format!(
            "{} of {total} are SIG_DFL with no flags (not shown)",
            total - actions.len()
        );
        if let Value::Object(m) = s {
            // Put the note just before the actions it describes.
            let old = std::mem::take(m);
            for (k, x) in old {
                if k == "actions" {
                    m.insert("default_actions".into(), note.clone().into());
                }
                m.insert(k, x);
            }
        }
    }
}

/// The whole dump (or one section) as text.
pub fn dump_text(img: &Image, section: Option<SectionKind>, pid: Option<u32>) -> String {
    let mut out = String::new();
    if section.is_none() {
        out.push_str("== header ==\n");
        view::render_text(&header_view(img), &mut out);
    }
    out.push_str("== section table ==\n");
    out.push_str(&table_text(img, section));
    let kinds: Vec<SectionKind> = section.map_or_else(|| display_order().to_vec(), |k| vec![k]);
    for k in kinds {
        out.push_str(&format!("== {} ==\n", k.name()));
        let mut v = section_view(img, k, pid);
        if k == SectionKind::Signals {
            drop_default_actions(&mut v);
        }
        match &v {
            Value::Array(a) if a.is_empty() => out.push_str("(empty)\n"),
            _ => view::render_text(&v, &mut out),
        }
    }
    out
}

/// One piece of a hex dump's range.
#[derive(Debug, Clone, Serialize)]
pub struct SegmentInfo {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// Whether the image stores these bytes.
    pub stored: bool,
    /// Why not, when not stored.
    pub why: Option<String>,
    /// The VMA holding the segment.
    pub vma: Option<String>,
    /// The bytes as hex, when stored.
    pub hex: Option<String>,
}

/// A hex dump of stored memory.
#[derive(Debug, Clone, Serialize)]
pub struct AddrDump {
    /// The process.
    pub pid: u32,
    /// First address.
    pub addr: u64,
    /// Number of bytes.
    pub len: u64,
    /// The range split into stored and missing pieces.
    pub segments: Vec<SegmentInfo>,
    /// The bytes, `None` where nothing is stored.
    #[serde(skip)]
    pub bytes: Vec<Option<u8>>,
}

/// Reads `[addr, addr + len)` of the first (or `pid`'s) process.
pub fn addr_dump(
    img: &Image,
    image: &str,
    pid: Option<u32>,
    addr: u64,
    len: u64,
) -> Result<AddrDump> {
    if len > MAX_DUMP_LEN {
        return Err(Error::DumpTooLong {
            len,
            max: MAX_DUMP_LEN,
        });
    }
    let mem = ProcessMemory::new(img, image, pid)?;
    let end = addr
        .checked_add(len)
        .ok_or(Error::AddressOverflow { addr, len })?;
    let segments = mem
        .segments(addr, end)?
        .into_iter()
        .map(|s| {
            let vma = mem.vma_at(s.start()).map(describe_vma);
            match s {
                Segment::Stored { start, bytes } => SegmentInfo {
                    start,
                    end: start + bytes.len() as u64,
                    stored: true,
                    why: None,
                    vma,
                    hex: Some(hex::encode(bytes)),
                },
                Segment::Missing { start, end, why } => SegmentInfo {
                    start,
                    end,
                    stored: false,
                    why: Some(why.to_string()),
                    vma,
                    hex: None,
                },
            }
        })
        .collect();
    let bytes = mem.read(addr, len)?;
    Ok(AddrDump {
        pid: mem.process.pid,
        addr,
        len,
        segments,
        bytes,
    })
}

impl AddrDump {
    /// The dump as text: the pieces of the range, then the bytes, `--` where nothing is stored.
    pub fn render(&self) -> String {
        let mut out = format!(
            "pid {}, {:#x}..{:#x} ({} bytes)\n",
            self.pid,
            self.addr,
            self.addr + self.len,
            self.len
        );
        for s in &self.segments {
            let what = s.why.as_deref().unwrap_or("stored");
            let vma = s
                .vma
                .as_deref()
                .map_or_else(String::new, |v| format!("  [vma {v}]"));
            out.push_str(&format!("; {:#x}-{:#x} {what}{vma}\n", s.start, s.end));
        }
        out.push_str(&hexdump(self.addr, &self.bytes));
        out
    }
}

/// Searches the stored memory of `pid`'s process, or of every process.
pub fn search(
    img: &Image,
    image: &str,
    pid: Option<u32>,
    needle: &[u8],
    max_hits: usize,
) -> Result<Vec<Hit>> {
    if needle.is_empty() {
        return Err(Error::EmptyPattern);
    }
    let procs: Vec<&Process> = match pid {
        Some(_) => vec![ProcessMemory::new(img, image, pid)?.process],
        None => img.checkpoint().processes.iter().collect(),
    };
    let mut hits = Vec::new();
    for p in procs {
        if hits.len() >= max_hits {
            break;
        }
        let mem = ProcessMemory::of(img, p);
        hits.extend(mem.search(needle, max_hits - hits.len(), SEARCH_CONTEXT)?);
    }
    Ok(hits)
}

/// Parses `--search-hex`: hex digits, optionally separated by spaces, colons or a `0x` prefix.
pub fn parse_hex_pattern(text: &str) -> Result<Vec<u8>> {
    let t = text.trim();
    let t = t.strip_prefix("0x").unwrap_or(t);
    let digits: String = t
        .chars()
        .filter(|c| !matches!(c, ' ' | ':' | '_' | '\t'))
        .collect();
    let bytes = hex::decode(&digits).map_err(|e| Error::BadHex {
        text: text.into(),
        why: e.to_string(),
    })?;
    if bytes.is_empty() {
        return Err(Error::EmptyPattern);
    }
    Ok(bytes)
}

/// Search hits as text: one line per hit with its VMA, then the context.
pub fn render_hits(hits: &[Hit], needle: &[u8], max_hits: usize) -> String {
    let mut out = String::new();
    for h in hits {
        let vma = h.vma.as_deref().unwrap_or("no vma");
        out.push_str(&format!("pid {} {:#x} in {vma}\n", h.pid, h.addr));
        out.push_str(&format!(
            "  {:#x}: {}  |{}|\n",
            h.context_start, h.context_hex, h.context_ascii
        ));
    }
    let shown = hex_with_gaps(&needle.iter().map(|b| Some(*b)).collect::<Vec<_>>());
    out.push_str(&format!("{} hit(s) for {shown}", hits.len()));
    if hits.len() >= max_hits {
        out.push_str(&format!(" (stopped at --max-hits {max_hits})"));
    }
    out.push('\n');
    out
}
