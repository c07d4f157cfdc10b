//! Test support: build the C target for each mode and run it as a child.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::OnceLock;

use psnc_ptrace::Arch;

/// The built targets live here for the whole test binary.
fn build_dir() -> &'static tempfile::TempDir {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("tempdir"))
}

/// Compiles tests/targets/target.c for `arch`; `None` when the compiler cannot build 32-bit code
/// (gcc-multilib missing): the caller skips with [`psnc_testkit::NO_M32`].
pub fn target(arch: Arch) -> Option<PathBuf> {
    build("target", arch)
}

/// Compiles tests/targets/NAME.c for `arch` (once per test binary); `None` when the compiler
/// cannot build 32-bit code (gcc-multilib missing): the caller skips with
/// [`psnc_testkit::NO_M32`].
pub fn build(name: &'static str, arch: Arch) -> Option<PathBuf> {
    type Built = std::sync::Mutex<HashMap<(&'static str, Arch), Option<PathBuf>>>;
    static BUILT: OnceLock<Built> = OnceLock::new();
    let mut built = BUILT.get_or_init(Default::default).lock().expect("lock");
    built
        .entry((name, arch))
        .or_insert_with(|| {
            let src = format!("{}/tests/targets/{name}.c", env!("CARGO_MANIFEST_DIR"));
            let out = build_dir().path().join(format!("{name}-{arch:?}"));
            let mut cmd = Command::new("cc");
            cmd.args(["-O1", "-g", "-pthread", "-o"]).arg(&out).arg(src);
            if arch == Arch::I386 {
                cmd.arg("-m32");
            }
            let o = cmd.output().expect("run cc");
            if !o.status.success() {
                if arch == Arch::I386 {
                    // Once per binary: the callers' SKIP lines carry only the short reason.
                    eprintln!(
                        "note: cc -m32 failed: {}",
                        String::from_utf8_lossy(&o.stderr)
                    );
                    return None;
                }
                panic!("cc failed: {}", String::from_utf8_lossy(&o.stderr));
            }
            Some(out)
        })
        .clone()
}

/// The values the target printed in its "ready" line.
#[derive(Debug, Default)]
pub struct Ready {
    pub handler: u64,
    pub altsp: u64,
    pub altsize: u64,
    pub brk: u64,
    pub prot_none: u64,
    pub rw: u64,
    pub pipe_rd: i32,
    pub gs: u64,
    pub timer: u64,
}

/// A running target; killed and reaped on drop unless it finished.
pub struct Target {
    pub child: Child,
    pub out: BufReader<ChildStdout>,
    pub ready: Ready,
}

impl Target {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Starts the target for `arch` sleeping `ms`, waits for its ready line.
    pub fn start(arch: Arch, ms: u64) -> Option<Target> {
        let exe = target(arch)?;
        let mut child = Command::new(exe)
            .arg(ms.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn target");
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        out.read_line(&mut line).expect("read ready");
        assert!(line.starts_with("ready "), "target said {line:?}");
        let mut ready = Ready::default();
        for kv in line.split_whitespace().skip(1) {
            let (k, v) = kv.split_once('=').expect("k=v");
            let hex = || u64::from_str_radix(v, 16).expect("hex");
            match k {
                "handler" => ready.handler = hex(),
                "altsp" => ready.altsp = hex(),
                "altsize" => ready.altsize = hex(),
                "brk" => ready.brk = hex(),
                "prot_none" => ready.prot_none = hex(),
                "rw" => ready.rw = hex(),
                "pipe_rd" => ready.pipe_rd = v.parse().expect("fd"),
                "gs" => ready.gs = hex(),
                "timer" => ready.timer = hex(),
                _ => {}
            }
        }
        // Let it enter nanosleep.
        wait_state(child.id() as i32, 'S');
        Some(Target { child, out, ready })
    }

    /// Waits for the target to exit; returns its remaining output and exit code.
    pub fn finish(mut self) -> (String, i32) {
        let mut rest = String::new();
        self.out.read_to_string(&mut rest).expect("read output");
        let st = self.child.wait().expect("wait");
        (rest, st.code().unwrap_or(-1))
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits (up to 5 s) until /proc/PID/stat shows `state`.
pub fn wait_state(pid: i32, state: char) {
    let proc_dir = psnc_proc::ProcDir::new(pid);
    for _ in 0..500 {
        if proc_dir.state().ok() == Some(state) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("process {pid} never reached state {state}");
}

/// Parses "slept ret=R errno=E ms=M" from the target's final output.
pub fn slept(out: &str) -> (i32, i32, u64) {
    let line = out
        .lines()
        .find(|l| l.starts_with("slept "))
        .unwrap_or_else(|| panic!("no slept line in {out:?}"));
    let mut v = line
        .split_whitespace()
        .skip(1)
        .map(|kv| kv.split_once('=').expect("k=v").1);
    let ret = v.next().expect("ret").parse().expect("ret");
    let errno = v.next().expect("errno").parse().expect("errno");
    let ms = v.next().expect("ms").parse().expect("ms");
    (ret, errno, ms)
}
