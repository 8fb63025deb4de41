//! `certfront check`, `certfront run` refusing, `certs inspect` and `certs csr`, through the
//! real binary: exit codes and messages as an administrator reads them.

use std::path::{Path, PathBuf};

use tempfile::TempDir;

use crate::support::pki::{TestCa, thumbprint, write_secret};
use crate::support::run_cli;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../certs/testdata")
        .join(name)
}

/// Copies a fixture into `dir` (keys 0600, as they would be installed).
fn copy_fixture(dir: &Path, name: &str) {
    let data = std::fs::read(fixture(name)).expect("fixture");
    write_secret(&dir.join(name), &data);
}

/// Three broken hosts (RSA-1024 key; SHA-1 signature; wrong name and expired) and one good.
fn broken_setup() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    for f in [
        "ca.pem",
        "rsa1024.pem",
        "rsa1024-key.pem",
        "sha1.pem",
        "sha1-key.pem",
    ] {
        copy_fixture(d, f);
    }
    let ca = TestCa::new("cli test root");
    std::fs::write(d.join("root.pem"), &ca.pem).expect("root");
    ca.leaf(&["app.test"]).write(d, "app");
    ca.leaf_with(&["app.test"], |p| {
        let now = time::OffsetDateTime::now_utc();
        p.not_before = now - time::Duration::days(400);
        p.not_after = now - time::Duration::days(3);
    })
    .write(d, "portal");
    let config = d.join("certfront.toml");
    std::fs::write(
        &config,
        r#"
[server]
listen = ["127.0.0.1:0"]

[tls]
trust = ["ca.pem", "root.pem"]

[[host]]
fqdn = "rsa1024.example.org"
cert = "rsa1024.pem"
key = "rsa1024-key.pem"
respond = { body = "x" }

[[host]]
fqdn = "sha1.example.org"
cert = "sha1.pem"
key = "sha1-key.pem"
respond = { body = "x" }

[[host]]
fqdn = "portal.test"
cert = "portal.pem"
key = "portal-key.pem"
respond = { body = "x" }

[[host]]
fqdn = "app.test"
cert = "app.pem"
key = "app-key.pem"
respond = { body = "x" }
"#,
    )
    .expect("config");
    (dir, config)
}

#[test]
fn check_reports_every_broken_host_and_run_refuses_to_start() {
    let (dir, config) = broken_setup();
    let config = config.to_str().expect("utf-8 path");
    let (code, stdout, stderr) = run_cli(&["check", "-c", config], dir.path());
    assert_eq!(code, 1, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    let has = |host: &str, needle: &str| {
        errors
            .iter()
            .any(|l| l.contains(&format!("host \"{host}\"")) && l.contains(needle))
    };
    assert!(
        has(
            "rsa1024.example.org",
            "key size: RSA 1024 bits, policy requires >= 2048"
        ),
        "{stderr}"
    );
    assert!(has("sha1.example.org", "signature:"), "{stderr}");
    assert!(has("sha1.example.org", "SHA-1"), "{stderr}");
    assert!(
        has(
            "portal.test",
            "name: certificate covers [app.test], not portal.test"
        ),
        "{stderr}"
    );
    assert!(has("portal.test", "validity:"), "{stderr}");
    assert!(
        !errors.iter().any(|l| l.contains("\"app.test\"")),
        "the good host has no error: {stderr}"
    );
    assert!(stdout.contains("host app.test: OK"), "{stdout}");
    assert!(stdout.contains("host portal.test: FAIL"), "{stdout}");

    let (code, stdout, stderr) = run_cli(&["run", "-c", config], dir.path());
    assert_eq!(code, 2, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        !stderr.contains("listening"),
        "nothing may be bound: {stderr}"
    );
    for host in ["rsa1024.example.org", "sha1.example.org", "portal.test"] {
        assert!(
            stderr.contains(&format!("error: host \"{host}\"")),
            "{host} missing:\n{stderr}"
        );
    }
}

#[test]
fn check_passes_a_good_config_and_shows_the_thumbprint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new("cli test root");
    std::fs::write(dir.path().join("root.pem"), &ca.pem).expect("root");
    let leaf = ca.leaf(&["app.test", "app.internal.test"]);
    leaf.write(dir.path(), "app");
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[tls]\ntrust = [\"root.pem\"]\n\
         [[host]]\nfqdn = \"app.test\"\naliases = [\"app.internal.test\"]\ncert = \"app.pem\"\nkey = \"app-key.pem\"\nupstream = \"http://127.0.0.1:9\"\n",
    )
    .expect("config");
    let (code, stdout, stderr) = run_cli(&["check", "-c", config.to_str().unwrap()], dir.path());
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains(&thumbprint(&leaf.der)), "{stdout}");
    assert!(stdout.contains("host app.test: OK"), "{stdout}");
}

