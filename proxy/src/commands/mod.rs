//! What each subcommand does, with the exit codes of DESIGN "Command line".

mod health;
mod import_iis;
mod inspect;
mod inventory;
mod run;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use certfront_certs::csr::{CsrKey, CsrRequest, CsrSubject, write_csr};
use certfront_certs::policy::ExtKeyUsage;

use crate::prepare;
pub(crate) use health::{HealthArgs, health};
pub(crate) use import_iis::{ImportIisArgs, import_iis};
pub(crate) use inspect::{InspectArgs, inspect};
pub(crate) use run::run;

#[derive(Debug, clap::Args)]
pub(crate) struct ConfigArg {
    /// Configuration file.
    #[arg(
        short = 'c',
        long = "config",
        env = "CERTFRONT_CONFIG",
        default_value = "config/certfront.toml"
    )]
    pub config: PathBuf,
}

/// `certs csr`: names and subject fields are written into the request as typed.
#[derive(Debug, clap::Args)]
pub(crate) struct CsrArgs {
    /// A name the certificate must cover (repeat for more; the first is the subject CN).
    #[arg(long = "fqdn", required = true, value_name = "NAME")]
    pub fqdn: Vec<String>,
    /// Key type.
    #[arg(long, default_value = "p256", value_parser = ["p256", "p384", "rsa2048", "rsa3072", "rsa4096"])]
    pub key: String,
    /// A purpose to request besides server_auth (always requested), e.g. client_auth
    /// where a vendor guide asks for Server and Client Authentication. Repeat or separate with commas.
    #[arg(long = "eku", value_name = "PURPOSE", value_delimiter = ',')]
    pub eku: Vec<String>,
    /// Organization (O), e.g. "Example Home Care, Inc."
    #[arg(long, value_name = "TEXT")]
    pub org: Option<String>,
    /// Organizational unit (OU), e.g. "IT".
    #[arg(long, value_name = "TEXT")]
    pub ou: Option<String>,
    /// City (L).
    #[arg(long, value_name = "TEXT")]
    pub locality: Option<String>,
    /// State or province (ST), spelled out.
    #[arg(long, value_name = "TEXT")]
    pub state: Option<String>,
    /// Country (C), two letters, e.g. US.
    #[arg(long, value_name = "CC")]
    pub country: Option<String>,
    /// Directory to write `<fqdn>.key` and `<fqdn>.csr` into.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// `certfront check`: every problem of the config and of every host, and the inventory.
pub(crate) fn check(path: &Path) -> ExitCode {
    let config = match certfront_config::load(path) {
        Ok(config) => config,
        Err(e) => {
            print_config_error(&e);
            return ExitCode::from(1);
        }
    };
    for w in &config.warnings {
        eprintln!("warning: {}: {w}", config.source.display());
    }
    // No download here (`check` writes nothing): the cached copies are checked.
    let mut config = config;
    let primed = crate::crlfetch::prime(&mut config, crate::crlfetch::When::Check);
    for w in primed.unwrap_or_else(|w| w) {
        eprintln!("warning: {w}");
    }
    let now = SystemTime::now();
    // The same pass as `run`'s: same problems, same words, same order.
    let inspection = prepare::inspect(config);
    for (host, verdict) in inspection.config.hosts.iter().zip(&inspection.hosts) {
        inventory::print_host(host, verdict, now);
    }
    for w in &inspection.warnings {
        eprintln!("warning: {w}");
    }
    let mut problems = 0;
    for p in inspection.problems() {
        eprintln!("error: {p}");
        problems += 1;
    }
    let verdicts = &inspection.hosts;
    let ca = &inspection.ca;
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
pub(crate) fn print_config_error(e: &certfront_config::ConfigError) {
    for line in e.to_string().lines() {
        eprintln!("error: {line}");
    }
}

/// `certfront certs csr`.
pub(crate) fn csr(args: &CsrArgs) -> ExitCode {
    let key: CsrKey = match args.key.parse() {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: --key: {e}");
            return ExitCode::from(1);
        }
    };
    let mut extended_key_usage = Vec::new();
    for text in &args.eku {
        match text.trim().parse::<ExtKeyUsage>() {
            Ok(eku) => extended_key_usage.push(eku),
            Err(e) => {
                eprintln!("error: --eku: {e}");
                return ExitCode::from(1);
            }
        }
    }
    let request = CsrRequest {
        names: args.fqdn.clone(),
        key,
        extended_key_usage,
        subject: CsrSubject {
            organization: args.org.clone(),
            organizational_unit: args.ou.clone(),
            locality: args.locality.clone(),
            state: args.state.clone(),
            country: args.country.clone(),
        },
    };
    match write_csr(&request, &args.out) {
        Ok(files) => {
            println!(
                "private key: {} (mode 0600, keep it secret)",
                files.key.display()
            );
            println!("request:     {}", files.csr.display());
            println!("names:       {}", args.fqdn.join(", "));
            let purposes: Vec<&str> = request.purposes().iter().map(|p| p.as_str()).collect();
            println!("purposes:    {}", purposes.join(", "));
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
