//! `diff`: what differs between two images, field by field and page by page.
//!
//! Fields: both models become [`crate::view`] values (named registers, bytes as hex) and are
//! walked together; each difference is reported with a readable path such as
//! `processes[0].threads[1].regs.rip`. Objects are matched by key, arrays by index. Where the
//! bytes are stored is not compared (`processes[*].pages`, `files[*].data_offset`): two images of
//! the same checkpoint may lay their data out differently, or be of different layout classes.
//!
//! Memory: the stored pages of `processes[i]` of both images are merged by address; a page
//! stored in both with different bytes, or stored in only one image, is a difference. Adjacent
//! differing pages are reported as one range with page and byte counts.
//!
//! `--ignore` rules: `identity` (the whole identity section: creation time, tool version, host,
//! capturing user and command line), `memory` (skip the page comparison), a field name (`ppid`,
//! `itimers`, `created_ns`: that key wherever it occurs), or a path (`processes[*].threads[0].regs`:
//! that subtree; `[*]` matches any index), `rseq` (the bytes the kernel rewrites in each thread's
//! registered rseq area on every return to user space: `cpu_id_start`, `cpu_id`, `node_id`,
//! `mm_cid`; they tell on which CPU the thread last ran, so two captures of one process differ
//! there whenever it moved between CPUs).

use psnc_format::model::Checkpoint;
use psnc_format::Image;
use serde::Serialize;
use serde_json::Value;

use crate::memory::{describe_vma, ProcessMemory};
use crate::progress::Progress;
use crate::view::{self, fmt_scalar, BYTE_KEYS};
use crate::{Error, Result};

const PAGE: u64 = 4096;
/// Extra array elements listed one by one before the rest is summarized.
const MAX_EXTRA_ITEMS: usize = 10;
/// Memory ranges listed per process in the text output.
pub const MAX_RANGES_SHOWN: usize = 50;

/// One component of an `--ignore` path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatternPart {
    /// An object key.
    Key(String),
    /// One array index.
    Index(usize),
    /// `[*]`: any array index.
    AnyIndex,
}

/// What `--ignore` leaves out of the comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IgnoreRule {
    /// A key wherever it occurs.
    Key(String),
    /// One subtree, by path.
    Path(Vec<PatternPart>),
    /// The page-by-page memory comparison.
    Memory,
    /// The kernel-maintained fields of every registered rseq area.
    Rseq,
}

/// The rule `--ignore` without a value means: the identity section.
pub const DEFAULT_IGNORE: &str = "identity";

/// Parses one `--ignore` value.
pub fn parse_ignore(s: &str) -> Result<IgnoreRule> {
    let bad = |why| Error::BadIgnore {
        pattern: s.into(),
        why,
    };
    match s {
        "" => return Err(bad("empty")),
        "memory" => return Ok(IgnoreRule::Memory),
        "rseq" => return Ok(IgnoreRule::Rseq),
        "identity" => return Ok(IgnoreRule::Path(vec![PatternPart::Key("identity".into())])),
        _ => {}
    }
    if !s.contains(['.', '[']) {
        return Ok(IgnoreRule::Key(s.into()));
    }
    let mut parts = Vec::new();
    for piece in s.split('.') {
        let (key, mut rest) = match piece.find('[') {
            Some(i) => (&piece[..i], &piece[i..]),
            None => (piece, ""),
        };
        if key.is_empty() && parts.is_empty() {
            return Err(bad("a path starts with a field name"));
        }
        if !key.is_empty() {
            parts.push(PatternPart::Key(key.into()));
        } else if rest.is_empty() {
            return Err(bad("empty component between dots"));
        }
        while !rest.is_empty() {
            let Some(close) = rest.find(']') else {
                return Err(bad("unclosed ["));
            };
            if !rest.starts_with('[') {
                return Err(bad("text after ]"));
            }
            let inner = &rest[1..close];
            parts.push(if inner == "*" {
                PatternPart::AnyIndex
            } else {
                PatternPart::Index(
                    inner
                        .parse()
                        .map_err(|_| bad("an index is a number or *"))?,
                )
            });
            rest = &rest[close + 1..];
        }
    }
    Ok(IgnoreRule::Path(parts))
}

