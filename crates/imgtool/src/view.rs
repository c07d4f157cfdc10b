//! The model as a `serde_json::Value` for people: what `dump` prints and `diff` walks.
//!
//! The model types derive `Serialize`, so the view starts from `serde_json::to_value` (complete by
//! construction: a field added to the model shows up here without touching this file) and then
//! makes three things readable:
//! - registers become an object of named registers (`regs.rip`, `regs.eip`), in kernel order;
//! - byte buffers (`xsave`, `sha256`, siginfo `raw`, pipe contents, `cmdline`) become hex strings;
//! - the auxiliary vector becomes `{type, name, value}` entries in the task's own word size.
//!
//! The text renderer prints the view as indented `key: value` lines, addresses in hex, modes in
//! octal, and creation times with their UTC date.

use psnc_format::model::{Arch, Checkpoint, Process, Regs, Thread};
use serde::Serialize;
use serde_json::{Map, Value};

/// x86_64 `user_regs_struct` field names in kernel order.
pub const X86_64_REGS: [&str; 27] = [
    "r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx", "rdx", "rsi",
    "rdi", "orig_rax", "rip", "cs", "eflags", "rsp", "ss", "fs_base", "gs_base", "ds", "es", "fs",
    "gs",
];
/// i386 `user_regs_struct` field names in kernel order.
pub const I386_REGS: [&str; 17] = [
    "ebx", "ecx", "edx", "esi", "edi", "ebp", "eax", "xds", "xes", "xfs", "xgs", "orig_eax", "eip",
    "xcs", "eflags", "esp", "xss",
];

/// Keys whose values are byte buffers, shown as hex strings (and compared byte by byte by diff).
pub const BYTE_KEYS: [&str; 6] = ["sha256", "xsave", "raw", "cmdline", "buffered", "auxv"];

/// Keys whose numbers are addresses, masks or flags: printed in hex.
const HEX_KEYS: &[&str] = &[
    "start",
    "end",
    "addr",
    "handler",
    "restorer",
    "fs_base",
    "gs_base",
    "clear_child_tid",
    "robust_list",
    "sp",
    "base_addr",
    "limit",
    "start_code",
    "end_code",
    "start_data",
    "end_data",
    "start_brk",
    "brk",
    "start_stack",
    "arg_start",
    "arg_end",
    "env_start",
    "env_end",
    "file_offset",
    "sigmask",
    "mask",
    "vm_flags",
    "xsave_features",
    "xstate_bv",
    "cap_inh",
    "cap_prm",
    "cap_eff",
    "cap_bnd",
    "cap_amb",
    "flags",
    "data_offset",
    "sigev_value",
    "value",
    "dev",
    "rdev",
    "securebits",
    "personality",
    "offset",
    "table_offset",
    "sig",
];

/// Keys whose numbers are permission bits: printed in octal.
const OCTAL_KEYS: &[&str] = &["mode", "umask"];

/// Serializes any model value; the model has no map with non-string keys, so this cannot fail in
/// practice, and if it ever did the dump shows the reason instead of aborting.
pub fn to_value<T: Serialize>(t: &T) -> Value {
    serde_json::to_value(t).unwrap_or_else(|e| Value::String(format!("<cannot serialize: {e}>")))
}

/// Named registers: `{"layout": "x86_64", "r15": .., .., "gs": ..}`.
pub fn regs_view(r: &Regs) -> Value {
    let mut m = Map::new();
    match r {
        Regs::X86_64(v) => {
            m.insert("layout".into(), "x86_64".into());
            for (n, x) in X86_64_REGS.iter().zip(v) {
                m.insert((*n).into(), (*x).into());
            }
        }
        Regs::I386(v) => {
            m.insert("layout".into(), "i386".into());
            for (n, x) in I386_REGS.iter().zip(v) {
                m.insert((*n).into(), (*x).into());
            }
        }
    }
    Value::Object(m)
}

