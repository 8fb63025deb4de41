//! Small in-process HTTP backends that stand in for IIS/WCF: they echo what they received
//! as JSON, stream large bodies, answer slowly, and accept a WebSocket-style upgrade.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The byte at offset `i` of every large test body: checkable without keeping the body.
pub(crate) fn pattern(i: u64) -> u8 {
    ((i.wrapping_mul(31) + 7) % 251) as u8
}

/// A running backend.
pub(crate) struct Backend {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    /// TCP connections accepted.
    pub conns: Arc<AtomicUsize>,
    /// Connections that have ended (closed by either side).
    pub ended: Arc<AtomicUsize>,
    /// `/big` bodies dropped before their end: their connection closed mid-body.
    pub cut: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Body = BoxBody<Bytes, Infallible>;

fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into()).map_err(|e| match e {}).boxed()
}

impl Backend {
    /// A plain HTTP/1.1 backend named `name` (the name comes back in every echo).
    pub(crate) async fn start(name: &'static str) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind backend");
        Self::serve(listener, name, None).await
    }

    /// A plain HTTP/1.1 backend on a given address (e.g. one that refused a moment ago).
    pub(crate) async fn start_on(name: &'static str, addr: SocketAddr) -> Backend {
        let listener = TcpListener::bind(addr).await.expect("bind backend");
        Self::serve(listener, name, None).await
    }

    /// An HTTPS backend presenting `cert_pem`/`key_pem`, HTTP/1.1 only.
    pub(crate) async fn start_tls(name: &'static str, cert_pem: &str, key_pem: &str) -> Backend {
        Self::start_tls_alpn(name, cert_pem, key_pem, &[]).await
    }

    /// An HTTPS backend that speaks HTTP/2 when the client offers it (like IIS 10).
    pub(crate) async fn start_tls_h2(name: &'static str, cert_pem: &str, key_pem: &str) -> Backend {
        Self::start_tls_alpn(name, cert_pem, key_pem, &[b"h2", b"http/1.1"]).await
    }

    async fn start_tls_alpn(
        name: &'static str,
        cert_pem: &str,
        key_pem: &str,
        alpn: &[&[u8]],
    ) -> Backend {
        use rustls_pki_types::pem::PemObject;
        let certs: Vec<_> = rustls_pki_types::CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .expect("cert pem");
        let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("key");
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("backend cert");
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind backend");
        Self::serve(listener, name, Some(Arc::new(config))).await
    }

    /// An HTTPS backend with its own rustls config (e.g. one that answers only one SNI).
    pub(crate) async fn start_tls_config(
        name: &'static str,
        config: Arc<rustls::ServerConfig>,
    ) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind backend");
        Self::serve(listener, name, Some(config)).await
    }

    async fn serve(
        listener: TcpListener,
        name: &'static str,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Backend {
        let addr = listener.local_addr().expect("addr");
        let hits = Arc::new(AtomicUsize::new(0));
        let conns = Arc::new(AtomicUsize::new(0));
        let ended = Arc::new(AtomicUsize::new(0));
        let cut = Arc::new(AtomicUsize::new(0));
        let cuts = cut.clone();
        let counter = hits.clone();
        let accepted = conns.clone();
        let gone = ended.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                accepted.fetch_add(1, Ordering::SeqCst);
                let counter = counter.clone();
                let tls = tls.clone();
                let gone = gone.clone();
                let cuts = cuts.clone();
                tokio::spawn(async move {
                    // Counted however the connection ends, even on an early return.
                    struct Ended(Arc<AtomicUsize>);
                    impl Drop for Ended {
                        fn drop(&mut self) {
                            self.0.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    let _ended = Ended(gone);
                    let svc = service_fn(move |req| {
                        counter.fetch_add(1, Ordering::SeqCst);
                        respond(req, name, cuts.clone())
                    });
                    match tls {
                        None => {
                            let _ = http1::Builder::new()
                                .serve_connection(TokioIo::new(tcp), svc)
                                .with_upgrades()
                                .await;
                        }
                        Some(config) => {
                            let Ok(tls) = tokio_rustls::TlsAcceptor::from(config).accept(tcp).await
                            else {
                                return;
                            };
                            if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
                                let _ = hyper::server::conn::http2::Builder::new(
                                    hyper_util::rt::TokioExecutor::new(),
                                )
                                .serve_connection(TokioIo::new(tls), svc)
                                .await;
                            } else {
                                let _ = http1::Builder::new()
                                    .serve_connection(TokioIo::new(tls), svc)
                                    .with_upgrades()
                                    .await;
                            }
                        }
                    }
                });
            }
        });
        Backend {
            addr,
            hits,
            conns,
            ended,
            cut,
            task,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn query_u64(req: &Request<Incoming>, key: &str) -> Option<u64> {
    req.uri().query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.parse().ok()).flatten()
    })
}

