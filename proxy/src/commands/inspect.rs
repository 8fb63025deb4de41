//! `certfront certs inspect FILE [--check]`: the facts of a certificate file as Windows'
//! certificate dialog shows them, and with `--check` the verdict `run` would reach on it,
//! so a renewed file can be checked before it replaces the served one.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use certfront_certs::check::{Report, check, check_certificate};
use certfront_certs::{CertError, CertSource, Policy, TrustAnchors};
use rustls_pki_types::CertificateDer;
use serde_json::{Value, json};

use super::inventory::{info_json, print_info};

/// `certs inspect`.
#[derive(Debug, clap::Args)]
pub(crate) struct InspectArgs {
    /// The certificate file: PEM, DER (.cer/.crt), PKCS#7 (.p7b/.p7c) or PKCS#12 (.pfx/.p12).
    pub file: PathBuf,
    /// Environment variable that holds the .pfx password.
    #[arg(
        long = "password-env",
        value_name = "VAR",
        conflicts_with = "password_file"
    )]
    pub password_env: Option<String>,
    /// File whose first line is the .pfx password. With neither option, a terminal asks for it.
    #[arg(long = "password-file", value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Hold the file to the certificate rules: exit 0 when it may be served, 1 when not
    /// (check a new file before you put it in place).
    #[arg(long)]
    pub check: bool,
    /// With --check: a name clients use (repeat for more). When --config has a host with
    /// this name, that host's aliases and [host.policy] apply too.
    #[arg(long = "fqdn", value_name = "NAME", requires = "check")]
    pub fqdn: Vec<String>,
    /// With --check: the private key (PEM) of a certificate file, for the key match rule
    /// (a .pfx holds its own).
    #[arg(long, value_name = "FILE", requires = "check")]
    pub key: Option<PathBuf>,
    /// With --check: an extra trusted root file, like tls.trust (repeat for more).
    #[arg(long = "trust", value_name = "FILE", requires = "check")]
    pub trust: Vec<PathBuf>,
    /// With --check: take the policy and trust anchors from this configuration.
    #[arg(
        short = 'c',
        long = "config",
        env = "CERTFRONT_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,
}

/// `certfront certs inspect`.
pub(crate) fn inspect(args: &InspectArgs) -> ExitCode {
    let password = match pfx_password(args) {
        Ok(p) => p,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(1);
        }
    };
    let certs =
        match certfront_certs::read_certificates(&args.file, password.as_ref().map(|p| p.as_str()))
        {
            Ok(certs) => certs,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        };
    let mut infos = Vec::with_capacity(certs.len());
    for der in &certs {
        match certfront_certs::inspect(der) {
            Ok(info) => infos.push(info),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        }
    }
    let now = SystemTime::now();
    let verdict = if args.check {
        match verdict(args, &certs, password.as_ref().map(|p| p.as_str()), now) {
            Ok(v) => Some(v),
            Err(message) => {
                eprintln!("error: {message}");
                return ExitCode::from(1);
            }
        }
    } else {
        None
    };
    if args.json {
        let certificates: Vec<Value> = infos.iter().map(|i| info_json(i, now)).collect();
        let out = match &verdict {
            None => Value::Array(certificates),
            Some(v) => json!({ "certificates": certificates, "check": v.json() }),
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&out).expect("JSON of plain data")
        );
    } else {
        for (i, info) in infos.iter().enumerate() {
            if infos.len() > 1 {
                println!("certificate {} of {}:", i + 1, infos.len());
            }
            print_info(info, now);
        }
        if let Some(password) = &password {
            print_left_out(&args.file, password);
        }
        if let Some(v) = &verdict {
            v.print();
        }
    }
    match verdict {
        Some(v) if !v.report.is_ok() => ExitCode::from(1),
        _ => ExitCode::SUCCESS,
    }
}

/// Names what a .pfx holds besides the chain it serves: a root that was exported with it
/// looks, in the list above, as if it were missing.
fn print_left_out(file: &Path, password: &str) {
    let Ok(left_out) = certfront_certs::pfx_left_out(file, password) else {
        return;
    };
    for der in &left_out {
        let Ok(info) = certfront_certs::inspect(der) else {
            continue;
        };
        let what = if info.subject == info.issuer {
            "a self-signed root: not served, as servers never send their root; clients, and \
             tls.trust for the chain rule, must trust it"
        } else {
            "not in the leaf's chain: not served"
        };
        println!(
            "also in the file:     {} (thumbprint {}), {what}",
            info.subject, info.sha1_thumbprint
        );
    }
}

