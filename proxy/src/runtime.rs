//! The runtime snapshot: everything a connection reads (the site table with each host's
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
use certfront_certs::store::CertSlot;
use certfront_certs::{InternalCa, TrustAnchors};
use certfront_config::{Action, Config, Host};
use http::{HeaderValue, StatusCode};
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::{ClientConfig, RootCertStore};
use sha2_like::Hasher;
use tokio::sync::watch;

use crate::error::ProxyError;
use crate::forward::upstream::{PoolLimits, Upstreams};
use crate::metrics::Metrics;
use crate::prepare::Prepared;
use crate::sites::{Route, Site, SiteTable};
use crate::tls::TlsShared;

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
pub struct Runtime {
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

/// A new snapshot and the sites of the previous one that it no longer serves as they were.
pub struct Built {
    pub runtime: Runtime,
    pub(crate) retired: Vec<Arc<Site>>,
}

impl Runtime {
    /// Builds a snapshot from a checked configuration. `previous` lends the sites, pools
    /// and TLS state that did not change.
    pub fn build(
        prepared: Prepared,
        previous: Option<&Runtime>,
        metrics: &Arc<Metrics>,
    ) -> Result<Built, ProxyError> {
        let Prepared {
            config,
            ca,
            trust,
            served,
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
        for (host, served) in config.hosts.iter().zip(served) {
            let definition = definitions.of(host);
            let old = previous_sites
                .get(host.fqdn.as_str())
                .filter(|s| s.definition == definition);
            if let Some(old) = old {
                // `None`: an ACME host with nothing usable on disk keeps what it serves.
                if let Some(served) = served
                    && old.cert.load().map(|s| s.content_hash) != Some(served.content_hash)
                {
                    metrics.cert_served(&host.fqdn, &served.info, served.loaded_at);
                    old.cert.store(served);
                }
                kept.insert(Arc::as_ptr(old));
                sites.push(Arc::clone(old));
                continue;
            }
            metrics.host(&host.fqdn);
            if let Some(served) = &served {
                metrics.cert_served(&host.fqdn, &served.info, served.loaded_at);
            }
            sites.push(Arc::new(build_site(
                &config, host, served, definition, &tls, &roots, metrics,
            )?));
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
            runtime: Runtime {
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

fn build_site(
    config: &Config,
    host: &Host,
    served: Option<certfront_certs::store::Served>,
    definition: [u8; 32],
    shared: &TlsShared,
    roots: &RootCertStore,
    metrics: &Arc<Metrics>,
) -> Result<Site, ProxyError> {
    let slot = Arc::new(match served {
        Some(served) => CertSlot::new(host.fqdn.clone(), host.names(), host.source.clone(), served),
        // An ACME host waiting for its first certificate (prepare allows no other).
        None => CertSlot::empty(host.fqdn.clone(), host.names(), host.source.clone()),
    });
    let (verifier, client_auth) = match &host.client_auth {
        Some(auth) => {
            let (v, state) =
                crate::mtls::build(&host.fqdn, auth, metrics.clone()).map_err(|source| {
                    ProxyError::ClientAuth {
                        host: host.fqdn.clone(),
                        source,
                    }
                })?;
            (Some(v), Some(state))
        }
        None => (None, None),
    };
    let tls = shared.host_config(slot.clone(), verifier)?;
    let route = match &host.action {
        Action::Respond { status, body } => Route::Respond {
            status: StatusCode::from_u16(*status).unwrap_or(StatusCode::OK),
            body: Bytes::from(body.clone()),
        },
        Action::Upstream(list) => {
            let tls = if list.iter().any(|u| u.tls) {
                Some(upstream_tls(roots, host)?)
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
            )))
        }
    };
    let upstream_host = host
        .upstream_host
        .as_deref()
        .and_then(|h| HeaderValue::from_str(h).ok());
    Ok(Site {
        fqdn: host.fqdn.clone(),
        names: host.names().into_boxed_slice(),
        cert: slot,
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
    })
}

fn upstream_tls(roots: &RootCertStore, host: &Host) -> Result<Arc<ClientConfig>, ProxyError> {
    let mut roots = roots.clone();
    if let Some(ca) = &host.upstream_ca {
        let anchors = TrustAnchors::new(false, std::slice::from_ref(ca), &[])?;
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
        // PINGs find dead peers; they are not activity (see `conn::idle_wait`).
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
