//! `[host.client_auth] crl_url`: CRLs downloaded over HTTP or HTTPS, at start (before
//! anything is served) and again before their nextUpdate, checked exactly like a CRL file
//! and cached in `state_dir/crl/<hash of the URL>.crl`.
//!
//! The cached copy is the CRL file the rest of certfront sees: its path is added to the
//! host's `client_auth.crl`, so loading, the last-good rule, metrics, `/certs` and the
//! closing of connections whose certificate a new CRL revokes are the CRL files' own. A
//! download replaces the cached copy only when it passes the same checks (signed by a
//! client CA, a base CRL, not older by CRL number), so a restart while the CA's web server
//! is down still enforces the last good list.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use certfront_config::{ClientAuth, Config};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use rustls::RootCertStore;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tracing::{info, warn};

use crate::app::App;

/// Largest CRL accepted: a 100,000-entry CRL is about 2.3 MB.
pub(crate) const MAX_CRL_BYTES: usize = 32 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The whole download: connect, TLS, request and body.
const TOTAL_TIMEOUT: Duration = Duration::from_secs(60);
/// Never downloaded more often than this, and the first wait after a failure (doubling up
/// to `crl_refresh_seconds`).
const MIN_INTERVAL: Duration = Duration::from_secs(60);

/// Why a CRL URL gave no usable CRL.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    #[error("{url}: not a URL certfront can fetch ({reason})")]
    Url { url: String, reason: &'static str },
    #[error("{url}: cannot connect")]
    Connect {
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{url}: TLS handshake failed")]
    Tls {
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{url}: HTTP exchange failed")]
    Http {
        url: String,
        #[source]
        source: hyper::Error,
    },
    #[error("{url}: the server answered {status}, expected 200 with the CRL")]
    Status {
        url: String,
        status: http::StatusCode,
    },
    #[error("{url}: the CRL is larger than {MAX_CRL_BYTES} bytes")]
    TooLarge { url: String },
    #[error("{url}: the response body failed")]
    Body {
        url: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{url}: no complete answer within {}s", TOTAL_TIMEOUT.as_secs())]
    Timeout { url: String },
    #[error("{url}: the downloaded CRL is refused")]
    Crl {
        url: String,
        #[source]
        source: certfront_certs::crl::CrlError,
    },
    #[error("{url}: client_auth.ca does not load")]
    Ca {
        url: String,
        #[source]
        source: certfront_certs::CertError,
    },
    #[error("{}: cannot write the cached copy", path.display())]
    Cache {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl FetchError {
    /// The `result` label of `certfront_crl_fetches_total`.
    fn result(&self) -> &'static str {
        match self {
            FetchError::Crl { .. } => "refused",
            _ => "failure",
        }
    }
}

/// Where the last good copy of `url` is kept: a name from the URL's SHA-256, so any URL
/// maps to one plain file name.
pub(crate) fn cache_path(state_dir: &Path, url: &str) -> PathBuf {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, url.as_bytes());
    let name: String = digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    state_dir.join("crl").join(format!("{name}.crl"))
}

/// When a configuration is put in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum When {
    /// `certfront run`: every URL is downloaded; a failed download falls back on the
    /// cached copy, and with none the start is refused.
    Start,
    /// A configuration reload: only URLs without a cached copy (new ones) are downloaded;
    /// the refresher keeps the others fresh.
    Reload,
    /// `certfront check`: no download, no write; a URL without a cached copy is a warning.
    Check,
}

/// Downloads (per `when`) and adds each host's cached copies to its `client_auth.crl`.
/// `Err`: the URLs that have neither a download nor a cached copy. Blocking: call it
/// outside the async runtime or on a blocking thread.
pub(crate) fn prime(config: &mut Config, when: When) -> Result<Vec<String>, Vec<String>> {
    let mut warnings = Vec::new();
    let mut problems = Vec::new();
    if !config.hosts.iter().any(|h| {
        h.client_auth
            .as_ref()
            .is_some_and(|a| !a.crl_url.is_empty())
    }) {
        return Ok(warnings);
    }
    let roots = match certfront_certs::TrustAnchors::new(true, &config.tls.trust, &[]) {
        Ok(t) => t.roots(),
        Err(e) => {
            warnings.push(format!(
                "crl_url: the trust store does not load ({e}); HTTPS CRL URLs fail"
            ));
            Arc::new(RootCertStore::empty())
        }
    };
    let runtime = (when != When::Check)
        .then(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        })
        .transpose();
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            return Err(vec![format!(
                "crl_url: cannot start the download runtime: {e}"
            )]);
        }
    };
    let state_dir = config.server.state_dir.clone();
    for host in &mut config.hosts {
        let fqdn = host.fqdn.clone();
        let Some(auth) = host.client_auth.as_mut() else {
            continue;
        };
        let mut cached = Vec::new();
        for url in &auth.crl_url {
            let path = cache_path(&state_dir, url);
            let download = match (&runtime, when) {
                (Some(_), When::Start) => true,
                (Some(_), When::Reload) => !path.exists(),
                _ => false,
            };
            if download {
                let rt = runtime.as_ref().expect("a runtime unless checking");
                match rt.block_on(fetch_and_store(url, auth, &path, roots.clone())) {
                    Ok(stored) => info!(
                        host = %fqdn,
                        url = %url,
                        cache = %path.display(),
                        "client certificate CRL downloaded{}",
                        if stored { "" } else { " (unchanged)" }
                    ),
                    Err(e) => {
                        warnings.push(format!("host {fqdn:?}: client_auth.crl_url: {}", chain(&e)))
                    }
                }
            }
            if path.exists() {
                cached.push(path);
            } else if when == When::Check {
                warnings.push(format!(
                    "host {fqdn:?}: client_auth.crl_url {url}: not downloaded yet ({} is made at start)",
                    path.display()
                ));
            } else {
                problems.push(format!(
                    "host {fqdn:?}: client_auth.crl_url {url}: no download and no cached copy ({}): certfront will not serve this host without its CRL",
                    path.display()
                ));
            }
        }
        auth.crl.extend(cached);
    }
    if problems.is_empty() {
        Ok(warnings)
    } else {
        problems.extend(warnings);
        Err(problems)
    }
}

