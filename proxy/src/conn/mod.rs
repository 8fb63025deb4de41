//! One client connection: TLS accept, then HTTP/1.1 or HTTP/2 as ALPN chose, until the
//! client leaves, is idle too long, reaches its maximum age, loses its client certificate
//! to the deny list, or a drain asks it to finish its requests and close.

mod drive;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::HeaderValue;
use http_body::{Body, Frame, SizeHint};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tracing::debug;

use crate::access_log::ConnFacts;
use crate::admission::Slot;
use crate::app::App;
use crate::context::{Activity, ConnCtx};
use crate::mtls::ClientCert;
use crate::tls;

fn version_label(v: Option<rustls::ProtocolVersion>) -> &'static str {
    match v {
        Some(rustls::ProtocolVersion::TLSv1_3) => "1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "1.2",
        _ => "none",
    }
}

/// Counts one request in flight until its response body is done (or dropped).
pub(crate) struct InFlight {
    ctx: Arc<ConnCtx>,
    /// HTTP/2: the body handed hyper a frame and was not asked for the next one yet
    /// (counted in `Activity::sending`).
    waiting: bool,
}

impl InFlight {
    fn new(ctx: Arc<ConnCtx>) -> Self {
        ctx.activity.active.fetch_add(1, Ordering::AcqRel);
        ctx.activity.started.store(true, Ordering::Release);
        InFlight {
            ctx,
            waiting: false,
        }
    }

