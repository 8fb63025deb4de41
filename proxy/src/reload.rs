//! Hot certificate reload: file events (debounced), SIGHUP and a periodic re-scan all lead
//! to the same step per host: read cert and key together, skip when the content is what is
//! served, hold the pair to every rule, and swap it in with one atomic store. Bad files keep
//! the last good certificate in service; a half-finished rotation waits for the next event.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use certfront_certs::store::{CertSlot, ReloadResult, Served};

use crate::metrics::Metrics;
use crate::mtls::{ClientAuthState, DenyFileError};
use crate::prepare::load_source;
use certfront_certs::{InternalCa, Policy, Rule, TrustAnchors, check};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tracing::{error, info, warn};

/// Files must be quiet this long before they are read: editors and `cp` write in steps.
pub const DEBOUNCE: Duration = Duration::from_millis(200);

/// What started a reload; a watcher event forgives a certificate/key mismatch once,
/// because the other half of the rotation is usually still being written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    Event,
    Rescan,
    Signal,
}

/// The outcome of one host's reload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The files hold what is served already.
    Unchanged,
    /// A new certificate is served.
    Swapped,
    /// Certificate and key do not match yet; the served certificate stays, no failure counted.
    Pending,
    /// The files violate; the served certificate stays.
    Failed(Vec<String>),
}

/// What a reload needs besides the slot: the rules and the anchors they are checked against.
pub struct ReloadCtx {
    pub policy: Policy,
    pub trust: TrustAnchors,
    pub ca: Option<Arc<InternalCa>>,
    pub metrics: Arc<Metrics>,
}

/// Reloads one host (blocking: file I/O and signature checks; run off the async workers).
pub fn reload_host(slot: &CertSlot, ctx: &ReloadCtx, trigger: Trigger) -> Outcome {
    let loaded = load_source(&slot.fqdn, &slot.names, &slot.source, ctx.ca.as_deref());
    let outcome = match loaded {
        Err(e) => Outcome::Failed(vec![e]),
        Ok(bundle)
            if slot
                .load()
                .is_some_and(|s| s.content_hash == bundle.content_hash) =>
        {
            Outcome::Unchanged
        }
        Ok(bundle) => {
            let report = check::check(
                &slot.names,
                &slot.source,
                &bundle,
                &ctx.policy,
                &ctx.trust,
                SystemTime::now(),
            );
            let only_mismatch = !report.violations.is_empty()
                && report.violations.iter().all(|v| v.rule == Rule::KeyMatch);
            if only_mismatch && trigger == Trigger::Event {
                Outcome::Pending
            } else if !report.violations.is_empty() {
                Outcome::Failed(report.violations.iter().map(|v| v.to_string()).collect())
            } else {
                match Served::from_bundle(&bundle) {
                    Ok(served) => {
                        slot.store(served);
                        Outcome::Swapped
                    }
                    Err(e) => Outcome::Failed(vec![e.to_string()]),
                }
            }
        }
    };
    report(slot, &outcome, &ctx.metrics);
    outcome
}

fn report(slot: &CertSlot, outcome: &Outcome, metrics: &Metrics) {
    let host = &slot.fqdn;
    match outcome {
        Outcome::Unchanged => {
            if slot.status().last_result == Some(ReloadResult::Failure) {
                // The files are back to what is served: nothing on disk is bad any more.
                slot.record(ReloadResult::Success, None);
                metrics
                    .cert_reload_failing
                    .with_label_values(&[host])
                    .set(0);
                info!(host, "certificate files match the served certificate again");
            }
        }
        Outcome::Swapped => {
            let Some(served) = slot.load() else { return };
            info!(
                host,
                "certificate reloaded: now serving serial {} thumbprint {} (expires {})",
                served.info.serial,
                served.info.sha1_thumbprint,
                crate::commands::fmt_time(served.info.not_after)
            );
            slot.record(ReloadResult::Success, None);
            metrics.reload_result(host, true);
            metrics.cert_served(host, &served.info, served.loaded_at);
        }
        Outcome::Pending => {
            info!(
                host,
                "certificate and key do not match yet (rotation in progress?); still serving the previous certificate"
            );
        }
        Outcome::Failed(problems) => {
            let serving = match slot.load() {
                Some(served) => format!(
                    "still serving serial {} (expires {})",
                    served.info.serial,
                    crate::commands::fmt_time(served.info.not_after)
                ),
                None => "the host still serves no certificate".to_owned(),
            };
            for p in problems {
                error!(host, "reload refused: {p}; {serving}");
            }
            slot.record(ReloadResult::Failure, Some(problems.join("; ")));
            metrics.reload_result(host, false);
        }
    }
}

