//! A new upstream connection: under the upstream's connection rate, in a task of its own
//! (so a cancelled request does not waste it), a permit under `upstream_max_connections`,
//! TCP, TLS with the host's upstream settings, then the HTTP/1.1 or HTTP/2 handshake ALPN
//! chose.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tracing::debug;

use super::io::UpstreamIo;
use super::pool::H1;
use super::{Dial, Sender, Target, UpstreamError, Upstreams, blames_upstream};

/// Largest read from an HTTP/1.1 upstream (response headers included): what one
/// response body chunk can hold.
const UPSTREAM_READ_BUF: usize = 32 * 1024;

impl Upstreams {
    /// A new connection, opened in a task of its own on this worker (boxed there: its
    /// future, TCP, TLS and HTTP handshakes, would otherwise make every request's future
    /// larger). A request cancelled while it opens (client reset, stream error, GOAWAY)
    /// leaves the finished connection to the pool instead of closing it: a client that
    /// cancels in a loop cannot make the upstream accept a connection per cancelled
    /// request. New connections are also held to a rate per upstream (`rate`).
    pub(super) async fn connect(
        &self,
        target: &Arc<Target>,
        upgrade: bool,
        throttled: &mut Duration,
    ) -> Result<Sender, UpstreamError> {
        if let Some(wait) = target.rate.take(Instant::now()) {
            return Err(UpstreamError::Throttled {
                upstream: target.label.clone(),
                wait,
                waited: *throttled,
            });
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (dial, task_target) = (self.dial.clone(), target.clone());
        tokio::spawn(async move {
            let opened = dial.connect(&task_target, upgrade).await;
            // Nobody waits any more: keep what was opened (an HTTP/2 one is kept already).
            if let Err(Ok(Sender::H1(h1))) = tx.send(opened) {
                task_target.pool.checkin(h1);
            }
        });
        rx.await.unwrap_or_else(|_| {
            Err(UpstreamError::Local {
                upstream: target.label.clone(),
                source: io::Error::other("the connecting task stopped"),
            })
        })
    }
}

impl Dial {
    /// A new connection: a permit under `upstream_max_connections`, TCP, TLS, then the
    /// HTTP handshake for the protocol ALPN chose.
    pub(super) async fn connect(
        &self,
        target: &Target,
        upgrade: bool,
    ) -> Result<Sender, UpstreamError> {
        let label = &target.label;
        let up = &target.upstream;
        let permits = &target.pool.permits;
        if permits.available_permits() == 0 {
            // At the cap: idle connections another worker holds give way.
            target.pool.evict_idle();
        }
        let acquire = permits.clone().acquire_owned();
        let Ok(Ok(permit)) = tokio::time::timeout(self.connect_timeout, acquire).await else {
            return Err(UpstreamError::Busy {
                upstream: label.clone(),
                limit: self.max_connections,
            });
        };
        let tcp = tokio::time::timeout(
            self.connect_timeout,
            TcpStream::connect((up.host.as_str(), up.port)),
        )
        .await
        .map_err(|_| UpstreamError::Timeout {
            upstream: label.clone(),
        })?
        .map_err(|source| {
            let upstream = label.clone();
            if blames_upstream(&source) {
                UpstreamError::Connect { upstream, source }
            } else {
                UpstreamError::Local { upstream, source }
            }
        })?;
        let _ = tcp.set_nodelay(true);
        let io = if up.tls {
            let tls = self.tls.as_ref().ok_or_else(|| UpstreamError::Tls {
                upstream: label.clone(),
                source: io::Error::other("no TLS settings for this upstream"),
            })?;
            let connector = if upgrade { &tls.h1 } else { &tls.any };
            let stream = tokio::time::timeout(
                self.connect_timeout,
                connector.connect(target.server_name.clone(), tcp),
            )
            .await
            .map_err(|_| UpstreamError::Timeout {
                upstream: label.clone(),
            })?
            .map_err(|source| UpstreamError::Tls {
                upstream: label.clone(),
                source,
            })?;
            UpstreamIo::Tls(Box::new(stream))
        } else {
            UpstreamIo::Plain(tcp)
        };
        let protocol = |source| UpstreamError::Protocol {
            upstream: label.clone(),
            source,
        };
        if io.is_h2() {
            let (tx, conn) = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .handshake(TokioIo::new(io))
                .await
                .map_err(protocol)?;
            let label = label.clone();
            tokio::spawn(async move {
                let _permit = permit;
                if let Err(e) = conn.await {
                    debug!(upstream = %label, "upstream h2 connection ended: {e}");
                }
            });
            target.pool.set_h2(tx.clone());
            return Ok(Sender::H2(tx));
        }
        let probe = if upgrade {
            None
        } else {
            Some(io.probe().map_err(|source| UpstreamError::Local {
                upstream: label.clone(),
                source,
            })?)
        };
        let (tx, conn) = http1::Builder::new()
            // Each read of the response body becomes one chunk handed to the client's
            // connection: hyper's default (~400 KiB) let one stalled HTTP/2 stream pin
            // that much on top of its send buffer.
            .max_buf_size(UPSTREAM_READ_BUF)
            .handshake(TokioIo::new(io))
            .await
            .map_err(protocol)?;
        if let Some(probe) = probe {
            return Ok(Sender::H1(H1::new(tx, conn, probe, permit)));
        }
        let label = label.clone();
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = conn.with_upgrades().await {
                debug!(upstream = %label, "upstream connection ended: {e}");
            }
        });
        Ok(Sender::Upgrade(tx))
    }
}
