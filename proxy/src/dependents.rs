//! Every CA certificate certfront depends on, watched for expiry: gathered from the served
//! chains, the config's CA files and the internal CA, listed by
//! [`certfront_certs::depended_cas`], exported as `certfront_ca_not_after_timestamp_seconds`
//! and in `/certs`.
//!
//! Call [`refresh_snapshot`] whenever a configuration snapshot is put in force, and
//! [`chains_served`] when hosts' certificates are swapped. Label values come only from
//! these files, never from clients.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use certfront_certs::store::Served;
use certfront_certs::{CaRole, InternalCa, depended_cas, read_certificates};
use certfront_config::Config;
use rustls_pki_types::CertificateDer;
use tracing::warn;

use crate::metrics::Metrics;
use crate::snapshot::Snapshot;

/// Where CA certificates were found.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Origin {
    /// The certificates after the leaf in what this host serves.
    Chain(String),
    /// A CA file of the config (or the internal CA's root file), read whole.
    File(CaRole, PathBuf),
}

impl Origin {
    fn role(&self) -> CaRole {
        match self {
            Origin::Chain(_) => CaRole::Intermediate,
            Origin::File(role, _) => *role,
        }
    }

    /// What `/certs` shows as where the CA was found: the host, or the file.
    fn label(&self) -> String {
        match self {
            Origin::Chain(host) => host.clone(),
            Origin::File(_, path) => path.display().to_string(),
        }
    }
}

/// The certificates last gathered, per origin (held by [`crate::app::App`], for start and
/// the reloader): a swap of one host's chain replaces that
/// entry only, and a CA file that cannot be read at a refresh keeps what it held (the
/// running verifiers were built from that content, so it is still what is depended on).
#[derive(Debug, Default)]
pub(crate) struct Inputs(Mutex<BTreeMap<Origin, Vec<CertificateDer<'static>>>>);

/// Gathers everything again: `chains` are the served chains (leaf first) by host, the CA
/// files are those `config` names (`tls.trust`, each `client_auth.ca` and `upstream_ca`),
/// plus the internal CA's root when there is one. Hosts and files no longer there drop
/// out, and with them the series of CAs nothing else depends on.
pub(crate) fn refresh<'a>(
    metrics: &Metrics,
    inputs: &Inputs,
    config: &Config,
    ca: Option<&InternalCa>,
    chains: impl IntoIterator<Item = (&'a str, &'a [CertificateDer<'static>])>,
) {
    let mut inputs = inputs.0.lock().unwrap_or_else(|e| e.into_inner());
    let mut next = BTreeMap::new();
    for (host, chain) in chains {
        next.insert(Origin::Chain(host.to_owned()), after_leaf(chain));
    }
    for (role, path) in ca_files(config) {
        let origin = Origin::File(role, path.clone());
        if next.contains_key(&origin) {
            continue;
        }
        match read_certificates(&path, None) {
            Ok(certs) => {
                next.insert(origin, certs);
            }
            Err(e) => {
                let kept = inputs.remove(&origin);
                warn!(
                    role = role.as_str(),
                    file = %path.display(),
                    "cannot read a CA file to watch its expiry ({e}); {}",
                    if kept.is_some() {
                        "keeping what it held before"
                    } else {
                        "its certificates are not watched"
                    }
                );
                if let Some(old) = kept {
                    next.insert(origin, old);
                }
            }
        }
    }
    if let Some(ca) = ca {
        next.insert(
            Origin::File(CaRole::InternalCa, ca.root_path()),
            vec![ca.root_der()],
        );
    }
    *inputs = next;
    export(metrics, &inputs);
}

/// [`refresh`] for a configuration snapshot: its config, its internal CA, and the chains its
/// sites serve right now. Call it when a snapshot is put in force.
pub(crate) fn refresh_snapshot(metrics: &Metrics, inputs: &Inputs, rt: &Snapshot) {
    let served: Vec<(&str, Arc<Served>)> = rt
        .table
        .sites()
        .iter()
        .filter_map(|s| Some((s.fqdn.as_str(), s.cert.load()?)))
        .collect();
    refresh(
        metrics,
        inputs,
        &rt.config,
        rt.ca.as_deref(),
        served
            .iter()
            .map(|(host, s)| (*host, s.key.cert.as_slice())),
    );
}

/// Each host now serves its chain (leaf first): its intermediates replace the ones it
/// served before; an intermediate no other host serves any more loses its series. One
/// export for the whole batch: a rotation of a certificate that 10,000 hosts share lists
/// the CAs once, not once per host.
pub(crate) fn chains_served<'a>(
    metrics: &Metrics,
    inputs: &Inputs,
    chains: impl IntoIterator<Item = (&'a str, &'a [CertificateDer<'static>])>,
) {
    let mut inputs = inputs.0.lock().unwrap_or_else(|e| e.into_inner());
    let mut any = false;
    for (host, chain) in chains {
        inputs.insert(Origin::Chain(host.to_owned()), after_leaf(chain));
        any = true;
    }
    if any {
        export(metrics, &inputs);
    }
}

fn after_leaf(chain: &[CertificateDer<'static>]) -> Vec<CertificateDer<'static>> {
    chain.get(1..).unwrap_or_default().to_vec()
}

/// Every CA file the config names, with its role, in config order.
fn ca_files(config: &Config) -> Vec<(CaRole, PathBuf)> {
    let trust = config.tls.trust.iter().map(|p| (CaRole::Trust, p.clone()));
    let hosts = config.hosts.iter().flat_map(|h| {
        let client = h
            .client_auth
            .as_ref()
            .map(|a| (CaRole::ClientCa, a.ca.clone()));
        let upstream = h.upstream_ca.clone().map(|p| (CaRole::UpstreamCa, p));
        client.into_iter().chain(upstream)
    });
    trust.chain(hosts).collect()
}

/// Lists and exports the CAs of `inputs`; called with the inputs locked, so that two
/// writers cannot export their sets in the opposite order of their gathering.
fn export(metrics: &Metrics, inputs: &BTreeMap<Origin, Vec<CertificateDer<'static>>>) {
    let labelled: Vec<(CaRole, String, &[CertificateDer<'static>])> = inputs
        .iter()
        .map(|(origin, certs)| (origin.role(), origin.label(), certs.as_slice()))
        .collect();
    let cas = depended_cas(labelled.iter().flat_map(|(role, label, certs)| {
        certs
            .iter()
            .map(move |der| (*role, label.as_str(), der.as_ref()))
    }));
    metrics.set_cas(cas);
}

#[cfg(test)]
mod tests;
