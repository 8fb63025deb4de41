//! The one writer: every change to what certfront serves goes through this task. File
//! events (debounced, with a ceiling), SIGHUP and the periodic re-scan lead to
//!
//! - a new configuration snapshot when the configuration file or a trust file it names changed
//!   ([`config`]: the whole candidate is built and checked before it is swapped in);
//! - otherwise a certificate reload of the hosts whose files changed ([`cert`]: one
//!   atomic store per host) and a re-read of changed deny lists.
//!
//! [`watched`] holds what is watched, what each file belongs to, and the debounce.
//!
//! Bad input never replaces good: a refused configuration, certificate or deny list keeps
//! what is in force, and is logged, counted and shown in `/certs`.

mod cert;
mod config;
mod watched;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use certfront_certs::SharedChecks;
use certfront_certs::rotation::Trigger;
use certfront_certs::watch::Watcher;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::app::App;
use crate::metrics::Metrics;
use crate::mtls::{ClientAuthState, DenyFileError};
use crate::snapshot::{Snapshot, Writers};
use cert::reload_host;
pub(crate) use watched::{Changes, WatchKey, reload_at, watch, watched_files};
#[cfg(test)]
use watched::{DEBOUNCE, MAX_DELAY};

/// Asks the reloader for a full re-read now (SIGHUP, `Running::reload_all`). Watcher
/// events do not come this way but through [`Changes`], which cannot grow.
#[derive(Debug)]
pub(crate) enum Request {
    All,
}

/// `now + d`, or far in the future when that cannot be represented (never a panic).
fn later(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(86400 * 365))
}

/// The writer's state.
pub(crate) struct Reloader {
    pub app: Arc<App>,
    pub metrics: Arc<Metrics>,
    pub changes: Arc<Changes>,
    pub requests: mpsc::UnboundedReceiver<Request>,
    /// Keeps the file watches of the current snapshot alive.
    pub watcher: Option<Watcher<WatchKey>>,
    /// The one writer of each site's certificate slot.
    pub writers: Writers,
}

impl Reloader {
    /// Runs until the request channel closes (certfront stops).
    pub(crate) async fn run(mut self) {
        let mut dirty: BTreeSet<WatchKey> = BTreeSet::new();
        // (first, last) event of the burst not read yet
        let mut burst: Option<(Instant, Instant)> = None;
        let mut next_rescan = later(self.rescan());
        loop {
            let wake = match burst {
                Some((first, last)) => reload_at(first, last).min(next_rescan),
                None => next_rescan,
            };
            tokio::select! {
                () = self.changes.wake.notified() => {
                    let keys = self.changes.take();
                    if !keys.is_empty() {
                        dirty.extend(keys);
                        let now = Instant::now();
                        burst = Some((burst.map_or(now, |(first, _)| first), now));
                    }
                }
                req = self.requests.recv() => match req {
                    None => return,
                    Some(Request::All) => {
                        info!("re-reading the configuration and every certificate (SIGHUP)");
                        dirty.clear();
                        burst = None;
                        self.everything(Trigger::Signal).await;
                    }
                },
                () = tokio::time::sleep_until(wake) => {
                    let now = Instant::now();
                    if now >= next_rescan {
                        next_rescan = later(self.rescan());
                        dirty.clear();
                        burst = None;
                        self.everything(Trigger::Rescan).await;
                    } else if burst.is_some_and(|(first, last)| now >= reload_at(first, last)) {
                        burst = None;
                        let keys = std::mem::take(&mut dirty);
                        self.some(keys).await;
                    }
                }
            }
        }
    }

    fn rescan(&self) -> Duration {
        match self.app.snapshot().config.server.rescan_seconds {
            0 => Duration::from_secs(86400 * 365),
            s => Duration::from_secs(s.min(86_400)),
        }
    }

    /// SIGHUP and the re-scan: a new snapshot if the configuration changed, else every
    /// host's files and deny list.
    async fn everything(&mut self, trigger: Trigger) {
        if self.config_changed().await {
            return;
        }
        let rt = self.app.snapshot();
        for site in rt.table.sites() {
            if let Some(auth) = &site.client_auth {
                self.deny(auth).await;
                self.crls(auth).await;
            }
        }
        let fqdns = rt.table.sites().iter().map(|s| s.fqdn.clone()).collect();
        self.certs(fqdns, trigger).await;
    }