#[test]
fn config_problems_are_all_reported_with_their_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[tls]\ndefault_host = \"nowhere.test\"\n\
         [[host]]\nfqdn = \"a.test\"\ninternal = true\nupstream = \"ftp://x\"\n\
         [[host]]\nfqdn = \"A.test\"\ninternal = true\nrespond = { body = \"x\" }\n",
    )
    .expect("config");
    let path = config.to_str().unwrap();
    let (code, _, stderr) = run_cli(&["check", "-c", path], dir.path());
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("tls.default_host"), "{stderr}");
    assert!(stderr.contains("host[0].upstream"), "{stderr}");
    assert!(stderr.contains("host[1]"), "{stderr}");
    let (code, _, stderr) = run_cli(&["run", "-c", path], dir.path());
    assert_eq!(code, 2, "{stderr}");
    assert!(
        !dir.path().join("state").exists(),
        "a refused start creates no CA"
    );

    std::fs::write(
        &config,
        "[server]\nlisten = [\"127.0.0.1:0\"]\nlisten_typo = 1\n",
    )
    .expect("config");
    let (code, _, stderr) = run_cli(&["run", "-c", path], dir.path());
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("listen_typo"), "{stderr}");
}

#[test]
fn inspect_reads_pem_der_and_both_pfx_encryptions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = std::fs::read(fixture("good.pem")).expect("fixture");
    let der = rustls_pki_types::CertificateDer::from(
        rustls_pki_types::pem::PemObject::from_pem_slice(&good)
            .map(|c: rustls_pki_types::CertificateDer<'_>| c.to_vec())
            .expect("pem"),
    );
    let expected = thumbprint(&der);
    std::fs::write(dir.path().join("good.cer"), der.as_ref()).expect("der");
    let (code, stdout, stderr) = run_cli(
        &["certs", "inspect", fixture("good.pem").to_str().unwrap()],
        dir.path(),
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(&expected), "{stdout}");
    assert!(stdout.contains("RSA 2048 bits"), "{stdout}");
    assert!(stdout.contains("good.example.org"), "{stdout}");
    let (code, stdout, _) = run_cli(&["certs", "inspect", "good.cer", "--json"], dir.path());
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(json[0]["sha1_thumbprint"], expected.as_str());
    assert_eq!(json[0]["key_bits"], 2048);

    for pfx in ["good-aes.pfx", "good-legacy.pfx"] {
        let out = std::process::Command::new(crate::support::bin())
            .args([
                "certs",
                "inspect",
                fixture(pfx).to_str().unwrap(),
                "--password-env",
                "PFX_PW",
            ])
            .env("PFX_PW", "fixture-password")
            .output()
            .expect("run");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{pfx}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains(&expected), "{pfx}: {stdout}");
        let out = std::process::Command::new(crate::support::bin())
            .args([
                "certs",
                "inspect",
                fixture(pfx).to_str().unwrap(),
                "--password-env",
                "PFX_PW",
            ])
            .env("PFX_PW", "wrong")
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(1), "{pfx} with a wrong password");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(pfx),
            "the error names the file"
        );
    }
}

#[test]
fn csr_writes_a_private_key_and_a_request_for_every_name() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, stdout, stderr) = run_cli(
        &[
            "certs",
            "csr",
            "--fqdn",
            "tablet.example.org",
            "--fqdn",
            "tablet.internal.example.org",
            "--key",
            "rsa2048",
            "--out",
            "out",
        ],
        dir.path(),
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    let files: Vec<_> = std::fs::read_dir(dir.path().join("out"))
        .expect("out")
        .map(|e| e.unwrap().path())
        .collect();
    let key = files
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "key"))
        .expect("key file");
    let csr = files
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "csr"))
        .expect("csr file");
    let mode = std::fs::metadata(key).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "private key mode");
    let params =
        rcgen::CertificateSigningRequestParams::from_pem(&std::fs::read_to_string(csr).unwrap())
            .expect("CSR parses");
    let sans: Vec<String> = params
        .params
        .subject_alt_names
        .iter()
        .map(|s| format!("{s:?}"))
        .collect();
    assert!(
        sans.iter().any(|s| s.contains("\"tablet.example.org\"")),
        "{sans:?}"
    );
    assert!(
        sans.iter()
            .any(|s| s.contains("tablet.internal.example.org")),
        "{sans:?}"
    );
    // Never overwrite a key that exists.
    let (code, _, _) = run_cli(
        &[
            "certs",
            "csr",
            "--fqdn",
            "tablet.example.org",
            "--out",
            "out",
        ],
        dir.path(),
    );
    assert_eq!(code, 1);
    // The names `check` refuses, `csr` refuses too, with the same reason.
    for (name, why) in [
        ("*.org", "at least two labels after \"*.\""),
        ("hc_app.corp.local", "contains '_'"),
    ] {
        let (code, stdout, stderr) = run_cli(
            &["certs", "csr", "--fqdn", name, "--out", "bad"],
            dir.path(),
        );
        assert_eq!(code, 1, "{name}: {stdout}{stderr}");
        assert!(
            stderr.contains(&format!("{name:?} is not a valid DNS name")) && stderr.contains(why),
            "{name}: {stderr}"
        );
        assert!(
            !dir.path().join("bad").exists(),
            "nothing written for {name}"
        );
    }
}

