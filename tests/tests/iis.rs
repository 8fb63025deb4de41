//! Coming from IIS: `certfront import iis` output that passes `check` once the files are
//! in place, the Central Certificate Store (`[ccs]`, `ccs = true`) and its re-scan.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::client::{client_config, connect, served};
use crate::support::pki::{TestCa, write_secret};
use crate::support::{run_cli, start};

fn iis_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../proxy/testdata/iis")
        .join(name)
}

/// The IIS 10 fixture imported, every TODO filled in with generated certificates: `check`
/// passes with no warning; a CCS host's missing file is a refusal naming that file.
#[test]
fn imported_iis_config_passes_check_once_the_files_are_in_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (certs, ccs) = (d.join("certs"), d.join("ccs"));
    std::fs::create_dir(&certs).expect("mkdir");
    std::fs::create_dir(&ccs).expect("mkdir");
    let apphost = iis_fixture("iis10-applicationHost.config");
    let netsh = iis_fixture("netsh-sslcert.txt");
    let (code, toml, err) = run_cli(
        &[
            "import",
            "iis",
            apphost.to_str().unwrap(),
            "--netsh",
            netsh.to_str().unwrap(),
            "--iis-address",
            "127.0.0.1",
            "--cert-dir",
            certs.to_str().unwrap(),
            "--ccs-dir",
            ccs.to_str().unwrap(),
        ],
        d,
    );
    assert_eq!(code, 0, "{err}");
    assert!(toml.contains("ccs = true"), "{toml}");

    // What the admin does: export each .pfx, write the passwords and the client CA, trust
    // the private root.
    let ca = TestCa::new("hospital root");
    std::fs::write(d.join("root.pem"), &ca.pem).expect("root");
    std::fs::write(certs.join("clients-ca.pem"), &ca.pem).expect("clients ca");
    for name in [
        "hcappserver.mycompany.com",
        "hcapp",
        "hctabletserver.mycompany.com",
    ] {
        let pfx = ca.leaf(&[name]).pfx(&format!("{name} export"));
        write_secret(&certs.join(format!("{name}.pfx")), &pfx);
        write_secret(
            &certs.join(format!("{name}.pass")),
            format!("{name} export\n").as_bytes(),
        );
    }
    write_secret(&certs.join("ccs.pass"), b"one store password\n");
    for (name, file) in [
        ("portal.mycompany.com", "portal.mycompany.com.pfx"),
        ("*.clinics.mycompany.com", "_.clinics.mycompany.com.pfx"),
    ] {
        write_secret(&ccs.join(file), &ca.leaf(&[name]).pfx("one store password"));
    }
    let config = d.join("certfront.toml");
    std::fs::write(&config, format!("{toml}\n[tls]\ntrust = [\"root.pem\"]\n")).expect("config");

    let (code, out, err) = run_cli(&["check", "-c", "certfront.toml"], d);
    assert_eq!(code, 0, "check failed:\n{out}\n{err}\n--- config:\n{toml}");
    assert!(!err.contains("warning:"), "{err}");
    for host in ["hcapp", "portal.mycompany.com", "*.clinics.mycompany.com"] {
        assert!(out.contains(&format!("host {host}: OK")), "{host}:\n{out}");
    }

    let missing = ccs.join("portal.mycompany.com.pfx");
    std::fs::remove_file(&missing).expect("rm");
    let (code, _, err) = run_cli(&["check", "-c", "certfront.toml"], d);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("{}: cannot read", missing.display())),
        "the refusal names the file looked for:\n{err}"
    );
}

