//! `certfront run`: load and check everything before binding, serve, drain on SIGTERM.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info, warn};

use super::print_config_error;
use crate::prepare::prepare;
use crate::server::start;

/// Exit code when the config or a certificate violates: nothing was bound.
const REFUSED: u8 = 2;

pub(crate) fn run(path: &Path) -> ExitCode {
    let config = match certfront_config::load(path) {
        Ok(config) => config,
        Err(e) => {
            print_config_error(&e);
            eprintln!("certfront refuses to start: fix the configuration above");
            return ExitCode::from(REFUSED);
        }
    };
    for w in &config.warnings {
        warn!("{}: {w}", config.source.display());
    }
    // CRL URLs are downloaded before anything is served, so their hosts enforce them
    // from the first handshake.
    let mut config = config;
    match crate::crlfetch::prime(&mut config, crate::crlfetch::When::Start) {
        Ok(warnings) => {
            for w in warnings {
                warn!("{w}");
            }
        }
        Err(problems) => {
            for problem in &problems {
                eprintln!("error: {problem}");
            }
            eprintln!(
                "certfront refuses to start: a CRL URL has neither a download nor a cached copy"
            );
            return ExitCode::from(REFUSED);
        }
    }
    let prepared = match prepare(config) {
        Ok(p) => p,
        Err(refused) => {
            for problem in &refused.0 {
                eprintln!("error: {problem}");
            }
            eprintln!(
                "certfront refuses to start: {} problem(s); `certfront check` shows the inventory",
                refused.0.len()
            );
            return ExitCode::from(REFUSED);
        }
    };
    for w in &prepared.warnings {
        warn!("{w}");
    }
    // The control plane: listeners and admission, admin, reloads, ACME, signals. The
    // connections are served by the workers (one thread per core, see `workers`).
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("certfront-ctl")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            error!("cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(serve(prepared));
    // Connections still open after the drain are closed now, not waited for.
    runtime.shutdown_timeout(Duration::from_millis(100));
    code
}

async fn serve(prepared: crate::prepare::Prepared) -> ExitCode {
    let drain = Duration::from_secs(prepared.config.server.drain_seconds);
    for (host, prepared_host) in prepared.config.hosts.iter().zip(&prepared.hosts) {
        let Some(served) = &prepared_host.served else {
            info!(
                "{} waits for its first certificate from ACME; its handshakes fail until then",
                host.names().join(", ")
            );
            continue;
        };
        info!(
            "serving {} (expires {}, {} days left, thumbprint {})",
            host.names().join(", "),
            crate::clock::fmt_time(served.info.not_after),
            served.info.days_left(std::time::SystemTime::now()),
            served.info.sha1_thumbprint
        );
    }
    if let Some(ca) = &prepared.ca {
        let root = std::fs::canonicalize(ca.root_path()).unwrap_or_else(|_| ca.root_path());
        info!(
            "internal CA root: {} (clients trust it with e.g. curl --cacert {})",
            root.display(),
            root.display()
        );
    }
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(i)) => (t, i),
        (Err(e), _) | (_, Err(e)) => {
            error!("cannot install signal handlers: {e}");
            return ExitCode::from(1);
        }
    };
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(h) => h,
        Err(e) => {
            error!("cannot install the SIGHUP handler: {e}");
            return ExitCode::from(1);
        }
    };
    let mut usr1 = match signal(SignalKind::user_defined1()) {
        Ok(u) => u,
        Err(e) => {
            error!("cannot install the SIGUSR1 handler: {e}");
            return ExitCode::from(1);
        }
    };
    let metrics = std::sync::Arc::new(crate::metrics::Metrics::new());
    let running = match start(prepared, metrics).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            eprintln!("certfront refuses to start: nothing is served");
            return ExitCode::from(REFUSED);
        }
    };
    // The PID, so that `kill -HUP <pid>` can be read off the log (no pkill guessing).
    let pid = std::process::id();
    info!("certfront {} ready, pid {pid}", env!("CARGO_PKG_VERSION"));
    loop {
        tokio::select! {
            _ = hup.recv() => {
                info!("SIGHUP: re-reading every certificate");
                running.reload_all();
            }
            _ = usr1.recv() => {
                info!("SIGUSR1: reopening the access log");
                running.reopen_logs();
            }
            _ = term.recv() => {
                info!("SIGTERM: draining for up to {}s", drain.as_secs());
                break;
            }
            _ = int.recv() => {
                info!("SIGINT: draining for up to {}s", drain.as_secs());
                break;
            }
        }
    }
    if running.drain(drain).await {
        info!("drained; bye");
    } else {
        warn!("drain time is up; closing the remaining connections");
    }
    ExitCode::SUCCESS
}
