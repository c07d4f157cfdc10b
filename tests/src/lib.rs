//! Harness for the end-to-end tests: builds the C targets, runs the tools, reads the reports.
//!
//! A test starts a self-verifying target ([`Target::start`]), captures it with the real
//! `psnc-capture`, kills it, restores it with the real `psnc-restore`, then asks the target to
//! check its own state ([`Target::verify`]) and asserts the PASS lines it reports. The protocol
//! between harness and targets is described in `tests/README.md` and `tests/targets/target.h`.
//!
//! Every process the harness starts is owned by a guard that kills it on drop, so a failing
//! (panicking) test leaves nothing running. Panics are the error path here: this crate is test
//! code, and a panic message that names the step, the PID and the tool output is what a developer
//! needs.

#![forbid(unsafe_code)]

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// How long a target may take to report READY (the machine runs tests two at a time).
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a target may take to run its checks and report DONE.
pub const DONE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one run of a tool may take before the harness kills it.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(180);

/// Every C target in `tests/targets/`, with the extra compiler flags it needs.
const TARGETS: &[(&str, &[&str])] = &[
    ("counter", &[]),
    ("memory", &[]),
    ("files", &[]),
    ("signals", &[]),
    ("regs", &[]),
    ("blocked", &[]),
    ("threads", &["-pthread"]),
    ("churn", &["-pthread"]),
    ("unsupported", &[]),
    ("external", &[]),
    ("eventfds", &[]),
    ("tree", &[]),
    ("sharedfd", &[]),
    ("zombie", &["-pthread"]),
    ("aio", &[]),
    ("shm", &["-pthread"]),
    ("inet", &[]),
    ("memfd", &[]),
    ("pty", &[]),
    ("unixsock", &[]),
    ("netlink", &[]),
    ("scribble", &["-pthread"]),
    ("vmas", &[]),
    ("fds", &[]),
    ("lazy", &[]),
];

/// Marks every descriptor this test process inherited (above stdio) close-on-exec, once.
///
/// cargo runs tests with its jobserver pipe open and inheritable; a target that inherited it
/// would hold a pipe whose other end is outside the image, which is a different test.
pub fn close_inherited_fds() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let fds = psnc_proc::ProcDir::current()
            .list_numeric("fd")
            .unwrap_or_default();
        for fd in fds.into_iter().filter(|fd| *fd > 2) {
            use nix::fcntl::{fcntl, FcntlArg, FdFlag};
            if let Ok(flags) = fcntl(fd, FcntlArg::F_GETFD) {
                let flags = FdFlag::from_bits_truncate(flags) | FdFlag::FD_CLOEXEC;
                let _ = fcntl(fd, FcntlArg::F_SETFD(flags));
            }
        }
    });
}

/// Directory of the workspace's `tests/` package.
pub fn package_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The cargo profile directory the test binary runs from (`<target>/debug`), where cargo also puts
/// the tool binaries built by `cargo build --workspace --bins`.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe of the test binary");
    // <target>/debug/deps/<test>-<hash>
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary lives in <target>/<profile>/deps")
        .to_path_buf()
}

/// Path of a tool binary: `$PSNC_TOOLS_DIR/NAME` when set, else next to the test binary's profile.
///
/// The tools are not built by `cargo test` of this package (cargo cannot depend on another
/// package's binaries): build them first with `cargo build --workspace --bins`, as
/// `scripts/test.sh` does.
pub fn tool(name: &str) -> PathBuf {
    let dir = std::env::var_os("PSNC_TOOLS_DIR").map_or_else(profile_dir, PathBuf::from);
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} not found: run `cargo build --workspace --bins` with the same CARGO_TARGET_DIR first \
         (scripts/test.sh does), or set PSNC_TOOLS_DIR",
        path.display()
    );
    path
}

/// Where the compiled targets go: `<target>/<profile>/psnc-targets`.
pub fn build_dir() -> PathBuf {
    profile_dir().join("psnc-targets")
}

