//! `certfront check` and `certfront run` read every file a configuration names the same
//! way, in one pass: every example config and a table of broken configs (one broken item
//! each, every kind of file) get the same verdict and the same error lines from both.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;

use crate::support::pki::{TestCa, write_secret};
use crate::support::{Process, bin, run_cli};

/// What a command said about a config: refused or not, and its `error:` lines.
#[derive(Debug, PartialEq, Eq)]
struct Verdict {
    refused: bool,
    errors: Vec<String>,
}

fn error_lines(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .map(str::to_owned)
        .collect()
}

/// `certfront check`: exit 0 (accepted) or 1 (refused), nothing else.
fn check(config: &Path, dir: &Path) -> Verdict {
    let (code, _, stderr) = run_cli(&["check", "-c", &config.display().to_string()], dir);
    assert!(code == 0 || code == 1, "check exited {code}:\n{stderr}");
    Verdict {
        refused: code == 1,
        errors: error_lines(&stderr),
    }
}

/// `certfront run`: refused (exit 2, within 20 s), or started (ready, then stopped).
fn run(config: &Path, dir: &Path) -> Verdict {
    let mut child = Command::new(bin())
        .args(["run", "-c"])
        .arg(config)
        .current_dir(dir)
        .env_remove("CERTFRONT_CONFIG")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn certfront");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut stderr = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
                .expect("stderr");
            assert_eq!(status.code(), Some(2), "run exited otherwise:\n{stderr}");
            return Verdict {
                refused: true,
                errors: error_lines(&stderr),
            };
        }
        if Instant::now() >= deadline {
            // Still running: it started. The caller checks that it becomes ready.
            let _ = child.kill();
            let _ = child.wait();
            return Verdict {
                refused: false,
                errors: Vec::new(),
            };
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Both commands on `config`; they must agree. Returns the verdict.
fn agree(what: &str, config: &Path, dir: &Path) -> Verdict {
    let checked = check(config, dir);
    if checked.refused {
        let ran = run(config, dir);
        assert_eq!(ran, checked, "{what}: run and check disagree");
    } else {
        // Accepted by check: run serves it (ready within 20 s) and stops on SIGTERM.
        let mut p = Process::spawn(config, dir);
        p.signal("TERM");
        assert_eq!(
            p.wait(Duration::from_secs(20)),
            Some(0),
            "{what}: run did not stop"
        );
    }
    checked
}

fn ticket_keys() -> Vec<u8> {
    let mut raw = [0u8; 48];
    aws_lc_rs::rand::fill(&mut raw).expect("random");
    format!(
        "# ticket keys\n{}\n",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
    .into_bytes()
}

/// A config in which every kind of file appears once and all of them are good.
fn good(dir: &Path) -> std::path::PathBuf {
    let ca = TestCa::new("check-run root");
    std::fs::write(dir.join("root.pem"), &ca.pem).expect("root");
    std::fs::write(dir.join("upstream-ca.pem"), &ca.pem).expect("upstream ca");
    std::fs::write(dir.join("clients.pem"), &TestCa::new("clients").pem).expect("clients");
    std::fs::write(dir.join("deny.txt"), "# no client is denied yet\n").expect("deny");
    write_secret(&dir.join("tickets.keys"), &ticket_keys());
    for name in ["app.test", "iis.test", "portal.test"] {
        ca.leaf(&[name]).write(dir, name);
    }
    write_secret(
        &dir.join("tablet.pfx"),
        &ca.leaf(&["tablet.test"]).pfx("s3cret"),
    );
    write_secret(&dir.join("pfx-password"), b"s3cret\n");
    let config = dir.join("certfront.toml");
    std::fs::write(
        &config,
        "[server]\nlisten = [\"127.0.0.1:0\"]\ndrain_seconds = 1\n\n\
         [tls]\ntrust = [\"root.pem\"]\nticket_key_file = \"tickets.keys\"\n\n\
         [[host]]\nfqdn = \"app.test\"\ncert = \"app.test.pem\"\nkey = \"app.test-key.pem\"\n\
         respond = { body = \"app\" }\n\n\
         [[host]]\nfqdn = \"tablet.test\"\npfx = \"tablet.pfx\"\npfx_password_file = \"pfx-password\"\n\
         respond = { body = \"tablet\" }\n\n\
         [[host]]\nfqdn = \"iis.test\"\ncert = \"iis.test.pem\"\nkey = \"iis.test-key.pem\"\n\
         upstream = \"https://127.0.0.1:9\"\nupstream_ca = \"upstream-ca.pem\"\n\n\
         [[host]]\nfqdn = \"portal.test\"\ncert = \"portal.test.pem\"\nkey = \"portal.test-key.pem\"\n\
         respond = { body = \"portal\" }\n\
         [host.client_auth]\nmode = \"required\"\nca = \"clients.pem\"\ndeny = \"deny.txt\"\n",
    )
    .expect("config");
    config
}

#[test]
fn check_and_run_agree_on_every_broken_file() {
    let garbage = b"this is not what the file should hold\n".as_slice();
    // (what, file, new content): one broken item each, every kind of file.
    let table: [(&str, &str, &[u8]); 9] = [
        ("certificate", "app.test.pem", garbage),
        ("private key", "app.test-key.pem", garbage),
        ("pfx", "tablet.pfx", garbage),
        ("pfx password file", "pfx-password", b"wrong password\n"),
        ("tls.trust", "root.pem", garbage),
        ("upstream_ca", "upstream-ca.pem", garbage),
        ("client CA", "clients.pem", garbage),
        ("deny list", "deny.txt", b"not a fingerprint\n"),
        ("ticket keys", "tickets.keys", b"# ticket keys\nc2hvcnQ=\n"),
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    let config = good(dir.path());
    let verdict = agree("the good config", &config, dir.path());
    assert_eq!(
        verdict,
        Verdict {
            refused: false,
            errors: Vec::new()
        },
        "the good config"
    );
    for (what, file, content) in table {
        let path = dir.path().join(file);
        let kept = std::fs::read(&path).expect("read");
        write_secret(&path, content);
        let verdict = agree(what, &config, dir.path());
        assert!(verdict.refused, "{what}: accepted");
        assert!(
            verdict
                .errors
                .iter()
                .any(|e| e.contains(file) || (file == "pfx-password" && e.contains("tablet.pfx"))),
            "{what}: no error names {file}: {:#?}",
            verdict.errors
        );
        write_secret(&path, &kept);
    }
}

#[test]
fn check_and_run_agree_on_every_example_config() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&examples).expect("examples") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        // The example as written, except that it binds nothing public and keeps any CA it
        // creates in a temporary directory.
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state");
        let text = std::fs::read_to_string(&path)
            .expect("read")
            .replace("/var/lib/certfront", &state.display().to_string())
            .replace("0.0.0.0:443", "127.0.0.1:0")
            .replace("[::]:443", "127.0.0.1:0")
            .replace("0.0.0.0:80", "127.0.0.1:0")
            .replace("127.0.0.1:9443", "127.0.0.1:0");
        let config = dir.path().join(path.file_name().expect("name"));
        std::fs::write(&config, text).expect("write");
        agree(&path.display().to_string(), &config, dir.path());
        seen += 1;
    }
    assert!(seen >= 5, "only {seen} example configs found");
}
