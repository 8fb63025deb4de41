//! `rotate`: rotation torture. N certificate rotations of one host, cycling the ways files
//! get replaced, while keep-alive requests and new handshakes run; reports failed requests
//! (must be 0) and the delay from the end of the write to the first new handshake that is
//! served the new certificate.
//!
//! The delay is honest: the clock starts when both files hold the new content and stops
//! when a *new* full handshake (client resumption off) presents exactly the leaf just
//! written. certfront waits for the files to be quiet (debounce, 200 ms) before it reads
//! them, so about 200 ms is the floor, plus the reload and one poll interval (10 ms).

mod files;
mod load;

use std::ffi::OsString;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser};

pub use files::Mode;

use crate::mint::{Authority, KeyKind};
use crate::stats::{Histogram, Report};
use crate::target::{Proto, Target, TargetArgs};

/// How often a new handshake checks whether the new certificate is served yet.
const POLL: Duration = Duration::from_millis(10);

#[derive(Args, Debug, Clone)]
pub struct RotateArgs {
    /// The host being rotated: `--sni` is its name, `--ca` the root that signs its
    /// certificates (and that certfront trusts in `[tls] trust`).
    #[command(flatten)]
    pub target: TargetArgs,
    /// The private key of `--ca` (PEM): every rotation is a new leaf signed with it.
    #[arg(long)]
    pub ca_key: PathBuf,
    /// The certificate file the host is configured with (`cert =`); it is replaced.
    #[arg(long)]
    pub cert: PathBuf,
    /// The key file the host is configured with (`key =`); it is replaced.
    #[arg(long)]
    pub key: PathBuf,
    /// Rotations to do.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub rotations: u32,
    /// Ways of replacing the files, cycled in the order rename, in-place, k8s.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "rename,in-place,k8s"
    )]
    pub modes: Vec<Mode>,
    /// Key of the new leaves.
    #[arg(long, value_enum, default_value = "p256")]
    pub key_type: KeyKind,
    /// Keep-alive connections during the run (even ones HTTP/1.1, odd ones HTTP/2).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(0..=1_000))]
    pub connections: u32,
    /// Loops of new handshakes (each with one request) during the run.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(0..=1_000))]
    pub handshakers: u32,
    /// A rotation not served within this many seconds counts as never served.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub serve_timeout: u64,
    /// Also write one CSV line per rotation here (rotation, mode, serial, write time,
    /// delay until served): the served certificate over time.
    #[arg(long)]
    pub timeline: Option<PathBuf>,
    /// The run stops after this many seconds, done or not (an unfinished run fails).
    #[arg(long, default_value_t = 1_800, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub max_seconds: u64,
}

impl RotateArgs {
    /// The arguments of `certfront-loadtest rotate ARGS...` (no program name).
    pub fn parse_from<I, T>(args: I) -> Result<RotateArgs, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        #[derive(Parser)]
        struct One {
            #[command(flatten)]
            args: RotateArgs,
        }
        let argv =
            std::iter::once(OsString::from("rotate")).chain(args.into_iter().map(Into::into));
        One::try_parse_from(argv).map(|o| o.args)
    }
}

/// What a rotation run did.
#[derive(Debug, Clone)]
pub struct Summary {
    pub requested: u32,
    /// Rotations written and served.
    pub rotations: u32,
    /// Rotations per mode, in the order rename, in-place, k8s.
    pub by_mode: [u32; 3],
    /// Rotations written but not served within `--serve-timeout`.
    pub never_served: u32,
    pub requests_ok: u64,
    pub failed_requests: u64,
    pub handshakes_ok: u64,
    pub failed_handshakes: u64,
    /// Write-to-served delay, milliseconds.
    pub delay_p50_ms: f64,
    pub delay_p99_ms: f64,
    pub delay_max_ms: f64,
    pub seconds: f64,
    pub first_error: Option<String>,
}

impl Summary {
    /// Every rotation served, no request and no handshake failed.
    pub fn passed(&self) -> bool {
        self.rotations == self.requested
            && self.never_served == 0
            && self.failed_requests == 0
            && self.failed_handshakes == 0
    }

    fn report(&self, target: &TargetArgs) -> Report {
        let mut r = Report::new("rotate");
        r.add("target", target.addr.to_string())
            .add("sni", target.sni.clone())
            .add("rotations_requested", self.requested)
            .add("rotations", self.rotations)
            .add("rename", self.by_mode[0])
            .add("in_place", self.by_mode[1])
            .add("k8s", self.by_mode[2])
            .add("never_served", self.never_served)
            .add("requests", self.requests_ok)
            .add("failed_requests", self.failed_requests)
            .add("handshakes", self.handshakes_ok)
            .add("failed_handshakes", self.failed_handshakes)
            .add("delay_p50_ms", self.delay_p50_ms)
            .add("delay_p99_ms", self.delay_p99_ms)
            .add("delay_max_ms", self.delay_max_ms)
            .add("seconds", self.seconds);
        if let Some(e) = &self.first_error {
            r.add("first_error", e.clone());
        }
        r
    }
}