/// The .pfx password, when the file is a .pfx: from `--password-env`, `--password-file`,
/// else asked on the terminal. Never from the command line itself (shell history, `ps`).
fn pfx_password(args: &InspectArgs) -> Result<Option<zeroize::Zeroizing<String>>, String> {
    if !certfront_certs::is_pfx(&args.file).unwrap_or(false) {
        return Ok(None);
    }
    if let Some(var) = &args.password_env {
        return std::env::var(var)
            .map(|p| Some(zeroize::Zeroizing::new(p)))
            .map_err(|_| format!("--password-env: environment variable {var} is not set"));
    }
    if let Some(file) = &args.password_file {
        let text = zeroize::Zeroizing::new(
            certfront_certs::read::read_file(file, certfront_certs::read::FileKind::Password)
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                .map_err(|e| format!("--password-file {}: cannot read: {e}", file.display()))?,
        );
        return Ok(Some(zeroize::Zeroizing::new(
            text.lines().next().unwrap_or("").to_owned(),
        )));
    }
    if std::io::stdin().is_terminal() {
        let prompt = format!("password for {}: ", args.file.display());
        return rpassword::prompt_password(prompt)
            .map(|p| Some(zeroize::Zeroizing::new(p)))
            .map_err(|e| format!("cannot read the password from the terminal: {e}"));
    }
    Err(format!(
        "{}: this is a PKCS#12 (.pfx) file and its password is needed: \
         pass --password-env VAR or --password-file FILE, or run on a terminal to be asked",
        args.file.display()
    ))
}

/// `--check`'s result and what it was checked against.
struct Verdict {
    names: Vec<String>,
    /// Where the policy came from, in words.
    policy_from: String,
    key_checked: bool,
    report: Report,
}

impl Verdict {
    fn print(&self) {
        println!("check:");
        println!("  policy:              {}", self.policy_from);
        if self.names.is_empty() {
            println!(
                "  names:               (none given: the name rule is skipped; add --fqdn NAME)"
            );
        } else {
            println!("  names:               {}", self.names.join(", "));
        }
        if !self.key_checked {
            println!("  key match:           not checked (give the private key with --key FILE)");
        }
        for w in &self.report.warnings {
            eprintln!("warning: {w}");
        }
        for v in &self.report.violations {
            eprintln!("error: {v}");
        }
        if self.report.is_ok() {
            println!("  result:              PASS: meets the policy");
        } else {
            println!(
                "  result:              FAIL: {} problem(s)",
                self.report.violations.len()
            );
        }
    }

    fn json(&self) -> Value {
        let violations: Vec<Value> = self
            .report
            .violations
            .iter()
            .map(|v| json!({ "file": v.file, "rule": v.rule.as_str(), "detail": v.detail }))
            .collect();
        json!({
            "pass": self.report.is_ok(),
            "policy": self.policy_from,
            "names": self.names,
            "key_checked": self.key_checked,
            "violations": violations,
            "warnings": self.report.warnings,
        })
    }
}

fn verdict(
    args: &InspectArgs,
    certs: &[CertificateDer<'static>],
    password: Option<&str>,
    now: SystemTime,
) -> Result<Verdict, String> {
    let config = match &args.config {
        Some(path) => Some(certfront_config::load(path).map_err(|e| e.to_string())?),
        None => None,
    };
    let mut names: Vec<String> = Vec::new();
    let mut push = |name: String| {
        if !names.contains(&name) {
            names.push(name);
        }
    };
    let host = config
        .as_ref()
        .and_then(|c| args.fqdn.iter().find_map(|n| c.host(n)));
    if let Some(host) = host {
        host.names().into_iter().for_each(&mut push);
    }
    for name in &args.fqdn {
        push(certfront_certs::names::normalize(name));
    }
    let (policy, policy_from) = match (&config, host) {
        (Some(c), Some(h)) => (
            h.policy.clone(),
            format!("host {} of {}", h.fqdn, c.source.display()),
        ),
        (Some(c), None) => (
            c.policy.clone(),
            format!("[policy] of {}", c.source.display()),
        ),
        (None, _) => (
            Policy::default(),
            "the defaults (give --config FILE for yours)".to_owned(),
        ),
    };
    let trust = anchors(config.as_ref(), &args.trust).map_err(|e| e.to_string())?;

    let file = &args.file;
    // Only the file names of the source matter to the rules (messages, key file mode).
    let (report, key_checked) = if let Some(password) = password {
        let bundle = certfront_certs::load_pfx(file, password).map_err(|e| e.to_string())?;
        let source = CertSource::Pem {
            cert: file.clone(),
            key: file.clone(),
        };
        (check(&names, &source, &bundle, &policy, &trust, now), true)
    } else if let Some(key) = &args.key {
        let source = CertSource::Pem {
            cert: file.clone(),
            key: key.clone(),
        };
        let bundle = certfront_certs::load(&source).map_err(|e| e.to_string())?;
        (check(&names, &source, &bundle, &policy, &trust, now), true)
    } else {
        (
            check_certificate(&names, file, certs, &policy, &trust, now),
            false,
        )
    };
    Ok(Verdict {
        names,
        policy_from,
        key_checked,
        report,
    })
}

/// The system roots, the config's `tls.trust` and internal CA root (when it exists: a
/// check never creates a CA), and `--trust` files.
fn anchors(
    config: Option<&certfront_config::Config>,
    extra: &[PathBuf],
) -> Result<TrustAnchors, CertError> {
    let mut files: Vec<PathBuf> = config.map(|c| c.tls.trust.clone()).unwrap_or_default();
    files.extend(extra.iter().cloned());
    if let Some(root) = config
        .map(|c| c.server.state_dir.join("ca.pem"))
        .filter(|p| Path::new(p).exists())
    {
        files.push(root);
    }
    TrustAnchors::new(true, &files, &[])
}
