//! The certificate tools an administrator uses around a renewal, through the real binary:
//! `certs inspect --check` on the files CAs and Windows hand out (.p7b, .cer, .pfx), the
//! .pfx password asked on a terminal, `certs csr` with purposes and subject fields, and
//! `certfront health` for container health checks.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support::pki::write_secret;
use crate::support::{Process, bin, refused_port, run_cli};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../certs/testdata")
        .join(name)
}

/// A directory with the fixtures (keys and .pfx 0600, as installed) and a password file.
fn fixtures() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in [
        "ca.pem",
        "good.pem",
        "good.cer",
        "good-chain.p7b",
        "good-chain-pem.p7b",
        "good-key.pem",
        "ec-key.pem",
        "good-aes.pfx",
    ] {
        write_secret(
            &dir.path().join(name),
            &std::fs::read(fixture(name)).expect("fixture"),
        );
    }
    write_secret(&dir.path().join("pfx-password"), b"fixture-password\n");
    dir
}

const THUMBPRINT: &str = "A37EDA29E48F6B60E7B512B7FDBBEB76F9D0B978";

#[test]
fn inspect_reads_p7b_bundles_and_der_cer_files() {
    let dir = fixtures();
    for file in ["good-chain.p7b", "good-chain-pem.p7b"] {
        let (code, stdout, stderr) = run_cli(&["certs", "inspect", file], dir.path());
        assert_eq!(code, 0, "{file}: {stderr}");
        // leaf first although the bundle lists the root first
        let first = stdout
            .find("certificate 1 of 2:")
            .expect("two certificates");
        let second = stdout
            .find("certificate 2 of 2:")
            .expect("two certificates");
        let leaf = stdout.find(THUMBPRINT).expect("the leaf");
        assert!(first < leaf && leaf < second, "{stdout}");
        assert!(
            stdout[second..].contains("CN=certfront fixture root"),
            "{stdout}"
        );
    }
    let (code, stdout, _) = run_cli(&["certs", "inspect", "good.cer", "--json"], dir.path());
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(json[0]["sha1_thumbprint"], THUMBPRINT);
}