/// Downloads `url`, checks it against `auth.ca` (and the cached copy: not older), and
/// replaces the cached copy. `Ok(false)`: the download is the cached copy, byte for byte.
async fn fetch_and_store(
    url: &str,
    auth: &ClientAuth,
    cache: &Path,
    roots: Arc<RootCertStore>,
) -> Result<bool, FetchError> {
    let body = match tokio::time::timeout(TOTAL_TIMEOUT, download(url, roots)).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(FetchError::Timeout {
                url: url.to_owned(),
            });
        }
    };
    let (url, ca, cache) = (url.to_owned(), auth.ca.clone(), cache.to_owned());
    // File I/O and a signature over the whole list: off the async threads.
    tokio::task::spawn_blocking(move || store(&url, &ca, &cache, &body))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

fn store(url: &str, ca: &Path, cache: &Path, body: &[u8]) -> Result<bool, FetchError> {
    if std::fs::read(cache).is_ok_and(|old| old == body) {
        return Ok(false);
    }
    let io = |source| FetchError::Cache {
        path: cache.to_owned(),
        source,
    };
    let cas: Vec<CertificateDer<'static>> =
        certfront_certs::read_certificates(ca, None).map_err(|source| FetchError::Ca {
            url: url.to_owned(),
            source,
        })?;
    let dir = cache.parent().expect("state_dir/crl/<name>");
    std::fs::create_dir_all(dir).map_err(io)?;
    let tmp = cache.with_extension("crl.new");
    std::fs::write(&tmp, body).map_err(io)?;
    // The cached copy is the set in use for this URL: a download older by CRL number
    // would un-revoke certificates.
    let previous = certfront_certs::crl::load(&[cache.to_owned()], &cas, None).ok();
    let checked = certfront_certs::crl::load(std::slice::from_ref(&tmp), &cas, previous.as_ref());
    if let Err(source) = checked {
        let _ = std::fs::remove_file(&tmp);
        return Err(FetchError::Crl {
            url: url.to_owned(),
            source,
        });
    }
    // A rename: the file watcher and a concurrent start see the old or the new copy whole.
    std::fs::rename(&tmp, cache).map_err(io)?;
    Ok(true)
}

