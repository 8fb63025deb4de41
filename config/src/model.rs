//! The checked configuration that the proxy runs on: every value validated,
//! every default applied, every relative path resolved.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use certfront_certs::{CertSource, CsrKey, Policy};
use ipnet::IpNet;

/// A validated configuration file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The file this was read from (as given, not canonicalized); `<inline>` for [`crate::parse`].
    pub source: PathBuf,
    pub server: Server,
    pub tls: Tls,
    pub policy: Policy,
    /// In file order; never empty.
    pub hosts: Vec<Host>,
    pub limits: Limits,
    /// `[acme]`, when present (then at least its directory and email are valid).
    pub acme: Option<Acme>,
    /// Valid settings that are probably mistakes, with their TOML path (`check`
    /// prints them, `run` logs them; neither refuses).
    pub warnings: Vec<crate::Problem>,
}

impl Config {
    /// The host configured with exactly this name (fqdn or alias; case and a
    /// trailing dot ignored). No wildcard matching: that is the certs crate's job.
    pub fn host(&self, name: &str) -> Option<&Host> {
        let name = crate::names::normalize(name);
        self.hosts
            .iter()
            .find(|h| h.fqdn == name || h.aliases.contains(&name))
    }
}

/// `[server]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    /// TLS listeners; at least one. Port 0 (tests) is allowed.
    pub listen: Vec<SocketAddr>,
    pub http_redirect: Option<SocketAddr>,
    pub admin: Option<SocketAddr>,
    /// Names (normalized) a request to the admin listener may carry in `Host`, beside its
    /// own address (and `localhost` on a loopback address): a load balancer's or a
    /// management DNS name. Any other Host gets 421 (DNS rebinding).
    pub admin_hosts: Vec<String>,
    /// Where the internal CA lives; default `state` next to the config file.
    pub state_dir: PathBuf,
    /// Graceful-shutdown budget; 0 means close at once.
    pub drain_seconds: u64,
    /// Periodic re-scan of certificate files; 0 turns it off.
    pub rescan_seconds: u64,
    /// One line per request, in this format.
    pub access_log: AccessLog,
    /// Where access-log lines go; `None` is stderr (the journal).
    pub access_log_file: Option<PathBuf>,
    /// Reload the whole configuration when its file (or a trust file it names) changes.
    pub watch_config: bool,
    /// Peers whose `X-Forwarded-For` is appended to (from anyone else it is replaced by
    /// the peer address). Networks in canonical form (host bits cleared); a bare IP
    /// address is a /32 or /128. Empty by default: no peer is trusted.
    pub trusted_proxies: Vec<IpNet>,
}

/// `server.access_log`: the format of the one line per request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum AccessLog {
    Off,
    /// `key=value` pairs, as certfront's other log lines (`true` before formats existed).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
    /// IIS's W3C Extended Log File Format, with its `#Fields` header.
    W3c,
}

impl AccessLog {
    pub fn is_on(self) -> bool {
        self != AccessLog::Off
    }
}

/// `tls.min_version`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TlsVersion {
    #[default]
    V1_2,
    V1_3,
}

impl fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsVersion::V1_2 => "1.2",
            TlsVersion::V1_3 => "1.3",
        })
    }
}

/// `tls.unknown_sni`: what a handshake for a name no host serves gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum UnknownSni {
    /// The handshake fails with `unrecognized_name`.
    #[default]
    Reject,
    /// `default_host`'s certificate is served.
    Default,
}

/// `[tls]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tls {
    pub min_version: TlsVersion,
    pub unknown_sni: UnknownSni,
    /// The `fqdn` of the host named by `default_host` (even when the file names
    /// it by an alias), so it can be looked up directly; also used without SNI.
    pub default_host: Option<String>,
    /// Extra trust anchors (private CA roots), resolved.
    pub trust: Vec<PathBuf>,
    pub resumption: bool,
    /// Session-ticket keys shared by every instance, resolved; `None`: random keys per process.
    pub ticket_key_file: Option<PathBuf>,
}

