//! The rules of one `[[host]]`: names, exactly one certificate source, exactly
//! one of upstream and respond, upstream options, client auth.

use certfront_certs::{CertSource, PasswordSource, Policy};

use super::Validator;
use super::cross::Claimed;
use crate::model::{Action, ClientAuth, ClientAuthMode, CrlExpired, CrlScope, Host};
use crate::names::{check_dns_name, normalize};
use crate::raw::{RawClientAuth, RawHost, RawRespond, RawUpstream, RawUpstreams};
use crate::upstream::{parse_authority, parse_upstream};

impl Validator<'_> {
    /// Every host, in file order (`None` where a host has problems), and the
    /// names they claim. Names are checked for uniqueness as they come, from
    /// the raw tables so that a host with other problems is still compared.
    pub(super) fn hosts(
        &mut self,
        raw: Vec<RawHost>,
        policy: &Policy,
    ) -> (Vec<Option<Host>>, Claimed) {
        if raw.is_empty() {
            self.problem(
                "host",
                "no [[host]] table: at least one host is required, each with an fqdn",
            );
        }
        let mut claimed = Claimed::default();
        let hosts = raw
            .into_iter()
            .enumerate()
            .map(|(i, raw)| {
                let fqdn = raw.fqdn.as_deref().map(normalize);
                let aliases: Vec<String> = raw.aliases.iter().map(|a| normalize(a)).collect();
                let host = self.host(i, raw, policy);
                self.claim_names(&mut claimed, i, fqdn, aliases);
                host
            })
            .collect();
        (hosts, claimed)
    }

    fn host(&mut self, i: usize, raw: RawHost, global_policy: &Policy) -> Option<Host> {
        let at = format!("host[{i}]");
        let before = self.problems.len();
        let fqdn = match &raw.fqdn {
            Some(name) => self.dns_name(&format!("{at}.fqdn"), name),
            None => {
                let message =
                    "missing: the name clients use for this host, e.g. fqdn = \"app.example.org\"";
                self.problem(format!("{at}.fqdn"), message);
                String::new()
            }
        };
        let aliases = raw
            .aliases
            .iter()
            .enumerate()
            .map(|(j, name)| self.dns_name(&format!("{at}.aliases[{j}]"), name))
            .collect();
        let source = self.source(&at, &raw);
        let raw_acme = raw.acme == Some(true);
        let raw_ccs = raw.ccs == Some(true);
        let action = self.action(&at, raw.upstream.clone(), raw.respond.clone());
        let upstream_host = raw.upstream_host.clone();
        let upstream_ca = raw
            .upstream_ca
            .as_deref()
            .map(|p| self.path(&format!("{at}.upstream_ca"), p));
        self.upstream_options(&at, &raw);
        let client_auth = raw.client_auth.map(|ca| self.client_auth(&at, ca));
        let policy = match raw.policy {
            Some(overrides) => self.policy(&format!("{at}.policy"), overrides, global_policy),
            None => global_policy.clone(),
        };
        if self.problems.len() > before {
            return None;
        }
        Some(Host {
            fqdn,
            aliases,
            source: source?,
            action: action?,
            upstream_host,
            upstream_ca,
            client_auth,
            acme: raw_acme,
            ccs: raw_ccs,
            policy,
        })
    }

    /// Normalizes a host name, noting a problem if its syntax is wrong.
    fn dns_name(&mut self, at: &str, name: &str) -> String {
        let normalized = normalize(name);
        if let Err(why) = check_dns_name(&normalized) {
            self.problem(at, format!("{name:?} is not a valid DNS name: {why}"));
        }
        normalized
    }

    fn source(&mut self, at: &str, raw: &RawHost) -> Option<CertSource> {
        let mut kinds = Vec::new();
        if raw.cert.is_some() || raw.key.is_some() {
            kinds.push("cert + key");
        }
        if raw.pfx.is_some() {
            kinds.push("pfx");
        }
        if raw.internal == Some(true) {
            kinds.push("internal = true");
        }
        if raw.acme == Some(true) {
            kinds.push("acme = true");
        }
        if raw.ccs == Some(true) {
            kinds.push("ccs = true");
        }
        match (&raw.cert, &raw.key) {
            (Some(_), None) => self.problem(
                format!("{at}.key"),
                "missing: cert is set, so key (its private key file) is needed too",
            ),
            (None, Some(_)) => self.problem(
                format!("{at}.cert"),
                "missing: key is set, so cert (the certificate chain file) is needed too",
            ),
            _ => {}
        }
        let password = self.password(at, raw);
        match kinds.len() {
            0 => self.problem(
                at,
                "no certificate source: set cert and key (PEM files), pfx (a PKCS#12 file, \
                 with pfx_password_env or pfx_password_file), ccs = true (the [ccs] store), internal = true, \
                 or acme = true",
            ),
            1 => {}
            _ => self.problem(
                at,
                format!(
                    "several certificate sources ({}): set exactly one",
                    kinds.join(", ")
                ),
            ),
        }
        if kinds.len() != 1 {
            return None;
        }
        if let (Some(cert), Some(key)) = (&raw.cert, &raw.key) {
            let cert = self.path(&format!("{at}.cert"), cert);
            let key = self.path(&format!("{at}.key"), key);
            return Some(CertSource::Pem { cert, key });
        }
        if let Some(pfx) = &raw.pfx {
            let path = self.path(&format!("{at}.pfx"), pfx);
            return Some(CertSource::Pfx {
                path,
                password: password?,
            });
        }
        if raw.acme == Some(true) {
            return self.acme_source(at, raw);
        }
        if raw.ccs == Some(true) {
            return self.ccs_source(at, raw);
        }
        (raw.internal == Some(true)).then_some(CertSource::Internal)
    }

    fn password(&mut self, at: &str, raw: &RawHost) -> Option<PasswordSource> {
        let (env, file) = (&raw.pfx_password_env, &raw.pfx_password_file);
        if raw.pfx.is_none() {
            if env.is_some() {
                self.problem(
                    format!("{at}.pfx_password_env"),
                    "set, but this host has no pfx",
                );
            }
            if file.is_some() {
                self.problem(
                    format!("{at}.pfx_password_file"),
                    "set, but this host has no pfx",
                );
            }
            return None;
        }
        match (env, file) {
            (None, None) => {
                self.problem(
                    format!("{at}.pfx"),
                    "no password source: set pfx_password_env (the name of an environment \
                     variable) or pfx_password_file (a file whose first line is the password)",
                );
                None
            }
            (Some(_), Some(_)) => {
                self.problem(
                    format!("{at}.pfx_password_file"),
                    "pfx_password_env is set too: choose one password source",
                );
                None
            }
            (Some(var), None) => {
                if var.is_empty() || var.contains(['=', '\0']) {
                    let message = format!("{var:?} is not an environment variable name");
                    self.problem(format!("{at}.pfx_password_env"), message);
                }
                Some(PasswordSource::Env(var.clone()))
            }
            (None, Some(file)) => Some(PasswordSource::File(
                self.path(&format!("{at}.pfx_password_file"), file),
            )),
        }
    }

    fn action(
        &mut self,
        at: &str,
        upstream: Option<RawUpstreams>,
        respond: Option<RawRespond>,
    ) -> Option<Action> {
        match (upstream, respond) {
            (None, None) => {
                self.problem(
                    at,
                    "neither upstream nor respond: set upstream = \"http://HOST:PORT\" to forward, \
                     or respond = { status = 200, body = \"...\" } to answer directly",
                );
                None
            }
            (Some(_), Some(_)) => {
                self.problem(at, "both upstream and respond are set: choose one");
                None
            }
            (Some(RawUpstreams::One(raw)), None) => {
                let upstream = self.upstream(&format!("{at}.upstream"), raw)?;
                Some(Action::Upstream(vec![upstream]))
            }
            (Some(RawUpstreams::Many(list)), None) => {
                if list.is_empty() {
                    self.problem(
                        format!("{at}.upstream"),
                        "empty list: give at least one URL",
                    );
                }
                let parsed: Vec<_> = list
                    .into_iter()
                    .enumerate()
                    .map(|(j, raw)| self.upstream(&format!("{at}.upstream[{j}]"), raw))
                    .collect();
                parsed
                    .into_iter()
                    .collect::<Option<Vec<_>>>()
                    .map(Action::Upstream)
            }
            (None, Some(respond)) => self.respond(at, respond),
        }
    }

    /// One upstream, URL or table; warns about an https upstream by IP address without
    /// `tls_name`, whose certificate (issued for the server's FQDN) would not verify.
    fn upstream(&mut self, at: &str, raw: RawUpstream) -> Option<crate::model::Upstream> {
        let Some(url) = raw.url else {
            self.problem(
                format!("{at}.url"),
                "missing: the upstream's URL, e.g. { url = \"https://10.0.0.21\", tls_name = \"app01.corp.example\" }",
            );
            return None;
        };
        let mut upstream = parse_upstream(&url)
            .map_err(|message| self.problem(at, message))
            .ok()?;
        match raw.tls_name {
            Some(_) if !upstream.tls => {
                self.problem(
                    format!("{at}.tls_name"),
                    format!(
                        "set, but {url:?} is plain http: tls_name is the name certfront verifies in \
                         an https upstream's certificate; use https:// or remove tls_name"
                    ),
                );
                None
            }
            Some(name) => {
                let name = normalize(&name);
                let valid = name.parse::<std::net::IpAddr>().is_ok()
                    || (!name.starts_with("*.") && check_dns_name(&name).is_ok());
                if !valid {
                    let why = check_dns_name(&name)
                        .err()
                        .unwrap_or_else(|| "a wildcard is not a server's name".into());
                    self.problem(
                        format!("{at}.tls_name"),
                        format!(
                            "{name:?} is not a DNS name or IP address ({why}); expected the name \
                             in the upstream's certificate, e.g. \"app01.corp.example\""
                        ),
                    );
                    return None;
                }
                upstream.tls_name = Some(name);
                Some(upstream)
            }
            None => {
                if upstream.tls && upstream.host.parse::<std::net::IpAddr>().is_ok() {
                    self.warn(
                        at,
                        format!(
                            "{url:?} is an IP address without tls_name: certfront verifies the \
                             upstream's certificate against {ip} and sends no SNI, but IIS \
                             certificates usually name the server's FQDN, which then fails (502); \
                             write upstream = {{ url = {url:?}, tls_name = \"<name in the IIS \
                             certificate>\" }}",
                            ip = upstream.host
                        ),
                    );
                }
                Some(upstream)
            }
        }
    }

    fn respond(&mut self, at: &str, raw: RawRespond) -> Option<Action> {
        let status = raw.status.unwrap_or(200);
        let body = raw.body.unwrap_or_default();
        let Some(status) = u16::try_from(status)
            .ok()
            .filter(|s| (200..=599).contains(s))
        else {
            self.problem(
                format!("{at}.respond.status"),
                format!("{status} is not a final HTTP status: expected 200 to 599"),
            );
            return None;
        };
        if matches!(status, 204 | 304) && !body.is_empty() {
            let message =
                format!("a {status} response carries no body: remove body or change status");
            self.problem(format!("{at}.respond.body"), message);
        }
        Some(Action::Respond { status, body })
    }

    /// `upstream_host` and `upstream_ca` only make sense with an upstream (an
    /// https one, for the CA).
    fn upstream_options(&mut self, at: &str, raw: &RawHost) {
        let urls: Vec<&str> = match &raw.upstream {
            None => Vec::new(),
            Some(RawUpstreams::One(one)) => one.url.as_deref().into_iter().collect(),
            Some(RawUpstreams::Many(list)) => {
                list.iter().filter_map(|u| u.url.as_deref()).collect()
            }
        };
        if let Some(value) = &raw.upstream_host {
            if raw.upstream.is_none() {
                self.problem(
                    format!("{at}.upstream_host"),
                    "set, but this host has no upstream",
                );
            } else if let Err(why) = parse_authority(value) {
                let message = format!(
                    "{value:?} is not a Host header value ({why}); expected HOST or HOST:PORT"
                );
                self.problem(format!("{at}.upstream_host"), message);
            }
        }
        let https = urls.iter().any(|u| {
            u.get(..8)
                .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
        });
        if raw.upstream_ca.is_some() && !https {
            self.problem(
                format!("{at}.upstream_ca"),
                "set, but no upstream of this host uses https: the CA only verifies https upstreams",
            );
        }
    }

    fn client_auth(&mut self, at: &str, raw: RawClientAuth) -> ClientAuth {
        let at = format!("{at}.client_auth");
        let mode = match raw.mode.as_deref() {
            None | Some("required") => ClientAuthMode::Required,
            Some("optional") => ClientAuthMode::Optional,
            Some(other) => {
                let message =
                    format!("{other:?} is not a mode: expected \"required\" or \"optional\"");
                self.problem(format!("{at}.mode"), message);
                ClientAuthMode::Required
            }
        };
        let ca = match raw.ca {
            Some(ca) => self.path(&format!("{at}.ca"), &ca),
            None => {
                self.problem(
                    format!("{at}.ca"),
                    "missing: the CA certificate file that client certificates must chain to",
                );
                Default::default()
            }
        };
        let deny = raw.deny.map(|d| self.path(&format!("{at}.deny"), &d));
        let crl = raw
            .crl
            .iter()
            .enumerate()
            .map(|(i, c)| self.path(&format!("{at}.crl[{i}]"), c))
            .collect();
        let crl_url = raw
            .crl_url
            .into_iter()
            .enumerate()
            .filter(|(i, url)| {
                let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
                let ok = matches!(scheme.as_deref(), Some("http" | "https"))
                    && url.split_once("://").is_some_and(|(_, rest)| !rest.is_empty());
                if !ok {
                    let message = format!(
                        "{url:?} is not an HTTP or HTTPS URL: expected \"http://...\" or \"https://...\" (LDAP and file URLs are not fetched; copy an LDAP-published CRL to a file and name it in client_auth.crl)"
                    );
                    self.problem(format!("{at}.crl_url[{i}]"), message);
                }
                ok
            })
            .map(|(_, url)| url)
            .collect();
        let crl_refresh_seconds = match raw.crl_refresh_seconds {
            None => 3600,
            Some(s) if s >= 60 => s,
            Some(other) => {
                let message = format!("{other} is too short: expected at least 60 seconds");
                self.problem(format!("{at}.crl_refresh_seconds"), message);
                3600
            }
        };
        let crl_scope = match raw.crl_scope.as_deref() {
            None | Some("leaf") => CrlScope::Leaf,
            Some("chain") => CrlScope::Chain,
            Some(other) => {
                let message =
                    format!("{other:?} is not a CRL scope: expected \"leaf\" or \"chain\"");
                self.problem(format!("{at}.crl_scope"), message);
                CrlScope::Leaf
            }
        };
        let crl_expired = match raw.crl_expired.as_deref() {
            None | Some("refuse") => CrlExpired::Refuse,
            Some("accept") => CrlExpired::Accept,
            Some(other) => {
                let message =
                    format!("{other:?} is not a choice: expected \"refuse\" or \"accept\"");
                self.problem(format!("{at}.crl_expired"), message);
                CrlExpired::Refuse
            }
        };
        ClientAuth {
            mode,
            ca,
            deny,
            arr_client_cert: raw.arr_client_cert.unwrap_or(false),
            crl,
            crl_url,
            crl_refresh_seconds,
            crl_scope,
            crl_expired,
        }
    }
}
