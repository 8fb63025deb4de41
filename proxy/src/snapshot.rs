//! The configuration snapshot: everything a connection reads (the site table with each host's
//! TLS config, certificate slot, client-auth state and upstream pools; the limits and the
//! HTTP settings built from them), made from a checked configuration and never changed
//! afterwards. The reloader builds a whole new one and swaps it in with one store; a
//! connection takes the current one at accept and keeps it to its end.
//!
//! A host whose definition did not change (same `[[host]]`, same files behind its trust
//! settings) keeps its `Site` from the previous snapshot, with its pools and open
//! connections; a host that changed or went away is *retired*: its connections finish
//! what they are doing and close (see `conn`).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use certfront_certs::store::{CertReader, CertWriter, Served, slot};
use certfront_certs::{InternalCa, TrustAnchors};
use certfront_config::{Action, Config, Host};
use http::{HeaderValue, StatusCode};
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::{ClientConfig, RootCertStore};
use sha2_like::Hasher;
use tokio::sync::watch;

use crate::error::ProxyError;
use crate::metrics::Metrics;
use crate::mtls::ClientAuthFiles;
use crate::prepare::{Prepared, PreparedHost};
use crate::sites::{Route, Site, SiteTable};
use crate::tls::TlsShared;
use crate::upstream::{PoolLimits, Upstreams};

/// HTTP/2 protections, set here rather than left to hyper's and h2's defaults so that a
/// dependency upgrade cannot loosen them.
mod h2_limits {
    /// Streams the client opened and reset before we accepted them (CVE-2023-44487, "rapid
    /// reset"); past this the connection gets GOAWAY ENHANCE_YOUR_CALM.
    pub(super) const MAX_PENDING_ACCEPT_RESET_STREAMS: usize = 20;
    /// Streams we had to reset because the client misbehaved (CVE-2024-2653 family, and
    /// MadeYouReset, CVE-2025-8671: a request followed by a frame that is an error on its
    /// stream). 32, not hyper's 1024 nor the 256 before: each reset stream was a request
    /// taken and handled, and a reconnecting attacker's cost per handshake falls with it
    /// (`certfront-loadtest made-you-reset --reconnect`: good client p50 36.7x with 256,
    /// 21.9x with 32); no browser or gRPC client makes the server reset 32 of its streams.
    pub(super) const MAX_LOCAL_ERROR_RESET_STREAMS: usize = 32;
    /// Response bytes buffered per stream for a client that does not read (bounds what a
    /// slow reader pins: this, times the concurrent streams).
    pub(super) const MAX_SEND_BUF: usize = 64 * 1024;
    /// Request bytes a client may send ahead per stream and per connection (flow control
    /// windows): what an upload to a slow upstream can pin.
    pub(super) const STREAM_WINDOW: u32 = 256 * 1024;
    pub(super) const CONNECTION_WINDOW: u32 = 1024 * 1024;
    pub(super) const MAX_FRAME: u32 = 16 * 1024;
}

/// One immutable generation of everything connections read.
pub struct Snapshot {
    pub(crate) config: Config,
    pub table: SiteTable,
    pub(crate) trust: TrustAnchors,
    pub(crate) ca: Option<Arc<InternalCa>>,
    /// Session cache and ticketer, kept across generations so resumption survives reloads.
    pub(crate) tls: Arc<TlsShared>,
    pub(crate) http1: http1::Builder,
    pub(crate) http2: http2::Builder<TokioExecutor>,
    /// The config file and every trust file it names, hashed: a trigger whose files hash
    /// the same needs no new snapshot.
    pub(crate) fingerprint: [u8; 32],
}

