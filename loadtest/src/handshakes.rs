//! `handshakes`: full TLS handshakes per second (client resumption off), optionally with one request each.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;
use http::Method;
use tokio::io::AsyncWriteExt;
use tokio::task::JoinSet;

use crate::client::{LoadBody, Sender};
use crate::stats::{Histogram, Report};
use crate::target::{Proto, Target, TargetArgs, key_type};

#[derive(Args, Debug)]
pub(crate) struct HandshakesArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Handshakes in flight at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub connections: u32,
    /// Length of the run, seconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub duration: u64,
    /// Stop after this many handshakes even if the duration is not over.
    #[arg(long, default_value_t = 10_000_000)]
    pub max_handshakes: u64,
    /// After each handshake, send one HTTP/1.1 `GET /` and read the answer (as `oha` does).
    #[arg(long)]
    pub request: bool,
}

struct Run {
    target: Target,
    deadline: Instant,
    max: u64,
    request: bool,
    started: AtomicU64,
    ok: AtomicU64,
    errors: AtomicU64,
    latency: Mutex<Histogram>,
    first_error: Mutex<Option<String>>,
    /// Key type, TLS version and cipher suite of the first successful handshake.
    seen: Mutex<Option<(String, String, String)>>,
}

impl Run {
    fn error(&self, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
        first.get_or_insert(what);
    }
}

/// What a handshake run measured.
pub(crate) struct Measured {
    pub ok: u64,
    pub errors: u64,
    pub seconds: f64,
    pub latency: Histogram,
    pub first_error: Option<String>,
    /// Key type, TLS version and cipher suite of the first successful handshake.
    pub seen: (String, String, String),
}

/// `connections` loops of full handshakes against `target` for `duration` (at most `max`).
pub(crate) async fn measure(
    target: Target,
    connections: u32,
    duration: Duration,
    max: u64,
    request: bool,
) -> Measured {
    let started_at = Instant::now();
    let run = Arc::new(Run {
        target,
        deadline: started_at + duration,
        max,
        request,
        started: AtomicU64::new(0),
        ok: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        latency: Mutex::new(Histogram::default()),
        first_error: Mutex::new(None),
        seen: Mutex::new(None),
    });
    let mut workers = JoinSet::new();
    for _ in 0..connections {
        workers.spawn(worker(run.clone()));
    }
    while workers.join_next().await.is_some() {}
    let seconds = started_at.elapsed().as_secs_f64();
    Measured {
        ok: run.ok.load(Ordering::Relaxed),
        errors: run.errors.load(Ordering::Relaxed),
        seconds,
        latency: run
            .latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone(),
        first_error: run
            .first_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take(),
        seen: run
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_default(),
    }
}

pub(crate) async fn run(args: HandshakesArgs, json: bool) -> Result<()> {
    let target = Target::new(&args.target, Proto::H1)?;
    let addr = target.addr;
    let m = measure(
        target,
        args.connections,
        Duration::from_secs(args.duration),
        args.max_handshakes,
        args.request,
    )
    .await;
    let (key, version, suite) = m.seen;
    let mut report = Report::new(if args.request {
        "handshakes + one request each"
    } else {
        "handshakes"
    });
    report
        .add("target", addr.to_string())
        .add("server_key", key)
        .add("tls_version", version)
        .add("cipher_suite", suite)
        .add("connections", args.connections)
        .add("seconds", m.seconds)
        .add("handshakes", m.ok)
        .add("errors", m.errors)
        .add("handshakes_per_s", m.ok as f64 / m.seconds)
        .latency(&m.latency);
    if let Some(e) = m.first_error {
        report.add("first_error", e);
    }
    report.print(json);
    Ok(())
}

async fn worker(run: Arc<Run>) {
    while Instant::now() < run.deadline && run.started.fetch_add(1, Ordering::Relaxed) < run.max {
        let t = Instant::now();
        match once(&run).await {
            Ok(()) => {
                run.ok.fetch_add(1, Ordering::Relaxed);
                let micros = t.elapsed().as_micros() as u64;
                run.latency
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .record(micros);
            }
            Err(e) => {
                run.error(format!("{e:#}"));
                // A refusing target is retried, but not in a hot loop.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

async fn once(run: &Run) -> Result<()> {
    let mut tls = run.target.connect().await?;
    {
        let mut seen = run.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.is_none() {
            let conn = tls.get_ref().1;
            let key = conn
                .peer_certificates()
                .and_then(|c| c.first())
                .map(key_type)
                .unwrap_or_else(|| "no certificate".into());
            let version = conn
                .protocol_version()
                .and_then(|v| v.as_str())
                .unwrap_or("?")
                .to_string();
            let suite = conn
                .negotiated_cipher_suite()
                .and_then(|s| s.suite().as_str())
                .unwrap_or("?")
                .to_string();
            *seen = Some((key, version, suite));
        }
    }
    if !run.request {
        // close_notify, so the server sees a clean close rather than a reset.
        let _ = tls.shutdown().await;
        return Ok(());
    }
    let mut sender = Sender::over(tls, Proto::H1).await?;
    let answer = tokio::time::timeout(
        run.target.timeout,
        sender.request(&run.target.sni, Method::GET, "/", LoadBody::empty()),
    )
    .await
    .map_err(|_| anyhow::anyhow!("no answer within {:?}", run.target.timeout))??;
    if !answer.status.is_success() {
        anyhow::bail!("status {}", answer.status);
    }
    Ok(())
}
