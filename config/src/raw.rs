//! The TOML file as written: serde structs, every table `deny_unknown_fields`,
//! every key optional so that `validate()` (not serde) reports what is missing,
//! all at once and with its path.
//!
//! Values with a closed set of spellings (`min_version`, `mode`, the policy
//! names) are kept as strings here for the same reason: serde would stop at the
//! first bad one.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};

/// The whole file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub tls: RawTls,
    #[serde(default)]
    pub policy: RawPolicy,
    /// `[[host]]` tables, in file order.
    #[serde(default, rename = "host")]
    pub hosts: Vec<RawHost>,
    #[serde(default)]
    pub limits: RawLimits,
    /// `[acme]`: absent unless some host orders its certificate by ACME.
    pub acme: Option<RawAcme>,
    /// `[ccs]`: an IIS Central Certificate Store folder, for hosts with `ccs = true`.
    pub ccs: Option<RawCcs>,
}

impl RawConfig {
    /// Parses TOML text; unknown keys and wrong types fail here, with line and column.
    pub fn from_toml(text: &str) -> Result<RawConfig, toml::de::Error> {
        toml::from_str(text)
    }
}

/// `[server]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// One address or a list.
    pub listen: Option<OneOrMany>,
    pub http_redirect: Option<String>,
    pub admin: Option<String>,
    /// Extra names a request to the admin listener may carry in `Host`.
    pub admin_hosts: Option<Vec<String>>,
    pub state_dir: Option<String>,
    pub drain_seconds: Option<u64>,
    pub rescan_seconds: Option<u64>,
    /// `true`/`false` (before formats existed) or `"off" | "text" | "json" | "w3c"`.
    pub access_log: Option<BoolOrString>,
    pub access_log_file: Option<String>,
    pub watch_config: Option<bool>,
    /// CIDRs or bare IP addresses whose `X-Forwarded-For` is appended to.
    pub trusted_proxies: Option<Vec<String>>,
}

/// A setting that was a boolean before it grew named values (`server.access_log`).
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum BoolOrString {
    Bool(bool),
    String(String),
}

/// `[tls]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub min_version: Option<String>,
    pub unknown_sni: Option<String>,
    pub default_host: Option<String>,
    #[serde(default)]
    pub trust: Vec<String>,
    pub resumption: Option<bool>,
    /// Shared session-ticket keys (see `docs/configuration.md`), so clients resume on any instance.
    pub ticket_key_file: Option<String>,
}

/// `[policy]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    pub min_rsa_bits: Option<u32>,
    pub min_ec_bits: Option<u32>,
    pub min_signature_hash: Option<String>,
    pub rsa_key_usage: Option<Vec<String>>,
    pub ec_key_usage: Option<Vec<String>>,
    pub extended_key_usage: Option<Vec<String>>,
    pub require_chain: Option<bool>,
    pub expiry_warning_days: Option<u32>,
    pub key_file_mode: Option<String>,
}

/// One `[[host]]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHost {
    pub fqdn: Option<String>,
    #[serde(default)]
    pub aliases: Vec<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
    pub pfx: Option<String>,
    pub pfx_password_env: Option<String>,
    pub pfx_password_file: Option<String>,
    pub internal: Option<bool>,
    /// The certificate is ordered from `[acme]` and kept in `state_dir/acme/<fqdn>/`.
    pub acme: Option<bool>,
    /// The certificate is `<fqdn>.pfx` in the `[ccs]` folder (`_.rest.pfx` for `*.rest`).
    pub ccs: Option<bool>,
    /// One URL or table, or a list of them.
    pub upstream: Option<RawUpstreams>,
    pub upstream_host: Option<String>,
    pub upstream_ca: Option<String>,
    pub respond: Option<RawRespond>,
    pub client_auth: Option<RawClientAuth>,
    /// `[host.policy]`: overrides of `[policy]` keys for this host only.
    pub policy: Option<RawPolicy>,
}

/// `respond = { status = 200, body = "..." }`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRespond {
    /// Signed so that an out-of-range value is a located problem, not a parse error.
    pub status: Option<i64>,
    pub body: Option<String>,
}

