//! `hosts`: a proxy with N hosts sharing one wildcard certificate: time from spawn until
//! the last host's handshake succeeds, RSS and PSS after start (of the process tree:
//! nginx's workers share pages with their master, which RSS counts once per process and
//! PSS once in all), and the full-handshake rate for the first host against the last (a
//! lookup that grows with N shows up there).
//!
//! The command writes the certificates and the configuration, starts the proxy itself
//! (certfront or nginx), and stops it at the end (SIGTERM, then SIGKILL after 5 s).

mod config;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::handshakes;
use crate::mint::{Authority, KeyKind, write_key};
use crate::procfs;
use crate::stats::Report;
use crate::target::{Proto, Target, TargetArgs, TlsVersion};

/// How often the last host is tried while the proxy starts.
const POLL: Duration = Duration::from_millis(10);

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("proxy").required(true).args(["certfront", "nginx"])))]
pub(crate) struct HostsArgs {
    /// The certfront binary to start.
    #[arg(long)]
    pub certfront: Option<PathBuf>,
    /// Or the nginx binary to start (same hosts as `server` blocks).
    #[arg(long)]
    pub nginx: Option<PathBuf>,
    /// Hosts in the configuration.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=200_000))]
    pub hosts: u32,
    /// Work directory for certificates, configuration and logs (created; default: a new
    /// directory under the system's temporary directory, removed at the end).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Keep the work directory.
    #[arg(long)]
    pub keep: bool,
    /// Seconds of handshakes against the first host, then the last.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub duration: u64,
    /// Key of the shared wildcard certificate.
    #[arg(long, value_enum, default_value = "p256")]
    pub key_type: KeyKind,
    /// Handshakes in flight at once during the rate runs.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub connections: u32,
    /// Give up when the last host does not answer within this many seconds of the spawn.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub max_seconds: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Certfront,
    Nginx,
}

/// The started proxy; stopped on drop, whatever happened.
struct Proxy {
    child: Child,
    /// When the "certfront ... ready" log line was read, after the spawn.
    ready_line: Arc<Mutex<Option<Duration>>>,
    log: Arc<Mutex<String>>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // SIGTERM lets nginx's master take its workers down; a bounded wait, then SIGKILL.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) async fn run(args: HostsArgs, json: bool) -> Result<()> {
    let (kind, bin) = match (&args.certfront, &args.nginx) {
        (Some(b), _) => (Kind::Certfront, b.clone()),
        (None, Some(b)) => (Kind::Nginx, b.clone()),
        (None, None) => bail!("give --certfront PATH or --nginx PATH"),
    };
    // The proxy runs in the work directory: a relative path must not change meaning.
    let bin = if bin.components().count() > 1 {
        std::fs::canonicalize(&bin).with_context(|| format!("{}: no such binary", bin.display()))?
    } else {
        bin
    };
    let (dir, remove) = match &args.dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("certfront-loadtest-hosts-{}", std::process::id())),
            !args.keep,
        ),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let result = measure(&args, kind, &bin, &dir).await;
    if remove {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result?.print(json);
    Ok(())
}

