//! TLS termination: per-host rustls configs that share one session cache and one ticketer,
//! and the accept path that reads the ClientHello, picks the host by SNI, and either
//! refuses with the right alert or completes the handshake under a time limit.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use certfront_config::{Config, TlsVersion};
use rustls::crypto::CryptoProvider;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{
    Acceptor, NoServerSessionStorage, ServerSessionMemoryCache, StoresServerSessions,
};
use rustls::{ProtocolVersion, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::StartHandshake;
use tokio_rustls::server::TlsStream;

use crate::sites::{Lookup, Site, SiteTable};
use certfront_acme::Challenges;
use certfront_certs::store::CertReader;

static TLS13_ONLY: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];

/// TLS alert descriptions we send by hand, before rustls owns the connection.
const ALERT_HANDSHAKE_FAILURE: u8 = 40;
const ALERT_UNRECOGNIZED_NAME: u8 = 112;

/// What every host's rustls config shares, so that resumption works across hosts' configs
/// and survives certificate reloads (a reload never rebuilds these).
pub(crate) struct TlsShared {
    provider: Arc<CryptoProvider>,
    versions: &'static [&'static rustls::SupportedProtocolVersion],
    sessions: Arc<dyn StoresServerSessions>,
    ticketer: Option<Arc<dyn rustls::server::ProducesTickets>>,
}

impl TlsShared {
    pub(crate) fn new(config: &Config) -> Result<Self, crate::error::ProxyError> {
        let versions: &'static [&'static rustls::SupportedProtocolVersion] =
            match config.tls.min_version {
                TlsVersion::V1_3 => &TLS13_ONLY,
                TlsVersion::V1_2 => rustls::ALL_VERSIONS,
            };
        let (sessions, ticketer): (Arc<dyn StoresServerSessions>, _) = if config.tls.resumption {
            // tls.ticket_key_file: keys shared with the other instances, so tickets resume anywhere
            let ticketer: Arc<dyn rustls::server::ProducesTickets> =
                match &config.tls.ticket_key_file {
                    Some(path) => crate::tickets::FileTicketer::start(path)?,
                    None => rustls::crypto::aws_lc_rs::Ticketer::new()?,
                };
            (ServerSessionMemoryCache::new(64 * 1024), Some(ticketer))
        } else {
            (Arc::new(NoServerSessionStorage {}), None)
        };
        Ok(TlsShared {
            provider: Arc::new(server_provider()),
            versions,
            sessions,
            ticketer,
        })
    }

    /// The rustls config of one host; its certificate is read from `slot` at each handshake.
    pub(crate) fn host_config(
        &self,
        slot: CertReader,
        client_verifier: Option<Arc<dyn ClientCertVerifier>>,
    ) -> Result<Arc<ServerConfig>, rustls::Error> {
        let builder = ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(self.versions)?;
        let builder = match client_verifier {
            Some(v) => builder.with_client_cert_verifier(v),
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(Arc::new(slot));
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        // Our suite order, not the client's (see `suite_rank`).
        config.ignore_client_order = true;
        config.session_storage = self.sessions.clone();
        match &self.ticketer {
            Some(t) => config.ticketer = t.clone(),
            None => config.send_tls13_tickets = 0,
        }
        Ok(Arc::new(config))
    }
}

/// rustls' default aws-lc-rs provider, its cipher suites in the server's order.
fn server_provider() -> CryptoProvider {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider
        .cipher_suites
        .sort_by_key(|s| suite_rank(s.suite()));
    provider
}

/// The server's order of cipher suites (all AEAD, all offered by rustls' defaults):
/// AES-128-GCM, then AES-256-GCM, then ChaCha20-Poly1305, in each TLS version. AES-128-GCM
/// first as Go's `crypto/tls` (and so Caddy) and Chrome and Firefox order them: its
/// SHA-256 key schedule runs on the CPU's SHA extensions, while SHA-384 (the AES-256 suite
/// of TLS 1.3) does not and was ~10% of certfront's CPU per handshake with clients that
/// put AES-256 first (Windows SChannel, rustls). Every suite a client offers still works.
fn suite_rank(suite: rustls::CipherSuite) -> u8 {
    use rustls::CipherSuite as S;
    match suite {
        S::TLS13_AES_128_GCM_SHA256
        | S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        | S::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => 0,
        S::TLS13_AES_256_GCM_SHA384
        | S::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
        | S::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => 1,
        _ => 2,
    }
}

/// Why a handshake did not complete (logged at debug, counted by host and reason).
#[derive(Debug, thiserror::Error)]
pub(crate) enum AcceptError {
    #[error("client sent SNI {0:?}, which no host serves")]
    UnknownSni(String),
    #[error("client sent no SNI and there is no default_host")]
    NoSni,
    #[error("host {0:?} has no certificate yet: it waits for its first certificate from ACME")]
    NoCertificate(String),
    #[error("answered an ACME tls-alpn-01 validation for {0:?}")]
    AcmeChallenge(String),
    #[error("handshake timed out")]
    Timeout,
    #[error("connection closed during the handshake")]
    Eof,
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("{0}")]
    Tls(#[from] rustls::Error),
}

impl AcceptError {
    /// Whether a mutual-TLS host refused a client that sent no certificate.
    pub(crate) fn no_client_cert(&self) -> bool {
        let rustls_error = match self {
            AcceptError::Tls(e) => Some(e),
            AcceptError::Io(e) => e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()),
            _ => None,
        };
        matches!(rustls_error, Some(rustls::Error::NoCertificatesPresented))
    }

    /// The `result` label of `certfront_tls_handshakes_total`.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            AcceptError::UnknownSni(_) => "unknown_sni",
            AcceptError::NoSni => "no_sni",
            AcceptError::Timeout => "timeout",
            AcceptError::NoCertificate(_) => "no_certificate",
            AcceptError::AcmeChallenge(_) => "acme_challenge",
            AcceptError::Io(e) if e.get_ref().is_some_and(|i| i.is::<rustls::Error>()) => {
                "tls_error"
            }
            AcceptError::Eof | AcceptError::Io(_) => "closed",
            AcceptError::Tls(_) => "tls_error",
        }
    }
}

