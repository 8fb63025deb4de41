//! Certificate revocation lists (`[host.client_auth] crl`): read (PEM or DER, as AD CS and
//! OpenSSL write them), held to the host's client CAs, and kept in order by CRL number.
//!
//! A set is taken or refused whole: a CRL that is corrupt, is not signed by one of the
//! host's client CAs, is a delta CRL, or is older (by CRL number) than the one in use from
//! the same issuer refuses every file of the set, so the caller keeps the last good set.
//! A revocation list applied in part would leave a revoked certificate working, silently.
//! At the handshake a certificate is looked up in [`CrlSet::check`]: a hash set of revoked
//! serials per issuer, built once at load, so a lookup costs the same for a CRL of ten
//! entries or of 100,000. (rustls' WebPKI verifier can take CRLs too, but it verifies the
//! CRL's signature again on every handshake, a hash over the whole list: a 2.3 MB CRL
//! halved the handshake rate. The signature is verified here, once, at load.)

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, pem::PemObject};
use x509_parser::certificate::X509CertificateParser;
use x509_parser::error::X509Error;
use x509_parser::nom::Parser;
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
    /// nextUpdate, seconds since the Unix epoch; `None`: the CRL never goes stale.
    pub next_update: Option<i64>,
    /// The CRL number extension; `None` when the CA writes none.
    pub number: Option<BigUint>,
    /// Certificates on the list.
    pub revoked: usize,
    /// Their serial numbers (DER INTEGER contents, as in the certificates); moved into
    /// the set's index once the set is checked.
    serials: Vec<Box<[u8]>>,
}

/// The CRLs of one host, checked as a whole; empty when the host names none.
#[derive(Clone, Debug, Default)]
pub struct CrlSet {
    crls: Vec<Crl>,
    /// By issuer (raw DER name): the union of its CRLs' serials and their earliest
    /// nextUpdate. Shared, so a clone for `/certs` copies no serials.
    index: Arc<HashMap<Vec<u8>, IssuerIndex>>,
}

#[derive(Debug, Default)]
struct IssuerIndex {
    serials: HashSet<Box<[u8]>>,
    next_update: Option<i64>,
}

/// Why [`CrlSet::check`] refuses a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Revocation {
    /// A CRL of its issuer lists its serial.
    Revoked,
    /// Its issuer's CRL is past nextUpdate (and the caller does not accept stale CRLs).
    Expired,
    /// No CRL of its issuer is loaded.
    Unknown,
}

/// Which certificates of a client chain [`CrlSet::check`] looks up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Leaf,
    Chain,
}

impl CrlSet {
    pub fn iter(&self) -> impl Iterator<Item = &Crl> {
        self.crls.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.crls.is_empty()
    }

