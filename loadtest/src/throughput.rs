//! `throughput`: MB/s of one large body, downloaded (`/bytes?n=`) or uploaded, through the proxy.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};
use http::Method;

use crate::client::{LoadBody, Sender};
use crate::stats::Report;
use crate::target::{Proto, Target, TargetArgs};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Direction {
    /// The backend sends the body (`GET /bytes?n=N`).
    Down,
    /// The client sends the body (`POST /upload`), the backend discards it.
    Up,
}

#[derive(Args, Debug)]
pub(crate) struct ThroughputArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Body size in bytes.
    #[arg(long, default_value_t = 100_000_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000_000))]
    pub bytes: u64,
    #[arg(long, value_enum, default_value = "down")]
    pub direction: Direction,
    /// HTTP/2 (ALPN h2); the default is HTTP/1.1.
    #[arg(long)]
    pub h2: bool,
    /// The transfer is abandoned (an error) after this many seconds.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub max_seconds: u64,
}

pub(crate) async fn run(args: ThroughputArgs, json: bool) -> Result<()> {
    let proto = if args.h2 { Proto::H2 } else { Proto::H1 };
    let target = Target::new(&args.target, proto)?;
    let mut sender = Sender::open(&target, proto).await?;
    let (method, path, body) = match args.direction {
        Direction::Down => (
            Method::GET,
            format!("/bytes?n={}", args.bytes),
            LoadBody::empty(),
        ),
        Direction::Up => (
            Method::POST,
            "/upload".to_string(),
            LoadBody::of(args.bytes),
        ),
    };
    let t = Instant::now();
    let answer = tokio::time::timeout(
        Duration::from_secs(args.max_seconds),
        sender.request(&target.sni, method, &path, body),
    )
    .await
    .map_err(|_| {
        anyhow::anyhow!(
            "{} bytes not moved within {} s",
            args.bytes,
            args.max_seconds
        )
    })??;
    let seconds = t.elapsed().as_secs_f64();
    if !answer.status.is_success() {
        bail!("{path}: status {}, expected 200", answer.status);
    }
    if args.direction == Direction::Down && answer.body_bytes != args.bytes {
        bail!(
            "{path}: received {} bytes, expected {}",
            answer.body_bytes,
            args.bytes
        );
    }
    let mut report =
        Report::new(format!("throughput {:?} {}", args.direction, proto.name()).to_lowercase());
    report
        .add("target", target.addr.to_string())
        .add("bytes", args.bytes)
        .add("seconds", seconds)
        .add("mb_per_s", args.bytes as f64 / 1e6 / seconds);
    report.print(json);
    Ok(())
}
