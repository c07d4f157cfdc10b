//! Unix sockets (issue 10): socketpairs shared across a fork with messages queued both ways
//! (stream and seqpacket), a datagram pair with queued datagrams (boundaries, O_NONBLOCK,
//! SO_RCVBUF, SO_PASSCRED), a shut-down write side, listeners on a path and in the abstract
//! namespace reached by new clients after restore, a name unlinked after bind, a socket whose
//! peer closed, for x86_64 and i386 (tests/targets/unixsock.c). Sockets whose peer is outside
//! the tree (a daemon's listener, a bound datagram socket, the launcher's socketpair end):
//! reconnected by name, or connected to nothing, or handed a socket with `--inherit-fd`.
//! Refused with the exact message, the target running on untouched: a connection not accepted
//! yet by a listener outside, a datagram socket connected one way, SCM_RIGHTS in flight; at
//! restore, a listener's path held by another file or a live socket.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use psnc_format::model::FdKind;
use psnc_format::Image;
use psnc_tests::{assert_running_untraced, Bits, ProcGuard, RunOpts, Spawn};

const PAIR: &[&str] = &[
    "parent_stream_queue",
    "parent_seqpacket_queue",
    "dgram_queue_boundaries",
    "dgram_nonblock",
    "dgram_new",
    "dgram_rcvbuf",
    "dgram_passcred",
    "shutdown_eof",
    "shutdown_epipe",
    "child_stream_queue",
    "child_seqpacket_queue",
    "child_stream_new",
    "peer_closed_queue",
    "peer_closed_eof",
    "parent_stream_new",
    "parent_seqpacket_new",
    "child_done",
];

const LISTEN: &[&str] = &[
    "path_file",
    "path_listener",
    "abstract_listener",
    "unlinked_name",
];

/// Runs `f` for `bits`, or counts an honest skip for i386 without gcc-multilib.
fn with_bits(bits: Bits, what: &str, f: impl FnOnce()) {
    if psnc_tests::m32_or_skip(bits, what) {
        f()
    }
}

/// The unix socket state of fd `fd` of `pid` in the image.
fn unix_of(img: &Image, pid: u32, fd: i32) -> (u32, psnc_format::model::UnixSocket) {
    let p = img
        .checkpoint()
        .processes
        .iter()
        .find(|p| p.pid == pid)
        .expect("the process in the image");
    match &p.fds.iter().find(|f| f.fd == fd).expect("the fd").kind {
        FdKind::Socket {
            family: 1,
            sock_type,
            unix: Some(u),
            ..
        } => (*sock_type, (**u).clone()),
        k => panic!("fd {fd} of {pid} is {k:?}"),
    }
}

#[test]
fn pairs_without_checkpoint() {
    let mut t = Spawn::new("unixsock").args(&["pair"]).start();
    t.verify().assert_passed(PAIR);
}

fn pairs(bits: Bits) {
    let mut t = Spawn::new("unixsock").args(&["pair"]).bits(bits).start();
    let (r, c) = (t.pid(), t.report().pid_after("UP C "));
    let image = t.dir.join("image");
    t.capture_kill(&image);
    let img = Image::open(&image).expect("open the image");
    // Queued both ways, each in the receiver's record, with boundaries where they exist.
    let (ty, u) = unix_of(&img, r, 10);
    assert_eq!((ty, u.state), (1, 1));
    assert_eq!(u.queued.concat(), b"pong-from-child");
    let (_, cu) = unix_of(&img, c, 10);
    assert_eq!(cu.queued.concat(), b"ping-from-parent-1ping-from-parent-2");
    let ino = |pid: u32, fd: i32| {
        let p = img
            .checkpoint()
            .processes
            .iter()
            .find(|p| p.pid == pid)
            .expect("the process in the image");
        match p.fds.iter().find(|f| f.fd == fd).map(|f| &f.kind) {
            Some(FdKind::Socket { ino, .. }) => *ino,
            k => panic!("fd {fd} of {pid} is {k:?}"),
        }
    };
    // One pair across the fork: each end's peer is the other process's fd 10.
    assert_eq!((cu.peer_ino, u.peer_ino), (ino(r, 10), ino(c, 10)));
    let (ty, u) = unix_of(&img, r, 11);
    assert_eq!((ty, u.queued), (5, vec![b"c1".to_vec(), b"c333".to_vec()]));
    let (ty, u) = unix_of(&img, r, 12);
    assert_eq!(ty, 2);
    assert_eq!(
        u.queued,
        vec![b"d1".to_vec(), b"dd2".to_vec(), b"ddd3".to_vec()]
    );
    assert_eq!(
        (
            unix_of(&img, r, 15).1.shutdown,
            unix_of(&img, r, 14).1.shutdown
        ),
        (2, 1)
    );
    drop(img);
    t.restore(&image, &[], RunOpts::default());
    let _child = ProcGuard::foreign(c);
    t.verify().assert_passed(PAIR);
}

