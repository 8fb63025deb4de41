//! `RawConfig::validate()`: every rule of DESIGN "Configuration", every problem
//! collected with its TOML path, defaults applied, relative paths resolved.

mod acme;
mod ccs;
mod cross;
mod host;
pub(crate) mod limits;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use certfront_certs::Policy;
use ipnet::IpNet;

use crate::error::Problem;
use crate::model::{AccessLog, Config, Server, Tls, TlsVersion, UnknownSni};
use crate::raw::{BoolOrString, OneOrMany, RawConfig, RawPolicy, RawServer, RawTls};

impl RawConfig {
    /// Checks everything and builds the [`Config`], or returns every problem
    /// found (never only the first). `source` is recorded in the result;
    /// relative paths are resolved against `base_dir`.
    pub fn validate(self, source: &Path, base_dir: &Path) -> Result<Config, Vec<Problem>> {
        let mut v = Validator {
            base_dir,
            problems: Vec::new(),
            acme: None,
            ccs: None,
            warnings: Vec::new(),
        };
        let server = v.server(self.server);
        let (tls, default_host) = v.tls(self.tls);
        let policy = v.policy("policy", self.policy, &Policy::default());
        let acme = v.acme(self.acme, &server, &policy);
        v.ccs(self.ccs, &self.hosts);
        let (hosts, claimed) = v.hosts(self.hosts, &policy);
        let default_host = default_host.and_then(|name| v.default_host(&name, &claimed));
        let limits = v.limits(self.limits);
        if !v.problems.is_empty() {
            return Err(v.problems);
        }
        let hosts = hosts
            .into_iter()
            .map(|h| h.expect("no problems, so every host is built"));
        Ok(Config {
            source: source.to_path_buf(),
            server,
            tls: Tls {
                default_host,
                ..tls
            },
            policy,
            hosts: hosts.collect(),
            limits,
            acme,
            warnings: v.warnings,
        })
    }
}

/// Walks a [`RawConfig`], collecting problems instead of stopping at one.
struct Validator<'a> {
    base_dir: &'a Path,
    problems: Vec<Problem>,
    /// What `acme = true` hosts need from `[acme]`, once it has been read.
    acme: Option<acme::AcmeFacts>,
    /// `[ccs]`, once read: the folder and the password file, resolved.
    ccs: Option<ccs::Ccs>,
    /// Valid but probably not what the administrator wants (`check` prints them).
    warnings: Vec<Problem>,
}

