//! Socket families, types and protocols by the names `<sys/socket.h>`, `<linux/if_ether.h>`,
//! `<netinet/in.h>` and `<linux/netlink.h>` give them, for messages.
//!
//! A refusal that says "family 17, type 3, protocol 768" makes the user look three numbers up;
//! [`describe`] says "a packet socket (AF_PACKET, SOCK_RAW, protocol ETH_P_ALL)". A number this
//! table does not know is shown as the number.

/// What a socket of `family` is called in a sentence ("a packet socket").
pub fn family_noun(family: i32) -> &'static str {
    match family {
        libc::AF_UNIX => "a unix socket",
        libc::AF_INET => "an IPv4 socket",
        libc::AF_INET6 => "an IPv6 socket",
        libc::AF_NETLINK => "a netlink socket",
        libc::AF_PACKET => "a packet socket",
        libc::AF_BLUETOOTH => "a Bluetooth socket",
        libc::AF_ALG => "a kernel crypto API (AF_ALG) socket",
        libc::AF_VSOCK => "a vsock socket",
        libc::AF_XDP => "an XDP socket",
        libc::AF_CAN => "a CAN socket",
        libc::AF_TIPC => "a TIPC socket",
        libc::AF_KEY => "a PF_KEY socket",
        _ => "a socket",
    }
}

/// The `AF_*` name of `family`, or its number.
pub fn family_name(family: i32) -> String {
    let name = match family {
        libc::AF_UNIX => "AF_UNIX",
        libc::AF_INET => "AF_INET",
        libc::AF_INET6 => "AF_INET6",
        libc::AF_NETLINK => "AF_NETLINK",
        libc::AF_PACKET => "AF_PACKET",
        libc::AF_BLUETOOTH => "AF_BLUETOOTH",
        libc::AF_ALG => "AF_ALG",
        libc::AF_VSOCK => "AF_VSOCK",
        libc::AF_XDP => "AF_XDP",
        libc::AF_CAN => "AF_CAN",
        libc::AF_TIPC => "AF_TIPC",
        libc::AF_KEY => "AF_KEY",
        libc::AF_APPLETALK => "AF_APPLETALK",
        libc::AF_X25 => "AF_X25",
        libc::AF_AX25 => "AF_AX25",
        libc::AF_LLC => "AF_LLC",
        libc::AF_RDS => "AF_RDS",
        libc::AF_PPPOX => "AF_PPPOX",
        libc::AF_IEEE802154 => "AF_IEEE802154",
        _ => return format!("family {family}"),
    };
    name.into()
}

/// The `SOCK_*` name of `sock_type` (`SO_TYPE`), or its number.
pub fn type_name(sock_type: i32) -> String {
    let name = match sock_type {
        libc::SOCK_STREAM => "SOCK_STREAM",
        libc::SOCK_DGRAM => "SOCK_DGRAM",
        libc::SOCK_RAW => "SOCK_RAW",
        libc::SOCK_RDM => "SOCK_RDM",
        libc::SOCK_SEQPACKET => "SOCK_SEQPACKET",
        libc::SOCK_DCCP => "SOCK_DCCP",
        10 => "SOCK_PACKET", // obsolete (libc deprecates its constant), still accepted
        _ => return format!("type {sock_type}"),
    };
    name.into()
}