fn mtime(path: &Path) -> Option<SystemTime> {
    fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Compiles one C file unless the output is newer than every input. Returns whether it worked.
fn compile(inputs: &[PathBuf], out: &Path, flags: &[&str]) -> Result<(), String> {
    let header = package_dir().join("targets/target.h");
    let newest = inputs
        .iter()
        .chain(std::iter::once(&header))
        .filter_map(|p| mtime(p))
        .max();
    if let (Some(o), Some(n)) = (mtime(out), newest) {
        if o >= n {
            return Ok(());
        }
    }
    // Build under a temporary name and rename: a concurrent harness never runs a half-written file.
    let tmp = out.with_extension(format!("tmp{}", std::process::id()));
    let output = Command::new("cc")
        .args(["-O1", "-g", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&tmp)
        .args(inputs)
        .args(flags)
        .output()
        .map_err(|e| format!("cannot run cc: {e} (install gcc; scripts/test.sh does)"))?;
    if !output.status.success() {
        let _ = fs::remove_file(&tmp);
        return Err(format!(
            "cc {} failed:\n{}",
            out.display(),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    fs::rename(&tmp, out).map_err(|e| format!("rename {}: {e}", tmp.display()))
}

/// The compiled targets: 64-bit always, 32-bit (`-m32`) when the compiler can build them.
#[derive(Debug)]
pub struct Built {
    /// Build directory.
    pub dir: PathBuf,
    /// Whether the `-m32` variants were built (gcc-multilib present).
    pub m32: bool,
}

/// Builds every target once per test process (64-bit, and `-m32` when possible).
pub fn targets() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = build_dir();
        fs::create_dir_all(&dir).expect("create the target build dir");
        let src = package_dir().join("targets");
        let mut m32 = true;
        for (name, flags) in TARGETS {
            let input = [src.join(format!("{name}.c"))];
            compile(&input, &dir.join(name), flags).unwrap_or_else(|e| panic!("{e}"));
            if m32 {
                let mut f32: Vec<&str> = flags.to_vec();
                f32.push("-m32");
                if let Err(e) = compile(&input, &dir.join(format!("{name}-m32")), &f32) {
                    eprintln!("note: no -m32 targets (install gcc-multilib): {e}");
                    m32 = false;
                }
            }
        }
        compile(
            &[src.join("libpsnc.c")],
            &dir.join("libpsnc.so"),
            &["-fPIC", "-shared"],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let libdir = format!("-L{}", dir.display());
        compile(
            &[src.join("withlib.c")],
            &dir.join("withlib"),
            &[&libdir, "-lpsnc", "-Wl,-rpath,$ORIGIN"],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        Built { dir, m32 }
    })
}

/// Waits until a freshly copied binary can be executed. Exec fails with ETXTBSY while any
/// process holds it open for writing: the copy's fd is close-on-exec, but a child another test
/// thread forked during the copy holds it until its own exec, a moment later.
pub fn wait_executable(path: &Path) {
    for _ in 0..200 {
        match Command::new(path)
            // A report path no target can write (it exits); not a PID for psnc-capture.
            .arg("/nonexistent/psnc-probe")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Err(e) if e.raw_os_error() == Some(nix::libc::ETXTBSY) => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(mut c) => {
                let _ = c.kill();
                let _ = c.wait();
                return;
            }
            Err(e) => panic!("cannot execute {}: {e}", path.display()),
        }
    }
    panic!("{} stays busy (ETXTBSY)", path.display());
}

/// The architecture a target is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bits {
    /// x86_64.
    B64,
    /// i386 (`-m32`).
    B32,
}

/// Path of a built target binary. Panics for `B32` when gcc-multilib is missing.
pub fn target_binary(name: &str, bits: Bits) -> PathBuf {
    let built = targets();
    match bits {
        Bits::B64 => built.dir.join(name),
        Bits::B32 => {
            assert!(
                built.m32,
                "-m32 targets are not built: install gcc-multilib"
            );
            built.dir.join(format!("{name}-m32"))
        }
    }
}

/// A temporary working directory for one test, readable by everyone (the permission test runs a
/// tool as `nobody` in it). Kept on failure when `PSNC_KEEP=1`.
#[derive(Debug)]
pub struct WorkDir {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
}

impl WorkDir {
    /// Creates `/tmp/psnc-e2e-<test>-XXXX` (or under `$PSNC_TEST_TMP`).
    pub fn new(label: &str) -> WorkDir {
        let base = std::env::var_os("PSNC_TEST_TMP").map_or_else(std::env::temp_dir, PathBuf::from);
        let dir = tempfile::Builder::new()
            .prefix(&format!("psnc-e2e-{label}-"))
            .tempdir_in(base)
            .expect("create a temporary directory");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777))
            .expect("chmod the temporary directory");
        let path = dir.path().to_path_buf();
        WorkDir {
            dir: Some(dir),
            path,
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A path inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if std::thread::panicking() && std::env::var_os("PSNC_KEEP").is_some() {
            if let Some(d) = self.dir.take() {
                eprintln!("keeping {}", d.keep().display());
            }
        }
    }
}

/// Start time of a process (field 22 of `/proc/PID/stat`), to recognise it after a PID reuse.
pub fn start_time(pid: u32) -> Option<u64> {
    Some(psnc_proc::ProcDir::new(pid as i32).stat().ok()?.start_time)
}

/// Scheduler state letter of a process (`R`, `S`, `t`, `Z`...), `None` when it does not exist.
pub fn proc_state(pid: u32) -> Option<char> {
    Some(psnc_proc::ProcDir::new(pid as i32).stat().ok()?.state)
}

/// A line of `/proc/PID/status` (e.g. `TracerPid`), value trimmed.
pub fn status_field(pid: u32, field: &str) -> Option<String> {
    psnc_proc::ProcDir::new(pid as i32)
        .status_field(field)
        .ok()
        .flatten()
}

/// The children of `pid`'s main thread, as `/proc/PID/task/PID/children` lists them.
pub fn children(pid: u32) -> Vec<u32> {
    fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect()
}

/// Whether the process exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    matches!(proc_state(pid), Some(s) if s != 'Z' && s != 'X')
}

/// Polls `f` every 20 ms until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A process the harness is responsible for: killed (and reaped when it is our child) on drop.
#[derive(Debug)]
pub struct ProcGuard {
    /// Its PID.
    pub pid: u32,
    child: Option<Child>,
    start: Option<u64>,
}

impl ProcGuard {
    /// Guards a child the harness spawned.
    pub fn child(child: Child) -> ProcGuard {
        let pid = child.id();
        ProcGuard {
            pid,
            start: start_time(pid),
            child: Some(child),
        }
    }

    /// Guards a process that is not our child (e.g. a restored one, whose parent exited).
    pub fn foreign(pid: u32) -> ProcGuard {
        ProcGuard {
            pid,
            child: None,
            start: start_time(pid),
        }
    }

    /// Whether it still runs (exists, not a zombie, and is the same process as when guarded).
    pub fn alive(&mut self) -> bool {
        if let Some(c) = self.child.as_mut() {
            if !matches!(c.try_wait(), Ok(None)) {
                return false;
            }
        }
        alive(self.pid) && start_time(self.pid) == self.start
    }