    /// A burst of watcher events.
    async fn some(&mut self, keys: BTreeSet<WatchKey>) {
        if keys.contains(&WatchKey::Config) && self.config_changed().await {
            return;
        }
        let rt = self.app.snapshot();
        let mut certs = Vec::new();
        for key in keys {
            match key {
                WatchKey::HostCert(fqdn) => certs.push(fqdn.to_string()),
                WatchKey::DenyList(fqdn) => {
                    if let Some(auth) = rt.site(&fqdn).and_then(|s| s.client_auth.as_ref()) {
                        self.deny(auth).await;
                    }
                }
                WatchKey::Crl(fqdn) => {
                    if let Some(auth) = rt.site(&fqdn).and_then(|s| s.client_auth.as_ref()) {
                        self.crls(auth).await;
                    }
                }
                WatchKey::Config => {}
            }
        }
        self.certs(certs, Trigger::Event).await;
    }

    /// A deny-list reload, off the async workers: this runtime also accepts connections,
    /// and a file read may take up to `certfront_certs::read::TIME_LIMIT`.
    async fn deny(&self, auth: &Arc<ClientAuthState>) {
        self.off_thread(auth, "deny list", reload_deny).await;
    }

    /// A CRL reload, off the async workers like [`Self::deny`].
    async fn crls(&self, auth: &Arc<ClientAuthState>) {
        self.off_thread(auth, "CRL", reload_crls).await;
    }

    async fn off_thread(
        &self,
        auth: &Arc<ClientAuthState>,
        what: &str,
        reload: fn(&ClientAuthState, &Metrics),
    ) {
        let (auth, metrics) = (auth.clone(), self.metrics.clone());
        if let Err(e) = tokio::task::spawn_blocking(move || reload(&auth, &metrics)).await {
            warn!("{what} reload task failed: {e}");
        }
    }

    /// Certificate reloads of `fqdns` in the current snapshot, off the async workers.
    async fn certs(&self, fqdns: Vec<String>, trigger: Trigger) {
        if fqdns.is_empty() {
            return;
        }
        let rt = self.app.snapshot();
        let decided = {
            let rt = rt.clone();
            tokio::task::spawn_blocking(move || {
                // One pass: hosts sharing files (a wildcard for many names) read and check
                // them once.
                let mut shared =
                    SharedChecks::new(&rt.trust, SystemTime::now()).with_ca(rt.ca.as_deref());
                fqdns
                    .into_iter()
                    .filter_map(|fqdn| {
                        let site = rt.site(&fqdn)?;
                        Some((fqdn, reload_host(site, trigger, &mut shared)))
                    })
                    .collect::<Vec<_>>()
            })
            .await
        };
        let decided = match decided {
            Ok(decided) => decided,
            Err(e) => {
                warn!("reload task failed: {e}");
                return;
            }
        };
        let mut swapped = Vec::new();
        for (fqdn, outcome) in decided {
            let (Some(site), Some(writer)) = (rt.site(&fqdn), self.writers.get(&fqdn)) else {
                continue;
            };
            if let Some(served) = cert::apply(writer, &site.cert, outcome, &self.metrics) {
                swapped.push((site.fqdn.as_str(), served));
            }
        }
        crate::dependents::chains_served(
            &self.metrics,
            &self.app.ca_inputs,
            swapped
                .iter()
                .map(|(host, s)| (*host, s.key.cert.as_slice())),
        );
    }

    /// Builds and swaps in a new snapshot when the configuration file or a trust file
    /// changed since the running snapshot was built (or the last attempt failed). Returns
    /// whether a new snapshot is in force (its build re-read every certificate too).
    async fn config_changed(&mut self) -> bool {
        let current = self.app.snapshot();
        let path = current.config.source.clone();
        if !path.is_file() {
            return false;
        }
        let unchanged = {
            let current = current.clone();
            tokio::task::spawn_blocking(move || {
                crate::snapshot::fingerprint(&current.config) == current.fingerprint
            })
            .await
            .unwrap_or(false)
        };
        let failing = self.metrics.config_reload_failing.get() != 0;
        if unchanged && !failing {
            return false;
        }
        let metrics = self.metrics.clone();
        let built = {
            let current = current.clone();
            let path = path.clone();
            tokio::task::spawn_blocking(move || config::candidate(&path, &current, &metrics)).await
        };
        let now = SystemTime::now();
        let candidate = match built {
            Ok(Ok(candidate)) => candidate,
            Ok(Err(problems)) => {
                if unchanged {
                    // The file is what runs; what failed was a certificate, which the
                    // certificate reload reports per host.
                    return false;
                }
                self.config_failed(&path, problems, now);
                return false;
            }
            Err(e) => {
                error!("configuration reload task failed: {e}");
                self.config_failed(&path, Vec::new(), now);
                return false;
            }
        };
        self.swap(&path, candidate, now);
        true
    }