async fn measure(args: &HostsArgs, kind: Kind, bin: &Path, dir: &Path) -> Result<Report> {
    let n = args.hosts;
    let dir = std::fs::canonicalize(dir)?;
    let ca = Authority::generate("certfront-loadtest hosts root")?;
    let leaf = ca.leaf(&[format!("*.{}", config::DOMAIN)], args.key_type)?;
    let (ca_path, cert, key) = (
        dir.join("ca.pem"),
        dir.join("wildcard.pem"),
        dir.join("wildcard-key.pem"),
    );
    std::fs::write(&ca_path, &ca.pem)?;
    std::fs::write(&cert, &leaf.cert_pem)?;
    write_key(&key, &leaf.key_pem)?;
    let paths = config::Paths {
        ca: &ca_path,
        cert: &cert,
        key: &key,
        work: &dir,
    };
    let port = free_port()?;
    let (config_path, text) = match kind {
        Kind::Certfront => (
            dir.join("certfront.toml"),
            config::certfront(n, port, &paths),
        ),
        Kind::Nginx => (dir.join("nginx.conf"), config::nginx(n, port, &paths)),
    };
    std::fs::write(&config_path, &text)?;

    let target = |i: u32| {
        Target::new(
            &TargetArgs {
                addr: ([127, 0, 0, 1], port).into(),
                sni: config::host_name(i, n),
                ca: ca_path.clone(),
                tls: TlsVersion::V13,
                timeout: 10,
                client_cert: None,
                client_key: None,
            },
            Proto::H1,
        )
    };
    let (first, last) = (target(1)?, target(n)?);

    let spawned = Instant::now();
    let mut proxy = spawn(kind, bin, &config_path, &dir)?;
    let pid = proxy.child.id();
    let deadline = spawned + Duration::from_secs(args.max_seconds);
    // Bounded by --max-seconds: one handshake attempt per poll interval.
    let started = loop {
        if let Some(status) = proxy.child.try_wait()? {
            bail!(
                "{} exited ({status}) before serving; its log:\n{}",
                bin.display(),
                tail(&proxy.log.lock().unwrap_or_else(|e| e.into_inner()))
            );
        }
        if let Ok(mut tls) = last.connect().await {
            use tokio::io::AsyncWriteExt;
            let _ = tls.shutdown().await;
            break spawned.elapsed();
        }
        if Instant::now() >= deadline {
            bail!(
                "{} hosts: no handshake for {} within {} s of the spawn; the log:\n{}",
                n,
                last.sni,
                args.max_seconds,
                tail(&proxy.log.lock().unwrap_or_else(|e| e.into_inner()))
            );
        }
        tokio::time::sleep(POLL).await;
    };
    let pids = procfs::tree(pid)?;
    let (rss_started, pss_started) = (procfs::rss_kb(&pids), procfs::pss_kb(&pids));
    let duration = Duration::from_secs(args.duration);
    let hs_first = handshakes::measure(first, args.connections, duration, u64::MAX, false).await;
    let hs_last = handshakes::measure(last, args.connections, duration, u64::MAX, false).await;
    let rss_after = procfs::rss_kb(&procfs::tree(pid)?);
    let ready_line = *proxy.ready_line.lock().unwrap_or_else(|e| e.into_inner());
    drop(proxy);

    let mut report = Report::new("hosts");
    report
        .add(
            "proxy",
            match kind {
                Kind::Certfront => "certfront",
                Kind::Nginx => "nginx",
            },
        )
        .add("hosts", n)
        .add("config_bytes", text.len())
        .add("start_ms", started.as_secs_f64() * 1000.0);
    if let Some(t) = ready_line {
        report.add("ready_log_ms", t.as_secs_f64() * 1000.0);
    }
    report
        .add("rss_kb", rss_started)
        .add("pss_kb", pss_started)
        .add("rss_after_handshakes_kb", rss_after)
        .add(
            "first_host_handshakes_per_s",
            hs_first.ok as f64 / hs_first.seconds,
        )
        .add(
            "last_host_handshakes_per_s",
            hs_last.ok as f64 / hs_last.seconds,
        )
        .add("errors", hs_first.errors + hs_last.errors);
    if let Some(e) = hs_first.first_error.or(hs_last.first_error) {
        report.add("first_error", e);
    }
    Ok(report)
}

/// A loopback port nobody listens on now (bound, then released; the proxy binds it next).
fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("bind 127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

fn spawn(kind: Kind, bin: &Path, config: &Path, dir: &Path) -> Result<Proxy> {
    let mut cmd = Command::new(bin);
    match kind {
        Kind::Certfront => {
            cmd.arg("run").arg("-c").arg(config).env("RUST_LOG", "info");
        }
        Kind::Nginx => {
            cmd.arg("-c")
                .arg(config)
                .arg("-p")
                .arg(dir)
                .arg("-e")
                .arg(dir.join("nginx-error.log"));
        }
    }
    let spawned = Instant::now();
    let mut child = cmd
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("start {}", bin.display()))?;
    let ready_line = Arc::new(Mutex::new(None));
    let log = Arc::new(Mutex::new(String::new()));
    if let Some(stderr) = child.stderr.take() {
        let (ready, log) = (ready_line.clone(), log.clone());
        // Ends when the proxy closes stderr (it exits); keeps the log for error messages.
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("certfront") && line.contains(" ready") {
                    ready
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get_or_insert(spawned.elapsed());
                }
                let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
                if log.len() < 1 << 20 {
                    log.push_str(&line);
                    log.push('\n');
                }
            }
        });
    }
    Ok(Proxy {
        child,
        ready_line,
        log,
    })
}

/// The last lines of a log, for an error message.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
