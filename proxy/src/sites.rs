//! The served hosts and their lookup by SNI: exact names first, then wildcard hosts.
//!
//! Lookup is two hash probes whatever the number of hosts (10,000-host deployments exist),
//! and allocates only when a client sends upper-case letters in its SNI.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use certfront_certs::names;
use certfront_config::UnknownSni;
use http::{HeaderValue, StatusCode};
use rustls::ServerConfig;

use crate::forward::upstream::Upstreams;
use certfront_certs::store::CertSlot;

/// What a host does with a request whose Host it accepts.
pub enum Route {
    Respond { status: StatusCode, body: Bytes },
    Upstream(Box<Upstreams>),
}

/// One `[[host]]` at run time.
pub struct Site {
    pub fqdn: String,
    /// fqdn then aliases, normalized; a wildcard host's fqdn is `*.rest`.
    pub names: Box<[String]>,
    pub cert: Arc<CertSlot>,
    pub tls: Arc<ServerConfig>,
    pub route: Route,
    /// `upstream_host`, when the backend wants another Host than the client's.
    pub upstream_host: Option<HeaderValue>,
    /// Mutual TLS settings, when `[host.client_auth]` is set.
    pub client_auth: Option<Arc<crate::mtls::ClientAuthState>>,
    /// This host's request-duration histogram, resolved once instead of per request.
    pub duration: prometheus::Histogram,
}

impl Site {
    /// Whether a request's Host (port ignored) is one of this host's names.
    pub fn accepts(&self, host: &str) -> bool {
        let host = strip_port(host);
        self.names.iter().any(|name| names::covers(name, host))
    }
}

/// `host[:port]` or `[v6]:port` without the port.
pub fn strip_port(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

/// The outcome of an SNI lookup.
pub enum Lookup<'a> {
    Found(&'a Arc<Site>),
    /// A name no host serves (`unknown_sni = "reject"`).
    Unknown,
    /// No SNI and no `default_host`.
    NoSni,
}

/// Every site, indexed by name.
pub struct SiteTable {
    sites: Vec<Arc<Site>>,
    exact: HashMap<String, usize>,
    /// Keyed by what follows `*.`.
    wildcard: HashMap<String, usize>,
    default: Option<usize>,
    unknown_sni: UnknownSni,
}

impl SiteTable {
    pub fn new(sites: Vec<Arc<Site>>, default_host: Option<&str>, unknown_sni: UnknownSni) -> Self {
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        for (i, site) in sites.iter().enumerate() {
            for name in site.names.iter() {
                match name.strip_prefix("*.") {
                    Some(rest) => wildcard.insert(rest.to_owned(), i),
                    None => exact.insert(name.clone(), i),
                };
            }
        }
        let default = default_host.and_then(|d| {
            exact
                .get(d)
                .or_else(|| d.strip_prefix("*.").and_then(|r| wildcard.get(r)))
                .copied()
        });
        SiteTable {
            sites,
            exact,
            wildcard,
            default,
            unknown_sni,
        }
    }

    pub fn sites(&self) -> &[Arc<Site>] {
        &self.sites
    }

    /// Picks the site for a ClientHello's SNI.
    pub fn by_sni(&self, sni: Option<&str>) -> Lookup<'_> {
        let Some(sni) = sni else {
            return match self.default {
                Some(i) => Lookup::Found(&self.sites[i]),
                None => Lookup::NoSni,
            };
        };
        let found = if sni.ends_with('.') || sni.bytes().any(|b| b.is_ascii_uppercase()) {
            self.find(&names::normalize(sni))
        } else {
            self.find(sni)
        };
        match (found, self.unknown_sni, self.default) {
            (Some(i), _, _) => Lookup::Found(&self.sites[i]),
            (None, UnknownSni::Default, Some(i)) => Lookup::Found(&self.sites[i]),
            _ => Lookup::Unknown,
        }
    }

    fn find(&self, name: &str) -> Option<usize> {
        if let Some(i) = self.exact.get(name) {
            return Some(*i);
        }
        // A wildcard covers exactly one leftmost label.
        let (label, rest) = name.split_once('.')?;
        if label.is_empty() || rest.is_empty() {
            return None;
        }
        self.wildcard.get(rest).copied()
    }
}