/// Options of a comparison.
#[derive(Debug, Clone, Default)]
pub struct DiffOptions {
    /// What to leave out.
    pub ignore: Vec<IgnoreRule>,
}

impl DiffOptions {
    /// Options from `--ignore` values (each may hold several comma-separated rules).
    pub fn from_args<S: AsRef<str>>(values: &[S]) -> Result<Self> {
        let mut ignore = Vec::new();
        for v in values {
            for s in v.as_ref().split(',') {
                ignore.push(parse_ignore(s.trim())?);
            }
        }
        Ok(DiffOptions { ignore })
    }

    fn memory(&self) -> bool {
        !self.ignore.contains(&IgnoreRule::Memory)
    }

    fn rseq(&self) -> bool {
        self.ignore.contains(&IgnoreRule::Rseq)
    }
}

#[derive(Debug, Clone)]
enum Comp {
    Key(String),
    Index(usize),
}

fn path_string(path: &[Comp]) -> String {
    let mut s = String::new();
    for c in path {
        match c {
            Comp::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Comp::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

fn rule_matches(rule: &IgnoreRule, path: &[Comp]) -> bool {
    match rule {
        IgnoreRule::Memory | IgnoreRule::Rseq => false,
        IgnoreRule::Key(k) => matches!(path.last(), Some(Comp::Key(x)) if x == k),
        IgnoreRule::Path(pat) => {
            pat.len() == path.len()
                && pat.iter().zip(path).all(|(p, c)| match (p, c) {
                    (PatternPart::Key(a), Comp::Key(b)) => a == b,
                    (PatternPart::Index(a), Comp::Index(b)) => a == b,
                    (PatternPart::AnyIndex, Comp::Index(_)) => true,
                    _ => false,
                })
        }
    }
}

/// One field that differs.
#[derive(Debug, Clone, Serialize)]
pub struct FieldDiff {
    /// Where, e.g. `processes[0].threads[1].regs.rip`.
    pub path: String,
    /// The value in A (`None`: absent).
    pub a: Option<String>,
    /// The value in B (`None`: absent).
    pub b: Option<String>,
    /// The change in words: `0x401000 -> 0x401005`, or a summary for byte buffers.
    pub detail: String,
}

/// How a range of pages differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum MemChange {
    /// Stored in both, bytes differ.
    Bytes {
        /// Differing bytes in the range.
        count: u64,
        /// First differing address.
        first: u64,
        /// Its byte in A.
        a: u8,
        /// Its byte in B.
        b: u8,
    },
    /// Stored only in A.
    OnlyInA,
    /// Stored only in B.
    OnlyInB,
}

/// Adjacent pages that differ the same way.
#[derive(Debug, Clone, Serialize)]
pub struct MemRange {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// How.
    pub change: MemChange,
    /// The VMA at `start` (from A, or B when A has none).
    pub vma: Option<String>,
}

/// The memory differences of one pair of processes.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryDiff {
    /// Index of the processes in both images.
    pub index: usize,
    /// Pid in A.
    pub pid_a: u32,
    /// Pid in B.
    pub pid_b: u32,
    /// Pages stored in both with different bytes.
    pub pages_differ: u64,
    /// Differing bytes in those pages.
    pub bytes_differ: u64,
    /// Pages stored only in A.
    pub pages_only_a: u64,
    /// Pages stored only in B.
    pub pages_only_b: u64,
    /// The differing ranges, in address order.
    pub ranges: Vec<MemRange>,
}

/// Everything `diff` found.
#[derive(Debug, Clone, Serialize)]
pub struct DiffReport {
    /// Differences that are not differences of the checkpoint (layout class, format version).
    pub notes: Vec<String>,
    /// Field differences, in model order.
    pub fields: Vec<FieldDiff>,
    /// Memory differences of each process pair that has any.
    pub memory: Vec<MemoryDiff>,
}

impl DiffReport {
    /// True when the checkpoints are equal (under the ignore rules).
    pub fn is_equal(&self) -> bool {
        self.fields.is_empty() && self.memory.is_empty()
    }

    /// The report as text, one line per difference; empty when equal.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for n in &self.notes {
            out.push_str(&format!("# {n}\n"));
        }
        for f in &self.fields {
            out.push_str(&format!("{}: {}\n", f.path, f.detail));
        }
        for m in &self.memory {
            let pid = if m.pid_a == m.pid_b {
                format!("pid {}", m.pid_a)
            } else {
                format!("pid {} / {}", m.pid_a, m.pid_b)
            };
            out.push_str(&format!(
                "memory of processes[{}] ({pid}): {} with other bytes ({}), {} only in A, {} only in B\n",
                m.index,
                plural(m.pages_differ, "page"),
                plural(m.bytes_differ, "byte"),
                plural(m.pages_only_a, "page"),
                plural(m.pages_only_b, "page"),
            ));
            for r in m.ranges.iter().take(MAX_RANGES_SHOWN) {
                let what = match &r.change {
                    MemChange::Bytes { count, first, a, b } => {
                        let verb = if *count == 1 { "differs" } else { "differ" };
                        format!(
                            "{} {verb}, first at {first:#x}: {a:#04x} -> {b:#04x}",
                            plural(*count, "byte")
                        )
                    }
                    MemChange::OnlyInA => "stored only in A".into(),
                    MemChange::OnlyInB => "stored only in B".into(),
                };
                let vma = r
                    .vma
                    .as_deref()
                    .map_or_else(String::new, |v| format!("  [vma {v}]"));
                out.push_str(&format!(
                    "  {:#x}-{:#x} ({}): {what}{vma}\n",
                    r.start,
                    r.end,
                    plural((r.end - r.start) / PAGE, "page")
                ));
            }
            if m.ranges.len() > MAX_RANGES_SHOWN {
                out.push_str(&format!(
                    "  ... and {} more ranges (--json lists all)\n",
                    m.ranges.len() - MAX_RANGES_SHOWN
                ));
            }
        }
        out
    }
}