/// `[host.client_auth]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClientAuth {
    pub mode: Option<String>,
    pub ca: Option<String>,
    pub deny: Option<String>,
    /// CRL files (PEM or DER), each checked against `ca`.
    #[serde(default)]
    pub crl: Vec<String>,
    /// CRLs downloaded over HTTP or HTTPS, cached in `state_dir/crl`.
    #[serde(default)]
    pub crl_url: Vec<String>,
    pub crl_refresh_seconds: Option<u64>,
    pub crl_scope: Option<String>,
    pub crl_expired: Option<String>,
    /// Also send the client certificate as `X-ARR-ClientCert` (IIS ARR's header).
    pub arr_client_cert: Option<bool>,
}

/// `[ccs]`: IIS's Central Certificate Store, one folder of `.pfx` files named after
/// the host, one password for all.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCcs {
    pub path: Option<String>,
    pub password_file: Option<String>,
}

/// `[acme]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAcme {
    pub directory: Option<String>,
    pub email: Option<String>,
    pub eab_kid: Option<String>,
    pub eab_hmac_key_env: Option<String>,
    pub ca: Option<String>,
    pub challenge: Option<String>,
    pub key: Option<String>,
    /// Signed so that a negative value is a located problem, not a parse error.
    pub renew_before_days: Option<i64>,
}

/// `[limits]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub handshake_timeout_seconds: Option<u64>,
    pub header_read_timeout_seconds: Option<u64>,
    pub idle_timeout_seconds: Option<u64>,
    pub max_header_bytes: Option<u64>,
    pub max_connections: Option<u64>,
    pub upstream_connect_timeout_seconds: Option<u64>,
    pub upstream_response_timeout_seconds: Option<u64>,
    pub h2_max_concurrent_streams: Option<u64>,
    pub tunnel_idle_timeout_seconds: Option<u64>,
    pub max_connection_age_seconds: Option<u64>,
    pub max_connections_per_ip: Option<u64>,
    pub redirect_max_connections: Option<u64>,
    pub upstream_max_connections: Option<u64>,
    pub upstream_max_idle_connections: Option<u64>,
    pub body_timeout_seconds: Option<u64>,
    pub send_timeout_seconds: Option<u64>,
}

/// A string or a list of strings (`upstream`, `listen`).
///
/// Deserialized by hand rather than with `#[serde(untagged)]`, whose only
/// error is "data did not match any variant"; this one says what is expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OneOrManyVisitor;

        impl<'de> Visitor<'de> for OneOrManyVisitor {
            type Value = OneOrMany;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany::One(v.to_string()))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<String>()? {
                    items.push(item);
                }
                Ok(OneOrMany::Many(items))
            }
        }

        deserializer.deserialize_any(OneOrManyVisitor)
    }
}

/// `upstream`: `"https://10.0.0.21"`, `{ url = "https://10.0.0.21", tls_name = "app01.corp.example" }`,
/// or a list mixing both forms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RawUpstreams {
    One(RawUpstream),
    Many(Vec<RawUpstream>),
}

/// One upstream: a URL alone, or a table with the URL and its TLS options.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    pub url: Option<String>,
    /// The name sent as SNI and verified in the upstream's certificate (default: the URL's host).
    pub tls_name: Option<String>,
}

impl RawUpstream {
    fn url(url: String) -> Self {
        RawUpstream {
            url: Some(url),
            tls_name: None,
        }
    }
}

impl<'de> Deserialize<'de> for RawUpstreams {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct UpstreamsVisitor;

        impl<'de> Visitor<'de> for UpstreamsVisitor {
            type Value = RawUpstreams;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a URL, a table { url = \"...\", tls_name = \"...\" }, or a list of them",
                )
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawUpstreams, E> {
                Ok(RawUpstreams::One(RawUpstream::url(v.to_string())))
            }

            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<RawUpstreams, A::Error> {
                let table = RawUpstream::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(RawUpstreams::One(table))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawUpstreams, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<UpstreamItem>()? {
                    items.push(item.0);
                }
                Ok(RawUpstreams::Many(items))
            }
        }

        deserializer.deserialize_any(UpstreamsVisitor)
    }
}

/// One element of an `upstream` list: a URL or a table.
struct UpstreamItem(RawUpstream);

impl<'de> Deserialize<'de> for UpstreamItem {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ItemVisitor;

        impl<'de> Visitor<'de> for ItemVisitor {
            type Value = UpstreamItem;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a URL or a table { url = \"...\", tls_name = \"...\" }")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<UpstreamItem, E> {
                Ok(UpstreamItem(RawUpstream::url(v.to_string())))
            }

            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<UpstreamItem, A::Error> {
                RawUpstream::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(UpstreamItem)
            }
        }

        deserializer.deserialize_any(ItemVisitor)
    }
}
