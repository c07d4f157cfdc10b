//! Established TCP connections (issue 10): a python3 echo server in the tree with a client
//! outside it (this test) over 127.0.0.1 and ::1. With `--tcp-established` the connection is
//! captured through TCP_REPAIR and rebuilt in repair mode: the client goes on exchanging
//! numbered lines across the checkpoint, none lost, duplicated or reordered, no reset, and an
//! echo that was in flight at capture arrives. With `--tcp-close` the restored server reads
//! the end of its connection and exits by itself.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use psnc_tests::{
    capture, go_path, m32_or_skip, proc_state, restore, spawn_program, wait_for, Bits, RunOpts,
    Spawn, WorkDir,
};

/// An echo server: one connection, each line sent back as "echo LINE"; on the end of the
/// connection it writes "EOF" to ARGV[1].eof and exits 0. The port goes to ARGV[1].port.
const ECHO: &str = r#"
import os, socket, sys
base, host = sys.argv[1], sys.argv[2]
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
l = socket.socket(fam, socket.SOCK_STREAM)
l.bind((host, 0))
l.listen(1)
with open(base + ".tmp", "w") as f:
    f.write(str(l.getsockname()[1]))
os.rename(base + ".tmp", base + ".port")
c, _ = l.accept()
buf = b""
while True:
    data = c.recv(4096)
    if not data:
        break
    buf += data
    while b"\n" in buf:
        line, buf = buf.split(b"\n", 1)
        c.sendall(b"echo " + line + b"\n")
with open(base + ".eof", "w") as f:
    f.write("EOF")
"#;

struct Echo {
    dir: WorkDir,
    proc: psnc_tests::ProcGuard,
    conn: TcpStream,
    reader: BufReader<TcpStream>,
}

