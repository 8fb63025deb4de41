//! The command line (DESIGN "Command line"): `run`, `check`, `certs inspect`, `certs csr`,
//! `health`, `import iis`.

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
pub(crate) struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

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

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Serve: refuses to start (exit 2, nothing bound) when the config or any certificate breaks a rule; SIGHUP re-reads both, SIGTERM drains.
    Run(ConfigArg),
    /// Validate the config and every certificate, print the inventory; exit 0 when all is well, 1 otherwise.
    Check(ConfigArg),
    /// Certificate tools.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Ask a running certfront's admin listener whether it is healthy: exit 0 when
    /// /healthz (or /readyz with --ready) answers 200, 1 otherwise. Needs no shell tools
    /// (the container HEALTHCHECK).
    Health(HealthArgs),
    /// Write a commented certfront.toml from another server's configuration.
    #[command(subcommand)]
    Import(ImportCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum ImportCommand {
    /// From IIS: a copy of applicationHost.config (and, optionally, the saved output of
    /// `netsh http show sslcert`); the config goes to stdout.
    Iis(commands::ImportIisArgs),
}

/// `certfront health`.
#[derive(Debug, clap::Args)]
pub(crate) struct HealthArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The admin listener to ask (IP:PORT); default: server.admin of the configuration.
    #[arg(long, value_name = "IP:PORT")]
    pub admin: Option<std::net::SocketAddr>,
    /// Ask /readyz (listeners bound, every host has a certificate, not draining) instead of /healthz.
    #[arg(long)]
    pub ready: bool,
    /// Give up after this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    pub timeout: u64,
}

#[derive(Debug, Subcommand)]
pub(crate) enum CertsCommand {
    /// Show what a certificate file holds (PEM, DER .cer, PKCS#7 .p7b, PKCS#12 .pfx); with
    /// --check, whether it meets the policy (exit 0) or not (exit 1).
    Inspect(InspectArgs),
    /// Write a new private key (mode 0600) and a certificate signing request that meets the policy.
    Csr(CsrArgs),
}

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

/// Parses the command line and runs the command; the process exit code comes from here.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Command::Run(args) => commands::run(&args.config),
        Command::Check(args) => commands::check(&args.config),
        Command::Certs(CertsCommand::Inspect(args)) => commands::inspect(&args),
        Command::Health(args) => commands::health(&args),
        Command::Certs(CertsCommand::Csr(args)) => commands::csr(&args),
        Command::Import(ImportCommand::Iis(args)) => commands::import_iis(&args),
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