/// Asks the reloader to re-read every host now (SIGHUP, `Running::reload_all`). Watcher
/// events do not come this way but through [`Changes`], which cannot grow.
#[derive(Debug)]
pub enum Request {
    All,
}

/// The longest a reload waits after the first event of a burst, however busy the
/// directory stays: well inside the 5 seconds in which a rotation must be served.
pub const MAX_DELAY: Duration = Duration::from_secs(2);

/// When a burst of events is read: once the files have been quiet for [`DEBOUNCE`], but
/// never later than [`MAX_DELAY`] after the burst's first event, so a directory that
/// never stops changing (a log file beside the certificates) cannot postpone it for ever.
pub fn reload_at(first_event: Instant, last_event: Instant) -> Instant {
    (last_event + DEBOUNCE).min(first_event + MAX_DELAY)
}

/// What the watcher saw and the reloader has not read yet: the owners marked (a set, so
/// bounded by the number of watched files however many events arrive) and one wake-up
/// (`Notify` keeps at most one). The notify thread marks and returns; it never waits for
/// the reloader and nothing queues while a reload runs.
#[derive(Debug, Default)]
pub struct Changes {
    pending: Mutex<BTreeSet<usize>>,
    wake: Notify,
}

impl Changes {
    /// Called on the watcher's thread for every event.
    pub fn mark(&self, owners: &[usize]) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(owners.iter().copied());
        self.wake.notify_one();
    }

    fn take(&self) -> BTreeSet<usize> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// `now + d`, or far in the future when that cannot be represented (never a panic).
fn later(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(86400 * 365))
}

/// Runs reloads: debounces watcher events (with a ceiling), re-reads everything on
/// request and every `rescan`.
pub async fn run(
    slots: Vec<Arc<CertSlot>>,
    deny: Vec<Option<Arc<ClientAuthState>>>,
    ctx: Arc<ReloadCtx>,
    changes: Arc<Changes>,
    mut requests: mpsc::UnboundedReceiver<Request>,
    rescan: Option<Duration>,
) {
    let mut dirty: BTreeSet<usize> = BTreeSet::new();
    // (first, last) event of the burst not read yet
    let mut burst: Option<(Instant, Instant)> = None;
    let far = Duration::from_secs(86400 * 365);
    let mut next_rescan = later(rescan.unwrap_or(far));
    loop {
        let wake = match burst {
            Some((first, last)) => reload_at(first, last).min(next_rescan),
            None => next_rescan,
        };
        tokio::select! {
            () = changes.wake.notified() => {
                let owners = changes.take();
                if !owners.is_empty() {
                    dirty.extend(owners);
                    let now = Instant::now();
                    burst = Some((burst.map_or(now, |(first, _)| first), now));
                }
            }
            req = requests.recv() => match req {
                None => return,
                Some(Request::All) => {
                    info!("re-reading every certificate (SIGHUP)");
                    dirty.clear();
                    burst = None;
                    deny.iter().flatten().for_each(|d| reload_deny(d, &ctx.metrics));
                    reload_all(&slots, &ctx, (0..slots.len()).collect(), Trigger::Signal).await;
                }
            },
            () = tokio::time::sleep_until(wake) => {
                let now = Instant::now();
                if now >= next_rescan {
                    next_rescan = later(rescan.unwrap_or(far));
                    dirty.clear();
                    burst = None;
                    deny.iter().flatten().for_each(|d| reload_deny(d, &ctx.metrics));
                    reload_all(&slots, &ctx, (0..slots.len()).collect(), Trigger::Rescan).await;
                } else if burst.is_some_and(|(first, last)| now >= reload_at(first, last)) {
                    burst = None;
                    let (certs, lists): (Vec<usize>, Vec<usize>) =
                        std::mem::take(&mut dirty).into_iter().partition(|i| *i < slots.len());
                    for i in lists {
                        if let Some(Some(d)) = deny.get(i - slots.len()) {
                            reload_deny(d, &ctx.metrics);
                        }
                    }
                    reload_all(&slots, &ctx, certs, Trigger::Event).await;
                }
            }
        }
    }
}

