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

use crate::upstream::Upstreams;
use certfront_certs::store::CertReader;

/// What a host does with a request whose Host it accepts.
pub(crate) enum Route {
    Respond { status: StatusCode, body: Bytes },
    Upstream(Box<Upstreams>),
}

/// One `[[host]]` at run time.
pub struct Site {
    pub fqdn: String,
    /// fqdn then aliases, normalized; a wildcard host's fqdn is `*.rest`.
    pub(crate) names: Box<[String]>,
    pub(crate) cert: CertReader,
    pub(crate) tls: Arc<ServerConfig>,
    pub(crate) route: Route,
    /// `upstream_host`, when the backend wants another Host than the client's.
    pub(crate) upstream_host: Option<HeaderValue>,
    /// Mutual TLS settings, when `[host.client_auth]` is set.
    pub(crate) client_auth: Option<Arc<crate::mtls::ClientAuthState>>,
    /// This host's request-duration histogram, resolved once instead of per request.
    pub(crate) duration: prometheus::Histogram,
    /// This host's request counters by status code.
    pub(crate) requests: crate::metrics::RequestCounts,
    /// This host's send-timeout counters.
    pub(crate) send_timeouts: crate::send_timeout::SendTimeouts,
    /// The `[[host]]` it was built from.
    pub(crate) host: certfront_config::Host,
    /// Hash of everything the site was built from (see `snapshot`): equal means reusable.
    pub(crate) definition: [u8; 32],
    /// Set once a newer snapshot no longer serves this site as it is: its connections
    /// finish their requests and close.
    pub(crate) retired: tokio::sync::watch::Sender<bool>,
}

impl Site {
    /// Marks the site retired and wakes its connections.
    pub(crate) fn retire(&self) {
        self.retired.send_replace(true);
    }

    pub(crate) fn is_retired(&self) -> bool {
        *self.retired.borrow()
    }

    /// Resolves once the site is retired.
    pub(crate) async fn retirement(&self) {
        let mut rx = self.retired.subscribe();
        let _ = rx.wait_for(|retired| *retired).await;
    }
}

/// The outcome of an SNI lookup.
pub(crate) enum Lookup<'a> {
    Found(&'a Arc<Site>),
    /// A name no host serves (`unknown_sni = "reject"`).
    Unknown,
    /// No SNI and no `default_host`.
    NoSni,
}

/// Names to site indices: exact names first, then wildcards. Kept apart from [`Site`] so
/// the routing decision is a plain function with unit tests.
#[derive(Debug, Default)]
pub(crate) struct NameIndex {
    exact: HashMap<String, usize>,
    /// Keyed by what follows `*.`.
    wildcard: HashMap<String, usize>,
}