fn plural(n: u64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

struct Walker<'o> {
    opts: &'o DiffOptions,
    out: Vec<FieldDiff>,
}

/// Rules that always apply: where bytes are stored is layout, not content.
fn builtin_skip(path: &[Comp]) -> bool {
    let k = |i: usize, s: &str| matches!(path.get(i), Some(Comp::Key(x)) if x == s);
    path.len() == 3
        && ((k(0, "processes") && k(2, "pages")) || (k(0, "files") && k(2, "data_offset")))
}

fn summarize(key: &str, v: &Value) -> String {
    fmt_scalar(key, v)
}

impl Walker<'_> {
    fn ignored(&self, path: &[Comp]) -> bool {
        builtin_skip(path) || self.opts.ignore.iter().any(|r| rule_matches(r, path))
    }

    fn key_of(path: &[Comp]) -> &str {
        path.iter()
            .rev()
            .find_map(|c| match c {
                Comp::Key(k) => Some(k.as_str()),
                Comp::Index(_) => None,
            })
            .unwrap_or("")
    }

    fn push(&mut self, path: &[Comp], a: Option<String>, b: Option<String>, detail: String) {
        self.out.push(FieldDiff {
            path: path_string(path),
            a,
            b,
            detail,
        });
    }

    fn changed(&mut self, path: &[Comp], a: Option<&Value>, b: Option<&Value>) {
        let key = Self::key_of(path);
        let a = a.map(|v| summarize(key, v));
        let b = b.map(|v| summarize(key, v));
        let detail = format!(
            "{} -> {}",
            a.as_deref().unwrap_or("(absent)"),
            b.as_deref().unwrap_or("(absent)")
        );
        self.push(path, a, b, detail);
    }

    fn bytes_changed(&mut self, path: &[Comp], a: &[u8], b: &[u8]) {
        let differ = a.iter().zip(b).filter(|(x, y)| x != y).count() + a.len().abs_diff(b.len());
        let first = a.iter().zip(b).position(|(x, y)| x != y);
        let mut detail = if a.len() == b.len() {
            format!("{differ} of {} bytes differ", a.len())
        } else {
            format!("{} bytes -> {} bytes", a.len(), b.len())
        };
        if let Some(i) = first {
            detail.push_str(&format!(
                ", first at offset {i:#x}: {:#04x} -> {:#04x}",
                a[i], b[i]
            ));
        }
        self.push(path, Some(hex::encode(a)), Some(hex::encode(b)), detail);
    }

    fn walk(&mut self, path: &mut Vec<Comp>, a: &Value, b: &Value) {
        if self.ignored(path) {
            return;
        }
        match (a, b) {
            // A different enum variant (`{"Pipe": ..}` vs `{"Regular": ..}`) or register layout is
            // one change, not a list of fields present on one side only.
            (Value::Object(ma), Value::Object(mb)) if is_other_variant(ma, mb) => {
                self.changed(path, Some(a), Some(b))
            }
            (Value::Object(ma), Value::Object(mb)) => {
                for (k, va) in ma {
                    path.push(Comp::Key(k.clone()));
                    match mb.get(k) {
                        Some(vb) => self.walk(path, va, vb),
                        None if !self.ignored(path) => self.changed(path, Some(va), None),
                        None => {}
                    }
                    path.pop();
                }
                for (k, vb) in mb.iter().filter(|(k, _)| !ma.contains_key(*k)) {
                    path.push(Comp::Key(k.clone()));
                    if !self.ignored(path) {
                        self.changed(path, None, Some(vb));
                    }
                    path.pop();
                }
            }
            (Value::Array(xa), Value::Array(xb)) => {
                for (i, (va, vb)) in xa.iter().zip(xb).enumerate() {
                    path.push(Comp::Index(i));
                    self.walk(path, va, vb);
                    path.pop();
                }
                if xa.len() != xb.len() {
                    let detail = format!(
                        "{} -> {}",
                        plural(xa.len() as u64, "item"),
                        plural(xb.len() as u64, "item")
                    );
                    self.push(
                        path,
                        Some(xa.len().to_string()),
                        Some(xb.len().to_string()),
                        detail,
                    );
                    let (longer, a_longer) = if xa.len() > xb.len() {
                        (xa, true)
                    } else {
                        (xb, false)
                    };
                    let common = xa.len().min(xb.len());
                    for (i, v) in longer.iter().enumerate().skip(common).take(MAX_EXTRA_ITEMS) {
                        path.push(Comp::Index(i));
                        if a_longer {
                            self.changed(path, Some(v), None);
                        } else {
                            self.changed(path, None, Some(v));
                        }
                        path.pop();
                    }
                    let extra = longer.len() - common;
                    if extra > MAX_EXTRA_ITEMS {
                        let detail = format!(
                            "... and {} more items only in {}",
                            extra - MAX_EXTRA_ITEMS,
                            if a_longer { "A" } else { "B" }
                        );
                        self.push(path, None, None, detail);
                    }
                }
            }
            (Value::String(sa), Value::String(sb))
                if sa != sb && BYTE_KEYS.contains(&Self::key_of(path)) =>
            {
                match (hex::decode(sa), hex::decode(sb)) {
                    (Ok(x), Ok(y)) => self.bytes_changed(path, &x, &y),
                    _ => self.changed(path, Some(a), Some(b)),
                }
            }
            _ if a != b => self.changed(path, Some(a), Some(b)),
            _ => {}
        }
    }
}

