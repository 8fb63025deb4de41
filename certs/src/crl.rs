//! Certificate revocation lists (`[host.client_auth] crl`): read (PEM or DER, as AD CS and
//! OpenSSL write them), held to the host's client CAs, and kept in order by CRL number.
//!
//! A set is taken or refused whole: a CRL that is corrupt, is not signed by one of the
//! host's client CAs, is a delta CRL, or is older (by CRL number) than the one in use from
//! the same issuer refuses every file of the set, so the caller keeps the last good set.
//! A revocation list applied in part would leave a revoked certificate working, silently.
//! The handshake itself is checked by rustls' WebPKI verifier, built from [`CrlSet::ders`]:
//! its owned CRL keeps the revoked serials in a `BTreeMap`, so a lookup is logarithmic in
//! the CRL's size, not linear.

use std::path::{Path, PathBuf};

use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, pem::PemObject};
use x509_parser::error::X509Error;
use x509_parser::num_bigint::BigUint;
use x509_parser::revocation_list::CertificateRevocationList;

use crate::error::CertError;

/// id-ce-deltaCRLIndicator (RFC 5280 5.2.4): x509-parser does not name it.
const DELTA_CRL_INDICATOR: &str = "2.5.29.27";

/// One CRL of a set, with the facts `/certs`, metrics and the log show.
#[derive(Clone, Debug)]
pub struct Crl {
    pub path: PathBuf,
    der: CertificateRevocationListDer<'static>,
    /// The issuer's distinguished name, as `certs inspect` writes names.
    pub issuer: String,
    issuer_raw: Vec<u8>,
    /// thisUpdate, seconds since the Unix epoch.
    pub this_update: i64,
    /// nextUpdate, seconds since the Unix epoch (webpki refuses a CRL without it).
    pub next_update: Option<i64>,
    /// The CRL number extension; `None` when the CA writes none.
    pub number: Option<BigUint>,
    /// Certificates on the list.
    pub revoked: usize,
}

/// The CRLs of one host, checked as a whole; empty when the host names none.
#[derive(Clone, Debug, Default)]
pub struct CrlSet {
    crls: Vec<Crl>,
}

impl CrlSet {
    /// The DER of every CRL, for rustls' client verifier.
    pub fn ders(&self) -> Vec<CertificateRevocationListDer<'static>> {
        self.crls.iter().map(|c| c.der.clone()).collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Crl> {
        self.crls.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.crls.is_empty()
    }

    /// Whether every CRL is byte for byte the same as in `other` (a re-read of unchanged
    /// files changes nothing).
    pub fn same_as(&self, other: &CrlSet) -> bool {
        self.crls.len() == other.crls.len()
            && self
                .crls
                .iter()
                .zip(&other.crls)
                .all(|(a, b)| a.path == b.path && a.der == b.der)
    }

    /// The lowest nextUpdate of the set: past it, some issuer's list is stale.
    pub fn earliest_next_update(&self) -> Option<i64> {
        self.crls.iter().filter_map(|c| c.next_update).min()
    }
}

/// Why a set of CRL files was refused.
#[derive(Debug, thiserror::Error)]
pub enum CrlError {
    #[error(transparent)]
    File(#[from] CertError),
    #[error(
        "{}: no CRL found (expected PEM 'BEGIN X509 CRL' or a DER CRL)",
        path.display()
    )]
    NoCrl { path: PathBuf },
    #[error("{}: not a valid CRL: {source}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: X509Error,
    },
    #[error("{}: not a usable CRL: {source}", path.display())]
    Unusable {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error(
        "{}: issued by {issuer:?}, which is not one of client_auth.ca's certificates ({cas}): a CRL must come from a CA that issues this host's client certificates",
        path.display()
    )]
    UnknownIssuer {
        path: PathBuf,
        issuer: String,
        cas: String,
    },
    #[error(
        "{}: signature does not verify with the key of {issuer:?} in client_auth.ca (corrupt, or signed by another CA of the same name)",
        path.display()
    )]
    BadSignature { path: PathBuf, issuer: String },
    #[error(
        "{}: a delta CRL (Delta CRL Indicator); certfront applies base CRLs only: name the base CRL (AD CS: '<CA name>.crl', not '<CA name>+.crl')",
        path.display()
    )]
    Delta { path: PathBuf },
    #[error(
        "{}: CRL number {found} of {issuer:?} is older than the CRL number {in_use} in use; an older list would un-revoke certificates",
        path.display()
    )]
    Older {
        path: PathBuf,
        issuer: String,
        found: BigUint,
        in_use: BigUint,
    },
}

impl CrlError {
    /// A short reason for a metric or log field.
    pub fn kind(&self) -> &'static str {
        match self {
            CrlError::File(_) => "read",
            CrlError::NoCrl { .. } | CrlError::Parse { .. } | CrlError::Unusable { .. } => {
                "corrupt"
            }
            CrlError::UnknownIssuer { .. } | CrlError::BadSignature { .. } => "signature",
            CrlError::Delta { .. } => "delta",
            CrlError::Older { .. } => "older",
        }
    }
}

