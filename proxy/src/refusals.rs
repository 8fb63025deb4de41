//! Refused client certificates, one `info` line each, by certificate: so "Dr. X's tablet
//! cannot open the portal" can be traced to a certificate, an issuer and a reason.
//!
//! The verifier knows the certificate but not the client's address; the connection task
//! knows the address. The verifier runs inside the task's handshake, so it leaves what it
//! refused in a task-local cell that the task reads when the handshake fails: nothing is
//! allocated unless a certificate is refused. Lines are limited per host ([`RateLimit`]),
//! so a flood of bad handshakes cannot fill the disk; the next line says how many were
//! left out.

use std::cell::Cell;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use certfront_certs::sha1_hex;
use rustls_pki_types::CertificateDer;
use tracing::info;

/// At most this many refusal lines per host and second.
const LINES_PER_SECOND: u32 = 10;

/// A refused client certificate, as the log names it.
#[derive(Debug)]
pub(crate) struct Refused {
    subject: String,
    issuer: String,
    /// Upper-case hex, as Windows shows a serial number.
    serial: String,
    /// SHA-1 of the DER, upper-case hex without spaces (the Windows thumbprint).
    thumbprint: String,
    pub(crate) reason: &'static str,
}

impl Refused {
    fn from_der(der: &[u8], reason: &'static str) -> Refused {
        let (subject, issuer, serial) = match x509_parser::parse_x509_certificate(der) {
            Ok((_, cert)) => (
                cert.subject().to_string(),
                cert.issuer().to_string(),
                cert.raw_serial()
                    .iter()
                    .map(|b| format!("{b:02X}"))
                    .collect(),
            ),
            Err(_) => ("(unparsable)".into(), "-".into(), "-".into()),
        };
        Refused {
            subject,
            issuer,
            serial,
            thumbprint: sha1_hex(der),
            reason,
        }
    }

    /// A client that sent no certificate to a host that requires one.
    pub(crate) fn missing() -> Refused {
        Refused {
            subject: "-".into(),
            issuer: "-".into(),
            serial: "-".into(),
            thumbprint: "-".into(),
            reason: "missing",
        }
    }
}

tokio::task_local! {
    static REFUSED: Cell<Option<Refused>>;
}

/// Called by the verifier: remembers what it refused for the handshake's task.
pub(crate) fn note(der: &CertificateDer<'_>, reason: &'static str) {
    let _ = REFUSED.try_with(|cell| cell.set(Some(Refused::from_der(der.as_ref(), reason))));
}

/// Runs a handshake; returns its result and the client certificate it refused, if any.
pub(crate) async fn watch<F: Future>(handshake: F) -> (F::Output, Option<Refused>) {
    let mut scoped = std::pin::pin!(REFUSED.scope(Cell::new(None), handshake));
    let out = (&mut scoped).await;
    let refused = scoped.as_mut().take_value().and_then(Cell::into_inner);
    (out, refused)
}

/// Per host: how many refusal lines this second, and how many were left out.
#[derive(Debug, Default)]
pub(crate) struct RateLimit {
    /// (second, lines written in it, lines left out since the last written line)
    window: Mutex<(u64, u32, u64)>,
}

impl RateLimit {
    /// `Some(left out before this one)` when a line may be written now.
    fn admit(&self, now_secs: u64) -> Option<u64> {
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        if w.0 != now_secs {
            w.0 = now_secs;
            w.1 = 0;
        }
        if w.1 >= LINES_PER_SECOND {
            w.2 += 1;
            return None;
        }
        w.1 += 1;
        Some(std::mem::take(&mut w.2))
    }
}

/// Logs one refusal at `info`, unless this host's limit is reached.
pub(crate) fn log(host: &str, peer: SocketAddr, limit: &RateLimit, refused: &Refused) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let Some(suppressed) = limit.admit(now) else {
        return;
    };
    info!(
        host,
        client = %peer,
        subject = %refused.subject,
        issuer = %refused.issuer,
        serial = %refused.serial,
        thumbprint = %refused.thumbprint,
        reason = refused.reason,
        suppressed,
        "client certificate refused"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_admits_a_burst_then_counts_what_it_leaves_out() {
        let limit = RateLimit::default();
        for _ in 0..LINES_PER_SECOND {
            assert_eq!(limit.admit(100), Some(0));
        }
        assert_eq!(limit.admit(100), None);
        assert_eq!(limit.admit(100), None);
        // The next second's first line carries the count.
        assert_eq!(limit.admit(101), Some(2));
        assert_eq!(limit.admit(101), Some(0));
    }
}
