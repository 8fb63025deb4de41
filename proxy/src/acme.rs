//! The proxy's side of ACME (issue 12): starting the engine once the listeners are bound,
//! wiring its "new files" signal to the reloader, and what the admin listener shows.
//! The engine itself (orders, renewals, the policy gate) is the `certfront-acme` crate.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::SystemTime;

use certfront_acme::{AcmeHost, Challenges, Engine, Gate, Settings, StatusBoard};
use certfront_certs::{CertSource, TrustAnchors};
use certfront_config::Config;
use serde_json::{Value, json};

use crate::clock::{fmt_time, unix};
use crate::metrics::Metrics;

/// What the listeners and the admin endpoints share with the engine.
#[derive(Default)]
pub(crate) struct AcmeState {
    /// Answers to pending challenges (empty when no host uses ACME).
    pub challenges: Arc<Challenges>,
    pub status: Arc<StatusBoard>,
    /// The fqdns of `acme = true` hosts.
    hosts: BTreeSet<String>,
}

impl AcmeState {
    pub(crate) fn new(config: &Config) -> AcmeState {
        AcmeState {
            hosts: acme_hosts(config).map(|h| h.fqdn.clone()).collect(),
            ..AcmeState::default()
        }
    }

    pub(crate) fn is_acme(&self, fqdn: &str) -> bool {
        self.hosts.contains(fqdn)
    }

    /// The `acme` object of a host in `/certs`, for ACME hosts.
    pub(crate) fn json(&self, fqdn: &str) -> Option<Value> {
        if !self.is_acme(fqdn) {
            return None;
        }
        let status = self.status.get(fqdn).unwrap_or_default();
        let time = |t: Option<SystemTime>| t.map(|t| fmt_time(unix(t)));
        Some(json!({
            "next_renewal": time(status.next_renewal),
            "failing_since": time(status.failing_since),
            "last_success": time(status.last_success),
            "last_error": status.last_error,
        }))
    }
}

/// The http-01 answer for `path` when some host uses ACME: the key authorization of a
/// pending token, else 404 (never a redirect: a CA follows it to https, which cannot answer).
pub(crate) fn http_01(
    state: &AcmeState,
    path: &str,
) -> Option<http::Response<http_body_util::Full<bytes::Bytes>>> {
    if state.hosts.is_empty() || !Challenges::is_http_path(path) {
        return None;
    }
    Some(match state.challenges.http(path) {
        Some(key_authorization) => {
            crate::respond::plain(http::StatusCode::OK, bytes::Bytes::from(key_authorization))
        }
        None => crate::respond::plain(
            http::StatusCode::NOT_FOUND,
            bytes::Bytes::from_static(b"no such ACME challenge\n"),
        ),
    })
}

fn acme_hosts(config: &Config) -> impl Iterator<Item = &certfront_config::Host> {
    config.hosts.iter().filter(|h| h.acme)
}

/// Resolves `[acme]` (EAB key from the environment, `acme.ca`) for `run` and `check`;
/// `Ok(None)` when no host uses ACME.
pub(crate) fn settings(config: &Config) -> Result<Option<Settings>, certfront_acme::AcmeError> {
    let Some(acme) = &config.acme else {
        return Ok(None);
    };
    if acme_hosts(config).next().is_none() {
        return Ok(None);
    }
    Settings::new(acme, &config.server.state_dir, &config.tls.trust).map(Some)
}

/// Creates each ACME host's directory (mode 0700) before the watcher starts, so that the
/// first certificate's files are seen the moment they are written.
pub(crate) fn create_dirs(
    config: &Config,
    _settings: &Settings,
) -> Result<(), crate::error::Problem> {
    for host in acme_hosts(config) {
        if let CertSource::Pem { cert, .. } = &host.source
            && let Some(dir) = cert.parent()
        {
            certfront_certs::files::create_private_dir(dir).map_err(|source| {
                crate::error::Problem::Cert {
                    host: host.fqdn.clone(),
                    source,
                }
            })?;
        }
    }
    Ok(())
}

/// Starts the engine: one task per ACME host. `reload` is called with a host's fqdn once
/// its new pair is written.
pub(crate) fn start(
    config: &Config,
    settings: Settings,
    trust: TrustAnchors,
    state: &AcmeState,
    metrics: &Metrics,
    reload: certfront_acme::OnStored,
) -> Engine {
    let hosts = acme_hosts(config)
        .filter_map(|h| match &h.source {
            CertSource::Pem { cert, key } => Some(AcmeHost {
                fqdn: h.fqdn.clone(),
                names: h.names(),
                cert: cert.clone(),
                key: key.clone(),
                policy: h.policy.clone(),
            }),
            _ => None, // validate() gives every ACME host a PEM pair
        })
        .collect();
    Engine::spawn(
        settings,
        Gate { trust },
        hosts,
        state.challenges.clone(),
        metrics.acme.clone(),
        state.status.clone(),
        reload,
    )
}
