//! The proxy under test: its loopback address, the TLS client settings, and one connection to it.
//!
//! Every command refuses a non-loopback address: a load generator pointed at a
//! production server by a typo is an outage.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use rustls::ClientConfig;
use rustls::client::Resumption;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Parses `IP:PORT` and accepts it only on a loopback address (127.0.0.0/8 or ::1).
pub(crate) fn loopback_addr(s: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = s.parse().map_err(|_| {
        format!("{s:?} is not IP:PORT; expected a loopback address such as 127.0.0.1:8443")
    })?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "{addr} is not a loopback address; certfront-loadtest only targets 127.0.0.0/8 or [::1]"
        ));
    }
    Ok(addr)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TlsVersion {
    #[value(name = "1.2")]
    V12,
    #[value(name = "1.3")]
    V13,
}

/// Where to connect and how: shared by every client command.
#[derive(Args, Clone, Debug)]
pub struct TargetArgs {
    /// The proxy's TLS listener (loopback only).
    #[arg(long, value_parser = loopback_addr, default_value = "127.0.0.1:8443")]
    pub addr: SocketAddr,
    /// Server name sent in SNI and Host.
    #[arg(long, default_value = "app.localhost")]
    pub sni: String,
    /// PEM file of the root that signed the proxy's certificate.
    #[arg(long, default_value = "state/ca.pem")]
    pub ca: PathBuf,
    /// TLS version to offer (only this one).
    #[arg(long, value_enum, default_value = "1.3")]
    pub tls: TlsVersion,
    /// Connect timeout and per-request timeout, seconds.
    #[arg(long, default_value_t = 10)]
    pub timeout: u64,
    /// PEM client certificate to present (a mutual-TLS host); with --client-key.
    #[arg(long, requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// PEM private key of --client-cert.
    #[arg(long, requires = "client_cert")]
    pub client_key: Option<PathBuf>,
}

/// Application protocol offered by ALPN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Proto {
    H1,
    H2,
}

impl Proto {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Proto::H1 => "HTTP/1.1",
            Proto::H2 => "HTTP/2",
        }
    }
}

/// A ready-to-dial target: one shared `ClientConfig` (resumption off, so every
/// connection is a full handshake, as the benchmarks compare).
#[derive(Clone)]
pub(crate) struct Target {
    pub addr: SocketAddr,
    pub sni: String,
    pub server_name: ServerName<'static>,
    pub connector: TlsConnector,
    pub timeout: Duration,
}

impl Target {
    pub(crate) fn new(args: &TargetArgs, proto: Proto) -> Result<Target> {
        let roots = root_store(&args.ca)?;
        let versions: &[&'static rustls::SupportedProtocolVersion] = match args.tls {
            TlsVersion::V12 => &[&rustls::version::TLS12],
            TlsVersion::V13 => &[&rustls::version::TLS13],
        };
        let builder =
            ClientConfig::builder_with_protocol_versions(versions).with_root_certificates(roots);
        let mut config = match (&args.client_cert, &args.client_key) {
            (Some(cert), Some(key)) => {
                let chain = CertificateDer::pem_file_iter(cert)
                    .and_then(|c| c.collect::<Result<Vec<_>, _>>())
                    .with_context(|| format!("--client-cert {}", cert.display()))?;
                let key = rustls_pki_types::PrivateKeyDer::from_pem_file(key)
                    .with_context(|| format!("--client-key {}", key.display()))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .context("--client-cert and --client-key")?
            }
            _ => builder.with_no_client_auth(),
        };
        config.resumption = Resumption::disabled();
        config.alpn_protocols = vec![match proto {
            Proto::H1 => b"http/1.1".to_vec(),
            Proto::H2 => b"h2".to_vec(),
        }];
        let server_name = ServerName::try_from(args.sni.clone())
            .with_context(|| format!("--sni {:?} is not a DNS name", args.sni))?;
        Ok(Target {
            addr: args.addr,
            sni: args.sni.clone(),
            server_name,
            connector: TlsConnector::from(Arc::new(config)),
            timeout: Duration::from_secs(args.timeout.max(1)),
        })
    }

    /// TCP connect plus a full TLS handshake, under the timeout.
    pub(crate) async fn connect(&self) -> Result<TlsStream<TcpStream>> {
        let dial = async {
            let tcp = TcpStream::connect(self.addr)
                .await
                .with_context(|| format!("connect to {}", self.addr))?;
            tcp.set_nodelay(true)?;
            self.connector
                .connect(self.server_name.clone(), tcp)
                .await
                .with_context(|| format!("TLS handshake with {} (SNI {})", self.addr, self.sni))
        };
        match tokio::time::timeout(self.timeout, dial).await {
            Ok(r) => r,
            Err(_) => bail!(
                "connect + handshake to {} took over {:?}",
                self.addr,
                self.timeout
            ),
        }
    }
}

fn root_store(ca: &Path) -> Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca)
        .with_context(|| format!("--ca {}: cannot read", ca.display()))?;
    for cert in certs {
        let cert = cert.with_context(|| format!("--ca {}: not PEM certificates", ca.display()))?;
        roots
            .add(cert)
            .with_context(|| format!("--ca {}: not a usable root certificate", ca.display()))?;
    }
    if roots.is_empty() {
        bail!(
            "--ca {}: no CERTIFICATE block found; expected the PEM root",
            ca.display()
        );
    }
    Ok(roots)
}

/// "ECDSA P-256", "RSA 2048" ...: the key of the certificate the server presented.
pub(crate) fn key_type(cert: &CertificateDer<'_>) -> String {
    use x509_parser::prelude::*;
    let Ok((_, x509)) = X509Certificate::from_der(cert.as_ref()) else {
        return "unparsable certificate".into();
    };
    match x509.public_key().parsed() {
        Ok(public_key::PublicKey::RSA(rsa)) => format!("RSA {}", rsa.key_size()),
        Ok(public_key::PublicKey::EC(ec)) => match ec.key_size() {
            256 => "ECDSA P-256".into(),
            384 => "ECDSA P-384".into(),
            n => format!("ECDSA {n} bits"),
        },
        Ok(other) => format!("other key ({} bits)", other.key_size()),
        Err(_) => "unknown key".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_addresses_are_accepted() {
        assert!(loopback_addr("127.0.0.1:8443").is_ok());
        assert!(loopback_addr("127.3.2.1:1").is_ok());
        assert!(loopback_addr("[::1]:443").is_ok());
        let e = loopback_addr("10.0.0.1:443").unwrap_err();
        assert!(e.contains("10.0.0.1:443 is not a loopback address"), "{e}");
        assert!(loopback_addr("0.0.0.0:443").is_err());
        assert!(loopback_addr("[::]:443").is_err());
        let e = loopback_addr("localhost:443").unwrap_err();
        assert!(e.contains("is not IP:PORT"), "{e}");
    }
}
