//! The command line (DESIGN "Command line"): `run`, `check`, `certs inspect`, `certs csr`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::commands;

#[derive(Debug, Parser)]
#[command(
    name = "certfront",
    version,
    about = "TLS-terminating reverse proxy that refuses bad certificates and rotates good ones without downtime"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Args)]
pub struct ConfigArg {
    /// Configuration file.
    #[arg(
        short = 'c',
        long = "config",
        env = "CERTFRONT_CONFIG",
        default_value = "config/certfront.toml"
    )]
    pub config: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve. Refuses to start (exit 2, nothing bound) when the config or any certificate violates.
    Run(ConfigArg),
    /// Validate the config and every certificate, print the inventory; exit 0 when all is well, 1 otherwise.
    Check(ConfigArg),
    /// Certificate tools.
    #[command(subcommand)]
    Certs(CertsCommand),
}

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Show what a PEM, DER or .pfx file holds: names, validity, key, signature, usages, thumbprints.
    Inspect {
        /// The certificate file.
        file: PathBuf,
        /// Environment variable that holds the .pfx password.
        #[arg(long = "password-env", value_name = "VAR")]
        password_env: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write a new private key (mode 0600) and a certificate signing request that meets the policy.
    Csr(CsrArgs),
}

/// `certs csr`: names and subject fields are written into the request as typed.
#[derive(Debug, clap::Args)]
pub struct CsrArgs {
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

/// Parses the command line and runs the command; the process exit code comes from here.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Command::Run(args) => commands::run(&args.config),
        Command::Check(args) => commands::check(&args.config),
        Command::Certs(CertsCommand::Inspect {
            file,
            password_env,
            json,
        }) => commands::inspect(&file, password_env.as_deref(), json),
        Command::Certs(CertsCommand::Csr(args)) => commands::csr(&args),
    }
}

/// Logs go to stderr; `RUST_LOG` filters them (default `info`).
fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}
