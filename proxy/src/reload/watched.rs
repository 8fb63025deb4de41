//! What the reloader watches and when it reads: the files the snapshot depends on, what
//! each belongs to, the marks the watcher's thread leaves, and the debounce.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use certfront_certs::watch::Watcher;
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::snapshot::Snapshot;

/// Files must be quiet this long before they are read: editors and `cp` write in steps.
pub(crate) const DEBOUNCE: Duration = Duration::from_millis(200);

/// What a watched file belongs to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum WatchKey {
    /// A host's certificate, key, .pfx or password file (by fqdn).
    HostCert(Arc<str>),
    /// A host's client-certificate deny list (by fqdn).
    DenyList(Arc<str>),
    /// A host's CRL files (by fqdn).
    Crl(Arc<str>),
    /// The configuration file, or a trust file it names (`tls.trust`, `client_auth.ca`,
    /// `upstream_ca`): a change means a new snapshot.
    Config,
}

/// The longest a reload waits after the first event of a burst, however busy the
/// directory stays: well inside the 5 seconds in which a rotation must be served.
pub(crate) const MAX_DELAY: Duration = Duration::from_secs(2);

/// When a burst of events is read: once the files have been quiet for [`DEBOUNCE`], but
/// never later than [`MAX_DELAY`] after the burst's first event, so a directory that
/// never stops changing (a log file beside the certificates) cannot postpone it for ever.
pub(crate) fn reload_at(first_event: Instant, last_event: Instant) -> Instant {
    (last_event + DEBOUNCE).min(first_event + MAX_DELAY)
}

/// What the watcher saw and the reloader has not read yet: the owners marked (a set, so
/// bounded by the number of watched files however many events arrive) and one wake-up
/// (`Notify` keeps at most one). The notify thread marks and returns; it never waits for
/// the reloader and nothing queues while a reload runs.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    pending: Mutex<BTreeSet<WatchKey>>,
    pub(super) wake: Notify,
}

impl Changes {
    /// Called on the watcher's thread for every event.
    pub(crate) fn mark(&self, owners: &[WatchKey]) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(owners.iter().cloned());
        self.wake.notify_one();
    }

    pub(super) fn take(&self) -> BTreeSet<WatchKey> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Every file the snapshot depends on, with what it belongs to.
pub(crate) fn watched_files(rt: &Snapshot) -> Vec<(WatchKey, PathBuf)> {
    let mut files = Vec::new();
    for site in rt.table.sites() {
        let fqdn: Arc<str> = Arc::from(site.fqdn.as_str());
        for f in site.cert.source().files() {
            files.push((WatchKey::HostCert(fqdn.clone()), f.to_path_buf()));
        }
        if let Some(path) = site.client_auth.as_ref().and_then(|a| a.deny_path.clone()) {
            files.push((WatchKey::DenyList(fqdn.clone()), path));
        }
        for path in site.client_auth.iter().flat_map(|a| a.crl_paths()) {
            files.push((WatchKey::Crl(fqdn.clone()), path.clone()));
        }
    }
    let config = &rt.config;
    if config.server.watch_config && config.source.is_file() {
        let config_files = crate::snapshot::config_files(config);
        files.extend(config_files.map(|p| (WatchKey::Config, p.to_path_buf())));
    }
    files
}

/// Watches `rt`'s files, marking `changes`; `None` when the OS refused (the re-scan and
/// SIGHUP still work).
pub(crate) fn watch(rt: &Snapshot, changes: &Arc<Changes>) -> Option<Watcher<WatchKey>> {
    let files = watched_files(rt);
    let marks = changes.clone();
    match certfront_certs::watch::watch(&files, move |keys| marks.mark(keys)) {
        Ok(w) => {
            info!(
                directories = w.dirs(),
                "watching for certificate and configuration changes"
            );
            Some(w)
        }
        Err(e) => {
            warn!("{e}; changes are picked up by the periodic re-scan and SIGHUP only");
            None
        }
    }
}
