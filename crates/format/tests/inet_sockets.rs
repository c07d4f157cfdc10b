//! Section 18 `inet-sockets` (§8.19): IPv4/IPv6 sockets keep their state through both layout
//! classes, the fd stays a `Socket` in `fds`, the section is critical and written only when some
//! process has such a socket, and a record that does not fit its fd is refused.

mod imagecraft;

use imagecraft::write_with;
use psnc_format::example::example_checkpoint;
use psnc_format::layout::SECTION_CRITICAL;
use psnc_format::model::{
    Arch, Checkpoint, Fd, FdKind, InetAddr, InetSocket, InetState, SockOption, TcpConnection,
};
use psnc_format::sections::{InetSocketV1, InetStateV1, SectionKind};
use psnc_format::{FormatError, Image, LayoutClass};

fn both() -> [(Arch, LayoutClass); 3] {
    [
        (Arch::X86_64, LayoutClass::Bits64),
        (Arch::I386, LayoutClass::Bits32),
        (Arch::I386, LayoutClass::Bits64),
    ]
}

/// A TCP listener on [::1] and a UDP socket on 127.0.0.1 connected to a peer.
fn sockets() -> Vec<Fd> {
    let listener = InetSocket {
        family: 10,
        sock_type: 1,
        protocol: 6,
        ino: 777,
        state: InetState::Listening,
        local: InetAddr {
            addr: std::net::Ipv6Addr::LOCALHOST.octets().to_vec(),
            port: 8080,
        },
        peer: None,
        backlog: 17,
        options: vec![SockOption {
            level: 41,
            name: 26,
            value: 1,
        }],
        tcp: None,
    };
    let udp = InetSocket {
        family: 2,
        sock_type: 2,
        protocol: 17,
        ino: 778,
        state: InetState::Connected,
        local: InetAddr {
            addr: vec![127, 0, 0, 1],
            port: 4000,
        },
        peer: Some(InetAddr {
            addr: vec![127, 0, 0, 1],
            port: 4001,
        }),
        backlog: 0,
        options: Vec::new(),
        tcp: None,
    };
    let tcp = InetSocket {
        family: 2,
        sock_type: 1,
        protocol: 6,
        ino: 779,
        state: InetState::Established,
        local: InetAddr {
            addr: vec![127, 0, 0, 1],
            port: 4002,
        },
        peer: Some(InetAddr {
            addr: vec![127, 0, 0, 1],
            port: 4003,
        }),
        backlog: 0,
        options: Vec::new(),
        tcp: Some(TcpConnection {
            snd_seq: 0xfffffff0,
            rcv_seq: 7,
            send_queue: b"unacked+unsent".to_vec(),
            unsent: 6,
            recv_queue: b"unread".to_vec(),
            mss: 65483,
            tcp_options: 7,
            snd_wscale: 7,
            rcv_wscale: 7,
            timestamp: 123456,
            window: [1, 2, 3, 4, 5],
        }),
    };
    let shut = InetSocket {
        state: InetState::Shut,
        ino: 780,
        tcp: None,
        ..tcp.clone()
    };
    [(20, listener), (21, udp), (22, tcp), (23, shut)]
        .into_iter()
        .map(|(fd, s)| Fd {
            fd,
            flags: 2,
            cloexec: false,
            pos: 0,
            kind: FdKind::InetSocket(s),
        })
        .collect()
}

fn with_sockets(arch: Arch) -> Checkpoint {
    let mut ck = example_checkpoint(arch);
    ck.processes[0].fds.extend(sockets());
    ck
}

#[test]
fn inet_sockets_round_trip_in_every_class() {
    for (arch, class) in both() {
        let (img, want) = write_with(with_sockets(arch), arch, class, Vec::new());
        let image = Image::from_vec(img).expect("open");
        assert_eq!(image.checkpoint(), &want, "{arch:?} {class:?}");
        let fds = &image.checkpoint().processes[0].fds;
        assert_eq!(fds[fds.len() - 4..], sockets()[..]);
        let e: Vec<_> = image.sections().iter().filter(|e| e.kind == 18).collect();
        assert_eq!(e.len(), 1);
        assert_eq!((e[0].version, e[0].flags), (1, SECTION_CRITICAL));
    }
}