async fn download(url: &str, roots: Arc<RootCertStore>) -> Result<Bytes, FetchError> {
    let bad = |reason| FetchError::Url {
        url: url.to_owned(),
        reason,
    };
    // AD CS names CRLs after the CA ("Example Issuing CA.crl"): a pasted URL with spaces
    // is sent as its percent-encoded form.
    let uri: http::Uri = url
        .replace(' ', "%20")
        .parse()
        .map_err(|_| bad("does not parse"))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(bad("expected http or https")),
    };
    let host = uri.host().ok_or_else(|| bad("no host"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or(host);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let request = http::Request::get(path)
        .header(http::header::HOST, authority)
        .header(
            http::header::USER_AGENT,
            concat!("certfront/", env!("CARGO_PKG_VERSION")),
        )
        .body(Empty::<Bytes>::new())
        .map_err(|_| bad("not a valid request target"))?;
    let connect = |source| FetchError::Connect {
        url: url.to_owned(),
        source,
    };
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host, port)))
        .await
        .map_err(|_| connect(std::io::ErrorKind::TimedOut.into()))?
        .map_err(connect)?;
    if https {
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|_| bad("no TLS protocol version"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let name = ServerName::try_from(host.to_owned()).map_err(|_| bad("not a server name"))?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|source| FetchError::Tls {
                url: url.to_owned(),
                source,
            })?;
        exchange(url, tls, request).await
    } else {
        exchange(url, tcp, request).await
    }
}

async fn exchange<I>(
    url: &str,
    io: I,
    request: http::Request<Empty<Bytes>>,
) -> Result<Bytes, FetchError>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let http = |source| FetchError::Http {
        url: url.to_owned(),
        source,
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(http)?;
    let conn = tokio::spawn(conn);
    let result = async {
        let response = sender.send_request(request).await.map_err(http)?;
        if response.status() != http::StatusCode::OK {
            return Err(FetchError::Status {
                url: url.to_owned(),
                status: response.status(),
            });
        }
        Limited::new(response.into_body(), MAX_CRL_BYTES)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .map_err(|source| {
                if source.is::<http_body_util::LengthLimitError>() {
                    FetchError::TooLarge {
                        url: url.to_owned(),
                    }
                } else {
                    FetchError::Body {
                        url: url.to_owned(),
                        source,
                    }
                }
            })
    }
    .await;
    conn.abort();
    result
}

/// When the cached copy at `cache` should be downloaded again: at 80% of the way to its
/// nextUpdate or after `refresh`, whichever is first, but not within [`MIN_INTERVAL`].
fn next_due(cache: &Path, refresh: Duration) -> Instant {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let next_update = certfront_certs::crl::read(cache)
        .ok()
        .and_then(|ders| ders.into_iter().next())
        .and_then(|der| {
            let (_, crl) = x509_parser::parse_x509_crl(der.as_ref()).ok()?;
            Some((
                crl.last_update().timestamp(),
                crl.next_update()?.timestamp(),
            ))
        });
    let wait = match next_update {
        Some((this, next)) => {
            let at = this + (next - this) * 4 / 5;
            Duration::from_secs(u64::try_from(at - now).unwrap_or(0)).min(refresh)
        }
        None => refresh,
    };
    Instant::now() + wait.max(MIN_INTERVAL)
}

