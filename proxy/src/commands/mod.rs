//! What each subcommand does, with the exit codes of DESIGN "Command line".

mod inventory;
mod run;

use std::path::Path;
use std::process::ExitCode;
use std::time::SystemTime;

use certfront_certs::csr::{CsrKey, write_csr};

use crate::prepare;
pub use inventory::{fmt_time, print_info};
pub use run::run;

/// `certfront check`: every problem of the config and of every host, and the inventory.
pub fn check(path: &Path) -> ExitCode {
    let config = match certfront_config::load(path) {
        Ok(config) => config,
        Err(e) => {
            print_config_error(&e);
            return ExitCode::from(1);
        }
    };
    let (ca, trust) = match prepare::anchors(&config) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let now = SystemTime::now();
    let verdicts = prepare::verdicts(&config, ca.as_deref(), &trust, now);
    let mut problems = 0;
    for (host, verdict) in config.hosts.iter().zip(&verdicts) {
        inventory::print_host(host, verdict, now);
        problems += verdict.violations.len();
    }
    // [acme] is checked offline: the EAB key's variable and acme.ca, not the server.
    if let Err(e) = crate::acme::settings(&config) {
        eprintln!("error: {e}");
        problems += 1;
    }
    for verdict in &verdicts {
        for w in &verdict.warnings {
            eprintln!("warning: {w}");
        }
        for v in &verdict.violations {
            eprintln!("error: {v}");
        }
    }
    if let Some(ca) = &ca {
        println!("internal CA root: {}", ca.root_path().display());
    }
    if problems == 0 {
        println!(
            "ok: {} host(s), every certificate meets the policy",
            verdicts.len()
        );
        ExitCode::SUCCESS
    } else {
        println!("{problems} problem(s) found");
        ExitCode::from(1)
    }
}

/// Prints every config problem, one a line.
pub fn print_config_error(e: &certfront_config::ConfigError) {
    for line in e.to_string().lines() {
        eprintln!("error: {line}");
    }
}

/// `certfront certs inspect FILE`.
pub fn inspect(file: &Path, password_env: Option<&str>, json: bool) -> ExitCode {
    let password = match password_env {
        Some(var) => match std::env::var(var) {
            // wiped when inspect returns
            Ok(p) => Some(zeroize::Zeroizing::new(p)),
            Err(_) => {
                eprintln!("error: environment variable {var} is not set");
                return ExitCode::from(1);
            }
        },
        None => None,
    };
    let certs = match certfront_certs::read_certificates(
        file,
        password.as_ref().map(|p| p.as_str()),
    ) {
        Ok(certs) => certs,
        Err(e) => {
            eprintln!("error: {e}");
            if matches!(e, certfront_certs::CertError::PfxNeedsPassword { .. }) {
                eprintln!(
                    "hint: put the password in an environment variable and pass --password-env VAR"
                );
            }
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
    if json {
        let out: Vec<_> = infos.iter().map(|i| inventory::info_json(i, now)).collect();
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
    }
    ExitCode::SUCCESS
}

/// `certfront certs csr`.
pub fn csr(names: &[String], key: &str, out: &Path) -> ExitCode {
    let key: CsrKey = match key.parse() {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: --key: {e}");
            return ExitCode::from(1);
        }
    };
    // write_csr normalizes and validates every name (certs' one DNS-name validator)
    let names: Vec<String> = names
        .iter()
        .map(|n| certfront_certs::names::normalize(n))
        .collect();
    match write_csr(&names, key, out) {
        Ok(files) => {
            println!(
                "private key: {} (mode 0600, keep it secret)",
                files.key.display()
            );
            println!("request:     {}", files.csr.display());
            println!("names:       {}", names.join(", "));
            println!(
                "send the request to your CA; install the certificate it returns with the key."
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
