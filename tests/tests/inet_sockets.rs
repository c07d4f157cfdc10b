//! IPv4/IPv6 sockets (issue 10): TCP listeners on 127.0.0.1 and [::1] with their options and
//! UDP sockets connected to each other come back bound, listening and connected, and serve new
//! clients from outside, for x86_64 and i386; a listener shared by a pre-forking server's three
//! processes serves every client after restore, and so does `python3 -m http.server`.
//! Refusals at capture (the target runs on untouched): an established connection, a listener
//! with a connection waiting, a queued datagram, a socket in another network namespace; at
//! restore: a port taken on this host (nothing is left behind).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use psnc_tests::{
    alive, assert_running_untraced, capture_kill, restore, restore_run, spawn_program, targets,
    wait_for, Bits, RunOpts, Spawn, Target, WorkDir,
};

/// The value of the target's `INFO KEY V` line.
fn info(t: &Target, key: &str) -> String {
    let prefix = format!("INFO {key} ");
    t.report()
        .lines
        .iter()
        .find_map(|l| l.strip_prefix(&prefix).map(str::to_string))
        .unwrap_or_else(|| panic!("no {prefix:?} line in {:?}", t.report().lines))
}

fn ping(addr: &str) {
    let mut c = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    c.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("read timeout");
    c.write_all(b"ping").expect("send ping");
    let mut buf = [0u8; 4];
    c.read_exact(&mut buf).expect("read pong");
    assert_eq!(&buf, b"pong", "{addr}");
}

const LISTEN_EXPECT: &[&str] = &[
    "tcp4 port",
    "tcp4 listening",
    "tcp4 SO_REUSEADDR",
    "tcp4 SO_KEEPALIVE",
    "tcp4 TCP_NODELAY",
    "tcp4 TCP_KEEPIDLE",
    "tcp4 SO_RCVBUF",
    "tcp6 port",
    "tcp6 IPV6_V6ONLY",
    "tcp6 SO_REUSEADDR",
    "tcp6 O_NONBLOCK",
    "tcp6 SO_KEEPALIVE",
    "udp ports",
    "udp u1 -> u2",
    "udp u2 -> u1",
    "tcp4 client served",
    "tcp6 client served",
];

fn listen(bits: Bits) {
    let mut t = Spawn::new("inet").args(&["listen"]).bits(bits).start();
    let (p4, p6) = (info(&t, "port4"), info(&t, "port6"));
    t.checkpoint_restore();
    std::fs::File::create(psnc_tests::go_path(&t.report)).expect("create the go file");
    ping(&format!("127.0.0.1:{p4}"));
    ping(&format!("[::1]:{p6}"));
    t.wait_done().assert_passed(LISTEN_EXPECT);
}

#[test]
fn listeners_and_udp_x86_64() {
    listen(Bits::B64);
}

#[test]
fn listeners_and_udp_i386() {
    if !targets().m32 {
        psnc_testkit::skip("inet i386", "no -m32 targets (install gcc-multilib)");
        return;
    }
    listen(Bits::B32);
}

#[test]
fn prefork_shared_listener_serves_every_client_x86_64() {
    prefork(Bits::B64);
}

#[test]
fn prefork_shared_listener_serves_every_client_i386() {
    if !targets().m32 {
        psnc_testkit::skip(
            "inet prefork i386",
            "no -m32 targets (install gcc-multilib)",
        );
        return;
    }
    prefork(Bits::B32);
}

