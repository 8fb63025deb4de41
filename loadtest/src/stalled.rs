//! `stalled`: clients that request a large body and stop taking it, and what they cost the
//! target: RSS of its process tree before and after N such connections (memory per stalled
//! connection), then how many the target has closed after `--hold` seconds (its send
//! timeout at work). HTTP/2 clients read every frame and answer PINGs but never send
//! WINDOW_UPDATE (`--mode window`), or read nothing at all (`--mode no-read`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::{Args, ValueEnum};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::h2raw::{frame, get_headers, opening};
use crate::procfs;
use crate::stats::Report;
use crate::target::{Proto, Target, TargetArgs};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum Mode {
    /// HTTP/2: read and answer PINGs, never open the flow-control window.
    Window,
    /// HTTP/2: send the requests, then read nothing.
    NoRead,
    /// HTTP/1.1: send the request, then read nothing.
    H1,
}

#[derive(Args, Debug)]
pub(crate) struct StalledArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// The target process (its children are counted too).
    #[arg(long)]
    pub pid: u32,
    /// Stalled connections opened (the target's per-IP limit must allow them).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub connections: u32,
    /// Requests per HTTP/2 connection.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub streams: u32,
    #[arg(long, value_enum, default_value = "window")]
    pub mode: Mode,
    /// The large body asked for (the loadtest backend's `/bytes?n=`).
    #[arg(long, default_value = "/bytes?n=1073741824")]
    pub path: String,
    /// Seconds after the last request before RSS is read.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(0..=600))]
    pub settle: u64,
    /// Seconds to keep the connections stalled before counting those the target closed.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=3_600))]
    pub hold: u64,
}

/// Opens one connection, sends its requests, then holds it stalled until the target
/// closes it (counted in `closed`) or the task is dropped.
async fn stall(
    target: Target,
    args: Arc<StalledArgs>,
    closed: Arc<AtomicUsize>,
    mut done: tokio::sync::watch::Receiver<bool>,
) -> Result<()> {
    let tls = target.connect().await?;
    let (mut read, mut write) = tokio::io::split(tls);
    let hello = match args.mode {
        Mode::H1 => {
            format!("GET {} HTTP/1.1\r\nHost: {}\r\n\r\n", args.path, target.sni).into_bytes()
        }
        Mode::Window | Mode::NoRead => {
            let mut hello = opening();
            for i in 0..args.streams {
                let headers = get_headers(&args.path, &target.sni);
                hello.extend(frame(1, 0x4 | 0x1, 2 * i + 1, &headers));
            }
            hello
        }
    };
    write.write_all(&hello).await.context("request")?;
    tokio::spawn(async move {
        if let Mode::Window = args.mode {
            let mut head = [0u8; 9];
            loop {
                if read.read_exact(&mut head).await.is_err() {
                    break;
                }
                let len = (usize::from(head[0]) << 16)
                    | (usize::from(head[1]) << 8)
                    | usize::from(head[2]);
                let mut payload = vec![0u8; len];
                if read.read_exact(&mut payload).await.is_err() {
                    break;
                }
                let reply = match (head[3], head[4] & 1) {
                    (4, 0) => frame(4, 1, 0, &[]),
                    (6, 0) => frame(6, 1, 0, &payload),
                    _ => continue,
                };
                if write.write_all(&reply).await.is_err() {
                    break;
                }
            }
        } else {
            // Reads nothing until the hold is over; then reads what is left: the end of
            // the stream (within 5 s and 256 MiB) means the target closed it.
            let _ = done.wait_for(|d| *d).await;
            let mut buf = vec![0u8; 64 * 1024];
            let mut total = 0usize;
            let drained = tokio::time::timeout(Duration::from_secs(5), async {
                while total < 256 << 20 {
                    match read.read(&mut buf).await {
                        Ok(0) | Err(_) => return true,
                        Ok(n) => total += n,
                    }
                }
                false
            })
            .await;
            if drained != Ok(true) {
                return;
            }
        }
        closed.fetch_add(1, Ordering::SeqCst);
        drop((read, write));
    });
    Ok(())
}

pub(crate) async fn run(args: StalledArgs, json: bool) -> Result<()> {
    let proto = match args.mode {
        Mode::H1 => Proto::H1,
        Mode::Window | Mode::NoRead => Proto::H2,
    };
    let target = Target::new(&args.target, proto)?;
    let pids = procfs::tree(args.pid)?;
    let before = procfs::rss_kb(&pids);
    let args = Arc::new(args);
    let closed = Arc::new(AtomicUsize::new(0));
    let (done, held) = tokio::sync::watch::channel(false);
    let mut opened = 0u32;
    for _ in 0..args.connections {
        match stall(target.clone(), args.clone(), closed.clone(), held.clone()).await {
            Ok(()) => opened += 1,
            Err(e) if opened == 0 => bail!("no stalled connection to {}: {e:#}", target.addr),
            Err(_) => {}
        }
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.settle)).await;
    let after = procfs::rss_kb(&procfs::tree(args.pid)?);
    let per = (after as f64 - before as f64) / f64::from(opened.max(1));
    let closed_at_settle = closed.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(args.hold)).await;
    let _ = done.send(true);
    if !matches!(args.mode, Mode::Window) {
        // The readers drain what is left (at most 5 s).
        tokio::time::sleep(Duration::from_secs(6)).await;
    }

    let mut report = Report::new("stalled readers");
    report
        .add("target", target.addr.to_string())
        .add("mode", format!("{:?}", args.mode).to_lowercase())
        .add("connections", opened)
        .add("streams_per_connection", args.streams)
        .add("rss_before_kb", before)
        .add("rss_stalled_kb", after)
        .add("kb_per_connection", per)
        .add("closed_by_target_at_settle", closed_at_settle)
        .add("seconds_held", started.elapsed().as_secs())
        .add("closed_by_target_after_hold", closed.load(Ordering::SeqCst))
        .add(
            "rss_after_hold_kb",
            procfs::rss_kb(&procfs::tree(args.pid)?),
        );
    report.print(json);
    Ok(())
}
