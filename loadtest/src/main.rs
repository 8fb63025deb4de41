//! certfront-loadtest: measures a TLS proxy on loopback (handshakes, requests, throughput, idle memory).
//!
//! The same commands run against certfront, nginx or HAProxy; `loadtest/compare.sh`
//! drives them side by side. Timings are for benchmarks, never for test assertions.
#![forbid(unsafe_code)]

mod backend;
mod client;
mod handshakes;
mod idle;
mod procfs;
mod requests;
mod stats;
mod target;
mod throughput;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    /// Full TLS handshakes per second, resumption off; reports the server's key type.
    Handshakes(handshakes::HandshakesArgs),
    /// MB/s of one large body, downloaded or uploaded.
    Throughput(throughput::ThroughputArgs),
    /// Memory per idle TLS connection of a target process (RSS before and after).
    Idle(idle::IdleArgs),
    /// A fast HTTP/1.1 backend for the benchmarks; prints its address.
    Backend(backend::BackendArgs),
    /// CPU time (µs) and RSS (KiB) of a process and its descendants.
    Proc(procfs::ProcArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
            Command::Handshakes(a) => handshakes::run(a, json).await,
            Command::Throughput(a) => throughput::run(a, json).await,
            Command::Idle(a) => idle::run(a, json).await,
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