async fn respond(
    mut req: Request<Incoming>,
    name: &'static str,
    cuts: Arc<AtomicUsize>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    if path == "/slow" {
        let ms = query_u64(&req, "ms").unwrap_or(1000);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        return Ok(Response::new(full("slow done")));
    }
    if path == "/big" {
        let total = query_u64(&req, "bytes").unwrap_or(1 << 20);
        let body = Watched {
            body: PatternBody { sent: 0, total },
            cuts,
        };
        return Ok(Response::new(BodyExt::boxed(body)));
    }
    if path == "/ws" {
        let upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(up) = upgrade.await {
                let mut io = TokioIo::new(up);
                let mut buf = [0u8; 4096];
                while let Ok(n) = io.read(&mut buf).await {
                    if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        });
        let resp = Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .body(full(""))
            .expect("101");
        return Ok(resp);
    }
    // Echo: what the backend received, so tests can check what the proxy forwarded.
    let method = req.method().to_string();
    let uri = req.uri().to_string();
    let version = format!("{:?}", req.version());
    let mut headers = serde_json::Map::new();
    for name in req.headers().keys() {
        let values: Vec<_> = req
            .headers()
            .get_all(name)
            .iter()
            .map(|v| serde_json::Value::from(v.to_str().unwrap_or("<binary>")))
            .collect();
        headers.insert(name.to_string(), values.into());
    }
    let mut len: u64 = 0;
    let mut pattern_ok = true;
    let mut body = req.into_body();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        if let Ok(data) = frame.into_data() {
            for (i, b) in data.iter().enumerate() {
                if *b != pattern(len + i as u64) {
                    pattern_ok = false;
                }
            }
            len += data.len() as u64;
        }
    }
    let echo = serde_json::json!({
        "backend": name, "method": method, "uri": uri, "version": version,
        "headers": headers, "body_len": len, "pattern_ok": pattern_ok,
    });
    let mut resp = Response::new(full(echo.to_string()));
    resp.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/json"),
    );
    resp.headers_mut()
        .insert("keep-alive", http::HeaderValue::from_static("timeout=5"));
    Ok(resp)
}

/// `total` bytes of [`pattern`], produced in 64 KiB frames as the reader asks for them.
pub(crate) struct PatternBody {
    pub sent: u64,
    pub total: u64,
}

impl hyper::body::Body for PatternBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.sent >= this.total {
            return std::task::Poll::Ready(None);
        }
        let end = (this.sent + 65536).min(this.total);
        let chunk: Vec<u8> = (this.sent..end).map(pattern).collect();
        this.sent = end;
        std::task::Poll::Ready(Some(Ok(Frame::data(Bytes::from(chunk)))))
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.total - self.sent)
    }
}

/// A [`PatternBody`] that counts in `cuts` when it is dropped before its end.
struct Watched {
    body: PatternBody,
    cuts: Arc<AtomicUsize>,
}

impl Drop for Watched {
    fn drop(&mut self) {
        if self.body.sent < self.body.total {
            self.cuts.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl hyper::body::Body for Watched {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        std::pin::Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}
