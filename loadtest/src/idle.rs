//! `idle`: memory per idle TLS connection: RSS of the target's process tree before and after N handshakes.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::Args;
use tokio::task::JoinSet;

use crate::procfs;
use crate::stats::Report;
use crate::target::{Proto, Target, TargetArgs};

#[derive(Args, Debug)]
pub(crate) struct IdleArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Connections opened and held (the target's per-IP and total limits must allow them).
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub connections: u32,
    /// The target process (its children are counted too: nginx and HAProxy workers).
    #[arg(long)]
    pub pid: u32,
    /// Handshakes in flight at once while opening.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub parallel: u32,
    /// Seconds to wait after the last handshake before reading RSS (lets buffers settle).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=600))]
    pub settle: u64,
    /// Give up opening connections after this many seconds.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub max_seconds: u64,
}

pub(crate) async fn run(args: IdleArgs, json: bool) -> Result<()> {
    let target = Target::new(&args.target, Proto::H1)?;
    let pids = procfs::tree(args.pid)?;
    let before = procfs::rss_kb(&pids);
    let deadline = Instant::now() + Duration::from_secs(args.max_seconds);

    let mut held = Vec::with_capacity(args.connections as usize);
    let mut errors = 0u64;
    let mut first_error = None;
    let mut pending = JoinSet::new();
    let mut launched = 0u32;
    // Bounded by the connection count and the deadline.
    while (launched < args.connections || !pending.is_empty()) && Instant::now() < deadline {
        while launched < args.connections && pending.len() < args.parallel as usize {
            let t = target.clone();
            pending.spawn(async move { t.connect().await });
            launched += 1;
        }
        match pending.join_next().await {
            Some(Ok(Ok(tls))) => held.push(tls),
            Some(Ok(Err(e))) => {
                errors += 1;
                first_error.get_or_insert(format!("{e:#}"));
            }
            Some(Err(e)) => bail!("connect task failed: {e}"),
            None => {}
        }
    }
    pending.abort_all();
    if held.is_empty() {
        bail!(
            "no connection to {} succeeded; first error: {}",
            target.addr,
            first_error.unwrap_or_default()
        );
    }
    tokio::time::sleep(Duration::from_secs(args.settle)).await;
    // Re-read the tree: a worker may have been forked meanwhile.
    let after = procfs::rss_kb(&procfs::tree(args.pid)?);
    let per = (after as f64 - before as f64) / held.len() as f64;

    let mut report = Report::new("idle TLS connections");
    report
        .add("target", target.addr.to_string())
        .add("pid", args.pid)
        .add("connections", held.len())
        .add("errors", errors)
        .add("rss_before_kb", before)
        .add("rss_after_kb", after)
        .add("kb_per_connection", per);
    if let Some(e) = first_error {
        report.add("first_error", e);
    }
    report.print(json);
    drop(held);
    Ok(())
}