/// A CIFS mount sends no inotify event for a change made on the Windows side. Stand-in: the
/// store path is a symlink that is swapped to another folder, in a directory nobody
/// watches, so the watcher (which watches the folder the link pointed to) sees nothing.
/// The instance with a 1 s re-scan serves the new file; the one without still serves the
/// old one (the proof that the watcher was bypassed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ccs_change_behind_the_watchers_back_is_served_after_the_rescan() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let ca = TestCa::new("ccs root");
    std::fs::write(d.join("root.pem"), &ca.pem).expect("root");
    for sub in ["share-a", "share-b", "secrets"] {
        std::fs::create_dir(d.join(sub)).expect("mkdir");
    }
    write_secret(&d.join("secrets/ccs.pass"), b"store password\n");
    let first = ca.leaf(&["app.test"]);
    let second = ca.leaf(&["app.test"]);
    write_secret(
        &d.join("share-a/app.test.pfx"),
        &first.pfx("store password"),
    );
    symlink(d.join("share-a"), d.join("ccs")).expect("symlink");
    let config = |rescan: u64| {
        format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\nrescan_seconds = {rescan}\nwatch_config = false\n\
             [tls]\ntrust = [\"root.pem\"]\n\
             [ccs]\npath = \"ccs\"\npassword_file = \"secrets/ccs.pass\"\n\
             [[host]]\nfqdn = \"app.test\"\nccs = true\nrespond = {{ body = \"ok\" }}\n"
        )
    };
    let rescanning = start(&config(1), d).await;
    let blind = start(&config(0), d).await;
    let cfg = client_config(&[&ca.der], &[b"http/1.1"]);
    let (a, b) = (rescanning.tls_addrs[0], blind.tls_addrs[0]);
    assert_eq!(served(a, "app.test", &cfg).await, Some(first.der.clone()));
    assert_eq!(served(b, "app.test", &cfg).await, Some(first.der.clone()));

    write_secret(
        &d.join("share-b/app.test.pfx"),
        &second.pfx("store password"),
    );
    symlink(d.join("share-b"), d.join("ccs.new")).expect("symlink");
    std::fs::rename(d.join("ccs.new"), d.join("ccs")).expect("swap the link");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while served(a, "app.test", &cfg).await.as_ref() != Some(&second.der) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the re-scan did not pick up the new file"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        served(b, "app.test", &cfg).await,
        Some(first.der.clone()),
        "the watcher saw the change: this test no longer models a CIFS mount"
    );
}

/// `arr_client_cert = true`: the verified client certificate also goes upstream as
/// `X-ARR-ClientCert`, as IIS ARR sends it; a copy the client sent is removed on every
/// host, with or without the setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arr_client_cert_is_sent_only_where_asked_and_never_forged() {
    use base64::Engine;

    use crate::support::backend::Backend;
    use crate::support::client::{Sender, body_json, get, tls_client};

    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let server_ca = TestCa::new("server root");
    std::fs::write(d.join("root.pem"), &server_ca.pem).expect("root");
    server_ca.leaf(&["arr.test"]).write(d, "arr");
    server_ca.leaf(&["plain.test"]).write(d, "plain");
    let clients_ca = TestCa::new("physician clients CA");
    std::fs::write(d.join("clients-ca.pem"), &clients_ca.pem).expect("clients ca");
    let alice = clients_ca.client("dr-alice");
    let backend = Backend::start("iis").await;
    let toml = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[tls]\ntrust = [\"root.pem\"]\n\
         [[host]]\nfqdn = \"arr.test\"\ncert = \"arr.pem\"\nkey = \"arr-key.pem\"\nupstream = \"{0}\"\n\
         [host.client_auth]\nca = \"clients-ca.pem\"\narr_client_cert = true\n\
         [[host]]\nfqdn = \"plain.test\"\ncert = \"plain.pem\"\nkey = \"plain-key.pem\"\nupstream = \"{0}\"\n\
         [host.client_auth]\nca = \"clients-ca.pem\"\n",
        backend.url()
    );
    let running = start(&toml, d).await;
    let addr = running.tls_addrs[0];
    let cfg = tls_client(&[&server_ca.der], &[b"http/1.1"], Some(&alice));
    let expected = base64::engine::general_purpose::STANDARD.encode(alice.der.as_ref());
    for (host, arr) in [("arr.test", true), ("plain.test", false)] {
        let tls = connect(addr, host, cfg.clone())
            .await
            .expect("mTLS handshake");
        let mut s = Sender::over(tls).await;
        let mut req = get(host, "/", false);
        req.headers_mut()
            .insert("x-arr-clientcert", http::HeaderValue::from_static("FORGED"));
        let echo = body_json(s.send(req).await.expect("response")).await;
        let sent = &echo["headers"]["x-arr-clientcert"];
        if arr {
            assert_eq!(sent.as_array().map(Vec::len), Some(1), "{echo}");
            assert_eq!(sent[0], expected.as_str(), "{host}");
            assert_eq!(echo["headers"]["x-client-cert"][0], expected.as_str());
        } else {
            assert!(sent.is_null(), "{host}: {echo}");
            assert_eq!(echo["headers"]["x-client-cert"][0], expected.as_str());
        }
    }
}

