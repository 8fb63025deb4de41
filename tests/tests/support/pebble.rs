//! A real ACME server for the tests: Debian's `pebble` on loopback, with a DNS
//! (`pebble-challtestsrv`) that answers 127.0.0.1 for every name, an HTTPS certificate
//! made here, and its validation ports pointed at ports certfront will listen on.
//! Both processes are killed when the value is dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use super::client;
use super::pki::TestCa;

/// What a test wants from its pebble.
#[derive(Default)]
pub(crate) struct Options {
    /// Names pebble refuses to order (`domainBlocklist`).
    pub blocklist: Vec<String>,
    /// Lifetime of issued certificates in seconds (pebble's default is years).
    pub validity_seconds: Option<u64>,
}

pub(crate) struct Pebble {
    pebble: Child,
    dns: Child,
    /// `https://127.0.0.1:PORT/dir`
    pub directory: String,
    /// The CA of pebble's own HTTPS certificate (for `acme.ca`).
    pub https_ca: PathBuf,
    https_ca_der: CertificateDer<'static>,
    management: SocketAddr,
    /// Where pebble connects to validate tls-alpn-01 (certfront's TLS listener must be here).
    pub tls_port: u16,
    /// Where pebble connects to validate http-01 (certfront's redirect listener).
    pub http_port: u16,
}

static INSTALL: Once = Once::new();

/// `pebble` and `pebble-challtestsrv`, installed by `.ci/pebble.sh` when missing; the
/// test fails (never skips) when they cannot be had.
fn tool(name: &str) -> PathBuf {
    INSTALL.call_once(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.ci/pebble.sh");
        let _ = Command::new("bash").arg(script).status();
    });
    for dir in ["/usr/bin", "/usr/local/bin"] {
        let path = Path::new(dir).join(name);
        if path.exists() {
            return path;
        }
    }
    panic!("{name} not found: the ACME tests need Debian's pebble package (run .ci/pebble.sh)");
}

fn free_port() -> u16 {
    super::refused_port()
}

fn wait_for_port(port: u16, what: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited early: {status}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{what} did not listen on port {port} within 15 s");
}

impl Pebble {
    pub(crate) fn start(dir: &Path, options: Options) -> Pebble {
        let pebble_bin = tool("pebble");
        let dns_bin = tool("pebble-challtestsrv");
        let https = TestCa::new("pebble HTTPS test CA");
        let leaf = https.leaf(&["127.0.0.1", "localhost"]);
        let (cert, key) = leaf.write(dir, "pebble-https");
        let https_ca = dir.join("pebble-https-ca.pem");
        std::fs::write(&https_ca, &https.pem).expect("write CA");

        let (listen, management, dns, dns_management) =
            (free_port(), free_port(), free_port(), free_port());
        let (tls_port, http_port) = (free_port(), free_port());
        let config = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{listen}"),
                "managementListenAddress": format!("127.0.0.1:{management}"),
                "certificate": cert,
                "privateKey": key,
                "httpPort": http_port,
                "tlsPort": tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false,
                "domainBlocklist": options.blocklist,
                "certificateValidityPeriod": options.validity_seconds.unwrap_or(90 * 86_400),
            }
        });
        let config_path = dir.join("pebble-config.json");
        std::fs::write(&config_path, config.to_string()).expect("write pebble config");

        let mut dns_child = Command::new(dns_bin)
            .args(["-dns01", &format!("127.0.0.1:{dns}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{dns_management}")])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn pebble-challtestsrv");
        wait_for_port(dns, "pebble-challtestsrv", &mut dns_child);
        let log = std::fs::File::create(dir.join("pebble.log")).expect("pebble log");
        let mut pebble = Command::new(pebble_bin)
            .arg("-config")
            .arg(&config_path)
            .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_VA_ALWAYS_VALID", "0")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn pebble");
        wait_for_port(listen, "pebble", &mut pebble);
        wait_for_port(management, "pebble management", &mut pebble);
        Pebble {
            pebble,
            dns: dns_child,
            directory: format!("https://127.0.0.1:{listen}/dir"),
            https_ca,
            https_ca_der: https.der.clone(),
            management: SocketAddr::from(([127, 0, 0, 1], management)),
            tls_port,
            http_port,
        }
    }

    /// The root pebble signs with (made anew at each start), from its management API.
    pub(crate) async fn root(&self) -> CertificateDer<'static> {
        let config = client::client_config(&[&self.https_ca_der], &[b"http/1.1"]);
        let (status, body) = client::fetch(
            self.management,
            "localhost",
            config,
            client::get("localhost", "/roots/0", false),
        )
        .await;
        assert_eq!(status, http::StatusCode::OK, "pebble /roots/0");
        CertificateDer::from_pem_slice(&body).expect("pebble root PEM")
    }

    /// pebble's log so far, for failure messages.
    pub(crate) fn log(dir: &Path) -> String {
        std::fs::read_to_string(dir.join("pebble.log")).unwrap_or_default()
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in [&mut self.pebble, &mut self.dns] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Writes `der` as a PEM file (a trust anchor for `tls.trust`).
pub(crate) fn write_pem(path: &Path, der: &CertificateDer<'_>) {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(chunk).expect("base64"));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    std::fs::write(path, pem).expect("write PEM");
}