    fn config_failed(
        &self,
        path: &std::path::Path,
        problems: Vec<crate::error::Problem>,
        now: SystemTime,
    ) {
        for p in &problems {
            error!(config = %path.display(), "configuration reload refused, the running configuration stays: {p}");
        }
        self.metrics.config_reload(false);
        let mut status = self.app.config_status();
        status.last_attempt = Some(now);
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        status.last_error = Some(text.join("; "));
    }

    fn swap(&mut self, path: &std::path::Path, candidate: config::Candidate, now: SystemTime) {
        let config::Candidate {
            built,
            restart_needed,
            warnings,
        } = candidate;
        let old = self.app.snapshot();
        let (new, retired) = built.apply(&self.metrics, &mut self.writers);
        let new = Arc::new(new);
        let names = |rt: &Snapshot| -> BTreeSet<String> {
            rt.table.sites().iter().map(|s| s.fqdn.clone()).collect()
        };
        let (before, after) = (names(&old), names(&new));
        let added: Vec<&String> = after.difference(&before).collect();
        let removed: Vec<&String> = before.difference(&after).collect();
        let changed: Vec<&str> = retired
            .iter()
            .map(|s| s.fqdn.as_str())
            .filter(|f| after.contains(*f))
            .collect();
        self.app.snapshot.store(new.clone());
        crate::dependents::refresh_snapshot(&self.metrics, &self.app.ca_inputs, &new);
        for site in &retired {
            site.retire();
        }
        for fqdn in &removed {
            self.metrics.forget_host(fqdn);
        }
        let files = watched_files(&new);
        if files != watched_files(&old) {
            match &self.watcher {
                Some(w) => {
                    if let Err(e) = w.set(&files) {
                        warn!("{e}; changes are picked up by the periodic re-scan and SIGHUP only");
                    }
                }
                None => self.watcher = watch(&new, &self.changes),
            }
        }
        for w in &warnings {
            warn!("{w}");
        }
        for setting in &restart_needed {
            warn!(
                config = %path.display(),
                setting,
                "changed in the configuration file, but only a restart applies it; the running value stays"
            );
        }
        info!(
            config = %path.display(),
            ?added,
            ?removed,
            ?changed,
            "configuration reloaded"
        );
        self.metrics.config_reload(true);
        let mut status = self.app.config_status();
        status.loaded_at = Some(now);
        status.last_attempt = Some(now);
        status.last_error = None;
        status.restart_needed = restart_needed;
    }
}

/// Re-reads a host's deny list; a refused list keeps the old one, raises
/// `certfront_deny_list_reload_failing` and says which line is wrong.
fn reload_deny(state: &ClientAuthState, metrics: &Metrics) {
    let host = state.host.as_str();
    let failing = metrics.deny_list_reload_failing.with_label_values(&[host]);
    match state.reload() {
        Ok(changed) => {
            if failing.get() != 0 {
                info!(host, "client certificate deny list accepted again");
            }
            failing.set(0);
            if changed {
                let entries = state.deny_status().map_or(0, |s| s.entries);
                info!(host, entries, "client certificate deny list reloaded");
            }
        }
        Err(e) => {
            failing.set(1);
            let file = e.path().display().to_string();
            match &e {
                DenyFileError::Invalid { source, .. } => {
                    let first = source.first();
                    error!(
                        host,
                        file,
                        line = first.line,
                        reason = %first.reason,
                        "client certificate deny list refused, the previous list stays in force: {e}"
                    );
                }
                _ => error!(
                    host,
                    file,
                    "client certificate deny list refused, the previous list stays in force: {e}"
                ),
            }
        }
    }
}

/// Re-reads a host's CRL files; a refused set keeps the one in force, raises
/// `certfront_crl_reload_failing` and says why. A new set closes the connections of the
/// certificates it revokes (their tasks watch the state's change signal).
fn reload_crls(state: &ClientAuthState, metrics: &Metrics) {
    if state.crl_paths().is_empty() {
        return;
    }
    let host = state.host.as_str();
    let failing = metrics.crl_reload_failing.with_label_values(&[host]);
    match state.reload_crls() {
        Ok(changed) => {
            if failing.get() != 0 {
                info!(host, "client certificate CRLs accepted again");
            }
            failing.set(0);
            if changed {
                let crls = state.crl_set();
                metrics.crls_in_force(host, &crls);
                for crl in crls.iter() {
                    info!(
                        host,
                        file = %crl.path.display(),
                        issuer = %crl.issuer,
                        number = crl.number.as_ref().map(|n| n.to_string()),
                        revoked = crl.revoked,
                        "client certificate CRL loaded"
                    );
                }
            }
        }
        Err(e) => {
            failing.set(1);
            error!(
                host,
                "client certificate CRLs refused, the previous set stays in force: {e}"
            );
        }
    }
}

#[cfg(test)]
mod tests;
