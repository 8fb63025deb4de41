//! `[acme]` and the hosts that use it: a directory URL and a contact, a challenge the
//! listeners can answer, a key the policy accepts, and names a CA can validate that way.
//! Nothing here contacts the ACME server (`check` must work offline).

use std::path::PathBuf;
use std::time::Duration;

use certfront_certs::{CertSource, CsrKey, Policy};

use super::Validator;
use crate::model::{Acme, AcmeChallenge, AcmeEab, Server};
use crate::raw::{RawAcme, RawHost};

/// What a host with `acme = true` needs to know about `[acme]`.
pub(super) struct AcmeFacts {
    /// `state_dir/acme`: each host's pair lives in a directory named after its fqdn.
    dir: PathBuf,
    challenge: AcmeChallenge,
}

/// The longest `renew_before_days` accepted: longer than any certificate an ACME CA issues.
const MAX_RENEW_BEFORE_DAYS: i64 = 365;

impl Validator<'_> {
    /// Reads `[acme]`; remembers what hosts need from it even when it has problems, so a
    /// host is not also told that the section is missing.
    pub(super) fn acme(
        &mut self,
        raw: Option<RawAcme>,
        server: &Server,
        policy: &Policy,
    ) -> Option<Acme> {
        let raw = raw?;
        let before = self.problems.len();
        let directory = raw.directory.unwrap_or_default();
        if directory.is_empty() {
            self.problem(
                "acme.directory",
                "missing: the ACME directory URL of the CA, e.g. \
                 \"https://acme-v02.api.letsencrypt.org/directory\"",
            );
        } else if let Err(why) = https_url(&directory) {
            self.problem(
                "acme.directory",
                format!("{directory:?} is not an https URL ({why}); ACME servers speak HTTPS only"),
            );
        }
        let email = raw.email.unwrap_or_default();
        if email.is_empty() {
            self.problem(
                "acme.email",
                "missing: the contact the CA writes to about this account, e.g. \
                 email = \"pki@example.org\"",
            );
        } else if !plausible_email(&email) {
            self.problem(
                "acme.email",
                format!("{email:?} is not an e-mail address: expected NAME@DOMAIN, no spaces"),
            );
        }
        let eab = match (raw.eab_kid, raw.eab_hmac_key_env) {
            (None, None) => None,
            (Some(_), None) => {
                self.problem(
                    "acme.eab_hmac_key_env",
                    "missing: eab_kid is set, so the HMAC key is needed too: the name of the \
                     environment variable that holds it (the CA shows it as base64url)",
                );
                None
            }
            (None, Some(_)) => {
                self.problem(
                    "acme.eab_kid",
                    "missing: eab_hmac_key_env is set, so the key identifier the CA gave \
                     with it is needed too",
                );
                None
            }
            (Some(kid), Some(env)) => {
                if kid.trim().is_empty() {
                    self.problem("acme.eab_kid", "empty: the key identifier the CA gave");
                }
                if env.is_empty() || env.contains(['=', '\0']) {
                    let message = format!("{env:?} is not an environment variable name");
                    self.problem("acme.eab_hmac_key_env", message);
                }
                Some(AcmeEab {
                    kid,
                    hmac_key_env: env,
                })
            }
        };
        let ca = raw.ca.as_deref().map(|p| self.path("acme.ca", p));
        let challenge = match raw.challenge.as_deref() {
            None | Some("tls-alpn-01") => AcmeChallenge::TlsAlpn01,
            Some("http-01") => AcmeChallenge::Http01,
            Some(other) => {
                let message = if other == "dns-01" {
                    "\"dns-01\" is not supported (it needs your DNS provider's API): expected \
                     \"tls-alpn-01\" or \"http-01\""
                        .to_owned()
                } else {
                    format!("{other:?} is not a challenge: expected \"tls-alpn-01\" or \"http-01\"")
                };
                self.problem("acme.challenge", message);
                AcmeChallenge::TlsAlpn01
            }
        };
        if challenge == AcmeChallenge::Http01 && server.http_redirect.is_none() {
            self.problem(
                "acme.challenge",
                "\"http-01\" is answered on the plain-HTTP listener, and server.http_redirect \
                 is not set: set http_redirect = \"0.0.0.0:80\" (the CA connects to port 80) \
                 or use \"tls-alpn-01\"",
            );
        }
        let key = match raw.key.as_deref() {
            None => CsrKey::P256,
            Some(text) => match text.parse::<CsrKey>() {
                Ok(key) => {
                    self.key_meets_policy(key, policy);
                    key
                }
                Err(why) => {
                    self.problem("acme.key", why);
                    CsrKey::P256
                }
            },
        };
        let renew_before = match raw.renew_before_days {
            None => None,
            Some(days) if (1..=MAX_RENEW_BEFORE_DAYS).contains(&days) => {
                Some(Duration::from_secs(days as u64 * 86_400))
            }
            Some(days) => {
                self.problem(
                    "acme.renew_before_days",
                    format!(
                        "{days} is out of range: expected 1 to {MAX_RENEW_BEFORE_DAYS} \
                         (leave it out to renew when a third of the lifetime is left)"
                    ),
                );
                None
            }
        };
        self.acme = Some(AcmeFacts {
            dir: Acme::dir(&server.state_dir),
            challenge,
        });
        (self.problems.len() == before).then_some(Acme {
            directory,
            email,
            eab,
            ca,
            challenge,
            key,
            renew_before,
        })
    }

    /// A key the policy would refuse makes every order fail after the CA has issued it:
    /// say so now.
    fn key_meets_policy(&mut self, key: CsrKey, policy: &Policy) {
        let (kind, bits, min, rule) = match key {
            CsrKey::P256 => ("EC", 256, policy.min_ec_bits, "min_ec_bits"),
            CsrKey::P384 => ("EC", 384, policy.min_ec_bits, "min_ec_bits"),
            CsrKey::Rsa2048 => ("RSA", 2048, policy.min_rsa_bits, "min_rsa_bits"),
            CsrKey::Rsa3072 => ("RSA", 3072, policy.min_rsa_bits, "min_rsa_bits"),
            CsrKey::Rsa4096 => ("RSA", 4096, policy.min_rsa_bits, "min_rsa_bits"),
        };
        if bits < min {
            self.problem(
                "acme.key",
                format!(
                    "\"{key}\" makes {kind} {bits}-bit keys, and policy.{rule} requires >= {min}: \
                     choose a larger key"
                ),
            );
        }
    }

    /// The source of an `acme = true` host: the pair the engine keeps for it.
    pub(super) fn acme_source(&mut self, at: &str, raw: &RawHost) -> Option<CertSource> {
        let Some(facts) = &self.acme else {
            self.problem(
                format!("{at}.acme"),
                "set, but there is no [acme] section: add one with at least directory and email",
            );
            return None;
        };
        let (dir, challenge) = (facts.dir.clone(), facts.challenge);
        let names = raw.fqdn.iter().chain(&raw.aliases);
        if let Some(wild) = names.clone().find(|n| n.trim_start().starts_with("*.")) {
            self.problem(
                format!("{at}.acme"),
                format!(
                    "{wild:?} is a wildcard name, which a CA validates only by dns-01; \
                     {} cannot prove it: use a certificate file (cert and key, or pfx) for \
                     wildcard names",
                    challenge.as_str()
                ),
            );
            return None;
        }
        let fqdn = crate::names::normalize(raw.fqdn.as_deref()?);
        if fqdn.is_empty() || fqdn.contains(['/', '\\']) || fqdn.starts_with('.') {
            return None; // an invalid fqdn is reported by the name check
        }
        let host_dir = dir.join(&fqdn);
        Some(CertSource::Pem {
            cert: host_dir.join("fullchain.pem"),
            key: host_dir.join("privkey.pem"),
        })
    }
}

/// `https://AUTHORITY[/PATH]`, no spaces: what an ACME directory URL looks like.
fn https_url(url: &str) -> Result<(), &'static str> {
    let Some(rest) = url
        .get(..8)
        .filter(|s| s.eq_ignore_ascii_case("https://"))
        .map(|_| &url[8..])
    else {
        return Err("it must start with https://");
    };
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("it contains a space or control character");
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() {
        return Err("no host after https://");
    }
    Ok(())
}

fn plausible_email(email: &str) -> bool {
    match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
                && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    }
}