async fn reload_all(
    slots: &[Arc<CertSlot>],
    ctx: &Arc<ReloadCtx>,
    ids: Vec<usize>,
    trigger: Trigger,
) {
    let slots: Vec<Arc<CertSlot>> = ids.iter().filter_map(|i| slots.get(*i).cloned()).collect();
    let ctx = ctx.clone();
    let result = tokio::task::spawn_blocking(move || {
        for slot in &slots {
            reload_host(slot, &ctx, trigger);
        }
    })
    .await;
    if let Err(e) = result {
        warn!("reload task failed: {e}");
    }
}

/// The files to watch: every host's certificate, key, .pfx and password file.
/// Deny lists are owned by `slots.len() + host index`, so one watcher serves both.
pub fn watched_files(
    slots: &[Arc<CertSlot>],
    deny: &[Option<Arc<ClientAuthState>>],
) -> Vec<(usize, PathBuf)> {
    let certs = slots.iter().enumerate().flat_map(|(i, s)| {
        s.source
            .files()
            .into_iter()
            .map(move |f| (i, f.to_path_buf()))
    });
    let lists = deny.iter().enumerate().filter_map(|(i, d)| {
        let path = d.as_ref()?.deny_path.clone()?;
        Some((slots.len() + i, path))
    });
    certs.chain(lists).collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn one_event_is_read_after_the_debounce() {
        let t0 = Instant::now();
        assert_eq!(reload_at(t0, t0), t0 + DEBOUNCE);
    }

    #[test]
    fn each_event_postpones_the_read_while_the_burst_is_young() {
        let t0 = Instant::now();
        assert_eq!(reload_at(t0, t0 + ms(150)), t0 + ms(150) + DEBOUNCE);
        assert_eq!(reload_at(t0, t0 + ms(1000)), t0 + ms(1200));
    }

    #[test]
    fn a_directory_that_never_stops_changing_is_read_at_the_ceiling() {
        let t0 = Instant::now();
        // an event every 50 ms for a minute: the read is never later than MAX_DELAY
        let mut last = t0;
        for _ in 0..1200 {
            last += ms(50);
            assert!(reload_at(t0, last) <= t0 + MAX_DELAY);
        }
        assert_eq!(reload_at(t0, last), t0 + MAX_DELAY);
        assert!(MAX_DELAY + DEBOUNCE < Duration::from_secs(5));
    }

    #[test]
    fn changes_coalesce_instead_of_queueing() {
        let changes = Changes::default();
        for _ in 0..100_000 {
            changes.mark(&[3, 1]);
        }
        changes.mark(&[2]);
        assert_eq!(changes.take().into_iter().collect::<Vec<_>>(), [1, 2, 3]);
        assert!(changes.take().is_empty());
    }

    #[tokio::test]
    async fn a_mark_wakes_the_reloader_once_even_before_it_waits() {
        let changes = Changes::default();
        changes.mark(&[0]);
        changes.mark(&[1]);
        // the permit was stored: this returns at once
        tokio::time::timeout(Duration::from_secs(5), changes.wake.notified())
            .await
            .expect("woken");
        // and only one permit was stored for the two marks
        let again = tokio::time::timeout(ms(50), changes.wake.notified()).await;
        assert!(again.is_err());
    }

    #[test]
    fn later_never_panics() {
        assert!(later(Duration::MAX) > Instant::now());
        assert!(later(Duration::from_secs(u64::MAX / 2)) > Instant::now());
    }
}