    /// hyper asks the body for a frame: on HTTP/2 that means the client's window has
    /// room, so the connection is not stalled.
    fn asked(&mut self) {
        let sending = &self.ctx.activity.sending;
        sending
            .last_asked_ms
            .store(self.ctx.app.now_ms(), Ordering::Relaxed);
        if self.waiting {
            self.waiting = false;
            sending.waiting.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// The body handed hyper a frame; until asked again it waits for the client.
    fn handed(&mut self) {
        self.waiting = true;
        self.ctx
            .activity
            .sending
            .waiting
            .fetch_add(1, Ordering::AcqRel);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.ctx.activity;
        if self.waiting {
            activity.sending.waiting.fetch_sub(1, Ordering::AcqRel);
        }
        activity
            .last_end_ms
            .store(self.ctx.app.now_ms(), Ordering::Relaxed);
        activity.active.fetch_sub(1, Ordering::AcqRel);
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its request counted as in flight until it is sent.
    pub struct Counted<B> {
        #[pin]
        body: B,
        in_flight: InFlight,
    }
}

impl<B: Body> Body for Counted<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        if !this.in_flight.ctx.h2 {
            // HTTP/1.1 has no flow control: a blocked write is `SendTimed`'s to see.
            return this.body.poll_frame(cx);
        }
        this.in_flight.asked();
        let frame = this.body.poll_frame(cx);
        if let Poll::Ready(Some(Ok(_))) = &frame {
            this.in_flight.handed();
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Serves one TLS client connection to its end. `slot` is what admission gave it.
///
/// Memory is what bounds how many idle connections a proxy can hold, so the task that
/// lives as long as the connection stays small: the handshake's state lives in its own
/// allocation, freed once the handshake ends, and the HTTP state (hyper's buffers and
/// dispatcher, several KiB) is made only once the client has sent its first bytes. An
/// HTTP/1.1 client that opens a connection and sends nothing costs its TLS session and
/// little more.
pub(crate) async fn serve_tls(app: Arc<App>, tcp: TcpStream, peer: SocketAddr, slot: Slot) {
    let _ = tcp.set_nodelay(true);
    let Some((mut stream, ctx)) = Box::pin(establish(app, tcp, peer, slot)).await else {
        return;
    };
    // HTTP/2 clients send their preface at once, so only HTTP/1.1 connections wait here.
    if !ctx.h2 {
        match drive::first_bytes(&mut stream, &ctx).await {
            drive::FirstBytes::Arrived => {}
            drive::FirstBytes::Close(why) => {
                debug!(%peer, "closing connection before its first request ({why})");
                // close_notify, as hyper sends when it closes an idle connection; bounded,
                // as a client that reads nothing must not hold the task.
                let _ = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
                return;
            }
        }
    }
    Box::pin(drive::serve_http(stream, ctx)).await;
}

/// The handshake and what follows from it: the host, the client certificate checks, the
/// connection's context. `None` when the connection ends here (counted and logged).
async fn establish(
    app: Arc<App>,
    tcp: TcpStream,
    peer: SocketAddr,
    slot: Slot,
) -> Option<(TlsStream<TcpStream>, Arc<ConnCtx>)> {
    let rt = app.snapshot();
    // Only for the access log: one system call per connection, none per request.
    let local = rt
        .config
        .server
        .access_log
        .is_on()
        .then(|| tcp.local_addr().ok())
        .flatten();
    let cap = crate::admission::handshake_cap(rt.config.limits.max_connections);
    let (turn, dropped) = app.handshakes.start(cap);
    // Boxed once here: the handshake's state (rustls' acceptor, the ClientHello buffer,
    // the handshake itself) is the bulk of this future, and `watch`, its task-local scope
    // and `select!` each move what they are given (memcpy of those moves was ~5% of the
    // instructions of a full handshake).
    let handshake = crate::refusals::watch(Box::pin(tls::accept(
        tcp,
        &rt.table,
        &app.acme.challenges,
        rt.config.limits.handshake_timeout,
    )));
    let (accepted, refused) = tokio::select! {
        out = handshake => out,
        _ = dropped => {
            debug!(%peer, "TLS handshake dropped: the oldest of {cap} unfinished (limits.max_connections / 4)");
            app.metrics
                .tls_handshakes
                .with_label_values(&["unknown", "none", "dropped"])
                .inc();
            return None;
        }
    };
    drop(turn);
    let accepted = match accepted {
        Ok(accepted) => accepted,
        Err((site, e)) => {
            let host = site.as_ref().map(|s| s.fqdn.as_str()).unwrap_or("unknown");
            debug!(%peer, host, "TLS handshake failed: {e}");
            let refused = match (&site, e.no_client_cert()) {
                (Some(site), true) => {
                    app.metrics
                        .client_cert_rejections
                        .with_label_values(&[site.fqdn.as_str(), "missing"])
                        .inc();
                    Some(crate::refusals::Refused::missing())
                }
                _ => refused,
            };
            if let (Some(site), Some(refused)) = (&site, &refused)
                && let Some(auth) = &site.client_auth
            {
                crate::refusals::log(&site.fqdn, peer, &auth.refusal_log, refused);
            }
            app.metrics
                .tls_handshakes
                .with_label_values(&[host, "none", e.reason()])
                .inc();
            return None;
        }
    };
    app.metrics
        .tls_handshakes
        .with_label_values(&[
            accepted.site.fqdn.as_str(),
            version_label(accepted.version),
            "success",
        ])
        .inc();
    let client_cert = match &accepted.site.client_auth {
        Some(_) => accepted
            .stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(ClientCert::from_chain),
        None => None,
    };
    // A resumed session skips certificate verification, so the deny list and the CRLs are
    // checked here too (the CRLs only then: a full handshake has just checked them).
    if let (Some(auth), Some(cert)) = (&accepted.site.client_auth, &client_cert) {
        let resumed =
            accepted.stream.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
        let reason = if auth.is_denied(&cert.leaf) {
            Some("denied")
        } else if resumed && auth.crl_revokes(&cert.leaf, &cert.intermediates) {
            Some("revoked")
        } else {
            None
        };
        if let Some(reason) = reason {
            debug!(%peer, host = %accepted.site.fqdn, reason, "resumed session of a refused client certificate");
            app.metrics
                .client_cert_rejections
                .with_label_values(&[accepted.site.fqdn.as_str(), reason])
                .inc();
            return None;
        }
    }
    let trusted_peer = rt
        .config
        .server
        .trusted_proxies
        .iter()
        .any(|net| net.contains(&peer.ip()));
    let log_facts = rt.config.server.access_log.is_on().then(|| {
        let conn = accepted.stream.get_ref().1;
        Arc::new(ConnFacts {
            local,
            sni: conn.server_name().map(Box::from),
            tls_version: match accepted.version {
                Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
                Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
                _ => "",
            },
            cipher: conn
                .negotiated_cipher_suite()
                .and_then(|s| s.suite().as_str())
                .unwrap_or_default(),
            client_thumbprint: client_cert.as_ref().map(|c| c.thumbprint.clone()),
        })
    });
    let ctx = Arc::new(ConnCtx {
        log_facts,
        client_cert,
        peer_ip: HeaderValue::try_from(peer.ip().to_string()).expect("an IP is a header value"),
        trusted_peer,
        activity: Activity {
            active: AtomicUsize::new(0),
            started: AtomicBool::new(false),
            last_end_ms: AtomicU64::new(app.now_ms()),
            sending: Default::default(),
        },
        established: tokio::time::Instant::now(),
        app,
        rt,
        h2: accepted.h2,
        site: accepted.site,
        peer,
        _slot: slot,
    });
    Some((accepted.stream, ctx))
}