/// The name of an auxv entry type (`AT_*`), if it is a common one.
pub fn auxv_name(t: u64) -> Option<&'static str> {
    Some(match t {
        0 => "AT_NULL",
        3 => "AT_PHDR",
        4 => "AT_PHENT",
        5 => "AT_PHNUM",
        6 => "AT_PAGESZ",
        7 => "AT_BASE",
        8 => "AT_FLAGS",
        9 => "AT_ENTRY",
        11 => "AT_UID",
        12 => "AT_EUID",
        13 => "AT_GID",
        14 => "AT_EGID",
        15 => "AT_PLATFORM",
        16 => "AT_HWCAP",
        17 => "AT_CLKTCK",
        23 => "AT_SECURE",
        24 => "AT_BASE_PLATFORM",
        25 => "AT_RANDOM",
        26 => "AT_HWCAP2",
        27 => "AT_RSEQ_FEATURE_SIZE",
        28 => "AT_RSEQ_ALIGN",
        31 => "AT_EXECFN",
        32 => "AT_SYSINFO",
        33 => "AT_SYSINFO_EHDR",
        51 => "AT_MINSIGSTKSZ",
        _ => return None,
    })
}

/// The auxv bytes as `{type, name, value}` entries (u64 pairs for x86_64, u32 pairs for i386);
/// a hex string when the length is not a whole number of pairs.
pub fn auxv_view(arch: Arch, auxv: &[u8]) -> Value {
    let w = match arch {
        Arch::X86_64 => 8,
        Arch::I386 => 4,
    };
    if auxv.len() % (2 * w) != 0 {
        return Value::String(hex::encode(auxv));
    }
    let word = |b: &[u8]| -> u64 {
        let mut x = [0u8; 8];
        x[..w].copy_from_slice(b);
        u64::from_le_bytes(x)
    };
    let entries = auxv
        .chunks_exact(2 * w)
        .map(|pair| {
            let t = word(&pair[..w]);
            let mut m = Map::new();
            m.insert("type".into(), t.into());
            m.insert("name".into(), auxv_name(t).map_or(Value::Null, Value::from));
            m.insert("value".into(), word(&pair[w..]).into());
            Value::Object(m)
        })
        .collect();
    Value::Array(entries)
}

/// Turns arrays of byte values under [`BYTE_KEYS`] into hex strings, everywhere below `v`.
pub fn hexify_bytes(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if BYTE_KEYS.contains(&k.as_str()) {
                    if let Some(bytes) = as_byte_array(x) {
                        *x = Value::String(hex::encode(bytes));
                        continue;
                    }
                }
                hexify_bytes(x);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(hexify_bytes),
        _ => {}
    }
}

fn as_byte_array(v: &Value) -> Option<Vec<u8>> {
    v.as_array()?
        .iter()
        .map(|x| x.as_u64().and_then(|n| u8::try_from(n).ok()))
        .collect()
}

/// One thread, readable (`arch` picks nothing here: the registers carry their own layout).
pub fn thread_view(t: &Thread) -> Value {
    let mut v = to_value(t);
    if let Value::Object(m) = &mut v {
        m.insert("regs".into(), regs_view(&t.regs));
    }
    hexify_bytes(&mut v);
    v
}

/// One process with everything below it (threads, VMAs, page runs, fds, signals).
pub fn process_view(p: &Process) -> Value {
    let mut v = to_value(p);
    if let Value::Object(m) = &mut v {
        m.insert("auxv".into(), auxv_view(p.arch, &p.auxv));
        m.insert(
            "threads".into(),
            Value::Array(p.threads.iter().map(thread_view).collect()),
        );
    }
    hexify_bytes(&mut v);
    v
}