    /// Kills it with SIGKILL and waits until it is gone (reaped, or exited when not our child).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            return;
        }
        if self.start.is_some() && start_time(self.pid) == self.start {
            let _ = kill(Pid::from_raw(self.pid as i32), Signal::SIGKILL);
            let pid = self.pid;
            wait_for(Duration::from_secs(10), || (!alive(pid)).then_some(()));
        }
        self.start = None;
    }

    /// Waits for our child to exit after someone else killed it (e.g. `psnc-capture --kill`).
    pub fn reap(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let c = self.child.as_mut()?;
        let end = Instant::now() + timeout;
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                self.child = None;
                self.start = None;
                return Some(st);
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for ProcGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What a tool run produced.
#[derive(Debug)]
pub struct ToolRun {
    /// The command line, for messages.
    pub cmdline: String,
    /// Exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl ToolRun {
    /// Whether it exited 0.
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// Panics with the whole output unless it exited 0.
    pub fn assert_ok(&self) -> &ToolRun {
        assert!(self.ok(), "`{}` failed:\n{self}", self.cmdline);
        self
    }

    /// Panics unless it failed with a non-zero exit code (not a crash by a signal) and a message.
    pub fn assert_failed(&self) -> &ToolRun {
        assert!(
            matches!(self.code, Some(c) if c != 0),
            "`{}` should have failed with an exit code:\n{self}",
            self.cmdline
        );
        assert!(
            !self.stderr.trim().is_empty(),
            "`{}` failed without saying why:\n{self}",
            self.cmdline
        );
        assert!(
            !self.stderr.contains("panicked at"),
            "`{}` panicked instead of reporting an error:\n{self}",
            self.cmdline
        );
        self
    }

    /// [`ToolRun::assert_failed`], with exactly this exit status (psnc-cli's scheme: 65 bad
    /// image, 66 no input, 69 refused, 73 cannot write, 77 no permission, ...).
    pub fn assert_status(&self, code: i32) -> &ToolRun {
        self.assert_failed();
        assert_eq!(
            self.code,
            Some(code),
            "`{}` exited with another status:\n{self}",
            self.cmdline
        );
        self
    }
}

impl std::fmt::Display for ToolRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}--- stderr\n{}---",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Options for one tool run.
#[derive(Debug, Default)]
pub struct RunOpts {
    /// Standard input (default /dev/null).
    pub stdin: Option<Stdio>,
    /// Run as this uid/gid (through `setpriv`), e.g. 65534 for nobody.
    pub as_user: Option<(u32, u32)>,
    /// Extra environment variables of the tool (e.g. a test-only bound).
    pub env: Vec<(&'static str, String)>,
}

static RUN_COUNTER: Mutex<u64> = Mutex::new(0);

/// Runs a command with stdout and stderr going to files (not pipes: a restored process might
/// inherit a pipe and keep it open), kills it after [`TOOL_TIMEOUT`].
pub fn run(program: &Path, args: &[&str], opts: RunOpts) -> ToolRun {
    close_inherited_fds();
    let n = {
        let mut g = RUN_COUNTER.lock().unwrap_or_else(|e| e.into_inner());
        *g += 1;
        *g
    };
    let base = std::env::temp_dir().join(format!("psnc-e2e-run-{}-{n}", std::process::id()));
    let out_path = base.with_extension("out");
    let err_path = base.with_extension("err");
    let out = fs::File::create(&out_path).expect("create the stdout file");
    let err = fs::File::create(&err_path).expect("create the stderr file");
    let mut cmd = match opts.as_user {
        Some((uid, gid)) => {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={uid}"))
                .arg(format!("--regid={gid}"))
                .arg("--clear-groups")
                .arg("--inh-caps=-all")
                .arg("--")
                .arg(program);
            c
        }
        None => Command::new(program),
    };
    cmd.args(args)
        .envs(opts.env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(opts.stdin.unwrap_or_else(Stdio::null))
        .stdout(out)
        .stderr(err);
    let cmdline = format!("{} {}", program.display(), args.join(" "));
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{cmdline}`: {e}"));
    let end = Instant::now() + TOOL_TIMEOUT;
    let status = loop {
        if let Ok(Some(st)) = child.try_wait() {
            break Some(st);
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stdout = fs::read_to_string(&out_path).unwrap_or_default();
    let mut stderr = fs::read_to_string(&err_path).unwrap_or_default();
    let _ = fs::remove_file(&out_path);
    let _ = fs::remove_file(&err_path);
    if status.is_none() {
        stderr.push_str(&format!("\n[harness: killed after {TOOL_TIMEOUT:?}]\n"));
    }
    ToolRun {
        cmdline,
        code: status.and_then(|s| s.code()),
        stdout,
        stderr,
    }
}

/// Runs `psnc-capture PID -o IMAGE ARGS...`.
pub fn capture(pid: u32, image: &Path, args: &[&str]) -> ToolRun {
    let pid = pid.to_string();
    let image = image.to_str().expect("utf-8 image path");
    let mut all = vec![pid.as_str(), "-o", image];
    all.extend_from_slice(args);
    run(&tool("psnc-capture"), &all, RunOpts::default())
}

/// Runs `psnc-capture PID -o IMAGE ARGS...` with extra environment variables.
pub fn capture_env(pid: u32, image: &Path, args: &[&str], env: &[(&'static str, &str)]) -> ToolRun {
    let pid = pid.to_string();
    let image = image.to_str().expect("utf-8 image path");
    let mut all = vec![pid.as_str(), "-o", image];
    all.extend_from_slice(args);
    let opts = RunOpts {
        env: env.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        ..RunOpts::default()
    };
    run(&tool("psnc-capture"), &all, opts)
}

/// Runs `psnc-restore IMAGE ARGS...`.
pub fn restore_run(image: &Path, args: &[&str], opts: RunOpts) -> ToolRun {
    let image = image.to_str().expect("utf-8 image path");
    let mut all = vec![image];
    all.extend_from_slice(args);
    run(&tool("psnc-restore"), &all, opts)
}

/// Runs `psnc-restore`, asserts success and returns a guard on the PID it printed.
pub fn restore(image: &Path, args: &[&str], opts: RunOpts) -> ProcGuard {
    let r = restore_run(image, args, opts);
    r.assert_ok();
    ProcGuard::foreign(restored_pid(&r))
}

/// The PID a successful `psnc-restore` printed last on stdout.
fn restored_pid(r: &ToolRun) -> u32 {
    r.stdout
        .trim()
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("psnc-restore printed no PID on stdout:\n{r}"))
}

/// The lines a target appended to its report file.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Every line, in order.
    pub lines: Vec<String>,
}

/// Whether a test of `bits` can run: false for i386 without gcc-multilib, after counting an
/// honest skip of `what`.
pub fn m32_or_skip(bits: Bits, what: &str) -> bool {
    if bits == Bits::B32 && !targets().m32 {
        psnc_testkit::skip(what, psnc_testkit::NO_M32);
        return false;
    }
    true
}

impl Report {
    /// Reads a report file (missing file: no lines).
    pub fn read(path: &Path) -> Report {
        let text = fs::read_to_string(path).unwrap_or_default();
        Report {
            lines: text.lines().map(str::to_string).collect(),
        }
    }

    /// Names of the PASS lines.
    pub fn passes(&self) -> Vec<&str> {
        self.lines
            .iter()
            .filter_map(|l| l.strip_prefix("PASS "))
            .collect()
    }

    /// The FAIL lines.
    pub fn fails(&self) -> Vec<&str> {
        self.lines
            .iter()
            .filter(|l| l.starts_with("FAIL "))
            .map(String::as_str)
            .collect()
    }

    /// The PID after `prefix` on the first line that starts with it (`UP C 124`); panics with
    /// the report when there is none.
    pub fn pid_after(&self, prefix: &str) -> u32 {
        self.lines
            .iter()
            .find_map(|l| l.strip_prefix(prefix)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no `{prefix}PID` line in:\n{}", self.lines.join("\n")))
    }

    /// Whether the target reported DONE.
    pub fn done(&self) -> bool {
        self.lines.iter().any(|l| l.starts_with("DONE"))
    }

    /// The checks the target skipped (e.g. AVX-512 on a CPU without it): `(what, why)` of each
    /// `SKIP <what>: <why>` line.
    pub fn skips(&self) -> Vec<(&str, &str)> {
        self.lines
            .iter()
            .filter_map(|l| l.strip_prefix("SKIP "))
            .map(|s| s.split_once(": ").unwrap_or((s, "")))
            .collect()
    }

    /// [`Report::assert_passed_in`] for a target the SKIP lines name as `target`.
    pub fn assert_passed(&self, expected: &[&str]) {
        self.assert_passed_in("target", expected);
    }

    /// Panics unless the report holds DONE, no FAIL line, and a PASS line for every name given
    /// that the target did not skip. Each SKIP line of the target goes through
    /// [`psnc_testkit::skip`] as `<context> <what>` (counted; a failure in CI): a skipped check
    /// is never a passed one, and the rest of the report is checked all the same.
    pub fn assert_passed_in(&self, context: &str, expected: &[&str]) {
        let text = self.lines.join("\n");
        assert!(self.done(), "the target did not finish its checks:\n{text}");
        assert!(
            self.fails().is_empty(),
            "the target reported failures:\n{text}"
        );
        let unmet = self.unmet(expected);
        assert!(unmet.is_empty(), "no PASS {unmet:?} in the report:\n{text}");
        for (what, why) in self.skips() {
            psnc_testkit::skip(format!("{context} {what}"), why);
        }
    }

    /// The names of `expected` that the report neither passed nor skipped.
    pub fn unmet<'a>(&self, expected: &[&'a str]) -> Vec<&'a str> {
        let (passes, skips) = (self.passes(), self.skips());
        expected
            .iter()
            .filter(|e| !passes.contains(e) && !skips.iter().any(|(what, _)| what == *e))
            .copied()
            .collect()
    }
}

/// A running self-verifying target and its report file.
#[derive(Debug)]
pub struct Target {
    /// Its process: the original one, then the restored one.
    pub proc: ProcGuard,
    /// Report file (the go file is this path plus `.go`).
    pub report: PathBuf,
    /// Its private copy of the binary (unique name, so its comm identifies it).
    pub exe: PathBuf,
    /// The test's working directory.
    pub dir: WorkDir,
}

/// A target's descendants die with the test too: a tree target whose root was killed (or a
/// failed test's) would otherwise leave its children running, reparented to init. The private
/// binary's unique name finds every one of them, original or restored.
impl Drop for Target {
    fn drop(&mut self) {
        self.proc.kill();
        for pid in pids_with_comm(&comm_of(&self.exe)) {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
    }
}

/// How to start a target.
#[derive(Debug)]
pub struct Spawn<'a> {
    name: &'a str,
    args: Vec<String>,
    bits: Bits,
    stdin: Option<Stdio>,
    stdout: Option<Stdio>,
    with_lib: bool,
    as_user: Option<(u32, u32)>,
}

impl<'a> Spawn<'a> {
    /// A target by name (file `tests/targets/NAME.c`), 64-bit, no arguments.
    pub fn new(name: &'a str) -> Spawn<'a> {
        Spawn {
            name,
            args: Vec::new(),
            bits: Bits::B64,
            stdin: None,
            stdout: None,
            with_lib: false,
            as_user: None,
        }
    }

    /// Runs the target as this uid/gid, without supplementary groups or capabilities (through
    /// `setpriv`, which execs it: the PID stays the one the harness started).
    pub fn as_user(mut self, uid: u32, gid: u32) -> Self {
        self.as_user = Some((uid, gid));
        self
    }

    /// Arguments after the report path (mode and its arguments).
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args = args.iter().map(|s| s.to_string()).collect();
        self
    }

    /// 32- or 64-bit build.
    pub fn bits(mut self, bits: Bits) -> Self {
        self.bits = bits;
        self
    }

    /// Standard input of the target (default /dev/null).
    pub fn stdin(mut self, stdin: Stdio) -> Self {
        self.stdin = Some(stdin);
        self
    }

    /// Standard output and error of the target (default /dev/null); stderr gets a duplicate.
    pub fn stdout(mut self, fd: std::os::fd::OwnedFd) -> Self {
        self.stdout = Some(Stdio::from(fd));
        self
    }

    /// Starts it and waits for READY.
    pub fn start(self) -> Target {
        close_inherited_fds();
        let dir = WorkDir::new(self.name);
        // A unique binary name: its comm tells it apart from every other test's process.
        let tag = dir
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.rsplit('-').next())
            .unwrap_or("x")
            .to_string();
        let exe = dir.join(&format!("t{}-{tag}", &self.name[..3.min(self.name.len())]));
        let src = if self.with_lib {
            target_binary("counter", Bits::B64); // builds everything
            targets().dir.join("withlib")
        } else {
            target_binary(self.name, self.bits)
        };
        fs::copy(&src, &exe).expect("copy the target binary");
        if self.with_lib {
            fs::copy(targets().dir.join("libpsnc.so"), dir.join("libpsnc.so"))
                .expect("copy libpsnc.so");
        }
        let report = dir.join("report");
        let mut cmd = match self.as_user {
            Some((uid, gid)) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={gid}"))
                    .arg("--clear-groups")
                    .arg("--inh-caps=-all")
                    .arg("--")
                    .arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        cmd.arg(&report)
            .args(&self.args)
            .stdin(self.stdin.unwrap_or_else(Stdio::null))
            .stdout(self.stdout.unwrap_or_else(Stdio::null))
            .stderr(Stdio::null())
            .current_dir(dir.path());
        // Its own process group, like a job a shell started: a test's signal never reaches it.
        cmd.process_group(0);
        wait_executable(&exe);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", exe.display()));
        let mut t = Target {
            proc: ProcGuard::child(child),
            report,
            exe,
            dir,
        };
        t.wait_ready();
        t
    }
}

impl Target {
    /// Starts a 64-bit target with arguments and waits for READY.
    pub fn start(name: &str, args: &[&str]) -> Target {
        Spawn::new(name).args(args).start()
    }

    /// Starts the `withlib` target, linked to its private copy of `libpsnc.so`.
    pub fn start_with_lib() -> Target {
        Spawn {
            with_lib: true,
            ..Spawn::new("withlib")
        }
        .start()
    }

    /// PID of the current process (original or restored).
    pub fn pid(&self) -> u32 {
        self.proc.pid
    }

    /// The report so far.
    pub fn report(&self) -> Report {
        Report::read(&self.report)
    }

    fn wait_ready(&mut self) {
        let pid = self.proc.pid;
        let ready = format!("READY {pid}");
        let found = wait_for(READY_TIMEOUT, || {
            let r = self.report();
            if r.lines.iter().any(|l| l == &ready) {
                return Some(true);
            }
            (!self.proc.alive()).then_some(false)
        });
        match found {
            Some(true) => {}
            Some(false) => panic!("target {pid} died before READY:\n{:?}", self.report()),
            None => panic!(
                "target {pid} not READY after {READY_TIMEOUT:?}:\n{:?}\n{}",
                self.report(),
                describe_tree(pid)
            ),
        }
    }

    /// Captures the running target into `image` with extra arguments; returns the tool's run.
    pub fn capture(&self, image: &Path, args: &[&str]) -> ToolRun {
        capture(self.proc.pid, image, args)
    }

    /// Captures with `--kill`, asserts success, and reaps the original process.
    pub fn capture_kill(&mut self, image: &Path) -> ToolRun {
        let r = self.capture(image, &["--kill"]);
        r.assert_ok();
        assert!(
            image.is_file(),
            "no image at {} after a capture",
            image.display()
        );
        let st = self.proc.reap(Duration::from_secs(10));
        assert!(
            st.is_some(),
            "target {} still runs after psnc-capture --kill",
            self.proc.pid
        );
        r
    }

    /// Restores `image` and makes the restored process this target's process. Asserts the
    /// restored PID is the original one (restore keeps PIDs).
    pub fn restore(&mut self, image: &Path, args: &[&str], opts: RunOpts) {
        self.restore_with_output(image, args, opts);
    }

    /// [`Target::restore`], returning the tool's run (for what it printed).
    pub fn restore_with_output(&mut self, image: &Path, args: &[&str], opts: RunOpts) -> ToolRun {
        let old = self.proc.pid;
        let r = restore_run(image, args, opts);
        r.assert_ok();
        let pid = restored_pid(&r);
        assert_eq!(pid, old, "the restored process has another PID");
        self.proc = ProcGuard::foreign(pid);
        r
    }

    /// The usual cycle: capture with `--kill` to `<dir>/image`, restore. Returns the image path.
    pub fn checkpoint_restore(&mut self) -> PathBuf {
        let image = self.dir.join("image");
        self.capture_kill(&image);
        self.restore(&image, &[], RunOpts::default());
        image
    }

    /// Forgets an earlier [`Target::verify`]: removes the go file and empties the report, so
    /// that a process restored again reports afresh.
    pub fn reset_report(&self) {
        fs::remove_file(go_path(&self.report)).expect("remove the go file");
        fs::write(&self.report, "").expect("truncate the report");
    }

    /// Creates the go file and waits for DONE; returns the report.
    pub fn verify(&mut self) -> Report {
        let go = go_path(&self.report);
        fs::File::create(&go).expect("create the go file");
        self.wait_done()
    }

    /// Waits for DONE (the target died or timing out panics with the report).
    pub fn wait_done(&mut self) -> Report {
        let pid = self.proc.pid;
        let mut died = false;
        let r = wait_for(DONE_TIMEOUT, || {
            let r = self.report();
            if r.done() {
                return Some(r);
            }
            if !self.proc.alive() {
                died = true;
                return Some(r);
            }
            None
        });
        match r {
            Some(r) if !died => r,
            Some(r) => panic!(
                "target {pid} died before DONE (state {:?}):\n{}",
                proc_state(pid),
                r.lines.join("\n")
            ),
            None => panic!(
                "target {pid} not DONE after {DONE_TIMEOUT:?} (state {:?}):\n{}",
                proc_state(pid),
                self.report().lines.join("\n")
            ),
        }
    }

    /// The counter target's ticks (`REPORT.ticks`), in order.
    pub fn ticks(&self) -> Vec<u64> {
        read_ticks(&self.report.with_extension("ticks"))
    }
}

/// The go file of a report file.
pub fn go_path(report: &Path) -> PathBuf {
    let mut s = report.as_os_str().to_owned();
    s.push(".go");
    PathBuf::from(s)
}

/// Reads a file of one number per line (a half-written last line is ignored).
pub fn read_ticks(path: &Path) -> Vec<u64> {
    let text = fs::read_to_string(path).unwrap_or_default();
    text.split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

/// Panics unless `ticks` count 1, 2, 3... without a gap, a repeat or a restart.
pub fn assert_consecutive(ticks: &[u64]) {
    for (i, t) in ticks.iter().enumerate() {
        assert_eq!(
            *t,
            i as u64 + 1,
            "tick {} is {t}: the sequence has a gap, a repeat or a restart: {:?}",
            i + 1,
            &ticks[i.saturating_sub(3)..(i + 3).min(ticks.len())]
        );
    }
}

/// Waits until `path` holds at least `n` ticks.
pub fn wait_ticks(path: &Path, n: usize, timeout: Duration) -> Vec<u64> {
    wait_for(timeout, || {
        let t = read_ticks(path);
        (t.len() >= n).then_some(t)
    })
    .unwrap_or_else(|| {
        panic!(
            "fewer than {n} ticks in {} after {timeout:?}",
            path.display()
        )
    })
}

/// Runs a python3 `script` that appends "TICK VALUE..." lines to the log file named by its first
/// argument, captures it with `--kill` after 5 lines, restores it, waits for 10 more lines and
/// checks that the ticks go on without a gap or restart and that the restored process kept its
/// PID. Returns every line's numbers, for the caller's check of the values the state produced.
pub fn python_log_roundtrip(name: &str, script: &str) -> Vec<Vec<u64>> {
    let dir = WorkDir::new(name);
    let log = dir.join("log");
    let mut p = spawn_program(Command::new("python3").args(["-c", script]).arg(&log));
    wait_ticks(&log, 5, Duration::from_secs(20));
    let image = dir.join("image");
    capture_kill(&mut p, &image);
    let before = read_ticks(&log).len();
    let r = restore(&image, &[], RunOpts::default());
    assert_eq!(r.pid, p.pid, "restored with another PID");
    let ticks = wait_ticks(&log, before + 10, Duration::from_secs(20));
    assert_consecutive(&ticks);
    fs::read_to_string(&log)
        .expect("read log")
        .split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .map(|l| {
            l.split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect()
        })
        .collect()
}

/// Whether a CPU flag (from `/proc/cpuinfo`) is present.
pub fn cpu_has(flag: &str) -> bool {
    psnc_proc::system::cpuinfo().is_ok_and(|c| c.has(flag))
}

/// Whether the harness runs as root (most tests need it: ptrace of any process, clone3 set_tid).
pub fn is_root() -> bool {
    psnc_proc::ProcDir::current()
        .status()
        .is_ok_and(|s| s.uids[1] == 0)
}

/// PIDs of every live process whose comm is `comm`.
pub fn pids_with_comm(comm: &str) -> Vec<u32> {
    let Ok(pids) = psnc_proc::system::pids() else {
        return Vec::new();
    };
    pids.into_iter()
        .map(|pid| pid as u32)
        .filter(|pid| {
            alive(*pid)
                && psnc_proc::ProcDir::new(*pid as i32)
                    .comm()
                    .is_ok_and(|c| c.trim() == comm)
        })
        .collect()
}

/// The comm the kernel gives a process started from `exe` (its file name, cut to 15 bytes).
pub fn comm_of(exe: &Path) -> String {
    let name = exe.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.chars().take(15).collect()
}

/// `pid` and its descendants, one line each with state and wait channel (`/proc`), for the
/// message of a test that timed out waiting for them.
pub fn describe_tree(pid: u32) -> String {
    let mut out = String::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        let read = |f: &str| fs::read_to_string(format!("/proc/{p}/{f}")).unwrap_or_default();
        let state = read("status")
            .lines()
            .find_map(|l| l.strip_prefix("State:"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| "gone".into());
        out.push_str(&format!("  pid {p}: {state}, wchan {}\n", read("wchan")));
        for task in fs::read_dir(format!("/proc/{p}/task"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let kids = fs::read_to_string(task.path().join("children")).unwrap_or_default();
            todo.extend(
                kids.split_whitespace()
                    .filter_map(|k| k.parse::<u32>().ok()),
            );
        }
    }
    out
}

/// A tmpfs mounted for one test (e.g. a small one to fill up), unmounted on drop.
#[derive(Debug)]
pub struct Tmpfs {
    /// The mount point.
    pub path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (mount's syntax: `1m`) at `path` (created if needed).
    pub fn mount(path: &Path, size: &str) -> Tmpfs {
        fs::create_dir_all(path).expect("create the mount point");
        let st = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0777"),
                "psnc-e2e",
            ])
            .arg(path)
            .status()
            .expect("run mount");
        assert!(st.success(), "mount -t tmpfs failed at {}", path.display());
        Tmpfs {
            path: path.to_path_buf(),
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Writes `bytes` to a new file.
pub fn write_file(path: &Path, bytes: &[u8]) {
    let mut f = fs::File::create(path).expect("create file");
    f.write_all(bytes).expect("write file");
}

/// One target run: which binary, its arguments, and the PASS lines it must report.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    /// Target name (`tests/targets/NAME.c`).
    pub name: &'static str,
    /// Arguments after the report path.
    pub args: &'static [&'static str],
    /// The PASS lines a correct run reports.
    pub expect: &'static [&'static str],
}

impl Case {
    /// How a SKIP line names a run of this case, before the target's own name of the check:
    /// `target regs (B64, after restore)` + ` avx512`.
    pub fn label(&self, bits: Bits, phase: &str) -> String {
        format!("target {} ({bits:?}, {phase})", self.name)
    }
}

/// The cases shared by the self-check (no checkpoint) and the checkpoint tests.
pub mod cases {
    use super::Case;

    /// Counter (the harness also checks its ticks).
    pub const COUNTER: Case = Case {
        name: "counter",
        args: &[],
        expect: &["counter"],
    };
    /// 10,000 one-page VMAs of alternating protection: more than one batch of remote calls
    /// in either mode (2,047 per batch for x86_64, 4,095 for i386).
    pub const MANY_VMAS: Case = Case {
        name: "vmas",
        args: &["10000"],
        expect: &["vma_pages", "vma_count", "vma_prots"],
    };
    /// 3,000 fds on one file with their offsets, close-on-exec flags and gaps: one batch of
    /// predicted `pidfd_getfd` numbers.
    pub const MANY_FDS: Case = Case {
        name: "fds",
        args: &["3000"],
        expect: &["fd_offsets", "fd_cloexec", "fd_gaps"],
    };
    /// Heap blocks, brk, heap growth.
    pub const MEM_HEAP: Case = Case {
        name: "memory",
        args: &["heap"],
        expect: &["heap_blocks", "heap_brk", "heap_grow", "heap_malloc"],
    };
    /// Nested stack frames.
    pub const MEM_STACK: Case = Case {
        name: "memory",
        args: &["stack"],
        expect: &["stack_frames"],
    };
    /// .bss and .data.
    pub const MEM_BSS: Case = Case {
        name: "memory",
        args: &["bss"],
        expect: &["bss_written", "bss_zero", "data_modified"],
    };
    /// Big anonymous mapping with holes and untouched parts.
    pub const MEM_ANON: Case = Case {
        name: "memory",
        args: &["anon_holes"],
        expect: &[
            "anon_written",
            "anon_holes",
            "anon_untouched_not_resident",
            "anon_untouched_zero",
        ],
    };
    /// PROT_NONE data and guard region.
    pub const MEM_GUARD: Case = Case {
        name: "memory",
        args: &["guard"],
        expect: &["guard_prot", "guard_faults", "guard_data"],
    };
    /// MAP_PRIVATE file mapping with COWed pages.
    pub const MEM_FILE_PRIVATE: Case = Case {
        name: "memory",
        args: &["file_private"],
        expect: &[
            "file_private_dirty",
            "file_private_clean",
            "file_private_file_unchanged",
            "file_private_still_private",
            "file_private_prot",
        ],
    };
    /// MAP_SHARED file mapping.
    pub const MEM_FILE_SHARED: Case = Case {
        name: "memory",
        args: &["file_shared"],
        expect: &[
            "file_shared_written",
            "file_shared_matches_file",
            "file_shared_write_reaches_file",
            "file_shared_file_reaches_mapping",
            "file_shared_prot",
        ],
    };
    /// A regular file open at an offset on fd 7.
    pub const FILE_OFFSET: Case = Case {
        name: "files",
        args: &["offset"],
        expect: &[
            "file_offset",
            "file_flags",
            "file_read",
            "file_contents",
            "file_fd_number",
        ],
    };
    /// An O_APPEND fd.
    pub const FILE_APPEND: Case = Case {
        name: "files",
        args: &["append"],
        expect: &["append_flags", "append_cloexec", "append_write"],
    };
    /// A deleted, still open file.
    pub const FILE_DELETED: Case = Case {
        name: "files",
        args: &["deleted"],
        expect: &[
            "deleted_stat",
            "deleted_contents",
            "deleted_offset",
            "deleted_link",
            "deleted_not_recreated",
        ],
    };
    /// A pipe with unread bytes.
    pub const FILE_PIPE: Case = Case {
        name: "files",
        args: &["pipe"],
        expect: &["pipe_buffered", "pipe_contents", "pipe_still_connected"],
    };
    /// Signal handlers.
    pub const SIG_ACTION: Case = Case {
        name: "signals",
        args: &["sigaction"],
        expect: &[
            "sigaction_usr1",
            "sigaction_rt",
            "sigaction_ignored",
            "sigaction_default",
            "sigaction_delivery",
        ],
    };
    /// Blocked pending signals with their siginfo.
    pub const SIG_PENDING: Case = Case {
        name: "signals",
        args: &["pending"],
        expect: &[
            "pending_set",
            "pending_mask",
            "pending_siginfo",
            "pending_rt_first",
            "pending_rt_queued_twice",
            "pending_no_extra",
        ],
    };
    /// sigaltstack.
    pub const SIG_ALTSTACK: Case = Case {
        name: "signals",
        args: &["altstack"],
        expect: &["altstack_set", "altstack_used"],
    };
    /// ITIMER_REAL.
    pub const SIG_ITIMER: Case = Case {
        name: "signals",
        args: &["itimer"],
        expect: &["itimer_set", "itimer_fires"],
    };
    /// xmm registers.
    pub const REGS_SSE: Case = Case {
        name: "regs",
        args: &["sse"],
        expect: &["sse"],
    };
    /// ymm registers.
    pub const REGS_AVX: Case = Case {
        name: "regs",
        args: &["avx"],
        expect: &["avx"],
    };
    /// zmm and k registers.
    pub const REGS_AVX512: Case = Case {
        name: "regs",
        args: &["avx512"],
        expect: &["avx512"],
    };
    /// Eventfds, timerfds, a signalfd and an inotify instance in an epoll event loop (issue 9).
    pub const EVENTFDS: Case = Case {
        name: "eventfds",
        args: &[],
        expect: &[
            "eventfd_semaphore",
            "eventfd_nonblock",
            "eventfd_semaphore_flag",
            "eventfd_counter",
            "timerfd_ticks_kept",
            "timerfd_periodic",
            "timerfd_absolute",
            "timerfd_relative",
            "timerfd_cancel_on_set",
            "timerfd_nonblock",
            "timerfd_boottime",
            "timerfd_unread_tick",
            "signalfd_flags",
            "signalfd",
            "inotify_setup",
            "inotify_dir",
            "inotify_file",
            "inotify_next_wd",
            "inotify_nonblock",
        ],
    };
    /// Every thread feature at once.
    pub const THREADS: Case = Case {
        name: "threads",
        args: &[],
        expect: &[
            "tid_main",
            "no_stray_job_signals",
            "condvar_pingpong",
            "pthread_kill",
            "futex_wake",
            "tid_futex",
            "reader_read",
            "tid_reader",
            "tid_worker0",
            "tls_worker0",
            "stack_worker0",
            "altstack_worker0",
            "tid_worker1",
            "tls_worker1",
            "altstack_worker1",
            "tid_worker2",
            "altstack_worker2",
            "tid_worker3",
            "altstack_worker3",
            "tid_ping",
            "tid_pong",
            "mutex_errorcheck_unlock",
            "mutex_recursive_unlock",
            "mutex_robust_unlock",
            "mutex_pi_unlock",
            "tid_holder",
            "poll_woken",
            "tid_poller",
            "ppoll_woken",
            "tid_ppoller",
            "futex_timed_wake",
            "tid_timedfutex",
            "sleeper_rounds",
            "tid_sleeper",
            "pthread_join",
            "mutex_shared_counter",
            "mutex_errorcheck_free",
            "mutex_recursive_free",
            "mutex_robust_free",
            "mutex_pi_free",
        ],
    };

    /// Relay chains of threads that each create their successor and exit.
    pub const CHURN: Case = Case {
        name: "churn",
        args: &["4"],
        expect: &["churn_alive", "churn_tid_main"],
    };
    /// A pty pair inside the tree: the parent holds the master, its child leads a session with
    /// the slave as controlling terminal and echoes lines uppercased.
    pub const PTY: Case = Case {
        name: "pty",
        args: &[],
        expect: &[
            "pty_termios",
            "pty_winsize",
            "pty_locked_packet",
            "pty_echo_through_master",
            "pty_child_session_leader",
            "pty_dev_tty_opens",
            "pty_foreground_group",
            "pty_member_dev_tty",
            "pty_child_checked",
        ],
    };
    /// Two zombie children (an exit code, a signal) reaped by PID after the checkpoint, and a
    /// live one.
    pub const ZOMBIE_CHILDREN: Case = Case {
        name: "zombie",
        args: &["children"],
        expect: &[
            "no_new_sigchld",
            "zombie_exit_status",
            "zombie_killed_status",
            "live_child_runs",
            "live_child_is_ours",
            "no_other_child",
        ],
    };
    /// The same with SIGCHLD blocked: it stays pending across the checkpoint.
    pub const ZOMBIE_BLOCKED: Case = Case {
        name: "zombie",
        args: &["blocked"],
        expect: &[
            "no_new_sigchld",
            "sigchld_pending",
            "zombie_exit_status",
            "zombie_killed_status",
            "live_child_runs",
            "live_child_is_ours",
            "no_other_child",
            "sigchld_delivered",
        ],
    };
    /// A zombie group leader with a live member, and a zombie session leader.
    pub const ZOMBIE_LEADER: Case = Case {
        name: "zombie",
        args: &["leader"],
        expect: &[
            "member_in_zombie_group",
            "zombie_group_exists",
            "zombie_leader_status",
            "zombie_session_leader_status",
            "group_outlives_its_leader",
        ],
    };
}

/// Runs a case without any checkpoint: the target's own checks must pass natively, or a failure
/// after a checkpoint would mean nothing.
pub fn native(case: &Case, bits: Bits) -> Report {
    let mut t = Spawn::new(case.name).args(case.args).bits(bits).start();
    let r = t.verify();
    r.assert_passed_in(&case.label(bits, "native"), case.expect);
    r
}

/// Starts a case, captures it with `--kill`, restores it, lets it check itself, asserts its PASS
/// lines. Returns the target (restored process running) for further checks.
pub fn roundtrip(case: &Case, bits: Bits) -> Target {
    let mut t = Spawn::new(case.name).args(case.args).bits(bits).start();
    t.checkpoint_restore();
    t.verify()
        .assert_passed_in(&case.label(bits, "after restore"), case.expect);
    t
}

/// Starts a program that is not a self-verifying target (python3, bash, sleep) in its own process
/// group with /dev/null as stdio, guarded.
pub fn spawn_program(cmd: &mut Command) -> ProcGuard {
    close_inherited_fds();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    ProcGuard::child(
        cmd.spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}")),
    )
}

/// Runs a helper program (stdin from /dev/null) to its end and returns its standard output;
/// panics with its standard error unless it exits 0.
pub fn output_ok(cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Captures `proc` with `--kill` into `image`, asserts success, reaps the original.
pub fn capture_kill(proc: &mut ProcGuard, image: &Path) -> ToolRun {
    let r = capture(proc.pid, image, &["--kill"]);
    r.assert_ok();
    assert!(
        image.is_file(),
        "no image at {} after a capture",
        image.display()
    );
    assert!(
        proc.reap(Duration::from_secs(10)).is_some(),
        "process {} still runs after psnc-capture --kill",
        proc.pid
    );
    r
}

/// Panics unless the process is running on its own: alive, not stopped, not traced.
pub fn assert_running_untraced(pid: u32) {
    let state = proc_state(pid);
    assert!(
        matches!(state, Some('R' | 'S' | 'D')),
        "process {pid} is in state {state:?}, expected running or sleeping"
    );
    let tracer = status_field(pid, "TracerPid");
    assert_eq!(
        tracer.as_deref(),
        Some("0"),
        "process {pid} is still traced"
    );
}

/// Opens a pseudo-terminal pair, both ends close-on-exec (so no other test's process inherits
/// them), the slave without becoming anyone's controlling terminal. Returns (master, slave).
pub fn open_pty() -> (nix::pty::PtyMaster, std::os::fd::OwnedFd) {
    use nix::fcntl::OFlag;
    use std::os::unix::fs::OpenOptionsExt;
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .expect("posix_openpt");
    nix::pty::grantpt(&master).expect("grantpt");
    nix::pty::unlockpt(&master).expect("unlockpt");
    let name = nix::pty::ptsname_r(&master).expect("ptsname_r");
    // std opens with O_CLOEXEC.
    let slave = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(OFlag::O_NOCTTY.bits())
        .open(&name)
        .unwrap_or_else(|e| panic!("open {name}: {e}"));
    (master, slave.into())
}

#[cfg(test)]
mod tests {
    use super::Report;

    fn report(lines: &[&str]) -> Report {
        Report {
            lines: lines.iter().map(|l| l.to_string()).collect(),
        }
    }

    #[test]
    fn a_skip_excuses_only_its_own_check() {
        let r = report(&[
            "READY 1",
            "PASS sse",
            "SKIP avx512: the CPU lacks AVX-512F/BW",
            "DONE fails=0",
        ]);
        assert_eq!(r.skips(), [("avx512", "the CPU lacks AVX-512F/BW")]);
        assert_eq!(r.unmet(&["sse", "avx512"]), Vec::<&str>::new());
        assert_eq!(r.unmet(&["sse", "avx512", "avx"]), ["avx"]);
    }

    #[test]
    #[should_panic(expected = "the target reported failures")]
    fn a_fail_line_fails_even_next_to_a_skip() {
        report(&[
            "READY 1",
            "SKIP avx512: the CPU lacks AVX-512F/BW",
            "FAIL sse: xmm3 changed",
            "DONE fails=1",
        ])
        .assert_passed(&["sse"]);
    }
}
