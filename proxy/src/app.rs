//! The process-wide state every connection, listener and the reloader share: the current
//! snapshot behind one pointer, the drain signal, the metrics registry and what `/certs`
//! reports about the configuration file.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwap;
use tokio::sync::watch;

use crate::access_log::AccessLogger;
use crate::admission::PerIp;
use crate::dependents::Inputs;
use crate::metrics::Metrics;
use crate::request_id::RequestIds;
use crate::snapshot::Snapshot;
use crate::tracker::Tracker;

/// What every connection shares for the life of the process. What can change while it
/// runs is in [`Snapshot`], one immutable snapshot behind one pointer.
pub struct App {
    pub(crate) snapshot: ArcSwap<Snapshot>,
    /// Flips to `true` when a drain starts.
    pub shutdown: watch::Receiver<bool>,
    pub(crate) tracker: Tracker,
    pub metrics: Arc<Metrics>,
    pub(crate) per_ip: Arc<PerIp>,
    /// TLS handshakes in progress (a share of `max_connections`).
    pub(crate) handshakes: Arc<crate::admission::Handshakes>,
    /// The state of the configuration file, for `/certs` (written by the reloader only).
    pub(crate) config_status: Mutex<ConfigStatus>,
    /// Pending ACME challenge answers and each ACME host's status (issue 12).
    pub(crate) acme: Arc<crate::acme::AcmeState>,
    /// The CA certificates depended on, as last gathered (see [`crate::dependents`]).
    pub(crate) ca_inputs: Inputs,
    /// The access log's queue to its writer thread.
    pub(crate) access_log: AccessLogger,
    /// Where generated `X-Request-Id`s come from.
    pub(crate) request_ids: RequestIds,
    /// When this process started serving (the inventory page shows it).
    pub(crate) started: std::time::SystemTime,
    /// The zero of the millisecond clocks that connections keep.
    epoch: Instant,
}

/// What `/certs` says about the configuration file.
#[derive(Clone, Debug, Default)]
pub(crate) struct ConfigStatus {
    pub loaded_at: Option<std::time::SystemTime>,
    pub last_attempt: Option<std::time::SystemTime>,
    pub last_error: Option<String>,
    /// Changed settings that only a restart applies (listener addresses, connection limits).
    pub restart_needed: Vec<String>,
}

impl App {
    pub(crate) fn new(
        snapshot: Snapshot,
        shutdown: watch::Receiver<bool>,
        tracker: Tracker,
        metrics: Arc<Metrics>,
        acme: Arc<crate::acme::AcmeState>,
        access_log: AccessLogger,
    ) -> Self {
        App {
            acme,
            snapshot: ArcSwap::from_pointee(snapshot),
            shutdown,
            tracker,
            metrics,
            per_ip: Arc::new(PerIp::default()),
            handshakes: Arc::default(),
            config_status: Mutex::new(ConfigStatus {
                loaded_at: Some(std::time::SystemTime::now()),
                ..ConfigStatus::default()
            }),
            ca_inputs: Inputs::default(),
            access_log,
            request_ids: RequestIds::new(),
            started: std::time::SystemTime::now(),
            epoch: Instant::now(),
        }
    }

    /// The configuration file's status, for the reloader to write and `/certs` to read.
    pub(crate) fn config_status(&self) -> std::sync::MutexGuard<'_, ConfigStatus> {
        self.config_status.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current snapshot (what a new connection takes).
    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    pub(crate) fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}