/// The refresher: every URL of the configuration in force is downloaded again when due;
/// a failure is retried after [`MIN_INTERVAL`], doubling up to `crl_refresh_seconds`. A
/// stored download changes the cached file, which the reloader's file watch picks up.
pub(crate) async fn refresh(app: Arc<App>) {
    // (host, URL) -> (when due, the wait after the next failure)
    let mut due: HashMap<(String, String), (Instant, Duration)> = HashMap::new();
    let mut shutdown = app.shutdown.clone();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = shutdown.changed() => return,
        }
        let snapshot = app.snapshot();
        let config = &snapshot.config;
        let now = Instant::now();
        let mut seen = Vec::new();
        for host in &config.hosts {
            let Some(auth) = &host.client_auth else {
                continue;
            };
            let refresh = Duration::from_secs(auth.crl_refresh_seconds);
            for url in &auth.crl_url {
                let cache = cache_path(&config.server.state_dir, url);
                let key = (host.fqdn.clone(), url.clone());
                seen.push(key.clone());
                let entry = due
                    .entry(key)
                    .or_insert_with(|| (next_due(&cache, refresh), MIN_INTERVAL));
                if now < entry.0 {
                    continue;
                }
                let result = fetch_and_store(url, auth, &cache, snapshot.trust.roots()).await;
                let label = match &result {
                    Ok(true) => "success",
                    Ok(false) => "unchanged",
                    Err(e) => e.result(),
                };
                app.metrics
                    .crl_fetches
                    .with_label_values(&[host.fqdn.as_str(), label])
                    .inc();
                match result {
                    Ok(stored) => {
                        if stored {
                            info!(host = %host.fqdn, url = %url, "client certificate CRL downloaded; the reloader applies it");
                        }
                        *entry = (next_due(&cache, refresh), MIN_INTERVAL);
                    }
                    Err(e) => {
                        warn!(
                            host = %host.fqdn,
                            retry_in_s = entry.1.as_secs(),
                            "client_auth.crl_url: {}; the cached copy stays in force",
                            chain(&e)
                        );
                        *entry = (
                            Instant::now() + entry.1,
                            (entry.1 * 2).min(refresh.max(MIN_INTERVAL)),
                        );
                    }
                }
            }
        }
        due.retain(|key, _| seen.contains(key));
    }
}