#[test]
fn pairs_across_a_fork_x86_64() {
    pairs(Bits::B64);
}

#[test]
fn pairs_across_a_fork_i386() {
    with_bits(Bits::B32, "unix socketpairs, i386", || pairs(Bits::B32));
}

/// One socketpair whose both ends the parent and its child each keep after fork: every fd is
/// one socket held by two processes, and stays one after restore (fd-shares groups them), so
/// the child's new bytes reach the parent and the bytes queued at capture are there once.
fn shared_ends(bits: Bits) {
    let mut t = Spawn::new("unixsock").args(&["shared"]).bits(bits).start();
    let pid = t.pid();
    let kid = t.report().pid_after("UP C ");
    let _kid = psnc_tests::ProcGuard::foreign(kid);
    let image = t.dir.join("image");
    t.capture_kill(&image);
    t.restore(&image, &[], RunOpts::default());
    for fd in [10, 20] {
        assert!(
            psnc_ptrace::sys::kcmp_file(pid as i32, fd, kid as i32, fd).expect("kcmp"),
            "fd {fd} of {pid} and of {kid} are two sockets after restore"
        );
    }
    t.verify().assert_passed(&[
        "shared_child_bytes_reach_parent",
        "shared_parent_bytes_queued_once",
        "shared_nothing_else_queued",
        "shared_one_socket_per_fd",
    ]);
}

#[test]
fn pair_ends_held_by_parent_and_child_x86_64() {
    shared_ends(Bits::B64);
}

#[test]
fn pair_ends_held_by_parent_and_child_i386() {
    with_bits(
        Bits::B32,
        "unix socketpair held by two processes, i386",
        || shared_ends(Bits::B32),
    );
}

