//! The command line (DESIGN "Command line"): `run`, `check`, `certs inspect`, `certs csr`,
//! `health`, `import iis`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::commands::{self, ConfigArg, CsrArgs, HealthArgs, InspectArgs};

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

#[derive(Debug, Subcommand)]
pub(crate) enum CertsCommand {
    /// Show what a certificate file holds (PEM, DER .cer, PKCS#7 .p7b, PKCS#12 .pfx); with
    /// --check, whether it meets the policy (exit 0) or not (exit 1).
    Inspect(InspectArgs),
    /// Write a new private key (mode 0600) and a certificate signing request that meets the policy.
    Csr(CsrArgs),
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