#[test]
fn check_refuses_limits_outside_their_range() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("certfront.toml");
    std::fs::write(
        &config,
        "[server]\nlisten = [\"127.0.0.1:0\"]\nrescan_seconds = 9223372036854775807\n\
         drain_seconds = 7200\n\
         [limits]\nmax_header_bytes = 10\nh2_max_concurrent_streams = 0\n\
         max_connections = 100\nmax_connections_per_ip = 500\n\
         [[host]]\nfqdn = \"app.test\"\ninternal = true\nrespond = { body = \"x\" }\n",
    )
    .expect("config");
    let (code, stdout, stderr) = run_cli(&["check", "-c", "certfront.toml"], dir.path());
    assert_eq!(code, 1, "stdout:\n{stdout}\nstderr:\n{stderr}");
    for line in [
        "server.rescan_seconds: 9223372036854775807 is out of range: expected 0 to 86400 seconds",
        "server.drain_seconds: 7200 is out of range: expected 0 to 3600 seconds",
        "limits.max_header_bytes: 10 is out of range: expected 1024 to 1048576 bytes",
        "limits.h2_max_concurrent_streams: 0 is out of range: expected 1 to 1000",
        "limits.max_connections_per_ip: 500 is more than limits.max_connections (100)",
    ] {
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with("error: certfront.toml: ") && l.contains(line)),
            "{line:?} missing:\n{stderr}"
        );
    }
    // `run` refuses the same file before binding anything (and before any panic).
    let (code, _, stderr) = run_cli(&["run", "-c", "certfront.toml"], dir.path());
    assert_eq!(code, 2, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!dir.path().join("state").exists(), "nothing created");
}

/// A directory that never stops changing (the certificate rewritten every 50 ms for 8 s,
/// as a misbehaving sync tool does, with a log file beside it) still gets its new
/// certificate served while the churn goes on: the debounce has a ceiling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_that_never_stops_changing_still_reloads() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use crate::support::client::{client_config, connect, peer_leaf};

    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_owned();
    let ca = TestCa::new("churn root");
    std::fs::write(d.join("root.pem"), &ca.pem).expect("root");
    std::fs::create_dir(d.join("tls")).expect("mkdir");
    let old = ca.leaf(&["app.test"]);
    old.write(&d.join("tls"), "app");
    let toml = "[server]\nlisten = [\"127.0.0.1:0\"]\nrescan_seconds = 0\n[tls]\ntrust = [\"root.pem\"]\n\
         [[host]]\nfqdn = \"app.test\"\ncert = \"tls/app.pem\"\nkey = \"tls/app-key.pem\"\nrespond = { body = \"ok\" }\n";
    let running = crate::support::start(toml, &d).await;
    let addr = running.tls_addrs[0];
    let mut cfg = (*client_config(&[&ca.der], &[b"http/1.1"])).clone();
    cfg.resumption = rustls::client::Resumption::disabled();
    let cfg = Arc::new(cfg);
    let leaf_of = |tls: &tokio_rustls::client::TlsStream<tokio::net::TcpStream>| peer_leaf(tls);
    let first = connect(addr, "app.test", cfg.clone()).await.expect("tls");
    assert_eq!(leaf_of(&first), old.der);

    let new = ca.leaf(&["app.test"]);
    let done = Arc::new(AtomicBool::new(false));
    let churn = {
        let (tls, done) = (d.join("tls"), done.clone());
        let (key, cert) = (new.key_pem.clone(), new.cert_pem.clone());
        std::thread::spawn(move || {
            let put = |name: &str, data: &str| {
                let tmp = tls.join(format!(".{name}.tmp"));
                std::fs::write(&tmp, data).expect("write");
                std::fs::rename(&tmp, tls.join(name)).expect("rename");
            };
            for i in 0..160 {
                put("app-key.pem", &key);
                put("app.pem", &cert);
                std::fs::write(tls.join("sync.log"), format!("pass {i}\n")).expect("log");
                std::thread::sleep(Duration::from_millis(50));
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    let mut served_new_during_churn = false;
    for _ in 0..400 {
        if done.load(Ordering::SeqCst) {
            break;
        }
        if let Ok(tls) = connect(addr, "app.test", cfg.clone()).await
            && leaf_of(&tls) == new.der
        {
            served_new_during_churn = !done.load(Ordering::SeqCst);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    churn.join().expect("churn thread");
    assert!(
        served_new_during_churn,
        "the new certificate was not served while the directory kept changing"
    );
}