fn is_other_variant(
    a: &serde_json::Map<String, Value>,
    b: &serde_json::Map<String, Value>,
) -> bool {
    let single_key = a.len() == 1 && b.len() == 1 && a.keys().next() != b.keys().next();
    let other_layout = matches!((a.get("layout"), b.get("layout")), (Some(x), Some(y)) if x != y);
    single_key || other_layout
}

/// Compares two models field by field.
pub fn diff_models(a: &Checkpoint, b: &Checkpoint, opts: &DiffOptions) -> Vec<FieldDiff> {
    let mut w = Walker {
        opts,
        out: Vec::new(),
    };
    w.walk(
        &mut Vec::new(),
        &view::checkpoint_view(a),
        &view::checkpoint_view(b),
    );
    w.out
}

struct RangeAcc {
    ranges: Vec<MemRange>,
    cur: Option<MemRange>,
}

impl RangeAcc {
    fn same_kind(x: &MemChange, y: &MemChange) -> bool {
        std::mem::discriminant(x) == std::mem::discriminant(y)
    }

    fn add(&mut self, addr: u64, change: MemChange, vma: impl FnOnce() -> Option<String>) {
        if let Some(cur) = &mut self.cur {
            if cur.end == addr && Self::same_kind(&cur.change, &change) {
                cur.end += PAGE;
                if let (MemChange::Bytes { count, .. }, MemChange::Bytes { count: more, .. }) =
                    (&mut cur.change, &change)
                {
                    *count += more;
                }
                return;
            }
        }
        self.flush();
        self.cur = Some(MemRange {
            start: addr,
            end: addr + PAGE,
            change,
            vma: vma(),
        });
    }

