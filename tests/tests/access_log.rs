//! The access log as users' tools read it (GoAccess parses the W3C file certfront writes),
//! logrotate's SIGUSR1, and the request id that ties an error page, the upstream's request
//! and the log line together.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use http::{HeaderValue, StatusCode};

use crate::support::backend::Backend;
use crate::support::client::{body_bytes, body_json, get, open};
use crate::support::pki::TestCa;
use crate::support::{Process, eventually, refused_port, start};

/// The data lines (not `#` directives) of a log file; empty while it does not exist.
fn data_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

fn config(ca: &TestCa, dir: &Path, server: &str, upstream: &str) -> String {
    ca.leaf(&["app.test"]).write(dir, "app");
    std::fs::write(dir.join("root.pem"), &ca.pem).expect("root");
    format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n{server}\n[tls]\ntrust = [\"root.pem\"]\n\
         [[host]]\nfqdn = \"app.test\"\ncert = \"app.pem\"\nkey = \"app-key.pem\"\n\
         upstream = \"{upstream}\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goaccess_reads_the_w3c_access_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let ca = TestCa::new("w3c root");
    let backend = Backend::start("iis").await;
    let toml = config(
        &ca,
        d,
        "access_log = \"w3c\"\naccess_log_file = \"access.log\"",
        &backend.url(),
    );
    let running = start(&toml, d).await;
    let addr = running.tls_addrs[0];
    let log = d.join("access.log");

    // Over HTTP/1.1 and HTTP/2; a space in the path and in the User-Agent, a query, a
    // refused request (421) beside forwarded ones.
    let mut sent = 0;
    for (h2, alpn) in [(false, &[&b"http/1.1"[..]]), (true, &[&b"h2"[..]])] {
        let mut s = open(addr, "app.test", &ca.der, alpn).await;
        for path in ["/", "/a%20b/c?x=1&y=two", "/Default.aspx"] {
            let mut req = get("app.test", path, h2);
            req.headers_mut().insert(
                "user-agent",
                HeaderValue::from_static("Mozilla/5.0 (Windows NT 10.0; Win64; x64)"),
            );
            let resp = s.send(req).await.expect("response");
            assert_eq!(resp.status(), StatusCode::OK, "{path}");
            sent += 1;
        }
        let resp = s.send(get("other.test", "/", h2)).await.expect("response");
        assert_eq!(resp.status(), StatusCode::MISDIRECTED_REQUEST);
        sent += 1;
    }
    assert!(
        eventually(Duration::from_secs(10), || data_lines(&log).len() == sent).await,
        "{sent} lines expected in {}:\n{}",
        log.display(),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(text.starts_with("#Software: certfront "), "{text}");
    assert!(
        text.contains("\n#Fields: date time s-ip cs-method cs-uri-stem "),
        "{text}"
    );
    assert!(
        text.contains("Mozilla/5.0+(Windows+NT+10.0;+Win64;+x64)"),
        "{text}"
    );

    // GoAccess's own W3C parser, as an admin runs it: every line counted, none failed.
    let report = d.join("report.json");
    let out = Command::new("goaccess")
        .arg(&log)
        .args([
            "--log-format=W3C",
            "--date-format=%Y-%m-%d",
            "--time-format=%H:%M:%S",
            "--no-global-config",
            "-o",
        ])
        .arg(&report)
        .output()
        .expect("goaccess (Debian package goaccess; .ci/goaccess.sh installs it)");
    assert!(
        out.status.success(),
        "goaccess failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).expect("report")).expect("JSON report");
    let general = &report["general"];
    assert_eq!(general["total_requests"], sent, "{general}");
    assert_eq!(general["valid_requests"], sent, "{general}");
    assert_eq!(general["failed_requests"], 0, "{general}");
    let codes = report["status_codes"].to_string();
    assert!(codes.contains("421"), "{codes}");
    let requests = report["requests"].to_string();
    assert!(requests.contains("/Default.aspx"), "{requests}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_id_reaches_the_upstream_the_response_and_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let ca = TestCa::new("id root");
    let backend = Backend::start("iis").await;
    let json_log = d.join("access.json");

    for trusted in [false, true] {
        let server = format!(
            "access_log = \"json\"\naccess_log_file = \"access.json\"\n{}",
            if trusted {
                "trusted_proxies = [\"127.0.0.1\"]"
            } else {
                ""
            }
        );
        let running = start(&config(&ca, d, &server, &backend.url()), d).await;
        let mut s = open(running.tls_addrs[0], "app.test", &ca.der, &[b"http/1.1"]).await;
        let mut req = get("app.test", "/", false);
        req.headers_mut()
            .insert("x-request-id", HeaderValue::from_static("lb-4711"));
        let resp = s.send(req).await.expect("response");
        let returned = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
        let echo = body_json(resp).await;
        assert_eq!(echo["headers"]["x-request-id"][0], returned.as_str());
        if trusted {
            assert_eq!(returned, "lb-4711", "a trusted proxy's id is kept");
        } else {
            assert_ne!(returned, "lb-4711", "a client cannot choose its id");
        }
        let found = eventually(Duration::from_secs(10), || {
            data_lines(&json_log).iter().any(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .is_ok_and(|v| v["x-request-id"] == returned.as_str())
            })
        })
        .await;
        assert!(found, "{returned} not logged in {}", json_log.display());
        running.drain(Duration::ZERO).await;
    }

    // An error page names its id, so that a user's screenshot finds the log line.
    let toml = config(
        &ca,
        d,
        "access_log = \"w3c\"\naccess_log_file = \"errors.log\"",
        &format!("http://127.0.0.1:{}", refused_port()),
    );
    let running = start(&toml, d).await;
    let mut s = open(running.tls_addrs[0], "app.test", &ca.der, &[b"h2"]).await;
    let resp = s.send(get("app.test", "/", true)).await.expect("response");
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body = String::from_utf8(body_bytes(resp).await.to_vec()).unwrap();
    assert_eq!(body, format!("502 Bad Gateway\nrequest id: {id}\n"));
    let log = d.join("errors.log");
    let logged = eventually(Duration::from_secs(10), || {
        data_lines(&log)
            .iter()
            .any(|l| l.ends_with(&format!(" {id}")))
    })
    .await;
    assert!(
        logged,
        "{id} not in {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let line = data_lines(&log).pop().expect("a line");
    assert!(line.contains(" 502 0 0 "), "{line}");
}

#[test]
fn sigusr1_reopens_the_access_log_after_logrotate_moved_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let ca = TestCa::new("rotate root");
    let toml = "[server]\nlisten = [\"127.0.0.1:0\"]\naccess_log = \"w3c\"\naccess_log_file = \"access.log\"\n\
         rescan_seconds = 0\nwatch_config = false\n[tls]\ntrust = [\"root.pem\"]\n\
         [[host]]\nfqdn = \"app.test\"\ncert = \"app.pem\"\nkey = \"app-key.pem\"\n\
         respond = { status = 200, body = \"ok\" }\n";
    ca.leaf(&["app.test"]).write(d, "app");
    std::fs::write(d.join("root.pem"), &ca.pem).expect("root");
    std::fs::write(d.join("certfront.toml"), toml).expect("config");
    let proc = Process::spawn(&d.join("certfront.toml"), d);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let request = |path: &'static str| {
        rt.block_on(async {
            let mut s = open(proc.addr, "app.test", &ca.der, &[b"http/1.1"]).await;
            let resp = s
                .send(get("app.test", path, false))
                .await
                .expect("response");
            assert_eq!(resp.status(), StatusCode::OK);
        })
    };
    let (log, rotated) = (d.join("access.log"), d.join("access.log.1"));
    let wait_for = |path: &Path, needle: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if data_lines(path).iter().any(|l| l.contains(needle)) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    };
    request("/before");
    assert!(wait_for(&log, " /before "), "{}", proc.log.lock().unwrap());
    std::fs::rename(&log, &rotated).expect("rotate");
    proc.signal("USR1");
    // The writer reopens (creating the file) as soon as it sees the signal.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !log.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    request("/after");
    let reopened = wait_for(&log, " /after ");
    assert!(reopened, "no new access.log:\n{}", proc.log.lock().unwrap());
    let fresh = std::fs::read_to_string(&log).expect("new log");
    assert!(fresh.starts_with("#Software: certfront "), "{fresh}");
    assert!(!fresh.contains(" /before "), "{fresh}");
    assert!(
        std::fs::read_to_string(&rotated)
            .expect("rotated")
            .contains(" /before ")
    );
}