pub(crate) async fn run(args: RotateArgs, json: bool) -> Result<()> {
    let summary = torture(&args).await?;
    summary.report(&args.target).print(json);
    if !summary.passed() {
        bail!(
            "rotation torture failed: {} of {} rotations served ({} never within {} s), {} failed requests, {} failed handshakes{}",
            summary.rotations,
            summary.requested,
            summary.never_served,
            args.serve_timeout,
            summary.failed_requests,
            summary.failed_handshakes,
            summary
                .first_error
                .as_deref()
                .map(|e| format!("; first error: {e}"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

/// The serial number of a certificate, hex bytes separated by colons.
fn serial(der: &[u8]) -> String {
    x509_parser::parse_x509_certificate(der)
        .map(|(_, x)| x.raw_serial_as_string())
        .unwrap_or_default()
}

/// Runs the torture and returns what happened (an `Err` only when it cannot start or a
/// file cannot be written).
pub async fn torture(args: &RotateArgs) -> Result<Summary> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.max_seconds);
    let mut modes = args.modes.clone();
    modes.sort();
    modes.dedup();
    if modes.is_empty() {
        bail!("--modes: none given; expected some of rename,in-place,k8s");
    }
    let ca = Authority::load(&args.target.ca, &args.ca_key)?;
    let mut files = files::Files::new(&args.cert, &args.key, &modes)?;
    let h1 = Target::new(&args.target, Proto::H1)?;
    let h2 = Target::new(&args.target, Proto::H2)?;
    let names = vec![args.target.sni.clone()];
    let serve_timeout = Duration::from_secs(args.serve_timeout);

    let tally = Arc::new(load::Tally::default());
    // Is the host there at all? A wrong address or SNI is an error to report, not a
    // thousand never-served rotations.
    if load::served_leaf(&h1, &tally).await.is_none() {
        bail!(
            "no handshake with {} for {}: {}",
            args.target.addr,
            args.target.sni,
            tally.first_error().unwrap_or_default()
        );
    }
    let mut traffic = load::start(
        &h1,
        &h2,
        args.connections,
        args.handshakers,
        deadline,
        &tally,
    );

    let mut timeline = match &args.timeline {
        Some(p) => {
            let mut f = std::fs::File::create(p)
                .with_context(|| format!("--timeline {}: cannot create", p.display()))?;
            writeln!(f, "rotation,mode,serial,written_unix_ms,served_after_ms")?;
            Some(f)
        }
        None => None,
    };
    let mut delays = Histogram::default();
    let mut by_mode = [0u32; 3];
    let (mut rotations, mut never_served) = (0u32, 0u32);
    for i in 0..args.rotations {
        if Instant::now() >= deadline {
            break;
        }
        let mode = modes[i as usize % modes.len()];
        let leaf = ca.leaf(&names, args.key_type).context("mint a new leaf")?;
        files
            .write(mode, &leaf)
            .with_context(|| format!("rotation {} ({})", i + 1, mode.name()))?;
        let written = Instant::now();
        let written_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let limit = written + serve_timeout;
        let mut served_after = None;
        // Bounded by the serve timeout: one new handshake per poll interval.
        while Instant::now() < limit {
            if load::served_leaf(&h1, &tally).await.as_deref() == Some(leaf.der.as_slice()) {
                let delay = written.elapsed();
                delays.record(delay.as_micros() as u64);
                served_after = Some(delay);
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        if let Some(f) = &mut timeline {
            let delay = served_after
                .map(|d| format!("{:.1}", d.as_secs_f64() * 1000.0))
                .unwrap_or_default();
            writeln!(
                f,
                "{},{},{},{written_unix_ms},{delay}",
                i + 1,
                mode.name(),
                serial(&leaf.der)
            )?;
        }
        if served_after.is_some() {
            rotations += 1;
            by_mode[mode as usize] += 1;
        } else {
            never_served += 1;
            tally.note(format!(
                "rotation {} ({}) not served within {serve_timeout:?}",
                i + 1,
                mode.name()
            ));
        }
    }

    tally.stop();
    // Each task ends after its request in flight (bounded by the request timeout).
    let drain = tokio::time::timeout(h1.timeout + Duration::from_secs(1), async {
        while traffic.join_next().await.is_some() {}
    })
    .await;
    if drain.is_err() {
        traffic.abort_all();
    }
    let ms = |q: f64| delays.percentile(q) as f64 / 1000.0;
    Ok(Summary {
        requested: args.rotations,
        rotations,
        by_mode,
        never_served,
        requests_ok: tally.requests_ok.load(Ordering::Relaxed),
        failed_requests: tally.requests_failed.load(Ordering::Relaxed),
        handshakes_ok: tally.handshakes_ok.load(Ordering::Relaxed),
        failed_handshakes: tally.handshakes_failed.load(Ordering::Relaxed),
        delay_p50_ms: ms(0.50),
        delay_p99_ms: ms(0.99),
        delay_max_ms: ms(1.0),
        seconds: started.elapsed().as_secs_f64(),
        first_error: tally.first_error(),
    })
}
