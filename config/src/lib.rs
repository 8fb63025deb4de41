//! certfront's configuration file, parsed then validated.
//!
//! The pipeline, one step per module:
//!
//! ```text
//! certfront.toml --read--> text
//!     --toml + serde (raw.rs, deny_unknown_fields)--> RawConfig
//!     --RawConfig::validate() (validate/)--> Config (model.rs)
//! ```
//!
//! - Parsing stops at the first syntax error, unknown key or wrong type, and
//!   reports it as toml does: line, column and the offending line
//!   ([`ConfigError::Parse`]).
//! - Validation never stops early: it collects *every* [`Problem`], each with
//!   its TOML path (`host[1].upstream`, `tls.default_host`), and returns them
//!   together ([`ConfigError::Invalid`]).
//! - The resulting [`Config`] has every default applied and every relative path
//!   resolved against the config file's directory; certificate files are not
//!   opened here (that is the certs crate's job).
#![forbid(unsafe_code)]

mod error;
mod model;
mod names;
mod raw;
mod upstream;
mod validate;

#[cfg(test)]
mod tests;

use std::path::Path;

pub use error::{ConfigError, Problem};
/// The network type of `server.trusted_proxies`, so users need no own `ipnet` dependency.
pub use ipnet::IpNet;
pub use model::{
    AccessLog, Acme, AcmeChallenge, AcmeEab, Action, ClientAuth, ClientAuthMode, Config,
    CrlExpired, CrlScope, Host, Limits, Server, Tls, TlsVersion, UnknownSni, Upstream,
};
pub use raw::{
    BoolOrString, OneOrMany, RawAcme, RawCcs, RawClientAuth, RawConfig, RawHost, RawLimits,
    RawPolicy, RawRespond, RawServer, RawTls,
};

/// The file a Central Certificate Store holds for a host, as IIS names it:
/// `app.example.org.pfx`, and `_.example.org.pfx` for `*.example.org`.
pub fn ccs_file_name(fqdn: &str) -> String {
    match fqdn.strip_prefix("*.") {
        Some(rest) => format!("_.{rest}.pfx"),
        None => format!("{fqdn}.pfx"),
    }
}

/// Reads, parses and validates a config file. Relative paths inside it are
/// resolved against its directory (kept relative when `path` is relative).
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let bytes = certfront_certs::read::read_file(path, certfront_certs::read::FileKind::Config)
        .map_err(|io| ConfigError::Read {
            path: path.to_path_buf(),
            io,
        })?;
    let text = String::from_utf8(bytes).map_err(|e| ConfigError::Read {
        path: path.to_path_buf(),
        io: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })?;
    let base_dir = path.parent().unwrap_or(Path::new(""));
    from_text(&text, path, base_dir)
}

/// Parses and validates config text that comes from no file (tests, tools);
/// relative paths are resolved against `base_dir`, and `Config::source` and
/// error messages say `<inline>`.
pub fn parse(text: &str, base_dir: &Path) -> Result<Config, ConfigError> {
    from_text(text, Path::new("<inline>"), base_dir)
}

fn from_text(text: &str, source: &Path, base_dir: &Path) -> Result<Config, ConfigError> {
    let raw = RawConfig::from_toml(text).map_err(|e| ConfigError::Parse {
        path: source.to_path_buf(),
        message: e.to_string().trim_end().to_string(),
    })?;
    raw.validate(source, base_dir)
        .map_err(|problems| ConfigError::Invalid {
            path: source.to_path_buf(),
            problems,
        })
}