    fn flush(&mut self) {
        if let Some(r) = self.cur.take() {
            self.ranges.push(r);
        }
    }
}

/// Stored runs as `(address, page bytes)` pairs, one per page.
fn split_pages(runs: Vec<(u64, &[u8])>) -> Vec<(u64, &[u8])> {
    runs.into_iter()
        .flat_map(|(addr, bytes)| {
            bytes
                .chunks(PAGE as usize)
                .enumerate()
                .map(move |(i, c)| (addr + i as u64 * PAGE, c))
        })
        .collect()
}

/// Byte ranges `[start, end)` of the kernel-written fields of every thread's rseq area
/// (`struct rseq`: cpu_id_start and cpu_id at 0..8, node_id and mm_cid at 20..28).
pub fn rseq_masks(processes: &[&psnc_format::model::Process]) -> Vec<(u64, u64)> {
    let mut m: Vec<(u64, u64)> = processes
        .iter()
        .flat_map(|p| p.threads.iter())
        .filter_map(|t| t.rseq.as_ref())
        .flat_map(|r| [(r.addr, r.addr + 8), (r.addr + 20, r.addr + 28)])
        .collect();
    m.sort_unstable();
    m.dedup();
    m
}

/// Copies of two pages with the masked bytes cleared, or `None` when no mask touches the page.
fn masked(addr: u64, a: &[u8], b: &[u8], masks: &[(u64, u64)]) -> Option<(Vec<u8>, Vec<u8>)> {
    let end = addr + a.len() as u64;
    let hits: Vec<_> = masks
        .iter()
        .filter(|(s, e)| *s < end && *e > addr)
        .collect();
    if hits.is_empty() {
        return None;
    }
    let (mut a, mut b) = (a.to_vec(), b.to_vec());
    for (s, e) in hits {
        let from = s.saturating_sub(addr) as usize;
        let to = ((*e).min(end) - addr) as usize;
        a[from..to].fill(0);
        b[from..to].fill(0);
    }
    Some((a, b))
}

