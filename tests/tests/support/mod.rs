//! The end-to-end harness: certificates (pki), backends, clients, and certfront itself,
//! started in-process on `127.0.0.1:0` or as the real binary.

#![allow(dead_code)]

pub(crate) mod backend;
pub(crate) mod client;
pub(crate) mod h2raw;
pub(crate) mod pebble;
pub(crate) mod pki;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use certfront::Running;

/// Parses, validates and checks `toml` (paths relative to `dir`), then starts certfront.
pub(crate) async fn start(toml: &str, dir: &Path) -> Running {
    let config = certfront_config::parse(toml, dir).unwrap_or_else(|e| panic!("config: {e}"));
    let prepared = certfront::prepare(config)
        .unwrap_or_else(|errors| panic!("certificates refused:\n{errors}"));
    certfront::start(prepared, std::sync::Arc::new(certfront::Metrics::new()))
        .await
        .expect("start")
}

/// Like [`start`], from a config file on disk (what a configuration reload re-reads).
pub(crate) async fn start_file(path: &Path) -> Running {
    let config = certfront_config::load(path).unwrap_or_else(|e| panic!("config: {e}"));
    let prepared = certfront::prepare(config)
        .unwrap_or_else(|errors| panic!("certificates refused:\n{errors}"));
    certfront::start(prepared, std::sync::Arc::new(certfront::Metrics::new()))
        .await
        .expect("start")
}

/// Replaces `path` the way careful tools do (write aside, then rename over it).
pub(crate) fn replace_file(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp-write");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

/// The certfront binary built for these tests.
pub(crate) fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_certfront-under-test")
}

/// Runs the binary to completion with `args`; returns exit code, stdout, stderr.
pub(crate) fn run_cli(args: &[&str], dir: &Path) -> (i32, String, String) {
    let out = Command::new(bin())
        .args(args)
        .current_dir(dir)
        .env_remove("CERTFRONT_CONFIG")
        .env("RUST_LOG", "info")
        .output()
        .expect("run certfront");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A certfront process serving `config`, and the TLS address it reported.
pub(crate) struct Process {
    pub child: Child,
    pub addr: SocketAddr,
    pub admin: Option<SocketAddr>,
    pub log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Process {
    /// Starts `certfront run -c config` and waits (at most 20 s) until it reports being ready.
    pub(crate) fn spawn(config: &Path, dir: &Path) -> Process {
        use std::io::BufRead;
        let mut child = Command::new(bin())
            .args(["run", "-c"])
            .arg(config)
            .current_dir(dir)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn certfront");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push_str(&line);
                sink.lock().unwrap().push('\n');
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let (mut addr, mut admin) = (None, None);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = rx.recv_timeout(left) else {
                panic!("certfront did not become ready:\n{}", log.lock().unwrap())
            };
            if let Some(a) = after(&line, "listening for TLS on ") {
                addr.get_or_insert(a);
            }
            if let Some(a) = after(
                &line,
                "admin listener (/healthz /readyz /metrics /certs) on ",
            ) {
                admin = Some(a);
            }
            if line.contains("ready") && line.contains("certfront") && addr.is_some() {
                break;
            }
        }
        Process {
            child,
            addr: addr.expect("address"),
            admin,
            log,
        }
    }

    /// Sends a signal by name (`TERM`, `HUP`) with kill(1).
    pub(crate) fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits (at most `limit`) for the process to exit; returns its exit code.
    pub(crate) fn wait(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn after(line: &str, marker: &str) -> Option<SocketAddr> {
    let rest = &line[line.find(marker)? + marker.len()..];
    rest.split_whitespace()
        .next()?
        .trim_end_matches(',')
        .parse()
        .ok()
}

/// Polls `cond` every 20 ms until it holds or `limit` passes.
pub(crate) async fn eventually<F: FnMut() -> bool>(limit: Duration, mut cond: F) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A port on which nothing listens: bound, then released.
pub(crate) fn refused_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// certfront serving one host, `app.test`, that forwards to a fresh test backend: the
/// set-up most request-path tests start from. Dropped in field order: certfront, then
/// its backend, then the files.
pub(crate) struct OneHost {
    pub running: Running,
    pub backend: backend::Backend,
    pub ca: pki::TestCa,
    pub dir: tempfile::TempDir,
}

impl OneHost {
    /// `root` names the test CA; `limits` is the `[limits]` table's body ("" for the
    /// defaults).
    pub(crate) async fn start(root: &str, limits: &str) -> OneHost {
        let dir = tempfile::tempdir().expect("tempdir");
        let backend = backend::Backend::start("iis").await;
        let (ca, toml) = Self::files(dir.path(), root, &backend.url(), limits);
        let running = start(&toml, dir.path()).await;
        OneHost {
            running,
            backend,
            ca,
            dir,
        }
    }

    /// Writes the CA (`root.pem`) and `app.test`'s leaf into `dir`; returns the CA and
    /// the configuration (for a test that runs the real binary on it).
    pub(crate) fn files(
        dir: &Path,
        root: &str,
        upstream: &str,
        limits: &str,
    ) -> (pki::TestCa, String) {
        let ca = pki::TestCa::new(root);
        std::fs::write(dir.join("root.pem"), &ca.pem).expect("root");
        ca.leaf(&["app.test"]).write(dir, "app");
        let toml = format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\n[tls]\ntrust = [\"root.pem\"]\n[limits]\n{limits}\n\
             [[host]]\nfqdn = \"app.test\"\ncert = \"app.pem\"\nkey = \"app-key.pem\"\nupstream = \"{upstream}\"\n"
        );
        (ca, toml)
    }
}