impl NameIndex {
    /// `names` are normalized (lower case, no trailing dot); a wildcard is `*.rest`.
    pub(crate) fn new<'a>(names: impl IntoIterator<Item = (usize, &'a str)>) -> Self {
        let mut index = NameIndex::default();
        for (i, name) in names {
            match name.strip_prefix("*.") {
                Some(rest) => index.wildcard.insert(rest.to_owned(), i),
                None => index.exact.insert(name.to_owned(), i),
            };
        }
        index
    }

    /// The index serving `name` as a client sent it (any case, trailing dot allowed);
    /// allocates only when the name is not yet in normalized form.
    pub(crate) fn find(&self, name: &str) -> Option<usize> {
        if name.ends_with('.') || name.bytes().any(|b| b.is_ascii_uppercase()) {
            self.find_normalized(&names::normalize(name))
        } else {
            self.find_normalized(name)
        }
    }

    fn find_normalized(&self, name: &str) -> Option<usize> {
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

/// Every site, indexed by name.
pub struct SiteTable {
    sites: Vec<Arc<Site>>,
    index: NameIndex,
    default: Option<usize>,
    unknown_sni: UnknownSni,
}

impl SiteTable {
    pub(crate) fn new(
        sites: Vec<Arc<Site>>,
        default_host: Option<&str>,
        unknown_sni: UnknownSni,
    ) -> Self {
        let index = NameIndex::new(
            sites
                .iter()
                .enumerate()
                .flat_map(|(i, site)| site.names.iter().map(move |n| (i, n.as_str()))),
        );
        // `default_host` is a configured fqdn, so it is one of the index's own keys.
        let default = default_host.and_then(|d| {
            index
                .exact
                .get(d)
                .or_else(|| d.strip_prefix("*.").and_then(|r| index.wildcard.get(r)))
                .copied()
        });
        SiteTable {
            sites,
            index,
            default,
            unknown_sni,
        }
    }

    pub fn sites(&self) -> &[Arc<Site>] {
        &self.sites
    }

    /// Picks the site for a ClientHello's SNI.
    pub(crate) fn by_sni(&self, sni: Option<&str>) -> Lookup<'_> {
        let Some(sni) = sni else {
            return match self.default {
                Some(i) => Lookup::Found(&self.sites[i]),
                None => Lookup::NoSni,
            };
        };
        match (self.index.find(sni), self.unknown_sni, self.default) {
            (Some(i), _, _) => Lookup::Found(&self.sites[i]),
            (None, UnknownSni::Default, Some(i)) => Lookup::Found(&self.sites[i]),
            _ => Lookup::Unknown,
        }
    }

    /// The site whose `[[host]]` has exactly this fqdn (a wildcard host's is `*.rest`).
    pub(crate) fn by_fqdn(&self, fqdn: &str) -> Option<&Arc<Site>> {
        // Every fqdn is a key of the index (exact, or wildcard by what follows `*.`); the
        // comparison keeps a name that a wildcard merely covers from matching.
        let i = self.index.find(fqdn)?;
        let site = &self.sites[i];
        (site.fqdn == fqdn).then_some(site)
    }

    /// The site that a request naming `name` (no port) belongs to: the same lookup SNI
    /// routing makes, so a Host can only reach the host its name would have selected.
    pub fn by_name(&self, name: &str) -> Option<&Arc<Site>> {
        self.index.find(name).map(|i| &self.sites[i])
    }
}

#[cfg(test)]
mod tests {
    use super::NameIndex;

    fn index() -> NameIndex {
        NameIndex::new([
            (0, "admin.wild.test"),
            (1, "*.wild.test"),
            (2, "app.example.org"),
            (2, "app.internal.example.org"),
        ])
    }

    #[test]
    fn exact_names_win_over_the_wildcard_that_covers_them() {
        let i = index();
        assert_eq!(i.find("admin.wild.test"), Some(0));
        assert_eq!(i.find("x.wild.test"), Some(1));
        assert_eq!(i.find("ADMIN.Wild.Test."), Some(0));
        assert_eq!(i.find("app.internal.example.org"), Some(2));
    }

    /// What `SiteTable::by_fqdn` relies on: every fqdn, a wildcard's `*.rest` included, is
    /// found at its own index; a name a wildcard merely covers is found there too, which
    /// is why `by_fqdn` compares the fqdn of what it found.
    #[test]
    fn every_fqdn_is_found_at_its_own_index() {
        let i = index();
        assert_eq!(i.find("admin.wild.test"), Some(0));
        assert_eq!(i.find("*.wild.test"), Some(1));
        assert_eq!(i.find("app.example.org"), Some(2));
        assert_eq!(i.find("other.wild.test"), Some(1));
    }

    #[test]
    fn a_wildcard_covers_one_label_only() {
        let i = index();
        assert_eq!(i.find("wild.test"), None);
        assert_eq!(i.find("a.b.wild.test"), None);
        assert_eq!(i.find(".wild.test"), None);
        assert_eq!(i.find("other.example.org"), None);
        assert_eq!(i.find(""), None);
    }
}