/// The name of `protocol` (`SO_PROTOCOL`) in `family`, or its number. A packet socket's
/// protocol is an ethertype in network byte order, as `socket(2)` was given it (`htons`).
pub fn protocol_name(family: i32, protocol: i32) -> String {
    let name = match family {
        libc::AF_PACKET => {
            let ethertype = u16::from_be(protocol as u16) as i32;
            match ethertype {
                0 => "0 (none: receives nothing until bound to one)",
                libc::ETH_P_ALL => "ETH_P_ALL",
                libc::ETH_P_IP => "ETH_P_IP",
                libc::ETH_P_IPV6 => "ETH_P_IPV6",
                libc::ETH_P_ARP => "ETH_P_ARP",
                libc::ETH_P_8021Q => "ETH_P_8021Q",
                _ => return format!("ethertype {ethertype:#06x}"),
            }
        }
        libc::AF_INET | libc::AF_INET6 => match protocol {
            0 => "0",
            libc::IPPROTO_ICMP => "IPPROTO_ICMP",
            libc::IPPROTO_IGMP => "IPPROTO_IGMP",
            libc::IPPROTO_TCP => "IPPROTO_TCP",
            libc::IPPROTO_UDP => "IPPROTO_UDP",
            libc::IPPROTO_ICMPV6 => "IPPROTO_ICMPV6",
            libc::IPPROTO_SCTP => "IPPROTO_SCTP",
            libc::IPPROTO_UDPLITE => "IPPROTO_UDPLITE",
            libc::IPPROTO_RAW => "IPPROTO_RAW",
            libc::IPPROTO_MPTCP => "IPPROTO_MPTCP",
            _ => return format!("{protocol}"),
        },
        libc::AF_NETLINK => match protocol {
            libc::NETLINK_ROUTE => "NETLINK_ROUTE",
            libc::NETLINK_USERSOCK => "NETLINK_USERSOCK",
            libc::NETLINK_FIREWALL => "NETLINK_FIREWALL",
            libc::NETLINK_SOCK_DIAG => "NETLINK_SOCK_DIAG",
            libc::NETLINK_NFLOG => "NETLINK_NFLOG",
            libc::NETLINK_XFRM => "NETLINK_XFRM",
            libc::NETLINK_SELINUX => "NETLINK_SELINUX",
            libc::NETLINK_ISCSI => "NETLINK_ISCSI",
            libc::NETLINK_AUDIT => "NETLINK_AUDIT",
            libc::NETLINK_FIB_LOOKUP => "NETLINK_FIB_LOOKUP",
            libc::NETLINK_CONNECTOR => "NETLINK_CONNECTOR",
            libc::NETLINK_NETFILTER => "NETLINK_NETFILTER",
            libc::NETLINK_IP6_FW => "NETLINK_IP6_FW",
            libc::NETLINK_DNRTMSG => "NETLINK_DNRTMSG",
            libc::NETLINK_KOBJECT_UEVENT => "NETLINK_KOBJECT_UEVENT",
            libc::NETLINK_GENERIC => "NETLINK_GENERIC",
            libc::NETLINK_SCSITRANSPORT => "NETLINK_SCSITRANSPORT",
            libc::NETLINK_ECRYPTFS => "NETLINK_ECRYPTFS",
            libc::NETLINK_RDMA => "NETLINK_RDMA",
            libc::NETLINK_CRYPTO => "NETLINK_CRYPTO",
            _ => return format!("{protocol}"),
        },
        _ => return format!("{protocol}"),
    };
    name.into()
}

/// A socket in a sentence: "a packet socket (AF_PACKET, SOCK_RAW, protocol ETH_P_ALL)".
/// A packet socket's `SO_PROTOCOL` reads 0 whatever `socket(2)` was given (the kernel keeps
/// the ethertype elsewhere), so its protocol is left out rather than shown wrong.
pub fn describe(family: i32, sock_type: i32, protocol: i32) -> String {
    if family == libc::AF_PACKET {
        return format!(
            "{} ({}, {})",
            family_noun(family),
            family_name(family),
            type_name(sock_type)
        );
    }
    format!(
        "{} ({}, {}, protocol {})",
        family_noun(family),
        family_name(family),
        type_name(sock_type),
        protocol_name(family, protocol)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            describe(
                libc::AF_PACKET,
                libc::SOCK_RAW,
                (libc::ETH_P_ALL as u16).to_be() as i32
            ),
            "a packet socket (AF_PACKET, SOCK_RAW)"
        );
        assert_eq!(
            describe(libc::AF_INET6, libc::SOCK_RAW, libc::IPPROTO_ICMPV6),
            "an IPv6 socket (AF_INET6, SOCK_RAW, protocol IPPROTO_ICMPV6)"
        );
        assert_eq!(
            describe(libc::AF_NETLINK, libc::SOCK_DGRAM, libc::NETLINK_GENERIC),
            "a netlink socket (AF_NETLINK, SOCK_DGRAM, protocol NETLINK_GENERIC)"
        );
        assert_eq!(
            describe(99, 42, 7),
            "a socket (family 99, type 42, protocol 7)"
        );
        assert_eq!(protocol_name(libc::AF_PACKET, 0x3412), "ethertype 0x1234");
    }
}
