//! Netlink sockets (issue 10, `FdKindV1::Netlink`): route sockets bound to multicast groups
//! (one past the first 32) or used for a dump request, a generic netlink socket on an explicit
//! port id and a uevent socket, for x86_64 and i386 (tests/targets/netlink.c). After restore the
//! target checks each socket's type, protocol, port id and groups and talks to the kernel over
//! them. A socket with unread messages is refused, the target running on untouched.

use psnc_tests::{assert_running_untraced, m32_or_skip, Bits, RunOpts, Spawn};

const CHECKS: &[&str] = &[
    "route_groups_kept",
    "route_autobind_and_group_33",
    "route_request_socket_kept",
    "route_dump_after_restore",
    "generic_portid_kept",
    "generic_request_after_restore",
    "uevent_group_kept",
];

fn sockets(bits: Bits) {
    if !m32_or_skip(bits, "netlink i386") {
        return;
    }
    let mut t = Spawn::new("netlink").bits(bits).start();
    let image = t.checkpoint_restore();
    let r = psnc_tests::run(
        &psnc_tests::tool("psnc-imgtool"),
        &[
            "dump",
            image.to_str().expect("utf-8"),
            "--section",
            "fds",
            "--json",
        ],
        RunOpts::default(),
    );
    r.assert_ok();
    assert_eq!(
        r.stdout.matches("\"Netlink\"").count(),
        4,
        "four netlink fds in the image:\n{}",
        r.stdout
    );
    t.verify().assert_passed(CHECKS);
}

#[test]
fn netlink_sockets_keep_protocol_port_and_groups_x86_64() {
    sockets(Bits::B64);
}

#[test]
fn netlink_sockets_keep_protocol_port_and_groups_i386() {
    sockets(Bits::B32);
}

/// The reply of a dump request not read yet cannot be replayed: refused (69), naming the PID,
/// the fd and why; the target goes on and reads it.
#[test]
fn a_netlink_socket_with_unread_messages_is_refused() {
    let mut t = Spawn::new("netlink").args(&["queued"]).start();
    let image = t.dir.join("image");
    let r = t.capture(&image, &["--kill"]);
    r.assert_status(69);
    let want = format!(
        "PID {}: fd 5 is a netlink socket (AF_NETLINK, SOCK_RAW, protocol NETLINK_ROUTE) with \
         unread messages in its receive queue",
        t.pid()
    );
    assert!(r.stderr.contains(&want), "no {want:?} in:\n{r}");
    assert!(!image.exists(), "an image after a refused capture");
    assert_running_untraced(t.pid());
    t.verify().assert_passed(&["queued_reply_read"]);
}