/// Every CRL in one file. The one place CRL files are read (through the crate's file
/// read), so a size cap on it applies here too.
pub fn read(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, CrlError> {
    let bytes = crate::load::read(path)?;
    if bytes.windows(10).any(|w| w == b"-----BEGIN") {
        let ders: Vec<_> = CertificateRevocationListDer::pem_slice_iter(&bytes)
            .collect::<Result<_, _>>()
            .map_err(|_| CrlError::NoCrl {
                path: path.to_owned(),
            })?;
        if ders.is_empty() {
            return Err(CrlError::NoCrl {
                path: path.to_owned(),
            });
        }
        Ok(ders)
    } else {
        Ok(vec![CertificateRevocationListDer::from(bytes)])
    }
}

/// Reads and checks `paths` against the client CAs `cas`. `previous`: the set in use; a
/// CRL older than its issuer's CRL there is refused.
pub fn load(
    paths: &[PathBuf],
    cas: &[CertificateDer<'_>],
    previous: Option<&CrlSet>,
) -> Result<CrlSet, CrlError> {
    let mut crls = Vec::new();
    for path in paths {
        for der in read(path)? {
            crls.push(check(path, der, cas)?);
        }
    }
    if let Some(previous) = previous {
        for crl in &crls {
            let Some(found) = &crl.number else { continue };
            let in_use = previous
                .iter()
                .filter(|p| p.issuer_raw == crl.issuer_raw)
                .filter_map(|p| p.number.as_ref())
                .max();
            if let Some(in_use) = in_use
                && found < in_use
            {
                return Err(CrlError::Older {
                    path: crl.path.clone(),
                    issuer: crl.issuer.clone(),
                    found: found.clone(),
                    in_use: in_use.clone(),
                });
            }
        }
    }
    Ok(CrlSet { crls })
}

fn parse_error(e: x509_parser::nom::Err<X509Error>) -> X509Error {
    match e {
        x509_parser::nom::Err::Error(e) | x509_parser::nom::Err::Failure(e) => e,
        x509_parser::nom::Err::Incomplete(_) => X509Error::InvalidCertificate,
    }
}

/// One CRL: parses (x509-parser and webpki, the parser the handshake uses), is a base
/// CRL, and is signed by a client CA of the same name.
fn check(
    path: &Path,
    der: CertificateRevocationListDer<'static>,
    cas: &[CertificateDer<'_>],
) -> Result<Crl, CrlError> {
    let parse = |source| CrlError::Parse {
        path: path.to_owned(),
        source,
    };
    let (rest, crl) =
        x509_parser::parse_x509_crl(der.as_ref()).map_err(|e| parse(parse_error(e)))?;
    if !rest.is_empty() {
        return Err(parse(X509Error::InvalidCertificate));
    }
    if crl
        .extensions()
        .iter()
        .any(|e| e.oid.to_id_string() == DELTA_CRL_INDICATOR)
    {
        return Err(CrlError::Delta {
            path: path.to_owned(),
        });
    }
    verify_issuer(path, &crl, cas)?;
    // The same checks rustls will make when it builds the verifier (version 2, nextUpdate
    // present, known critical extensions), so `check` refuses what `run` could not use.
    if let Err(rustls::server::VerifierBuilderError::InvalidCrl(source)) =
        rustls::server::WebPkiClientVerifier::builder_with_provider(
            one_root(cas),
            std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
        )
        .with_crls([der.clone()])
        .build()
    {
        return Err(CrlError::Unusable {
            path: path.to_owned(),
            source: rustls::Error::InvalidCertRevocationList(source),
        });
    }
    Ok(Crl {
        path: path.to_owned(),
        issuer: crl.issuer().to_string(),
        issuer_raw: crl.issuer().as_raw().to_vec(),
        this_update: crl.last_update().timestamp(),
        next_update: crl.next_update().map(|t| t.timestamp()),
        number: crl.crl_number().cloned(),
        revoked: crl.iter_revoked_certificates().count(),
        der,
    })
}

/// A root store with the first CA that parses, only so the builder has one (it refuses an
/// empty store before it looks at the CRLs).
fn one_root(cas: &[CertificateDer<'_>]) -> std::sync::Arc<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in cas {
        if roots.add(ca.clone().into_owned()).is_ok() {
            break;
        }
    }
    std::sync::Arc::new(roots)
}

fn verify_issuer(
    path: &Path,
    crl: &CertificateRevocationList<'_>,
    cas: &[CertificateDer<'_>],
) -> Result<(), CrlError> {
    let mut names = Vec::new();
    let mut same_name = false;
    for ca in cas {
        let Ok((_, ca)) = x509_parser::parse_x509_certificate(ca.as_ref()) else {
            continue;
        };
        if ca.subject().as_raw() != crl.issuer().as_raw() {
            names.push(ca.subject().to_string());
            continue;
        }
        same_name = true;
        if crl.verify_signature(ca.public_key()).is_ok() {
            return Ok(());
        }
    }
    let issuer = crl.issuer().to_string();
    if same_name {
        Err(CrlError::BadSignature {
            path: path.to_owned(),
            issuer,
        })
    } else {
        Err(CrlError::UnknownIssuer {
            path: path.to_owned(),
            issuer,
            cas: names.join("; "),
        })
    }
}