/// A finished handshake.
pub(crate) struct Accepted {
    pub stream: TlsStream<TcpStream>,
    pub site: Arc<Site>,
    pub h2: bool,
    pub version: Option<ProtocolVersion>,
}

/// Reads the ClientHello, picks the site, finishes the handshake, all within `limit`.
/// On failure the error says which site was chosen, if any.
pub(crate) async fn accept(
    tcp: TcpStream,
    table: &SiteTable,
    challenges: &Challenges,
    limit: Duration,
) -> Result<Accepted, (Option<Arc<Site>>, AcceptError)> {
    let mut chosen = None;
    match tokio::time::timeout(limit, handshake(tcp, table, challenges, &mut chosen)).await {
        Ok(Ok(done)) => Ok(done),
        Ok(Err(e)) => Err((chosen, e)),
        Err(_) => Err((chosen, AcceptError::Timeout)),
    }
}

async fn handshake(
    mut tcp: TcpStream,
    table: &SiteTable,
    challenges: &Challenges,
    chosen: &mut Option<Arc<Site>>,
) -> Result<Accepted, AcceptError> {
    let mut acceptor = Acceptor::default();
    // On the heap: in the future's state it would be copied whenever the future moves.
    let mut buf = vec![0u8; 4096];
    let accepted = loop {
        let n = tcp.read(&mut buf).await?;
        if n == 0 {
            return Err(AcceptError::Eof);
        }
        let mut data = &buf[..n];
        while !data.is_empty() {
            acceptor.read_tls(&mut data)?;
        }
        match acceptor.accept() {
            Ok(Some(accepted)) => break accepted,
            Ok(None) => continue,
            Err((err, mut alert)) => {
                let mut out = Vec::new();
                let _ = alert.write_all(&mut out);
                let _ = tcp.write_all(&out).await;
                return Err(err.into());
            }
        }
    };
    let hello = accepted.client_hello();
    if let Some(answer) =
        challenges.tls_alpn(hello.server_name(), hello.alpn().into_iter().flatten())
    {
        // An ACME CA validating a name (RFC 8737): the challenge certificate, then close.
        let name = hello.server_name().unwrap_or_default().to_owned();
        if let Lookup::Found(site) = table.by_sni(Some(&name)) {
            *chosen = Some(site.clone());
        }
        let mut stream = StartHandshake::from_parts(accepted, tcp)
            .into_stream(answer)
            .await?;
        let _ = stream.shutdown().await;
        return Err(AcceptError::AcmeChallenge(name));
    }
    let site = match table.by_sni(accepted.client_hello().server_name()) {
        Lookup::Found(site) => site.clone(),
        Lookup::Unknown => {
            let hello = accepted.client_hello();
            let sni = hello
                .server_name()
                .unwrap_or_default()
                .chars()
                .take(255)
                .collect();
            send_alert(&mut tcp, ALERT_UNRECOGNIZED_NAME).await;
            return Err(AcceptError::UnknownSni(sni));
        }
        Lookup::NoSni => {
            send_alert(&mut tcp, ALERT_HANDSHAKE_FAILURE).await;
            return Err(AcceptError::NoSni);
        }
    };
    *chosen = Some(site.clone());
    if !site.cert.is_serving() {
        // An ACME host before its first certificate: nothing may be served for it.
        send_alert(&mut tcp, ALERT_HANDSHAKE_FAILURE).await;
        return Err(AcceptError::NoCertificate(site.fqdn.clone()));
    }
    let stream = StartHandshake::from_parts(accepted, tcp)
        .into_stream(site.tls.clone())
        .await?;
    let conn = stream.get_ref().1;
    let h2 = conn.alpn_protocol() == Some(b"h2");
    let version = conn.protocol_version();
    Ok(Accepted {
        stream,
        site,
        h2,
        version,
    })
}

/// A fatal alert as a plaintext TLS record: rustls cannot send one before a config is chosen,
/// and `unrecognized_name` is what clients expect for a name the server does not serve
/// (rustls' own "no certificate" path would say `access_denied`).
async fn send_alert(tcp: &mut TcpStream, description: u8) {
    let record = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, description];
    let _ = tcp.write_all(&record).await;
    let _ = tcp.shutdown().await;
}

#[cfg(test)]
mod suite_order {
    use super::server_provider;

    #[test]
    fn aes_128_gcm_comes_first_in_each_version_and_no_suite_is_dropped() {
        let provider = server_provider();
        let before = rustls::crypto::aws_lc_rs::default_provider()
            .cipher_suites
            .len();
        assert_eq!(provider.cipher_suites.len(), before);
        let names: Vec<String> = provider
            .cipher_suites
            .iter()
            .map(|s| format!("{:?}", s.suite()))
            .collect();
        let first_of = |version: &str| {
            names
                .iter()
                .find(|n| n.starts_with(version))
                .cloned()
                .unwrap_or_default()
        };
        assert_eq!(first_of("TLS13_"), "TLS13_AES_128_GCM_SHA256", "{names:?}");
        assert!(first_of("TLS_ECDHE_").contains("AES_128_GCM"), "{names:?}");
        assert!(
            names.last().is_some_and(|n| n.contains("CHACHA20")),
            "{names:?}"
        );
    }
}