#[test]
fn inspect_check_passes_a_good_file_and_names_every_problem_of_a_bad_one() {
    let dir = fixtures();
    let inspect = |extra: &[&str]| {
        let mut args = vec!["certs", "inspect", "--check"];
        args.extend_from_slice(extra);
        run_cli(&args, dir.path())
    };
    for file in ["good-chain.p7b", "good.cer", "good.pem"] {
        let (code, stdout, stderr) =
            inspect(&[file, "--fqdn", "good.example.org", "--trust", "ca.pem"]);
        assert_eq!(code, 0, "{file}: {stdout}{stderr}");
        assert!(stdout.contains("result:              PASS"), "{stdout}");
        assert!(
            stdout.contains("key match:           not checked"),
            "{stdout}"
        );
        assert!(
            stdout.contains("policy:              the defaults"),
            "{stdout}"
        );
    }

    // wrong name and an untrusted root (no --trust): both reported, exit 1
    let (code, stdout, stderr) = inspect(&["good.pem", "--fqdn", "tablet.example.org"]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("FAIL: 2 problem(s)"), "{stdout}");
    assert!(
        stderr.contains(
            "error: good.pem: name: certificate covers [good.example.org], not tablet.example.org"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("error: good.pem: chain: issuer CN=certfront fixture root"),
        "{stderr}"
    );

    // with its key: matched, or the key of another certificate
    let (code, stdout, stderr) = inspect(&[
        "good.pem",
        "--key",
        "good-key.pem",
        "--trust",
        "ca.pem",
        "--fqdn",
        "good.example.org",
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(!stdout.contains("key match:"), "{stdout}");
    let (code, _, stderr) = inspect(&["good.pem", "--key", "ec-key.pem", "--trust", "ca.pem"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("error: ec-key.pem: key match:"), "{stderr}");

    // a .pfx brings its key; JSON carries the verdict
    let (code, stdout, stderr) = inspect(&[
        "good-aes.pfx",
        "--password-file",
        "pfx-password",
        "--trust",
        "ca.pem",
        "--fqdn",
        "good.example.org",
        "--json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(json["check"]["pass"], true, "{json}");
    assert_eq!(json["check"]["key_checked"], true, "{json}");
    assert_eq!(json["certificates"][0]["sha1_thumbprint"], THUMBPRINT);
}

#[test]
fn inspect_check_takes_policy_trust_and_aliases_from_the_config() {
    let dir = fixtures();
    std::fs::write(
        dir.path().join("certfront.toml"),
        "[server]\nlisten = [\"127.0.0.1:8443\"]\n\n[tls]\ntrust = [\"ca.pem\"]\n\n\
         [[host]]\nfqdn = \"good.example.org\"\naliases = [\"good.internal.example.org\"]\n\
         cert = \"good.pem\"\nkey = \"good-key.pem\"\nrespond = { status = 200 }\n\
         [host.policy]\nextended_key_usage = [\"server_auth\", \"client_auth\"]\n",
    )
    .expect("config");
    let (code, stdout, stderr) = run_cli(
        &[
            "certs",
            "inspect",
            "good-chain.p7b",
            "--check",
            "-c",
            "certfront.toml",
            "--fqdn",
            "GOOD.example.org",
        ],
        dir.path(),
    );
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stdout.contains("policy:              host good.example.org of certfront.toml"),
        "{stdout}"
    );
    assert!(
        stdout.contains("names:               good.example.org, good.internal.example.org"),
        "{stdout}"
    );
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 2, "{stderr}");
    assert!(
        errors[0].contains("not good.internal.example.org"),
        "{stderr}"
    );
    assert!(errors[1].contains("extended key usage"), "{stderr}");
    assert!(errors[1].contains("client_auth"), "{stderr}");
    // the chain verified against the config's tls.trust: no chain error above
}

#[test]
fn a_pfx_password_is_asked_on_a_terminal_and_never_read_from_a_pipe() {
    let dir = fixtures();
    // no terminal, no password source: a clear refusal naming the ways to give one
    let (code, _, stderr) = run_cli(&["certs", "inspect", "good-aes.pfx"], dir.path());
    assert_eq!(code, 1);
    assert!(
        stderr.contains("--password-env VAR or --password-file FILE"),
        "{stderr}"
    );

    // on a terminal (script(1) gives the command a pseudo-terminal), it asks
    let command = format!("{} certs inspect good-aes.pfx", bin());
    let mut child = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script(1) from util-linux");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"fixture-password\n")
        .expect("type the password");
    let out = child.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("password for good-aes.pfx:"), "{stdout}");
    assert!(stdout.contains(THUMBPRINT), "{stdout}");
}

#[test]
fn csr_requests_client_authentication_and_subject_fields_as_typed() {
    use x509_parser::prelude::*;
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, stdout, stderr) = run_cli(
        &[
            "certs",
            "csr",
            "--fqdn",
            "HCAppServer.MyCompany.com",
            "--eku",
            "client_auth",
            "--org",
            "Example Home Care",
            "--ou",
            "IT",
            "--locality",
            "Overland Park",
            "--state",
            "Kansas",
            "--country",
            "US",
            "--key",
            "rsa2048",
            "--out",
            "out",
        ],
        dir.path(),
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("purposes:    server_auth, client_auth"),
        "{stdout}"
    );
    let pem = std::fs::read(dir.path().join("out/hcappserver.mycompany.com.csr")).expect("csr");
    let der = rustls_pki_types::CertificateSigningRequestDer::from(
        rustls_pki_types::pem::PemObject::from_pem_slice(&pem)
            .map(|c: rustls_pki_types::CertificateSigningRequestDer<'_>| c.as_ref().to_vec())
            .expect("pem"),
    );
    let (_, csr) = X509CertificationRequest::from_der(der.as_ref()).expect("CSR");
    assert_eq!(
        csr.certification_request_info.subject.to_string(),
        "C=US, ST=Kansas, L=Overland Park, O=Example Home Care, OU=IT, CN=HCAppServer.MyCompany.com"
    );
    let eku = csr
        .requested_extensions()
        .into_iter()
        .flatten()
        .find_map(|e| match e {
            ParsedExtension::ExtendedKeyUsage(e) => Some((e.server_auth, e.client_auth)),
            _ => None,
        });
    assert_eq!(eku, Some((true, true)));

    let (code, _, stderr) = run_cli(
        &[
            "certs",
            "csr",
            "--fqdn",
            "a.example.org",
            "--eku",
            "clientauth",
            "--out",
            "x",
        ],
        dir.path(),
    );
    assert_eq!(code, 1);
    assert!(
        stderr.contains("--eku: unknown value \"clientauth\""),
        "{stderr}"
    );
    assert!(stderr.contains("client_auth"), "{stderr}");
    let (code, _, stderr) = run_cli(
        &[
            "certs",
            "csr",
            "--fqdn",
            "a.example.org",
            "--country",
            "USA",
            "--out",
            "x",
        ],
        dir.path(),
    );
    assert_eq!(code, 1);
    assert!(
        stderr.contains("--country \"USA\": expected two letters"),
        "{stderr}"
    );
    assert!(!dir.path().join("x").exists());
}

#[test]
fn health_asks_the_admin_listener_of_a_running_certfront() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("certfront.toml");
    std::fs::write(
        &config,
        "[server]\nlisten = [\"127.0.0.1:0\"]\nadmin = \"127.0.0.1:0\"\nstate_dir = \"state\"\n\n\
         [[host]]\nfqdn = \"app.test\"\ninternal = true\nrespond = { status = 200 }\n",
    )
    .expect("config");
    let process = Process::spawn(&config, dir.path());
    let admin = process.admin.expect("admin address").to_string();
    let (code, stdout, stderr) = run_cli(&["health", "--admin", &admin], dir.path());
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, format!("ok: http://{admin}/healthz answered 200\n"));
    let (code, stdout, _) = run_cli(&["health", "--admin", &admin, "--ready"], dir.path());
    assert_eq!(code, 0);
    assert!(stdout.contains("/readyz answered 200"), "{stdout}");

    // nothing listening: unhealthy, exit 1
    let down = format!("127.0.0.1:{}", refused_port());
    let (code, _, stderr) = run_cli(&["health", "--admin", &down], dir.path());
    assert_eq!(code, 1);
    assert!(
        stderr.starts_with(&format!("unhealthy: http://{down}/healthz: ")),
        "{stderr}"
    );
    // the address comes from the config when not given; here it has none
    std::fs::write(
        dir.path().join("noadmin.toml"),
        "[server]\nlisten = [\"127.0.0.1:0\"]\n\n[[host]]\nfqdn = \"a.test\"\ninternal = true\nrespond = { status = 200 }\n",
    )
    .expect("config");
    let (code, _, stderr) = run_cli(&["health", "-c", "noadmin.toml"], dir.path());
    assert_eq!(code, 1);
    assert!(stderr.contains("server.admin is not set"), "{stderr}");
}