fn prefork(bits: Bits) {
    let mut t = Spawn::new("inet").args(&["prefork"]).bits(bits).start();
    let port = info(&t, "port4");
    let mut pids: Vec<u32> = vec![t.pid()];
    for l in &t.report().lines {
        if let Some(c) = l.strip_prefix("INFO child ") {
            pids.push(c.parse().expect("a child PID"));
        }
    }
    assert_eq!(pids.len(), 3);
    t.checkpoint_restore();
    for child in &pids[1..] {
        assert!(
            psnc_ptrace::sys::kcmp_file(pids[0] as i32, 3, *child as i32, 3).expect("kcmp"),
            "child {child} has another listener than its parent after restore"
        );
    }
    t.verify().assert_passed(&["shared listener listening"]);
    for _ in 0..9 {
        let mut c = TcpStream::connect(format!("127.0.0.1:{port}")).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        let mut s = String::new();
        c.read_to_string(&mut s).expect("read the answer");
        let pid: u32 = s
            .trim()
            .strip_prefix("served ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("bad answer {s:?}"));
        assert!(pids.contains(&pid), "served by {pid}, not one of {pids:?}");
    }
}

/// Capture refuses with exactly `want`, and the target runs on and passes `expect`.
fn refused(mode: &str, want: impl Fn(&Target) -> String, expect: &[&str]) {
    let mut t = Spawn::new("inet").args(&[mode]).start();
    let image = t.dir.join("image");
    let r = t.capture(&image, &["--kill"]);
    r.assert_status(69);
    let want = want(&t);
    assert!(
        r.stderr.contains(&want),
        "wanted {want:?} in:\n{}",
        r.stderr
    );
    assert!(!image.exists(), "an image was left");
    assert_running_untraced(t.pid());
    t.verify().assert_passed(expect);
}

#[test]
fn an_established_connection_is_refused() {
    refused(
        "established",
        |t| {
            let ports = info(t, "ports");
            let p: Vec<&str> = ports.split(' ').collect();
            format!(
                "PID {}: fd {} is an established TCP connection 127.0.0.1:{} -> 127.0.0.1:{}; \
                 capture it with --tcp-established (restore continues the connection) or \
                 --tcp-close (restore gives a socket whose connection is closed)",
                t.pid(),
                info(t, "fd"),
                p[1],
                p[0]
            )
        },
        &["connection works"],
    );
}

#[test]
fn a_listener_with_a_waiting_connection_is_refused() {
    refused(
        "backlog",
        |t| {
            format!(
                "PID {}: fd {} is a TCP listener on 127.0.0.1:{} with 1 connection(s) waiting in \
                 its accept queue; capture it when they are accepted",
                t.pid(),
                info(t, "fd"),
                info(t, "port4")
            )
        },
        &["connection accepted"],
    );
}

#[test]
fn a_udp_socket_with_a_queued_datagram_is_refused() {
    refused(
        "udpqueued",
        |t| {
            format!(
                "PID {}: fd {} is a UDP socket on 127.0.0.1:{} with queued datagrams (the next \
                 is 5 bytes); capture it when they are read",
                t.pid(),
                info(t, "fd"),
                info(t, "port4")
            )
        },
        &["datagram still queued"],
    );
}

#[test]
fn a_port_taken_on_this_host_is_refused_at_restore() {
    let mut t = Spawn::new("inet").args(&["listen"]).start();
    let (port, fd) = (info(&t, "port4"), info(&t, "fd4"));
    let image = t.dir.join("image");
    t.capture_kill(&image);
    let squatter =
        std::net::TcpListener::bind(format!("127.0.0.1:{port}")).expect("bind the freed port");
    let r = restore_run(&image, &[], RunOpts::default());
    r.assert_status(69);
    let want = format!(
        "cannot restore fd {fd} of PID {}: 127.0.0.1:{port} is in use on this host; stop what \
         holds it (or wait for its connections to time out) and restore again",
        t.pid()
    );
    assert!(
        r.stderr.contains(&want),
        "wanted {want:?} in:\n{}",
        r.stderr
    );
    assert!(!alive(t.pid()), "a process {} was left behind", t.pid());
    drop(squatter);
    t.restore(&image, &[], RunOpts::default());
    std::fs::File::create(psnc_tests::go_path(&t.report)).expect("create the go file");
    ping(&format!("127.0.0.1:{port}"));
    ping(&format!("[::1]:{}", info(&t, "port6")));
    t.wait_done().assert_passed(LISTEN_EXPECT);
}

/// An HTTP/1.0 GET of `path` on 127.0.0.1:`port`: the whole answer.
fn http_get(port: u16, path: &str) -> String {
    let mut c = TcpStream::connect(("127.0.0.1", port)).expect("connect to http.server");
    c.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("read timeout");
    write!(c, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").expect("send the request");
    let mut s = String::new();
    c.read_to_string(&mut s).expect("read the answer");
    s
}

#[test]
fn python3_http_server_serves_a_file_after_restore() {
    let dir = WorkDir::new("inet-http");
    std::fs::write(dir.join("hello.txt"), "hello from before the checkpoint\n").expect("write");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut p = spawn_program(
        std::process::Command::new("python3")
            .args(["-m", "http.server", "--bind", "127.0.0.1", "--directory"])
            .arg(dir.path())
            .arg(port.to_string()),
    );
    wait_for(Duration::from_secs(20), || {
        TcpStream::connect(("127.0.0.1", port)).ok()
    })
    .expect("http.server does not listen");
    assert!(http_get(port, "/hello.txt").contains("hello from before"));
    let image = dir.join("image");
    capture_kill(&mut p, &image);
    let r = restore(&image, &[], RunOpts::default());
    assert_eq!(r.pid, p.pid, "restored with another PID");
    for _ in 0..3 {
        let answer = http_get(port, "/hello.txt");
        assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
        assert!(
            answer.ends_with("hello from before the checkpoint\n"),
            "{answer}"
        );
    }
}

#[test]
fn a_socket_in_another_network_namespace_is_refused() {
    let dir = WorkDir::new("inet-netns");
    let ready = dir.join("ready");
    let script = "import socket, sys, time\n\
                  s = socket.socket()\n\
                  s.bind(('0.0.0.0', 0))\n\
                  s.listen()\n\
                  open(sys.argv[1], 'w').write(str(s.fileno()))\n\
                  time.sleep(120)\n";
    let mut p = spawn_program(
        std::process::Command::new("unshare")
            .args(["--net", "python3", "-c", script])
            .arg(&ready),
    );
    let fd = wait_for(Duration::from_secs(20), || {
        std::fs::read_to_string(&ready)
            .ok()
            .filter(|s| !s.is_empty())
    })
    .expect("the python3 in its own network namespace did not start");
    let image = dir.join("image");
    let r = psnc_tests::capture(p.pid, &image, &["--kill"]);
    r.assert_status(69);
    let ours = std::fs::read_link("/proc/self/ns/net").expect("our network namespace");
    let want = format!(
        "PID {}: fd {fd} is an IPv4/IPv6 socket in another network namespace (net:[",
        p.pid
    );
    assert!(
        r.stderr.contains(&want),
        "wanted {want:?} in:\n{}",
        r.stderr
    );
    let tail = format!(
        "; psnc-capture runs in {}): run psnc-capture and psnc-restore inside it (nsenter --net)",
        ours.display()
    );
    assert!(
        r.stderr.contains(&tail),
        "wanted {tail:?} in:\n{}",
        r.stderr
    );
    assert!(!image.exists(), "an image was left");
    assert_running_untraced(p.pid);
    assert!(p.alive());
}