/// A renewal `.pfx` with a new password while the host reads it from `pfx_password_env`:
/// the reload is refused (the old certificate stays), and the refusal names the variable
/// and the two ways out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_pfx_password_in_the_environment_needs_a_restart_and_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let ca = TestCa::new("renewal root");
    std::fs::write(d.join("root.pem"), &ca.pem).expect("root");
    // PATH is set in every test process: it stands in for TABLET_PFX_PASSWORD.
    let password = std::env::var("PATH").expect("PATH");
    let first = ca.leaf(&["tablet.test"]);
    write_secret(&d.join("tablet.pfx"), &first.pfx(&password));
    let toml = "[server]\nlisten = [\"127.0.0.1:0\"]\nwatch_config = false\n\
                [tls]\ntrust = [\"root.pem\"]\n[[host]]\nfqdn = \"tablet.test\"\npfx = \"tablet.pfx\"\n\
                pfx_password_env = \"PATH\"\nrespond = { body = \"ok\" }\n";
    let running = start(toml, d).await;
    let slot = running.slots()[0].clone();
    let tmp = d.join("tablet.pfx.new");
    write_secret(
        &tmp,
        &ca.leaf(&["tablet.test"]).pfx("the renewal's new password"),
    );
    std::fs::rename(&tmp, d.join("tablet.pfx")).expect("rename");
    let refused = crate::support::eventually(Duration::from_secs(10), || {
        slot.status().last_error.is_some()
    })
    .await;
    assert!(refused, "the reload was not refused");
    let error = slot.status().last_error.expect("error").to_string();
    for part in [
        "wrong password or damaged file",
        "environment variable PATH",
        "restart to change it, or use pfx_password_file",
    ] {
        assert!(error.contains(part), "{part:?} missing: {error}");
    }
    let cfg = client_config(&[&ca.der], &[b"http/1.1"]);
    assert_eq!(
        served(running.tls_addrs[0], "tablet.test", &cfg).await,
        Some(first.der.clone()),
        "the last good certificate stays"
    );
}

/// The `ready` line names the PID, so the README's `kill -HUP <pid>` needs no pkill.
#[test]
fn the_ready_line_carries_the_pid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("certfront.toml");
    std::fs::write(
        &config,
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[[host]]\nfqdn = \"app.test\"\ninternal = true\n\
         respond = { body = \"ok\" }\n",
    )
    .expect("config");
    let process = crate::support::Process::spawn(&config, dir.path());
    let log = process.log.lock().unwrap().clone();
    let pid = process.child.id();
    assert!(
        log.lines()
            .any(|l| l.contains("ready") && l.contains(&format!("pid {pid}"))),
        "{log}"
    );
}

/// `certs inspect` on a .pfx exported with its root says the root is in the file and why
/// it is not served, instead of leaving it out silently.
#[test]
fn inspect_names_the_root_a_pfx_holds_but_does_not_serve() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../certs/testdata/good-aes.pfx");
    let out = std::process::Command::new(crate::support::bin())
        .args([
            "certs",
            "inspect",
            fixture.to_str().unwrap(),
            "--password-env",
            "PFX_PW",
        ])
        .env("PFX_PW", "fixture-password")
        .current_dir(dir.path())
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("also in the file:     CN=certfront fixture root")
            && stdout.contains("a self-signed root: not served"),
        "{stdout}"
    );
}

/// `run --help` says the whole sentence: what makes it refuse, and the signals.
#[test]
fn run_help_is_a_whole_sentence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, out, _) = run_cli(&["run", "--help"], dir.path());
    assert_eq!(code, 0);
    assert!(
        out.contains(
            "when the config or any certificate breaks a rule; SIGHUP re-reads both, SIGTERM drains"
        ),
        "{out}"
    );
}