/// A candidate: a new snapshot and what putting it in force changes. Building one touches
/// nothing live (no certificate slot, no metric, no log line): a refused candidate is
/// dropped and leaves everything as it was. [`Built::apply`] is the one place its effects
/// happen.
pub struct Built {
    pub snapshot: Snapshot,
    /// Sites of the previous snapshot that this one no longer serves as they were.
    pub(crate) retired: Vec<Arc<Site>>,
    /// The slot writers of the sites this snapshot adds, for the reloader to keep.
    pub(crate) writers: Vec<CertWriter>,
    /// Kept sites whose files now hold another certificate than the one served.
    pub(crate) cert_updates: Vec<(String, Served)>,
    /// Hosts of new sites: their metric series start when the candidate is applied.
    pub(crate) new_hosts: Vec<String>,
}

/// The slot writers of every site in force, by fqdn; only the reloader holds them.
#[derive(Debug, Default)]
pub(crate) struct Writers(HashMap<String, CertWriter>);

impl Writers {
    pub(crate) fn get(&self, fqdn: &str) -> Option<&CertWriter> {
        self.0.get(fqdn)
    }
}

impl Built {
    /// Puts the candidate's effects in force, except the snapshot swap itself, which the
    /// caller does next with the returned snapshot: the writers of retired sites are
    /// dropped and those of new sites kept, kept sites serve their new certificates, and
    /// new hosts get their metric series.
    pub(crate) fn apply(
        self,
        metrics: &Metrics,
        writers: &mut Writers,
    ) -> (Snapshot, Vec<Arc<Site>>) {
        let Built {
            snapshot,
            retired,
            writers: new_writers,
            cert_updates,
            new_hosts,
        } = self;
        for site in &retired {
            if writers
                .0
                .get(&site.fqdn)
                .is_some_and(|w| site.cert.is_written_by(w))
            {
                writers.0.remove(&site.fqdn);
            }
        }
        for writer in new_writers {
            writers.0.insert(writer.fqdn().to_owned(), writer);
        }
        for (fqdn, served) in cert_updates {
            metrics.cert_served(&fqdn, &served.info, served.loaded_at);
            if let Some(writer) = writers.get(&fqdn) {
                writer.swap(served, false);
            }
        }
        for fqdn in &new_hosts {
            metrics.host(fqdn);
            let Some(site) = snapshot.site(fqdn) else {
                continue;
            };
            if let Some(served) = site.cert.load() {
                metrics.cert_served(fqdn, &served.info, served.loaded_at);
            }
            if let Some(auth) = site
                .client_auth
                .as_ref()
                .filter(|a| !a.crl_paths().is_empty())
            {
                metrics.crls_in_force(fqdn, &auth.crl_set());
                metrics.crl_reload_failing.with_label_values(&[fqdn]).set(0);
            }
            if site
                .client_auth
                .as_ref()
                .is_some_and(|a| a.deny_path.is_some())
            {
                // Exported from the start, so an alert on it has a series to watch.
                metrics
                    .deny_list_reload_failing
                    .with_label_values(&[fqdn])
                    .set(0);
            }
        }
        (snapshot, retired)
    }
}

