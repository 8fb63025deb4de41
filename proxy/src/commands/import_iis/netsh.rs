//! The saved output of `netsh http show sslcert`: which certificate (thumbprint and
//! store) HTTP.sys serves for each `Hostname:port`, `IP:port` or CCS port.

/// What an entry is keyed by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Key {
    /// `Hostname:port` (an SNI binding), host lower-case.
    Host(String, u16),
    /// `IP:port` (`0.0.0.0:443` for IIS's `*`).
    Ip(String, u16),
    /// `Central Certificate Store : 443`.
    Ccs(u16),
}

/// One binding of the output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SslCert {
    pub key: Key,
    /// Upper-case hex, as Windows shows it; `None` for `(null)` (CCS entries).
    pub hash: Option<String>,
    pub store: Option<String>,
    /// `Negotiate Client Certificate : Enabled`.
    pub negotiate_client_cert: bool,
}

/// Parses every entry; lines that are not `name : value` (the banner, rulers, blank
/// lines) separate or precede entries. Localized output (a non-English Windows) has
/// other field names and yields no entries; the caller says so.
pub(super) fn parse(text: &str) -> Vec<SslCert> {
    let mut out: Vec<SslCert> = Vec::new();
    for line in text.lines() {
        let Some((name, value)) = field(line) else {
            continue;
        };
        let key = match name.to_ascii_lowercase().as_str() {
            "hostname:port" => split_port(value).map(|(h, p)| Key::Host(h.to_ascii_lowercase(), p)),
            "ip:port" => split_port(value).map(|(ip, p)| Key::Ip(ip.to_string(), p)),
            "central certificate store" => value.parse().ok().map(Key::Ccs),
            _ => None,
        };
        if let Some(key) = key {
            out.push(SslCert {
                key,
                hash: None,
                store: None,
                negotiate_client_cert: false,
            });
            continue;
        }
        let Some(entry) = out.last_mut() else {
            continue;
        };
        match name.to_ascii_lowercase().as_str() {
            "certificate hash" if !value.eq_ignore_ascii_case("(null)") && !value.is_empty() => {
                entry.hash = Some(value.to_ascii_uppercase());
            }
            "certificate store name" if !value.eq_ignore_ascii_case("(null)") => {
                entry.store = Some(value.to_string());
            }
            "negotiate client certificate" => {
                entry.negotiate_client_cert = value.eq_ignore_ascii_case("enabled");
            }
            _ => {}
        }
    }
    out
}

/// `    Certificate Hash             : 1a2b...` -> ("Certificate Hash", "1a2b..."). The
/// name is padded with spaces before the colon, and `Hostname:port` has a colon of its
/// own, so the separator is the first colon that follows a space.
fn field(line: &str) -> Option<(&str, &str)> {
    let at = line.find(" :")?;
    let name = line[..at].trim();
    let value = line[at + 2..].trim();
    (!name.is_empty()).then_some((name, value))
}

/// `host:443`, `0.0.0.0:443`, `[::]:443`.
fn split_port(value: &str) -> Option<(&str, u16)> {
    let (host, port) = value.rsplit_once(':')?;
    Some((host, port.parse().ok()?))
}

impl SslCert {
    /// `Cert:\LocalMachine\My`-style name of the store, for the comment.
    pub(super) fn store_name(&self) -> &str {
        self.store.as_deref().unwrap_or("My")
    }
}
