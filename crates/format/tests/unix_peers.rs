//! Section 23 `unix-peers` (§8.23): a unix socket whose peer is outside the image keeps its
//! record (the peer's inode and name) through both layout classes, the section is critical and
//! written only when needed, and records that disagree with the sockets are refused.

mod imagecraft;

use imagecraft::write_with;
use psnc_format::example::example_checkpoint;
use psnc_format::layout::SECTION_CRITICAL;
use psnc_format::model::{Arch, Checkpoint, Fd, FdKind, UnixPeer, UnixSocket};
use psnc_format::{FormatError, Image, LayoutClass};

fn sock(fd: i32, ino: u64, peer_ino: u64) -> Fd {
    Fd {
        fd,
        flags: libc::O_RDWR as u32,
        cloexec: false,
        pos: 0,
        kind: FdKind::Socket {
            family: 1,
            sock_type: 1,
            ino,
            unix: Some(Box::new(UnixSocket {
                state: 1,
                peer_ino,
                ..UnixSocket::default()
            })),
        },
    }
}

/// The example with a client of a daemon (fd 30, peer 5000 outside, named) and a pair (31, 32).
fn checkpoint(arch: Arch, peers: Vec<UnixPeer>) -> Checkpoint {
    let mut ck = example_checkpoint(arch);
    ck.processes[0].fds.extend([
        sock(30, 1000, 5000),
        sock(31, 1001, 1002),
        sock(32, 1002, 1001),
    ]);
    ck.unix_peers = peers;
    ck
}

fn daemon() -> UnixPeer {
    UnixPeer {
        ino: 1000,
        peer_ino: 5000,
        name: b"/run/daemon.sock".to_vec(),
    }
}

#[test]
fn records_round_trip_in_every_class() {
    for (arch, class) in [
        (Arch::X86_64, LayoutClass::Bits64),
        (Arch::I386, LayoutClass::Bits32),
    ] {
        let (img, want) = write_with(checkpoint(arch, vec![daemon()]), arch, class, Vec::new());
        let image = Image::from_vec(img).expect("open");
        assert_eq!(image.checkpoint(), &want, "{arch:?} {class:?}");
        assert_eq!(image.checkpoint().unix_peers, vec![daemon()]);
        let e: Vec<_> = image.sections().iter().filter(|e| e.kind == 23).collect();
        assert_eq!(e.len(), 1);
        assert_eq!((e[0].version, e[0].flags), (1, SECTION_CRITICAL));
    }
}

#[test]
fn images_without_outside_peers_have_no_section() {
    let (img, _) = write_with(
        example_checkpoint(Arch::X86_64),
        Arch::X86_64,
        LayoutClass::Bits64,
        Vec::new(),
    );
    let image = Image::from_vec(img).expect("open");
    assert!(image.sections().iter().all(|e| e.kind != 23));
}

fn refused(peers: Vec<UnixPeer>) -> String {
    let (img, _) = write_with(
        checkpoint(Arch::X86_64, peers),
        Arch::X86_64,
        LayoutClass::Bits64,
        Vec::new(),
    );
    match Image::from_vec(img) {
        Err(FormatError::Invalid(m)) => m,
        other => panic!("not refused as invalid: {other:?}"),
    }
}

#[test]
fn records_that_disagree_with_the_sockets_are_refused() {
    assert_eq!(
        refused(Vec::new()),
        "unix socket socket:[1000] is connected to socket:[5000], which is not a unix socket of \
         the image connected back to it, and no unix-peers record says its peer is outside"
    );
    assert_eq!(
        refused(vec![daemon(), daemon()]),
        "the unix-peers record of socket:[1000] appears twice"
    );
    assert_eq!(
        refused(vec![UnixPeer {
            peer_ino: 4999,
            ..daemon()
        }]),
        "the unix-peers record of socket:[1000] names no unix socket of the image connected to \
         socket:[4999]"
    );
    assert_eq!(
        refused(vec![
            daemon(),
            UnixPeer {
                ino: 1001,
                peer_ino: 1002,
                name: Vec::new()
            }
        ]),
        "the unix-peers record of socket:[1001] says its peer socket:[1002] is outside the image, \
         but it is a socket of the image"
    );
}
