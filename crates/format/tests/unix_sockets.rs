//! Section 19 `unix-sockets` (§8.20): a socketpair's two ends and a listener keep their state
//! through both layout classes, the section is critical and written only when some fd is a
//! unix socket, and records that disagree with their fds are refused.

mod imagecraft;

use imagecraft::write_with;
use psnc_format::example::example_checkpoint;
use psnc_format::layout::SECTION_CRITICAL;
use psnc_format::model::{Arch, Checkpoint, Fd, FdKind, UnixSocket, UnixSocketFile};
use psnc_format::sections::{SectionKind, UnixSocketV1};
use psnc_format::{FormatError, Image, LayoutClass};

fn both() -> [(Arch, LayoutClass); 3] {
    [
        (Arch::X86_64, LayoutClass::Bits64),
        (Arch::I386, LayoutClass::Bits32),
        (Arch::I386, LayoutClass::Bits64),
    ]
}

fn sock(fd: i32, sock_type: u32, ino: u64, u: UnixSocket) -> Fd {
    Fd {
        fd,
        flags: libc::O_RDWR as u32,
        cloexec: false,
        pos: 0,
        kind: FdKind::Socket {
            family: 1,
            sock_type,
            ino,
            unix: Some(Box::new(u)),
        },
    }
}

/// A seqpacket pair (fds 20, 21) with two messages queued one way and a shut-down side, and a
/// listener on a path (fd 22).
fn sockets() -> Vec<Fd> {
    vec![
        sock(
            20,
            5,
            1000,
            UnixSocket {
                state: 1,
                peer_ino: 1001,
                queued: vec![b"one".to_vec(), b"three".to_vec()],
                rcvbuf: 212992,
                sndbuf: 212992,
                ..UnixSocket::default()
            },
        ),
        sock(
            21,
            5,
            1001,
            UnixSocket {
                state: 1,
                peer_ino: 1000,
                shutdown: 2,
                passcred: true,
                ..UnixSocket::default()
            },
        ),
        sock(
            22,
            1,
            1002,
            UnixSocket {
                state: 10,
                name: b"/tmp/x.sock".to_vec(),
                file: Some(UnixSocketFile {
                    mode: 0o755,
                    uid: 1,
                    gid: 2,
                }),
                backlog: 7,
                ..UnixSocket::default()
            },
        ),
    ]
}

fn with_sockets(arch: Arch, fds: Vec<Fd>) -> Checkpoint {
    let mut ck = example_checkpoint(arch);
    ck.processes[0].fds.extend(fds);
    ck
}

#[test]
fn unix_sockets_round_trip_in_every_class() {
    for (arch, class) in both() {
        let (img, want) = write_with(with_sockets(arch, sockets()), arch, class, Vec::new());
        let image = Image::from_vec(img).expect("open");
        assert_eq!(image.checkpoint(), &want, "{arch:?} {class:?}");
        let fds = &image.checkpoint().processes[0].fds;
        assert_eq!(&fds[fds.len() - 3..], &sockets()[..]);
        let e: Vec<_> = image.sections().iter().filter(|e| e.kind == 19).collect();
        assert_eq!(e.len(), 1);
        assert_eq!((e[0].version, e[0].flags), (1, SECTION_CRITICAL));
    }
}

#[test]
fn images_without_unix_sockets_have_no_unix_sockets_section() {
    for (arch, class) in both() {
        let (img, _) = write_with(example_checkpoint(arch), arch, class, Vec::new());
        let image = Image::from_vec(img).expect("open");
        assert!(image.sections().iter().all(|e| e.kind != 19));
    }
}

/// The example with `fds` added without their records and `records` as the section.
fn refused(fds: Vec<Fd>, records: Vec<UnixSocketV1>) -> String {
    let k = SectionKind::UnixSockets;
    let mut ck = example_checkpoint(Arch::X86_64);
    ck.processes[0].fds.extend(fds.into_iter().map(|mut f| {
        if let FdKind::Socket { unix, .. } = &mut f.kind {
            *unix = None;
        }
        f
    }));
    let body = postcard::to_stdvec(&records).expect("encode");
    let (img, _) = write_with(
        ck,
        Arch::X86_64,
        LayoutClass::Bits64,
        vec![(k.number(), 1, k.flags(), body)],
    );
    match Image::from_vec(img) {
        Err(FormatError::Invalid(m)) => m,
        r => panic!("not refused as invalid: {r:?}"),
    }
}

fn record(fd: i32, ino: u64, peer_ino: u64) -> UnixSocketV1 {
    UnixSocketV1 {
        pid: 42,
        fd,
        ino,
        sock_type: 1,
        state: 1,
        peer_ino,
        name: Vec::new(),
        file: None,
        backlog: 0,
        shutdown: 0,
        passcred: false,
        rcvbuf: 0,
        sndbuf: 0,
        queued: Vec::new(),
    }
}

#[test]
fn records_that_disagree_with_their_fds_are_invalid() {
    let pair = || {
        vec![
            sock(20, 1, 1000, UnixSocket::default()),
            sock(21, 1, 1001, UnixSocket::default()),
        ]
    };
    assert_eq!(
        refused(pair(), vec![record(20, 1000, 1001)]),
        "fd 21 of pid 42 is a unix socket without its unix-sockets record"
    );
    assert_eq!(
        refused(pair(), vec![record(20, 1000, 1001), record(20, 1000, 1001)]),
        "the unix-sockets record of pid 42 fd 20 appears twice"
    );
    assert_eq!(
        refused(pair(), vec![record(20, 1000, 1001), record(21, 999, 1000)]),
        "the unix-sockets record of pid 42 fd 21 says socket:[999] type 1, its fd socket:[1001] type 1"
    );
    assert_eq!(
        refused(pair(), vec![record(20, 1000, 1001), record(21, 1001, 0)]),
        "unix socket socket:[1000] is connected to socket:[1001], which is not a unix socket of \
         the image connected back to it, and no unix-peers record says its peer is outside"
    );
    assert_eq!(
        refused(
            pair(),
            vec![
                record(20, 1000, 1001),
                record(21, 1001, 1000),
                record(3, 1, 0)
            ]
        ),
        "the unix-sockets record of pid 42 fd 3 is for an fd that is not a unix socket"
    );
}
