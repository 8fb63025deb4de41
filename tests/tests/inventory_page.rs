//! The inventory page at `/` on the admin listener, as a person sees it: loaded in headless
//! Chromium (Debian's `chromium`, installed by .ci/chromium.sh), checked on the DOM it
//! renders. `CERTFRONT_SCREENSHOT=/abs/path.png` also saves a screenshot of the quick
//! start's page there (how docs/inventory-page.png is made, see docs/operations.md).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::client::{admin_get, body_bytes, body_json};
use crate::support::pki::TestCa;
use crate::support::start;

/// Runs chromium headless with `args` then `url`; its stdout. Bounded to 60 s.
fn chromium(args: &[&str], url: &str, dir: &Path) -> String {
    let mut child = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.join("chromium").display()
        ))
        .args(args)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium (Debian package chromium; .ci/chromium.sh installs it)");
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut out);
        out
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    reader.join().expect("reader")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_sees_hosts_a_refused_reload_an_expiring_certificate_and_no_markup() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let ca = TestCa::new("page root");
    std::fs::write(d.join("root.pem"), &ca.pem).expect("root");
    ca.leaf(&["app.test"]).write(d, "app");
    ca.leaf_with(&["soon.test"], |p| {
        p.not_after =
            time::OffsetDateTime::now_utc() + time::Duration::days(5) + time::Duration::hours(1);
    })
    .write(d, "soon");
    ca.leaf_with(&["hostile.test"], |p| {
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "<script>alert(1)</script>");
    })
    .write(d, "hostile");
    let host = |fqdn: &str, stem: &str| {
        format!(
            "[[host]]\nfqdn = \"{fqdn}\"\ncert = \"{stem}.pem\"\nkey = \"{stem}-key.pem\"\n\
             respond = {{ body = \"ok\" }}\n"
        )
    };
    let toml = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nadmin = \"127.0.0.1:0\"\n[tls]\ntrust = [\"root.pem\"]\n{}{}{}",
        host("app.test", "app"),
        host("soon.test", "soon"),
        host("hostile.test", "hostile")
    );
    let running = start(&toml, d).await;
    let admin = running.admin_addr.expect("admin");

    // app.test's files are replaced by a certificate for another name: refused, the old
    // one stays served.
    ca.leaf(&["elsewhere.test"]).write(d, "app");
    running.reload_all();
    let mut seen = false;
    for _ in 0..200 {
        let certs = body_json(admin_get(admin, "/certs").await).await;
        if certs["hosts"][0]["last_reload"]["result"] == "failure" {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seen, "the reload of app.test was not refused");

    let resp = admin_get(admin, "/").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");
    let html = String::from_utf8(body_bytes(resp).await.to_vec()).expect("utf-8");
    assert!(html.len() < 32 * 1024, "{} bytes for 3 hosts", html.len());
    assert!(
        !html.contains("<script>"),
        "the subject came through unescaped"
    );

    let url = format!("http://{admin}/");
    let dom = tokio::task::spawn_blocking({
        let d = d.to_path_buf();
        let url = url.clone();
        move || chromium(&["--dump-dom"], &url, &d)
    })
    .await
    .expect("chromium");
    assert!(dom.contains("certfront certificates"), "{dom}");
    assert!(dom.contains("3 hosts: <b>2</b> need action"), "{dom}");
    // What needs action first: the refused reload and the certificate with 5 days left,
    // with their reasons; the hostile subject as text, never as an element.
    let rows: Vec<&str> = dom.split("<tr class=\"").skip(1).collect();
    let host_rows: Vec<&&str> = rows.iter().filter(|r| r.contains(".test</b>")).collect();
    assert_eq!(host_rows.len(), 3, "{dom}");
    assert!(host_rows[0].starts_with("act\">"), "{}", host_rows[0]);
    assert!(host_rows[1].starts_with("act\">"), "{}", host_rows[1]);
    assert!(host_rows[2].starts_with("ok\">"), "{}", host_rows[2]);
    let app = host_rows
        .iter()
        .find(|r| r.contains("<b>app.test</b>"))
        .expect("app row");
    assert!(app.contains("reload refused"), "{app}");
    assert!(
        app.contains("certificate covers [elsewhere.test], not app.test"),
        "{app}"
    );
    let soon = host_rows
        .iter()
        .find(|r| r.contains("<b>soon.test</b>"))
        .expect("soon row");
    assert!(soon.contains("expires in 5 days"), "{soon}");
    let hostile = host_rows[2];
    assert!(hostile.contains("<b>hostile.test</b>"), "{hostile}");
    assert!(
        hostile.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{hostile}"
    );
    assert!(!dom.contains("<script>"), "{dom}");

    if let Ok(path) = std::env::var("CERTFRONT_SCREENSHOT") {
        screenshot_quick_start(&std::path::absolute(&path).expect("path"), d).await;
    }
}

/// `CERTFRONT_SCREENSHOT=/abs/docs/inventory-page.png`: the quick start's page
/// (`config/certfront.toml` as shipped, on port 0 with its CA in a temporary state
/// directory), as docs/operations.md shows it.
async fn screenshot_quick_start(path: &Path, d: &Path) {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/certfront.toml");
    let toml = std::fs::read_to_string(&shipped)
        .expect("config/certfront.toml")
        .replace("127.0.0.1:8443", "127.0.0.1:0")
        .replace("127.0.0.1:9443", "127.0.0.1:0")
        .replace(
            "state_dir = \"../state\"",
            "state_dir = \"quick-start-state\"",
        );
    let running = start(&toml, d).await;
    let url = format!("http://{}/", running.admin_addr.expect("admin"));
    let (path, d) = (path.to_path_buf(), d.to_path_buf());
    tokio::task::spawn_blocking(move || {
        chromium(
            &[
                &format!("--screenshot={}", path.display()),
                "--window-size=1400,900",
                "--hide-scrollbars",
            ],
            &url,
            &d,
        );
        assert!(path.exists(), "no screenshot at {}", path.display());
    })
    .await
    .expect("screenshot");
    running.drain(Duration::from_secs(5)).await;
}