/// Compares the stored pages of two processes, page by page at equal addresses; bytes inside
/// `masks` are not compared.
pub fn diff_memory(
    a: &ProcessMemory<'_>,
    b: &ProcessMemory<'_>,
    index: usize,
    masks: &[(u64, u64)],
    progress: &Progress,
) -> Result<MemoryDiff> {
    let ra = a.runs()?;
    let rb = b.runs()?;
    let (pa, pb) = (split_pages(ra), split_pages(rb));
    let mut d = MemoryDiff {
        index,
        pid_a: a.process.pid,
        pid_b: b.process.pid,
        pages_differ: 0,
        bytes_differ: 0,
        pages_only_a: 0,
        pages_only_b: 0,
        ranges: Vec::new(),
    };
    let mut acc = RangeAcc {
        ranges: Vec::new(),
        cur: None,
    };
    let vma_of = |addr: u64| a.vma_at(addr).or_else(|| b.vma_at(addr)).map(describe_vma);
    let (mut i, mut j) = (0, 0);
    while i < pa.len() || j < pb.len() {
        let next_a = pa.get(i).map(|p| p.0);
        let next_b = pb.get(j).map(|p| p.0);
        match (next_a, next_b) {
            (Some(x), Some(y)) if x == y => {
                let cleared = masked(x, pa[i].1, pb[j].1, masks);
                let (ba, bb) = match &cleared {
                    Some((ca, cb)) => (&ca[..], &cb[..]),
                    None => (pa[i].1, pb[j].1),
                };
                if ba != bb {
                    let count = ba.iter().zip(bb).filter(|(p, q)| p != q).count() as u64;
                    let k = ba.iter().zip(bb).position(|(p, q)| p != q).unwrap_or(0);
                    d.pages_differ += 1;
                    d.bytes_differ += count;
                    let change = MemChange::Bytes {
                        count,
                        first: x + k as u64,
                        a: ba[k],
                        b: bb[k],
                    };
                    acc.add(x, change, || vma_of(x));
                } else {
                    acc.flush();
                }
                i += 1;
                j += 1;
                progress.inc(2 * PAGE);
            }
            (Some(x), y) if y.is_none_or_greater(x) => {
                d.pages_only_a += 1;
                acc.add(x, MemChange::OnlyInA, || vma_of(x));
                i += 1;
                progress.inc(PAGE);
            }
            (_, Some(y)) => {
                d.pages_only_b += 1;
                acc.add(y, MemChange::OnlyInB, || vma_of(y));
                j += 1;
                progress.inc(PAGE);
            }
            (Some(_), None) | (None, None) => break,
        }
    }
    acc.flush();
    d.ranges = acc.ranges;
    Ok(d)
}

trait NoneOrGreater {
    fn is_none_or_greater(&self, x: u64) -> bool;
}

impl NoneOrGreater for Option<u64> {
    fn is_none_or_greater(&self, x: u64) -> bool {
        self.map_or(true, |y| y > x)
    }
}

/// Compares two images: notes, fields, then memory (unless ignored).
pub fn diff_images(a: &Image, b: &Image, opts: &DiffOptions) -> Result<DiffReport> {
    let mut notes = Vec::new();
    if a.class() != b.class() {
        notes.push(format!(
            "layout classes differ ({} vs {}); the contents are compared",
            a.class(),
            b.class()
        ));
    }
    if a.version() != b.version() {
        let (x, y) = (a.version(), b.version());
        notes.push(format!(
            "format versions differ ({}.{} vs {}.{})",
            x.0, x.1, y.0, y.1
        ));
    }
    let fields = diff_models(a.checkpoint(), b.checkpoint(), opts);
    let mut memory = Vec::new();
    if opts.memory() {
        let total = (a.page_data().len() + b.page_data().len()) as u64;
        let progress = Progress::bytes(total, "comparing");
        for (i, (pa, pb)) in a
            .checkpoint()
            .processes
            .iter()
            .zip(&b.checkpoint().processes)
            .enumerate()
        {
            let masks = if opts.rseq() {
                rseq_masks(&[pa, pb])
            } else {
                Vec::new()
            };
            let d = diff_memory(
                &ProcessMemory::of(a, pa),
                &ProcessMemory::of(b, pb),
                i,
                &masks,
                &progress,
            )?;
            if !d.ranges.is_empty() {
                memory.push(d);
            }
        }
    }
    Ok(DiffReport {
        notes,
        fields,
        memory,
    })
}
