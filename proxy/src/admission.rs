//! Who may hold a connection: the listener's connection limit, the per-address limit
//! (an IPv6 client counts per /64, what one host or one customer line usually gets), and
//! the share of connections that may be in their TLS handshake at once. What an admitted
//! connection holds is released when the connection *and* any tunnel made from it have
//! ended, however they end.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, oneshot};

use crate::tracker::TrackGuard;

/// Open connections per client address. Locked once per accepted connection and once
/// when it closes, never per request.
#[derive(Debug, Default)]
pub(crate) struct PerIp {
    counts: Mutex<HashMap<IpAddr, usize>>,
}

/// What `max_connections_per_ip` counts by: the address, or for IPv6 its /64 (one host
/// picks addresses from its /64 at will), and an IPv4-mapped IPv6 address as IPv4.
pub(crate) fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !((1u128 << 64) - 1))),
        },
    }
}

impl PerIp {
    /// A slot for `ip` (counted by [`client_key`]), unless it already holds `limit`
    /// connections.
    pub(crate) fn take(self: &Arc<Self>, ip: IpAddr, limit: usize) -> Option<IpSlot> {
        let ip = client_key(ip);
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let count = counts.entry(ip).or_insert(0);
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(IpSlot {
            owner: self.clone(),
            ip,
        })
    }

    /// Addresses currently holding a connection (tests).
    #[cfg(test)]
    pub(crate) fn addresses(&self) -> usize {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// One connection's share of its address's limit.
#[derive(Debug)]
pub(crate) struct IpSlot {
    owner: Arc<PerIp>,
    ip: IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut counts = self.owner.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// The share of `max_connections` that may be in their TLS handshake at once...
const HANDSHAKE_SHARE: usize = 4;
/// ...but never fewer than this (or `max_connections` if lower), so that with a small
/// house a handshake finishing on the server a moment after its client saw it finish
/// is not dropped for the next client.
const HANDSHAKE_MIN: usize = 16;

/// How many connections may be in their TLS handshake at once.
pub(crate) fn handshake_cap(max_connections: usize) -> usize {
    (max_connections / HANDSHAKE_SHARE).max(HANDSHAKE_MIN.min(max_connections))
}

/// TLS handshakes in progress, oldest first. When [`handshake_cap`] are running, a new one drops the oldest: a handshake takes milliseconds, so the
/// oldest unfinished one is the likeliest to be stalled on purpose, and clients that
/// stall (from as many addresses as they like, each under `max_connections_per_ip`)
/// can never hold more than that share of the house, nor keep a new client out. Locked
/// once when a handshake starts and once when it ends, never per request.
#[derive(Debug, Default)]
pub(crate) struct Handshakes {
    running: Mutex<Running>,
}

#[derive(Debug, Default)]
struct Running {
    next: u64,
    /// By start order: the first is the oldest. Sending drops that handshake.
    order: BTreeMap<u64, oneshot::Sender<()>>,
}

impl Handshakes {
    /// Registers a handshake under `cap` running at once, dropping the oldest ones over
    /// it. The receiver fires when this one is dropped in turn.
    pub(crate) fn start(self: &Arc<Self>, cap: usize) -> (HandshakeTurn, oneshot::Receiver<()>) {
        let (drop_tx, drop_rx) = oneshot::channel();
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        while running.order.len() >= cap.max(1) {
            let Some((_, oldest)) = running.order.pop_first() else {
                break;
            };
            let _ = oldest.send(());
        }
        let id = running.next;
        running.next += 1;
        running.order.insert(id, drop_tx);
        (
            HandshakeTurn {
                owner: self.clone(),
                id,
            },
            drop_rx,
        )
    }

    /// Handshakes in progress (tests).
    #[cfg(test)]
    pub(crate) fn running(&self) -> usize {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .order
            .len()
    }
}

/// One handshake's place among [`Handshakes`]; given back when it ends, however it ends.
#[derive(Debug)]
pub(crate) struct HandshakeTurn {
    owner: Arc<Handshakes>,
    id: u64,
}

impl Drop for HandshakeTurn {
    fn drop(&mut self) {
        let mut running = self.owner.running.lock().unwrap_or_else(|p| p.into_inner());
        running.order.remove(&self.id);
    }
}

/// Keeps `certfront_connections_open` right however a connection ends.
#[derive(Debug)]
pub(crate) struct OpenGauge(prometheus::IntGauge);

impl OpenGauge {
    pub(crate) fn new(gauge: prometheus::IntGauge) -> Self {
        gauge.inc();
        OpenGauge(gauge)
    }
}

impl Drop for OpenGauge {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Everything an admitted connection holds: its place under `max_connections`, under
/// `max_connections_per_ip`, in `connections_open`, and in the drain's count.
#[derive(Debug)]
#[expect(
    dead_code,
    reason = "never read: each field is held for what its Drop gives back"
)]
pub(crate) struct Slot {
    pub permit: OwnedSemaphorePermit,
    pub ip: IpSlot,
    pub open: OpenGauge,
    pub live: TrackGuard,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_limit_and_its_slots_back() {
        let per_ip = Arc::new(PerIp::default());
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = per_ip.take(a, 2).unwrap();
        let second = per_ip.take(a, 2).unwrap();
        assert!(per_ip.take(a, 2).is_none());
        assert!(per_ip.take(b, 2).is_some());
        drop(first);
        let third = per_ip.take(a, 2);
        assert!(third.is_some());
        drop((second, third));
        assert_eq!(per_ip.addresses(), 0);
    }

    #[test]
    fn ipv6_clients_count_per_64_and_mapped_ipv4_as_ipv4() {
        let per_ip = Arc::new(PerIp::default());
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap();
        let next_64: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        let _first = per_ip.take(a, 1).unwrap();
        assert!(
            per_ip.take(same_64, 1).is_none(),
            "another address of the same /64 got its own limit"
        );
        assert!(per_ip.take(next_64, 1).is_some());
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        let _v4 = per_ip.take(v4, 1).unwrap();
        assert!(
            per_ip.take(mapped, 1).is_none(),
            "mapped IPv4 counted apart"
        );
    }

    #[tokio::test]
    async fn a_full_house_of_handshakes_drops_the_oldest() {
        let hs = Arc::new(Handshakes::default());
        let (first, mut first_dropped) = hs.start(2);
        let (_second, mut second_dropped) = hs.start(2);
        assert!(first_dropped.try_recv().is_err(), "dropped under the cap");
        let (_third, mut third_dropped) = hs.start(2);
        assert_eq!(
            first_dropped.try_recv(),
            Ok(()),
            "the oldest was not dropped"
        );
        assert!(second_dropped.try_recv().is_err());
        assert!(third_dropped.try_recv().is_err());
        assert_eq!(hs.running(), 2);
        drop(first);
        assert_eq!(hs.running(), 2, "a dropped one's end frees nothing twice");
    }

    #[test]
    fn the_handshake_cap_is_a_quarter_but_not_tiny() {
        assert_eq!(handshake_cap(10_000), 2500);
        assert_eq!(handshake_cap(100), 25);
        assert_eq!(handshake_cap(40), 16);
        assert_eq!(handshake_cap(2), 2);
    }

    #[test]
    fn a_finished_handshake_frees_its_place() {
        let hs = Arc::new(Handshakes::default());
        let (turn, _rx) = hs.start(1);
        drop(turn);
        assert_eq!(hs.running(), 0);
        let (_turn, mut rx) = hs.start(1);
        assert!(rx.try_recv().is_err());
    }
}
