//! `certfront import iis`: reads a copy of IIS's `applicationHost.config` (and the saved
//! output of `netsh http show sslcert`) and prints a commented `certfront.toml`.

mod apphost;
mod netsh;
mod render;
#[cfg(test)]
mod tests;
mod text;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `certfront import iis`.
#[derive(Debug, clap::Args)]
pub(crate) struct ImportIisArgs {
    /// A copy of %windir%\System32\inetsrv\config\applicationHost.config.
    #[arg(value_name = "APPLICATIONHOST_CONFIG")]
    pub config: PathBuf,
    /// The saved output of `netsh http show sslcert` (the certificate thumbprint of
    /// each binding); UTF-8 or the UTF-16 that PowerShell's `>` writes.
    #[arg(long, value_name = "SSLCERT_TXT")]
    pub netsh: Option<PathBuf>,
    /// The IIS server's IP address, for bindings on all addresses (`*`): upstreams point at it.
    #[arg(long, value_name = "IP")]
    pub iis_address: Option<std::net::IpAddr>,
    /// The directory the exported .pfx files and their password files go to.
    #[arg(long, value_name = "DIR", default_value = "/etc/certfront")]
    pub cert_dir: String,
    /// Where the IIS Central Certificate Store share is mounted (for CCS bindings).
    #[arg(long, value_name = "DIR", default_value = "/mnt/ccs")]
    pub ccs_dir: String,
}

/// Neither file may be larger: a real applicationHost.config is well under 1 MiB.
pub(crate) const MAX_INPUT_BYTES: u64 = 8 * 1024 * 1024;

/// Why an input file could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ImportError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: larger than {limit} bytes: not an applicationHost.config or netsh output", path.display())]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("{}: not text: expected UTF-8 or UTF-16 (with its byte-order mark)", path.display())]
    NotText { path: PathBuf },
    #[error("{}: not an applicationHost.config: {source} (a DTD or entity declaration is refused)", path.display())]
    Xml {
        path: PathBuf,
        #[source]
        source: roxmltree::Error,
    },
}

/// Runs the command: the config on stdout, problems on stderr; exit 0 when at least one
/// host was carried over, 1 otherwise.
pub(crate) fn import_iis(args: &ImportIisArgs) -> ExitCode {
    match convert(args) {
        Ok((text, hosts)) => {
            print!("{text}");
            if hosts == 0 {
                eprintln!(
                    "error: {}: no https binding with a host name: nothing to carry over \
                     (see the comments at the end of the output)",
                    args.config.display()
                );
                return ExitCode::from(1);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// The rendered config and the number of hosts in it.
pub(crate) fn convert(args: &ImportIisArgs) -> Result<(String, usize), ImportError> {
    let xml = read_text(&args.config)?;
    let app = apphost::parse(&xml).map_err(|source| ImportError::Xml {
        path: args.config.clone(),
        source,
    })?;
    let mut sources = args.config.display().to_string();
    let netsh = match &args.netsh {
        Some(path) => {
            let entries = netsh::parse(&read_text(path)?);
            sources.push_str(&format!(
                "\n{} ({} certificate bindings)",
                path.display(),
                entries.len()
            ));
            if entries.is_empty() {
                eprintln!(
                    "warning: {}: no \"Hostname:port\", \"IP:port\" or \"Central Certificate \
                     Store\" entry found: expected the English output of `netsh http show sslcert`",
                    path.display()
                );
            }
            entries
        }
        None => Vec::new(),
    };
    let address = args.iis_address.map(|a| a.to_string());
    let options = render::Options {
        iis_address: address.as_deref(),
        cert_dir: args.cert_dir.trim_end_matches('/'),
        ccs_dir: args.ccs_dir.trim_end_matches('/'),
        sources: &sources,
    };
    Ok(render::render(&app, &netsh, &options))
}

/// Reads at most [`MAX_INPUT_BYTES`] and decodes UTF-8 or, with a byte-order mark,
/// UTF-16 (Windows PowerShell 5's `>` writes UTF-16LE).
fn read_text(path: &Path) -> Result<String, ImportError> {
    let read = |source| ImportError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read)?;
    let mut bytes = Vec::new();
    file.take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read)?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(ImportError::TooLarge {
            path: path.to_path_buf(),
            limit: MAX_INPUT_BYTES,
        });
    }
    decode(&bytes).ok_or_else(|| ImportError::NotText {
        path: path.to_path_buf(),
    })
}

fn decode(bytes: &[u8]) -> Option<String> {
    let utf16 = |le: bool, rest: &[u8]| {
        if !rest.len().is_multiple_of(2) {
            return None;
        }
        let units: Vec<u16> = rest
            .chunks_exact(2)
            .map(|c| {
                if le {
                    u16::from_le_bytes([c[0], c[1]])
                } else {
                    u16::from_be_bytes([c[0], c[1]])
                }
            })
            .collect();
        String::from_utf16(&units).ok()
    };
    match bytes {
        [0xFF, 0xFE, rest @ ..] => utf16(true, rest),
        [0xFE, 0xFF, rest @ ..] => utf16(false, rest),
        [0xEF, 0xBB, 0xBF, rest @ ..] => String::from_utf8(rest.to_vec()).ok(),
        _ => String::from_utf8(bytes.to_vec()).ok(),
    }
}