/// An error and its causes on one line, for a log field or a warning.
fn chain(e: &dyn std::error::Error) -> String {
    let mut line = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, IsCa, Issuer,
        KeyIdMethod, KeyPair, KeyUsagePurpose, SerialNumber,
    };
    use time::OffsetDateTime;

    /// A client CA written to `dir/ca.pem`, and its issuer for CRLs.
    fn ca(dir: &Path, name: &str) -> Issuer<'static, KeyPair> {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("ca");
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).expect("ca.pem");
        Issuer::new(params, key)
    }

    fn crl(issuer: &Issuer<'static, KeyPair>, number: u64, valid: time::Duration) -> Vec<u8> {
        let now = OffsetDateTime::now_utc() - time::Duration::seconds(10);
        CertificateRevocationListParams {
            this_update: now,
            next_update: now + valid,
            crl_number: SerialNumber::from(number),
            issuing_distribution_point: None,
            revoked_certs: Vec::new(),
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(issuer)
        .expect("crl")
        .der()
        .to_vec()
    }

    #[test]
    fn a_download_replaces_the_cache_only_when_it_passes_the_crl_checks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let issuer = ca(d, "clients");
        let other = ca(d, "other");
        let ca_file = d.join("clients.pem");
        let cache = cache_path(&d.join("state"), "http://pki.test/a.crl");
        let url = "http://pki.test/a.crl";
        let day = time::Duration::days(1);
        let second = crl(&issuer, 2, day);
        assert!(store(url, &ca_file, &cache, &second).expect("stored"));
        assert!(!store(url, &ca_file, &cache, &second).expect("same bytes"));
        for (what, body) in [
            ("older CRL number", crl(&issuer, 1, day)),
            ("another CA's", crl(&other, 3, day)),
            ("truncated", second[..second.len() / 2].to_vec()),
        ] {
            let err = store(url, &ca_file, &cache, &body).expect_err(what);
            assert!(
                matches!(err, FetchError::Crl { .. }) && err.result() == "refused",
                "{what}: {err:?}"
            );
            assert_eq!(std::fs::read(&cache).expect("cache"), second, "{what}");
        }
        assert!(store(url, &ca_file, &cache, &crl(&issuer, 3, day)).expect("newer"));
        assert!(!cache.with_extension("crl.new").exists());
    }

    #[test]
    fn due_at_four_fifths_of_the_validity_or_after_the_refresh_period() {
        let dir = tempfile::tempdir().expect("tempdir");
        let issuer = ca(dir.path(), "clients");
        let cache = dir.path().join("a.crl");
        std::fs::write(&cache, crl(&issuer, 1, time::Duration::hours(10))).expect("crl");
        let hour = Duration::from_secs(3600);
        let wait = |refresh| next_due(&cache, refresh).saturating_duration_since(Instant::now());
        // 80% of 10 h is 8 h (less the 10 s the CRL is old).
        let eight_hours = wait(hour * 100);
        assert!(
            eight_hours > hour * 8 - Duration::from_secs(60) && eight_hours <= hour * 8,
            "{eight_hours:?}"
        );
        assert!(wait(hour) <= hour && wait(hour) > hour - Duration::from_secs(60));
        // Never sooner than a minute, even past nextUpdate or without a cached copy.
        std::fs::write(&cache, crl(&issuer, 2, time::Duration::seconds(5))).expect("crl");
        assert!(wait(hour) > Duration::from_secs(50));
        assert!(next_due(&dir.path().join("none.crl"), hour) > Instant::now() + hour / 2);
    }

    /// A loopback server that answers one request with `head` and then `body_len` zeros.
    async fn serve_once(head: String, body_len: usize) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            let mut buf = [0u8; 1024];
            let _ = tcp.read(&mut buf).await;
            let _ = tcp.write_all(head.as_bytes()).await;
            let chunk = vec![0u8; 64 * 1024];
            let mut left = body_len;
            while left > 0 {
                let n = left.min(chunk.len());
                if tcp.write_all(&chunk[..n]).await.is_err() {
                    return;
                }
                left -= n;
            }
        });
        format!("http://127.0.0.1:{port}/CertEnroll/Example Issuing CA.crl")
    }

    #[tokio::test]
    async fn a_download_is_refused_when_too_large_or_not_200() {
        let roots = Arc::new(RootCertStore::empty());
        let len = MAX_CRL_BYTES + 1;
        let url = serve_once(
            format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n"),
            len,
        )
        .await;
        let err = download(&url, roots.clone()).await.expect_err("too large");
        assert!(matches!(err, FetchError::TooLarge { .. }), "{err:?}");
        let url = serve_once(
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_owned(),
            0,
        )
        .await;
        let err = download(&url, roots.clone()).await.expect_err("404");
        assert!(
            matches!(err, FetchError::Status { status, .. } if status == 404),
            "{err:?}"
        );
        let url = serve_once("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n".to_owned(), 3).await;
        assert_eq!(download(&url, roots).await.expect("small").len(), 3);
    }

    #[test]
    fn the_cache_name_is_a_hash_of_the_url() {
        let a = cache_path(Path::new("/var/lib/certfront"), "http://pki/a.crl");
        let b = cache_path(Path::new("/var/lib/certfront"), "http://pki/b.crl");
        assert_ne!(a, b);
        assert!(a.starts_with("/var/lib/certfront/crl"));
        assert_eq!(a.file_name().unwrap().len(), 32 + ".crl".len());
    }
}