    /// Looks up a verified client chain (`leaf`, then what the client sent after it):
    /// the leaf, and with [`Scope::Chain`] each CA certificate that issued the one before
    /// it (found among `intermediates`, else among the client CAs `cas`: an issuing CA
    /// listed in `client_auth.ca` is checked too), up to a self-issued one (a root).
    /// `now`: Unix seconds; `accept_expired`: a stale CRL still counts. A handful of
    /// hash lookups per handshake, whatever the CRLs' size.
    pub fn check(
        &self,
        leaf: &[u8],
        intermediates: &[CertificateDer<'_>],
        cas: &[CertificateDer<'_>],
        scope: Scope,
        now: i64,
        accept_expired: bool,
    ) -> Result<(), Revocation> {
        if self.crls.is_empty() {
            return Ok(());
        }
        let parser = X509CertificateParser::new().with_deep_parse_extensions(false);
        let Ok((_, mut cert)) = parser.clone().parse(leaf) else {
            // A chain rustls verified parses; never refuse on our own parser's account.
            return Ok(());
        };
        for _ in 0..=intermediates.len() + cas.len() {
            let issuer = cert.issuer().as_raw();
            let Some(entry) = self.index.get(issuer) else {
                return Err(Revocation::Unknown);
            };
            if !accept_expired && entry.next_update.is_some_and(|next| now >= next) {
                return Err(Revocation::Expired);
            }
            if entry.serials.contains(cert.raw_serial()) {
                return Err(Revocation::Revoked);
            }
            if scope == Scope::Leaf {
                return Ok(());
            }
            let next = intermediates.iter().chain(cas).find_map(|der| {
                let (_, ca) = parser.clone().parse(der.as_ref()).ok()?;
                (ca.subject().as_raw() == issuer).then_some(ca)
            });
            match next {
                // Self-issued: a root, where the chain ends.
                Some(ca) if ca.subject().as_raw() != ca.issuer().as_raw() => cert = ca,
                _ => return Ok(()),
            }
        }
        Ok(())
    }

    /// Whether the files read hold byte for byte the CRLs of this set: a re-read of
    /// unchanged files (every re-scan) then skips parsing and checking them again.
    pub fn same_as(&self, read: &[(PathBuf, CertificateRevocationListDer<'static>)]) -> bool {
        self.crls.len() == read.len()
            && self
                .crls
                .iter()
                .zip(read)
                .all(|(a, (path, der))| &a.path == path && &a.der == der)
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
            CrlError::NoCrl { .. } | CrlError::Parse { .. } => "corrupt",
            CrlError::UnknownIssuer { .. } | CrlError::BadSignature { .. } => "signature",
            CrlError::Delta { .. } => "delta",
            CrlError::Older { .. } => "older",
        }
    }
}

/// Every CRL in one file. The one place CRL files are read (through the crate's file
/// read), so a size cap on it applies here too.
pub fn read(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, CrlError> {
    let bytes = crate::load::read(path, crate::read::FileKind::Crl)?;
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

/// Every CRL of every file in `paths`, read but not checked yet.
pub fn read_all(
    paths: &[PathBuf],
) -> Result<Vec<(PathBuf, CertificateRevocationListDer<'static>)>, CrlError> {
    let mut all = Vec::new();
    for path in paths {
        for der in read(path)? {
            all.push((path.clone(), der));
        }
    }
    Ok(all)
}

/// Reads and checks `paths` against the client CAs `cas`. `previous`: the set in use; a
/// CRL older than its issuer's CRL there is refused.
pub fn load(
    paths: &[PathBuf],
    cas: &[CertificateDer<'_>],
    previous: Option<&CrlSet>,
) -> Result<CrlSet, CrlError> {
    check_all(read_all(paths)?, cas, previous)
}

/// Checks CRLs read by [`read_all`] (see [`load`]).
pub fn check_all(
    read: Vec<(PathBuf, CertificateRevocationListDer<'static>)>,
    cas: &[CertificateDer<'_>],
    previous: Option<&CrlSet>,
) -> Result<CrlSet, CrlError> {
    let mut crls = Vec::new();
    for (path, der) in read {
        crls.push(check(&path, der, cas)?);
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
    let mut index: HashMap<Vec<u8>, IssuerIndex> = HashMap::new();
    for crl in &mut crls {
        let entry = index.entry(crl.issuer_raw.clone()).or_default();
        entry.serials.extend(std::mem::take(&mut crl.serials));
        entry.next_update = match (entry.next_update, crl.next_update) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    Ok(CrlSet {
        crls,
        index: Arc::new(index),
    })
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
    Ok(Crl {
        path: path.to_owned(),
        issuer: crl.issuer().to_string(),
        issuer_raw: crl.issuer().as_raw().to_vec(),
        this_update: crl.last_update().timestamp(),
        next_update: crl.next_update().map(|t| t.timestamp()),
        number: crl.crl_number().cloned(),
        revoked: crl.iter_revoked_certificates().count(),
        serials: crl
            .iter_revoked_certificates()
            .map(|r| Box::from(r.raw_serial()))
            .collect(),
        der,
    })
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