/// One `[[host]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    /// Lower-case, no trailing dot; may be a wildcard `*.example.org`.
    pub fqdn: String,
    /// Normalized like `fqdn`.
    pub aliases: Vec<String>,
    /// Exactly one of cert + key, pfx (+ password source), internal; paths resolved.
    pub source: CertSource,
    pub action: Action,
    /// The Host header sent upstream instead of the client's.
    pub upstream_host: Option<String>,
    /// Extra trust anchor for https upstreams, resolved.
    pub upstream_ca: Option<PathBuf>,
    pub client_auth: Option<ClientAuth>,
    /// `acme = true`: `source` is then the PEM pair in `state_dir/acme/<fqdn>/` that the
    /// ACME engine writes, and a missing or unusable pair does not stop the start.
    pub acme: bool,
    /// `ccs = true`: `source` is the `.pfx` of this host in the `[ccs]` folder, with the
    /// `[ccs]` password file, so reload, last-good and metrics are those of any `.pfx`.
    pub ccs: bool,
    /// `[policy]` with this host's `[host.policy]` overrides applied: what its
    /// certificate is held to, and what the internal CA issues for it.
    pub policy: Policy,
}

impl Host {
    /// Every name this host answers: the fqdn, then the aliases.
    pub fn names(&self) -> Vec<String> {
        std::iter::once(self.fqdn.clone())
            .chain(self.aliases.iter().cloned())
            .collect()
    }
}

/// What a host does with a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Forward, round robin over a non-empty list.
    Upstream(Vec<Upstream>),
    /// Answer directly (quick start, maintenance page, probe); status 200-599.
    Respond { status: u16, body: String },
}

/// One upstream server, from `http[s]://HOST[:PORT][/]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    /// `https`: re-encrypt to the upstream.
    pub tls: bool,
    /// IP address (IPv6 without brackets) or lower-case host name.
    pub host: String,
    /// As written, else 80 for http and 443 for https.
    pub port: u16,
    /// `tls_name`: the name sent as SNI and verified in an https upstream's
    /// certificate (normalized); `None`: the URL's host.
    pub tls_name: Option<String>,
    /// As written in the file; for logs only.
    pub original: String,
}

impl Upstream {
    /// The name an https upstream's certificate is verified against, also sent
    /// as SNI (unless it is an IP address): `tls_name`, else the URL's host.
    pub fn tls_name(&self) -> &str {
        self.tls_name.as_deref().unwrap_or(&self.host)
    }

    /// `host:port`, with IPv6 in brackets: what to connect to.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}", self.authority())
    }
}

/// `acme.challenge`: how the ACME server checks that certfront answers for a name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum AcmeChallenge {
    /// RFC 8737, answered on the TLS listener itself (ALPN `acme-tls/1`); no port 80.
    #[default]
    TlsAlpn01,
    /// RFC 8555 8.3, answered on the plain-HTTP listener (`server.http_redirect`).
    Http01,
}

impl AcmeChallenge {
    /// The spelling in the config file (and the ACME challenge type).
    pub fn as_str(self) -> &'static str {
        match self {
            AcmeChallenge::TlsAlpn01 => "tls-alpn-01",
            AcmeChallenge::Http01 => "http-01",
        }
    }
}

/// External Account Binding (RFC 8555 7.3.4): what commercial CAs hand out per customer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcmeEab {
    pub kid: String,
    /// The environment variable holding the base64url HMAC key (never the file).
    pub hmac_key_env: String,
}

/// `[acme]`: where and how certificates of `acme = true` hosts are ordered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acme {
    /// The directory URL (https).
    pub directory: String,
    pub email: String,
    pub eab: Option<AcmeEab>,
    /// Extra trust anchor for the ACME server's own HTTPS (private ACME servers), resolved.
    pub ca: Option<PathBuf>,
    pub challenge: AcmeChallenge,
    /// The key generated for every order.
    pub key: CsrKey,
    /// Renew this long before notAfter; `None`: when a third of the lifetime is left.
    pub renew_before: Option<Duration>,
}

