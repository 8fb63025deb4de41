//! `admin-abuse`: how fast a target's admin listener answers its health probes while other
//! clients abuse it. Probes (`/healthz` and `/readyz` in turn, each on a fresh connection,
//! as a liveness probe makes them) run alone, then while: `--held` connections each hold
//! a request that never finishes and reopen it as soon as the target closes it;
//! `--slowloris` connections send their headers a byte at a time; `--loops` keep-alive
//! connections ask for `/certs` and `/metrics` back to back; `--foreign` connections do
//! the same with a foreign `Host` (DNS rebinding, expected 421). Reports each phase's
//! probe latency (connect to status line) p50/p99/max and how many took over 100 ms or
//! failed (no `200` within `--probe-timeout`).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::stats::{Histogram, Report};
use crate::target::loopback_addr;

#[derive(Args, Debug)]
pub(crate) struct AdminAbuseArgs {
    /// The target's admin listener (plain HTTP, loopback only).
    #[arg(long, value_parser = loopback_addr, default_value = "127.0.0.1:9443")]
    pub admin: SocketAddr,
    /// Connections that each hold an unfinished request, reopened when the target closes them.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub held: u32,
    /// Connections that send a request's headers one byte every `--drip-ms` (slowloris).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub slowloris: u32,
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub drip_ms: u64,
    /// Keep-alive connections asking for `/certs` (even ones) or `/metrics` (odd ones)
    /// back to back.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(0..=1_000))]
    pub loops: u32,
    /// Keep-alive connections asking for `/certs` with `Host: attacker.example`.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(0..=1_000))]
    pub foreign: u32,
    /// Loopback addresses the abuse comes from, in turn (the listener limits connections
    /// per address); the probes come from `--probe-from`.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1")]
    pub abuse_from: Vec<IpAddr>,
    #[arg(long, default_value = "127.0.0.1")]
    pub probe_from: IpAddr,
    /// Seconds of each phase: probes alone, then under abuse.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub duration: u64,
    /// Milliseconds between the start of one probe and the next.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub interval_ms: u64,
    /// A probe without a `200` status line within this many milliseconds failed.
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub probe_timeout_ms: u64,
}

