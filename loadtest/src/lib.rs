//! certfront-loadtest: measures a TLS proxy on loopback (handshakes, requests, throughput, idle memory, rotation, many hosts).
//!
//! The same commands run against certfront, nginx or HAProxy; `loadtest/compare.sh`
//! drives them side by side. Timings are for benchmarks, never for test assertions.
//! The library holds every command; `main.rs` only calls [`cli`]. The end-to-end tests
//! use [`rotate`] in-process.
#![forbid(unsafe_code)]

mod admin_abuse;
mod backend;
mod chart;
mod churn;
mod client;
mod h2raw;
mod handshakes;
mod hosts;
mod idle;
mod mint;
mod procfs;
mod requests;
mod reset;
mod rotate;
mod stalled;
mod stats;
mod target;
mod throughput;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use mint::KeyKind;
pub use rotate::{Mode, RotateArgs, Summary, torture};
pub use target::{TargetArgs, TlsVersion};

#[derive(Parser, Debug)]
#[command(name = "certfront-loadtest", version, about)]
struct Cli {
    /// Print one JSON object per result instead of a table.
    #[arg(long, global = true)]
    json: bool,
    /// Worker threads of the load generator (default: one per core).
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Keep-alive requests per second and latency p50/p99/p99.9.
    Requests(requests::RequestsArgs),
    /// Backend connections a proxy opens per 1,000 requests after warm-up (needs `backend`'s counters).
    Churn(churn::ChurnArgs),
    /// Full TLS handshakes per second, resumption off; reports the server's key type.
    Handshakes(handshakes::HandshakesArgs),
    /// MB/s of one large body, downloaded or uploaded.
    Throughput(throughput::ThroughputArgs),
    /// Memory per idle TLS connection of a target process (RSS before and after).
    Idle(idle::IdleArgs),
    /// A good client's latency alone, then while connections make the target reset streams (MadeYouReset).
    MadeYouReset(reset::ResetArgs),
    /// Memory per client that stops reading a large body, and whether the target closes it.
    Stalled(stalled::StalledArgs),
    /// /healthz and /readyz latency on the admin listener, alone and while others abuse it.
    AdminAbuse(admin_abuse::AdminAbuseArgs),
    /// Rotation torture: N certificate rotations under load; failed requests and write-to-served delay.
    Rotate(RotateArgs),
    /// Start-up time, RSS and first-vs-last host handshake rate of a proxy with N hosts.
    Hosts(hosts::HostsArgs),
    /// An SVG chart of requests/s, p99 and CPU per request from compare.sh's results.
    Chart(chart::ChartArgs),
    /// A fast HTTP/1.1 backend for the benchmarks; prints its address.
    Backend(backend::BackendArgs),
    /// CPU time (µs) and RSS (KiB) of a process and its descendants.
    Proc(procfs::ProcArgs),
}

/// Runs the command line `args` (the program name first), as the binary does.
pub fn cli<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = Cli::parse_from(args);
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(n) = cli.threads {
        rt.worker_threads(n.max(1));
    }
    let rt = match rt.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let json = cli.json;
    let result = rt.block_on(async move {
        match cli.command {
            Command::Requests(a) => requests::run(a, json).await,
            Command::Churn(a) => churn::run(a, json).await,
            Command::Handshakes(a) => handshakes::run(a, json).await,
            Command::Throughput(a) => throughput::run(a, json).await,
            Command::Idle(a) => idle::run(a, json).await,
            Command::Stalled(a) => stalled::run(a, json).await,
            Command::AdminAbuse(a) => admin_abuse::run(a, json).await,
            Command::MadeYouReset(a) => reset::run(a, json).await,
            Command::Rotate(a) => rotate::run(a, json).await,
            Command::Hosts(a) => hosts::run(a, json).await,
            Command::Chart(a) => chart::run(a),
            Command::Backend(a) => backend::run(a).await,
            Command::Proc(a) => procfs::run(a, json),
        }
    });
    // Held connections and spawned tasks are dropped now rather than drained.
    rt.shutdown_timeout(std::time::Duration::from_millis(100));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
