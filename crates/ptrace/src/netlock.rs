//! The network lock of `psnc-capture --tcp-established`: while the captured connections are
//! down (from the kill at capture until the restore has rebuilt them), every packet of their
//! four-tuples is dropped by an nftables table of their own, so that a peer's retransmission or
//! window probe meets silence (and retries) instead of a host without the socket, which would
//! answer with a reset and end the connection. CRIU locks the same way (iptables or nftables).
//!
//! The table is `inet psnc_lock_<ROOT PID>` with an input and an output chain at priority -150
//! (before the usual filter chains), one drop rule per connection and direction. It is made and
//! removed with `nft -f -` (the `nftables` package); without `nft` there is no lock, which the
//! caller reports. Restore removes the table of the image's root PID once the connections
//! exist again; `nft delete table inet psnc_lock_<PID>` removes a lock left by a capture whose
//! image is not restored.

use std::io::Write;
use std::net::IpAddr;
use std::process::{Command, Stdio};

/// One TCP connection of the captured tree, as its socket saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// The socket's address and port.
    pub local: (IpAddr, u16),
    /// The peer's.
    pub peer: (IpAddr, u16),
}

/// Why the lock could not be taken or removed.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// `nft` is not installed.
    #[error("nft is not installed (the nftables package)")]
    NoNft,
    /// `nft` ran and failed.
    #[error("nft failed: {0}")]
    Nft(String),
}

/// The table of the lock of the tree rooted at `root`.
pub fn table_name(root: u32) -> String {
    format!("psnc_lock_{root}")
}

fn nft(args: &[&str], script: Option<&str>) -> Result<(), LockError> {
    let mut c = Command::new("nft");
    c.args(args)
        .stdin(if script.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = match c.spawn() {
        Ok(ch) => ch,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(LockError::NoNft),
        Err(e) => return Err(LockError::Nft(e.to_string())),
    };
    if let (Some(s), Some(mut stdin)) = (script, child.stdin.take()) {
        stdin
            .write_all(s.as_bytes())
            .map_err(|e| LockError::Nft(format!("writing its script: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| LockError::Nft(e.to_string()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(LockError::Nft(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}

/// The rule matching packets from `from` to `to`.
fn rule(from: (IpAddr, u16), to: (IpAddr, u16)) -> String {
    let fam = if from.0.is_ipv4() { "ip" } else { "ip6" };
    format!(
        "{fam} saddr {} tcp sport {} {fam} daddr {} tcp dport {} drop",
        from.0, from.1, to.0, to.1
    )
}

/// The nft script of the lock of `conns` in table `table`.
pub fn script(table: &str, conns: &[Connection]) -> String {
    let mut input = String::new();
    let mut output = String::new();
    for c in conns {
        input.push_str(&format!("\t\t{}\n", rule(c.peer, c.local)));
        output.push_str(&format!("\t\t{}\n", rule(c.local, c.peer)));
    }
    format!(
        "table inet {table} {{\n\
         \tchain input {{\n\t\ttype filter hook input priority -150; policy accept;\n{input}\t}}\n\
         \tchain output {{\n\t\ttype filter hook output priority -150; policy accept;\n{output}\t}}\n\
         }}\n"
    )
}

/// Drops every packet of `conns` from now on, in table `table` (replacing a table of that
/// name left by an earlier capture).
pub fn lock(table: &str, conns: &[Connection]) -> Result<(), LockError> {
    let _ = unlock(table);
    nft(&["-f", "-"], Some(&script(table, conns)))
}

/// Removes table `table`; `Ok(false)` when there is none.
pub fn unlock(table: &str) -> Result<bool, LockError> {
    match nft(&["list", "table", "inet", table], None) {
        Err(LockError::Nft(_)) => return Ok(false),
        Err(e) => return Err(e),
        Ok(()) => {}
    }
    nft(&["delete", "table", "inet", table], None).map(|()| true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_drops_both_directions_of_each_connection() {
        let c = Connection {
            local: ("127.0.0.1".parse().unwrap(), 40000),
            peer: ("127.0.0.2".parse().unwrap(), 80),
        };
        let v6 = Connection {
            local: ("::1".parse().unwrap(), 1),
            peer: ("::1".parse().unwrap(), 2),
        };
        let s = script("psnc_lock_7", &[c, v6]);
        assert!(s.starts_with("table inet psnc_lock_7 {\n"), "{s}");
        assert!(
            s.contains("ip saddr 127.0.0.2 tcp sport 80 ip daddr 127.0.0.1 tcp dport 40000 drop")
        );
        assert!(
            s.contains("ip saddr 127.0.0.1 tcp sport 40000 ip daddr 127.0.0.2 tcp dport 80 drop")
        );
        assert!(s.contains("ip6 saddr ::1 tcp sport 2 ip6 daddr ::1 tcp dport 1 drop"));
        assert!(s.contains("type filter hook input priority -150; policy accept;"));
        assert!(s.contains("type filter hook output priority -150; policy accept;"));
    }
}
