//! `churn`: backend connections a proxy opens per 1,000 requests after warm-up, read from the loadtest backend's counters.
//!
//! A proxy whose upstream pool keeps fewer idle connections than the load has
//! requests in flight opens (and closes) a backend connection for the requests
//! beyond it: CPU on both sides and TIME_WAIT sockets on the backend's. The load
//! runs without a break; the backend's counters (`GET /__stats`, see `backend`)
//! are read once the warm-up is over and once more at the end of the measured
//! period, so the pool's first fill does not count.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::Args;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::backend::STATS_PATH;
use crate::requests::{Run, connection};
use crate::stats::Report;
use crate::target::{Proto, Target, TargetArgs, loopback_addr};

#[derive(Args, Debug)]
pub(crate) struct ChurnArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// The address of the `certfront-loadtest backend` the proxy forwards to (its counters are read there).
    #[arg(long, value_parser = loopback_addr)]
    pub backend: SocketAddr,
    /// HTTP/1.1, one request at a time per connection; the default is HTTP/2 with --streams per connection.
    #[arg(long)]
    pub h1: bool,
    /// Client connections held open (HTTP/2: 100 x 10 streams are 1,000 requests in flight
    /// from one address, within certfront's default `max_connections_per_ip` of 256).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub connections: u32,
    /// Concurrent streams per connection (HTTP/2 only).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub streams: u32,
    /// Seconds of load before the first reading (the proxy's pool fills; on 2 busy cores
    /// certfront's took more than 5 s to reach 1,000 in flight).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub warmup: u64,
    /// Seconds of load between the two readings.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub duration: u64,
    /// Path requested (GET).
    #[arg(long, default_value = "/")]
    pub path: String,
}

/// The backend's counters at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Counters {
    connections: u64,
    requests: u64,
}

pub(crate) async fn run(args: ChurnArgs, json: bool) -> Result<()> {
    let proto = if args.h1 { Proto::H1 } else { Proto::H2 };
    let streams = if proto == Proto::H2 { args.streams } else { 1 };
    let timeout = Duration::from_secs(args.target.timeout.max(1));
    // Fails early, before any load, when --backend is not a loopback backend with counters.
    read_counters(args.backend, timeout)
        .await
        .with_context(|| format!("--backend {}", args.backend))?;

    let started_at = Instant::now();
    let warmup = Duration::from_secs(args.warmup);
    let measured = Duration::from_secs(args.duration);
    let run = Arc::new(Run::new(
        Target::new(&args.target, proto)?,
        proto,
        args.path.clone(),
        // A second past the last reading, so the load is still on when it is taken.
        started_at + warmup + measured + Duration::from_secs(1),
        u64::MAX,
    ));
    let mut connections = JoinSet::new();
    for _ in 0..args.connections {
        connections.spawn(connection(run.clone(), streams));
    }

    tokio::time::sleep_until((started_at + warmup).into()).await;
    let ok_before = run.ok.load(Ordering::Relaxed);
    let before = read_counters(args.backend, timeout).await;
    tokio::time::sleep_until((started_at + warmup + measured).into()).await;
    let after = read_counters(args.backend, timeout).await;
    let ok_after = run.ok.load(Ordering::Relaxed);
    while connections.join_next().await.is_some() {}
    let (before, after) = (before?, after?);

    // The second reading's own connection was accepted in between: not the proxy's.
    let opened = (after.connections - before.connections).saturating_sub(1);
    let served = after.requests - before.requests;
    let mut report = Report::new(format!("churn {}", proto.name()));
    report
        .add("target", run.target.addr.to_string())
        .add("backend", args.backend.to_string())
        .add("connections", args.connections)
        .add("streams", streams)
        .add(
            "in_flight",
            u64::from(args.connections) * u64::from(streams),
        )
        .add("warmup_s", args.warmup)
        .add("seconds", args.duration)
        .add("requests", ok_after - ok_before)
        .add("errors", run.errors.load(Ordering::Relaxed))
        .add("backend_requests", served)
        .add("backend_connections_opened", opened)
        .add(
            "backend_connections_per_1000_requests",
            if served == 0 {
                0.0
            } else {
                opened as f64 * 1000.0 / served as f64
            },
        );
    run.report_first_error(&mut report);
    report.print(json);
    if served == 0 {
        bail!(
            "the backend served no request in the measured {} s: is the proxy forwarding to {}?",
            args.duration,
            args.backend
        );
    }
    Ok(())
}

/// `GET /__stats` on a connection of its own (plain HTTP/1.1, loopback).
async fn read_counters(backend: SocketAddr, timeout: Duration) -> Result<Counters> {
    let body = tokio::time::timeout(timeout, async {
        let tcp = TcpStream::connect(backend).await?;
        let (mut send, conn) = http1::handshake(TokioIo::new(tcp)).await?;
        tokio::spawn(conn);
        let req = Request::get(STATS_PATH)
            .header(http::header::HOST, backend.to_string())
            .body(Empty::<Bytes>::new())?;
        let response = send.send_request(req).await?;
        if response.status() != StatusCode::OK {
            bail!("{STATS_PATH} answered {}", response.status());
        }
        Ok(response.into_body().collect().await?.to_bytes())
    })
    .await
    .with_context(|| format!("no answer to {STATS_PATH} within {timeout:?}"))??;
    parse_counters(&body)
}

fn parse_counters(body: &[u8]) -> Result<Counters> {
    let v: serde_json::Value = serde_json::from_slice(body).with_context(|| {
        format!(
            "{STATS_PATH} answered {:?}, expected JSON {{\"connections\":N,\"requests\":N}} (is it a certfront-loadtest backend?)",
            String::from_utf8_lossy(body)
        )
    })?;
    let field = |k: &str| {
        v.get(k)
            .and_then(serde_json::Value::as_u64)
            .with_context(|| format!("{STATS_PATH} answered {v}, expected a number in {k:?}"))
    };
    Ok(Counters {
        connections: field("connections")?,
        requests: field("requests")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::serve;

    #[test]
    fn parse_counters_reads_the_backend_answer_and_refuses_others() {
        assert_eq!(
            parse_counters(b"{\"connections\":3,\"requests\":70}\n").unwrap(),
            Counters {
                connections: 3,
                requests: 70
            }
        );
        let e = parse_counters(b"certfront-loadtest backend: ok\n").unwrap_err();
        assert!(format!("{e:#}").contains("expected JSON"), "{e:#}");
        let e = parse_counters(b"{\"connections\":3}").unwrap_err();
        assert!(format!("{e:#}").contains("\"requests\""), "{e:#}");
    }

    /// A real backend on a loopback port: keep-alive requests on one connection
    /// count once as a connection, the stats reads are not counted as requests.
    #[tokio::test]
    async fn backend_counts_connections_and_requests() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, Duration::from_secs(60)));
        let timeout = Duration::from_secs(10);
        let before = read_counters(addr, timeout).await.unwrap();

        let tcp = TcpStream::connect(addr).await.unwrap();
        let (mut send, conn) = http1::handshake(TokioIo::new(tcp)).await.unwrap();
        tokio::spawn(conn);
        for _ in 0..5 {
            send.ready().await.unwrap();
            let r = send
                .send_request(
                    Request::get("/")
                        .header(http::header::HOST, "b")
                        .body(Empty::<Bytes>::new())
                        .unwrap(),
                )
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            r.into_body().collect().await.unwrap();
        }
        let after = read_counters(addr, timeout).await.unwrap();
        // One keep-alive connection for 5 requests, plus the second read's own connection.
        assert_eq!(after.connections - before.connections, 2);
        assert_eq!(after.requests - before.requests, 5);
    }
}