/// The whole checkpoint.
pub fn checkpoint_view(ck: &Checkpoint) -> Value {
    let mut m = Map::new();
    let mut identity = to_value(&ck.identity);
    hexify_bytes(&mut identity);
    m.insert("identity".into(), identity);
    m.insert(
        "processes".into(),
        Value::Array(ck.processes.iter().map(process_view).collect()),
    );
    let mut files = to_value(&ck.files);
    hexify_bytes(&mut files);
    m.insert("files".into(), files);
    // Only when there are any, so views of images without zombies stay as they were.
    if !ck.zombies.is_empty() {
        m.insert("zombies".into(), to_value(&ck.zombies));
    }
    Value::Object(m)
}

/// `YYYY-MM-DDTHH:MM:SSZ` for nanoseconds since the epoch (proleptic Gregorian, UTC).
pub fn utc_time(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days_from_civil inverse.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Formats a scalar under `key` the way people read it: addresses hex, modes octal, times dated.
pub fn fmt_scalar(key: &str, v: &Value) -> String {
    match v {
        Value::Number(n) => match n.as_u64() {
            Some(u64::MAX) if key == "cur" || key == "max" => "unlimited".into(),
            Some(x) if key == "prot" => format!(
                "{x} ({}{}{})",
                rwx(x, 1, 'r'),
                rwx(x, 2, 'w'),
                rwx(x, 4, 'x')
            ),
            Some(x) if HEX_KEYS.contains(&key) || is_register(key) => format!("{x:#x}"),
            Some(x) if OCTAL_KEYS.contains(&key) => format!("{x:#o}"),
            Some(x) if key == "created_ns" => format!("{x} ({})", utc_time(x)),
            _ => n.to_string(),
        },
        Value::String(s) => serde_json::to_string(s).unwrap_or_else(|_| s.clone()),
        Value::Null => "none".into(),
        Value::Bool(b) => b.to_string(),
        other => {
            let s = other.to_string();
            if s.len() > 120 {
                format!("{}...", &s[..s.floor_char_boundary_compat(117)])
            } else {
                s
            }
        }
    }
}

fn rwx(prot: u64, bit: u64, c: char) -> char {
    if prot & bit != 0 {
        c
    } else {
        '-'
    }
}

fn is_register(key: &str) -> bool {
    X86_64_REGS.contains(&key) || I386_REGS.contains(&key)
}

/// `str::floor_char_boundary` is unstable on our MSRV; this is the same for our use.
trait FloorCharBoundary {
    fn floor_char_boundary_compat(&self, i: usize) -> usize;
}

impl FloorCharBoundary for str {
    fn floor_char_boundary_compat(&self, mut i: usize) -> usize {
        i = i.min(self.len());
        while !self.is_char_boundary(i) {
            i -= 1;
        }
        i
    }
}

/// Renders a view as indented `key: value` lines.
pub fn render_text(v: &Value, out: &mut String) {
    render_into("", v, 0, out);
}

fn is_scalar(v: &Value) -> bool {
    !matches!(v, Value::Object(_) | Value::Array(_))
}

fn pad(indent: usize) -> String {
    " ".repeat(indent)
}

fn render_into(key: &str, v: &Value, indent: usize, out: &mut String) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                render_entry(k, x, indent, out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                if is_scalar(x) {
                    out.push_str(&format!("{}[{i}]: {}\n", pad(indent), fmt_scalar(key, x)));
                } else if let Some(line) = one_line(x) {
                    out.push_str(&format!("{}[{i}]: {line}\n", pad(indent)));
                } else {
                    out.push_str(&format!("{}[{i}]:\n", pad(indent)));
                    render_into(key, x, indent + 2, out);
                }
            }
        }
        scalar => out.push_str(&format!("{}{}\n", pad(indent), fmt_scalar(key, scalar))),
    }
}

/// A small object of scalars (an rlimit, an auxv entry, a page run) on one line.
fn one_line(v: &Value) -> Option<String> {
    let m = v.as_object()?;
    if m.len() > 4 || !m.values().all(is_scalar) {
        return None;
    }
    let fields: Vec<String> = m
        .iter()
        .map(|(k, x)| format!("{k}: {}", fmt_scalar(k, x)))
        .collect();
    let line = format!("{{{}}}", fields.join(", "));
    (line.len() <= 100).then_some(line)
}