impl Snapshot {
    /// Builds a snapshot from a checked configuration. `previous` lends the sites, pools
    /// and TLS state that did not change.
    pub fn build(
        prepared: Prepared,
        previous: Option<&Snapshot>,
        metrics: &Arc<Metrics>,
    ) -> Result<Built, ProxyError> {
        let Prepared {
            config,
            ca,
            trust,
            hosts,
            ..
        } = prepared;
        let tls = match previous {
            Some(prev) if same_tls(&prev.config, &config) => prev.tls.clone(),
            _ => Arc::new(TlsShared::new(&config)?),
        };
        let roots = trust.roots();
        let mut sites = Vec::with_capacity(config.hosts.len());
        // Hash probes, not scans: a reload of 10,000 hosts stays linear.
        let previous_sites: HashMap<&str, &Arc<Site>> = previous
            .map(|p| {
                p.table
                    .sites()
                    .iter()
                    .map(|s| (s.fqdn.as_str(), s))
                    .collect()
            })
            .unwrap_or_default();
        let mut kept: HashSet<*const Site> = HashSet::new();
        let mut definitions = Definitions::new(&config);
        let mut writers = Vec::new();
        let mut cert_updates = Vec::new();
        let mut new_hosts = Vec::new();
        // Every fallible part of every new site first: the metric handles of a site are
        // made only once the whole candidate has been built.
        let mut plans = Vec::with_capacity(config.hosts.len());
        for (host, prepared) in config.hosts.iter().zip(hosts) {
            let PreparedHost {
                served,
                client_auth,
                upstream_ca,
            } = prepared;
            let definition = definitions.of(host);
            let old = previous_sites
                .get(host.fqdn.as_str())
                .filter(|s| s.definition == definition);
            if let Some(old) = old {
                // `None`: an ACME host with nothing usable on disk keeps what it serves.
                if let Some(served) = served
                    && old.cert.load().map(|s| s.content_hash) != Some(served.content_hash)
                {
                    cert_updates.push((host.fqdn.clone(), served));
                }
                kept.insert(Arc::as_ptr(old));
                plans.push(Ok(Arc::clone(old)));
                continue;
            }
            new_hosts.push(host.fqdn.clone());
            let files = HostFiles {
                served,
                client_auth,
                upstream_ca,
            };
            let (writer, parts) = site_parts(&config, host, files, &tls, &roots, metrics)?;
            writers.push(writer);
            plans.push(Err((host, definition, parts)));
        }
        for plan in plans {
            sites.push(match plan {
                Ok(kept) => kept,
                Err((host, definition, parts)) => {
                    Arc::new(assemble_site(host, definition, parts, metrics))
                }
            });
        }
        let retired = previous
            .map(|p| {
                p.table
                    .sites()
                    .iter()
                    .filter(|s| !kept.contains(&Arc::as_ptr(s)))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let table = SiteTable::new(
            sites,
            config.tls.default_host.as_deref(),
            config.tls.unknown_sni,
        );
        let (http1, http2) = http_builders(&config);
        let fingerprint = fingerprint(&config);
        Ok(Built {
            snapshot: Snapshot {
                config,
                table,
                trust,
                ca,
                tls,
                http1,
                http2,
                fingerprint,
            },
            retired,
            writers,
            cert_updates,
            new_hosts,
        })
    }

    /// The site serving exactly this fqdn.
    pub(crate) fn site(&self, fqdn: &str) -> Option<&Arc<Site>> {
        self.table.by_fqdn(fqdn)
    }
}

/// Whether two configurations can share session cache and ticketer.
fn same_tls(a: &Config, b: &Config) -> bool {
    a.tls.min_version == b.tls.min_version
        && a.tls.resumption == b.tls.resumption
        && a.tls.ticket_key_file == b.tls.ticket_key_file
}

/// What of a new site can fail to build: its TLS config, client-auth state and route.
struct SiteParts {
    cert: CertReader,
    tls: Arc<rustls::ServerConfig>,
    route: Route,
    client_auth: Option<Arc<crate::mtls::ClientAuthState>>,
}

/// What the pass read for a new site.
struct HostFiles {
    served: Option<Served>,
    client_auth: Option<ClientAuthFiles>,
    upstream_ca: Option<TrustAnchors>,
}

fn site_parts(
    config: &Config,
    host: &Host,
    files: HostFiles,
    shared: &TlsShared,
    roots: &RootCertStore,
    metrics: &Arc<Metrics>,
) -> Result<(CertWriter, SiteParts), ProxyError> {
    let HostFiles {
        served,
        client_auth,
        upstream_ca,
    } = files;
    // `None`: an ACME host waiting for its first certificate (prepare allows no other).
    let (writer, reader) = slot(host.fqdn.clone(), host.names(), host.source.clone(), served);
    let (verifier, client_auth) =
        match (&host.client_auth, client_auth) {
            (Some(auth), Some(files)) => {
                let (v, state) = crate::mtls::build(&host.fqdn, auth, files, metrics.clone())
                    .map_err(|source| ProxyError::ClientAuth {
                        host: host.fqdn.clone(),
                        source,
                    })?;
                (Some(v), Some(state))
            }
            // `prepare` refuses a host whose client-auth files it could not read.
            (Some(auth), None) => {
                return Err(ProxyError::ClientAuth {
                    host: host.fqdn.clone(),
                    source: crate::error::ClientAuthError::NoCa {
                        path: auth.ca.clone(),
                    },
                });
            }
            (None, _) => (None, None),
        };
    let tls = shared.host_config(reader.clone(), verifier)?;
    let route = match &host.action {
        Action::Respond { status, body } => Route::Respond {
            status: StatusCode::from_u16(*status).unwrap_or(StatusCode::OK),
            body: Bytes::from(body.clone()),
        },
        Action::Upstream(list) => {
            let tls = if list.iter().any(|u| u.tls) {
                Some(upstream_tls(roots, upstream_ca.as_ref())?)
            } else {
                None
            };
            Route::Upstream(Box::new(Upstreams::new(
                list,
                tls,
                PoolLimits {
                    connect_timeout: config.limits.upstream_connect_timeout,
                    max_connections: config.limits.upstream_max_connections,
                    max_idle: config.limits.upstream_max_idle_connections,
                },
                crate::upstream::Discards::new(&metrics.upstream_discarded, &host.fqdn),
            )))
        }
    };
    Ok((
        writer,
        SiteParts {
            cert: reader,
            tls,
            route,
            client_auth,
        },
    ))
}

/// A new site from its built parts and its metric handles (cannot fail).
fn assemble_site(host: &Host, definition: [u8; 32], parts: SiteParts, metrics: &Metrics) -> Site {
    let SiteParts {
        cert,
        tls,
        route,
        client_auth,
    } = parts;
    let upstream_host = host
        .upstream_host
        .as_deref()
        .and_then(|h| HeaderValue::from_str(h).ok());
    Site {
        fqdn: host.fqdn.clone(),
        names: host.names().into_boxed_slice(),
        cert,
        tls,
        route,
        upstream_host,
        client_auth,
        duration: metrics
            .http_request_duration
            .with_label_values(&[host.fqdn.as_str()]),
        requests: crate::metrics::RequestCounts::new(&metrics.http_requests, &host.fqdn),
        send_timeouts: crate::send_timeout::SendTimeouts::new(&metrics.send_timeouts, &host.fqdn),
        host: host.clone(),
        definition,
        retired: watch::channel(false).0,
    }
}

/// The TLS client of a host's https upstreams: system roots, `tls.trust` and its
/// `upstream_ca` (as `prepare` read it).
fn upstream_tls(
    roots: &RootCertStore,
    upstream_ca: Option<&TrustAnchors>,
) -> Result<Arc<ClientConfig>, ProxyError> {
    let mut roots = roots.clone();
    if let Some(anchors) = upstream_ca {
        for anchor in anchors.roots().roots.iter() {
            roots.roots.push(anchor.clone());
        }
    }
    let mut config = ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn http_builders(config: &Config) -> (http1::Builder, http2::Builder<TokioExecutor>) {
    let limits = &config.limits;
    let mut h1 = http1::Builder::new();
    h1.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // At most 100 headers: hyper's own limit. Saying `.max_headers(100)` would cost a
        // heap-sized header array per request instead of hyper's stack one.
        .max_header_size(limits.max_header_bytes)
        .max_buf_size(limits.max_header_bytes.max(8192) + 8192);
    let mut h2 = http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_pending_accept_reset_streams(h2_limits::MAX_PENDING_ACCEPT_RESET_STREAMS)
        .max_local_error_reset_streams(h2_limits::MAX_LOCAL_ERROR_RESET_STREAMS)
        .max_send_buf_size(h2_limits::MAX_SEND_BUF)
        .initial_stream_window_size(h2_limits::STREAM_WINDOW)
        .initial_connection_window_size(h2_limits::CONNECTION_WINDOW)
        .adaptive_window(false)
        .max_frame_size(h2_limits::MAX_FRAME)
        // PINGs find dead peers; they are not activity (see `context::idle_wait`).
        .keep_alive_interval(limits.idle_timeout / 2)
        .keep_alive_timeout(limits.idle_timeout / 2);
    (h1, h2)
}

/// What makes a host's site: its `[[host]]`, the settings every site takes from the rest
/// of the file, and the content of the trust files it is built with. Equal definitions
/// build equal sites, so the old one is kept.
///
/// The part every host shares (limits, `[tls]`, the `tls.trust` files) is hashed once per
/// build and each trust file read once, however many hosts name it.
struct Definitions<'a> {
    common: [u8; 32],
    files: HashMap<&'a Path, [u8; 32]>,
}

impl<'a> Definitions<'a> {
    fn new(config: &'a Config) -> Self {
        let mut h = Hasher::default();
        h.text(&format!("{:?}", config.limits));
        h.text(&format!("{:?}", config.tls));
        for file in &config.tls.trust {
            h.file(file);
        }
        Definitions {
            common: h.finish(),
            files: HashMap::new(),
        }
    }

    fn of(&mut self, host: &'a Host) -> [u8; 32] {
        let mut h = Hasher::default();
        h.bytes(&self.common);
        h.text(&format!("{host:?}"));
        for file in host_trust_files(host) {
            let digest = self.files.entry(file).or_insert_with(|| {
                let mut f = Hasher::default();
                f.file(file);
                f.finish()
            });
            h.bytes(digest);
        }
        h.finish()
    }
}

fn host_trust_files(host: &Host) -> impl Iterator<Item = &Path> {
    host.client_auth
        .iter()
        .map(|a| a.ca.as_path())
        .chain(host.upstream_ca.as_deref())
}

/// The files a change of which means a new snapshot: the config file itself and every
/// trust file it names (certificate files reload per host and are not among them).
pub(crate) fn config_files(config: &Config) -> impl Iterator<Item = &Path> {
    std::iter::once(config.source.as_path())
        .chain(config.tls.trust.iter().map(PathBuf::as_path))
        .chain(config.hosts.iter().flat_map(host_trust_files))
}

/// [`config_files`], hashed.
pub(crate) fn fingerprint(config: &Config) -> [u8; 32] {
    let mut h = Hasher::default();
    for file in config_files(config) {
        h.file(file);
    }
    h.finish()
}

/// Where the connection, tunnel and drain code look for how long to wait.
pub(crate) fn drain(config: &Config) -> Duration {
    Duration::from_secs(config.server.drain_seconds)
}

/// SHA-256 over a sequence of texts and file contents (a missing file hashes as its error,
/// so it differs from any content).
mod sha2_like {
    use aws_lc_rs::digest;

    pub(super) struct Hasher(digest::Context);

    impl Default for Hasher {
        fn default() -> Self {
            Hasher(digest::Context::new(&digest::SHA256))
        }
    }

    impl Hasher {
        pub(super) fn text(&mut self, text: &str) {
            self.0.update(&(text.len() as u64).to_be_bytes());
            self.0.update(text.as_bytes());
        }

        pub(super) fn file(&mut self, path: &std::path::Path) {
            self.text(&path.to_string_lossy());
            match certfront_certs::read::read_file(
                path,
                certfront_certs::read::FileKind::Certificate,
            ) {
                Ok(bytes) => {
                    self.0.update(&(bytes.len() as u64).to_be_bytes());
                    self.0.update(&bytes);
                }
                Err(e) => self.text(&format!("unreadable: {}", e.kind())),
            }
        }

        pub(super) fn bytes(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }

        pub(super) fn finish(self) -> [u8; 32] {
            let mut out = [0u8; 32];
            out.copy_from_slice(self.0.finish().as_ref());
            out
        }
    }
}

#[cfg(test)]
mod tests;
