//! `backend`: a fast HTTP/1.1 origin for the benchmarks (small fixed answer, `/bytes?n=`, uploads discarded).
//!
//! Every proxy under comparison forwards to this same process, so its cost is
//! the same for all and does not count in a proxy's CPU time. It counts the TCP
//! connections it accepted and the requests it served (two relaxed atomics, off
//! any lock) and answers `GET /__stats` with them as JSON while it runs: `churn`
//! reads them to tell how many backend connections a proxy opens per request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use clap::Args;
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::client::LoadBody;
use crate::target::loopback_addr;

/// Largest `/bytes?n=` served: 100 GB, far above any benchmark, below a runaway.
const MAX_BYTES: u64 = 100_000_000_000;
const SMALL: &[u8] = b"certfront-loadtest backend: ok\n";
/// The path of the counters; not counted as a request itself.
pub(crate) const STATS_PATH: &str = "/__stats";

/// What the backend has seen since it started.
#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    requests: AtomicU64,
}

#[derive(Args, Debug)]
pub(crate) struct BackendArgs {
    /// Listen address (loopback only); port 0 picks a free port, printed on stdout.
    #[arg(long, value_parser = loopback_addr, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Exit after this many seconds (the backend never outlives a forgotten benchmark).
    #[arg(long, default_value_t = 3_600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub max_seconds: u64,
}

pub(crate) async fn run(args: BackendArgs) -> Result<()> {
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("bind {}", args.listen))?;
    let addr = listener.local_addr()?;
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{addr}")?;
        out.flush()?;
    }

    serve(listener, Duration::from_secs(args.max_seconds)).await
}

/// Serves `listener` for `max` at most (also what `churn`'s test runs on a port of its own).
pub(crate) async fn serve(listener: TcpListener, max: Duration) -> Result<()> {
    let counters = Arc::new(Counters::default());
    let deadline = tokio::time::Instant::from_std(Instant::now() + max);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = tokio::time::sleep_until(deadline) => return Ok(()),
        };
        let (tcp, _) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off, keep serving the others.
                eprintln!("backend: accept: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        counters.connections.fetch_add(1, Ordering::Relaxed);
        let _ = tcp.set_nodelay(true);
        let counters = counters.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| answer(req, counters.clone()));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

async fn answer(
    req: Request<Incoming>,
    counters: Arc<Counters>,
) -> Result<Response<LoadBody>, hyper::Error> {
    if req.uri().path() == STATS_PATH {
        return Ok(Response::new(LoadBody::fixed(Bytes::from(format!(
            "{{\"connections\":{},\"requests\":{}}}\n",
            counters.connections.load(Ordering::Relaxed),
            counters.requests.load(Ordering::Relaxed)
        )))));
    }
    counters.requests.fetch_add(1, Ordering::Relaxed);
    if req.method() == Method::POST || req.method() == Method::PUT {
        let mut body = req.into_body();
        let mut n = 0u64;
        while let Some(frame) = body.frame().await {
            if let Some(d) = frame?.data_ref() {
                n += d.len() as u64;
            }
        }
        return Ok(Response::new(LoadBody::fixed(Bytes::from(format!(
            "received {n}\n"
        )))));
    }
    if req.uri().path() == "/bytes" {
        let n = req
            .uri()
            .query()
            .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("n=")))
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|n| *n <= MAX_BYTES);
        return Ok(match n {
            Some(n) => Response::new(LoadBody::of(n)),
            None => {
                let mut r = Response::new(LoadBody::fixed(Bytes::from(format!(
                    "/bytes needs ?n=BYTES with 0 <= BYTES <= {MAX_BYTES}\n"
                ))));
                *r.status_mut() = StatusCode::BAD_REQUEST;
                r
            }
        });
    }
    Ok(Response::new(LoadBody::fixed(Bytes::from_static(SMALL))))
}
