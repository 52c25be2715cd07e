//! Who may open one more connection: a count of open connections over both
//! listeners and a count per peer address, each with a cap.
//!
//! Every open socket costs a file descriptor, buffers and a task whether or not
//! it ever sends a request, so these caps count sockets, not requests, and the
//! peer is the socket's address, never `X-Forwarded-For` (a header cannot open
//! sockets). Peers listed in `--trusted-proxies` are exempt from the per-peer cap:
//! a reverse proxy carries every client's connections, and limiting it would cap
//! the whole site; they still count towards the global cap.
//!
//! The per-peer table holds only peers with an open connection (an entry goes
//! when its count reaches zero), so it can never grow past the global cap.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

/// The two caps, and the peers the per-peer cap does not apply to.
#[derive(Debug, Clone)]
pub struct Caps {
    pub global: usize,
    pub per_peer: usize,
    pub exempt: Arc<Vec<IpAddr>>,
}

/// Which cap refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// calos as a whole holds `--max-connections`.
    Global,
    /// This peer already holds `--max-connections-per-ip`.
    PerPeer,
}

/// Shared by both listeners (one process, one file-descriptor budget).
#[derive(Debug, Clone)]
pub struct Admission {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    caps: Caps,
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    open: usize,
    by_peer: HashMap<IpAddr, usize>,
}

/// One admitted connection; dropping it (when the socket closes, including an
/// upgraded WebSocket's) gives its place back.
#[derive(Debug)]
pub struct Permit {
    inner: Arc<Inner>,
    /// `None` for an exempt peer, which takes no place in the per-peer table.
    peer: Option<IpAddr>,
}

impl Admission {
    pub fn new(caps: Caps) -> Self {
        Self {
            inner: Arc::new(Inner {
                caps,
                counts: Mutex::new(Counts::default()),
            }),
        }
    }

    /// A place for one more connection from `ip`, or the cap it would exceed.
    pub fn admit(&self, ip: IpAddr) -> Result<Permit, Refusal> {
        let caps = &self.inner.caps;
        let exempt = caps.exempt.contains(&ip.to_canonical());
        let peer = (!exempt).then(|| peer_key(ip));
        let mut counts = self.inner.counts.lock();
        if counts.open >= caps.global {
            return Err(Refusal::Global);
        }
        if let Some(peer) = peer {
            let held = counts.by_peer.entry(peer).or_insert(0);
            if *held >= caps.per_peer {
                return Err(Refusal::PerPeer);
            }
            *held += 1;
        }
        counts.open += 1;
        Ok(Permit {
            inner: self.inner.clone(),
            peer,
        })
    }

    /// Connections open right now, over both listeners.
    pub fn open(&self) -> usize {
        self.inner.counts.lock().open
    }

    #[cfg(test)]
    fn peers(&self) -> usize {
        self.inner.counts.lock().by_peer.len()
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut counts = self.inner.counts.lock();
        counts.open = counts.open.saturating_sub(1);
        if let Some(peer) = self.peer {
            if let Some(held) = counts.by_peer.get_mut(&peer) {
                *held = held.saturating_sub(1);
                if *held == 0 {
                    counts.by_peer.remove(&peer);
                }
            }
        }
    }
}

/// The key a peer is counted under. IPv4 (also written as `::ffff:a.b.c.d`) is
/// one address; IPv6 is counted by its /64, because one subscriber is usually
/// given a whole /64 and could otherwise open connections from 2^64 addresses.
fn peer_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(global: usize, per_peer: usize, exempt: &[&str]) -> Admission {
        Admission::new(Caps {
            global,
            per_peer,
            exempt: Arc::new(exempt.iter().filter_map(|ip| ip.parse().ok()).collect()),
        })
    }

    fn ip(text: &str) -> IpAddr {
        text.parse()
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
    }

    #[test]
    fn a_peer_gets_its_cap_and_its_places_back_when_connections_close() {
        let admission = admission(100, 2, &[]);
        let first = admission.admit(ip("10.0.0.1"));
        let second = admission.admit(ip("10.0.0.1"));
        assert!(first.is_ok() && second.is_ok());
        assert_eq!(
            admission.admit(ip("10.0.0.1")).err(),
            Some(Refusal::PerPeer)
        );
        assert!(admission.admit(ip("10.0.0.2")).is_ok(), "another peer");
        drop(first);
        assert!(admission.admit(ip("10.0.0.1")).is_ok());
    }

    #[test]
    fn the_global_cap_holds_across_peers_and_exempt_proxies() {
        let admission = admission(3, 10, &["10.0.0.9"]);
        let held: Vec<_> = ["10.0.0.1", "10.0.0.2", "10.0.0.9"]
            .into_iter()
            .filter_map(|peer| admission.admit(ip(peer)).ok())
            .collect();
        assert_eq!(held.len(), 3);
        assert_eq!(admission.admit(ip("10.0.0.3")).err(), Some(Refusal::Global));
        assert_eq!(admission.admit(ip("10.0.0.9")).err(), Some(Refusal::Global));
        assert_eq!(admission.open(), 3);
    }

    #[test]
    fn trusted_proxies_are_exempt_from_the_per_peer_cap() {
        let admission = admission(100, 1, &["10.0.0.9"]);
        let held: Vec<_> = (0..5)
            .filter_map(|_| admission.admit(ip("10.0.0.9")).ok())
            .collect();
        assert_eq!(held.len(), 5);
        assert_eq!(admission.peers(), 0, "exempt peers take no table entry");
    }

    #[test]
    fn the_peer_table_forgets_peers_with_no_open_connection() {
        let admission = admission(10_000, 4, &[]);
        for n in 0..1000u32 {
            let peer = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + n));
            drop(admission.admit(peer));
        }
        assert_eq!(admission.peers(), 0);
        assert_eq!(admission.open(), 0);
    }

    #[test]
    fn ipv6_peers_are_counted_by_their_slash_64_and_mapped_ipv4_as_ipv4() {
        let admission = admission(100, 2, &[]);
        let a = admission.admit(ip("2001:db8:1:2::1"));
        let b = admission.admit(ip("2001:db8:1:2:ffff::2"));
        assert!(a.is_ok() && b.is_ok());
        assert_eq!(
            admission.admit(ip("2001:db8:1:2:abcd::3")).err(),
            Some(Refusal::PerPeer)
        );
        assert!(admission.admit(ip("2001:db8:1:3::1")).is_ok());
        let v4 = admission.admit(ip("192.0.2.1"));
        let mapped = admission.admit(ip("::ffff:192.0.2.1"));
        assert!(v4.is_ok() && mapped.is_ok());
        assert_eq!(
            admission.admit(ip("192.0.2.1")).err(),
            Some(Refusal::PerPeer)
        );
    }
}
