//! One ACME order, start to finish: new order, one challenge answered per authorization,
//! wait for validation, finalize with a fresh key's CSR, download the chain.

use std::sync::Arc;
use std::time::Duration;

use certfront_certs::CsrKey;
use certfront_config::AcmeChallenge;
use instant_acme::{
    Account, AuthorizationStatus, CertificateIdentifier, ChallengeType, Identifier, NewOrder,
    OrderStatus, RetryPolicy,
};
use rcgen::{
    CertificateParams, DistinguishedName, KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384,
    PKCS_RSA_SHA256, RsaKeySize,
};
use zeroize::Zeroizing;

use crate::challenge::{Challenges, Pending};
use crate::error::AcmeError;

/// What the CA issued: the chain (leaf first) and the key generated for it, both PEM.
pub(crate) struct Issued {
    pub chain_pem: String,
    pub key_pem: Zeroizing<String>,
}

/// How long to wait for the CA to validate, then to issue: generous for a public CA under
/// load, instant for a test CA.
const VALIDATION_WAIT: Duration = Duration::from_secs(90);

pub(crate) async fn order(
    account: &Account,
    directory: &str,
    names: &[String],
    challenge: AcmeChallenge,
    key: CsrKey,
    challenges: &Arc<Challenges>,
    replaces: Option<CertificateIdentifier<'static>>,
) -> Result<Issued, AcmeError> {
    let server = |what: &'static str| {
        move |source| AcmeError::Server {
            directory: directory.to_owned(),
            what,
            source,
        }
    };
    let identifiers: Vec<Identifier> = names.iter().map(|n| Identifier::Dns(n.clone())).collect();
    let mut new_order = NewOrder::new(&identifiers);
    if let Some(old) = replaces {
        new_order = new_order.replaces(old);
    }
    let mut order = account
        .new_order(&new_order)
        .await
        .map_err(server("new order"))?;

    // Answers stay registered until the order is done (dropping them withdraws them).
    let mut answers: Vec<Pending> = Vec::new();
    let (kind, kind_name) = match challenge {
        AcmeChallenge::TlsAlpn01 => (ChallengeType::TlsAlpn01, "tls-alpn-01"),
        AcmeChallenge::Http01 => (ChallengeType::Http01, "http-01"),
    };
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz.map_err(server("authorization"))?;
        let name = authz.identifier().to_string();
        match authz.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue, // validated recently; the CA reuses it
            other => {
                return Err(AcmeError::Validation {
                    name,
                    detail: format!("authorization is {other:?}"),
                });
            }
        }
        let Some(mut ch) = authz.challenge(kind.clone()) else {
            return Err(AcmeError::NoChallenge {
                name,
                kind: kind_name,
            });
        };
        let key_auth = ch.key_authorization();
        answers.push(match challenge {
            AcmeChallenge::TlsAlpn01 => {
                challenges.add_tls_alpn(&name, key_auth.digest().as_ref())?
            }
            AcmeChallenge::Http01 => challenges.add_http(&ch.token, key_auth.as_str()),
        });
        ch.set_ready().await.map_err(server("challenge ready"))?;
    }

    let retry = RetryPolicy::new()
        .initial_delay(Duration::from_millis(250))
        .timeout(VALIDATION_WAIT);
    let status = order
        .poll_ready(&retry)
        .await
        .map_err(server("validation"))?;
    if status != OrderStatus::Ready {
        return Err(validation_failure(&mut order, status).await);
    }
    let (key_pem, csr_der) = request(names, key)?;
    order
        .finalize_csr(&csr_der)
        .await
        .map_err(server("finalize"))?;
    let chain_pem = order
        .poll_certificate(&retry)
        .await
        .map_err(server("certificate download"))?;
    drop(answers);
    Ok(Issued { chain_pem, key_pem })
}

/// Why an order did not become ready, from the challenges' errors (what the CA saw when
/// it connected) or the order's own.
async fn validation_failure(order: &mut instant_acme::Order, status: OrderStatus) -> AcmeError {
    let mut details = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(Ok(authz)) = authorizations.next().await {
        let name = authz.identifier().to_string();
        for ch in &authz.challenges {
            if let Some(problem) = &ch.error {
                details.push(AcmeError::Validation {
                    name: name.clone(),
                    detail: problem.to_string(),
                });
            }
        }
    }
    if let Some(first) = details.into_iter().next() {
        return first;
    }
    let detail = order
        .state()
        .error
        .as_ref()
        .map(|p| p.to_string())
        .unwrap_or_else(|| "no reason given".to_owned());
    AcmeError::Order {
        status: format!("{status:?}").to_lowercase(),
        detail,
    }
}

/// A new key (PKCS#8 PEM) and a CSR naming every name as a SAN (the CA takes the names
/// from there; the subject stays empty as RFC 8555 allows).
fn request(names: &[String], key: CsrKey) -> Result<(Zeroizing<String>, Vec<u8>), AcmeError> {
    let generate = |source| AcmeError::Generate { source };
    let pair = match key {
        CsrKey::P256 => KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256),
        CsrKey::P384 => KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384),
        CsrKey::Rsa2048 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048),
        CsrKey::Rsa3072 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_3072),
        CsrKey::Rsa4096 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_4096),
    }
    .map_err(generate)?;
    let mut params = CertificateParams::new(names.to_vec()).map_err(generate)?;
    params.distinguished_name = DistinguishedName::new();
    let csr = params.serialize_request(&pair).map_err(generate)?;
    Ok((Zeroizing::new(pair.serialize_pem()), csr.der().to_vec()))
}