/// The NUL-separated arguments of a hex-encoded `cmdline`, quoted.
fn cmdline_text(hex_str: &str) -> Option<String> {
    let b = hex::decode(hex_str).ok()?;
    let b = b.strip_suffix(&[0]).unwrap_or(&b);
    let args: Vec<String> = b
        .split(|c| *c == 0)
        .map(|a| serde_json::to_string(&String::from_utf8_lossy(a)).unwrap_or_default())
        .collect();
    Some(args.join(" "))
}

fn render_entry(k: &str, x: &Value, indent: usize, out: &mut String) {
    let p = pad(indent);
    match x {
        Value::String(s) if BYTE_KEYS.contains(&k) && s.len() > 64 => {
            out.push_str(&format!("{p}{k}: ({} bytes)\n", s.len() / 2));
            for (i, line) in s.as_bytes().chunks(64).enumerate() {
                let line = String::from_utf8_lossy(line);
                out.push_str(&format!("{p}  {:04x}: {line}\n", i * 32));
            }
        }
        Value::String(s) if k == "cmdline" => {
            let text = cmdline_text(s).unwrap_or_default();
            out.push_str(&format!("{p}{k}: \"{s}\" ({text})\n"));
        }
        Value::Array(a) if a.is_empty() => out.push_str(&format!("{p}{k}: []\n")),
        Value::Array(a) if a.len() <= 16 && a.iter().all(is_scalar) => {
            let items: Vec<String> = a.iter().map(|e| fmt_scalar(k, e)).collect();
            out.push_str(&format!("{p}{k}: [{}]\n", items.join(", ")));
        }
        Value::Object(m) if m.is_empty() => out.push_str(&format!("{p}{k}: {{}}\n")),
        Value::Object(_) | Value::Array(_) => {
            out.push_str(&format!("{p}{k}:\n"));
            render_into(k, x, indent + 2, out);
        }
        scalar => out.push_str(&format!("{p}{k}: {}\n", fmt_scalar(k, scalar))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_time_of_known_instants() {
        assert_eq!(utc_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            utc_time(psnc_format::example::EXAMPLE_CREATED_NS),
            "2026-01-01T00:00:00Z"
        );
        assert_eq!(
            utc_time(951_782_400_000_000_000 + 3_723_000_000_000),
            "2000-02-29T01:02:03Z"
        );
    }

    #[test]
    fn registers_are_named_in_kernel_order() {
        let mut r = [0u64; 27];
        r[16] = 0x401000;
        let v = regs_view(&Regs::X86_64(r));
        assert_eq!(v["rip"], 0x401000);
        let keys: Vec<&String> = v
            .as_object()
            .map(|m| m.keys().collect())
            .unwrap_or_default();
        assert_eq!(keys[0], "layout");
        assert_eq!(keys[1], "r15");
        assert_eq!(keys[27], "gs");
    }

    #[test]
    fn auxv_pairs_follow_the_task_word_size() {
        let mut b = Vec::new();
        for x in [6u32, 4096, 0, 0] {
            b.extend_from_slice(&x.to_le_bytes());
        }
        let v = auxv_view(Arch::I386, &b);
        assert_eq!(v[0]["name"], "AT_PAGESZ");
        assert_eq!(v[0]["value"], 4096);
        assert_eq!(v[1]["name"], "AT_NULL");
        assert_eq!(
            auxv_view(Arch::X86_64, &b[..8]),
            Value::String("0600000000100000".into())
        );
    }

    #[test]
    fn scalars_are_formatted_by_key() {
        assert_eq!(fmt_scalar("rip", &Value::from(0x401000u64)), "0x401000");
        assert_eq!(fmt_scalar("mode", &Value::from(0o100755u64)), "0o100755");
        assert_eq!(fmt_scalar("pid", &Value::from(42u64)), "42");
        assert_eq!(fmt_scalar("comm", &Value::from("a\"b")), "\"a\\\"b\"");
    }
}
