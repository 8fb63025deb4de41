//! WebSocket tunnels: after a 101, bytes are copied both ways until either side closes.
//! A tunnel is still its connection: it keeps the connection's slot (limits, the open
//! gauge, the drain count), ends `drain` seconds into a drain, when its client
//! certificate is denied, or after `limits.tunnel_idle_timeout_seconds` with no bytes.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tracing::{debug, info};

use crate::app::App;
use crate::context::ConnCtx;

/// Starts the tunnel once both sides have switched protocols.
pub(crate) fn spawn(ctx: Arc<ConnCtx>, client: OnUpgrade, upstream: OnUpgrade) {
    tokio::spawn(async move {
        match tokio::try_join!(client, upstream) {
            Ok((client, upstream)) => run(&ctx, TokioIo::new(client), TokioIo::new(upstream)).await,
            Err(e) => debug!(peer = %ctx.peer, "websocket upgrade failed: {e}"),
        }
    });
}

async fn run<C, U>(ctx: &ConnCtx, client: C, upstream: U)
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let last_byte_ms = AtomicU64::new(ctx.app.now_ms());
    let mut client = Active {
        io: client,
        last: &last_byte_ms,
        app: &ctx.app,
    };
    let mut upstream = Active {
        io: upstream,
        last: &last_byte_ms,
        app: &ctx.app,
    };
    let why = tokio::select! {
        res = tokio::io::copy_bidirectional(&mut client, &mut upstream) => match res {
            Ok(_) => return,
            Err(e) => {
                debug!(peer = %ctx.peer, "websocket tunnel ended: {e}");
                return;
            }
        },
        _ = idle(ctx, &last_byte_ms) => "idle",
        _ = retired(ctx) => "host reconfigured",
        _ = ctx.drain_deadline() => "drain",
        _ = ctx.revoked() => "client certificate denied",
    };
    info!(peer = %ctx.peer, host = %ctx.site.fqdn, "closing websocket tunnel ({why})");
}

/// Resolves `drain_seconds` after the tunnel's host was retired by a new configuration.
async fn retired(ctx: &ConnCtx) {
    ctx.site.retirement().await;
    tokio::time::sleep(crate::snapshot::drain(&ctx.rt.config)).await;
}

/// Resolves when no byte has crossed the tunnel for `tunnel_idle_timeout`.
async fn idle(ctx: &ConnCtx, last_byte_ms: &AtomicU64) {
    let timeout = ctx.rt.config.limits.tunnel_idle_timeout;
    crate::context::until_idle(
        &ctx.app,
        timeout,
        || 0,
        || last_byte_ms.load(Ordering::Relaxed),
    )
    .await;
}

/// One side of a tunnel, noting when it last read a byte.
struct Active<'a, T> {
    io: T,
    last: &'a AtomicU64,
    app: &'a App,
}

impl<T: AsyncRead + Unpin> AsyncRead for Active<'_, T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = Pin::new(&mut this.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.last.store(this.app.now_ms(), Ordering::Relaxed);
        }
        res
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Active<'_, T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
