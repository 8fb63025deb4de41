//! Who may hold a connection: the listener's connection limit and the per-address limit.
//! What an admitted connection holds is released when the connection *and* any tunnel
//! made from it have ended, however they end.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::OwnedSemaphorePermit;

use crate::tracker::TrackGuard;

/// Open connections per client address. Locked once per accepted connection and once
/// when it closes, never per request.
#[derive(Debug, Default)]
pub(crate) struct PerIp {
    counts: Mutex<HashMap<IpAddr, usize>>,
}

impl PerIp {
    /// A slot for `ip`, unless it already holds `limit` connections.
    pub(crate) fn take(self: &Arc<Self>, ip: IpAddr, limit: usize) -> Option<IpSlot> {
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
}