/// A connection to the admin listener from `from` (a loopback address).
async fn connect(admin: SocketAddr, from: IpAddr) -> std::io::Result<TcpStream> {
    let socket = match from {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(admin).await
}

/// What the abusers did, over the whole abuse phase.
#[derive(Default)]
struct Abuse {
    held_opened: AtomicU64,
    slowloris_opened: AtomicU64,
    loop_answers: AtomicU64,
    foreign_421: AtomicU64,
    /// Answers other than expected (a 421 to a good Host, a 200 to a foreign one, ...).
    unexpected: AtomicU64,
}

/// Holds one unfinished request at a time; when the target closes it, opens the next.
async fn hold(admin: SocketAddr, from: IpAddr, abuse: Arc<Abuse>, slowloris: Option<Duration>) {
    loop {
        let Ok(mut tcp) = connect(admin, from).await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let counter = match slowloris {
            Some(_) => &abuse.slowloris_opened,
            None => &abuse.held_opened,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if tcp
            .write_all(b"GET /certs HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
            .await
            .is_err()
        {
            continue;
        }
        let mut buf = [0u8; 1024];
        match slowloris {
            // Waits for the close (or anything the target says).
            None => {
                let _ = tcp.read(&mut buf).await;
            }
            // A header byte every `drip`, until the target closes the connection.
            Some(drip) => loop {
                tokio::select! {
                    _ = tcp.read(&mut buf) => break,
                    _ = tokio::time::sleep(drip) => {
                        if tcp.write_all(b"x").await.is_err() {
                            break;
                        }
                    }
                }
            },
        }
    }
}

/// Asks for `path` with `host` back to back on keep-alive connections, reconnecting when
/// the target closes one.
async fn ask(
    admin: SocketAddr,
    from: IpAddr,
    path: &'static str,
    host: &'static str,
    abuse: Arc<Abuse>,
) {
    let foreign = host != "localhost";
    loop {
        let Ok(tcp) = connect(admin, from).await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let Ok((mut send, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await
        else {
            continue;
        };
        let conn = tokio::spawn(conn);
        loop {
            let req = http::Request::get(path)
                .header(http::header::HOST, host)
                .body(Empty::<Bytes>::new())
                .expect("a valid request");
            let Ok(resp) = send.send_request(req).await else {
                break;
            };
            let status = resp.status().as_u16();
            if resp.into_body().collect().await.is_err() {
                break;
            }
            match (foreign, status) {
                (false, 200) => abuse.loop_answers.fetch_add(1, Ordering::Relaxed),
                (true, 421) => abuse.foreign_421.fetch_add(1, Ordering::Relaxed),
                _ => abuse.unexpected.fetch_add(1, Ordering::Relaxed),
            };
        }
        conn.abort();
    }
}

/// One probe: connect, ask, read the status line. `Some(latency)` on a `200`.
async fn probe(args: &AdminAbuseArgs, path: &str) -> Option<Duration> {
    let started = Instant::now();
    let limit = Duration::from_millis(args.probe_timeout_ms);
    let ok = tokio::time::timeout(limit, async {
        let mut tcp = connect(args.admin, args.probe_from).await.ok()?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        tcp.write_all(req.as_bytes()).await.ok()?;
        let mut head = [0u8; 12];
        tcp.read_exact(&mut head).await.ok()?;
        (&head[9..12] == b"200").then_some(())
    })
    .await;
    matches!(ok, Ok(Some(()))).then(|| started.elapsed())
}

/// Probe latencies over one phase.
struct Phase {
    latency: Histogram,
    over_100ms: u64,
    failed: u64,
}

async fn probes(args: &AdminAbuseArgs) -> Phase {
    let mut phase = Phase {
        latency: Histogram::default(),
        over_100ms: 0,
        failed: 0,
    };
    let end = Instant::now() + Duration::from_secs(args.duration);
    let mut tick = tokio::time::interval(Duration::from_millis(args.interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n = 0u64;
    while Instant::now() < end {
        tick.tick().await;
        let path = if n.is_multiple_of(2) {
            "/healthz"
        } else {
            "/readyz"
        };
        n += 1;
        match probe(args, path).await {
            Some(took) => {
                phase.latency.record(took.as_micros() as u64);
                if took > Duration::from_millis(100) {
                    phase.over_100ms += 1;
                }
            }
            None => phase.failed += 1,
        }
    }
    phase
}

fn add_phase(report: &mut Report, name: &str, p: &Phase) {
    let h = &p.latency;
    report
        .add(&format!("{name}_probes"), h.count() + p.failed)
        .add(&format!("{name}_p50_us"), h.percentile(0.50))
        .add(&format!("{name}_p99_us"), h.percentile(0.99))
        .add(&format!("{name}_max_us"), h.percentile(1.0))
        .add(&format!("{name}_over_100ms"), p.over_100ms)
        .add(&format!("{name}_failed"), p.failed);
}

pub(crate) async fn run(args: AdminAbuseArgs, json: bool) -> Result<()> {
    for ip in args.abuse_from.iter().chain([&args.probe_from]) {
        if !ip.is_loopback() {
            bail!(
                "{ip} is not a loopback address; certfront-loadtest only uses 127.0.0.0/8 or [::1]"
            );
        }
    }
    if probe(&args, "/healthz").await.is_none() {
        bail!("{}: /healthz does not answer 200", args.admin);
    }
    let alone = probes(&args).await;

    let abuse = Arc::new(Abuse::default());
    let started = Instant::now();
    let from = |i: u32| args.abuse_from[i as usize % args.abuse_from.len()];
    let mut tasks = Vec::new();
    for i in 0..args.held {
        tasks.push(tokio::spawn(hold(args.admin, from(i), abuse.clone(), None)));
    }
    let drip = Some(Duration::from_millis(args.drip_ms));
    for i in 0..args.slowloris {
        tasks.push(tokio::spawn(hold(args.admin, from(i), abuse.clone(), drip)));
    }
    for i in 0..args.loops {
        let path = if i.is_multiple_of(2) {
            "/certs"
        } else {
            "/metrics"
        };
        tasks.push(tokio::spawn(ask(
            args.admin,
            from(i),
            path,
            "localhost",
            abuse.clone(),
        )));
    }
    for i in 0..args.foreign {
        let host = "attacker.example";
        tasks.push(tokio::spawn(ask(
            args.admin,
            from(i),
            "/certs",
            host,
            abuse.clone(),
        )));
    }
    // The held connections are in place before the first probe.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let abused = probes(&args).await;
    let seconds = started.elapsed().as_secs_f64();
    for t in tasks {
        t.abort();
    }

    let mut report = Report::new("admin listener probes under abuse");
    report
        .add("target", args.admin.to_string())
        .add("held", args.held)
        .add("slowloris", args.slowloris)
        .add("loops", args.loops)
        .add("foreign", args.foreign)
        .add(
            "abuse_from",
            args.abuse_from
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
        );
    add_phase(&mut report, "alone", &alone);
    add_phase(&mut report, "abused", &abused);
    let per_s = |n: &AtomicU64| n.load(Ordering::Relaxed) as f64 / seconds;
    report
        .add("held_opened_per_s", per_s(&abuse.held_opened))
        .add("slowloris_opened_per_s", per_s(&abuse.slowloris_opened))
        .add("certs_metrics_answers_per_s", per_s(&abuse.loop_answers))
        .add("foreign_host_421_per_s", per_s(&abuse.foreign_421))
        .add(
            "unexpected_answers",
            abuse.unexpected.load(Ordering::Relaxed),
        );
    report.print(json);
    Ok(())
}
