//! Helpers for the capture tests: C targets built at test time, processes that are killed when a
//! test ends, and small readers of /proc and of stored pages.

#![allow(dead_code)]

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use psnc_format::model::Process;
use psnc_format::Image;
use psnc_proc::{MapsEntry, ProcDir};

/// Builds the C target `name` (tests/targets/NAME.c) once per test binary; returns its path.
pub fn target(name: &str) -> PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let dir = DIR.get_or_init(|| tempfile::tempdir().expect("tempdir for C targets"));
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let exe = dir.path().join(name);
    if !exe.exists() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/targets")
            .join(format!("{name}.c"));
        let status = Command::new("cc")
            .args(["-O1", "-Wall", "-o"])
            .arg(&exe)
            .arg(&src)
            .status()
            .expect("running cc");
        assert!(status.success(), "cc failed on {}", src.display());
    }
    exe
}

/// A running target whose stdout goes to a file; killed and reaped on drop.
pub struct Target {
    pub child: Child,
    pub out: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Target {
    /// Starts `exe args` with stdout into DIR/out.txt and waits for a line starting with "ready".
    pub fn start(exe: &Path, args: &[&str], dir: tempfile::TempDir) -> Target {
        let out = dir.path().join("out.txt");
        let f = fs::File::create(&out).expect("creating out.txt");
        let child = Command::new(exe)
            .args(args)
            .stdin(Stdio::null())
            .stdout(f)
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning the target");
        let t = Target { child, out, dir };
        t.wait_for(|l| l.starts_with("ready"), Duration::from_secs(30));
        t
    }

    /// Starts a program with stdio on /dev/null (e.g. `sleep 1000`), after a short settle time.
    pub fn start_plain(exe: &str, args: &[&str]) -> Target {
        let dir = tempfile::tempdir().expect("tempdir");
        let child = Command::new(exe)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning the target");
        let t = Target {
            child,
            out: dir.path().join("none"),
            dir,
        };
        // Wait until it has exec'd and settled into its sleep.
        let deadline = Instant::now() + Duration::from_secs(10);
        let proc_dir = ProcDir::new(t.pid());
        while Instant::now() < deadline {
            let sleeping = proc_dir.state().is_ok_and(|s| s == 'S');
            let comm_ok = proc_dir.comm().is_ok_and(|c| c == exe);
            if comm_ok && sleeping {
                return t;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("{exe} did not start");
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The output so far.
    pub fn output(&self) -> String {
        fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// Waits until some output line satisfies `pred`; returns that line.
    pub fn wait_for(&self, pred: impl Fn(&str) -> bool, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.output().lines().find(|l| pred(l)) {
                return l.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "timed out; output so far:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The value printed after `key ` in the address lines.
    pub fn addr(&self, key: &str) -> u64 {
        let out = self.output();
        let line = out
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key} ")))
            .unwrap_or_else(|| panic!("no {key} line in:\n{out}"));
        u64::from_str_radix(line.trim().trim_start_matches("0x"), 16).expect("hex address")
    }

    /// The last "count N ..." number printed.
    pub fn last_count(&self) -> u64 {
        self.output()
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("count ")?.split(' ').next()?.parse().ok())
            .unwrap_or(0)
    }

    /// Asserts the target is alive, not traced, and (for the counters) still counting and
    /// reporting its memory intact.
    pub fn assert_running_untouched(&self) {
        let pid = self.pid();
        let status = ProcDir::new(pid).status().expect("target is gone");
        assert_eq!(status.tracer_pid, 0, "target still traced:\n{status:?}");
        let state = status.state;
        assert!(
            state != 'Z' && state != 't' && state != 'T',
            "state {state}"
        );
        if self.output().contains("count ") {
            let before = self.last_count();
            let deadline = Instant::now() + Duration::from_secs(10);
            while self.last_count() < before + 3 {
                assert!(
                    Instant::now() < deadline,
                    "the target stopped counting at {before}"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            assert!(
                !self.output().contains("BAD"),
                "the target saw its memory change:\n{}",
                self.output()
            );
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The bytes stored for `[addr, addr + len)`, if every page of it is stored.
pub fn stored(img: &Image, p: &Process, addr: u64, len: u64) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut a = addr;
    while a < addr + len {
        let run = p
            .pages
            .iter()
            .find(|r| r.addr <= a && a < r.addr + r.pages * 4096)?;
        let bytes = img.page_bytes(run).expect("page bytes");
        let off = (a - run.addr) as usize;
        let take = ((run.addr + run.pages * 4096 - a).min(addr + len - a)) as usize;
        out.extend_from_slice(&bytes[off..off + take]);
        a += take as u64;
    }
    Some(out)
}

/// Whether any byte of the page at `addr` is stored.
pub fn page_stored(p: &Process, addr: u64) -> bool {
    p.pages
        .iter()
        .any(|r| r.addr <= addr && addr < r.addr + r.pages * 4096)
}

/// The pattern of the C targets: byte i of a region with seed s.
pub fn pattern(seed: u32, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seed as usize + i * 7 + i / 4096) as u8)
        .collect()
}

/// `/proc/PID/maps`, every line.
pub fn maps(pid: i32) -> Vec<MapsEntry> {
    ProcDir::new(pid).maps().expect("maps")
}

/// Reads `len` bytes of the live target at `addr` through /proc/PID/mem.
pub fn live_bytes(pid: i32, addr: u64, len: usize) -> Vec<u8> {
    use std::io::{Seek, SeekFrom};
    let mut f = fs::File::open(format!("/proc/{pid}/mem")).expect("open mem");
    f.seek(SeekFrom::Start(addr)).expect("seek");
    let mut buf = vec![0u8; len];
    f.read_exact(&mut buf).expect("read mem");
    buf
}

/// Files in `dir` (names), to check that nothing was left behind.
pub fn dir_entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Builds a C source given inline as an i386 executable (gcc -m32) once per test binary.
pub fn target_i386(name: &str, source: &str) -> PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = DIR.get_or_init(|| tempfile::tempdir().expect("tempdir for i386 targets"));
    let exe = dir.path().join(name);
    if !exe.exists() {
        let src = dir.path().join(format!("{name}.c"));
        fs::write(&src, source).expect("writing the source");
        let status = Command::new("cc")
            .args(["-m32", "-O1", "-o"])
            .arg(&exe)
            .arg(&src)
            .status()
            .expect("cc");
        assert!(
            status.success(),
            "cc -m32 failed (is gcc-multilib installed?)"
        );
    }
    exe
}