#[test]
fn images_without_inet_sockets_have_no_inet_sockets_section() {
    for (arch, class) in both() {
        let (img, _) = write_with(example_checkpoint(arch), arch, class, Vec::new());
        let image = Image::from_vec(img).expect("open");
        assert!(image.sections().iter().all(|e| e.kind != 18));
    }
}

/// The example with a `Socket` fd 20 (family 2, type 1) and `records` as the section.
fn refused(records: Vec<InetSocketV1>, family: u32) -> String {
    let k = SectionKind::InetSockets;
    let mut ck = example_checkpoint(Arch::X86_64);
    ck.processes[0].fds.push(Fd {
        fd: 20,
        flags: 2,
        cloexec: false,
        pos: 0,
        kind: FdKind::Socket {
            family,
            sock_type: 1,
            ino: 5,
            unix: None,
        },
    });
    let extra = if records.is_empty() {
        Vec::new()
    } else {
        let body = postcard::to_stdvec(&records).expect("encode");
        vec![(k.number(), 1, k.flags(), body)]
    };
    let (img, _) = write_with(ck, Arch::X86_64, LayoutClass::Bits64, extra);
    match Image::from_vec(img) {
        Err(FormatError::Invalid(m)) => m,
        r => panic!("not refused as invalid: {r:?}"),
    }
}

#[test]
fn a_record_that_does_not_fit_its_fd_is_invalid() {
    let good = InetSocketV1 {
        pid: 42,
        fd: 20,
        family: 2,
        sock_type: 1,
        protocol: 6,
        state: InetStateV1::Listening,
        local_addr: vec![127, 0, 0, 1],
        local_port: 80,
        peer_addr: Vec::new(),
        peer_port: 0,
        backlog: 5,
        options: Vec::new(),
        tcp: None,
    };
    let cases = [
        (
            vec![good.clone(), good.clone()],
            "the inet-sockets record of pid 42 fd 20 appears twice",
        ),
        (
            vec![InetSocketV1 {
                fd: 3,
                ..good.clone()
            }],
            "the inet-sockets record of pid 42 fd 3 names an fd that is not a socket",
        ),
        (
            vec![InetSocketV1 {
                local_addr: vec![0; 16],
                ..good.clone()
            }],
            "the inet-sockets record of pid 42 fd 20 has an address of the wrong length for its \
             family",
        ),
        (
            vec![InetSocketV1 {
                sock_type: 2,
                ..good.clone()
            }],
            "the inet-sockets record of pid 42 fd 20 has another family or type than its fd",
        ),
        (
            Vec::new(),
            "fd 20 of pid 42 is an IPv4/IPv6 socket without its inet-sockets record",
        ),
        (
            vec![InetSocketV1 {
                state: InetStateV1::Established,
                peer_addr: vec![127, 0, 0, 1],
                peer_port: 81,
                ..good.clone()
            }],
            "the inet-sockets record of pid 42 fd 20 has a tcp record without being an \
             Established TCP connection with a peer, or the reverse, or more unsent bytes than \
             its send queue holds",
        ),
    ];
    for (records, want) in cases {
        assert_eq!(refused(records, 2), want);
    }
    // A socket of a family no section describes (AF_PACKET) needs no record.
    let (img, _) = {
        let mut ck = example_checkpoint(Arch::X86_64);
        ck.processes[0].fds.push(Fd {
            fd: 20,
            flags: 2,
            cloexec: false,
            pos: 0,
            kind: FdKind::Socket {
                family: 17,
                sock_type: 3,
                ino: 5,
                unix: None,
            },
        });
        write_with(ck, Arch::X86_64, LayoutClass::Bits64, Vec::new())
    };
    Image::from_vec(img).expect("an AF_PACKET socket needs no inet-sockets record");
}