fn listeners(bits: Bits) {
    let mut t = Spawn::new("unixsock").args(&["listen"]).bits(bits).start();
    let pid = t.pid();
    let image = t.dir.join("image");
    t.capture_kill(&image);
    let img = Image::open(&image).expect("open the image");
    let (ty, u) = unix_of(&img, pid, 16);
    assert_eq!((ty, u.state, u.backlog), (1, 10, 5));
    assert_eq!(u.file.map(|f| f.mode), Some(0o640));
    let (ty, u) = unix_of(&img, pid, 17);
    assert_eq!((ty, u.state, u.backlog), (5, 10, 3));
    assert_eq!(u.name, format!("\0psnc-unixsock-{pid}").into_bytes());
    let (_, u) = unix_of(&img, pid, 18);
    assert_eq!((u.state, u.file), (7, None));
    drop(img);
    // The killed target left its socket file behind, stale: restore replaces it.
    let sock = Path::new(&format!("{}.sock", t.report.display())).to_path_buf();
    assert!(
        sock.exists(),
        "the stale socket file {} is gone",
        sock.display()
    );
    t.restore(&image, &[], RunOpts::default());
    let mode = std::fs::metadata(&sock)
        .expect("the socket file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o640);
    // A client from outside the tree reaches the listener: the target accepts it first (its
    // own client queues behind it) and reads its "hi".
    use std::io::Write;
    std::os::unix::net::UnixStream::connect(&sock)
        .and_then(|mut c| c.write_all(b"hi"))
        .expect("connect to the restored listener");
    t.verify().assert_passed(LISTEN);
}

#[test]
fn listeners_x86_64() {
    listeners(Bits::B64);
}

#[test]
fn listeners_i386() {
    with_bits(Bits::B32, "unix listeners, i386", || listeners(Bits::B32));
}

/// Capture refuses with exactly `want` (given the target's PID), and the target runs on.
fn refused(args: &[&str], want: impl Fn(u32) -> String, expect: &[&str]) {
    let mut t = Spawn::new("unixsock").args(args).start();
    let image = t.dir.join("image");
    let r = t.capture(&image, &["--kill"]);
    r.assert_status(69);
    let want = want(t.pid());
    assert!(r.stderr.contains(&want), "expected {want:?} in:\n{r}");
    assert!(!image.exists(), "an image after a refused capture");
    assert_running_untraced(t.pid());
    t.verify().assert_passed(expect);
}

/// A "daemon" outside the tree listening at a path; with `accept`, it takes the connection.
fn outside(accept: bool, suffix: &str) {
    let dir = psnc_tests::WorkDir::new("unix-outside");
    let path = dir.join("daemon.sock");
    let daemon = std::os::unix::net::UnixListener::bind(&path).expect("bind the daemon");
    let shown = path.display().to_string();
    let mut t = Spawn::new("unixsock").args(&["outside", &shown]).start();
    let _conn = accept.then(|| daemon.accept().expect("accept the target"));
    let image = t.dir.join("image");
    let r = t.capture(&image, &["--kill"]);
    r.assert_status(69);
    let want = format!(
        "PID {}: fd 5 is a unix stream socket connected to {shown} outside the image{suffix}, \
         which psnc-capture does not support yet",
        t.pid()
    );
    assert!(r.stderr.contains(&want), "expected {want:?} in:\n{r}");
    assert!(!image.exists(), "an image after a refused capture");
    assert_running_untraced(t.pid());
    t.verify().assert_passed(&["outside_still_connected"]);
}

/// A daemon outside the tree: a stream listener at `path` answering each "ping" line with
/// "pong", counting its connections, and a datagram socket bound at `path.dgram` (a syslog).
struct Daemon {
    connections: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    log: std::os::unix::net::UnixDatagram,
}

impl Daemon {
    fn start(path: &Path) -> Daemon {
        use std::io::{BufRead, Write};
        let listener = std::os::unix::net::UnixListener::bind(path).expect("bind the daemon");
        let log = std::os::unix::net::UnixDatagram::bind(format!("{}.dgram", path.display()))
            .expect("bind the log socket");
        log.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .expect("timeout");
        let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = connections.clone();
        // Bounded: the thread ends with the test process (it only accepts and answers).
        std::thread::spawn(move || {
            for conn in listener.incoming().take(8) {
                let Ok(conn) = conn else { break };
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                std::thread::spawn(move || {
                    let mut w = conn.try_clone().expect("clone");
                    for line in std::io::BufReader::new(conn).lines().take(100) {
                        match line {
                            Ok(l) if l == "ping" => {
                                let _ = w.write_all(b"pong\n");
                            }
                            _ => break,
                        }
                    }
                });
            }
        });
        Daemon { connections, log }
    }

    fn logged(&self) -> String {
        let mut buf = [0u8; 64];
        let n = self
            .log
            .recv(&mut buf)
            .expect("a datagram on the log socket");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
}

/// The target in `outside` mode: fd 5 connected to the daemon's listener, fd 6 to its log
/// socket, stdout a socketpair end whose other end the test (its "supervisor") holds until it
/// drops the last returned item (after the capture).
fn outside_target(
    expect: &str,
    bits: Bits,
) -> (
    psnc_tests::Target,
    psnc_tests::WorkDir,
    Daemon,
    std::path::PathBuf,
    std::os::unix::net::UnixStream,
) {
    use std::io::Read;
    let dir = psnc_tests::WorkDir::new("unix-outside");
    let path = dir.join("daemon.sock");
    let daemon = Daemon::start(&path);
    let (mut ours, theirs) = std::os::unix::net::UnixStream::pair().expect("socketpair");
    let t = Spawn::new("unixsock")
        .args(&["outside", path.to_str().expect("utf-8"), expect])
        .bits(bits)
        .stdout(theirs.into())
        .start();
    ours.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    let mut before = [0u8; 7];
    ours.read_exact(&mut before)
        .expect("the target's first line");
    assert_eq!(&before, b"before\n");
    assert_eq!(daemon.logged(), "log1");
    (t, dir, daemon, path, ours)
}

/// The unix-peers records of `image`, as (peer name, peer unnamed) sorted.
fn peer_names(image: &Path) -> Vec<String> {
    let r = psnc_tests::run(
        &psnc_tests::tool("psnc-imgtool"),
        &[
            "dump",
            image.to_str().expect("utf-8"),
            "--section",
            "unix-peers",
            "--json",
        ],
        RunOpts::default(),
    );
    r.assert_ok();
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("json");
    let mut names: Vec<String> = v["unix-peers"]
        .as_array()
        .expect("records")
        .iter()
        .map(|x| x["name"].as_str().unwrap_or("?").to_string())
        .collect();
    names.sort();
    names
}

/// Sockets whose peer is outside the tree, restored without any flag: the stream connection to
/// a daemon's path and the datagram socket connected to a bound one are connected to those
/// names again (a request gets its answer, the daemon counts a second connection, the log gets
/// the datagram); stdout, a socketpair end whose other end the launcher held, is connected to
/// nothing (a write fails with EPIPE). One line each says so.
fn reconnected(bits: Bits) {
    if !psnc_tests::m32_or_skip(bits, "unix peers outside i386") {
        return;
    }
    let (mut t, _dir, daemon, path, supervisor) = outside_target("closed", bits);
    let image = t.dir.join("image");
    t.capture_kill(&image);
    drop(supervisor);
    let shown = path.display().to_string();
    assert_eq!(
        peer_names(&image),
        vec![String::new(), shown.clone(), format!("{shown}.dgram")]
    );
    // The independent Python reader decodes the section and checks it against the sockets.
    let reader = psnc_tests::package_dir().join("../spec/reader/psnc_reader.py");
    let py = psnc_tests::run(
        Path::new("python3"),
        &[
            reader.to_str().expect("utf-8"),
            "--json",
            image.to_str().expect("utf-8"),
        ],
        RunOpts::default(),
    );
    py.assert_ok();
    let summary: serde_json::Value = serde_json::from_str(&py.stdout).expect("json");
    assert!(
        summary["sections"]
            .as_array()
            .expect("sections")
            .iter()
            .any(|x| x["name"] == "unix-peers" && x["status"] == "decoded"),
        "{summary}"
    );
    let r = t.restore_with_output(&image, &[], RunOpts::default());
    for want in [
        "fd 5: socket:[".to_string(),
        format!("(unix stream) was connected to {shown} outside the image; reconnected to {shown}: a new connection"),
        format!("(unix datagram) was connected to {shown}.dgram outside the image; reconnected to {shown}.dgram"),
        "(unix stream) was connected to socket:[".to_string(),
        "outside the image; restored connected to nothing (its peer had no name to connect to): reads see its 0 queued bytes, then EOF; writes fail with EPIPE; to reconnect it, restore with --inherit-fd fd[N]:socket:[".to_string(),
    ] {
        assert!(r.stderr.contains(&want), "no {want:?} in:\n{r}");
    }
    t.verify().assert_passed(&[
        "outside_reconnected",
        "outside_dgram_reconnected",
        "stdout_peer_gone",
    ]);
    assert_eq!(daemon.logged(), "log2");
    assert_eq!(
        daemon.connections.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "the daemon saw the original connection and the restored one"
    );
}

#[test]
fn peers_outside_are_reconnected_by_name_or_to_nothing_x86_64() {
    reconnected(Bits::B64);
}

#[test]
fn peers_outside_are_reconnected_by_name_or_to_nothing_i386() {
    reconnected(Bits::B32);
}

/// The same image restored with `--inherit-fd fd[0]:socket:[INO]` for stdout: the restore hands
/// the process the socket it got as its own fd 0, a new supervisor end the test reads from.
#[test]
fn a_peer_outside_is_replaced_with_inherit_fd() {
    use std::io::Read;
    let (mut t, _dir, daemon, _path, supervisor) = outside_target("inherit", Bits::B64);
    let stdout = std::fs::read_link(format!("/proc/{}/fd/1", t.pid()))
        .expect("stdout link")
        .display()
        .to_string();
    let image = t.dir.join("image");
    t.capture_kill(&image);
    drop(supervisor);
    let (mut ours, theirs) = std::os::unix::net::UnixStream::pair().expect("socketpair");
    let arg = format!("fd[0]:{stdout}");
    let r = t.restore_with_output(
        &image,
        &["--inherit-fd", &arg],
        RunOpts {
            stdin: Some(std::process::Stdio::from(std::os::fd::OwnedFd::from(
                theirs,
            ))),
            ..RunOpts::default()
        },
    );
    assert!(
        !r.stderr.contains("restored connected to nothing"),
        "stdout was not handed the inherited socket:\n{r}"
    );
    t.verify().assert_passed(&[
        "outside_reconnected",
        "outside_dgram_reconnected",
        "stdout_inherited",
    ]);
    ours.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    let mut after = [0u8; 6];
    ours.read_exact(&mut after)
        .expect("the restored target's line");
    assert_eq!(&after, b"after\n");
    assert_eq!(daemon.logged(), "log2");
}

/// With `--external=refuse`, such a socket is refused before anything is created, naming it.
#[test]
fn a_peer_outside_is_refused_with_external_refuse() {
    let (mut t, _dir, _daemon, _path, supervisor) = outside_target("closed", Bits::B64);
    let image = t.dir.join("image");
    t.capture_kill(&image);
    drop(supervisor);
    let r = psnc_tests::restore_run(&image, &["--external=refuse"], RunOpts::default());
    r.assert_status(69);
    // The first fd whose peer was outside: stdout, the supervisor's socketpair end.
    let want = "fd 1 is socket:[";
    let why = "(a unix stream socket connected to socket:[";
    let what = "(unnamed)), whose other end was outside the image, and --external=refuse is given";
    for w in [want, why, what] {
        assert!(r.stderr.contains(w), "no {w:?} in:\n{r}");
    }
    assert!(!psnc_tests::alive(t.pid()), "a process after the refusal");
}

#[test]
fn a_connection_not_accepted_yet_by_a_listener_outside_is_refused() {
    outside(false, " (not accepted yet)");
}

#[test]
fn a_datagram_socket_connected_one_way_is_refused() {
    let mut t = Spawn::new("unixsock").args(&["oneway"]).start();
    let image = t.dir.join("image");
    let r = t.capture(&image, &["--kill"]);
    r.assert_status(69);
    let want = format!(
        "PID {}: fd 6 is a unix datagram socket connected to {}.dsock, a socket of the image not \
         connected back to it, which psnc-capture does not support yet",
        t.pid(),
        t.report.display()
    );
    assert!(r.stderr.contains(&want), "expected {want:?} in:\n{r}");
    assert!(!image.exists(), "an image after a refused capture");
    assert_running_untraced(t.pid());
    t.verify().assert_passed(&["oneway_still_works"]);
}

#[test]
fn file_descriptors_in_flight_are_refused() {
    refused(
        &["rights"],
        |pid| {
            format!(
                "PID {pid}: fd 5 is a unix stream socket with file descriptors in flight \
                 (SCM_RIGHTS) in its queue, which psnc-capture does not support yet"
            )
        },
        &["rights_still_queued"],
    );
}

/// Restore refuses, before anything exists, a listener's path that another file holds or that
/// a live socket listens on.
#[test]
fn a_listener_path_held_by_something_else_is_refused_at_restore() {
    let mut t = Spawn::new("unixsock").args(&["listen"]).start();
    let image = t.dir.join("image");
    t.capture_kill(&image);
    let sock = Path::new(&format!("{}.sock", t.report.display())).to_path_buf();
    let shown = sock.display().to_string();
    std::fs::remove_file(&sock).expect("remove the stale socket file");
    std::fs::write(&sock, b"not a socket").expect("a regular file in the way");
    let r = psnc_tests::restore_run(&image, &[], RunOpts::default());
    r.assert_status(69);
    let want = format!(
        "fd 16: cannot bind the unix socket to {shown}: the path exists and is not a socket; \
         move it away first"
    );
    assert!(r.stderr.contains(&want), "expected {want:?} in:\n{r}");
    std::fs::remove_file(&sock).expect("remove the file");
    let _live = std::os::unix::net::UnixListener::bind(&sock).expect("a live listener");
    let r = psnc_tests::restore_run(&image, &[], RunOpts::default());
    r.assert_status(69);
    let want = format!(
        "fd 16: cannot bind the unix socket to {shown}: a socket there is in use (something \
         listens on it); stop it first"
    );
    assert!(r.stderr.contains(&want), "expected {want:?} in:\n{r}");
    assert!(
        !psnc_tests::alive(t.pid()),
        "a process after a refused restore"
    );
}
