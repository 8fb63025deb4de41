//! Hot certificate reload: file events (debounced), SIGHUP and a periodic re-scan all lead
//! to the same step per host: read cert and key together, skip when the content is what is
//! served, hold the pair to every rule, and swap it in with one atomic store. Bad files keep
//! the last good certificate in service; a half-finished rotation waits for the next event.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use certfront_certs::store::{CertSlot, ReloadResult, Served};

use crate::metrics::Metrics;
use crate::mtls::ClientAuthState;
use crate::prepare::load_source;
use certfront_certs::{InternalCa, Policy, Rule, TrustAnchors, check};
use tokio::sync::mpsc;
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
    /// Each host's policy (`[policy]` with its `[host.policy]`), by fqdn.
    pub policies: HashMap<String, Policy>,
    pub trust: TrustAnchors,
    pub ca: Option<Arc<InternalCa>>,
    pub metrics: Arc<Metrics>,
}

/// Every host's policy by fqdn, for [`ReloadCtx::policies`].
pub fn policies(config: &certfront_config::Config) -> HashMap<String, Policy> {
    config
        .hosts
        .iter()
        .map(|h| (h.fqdn.clone(), h.policy.clone()))
        .collect()
}

/// Reloads one host (blocking: file I/O and signature checks; run off the async workers).
pub fn reload_host(slot: &CertSlot, ctx: &ReloadCtx, trigger: Trigger) -> Outcome {
    let default_policy;
    let policy = match ctx.policies.get(&slot.fqdn) {
        Some(p) => p,
        None => {
            default_policy = Policy::default();
            &default_policy
        }
    };
    let loaded = load_source(
        &slot.fqdn,
        &slot.names,
        &slot.source,
        policy,
        ctx.ca.as_deref(),
    );
    let outcome = match loaded {
        Err(e) => Outcome::Failed(vec![e]),
        Ok(bundle) if bundle.content_hash == slot.load().content_hash => Outcome::Unchanged,
        Ok(bundle) => {
            let report = check::check(
                &slot.names,
                &slot.source,
                &bundle,
                policy,
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
            let served = slot.load();
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
            let served = slot.load();
            for p in problems {
                error!(
                    host,
                    "reload refused: {p}; still serving serial {} (expires {})",
                    served.info.serial,
                    crate::commands::fmt_time(served.info.not_after)
                );
            }
            slot.record(ReloadResult::Failure, Some(problems.join("; ")));
            metrics.reload_result(host, false);
        }
    }
}

/// Asks the reloader to re-read hosts.
#[derive(Debug)]
pub enum Request {
    /// Files of these hosts changed (from the watcher).
    Changed(Vec<usize>),
    /// Re-read every host now (SIGHUP).
    All,
}

/// Runs reloads: debounces watcher events, re-reads everything on request and every `rescan`.
pub async fn run(
    slots: Vec<Arc<CertSlot>>,
    deny: Vec<Option<Arc<ClientAuthState>>>,
    ctx: Arc<ReloadCtx>,
    mut requests: mpsc::UnboundedReceiver<Request>,
    rescan: Option<Duration>,
) {
    let mut dirty: BTreeSet<usize> = BTreeSet::new();
    let mut quiet_at = Instant::now();
    let far = Duration::from_secs(86400 * 365);
    let mut next_rescan = Instant::now() + rescan.unwrap_or(far);
    loop {
        let wake = if dirty.is_empty() {
            next_rescan
        } else {
            quiet_at.min(next_rescan)
        };
        tokio::select! {
            req = requests.recv() => match req {
                None => return,
                Some(Request::Changed(ids)) => {
                    dirty.extend(ids);
                    quiet_at = Instant::now() + DEBOUNCE;
                }
                Some(Request::All) => {
                    info!("re-reading every certificate (SIGHUP)");
                    dirty.clear();
                    deny.iter().flatten().for_each(|d| reload_deny(d));
                    reload_all(&slots, &ctx, (0..slots.len()).collect(), Trigger::Signal).await;
                }
            },
            _ = tokio::time::sleep_until(wake) => {
                if Instant::now() >= next_rescan {
                    next_rescan = Instant::now() + rescan.unwrap_or(far);
                    dirty.clear();
                    deny.iter().flatten().for_each(|d| reload_deny(d));
                    reload_all(&slots, &ctx, (0..slots.len()).collect(), Trigger::Rescan).await;
                } else if !dirty.is_empty() && Instant::now() >= quiet_at {
                    let (certs, lists): (Vec<usize>, Vec<usize>) =
                        std::mem::take(&mut dirty).into_iter().partition(|i| *i < slots.len());
                    for i in lists {
                        if let Some(Some(d)) = deny.get(i - slots.len()) {
                            reload_deny(d);
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

/// Re-reads a host's deny list; a bad list keeps the old one.
fn reload_deny(state: &ClientAuthState) {
    match state.reload() {
        Ok(true) => info!(host = state.host, "client certificate deny list reloaded"),
        Ok(false) => {}
        Err(e) => error!(host = state.host, "{e}; keeping the previous deny list"),
    }
}