impl Acme {
    /// Where ACME state lives: the account and one directory per host.
    pub fn dir(state_dir: &std::path::Path) -> PathBuf {
        state_dir.join("acme")
    }
}

/// `client_auth.mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientAuthMode {
    /// No valid client certificate, no handshake.
    Required,
    /// A client certificate is checked when sent.
    Optional,
}

/// `[host.client_auth]`: mutual TLS for one host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientAuth {
    /// Default `Required` when the table is present without `mode`.
    pub mode: ClientAuthMode,
    pub ca: PathBuf,
    pub deny: Option<PathBuf>,
    /// `arr_client_cert = true`: the verified client certificate also goes upstream as
    /// `X-ARR-ClientCert` (base64 DER), the header applications written for IIS ARR read.
    pub arr_client_cert: bool,
    /// CRL files (PEM or DER); empty: no revocation check beyond the deny list.
    pub crl: Vec<PathBuf>,
    /// CRLs downloaded over HTTP or HTTPS at start and before their nextUpdate; the last
    /// good copy of each is cached in `state_dir/crl` and loaded like a `crl` file.
    pub crl_url: Vec<String>,
    /// Longest time between two downloads of a `crl_url` (default 3600).
    pub crl_refresh_seconds: u64,
    pub crl_scope: CrlScope,
    pub crl_expired: CrlExpired,
}

/// `client_auth.crl_scope`: which certificates of a client chain are checked against CRLs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CrlScope {
    /// Only the client's own certificate (what its issuing CA's CRL covers).
    #[default]
    Leaf,
    /// Every certificate of the chain but the root: each issuer needs a CRL.
    Chain,
}

/// `client_auth.crl_expired`: what a CRL past its nextUpdate means at the handshake.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CrlExpired {
    /// Fail closed: certificates of that issuer are refused until a fresh CRL is loaded.
    #[default]
    Refuse,
    /// Keep enforcing the stale list (and alert on it).
    Accept,
}

/// `[limits]`; every value is within the range `docs/configuration.md` gives for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    pub handshake_timeout: Duration,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_connections: usize,
    pub upstream_connect_timeout: Duration,
    pub upstream_response_timeout: Duration,
    pub h2_max_concurrent_streams: u32,
    /// A WebSocket (or other upgraded) tunnel with no bytes either way for this long is closed.
    pub tunnel_idle_timeout: Duration,
    /// A client connection older than this is closed gracefully; `None`: no limit.
    pub max_connection_age: Option<Duration>,
    /// Client connections open at once from one IP address.
    pub max_connections_per_ip: usize,
    /// Connections open at once on the plain-HTTP redirect listener (its own limit,
    /// apart from `max_connections`).
    pub redirect_max_connections: usize,
    /// Connections open at once to each configured upstream.
    pub upstream_max_connections: usize,
    /// Idle pooled connections kept per configured upstream (absent from the file:
    /// `upstream_max_connections`).
    pub upstream_max_idle_connections: usize,
    /// Inactivity timeout on request and response bodies.
    pub body_timeout: Duration,
    /// A response, tunnel or HTTP/2 connection that cannot write to its client for this
    /// long is ended (nginx's `send_timeout`).
    pub send_timeout: Duration,
}

impl Default for Limits {
    /// The defaults of DESIGN "Configuration" and issue 8.
    fn default() -> Self {
        Limits {
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_header_bytes: 65536,
            max_connections: 10000,
            upstream_connect_timeout: Duration::from_secs(5),
            upstream_response_timeout: Duration::from_secs(120),
            h2_max_concurrent_streams: 100,
            tunnel_idle_timeout: Duration::from_secs(900),
            max_connection_age: None,
            max_connections_per_ip: 256,
            redirect_max_connections: 1024,
            upstream_max_connections: 1024,
            upstream_max_idle_connections: 1024,
            body_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
        }
    }
}
