//! A certificate reload of one host: read cert and key together, hold them to the host's
//! policy, and decide with `certs::rotation::decide` ([`reload_host`], which reads and
//! changes nothing live); then [`apply`] acts on the outcome through the slot's one
//! writer: swap, wait for the other half of a rotation, or keep the last good
//! certificate and report.

use std::sync::Arc;

use certfront_certs::SharedChecks;
use certfront_certs::rotation::{Decision, Trigger, decide};
use certfront_certs::store::{CertReader, CertWriter, ReloadResult, Served};
use tracing::{error, info};

use crate::error::Problem;
use crate::metrics::Metrics;
use crate::prepare::load_problem;
use crate::sites::Site;

/// The outcome of one host's reload, to [`apply`].
#[derive(Debug)]
pub(crate) enum Outcome {
    Unchanged,
    /// New files that pass every rule: serve them.
    Swap(Box<Served>),
    Pending,
    /// The files violate; the served certificate stays.
    Failed(Vec<Problem>),
}

/// Decides one host's reload (blocking: file I/O and signature checks; run off the async
/// workers); nothing live changes until [`apply`]. `shared` is the pass this reload
/// belongs to: hosts of the pass that use the same files read and check them once (see
/// [`SharedChecks`]).
pub(crate) fn reload_host(site: &Site, trigger: Trigger, shared: &mut SharedChecks<'_>) -> Outcome {
    let slot = &site.cert;
    let policy = &site.host.policy;
    let (fqdn, names, source) = (slot.fqdn(), slot.names(), slot.source());
    let loaded = shared
        .load_host(fqdn, names, source, policy)
        .map_err(|e| load_problem(fqdn, e));
    match loaded {
        Err(e) => Outcome::Failed(vec![e]),
        Ok(loaded) => {
            let content_hash = loaded.content_hash();
            // An empty slot (an ACME host before its first certificate) matches no content.
            let served_hash = slot.load().map(|s| s.content_hash).unwrap_or([0; 32]);
            // What is served passed every rule already: only new content is checked (a
            // re-scan of 10,000 unchanged hosts costs reads and hashes, no verification).
            let violations = if served_hash == content_hash {
                Vec::new()
            } else {
                shared.check_host(names, source, policy, &loaded).violations
            };
            match decide(&served_hash, &content_hash, &violations, trigger) {
                Decision::Unchanged => Outcome::Unchanged,
                Decision::Pending => Outcome::Pending,
                Decision::Refuse => Outcome::Failed(
                    violations
                        .into_iter()
                        .map(|violation| Problem::Violation {
                            host: fqdn.to_owned(),
                            violation,
                        })
                        .collect(),
                ),
                Decision::Swap => match loaded.served() {
                    Ok(served) => Outcome::Swap(Box::new(served)),
                    Err(source) => Outcome::Failed(vec![Problem::Cert {
                        host: fqdn.to_owned(),
                        source,
                    }]),
                },
            }
        }
    }
}

/// Acts on a host's outcome through its slot's writer: the slot, the metrics and the log
/// line change here and only here. Returns what is served now when it was swapped.
pub(crate) fn apply(
    writer: &CertWriter,
    slot: &CertReader,
    outcome: Outcome,
    metrics: &Metrics,
) -> Option<Arc<Served>> {
    let host = writer.fqdn();
    match outcome {
        Outcome::Unchanged => {
            if slot.status().last_result == Some(ReloadResult::Failure) {
                // The files are back to what is served: nothing on disk is bad any more.
                writer.record(None);
                metrics
                    .cert_reload_failing
                    .with_label_values(&[host])
                    .set(0);
                info!(host, "certificate files match the served certificate again");
            }
        }
        Outcome::Swap(served) => {
            writer.swap(*served, true);
            let served = slot.load()?;
            info!(
                host,
                serial = %served.info.serial,
                thumbprint = %served.info.sha1_thumbprint,
                expires = %crate::clock::fmt_time(served.info.not_after),
                "certificate reloaded"
            );
            metrics.reload_result(host, true);
            metrics.cert_served(host, &served.info, served.loaded_at);
            // The CA list follows once per pass (`dependents::chains_served`).
            return Some(served);
        }
        Outcome::Pending => {
            info!(
                host,
                "certificate and key do not match yet (rotation in progress?); still serving the previous certificate"
            );
        }
        Outcome::Failed(problems) => {
            let served = slot.load();
            for p in &problems {
                match &served {
                    Some(served) => error!(
                        host,
                        serving = %served.info.serial,
                        expires = %crate::clock::fmt_time(served.info.not_after),
                        "reload refused, the last good certificate stays: {p}"
                    ),
                    None => error!(
                        host,
                        "reload refused, the host still serves no certificate: {p}"
                    ),
                }
            }
            let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
            writer.record(Some(text.join("; ")));
            metrics.reload_result(host, false);
        }
    }
    None
}

#[cfg(test)]
mod tests;