impl Validator<'_> {
    fn problem(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem::new(path, message));
    }

    fn warn(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(Problem::new(path, message));
    }

    /// A file or directory path from the config, resolved against the config's directory.
    fn path(&mut self, at: &str, value: &str) -> PathBuf {
        if value.is_empty() {
            self.problem(at, "empty path: expected a file or directory name");
        }
        self.base_dir.join(value)
    }

    fn server(&mut self, raw: RawServer) -> Server {
        let mut listen = Vec::new();
        match raw.listen {
            None => self.problem(
                "server.listen",
                "missing: at least one TLS listen address is required, e.g. listen = [\"0.0.0.0:443\"]",
            ),
            Some(OneOrMany::Many(list)) if list.is_empty() => self.problem(
                "server.listen",
                "empty list: at least one TLS listen address is required, e.g. listen = [\"0.0.0.0:443\"]",
            ),
            Some(OneOrMany::One(text)) => listen.extend(self.addr("server.listen", &text)),
            Some(OneOrMany::Many(list)) => {
                for (i, text) in list.iter().enumerate() {
                    listen.extend(self.addr(&format!("server.listen[{i}]"), text));
                }
            }
        }
        let http_redirect = raw
            .http_redirect
            .and_then(|t| self.addr("server.http_redirect", &t));
        let admin = raw.admin.and_then(|t| self.addr("server.admin", &t));
        self.distinct_listeners(&listen, http_redirect, admin);
        let state_dir = match raw.state_dir {
            Some(dir) => self.path("server.state_dir", &dir),
            None => self.base_dir.join("state"),
        };
        Server {
            listen,
            http_redirect,
            admin,
            admin_hosts: self.admin_hosts(raw.admin_hosts.unwrap_or_default()),
            state_dir,
            drain_seconds: self.ranged("server.drain_seconds", raw.drain_seconds, &limits::DRAIN),
            rescan_seconds: self.ranged(
                "server.rescan_seconds",
                raw.rescan_seconds,
                &limits::RESCAN,
            ),
            access_log: self.access_log(raw.access_log),
            access_log_file: raw
                .access_log_file
                .map(|f| self.path("server.access_log_file", &f)),
            watch_config: raw.watch_config.unwrap_or(true),
            trusted_proxies: self.trusted_proxies(raw.trusted_proxies.unwrap_or_default()),
        }
    }

    /// `server.admin_hosts`: DNS names (normalized), or IP addresses.
    fn admin_hosts(&mut self, list: Vec<String>) -> Vec<String> {
        let mut names = Vec::new();
        for (i, text) in list.iter().enumerate() {
            let name = crate::names::normalize(text);
            if name.parse::<IpAddr>().is_ok() {
                names.push(name);
                continue;
            }
            match crate::names::check_upstream_host_name(&name) {
                Ok(()) => names.push(name),
                Err(why) => self.problem(
                    format!("server.admin_hosts[{i}]"),
                    format!(
                        "not a host name: {text:?} ({why}); expected a name such as                          \"certfront-admin.example.org\" (no port, no scheme)"
                    ),
                ),
            }
        }
        names
    }

    /// `server.access_log`: a format name, or the boolean it was before formats existed.
    fn access_log(&mut self, raw: Option<BoolOrString>) -> AccessLog {
        match raw {
            None | Some(BoolOrString::Bool(true)) => AccessLog::Text,
            Some(BoolOrString::Bool(false)) => AccessLog::Off,
            Some(BoolOrString::String(s)) => match s.as_str() {
                "off" => AccessLog::Off,
                "text" => AccessLog::Text,
                "json" => AccessLog::Json,
                "w3c" => AccessLog::W3c,
                _ => {
                    self.problem(
                        "server.access_log",
                        format!(
                            "unknown format {s:?}: expected \"off\", \"text\", \"json\", \"w3c\", true or false"
                        ),
                    );
                    AccessLog::Text
                }
            },
        }
    }

    /// `server.trusted_proxies`: CIDRs (`10.0.0.0/8`, `fd00::/8`) or bare addresses
    /// (`192.0.2.7`, a /32). Host bits under the prefix (`10.1.2.3/8`) are cleared, which
    /// is what matching a peer against the network does anyway.
    fn trusted_proxies(&mut self, list: Vec<String>) -> Vec<IpNet> {
        let mut nets = Vec::new();
        for (i, text) in list.iter().enumerate() {
            match parse_net(text) {
                Ok(net) => nets.push(net),
                Err(why) => self.problem(
                    format!("server.trusted_proxies[{i}]"),
                    format!(
                        "not an IP network or address: {text:?}{why}; expected a CIDR such as \
                         \"10.0.0.0/8\" or \"fd00::/8\", or an address such as \"192.0.2.7\""
                    ),
                ),
            }
        }
        nets
    }

    fn addr(&mut self, at: &str, text: &str) -> Option<SocketAddr> {
        match text.parse::<SocketAddr>() {
            Ok(addr) => Some(addr),
            Err(_) => {
                let why = if text.contains("://") {
                    " (a listen address has no scheme)"
                } else if text.matches(':').count() > 1 && !text.starts_with('[') {
                    " (an IPv6 address must be in brackets, then the port: \"[::1]:443\")"
                } else if text.parse::<IpAddr>().is_ok() {
                    " (no port)"
                } else {
                    ""
                };
                self.problem(
                    at,
                    format!(
                        "not an address: {text:?}{why}; expected IP:PORT such as \
                         \"0.0.0.0:443\", \"127.0.0.1:8443\" or \"[::]:443\""
                    ),
                );
                None
            }
        }
    }

    /// Two listeners on one address cannot both bind. Port 0 (any free port,
    /// as tests use) never collides.
    fn distinct_listeners(
        &mut self,
        listen: &[SocketAddr],
        http_redirect: Option<SocketAddr>,
        admin: Option<SocketAddr>,
    ) {
        let mut seen: Vec<(SocketAddr, String)> = Vec::new();
        let named = listen
            .iter()
            .enumerate()
            .map(|(i, a)| (*a, format!("server.listen[{i}]")))
            .chain(http_redirect.map(|a| (a, "server.http_redirect".to_string())))
            .chain(admin.map(|a| (a, "server.admin".to_string())));
        for (addr, at) in named {
            if addr.port() == 0 {
                continue;
            }
            if let Some((_, first)) = seen.iter().find(|(a, _)| *a == addr) {
                let message =
                    format!("{addr} is also {first}; each listener needs its own address");
                self.problem(at.clone(), message);
            }
            seen.push((addr, at));
        }
    }

    /// Returns `[tls]` without `default_host`, and the raw `default_host`,
    /// which can only be checked once the hosts are known.
    fn tls(&mut self, raw: RawTls) -> (Tls, Option<String>) {
        let min_version = match raw.min_version.as_deref() {
            None | Some("1.2") => TlsVersion::V1_2,
            Some("1.3") => TlsVersion::V1_3,
            Some(other) => {
                let legacy = matches!(
                    other
                        .trim()
                        .trim_start_matches(['T', 'L', 'S', 't', 'l', 's', ' ', 'v']),
                    "1" | "1.0" | "1.1"
                );
                let why = if legacy {
                    " (TLS 1.0 and 1.1 are deprecated, RFC 8996, and certfront's TLS library \
                     does not implement them: clients that only speak them cannot connect at \
                     all; Windows 7 and Server 2008 R2 need the update that enables TLS 1.2, \
                     Android 4.x and Java 7 clients an upgrade)"
                } else {
                    ""
                };
                let message =
                    format!("{other:?} is not supported: expected \"1.2\" or \"1.3\"{why}");
                self.problem("tls.min_version", message);
                TlsVersion::V1_2
            }
        };
        let unknown_sni = match raw.unknown_sni.as_deref() {
            None | Some("reject") => UnknownSni::Reject,
            Some("default") => {
                if raw.default_host.is_none() {
                    self.problem(
                        "tls.unknown_sni",
                        "\"default\" needs tls.default_host: the host whose certificate \
                         is served for names no host has",
                    );
                }
                UnknownSni::Default
            }
            Some(other) => {
                let message =
                    format!("{other:?} is not an option: expected \"reject\" or \"default\"");
                self.problem("tls.unknown_sni", message);
                UnknownSni::Reject
            }
        };
        let trust = raw
            .trust
            .iter()
            .enumerate()
            .map(|(i, p)| self.path(&format!("tls.trust[{i}]"), p))
            .collect();
        let tls = Tls {
            min_version,
            unknown_sni,
            default_host: None,
            trust,
            resumption: raw.resumption.unwrap_or(true),
            ticket_key_file: raw
                .ticket_key_file
                .as_deref()
                .map(|p| self.path("tls.ticket_key_file", p)),
        };
        if tls.ticket_key_file.is_some() && !tls.resumption {
            self.problem(
                "tls.ticket_key_file",
                "set, but tls.resumption = false: session tickets are off, so the keys would \
                 never be used; remove one of the two",
            );
        }
        (tls, raw.default_host)
    }

    /// `[policy]` (`at` = "policy") over the defaults, or `[host.policy]` (`at` =
    /// "host[N].policy") over the global policy: every key set replaces the one below.
    fn policy(&mut self, at: &str, raw: RawPolicy, base: &Policy) -> Policy {
        let d = base.clone();
        let mut bits = |key: &str, value: Option<u32>, default: u32| match value {
            Some(0) => {
                self.problem(
                    format!("{at}.{key}"),
                    format!("0 bits: must be > 0 (the default is {default})"),
                );
                default
            }
            Some(n) => n,
            None => default,
        };
        let min_rsa_bits = bits("min_rsa_bits", raw.min_rsa_bits, d.min_rsa_bits);
        let min_ec_bits = bits("min_ec_bits", raw.min_ec_bits, d.min_ec_bits);
        Policy {
            min_rsa_bits,
            min_ec_bits,
            min_signature_hash: self
                .parsed(&format!("{at}.min_signature_hash"), raw.min_signature_hash)
                .unwrap_or(d.min_signature_hash),
            rsa_key_usage: self.parsed_list(
                &format!("{at}.rsa_key_usage"),
                raw.rsa_key_usage,
                d.rsa_key_usage,
            ),
            ec_key_usage: self.parsed_list(
                &format!("{at}.ec_key_usage"),
                raw.ec_key_usage,
                d.ec_key_usage,
            ),
            extended_key_usage: self.parsed_list(
                &format!("{at}.extended_key_usage"),
                raw.extended_key_usage,
                d.extended_key_usage,
            ),
            require_chain: raw.require_chain.unwrap_or(d.require_chain),
            expiry_warning_days: raw.expiry_warning_days.unwrap_or(d.expiry_warning_days),
            key_file_mode: self
                .parsed(&format!("{at}.key_file_mode"), raw.key_file_mode)
                .unwrap_or(d.key_file_mode),
        }
    }

    /// A value spelled as its type's `FromStr` expects (the certs crate's names).
    fn parsed<T: FromStr<Err = String>>(&mut self, at: &str, text: Option<String>) -> Option<T> {
        match text?.parse() {
            Ok(value) => Some(value),
            Err(why) => {
                self.problem(at, why);
                None
            }
        }
    }

    fn parsed_list<T: FromStr<Err = String>>(
        &mut self,
        at: &str,
        list: Option<Vec<String>>,
        default: Vec<T>,
    ) -> Vec<T> {
        let Some(list) = list else { return default };
        let mut values = Vec::new();
        for (i, text) in list.into_iter().enumerate() {
            values.extend(self.parsed(&format!("{at}[{i}]"), Some(text)));
        }
        values
    }
}

/// One `trusted_proxies` entry; the error is a hint (with a leading space) or empty.
fn parse_net(text: &str) -> Result<IpNet, &'static str> {
    match text.split_once('/') {
        Some((addr, _)) => match text.parse::<IpNet>() {
            Ok(net) => Ok(net.trunc()),
            Err(_) if addr.parse::<IpAddr>().is_ok() => {
                Err(" (the prefix length is 0 to 32 for IPv4, 0 to 128 for IPv6)")
            }
            Err(_) => Err(" (the part before \"/\" is not an IP address)"),
        },
        None => match text.parse::<IpAddr>() {
            Ok(ip) => Ok(IpNet::from(ip)),
            Err(_) if text.parse::<SocketAddr>().is_ok() => {
                Err(" (no port: a proxy is matched by its address alone)")
            }
            Err(_) if text.bytes().any(|b| b.is_ascii_alphabetic()) && !text.contains(':') => Err(
                " (a host name: proxies are matched by the peer's IP address, write the address)",
            ),
            Err(_) => Err(""),
        },
    }
}
