//! Real TLS clients (rustls) speaking HTTP/1.1 or HTTP/2 (hyper) to the proxy.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ClientConfig;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// A client config trusting `roots`, offering `alpn`, TLS 1.2 and 1.3.
pub(crate) fn client_config(
    roots: &[&CertificateDer<'static>],
    alpn: &[&[u8]],
) -> Arc<ClientConfig> {
    tls_client(roots, alpn, None)
}

/// Like [`client_config`], presenting `cert` (a client certificate and its key, PEM).
pub(crate) fn client_config_with_cert(
    roots: &[&CertificateDer<'static>],
    alpn: &[&[u8]],
    cert: &crate::support::pki::Leaf,
) -> Arc<ClientConfig> {
    tls_client(roots, alpn, Some(cert))
}

/// The one place test clients are configured: `roots` trusted, `alpn` offered, and a
/// client certificate when `cert` is given.
pub(crate) fn tls_client(
    roots: &[&CertificateDer<'static>],
    alpn: &[&[u8]],
    cert: Option<&crate::support::pki::Leaf>,
) -> Arc<ClientConfig> {
    use rustls_pki_types::PrivateKeyDer;
    use rustls_pki_types::pem::PemObject;
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        store.add((*root).clone()).expect("root");
    }
    let builder = ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(store);
    let mut config = match cert {
        Some(leaf) => builder
            .with_client_auth_cert(
                vec![leaf.der.clone()],
                PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).expect("key"),
            )
            .expect("client cert"),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// Connects and completes a TLS handshake with `sni`.
pub(crate) async fn connect(
    addr: SocketAddr,
    sni: &str,
    config: Arc<ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(sni.to_owned()).expect("server name");
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
}

/// Connects with `sni`, trusting `root`, offering `alpn`, and speaks what ALPN chose.
pub(crate) async fn open(
    addr: SocketAddr,
    sni: &str,
    root: &CertificateDer<'static>,
    alpn: &[&[u8]],
) -> Sender {
    let tls = connect(addr, sni, client_config(&[root], alpn))
        .await
        .expect("TLS handshake");
    Sender::over(tls).await
}

/// The leaf a fresh handshake for `sni` gets, or `None` when the handshake fails or takes
/// over 5 s. Full handshakes only: a resumed TLS 1.3 session reports the certificate of the
/// session it resumes, not what a new handshake would get.
pub(crate) async fn served(
    addr: SocketAddr,
    sni: &str,
    cfg: &Arc<ClientConfig>,
) -> Option<CertificateDer<'static>> {
    let mut full = (**cfg).clone();
    full.resumption = rustls::client::Resumption::disabled();
    let tls = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        connect(addr, sni, Arc::new(full)),
    )
    .await
    .ok()?
    .ok()?;
    Some(peer_leaf(&tls))
}

/// The leaf certificate the server presented.
pub(crate) fn peer_leaf(tls: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    tls.get_ref().1.peer_certificates().expect("peer certs")[0].clone()
}

/// An HTTP/1.1 or HTTP/2 sender over an established TLS stream.
pub(crate) enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

impl Sender {
    pub(crate) async fn over(tls: TlsStream<TcpStream>) -> Sender {
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        let io = TokioIo::new(tls);
        if h2 {
            let (send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .expect("h2 handshake");
            tokio::spawn(conn);
            Sender::H2(send)
        } else {
            let (send, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .expect("h1 handshake");
            tokio::spawn(conn.with_upgrades());
            Sender::H1(send)
        }
    }

    pub(crate) async fn send(
        &mut self,
        req: Request<Full<Bytes>>,
    ) -> hyper::Result<Response<Incoming>> {
        match self {
            Sender::H1(s) => {
                s.ready().await?;
                s.send_request(req).await
            }
            Sender::H2(s) => {
                s.ready().await?;
                s.send_request(req).await
            }
        }
    }
}

/// A GET for `path` on `host` (HTTP/1.1 Host header; HTTP/2 `:authority` from the URI).
pub(crate) fn get(host: &str, path: &str, h2: bool) -> Request<Full<Bytes>> {
    let builder = Request::builder().method("GET");
    let builder = if h2 {
        builder
            .uri(format!("https://{host}{path}"))
            .version(http::Version::HTTP_2)
    } else {
        builder.uri(path).header("host", host)
    };
    builder.body(Full::new(Bytes::new())).expect("request")
}

/// Reads a whole response body.
pub(crate) async fn body_bytes(resp: Response<Incoming>) -> Bytes {
    resp.into_body().collect().await.expect("body").to_bytes()
}

/// Reads a response body as JSON.
pub(crate) async fn body_json(resp: Response<Incoming>) -> serde_json::Value {
    let bytes = body_bytes(resp).await;
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
}

/// One request on a fresh connection: connect, handshake with `sni`, send, return status and body.
pub(crate) async fn fetch(
    addr: SocketAddr,
    sni: &str,
    config: Arc<ClientConfig>,
    req: Request<Full<Bytes>>,
) -> (http::StatusCode, Bytes) {
    let tls = connect(addr, sni, config).await.expect("TLS handshake");
    let mut sender = Sender::over(tls).await;
    let resp = sender.send(req).await.expect("response");
    let status = resp.status();
    (status, body_bytes(resp).await)
}

/// A plain HTTP/1.1 GET (admin and redirect listeners).
pub(crate) async fn plain_get(addr: SocketAddr, host: &str, path: &str) -> Response<Incoming> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .expect("h1 handshake");
    tokio::spawn(conn);
    let req = Request::builder()
        .uri(path)
        .header("host", host)
        .body(Empty::<Bytes>::new())
        .expect("request");
    send.send_request(req).await.expect("response")
}

/// A GET to the admin listener (Host `localhost`). `/metrics` and `/certs` are rendered at
/// most every 250 ms and served from that copy, so this waits out one period first: the
/// answer then shows everything that happened before the call.
pub(crate) async fn admin_get(addr: SocketAddr, path: &str) -> Response<Incoming> {
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    plain_get(addr, "localhost", path).await
}

/// The body of an [`admin_get`] as text.
pub(crate) async fn admin_text(addr: SocketAddr, path: &str) -> String {
    let resp = admin_get(addr, path).await;
    String::from_utf8(body_bytes(resp).await.to_vec()).expect("utf-8")
}

/// Polls the admin `path` (at most 200 times, 50 ms apart beside [`admin_get`]'s wait) until
/// `cond` holds: `Ok` with that text, else `Err` with the last one.
pub(crate) async fn admin_until(
    addr: SocketAddr,
    path: &str,
    cond: impl Fn(&str) -> bool,
) -> Result<String, String> {
    let mut text = String::new();
    for _ in 0..200 {
        text = admin_text(addr, path).await;
        if cond(&text) {
            return Ok(text);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Err(text)
}
