//! `requests`: keep-alive requests per second and latency percentiles over HTTP/1.1 or HTTP/2.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;
use http::Method;
use tokio::task::JoinSet;

use crate::client::{LoadBody, Sender};
use crate::stats::{Histogram, Report};
use crate::target::{Proto, Target, TargetArgs};

#[derive(Args, Debug)]
pub(crate) struct RequestsArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// HTTP/2 (ALPN h2); the default is HTTP/1.1.
    #[arg(long, conflicts_with = "h1")]
    pub h2: bool,
    /// HTTP/1.1 (ALPN http/1.1), the default.
    #[arg(long)]
    pub h1: bool,
    /// Client connections held open.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub connections: u32,
    /// Concurrent streams per connection (HTTP/2 only; HTTP/1.1 runs one request at a time).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub streams: u32,
    /// Length of the run, seconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub duration: u64,
    /// Stop after this many requests even if the duration is not over.
    #[arg(long, default_value_t = 100_000_000)]
    pub max_requests: u64,
    /// Path requested (GET).
    #[arg(long, default_value = "/")]
    pub path: String,
}

/// Shared by every stream of the run (`churn` drives the same streams).
pub(crate) struct Run {
    pub(crate) target: Target,
    proto: Proto,
    path: String,
    deadline: Instant,
    max_requests: u64,
    started: AtomicU64,
    pub(crate) ok: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) latency: Mutex<Histogram>,
    first_error: Mutex<Option<String>>,
}

impl Run {
    pub(crate) fn new(
        target: Target,
        proto: Proto,
        path: String,
        deadline: Instant,
        max_requests: u64,
    ) -> Self {
        Self {
            target,
            proto,
            path,
            deadline,
            max_requests,
            started: AtomicU64::new(0),
            ok: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            latency: Mutex::new(Histogram::default()),
            first_error: Mutex::new(None),
        }
    }

    fn error(&self, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
        first.get_or_insert(what);
    }

    /// Adds the run's first error, if any, to `report` (as `first_error`).
    pub(crate) fn report_first_error(&self, report: &mut Report) {
        if let Some(e) = self
            .first_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            report.add("first_error", e);
        }
    }

    /// Claims the right to send one more request: false once the time or the count is spent.
    fn next(&self) -> bool {
        Instant::now() < self.deadline
            && self.started.fetch_add(1, Ordering::Relaxed) < self.max_requests
    }
}

pub(crate) async fn run(args: RequestsArgs, json: bool) -> Result<()> {
    let proto = if args.h2 { Proto::H2 } else { Proto::H1 };
    let streams = if proto == Proto::H2 { args.streams } else { 1 };
    let started_at = Instant::now();
    let run = Arc::new(Run::new(
        Target::new(&args.target, proto)?,
        proto,
        args.path.clone(),
        started_at + Duration::from_secs(args.duration),
        args.max_requests,
    ));
    let mut connections = JoinSet::new();
    for _ in 0..args.connections {
        connections.spawn(connection(run.clone(), streams));
    }
    while connections.join_next().await.is_some() {}
    let elapsed = started_at.elapsed().as_secs_f64();

    let ok = run.ok.load(Ordering::Relaxed);
    let latency = run
        .latency
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let mut report = Report::new(format!("requests {}", proto.name()));
    report
        .add("target", run.target.addr.to_string())
        .add("connections", args.connections)
        .add("streams", streams)
        .add("seconds", elapsed)
        .add("requests", ok)
        .add("errors", run.errors.load(Ordering::Relaxed))
        .add("requests_per_s", ok as f64 / elapsed)
        .latency(&latency);
    run.report_first_error(&mut report);
    report.print(json);
    Ok(())
}

/// One client connection, reopened after a failure until the run is over.
pub(crate) async fn connection(run: Arc<Run>, streams: u32) {
    // Bounded by the deadline; a failing target costs one attempt per 50 ms at most.
    while Instant::now() < run.deadline {
        let sender = match Sender::open(&run.target, run.proto).await {
            Ok(s) => s,
            Err(e) => {
                run.error(format!("{e:#}"));
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let mut tasks = JoinSet::new();
        for _ in 1..streams {
            if let Some(s) = sender.stream() {
                tasks.spawn(stream(run.clone(), s));
            }
        }
        tasks.spawn(stream(run.clone(), sender));
        while tasks.join_next().await.is_some() {}
    }
}

/// Requests one after the other on one stream slot until the run is over or the connection fails.
async fn stream(run: Arc<Run>, mut sender: Sender) {
    while run.next() {
        let t = Instant::now();
        let answer = tokio::time::timeout(
            run.target.timeout,
            sender.request(&run.target.sni, Method::GET, &run.path, LoadBody::empty()),
        )
        .await;
        let micros = t.elapsed().as_micros() as u64;
        match answer {
            Ok(Ok(a)) if a.status.is_success() => {
                run.ok.fetch_add(1, Ordering::Relaxed);
                run.latency
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .record(micros);
            }
            Ok(Ok(a)) => run.error(format!("status {}", a.status)),
            Ok(Err(e)) => {
                run.error(format!("{e:#}"));
                return;
            }
            Err(_) => {
                run.error(format!("no answer within {:?}", run.target.timeout));
                return;
            }
        }
    }
}