fn start(host: &str) -> Echo {
    let dir = WorkDir::new("tcp-echo");
    let base = dir.join("server");
    let proc = spawn_program(
        Command::new("python3")
            .args(["-c", ECHO])
            .arg(&base)
            .arg(host),
    );
    let port: u16 = wait_for(Duration::from_secs(20), || {
        std::fs::read_to_string(base.with_extension("port"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    })
    .expect("the server wrote no port");
    let addr = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let conn = TcpStream::connect(&addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let reader = BufReader::new(conn.try_clone().expect("clone"));
    Echo {
        dir,
        proc,
        conn,
        reader,
    }
}

impl Echo {
    fn send(&mut self, n: u32) {
        self.conn
            .write_all(format!("{n}\n").as_bytes())
            .unwrap_or_else(|e| panic!("sending {n}: {e}"));
    }

    fn expect(&mut self, n: u32) {
        let mut line = String::new();
        let got = self.reader.read_line(&mut line);
        assert!(
            matches!(got, Ok(k) if k > 0) && line == format!("echo {n}\n"),
            "waiting for the echo of {n}: {got:?}, line {line:?}"
        );
    }

    /// Waits until the server sleeps in recv with nothing of its own to send.
    fn idle(&self) {
        wait_for(Duration::from_secs(10), || {
            (proc_state(self.proc.pid) == Some('S')).then_some(())
        })
        .expect("the server is not idle");
    }
}

fn conversation_goes_on(host: &str) {
    let mut e = start(host);
    for n in 0..5 {
        e.send(n);
        e.expect(n);
    }
    // The echo of 5 is in flight (or in this client's queue) while the server is captured.
    e.send(5);
    e.idle();
    let image = e.dir.join("image");
    let r = capture(e.proc.pid, &image, &["--kill", "--tcp-established"]);
    r.assert_ok();
    assert!(e.proc.reap(Duration::from_secs(10)).is_some(), "not killed");
    let restored = restore(&image, &[], RunOpts::default());
    assert_eq!(restored.pid, e.proc.pid);
    e.expect(5);
    for n in 6..20 {
        e.send(n);
        e.expect(n);
    }
    // The server goes on to the end: it sees this client's FIN, not a reset.
    e.conn
        .shutdown(std::net::Shutdown::Write)
        .expect("shutdown");
    let eof = e.dir.join("server").with_extension("eof");
    wait_for(Duration::from_secs(20), || eof.exists().then_some(()))
        .expect("the restored server did not see the end of its connection");
}

#[test]
fn echo_server_with_a_client_outside_goes_on_ipv4() {
    conversation_goes_on("127.0.0.1");
}

#[test]
fn echo_server_with_a_client_outside_goes_on_ipv6() {
    if !std::path::Path::new("/proc/net/if_inet6").exists() {
        psnc_testkit::skip("tcp over ::1", "this kernel has no IPv6");
        return;
    }
    conversation_goes_on("::1");
}

/// Without a flag the capture refuses the connection, naming both flags; with `--tcp-close`
/// the restored server's connection is gone: its recv returns the end and it exits by itself.
#[test]
fn tcp_close_drops_the_connection() {
    let mut e = start("127.0.0.1");
    e.send(1);
    e.expect(1);
    e.idle();
    let image = e.dir.join("image");
    let r = capture(e.proc.pid, &image, &["--kill"]);
    r.assert_failed();
    assert!(
        r.stderr.contains("--tcp-established") && r.stderr.contains("--tcp-close"),
        "the refusal does not name both flags:\n{r}"
    );
    assert!(!image.exists());
    e.send(2);
    e.expect(2);
    e.idle();
    capture(e.proc.pid, &image, &["--kill", "--tcp-close"]).assert_ok();
    assert!(e.proc.reap(Duration::from_secs(10)).is_some(), "not killed");
    let _restored = restore(&image, &[], RunOpts::default());
    let eof = e.dir.join("server").with_extension("eof");
    wait_for(Duration::from_secs(20), || eof.exists().then_some(()))
        .expect("the restored server did not see its connection closed");
}

/// Byte `i` of a direction's stream, as `pat()` in tests/targets/inet.c.
fn pat(i: u64, seed: u64) -> u8 {
    ((i + seed)
        .wrapping_mul(131)
        .wrapping_add(i >> 9)
        .wrapping_add(i >> 17)) as u8
}

/// What the target sends in all (`STREAM_TOTAL` in inet.c) and what this test does.
const TARGET_TOTAL: u64 = 32 << 20;
const TEST_TOTAL: u64 = 32 << 20;
/// What this test sends before the capture: less than the target's receive window.
const PRE_CAPTURE: u64 = 32 << 10;

/// Writes the test's stream from `*sent` on to `TEST_TOTAL` (blocking).
fn write_stream(c: &mut TcpStream, sent: &mut u64) {
    while *sent < TEST_TOTAL {
        let n = (TEST_TOTAL - *sent).min(65536);
        let buf: Vec<u8> = (0..n).map(|i| pat(*sent + i, 2)).collect();
        c.write_all(&buf)
            .unwrap_or_else(|e| panic!("sending byte {sent} to the target: {e}"));
        *sent += n;
    }
}

/// Reads the target's stream to its end; returns how many bytes, panicking on a wrong byte or
/// an error (a reset).
fn read_stream(mut c: TcpStream) -> u64 {
    let mut got = 0u64;
    let mut buf = vec![0u8; 65536];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => {
                if let Some(i) = (0..n).find(|&i| buf[i] != pat(got + i as u64, 1)) {
                    panic!("the target's stream has a wrong byte at {}", got + i as u64);
                }
                got += n as u64;
            }
            Err(e) => panic!("reading the target's stream after {got} bytes: {e}"),
        }
    }
}

/// Whether `nft` (nftables) is installed: capture locks the connections with it.
fn nft_installed() -> bool {
    std::process::Command::new("nft")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Whether the network lock `table` exists.
fn locked(table: &str) -> bool {
    std::process::Command::new("nft")
        .args(["list", "table", "inet", table])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn queues_full_both_ways(bits: Bits, host: &str) {
    let what = format!("tcp stream {bits:?} {host}");
    if !m32_or_skip(bits, &what) {
        return;
    }
    if std::process::Command::new("nft")
        .arg("--version")
        .output()
        .is_err()
    {
        psnc_testkit::skip(
            &what,
            "nft is not installed, so capture takes no network lock (scripts/test.sh installs \
             nftables)",
        );
        return;
    }
    let bind = if host.contains(':') {
        format!("[{host}]:0")
    } else {
        format!("{host}:0")
    };
    let listener =
        std::net::TcpListener::bind(&bind).unwrap_or_else(|e| panic!("bind {bind}: {e}"));
    let port = listener
        .local_addr()
        .expect("local addr")
        .port()
        .to_string();
    let mut t = Spawn::new("inet")
        .args(&["stream", host, &port])
        .bits(bits)
        .start();
    let (mut c, _) = listener.accept().expect("accept the target's connection");
    // Bytes for the target's receive queue, all of them acknowledged before the capture (so
    // both queues are full and known).
    let mut sent = 0u64;
    let early: Vec<u8> = (0..PRE_CAPTURE).map(|i| pat(i, 2)).collect();
    c.write_all(&early).expect("send to the target");
    sent += PRE_CAPTURE;
    wait_for(Duration::from_secs(10), || {
        use std::os::fd::AsFd;
        let outq = psnc_ptrace::sock::ioctl_int(c.as_fd(), 0, psnc_ptrace::sock::SIOCOUTQ);
        (outq.ok() == Some(0)).then_some(())
    })
    .expect("the target's kernel did not acknowledge the bytes sent to it");
    let target_sent: u64 = t
        .report()
        .lines
        .iter()
        .find_map(|l| l.strip_prefix("INFO sent ")?.parse().ok())
        .expect("no INFO sent line");
    eprintln!("queued at capture: {target_sent} bytes from the target, {sent} to it");
    let image = t.dir.join("image");
    capture(t.pid(), &image, &["--kill", "--tcp-established"]).assert_ok();
    assert!(t.proc.reap(Duration::from_secs(10)).is_some(), "not killed");
    let table = format!("psnc_lock_{}", t.pid());
    assert!(locked(&table), "no network lock {table} after the capture");
    // While the target is down this side has bytes to send into its closed window: its kernel
    // probes the window, and only the lock keeps the host (which has no socket there now)
    // from answering with a reset.
    c.set_nonblocking(true).expect("non-blocking");
    let more: Vec<u8> = (sent..sent + 65536).map(|i| pat(i, 2)).collect();
    if let Ok(n) = c.write(&more) {
        sent += n as u64;
    }
    c.set_nonblocking(false).expect("blocking");
    std::thread::sleep(Duration::from_millis(1500));
    t.restore(&image, &[], RunOpts::default());
    assert!(!locked(&table), "the restore left the network lock {table}");
    c.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let reader = {
        let c = c.try_clone().expect("clone");
        std::thread::spawn(move || read_stream(c))
    };
    std::fs::File::create(go_path(&t.report)).expect("create the go file");
    write_stream(&mut c, &mut sent);
    c.shutdown(std::net::Shutdown::Write).expect("shutdown");
    let got = reader.join().expect("the reader panicked");
    assert_eq!(got, TARGET_TOTAL, "bytes of the target's stream");
    let r = t.wait_done();
    r.assert_passed(&[
        "local address",
        "peer address",
        "TCP_NODELAY",
        "SO_KEEPALIVE",
        "O_NONBLOCK",
        "established",
        "negotiated options",
        "window scales",
        "no reset",
        "peer's stream intact",
        "peer's end seen",
        "own stream sent",
    ]);
    assert!(
        r.lines
            .iter()
            .any(|l| l == &format!("INFO received {TEST_TOTAL}")),
        "the target did not receive all {TEST_TOTAL} bytes: {:?}",
        r.lines
    );
}

#[test]
fn queues_full_both_ways_x86_64_ipv4() {
    queues_full_both_ways(Bits::B64, "127.0.0.1");
}

#[test]
fn queues_full_both_ways_i386_ipv4() {
    queues_full_both_ways(Bits::B32, "127.0.0.1");
}

#[test]
fn queues_full_both_ways_i386_ipv6() {
    if !std::path::Path::new("/proc/net/if_inet6").exists() {
        psnc_testkit::skip("tcp over ::1", "this kernel has no IPv6");
        return;
    }
    queues_full_both_ways(Bits::B32, "::1");
}

fn both_ends_in_the_tree(bits: Bits) {
    if !m32_or_skip(bits, &format!("tcp loopback {bits:?}")) {
        return;
    }
    let mut t = Spawn::new("inet").args(&["loopback"]).bits(bits).start();
    let image = t.dir.join("image");
    capture(t.pid(), &image, &["--kill", "--tcp-established"]).assert_ok();
    assert!(t.proc.reap(Duration::from_secs(10)).is_some(), "not killed");
    // Both ends are in the tree: they are locked all the same (nothing may reach them).
    let table = format!("psnc_lock_{}", t.pid());
    let nft = nft_installed();
    assert!(
        !nft || locked(&table),
        "no network lock {table} after the capture"
    );
    t.restore(&image, &[], RunOpts::default());
    assert!(!locked(&table), "the restore left the network lock {table}");
    t.verify().assert_passed(&[
        "queued bytes, both ends here",
        "new messages, both ends here",
        "queued bytes, other end in the child",
        "new messages with the child",
        "child's end",
    ]);
}

#[test]
fn both_ends_in_the_tree_x86_64() {
    both_ends_in_the_tree(Bits::B64);
}

#[test]
fn both_ends_in_the_tree_i386() {
    both_ends_in_the_tree(Bits::B32);
}
