//! Turns the IIS bindings into a commented `certfront.toml`: one `[[host]]` per HTTPS
//! binding host name, and a comment for every binding it cannot carry.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use certfront_certs::names::{Allow, check_dns_name, normalize};

use super::apphost::{
    Access, AppHost, Binding, Endpoint, SSL_CCS, SSL_DISABLE_LEGACY_TLS, SSL_DISABLE_TLS13,
    SSL_SNI, Site,
};
use super::netsh::{Key, SslCert};
use super::text::{bracket, clean, flags_text, quoted, toml_str};

/// Where the admin will put things; the defaults suit the systemd unit.
pub(super) struct Options<'a> {
    /// The IIS server's address, for bindings on `*` (all addresses).
    pub iis_address: Option<&'a str>,
    /// Where the exported `.pfx` files and their password files go.
    pub cert_dir: &'a str,
    /// Where the Central Certificate Store share is mounted.
    pub ccs_dir: &'a str,
    /// Written into the header comment.
    pub sources: &'a str,
}

/// Stands in for the IIS server's address when neither the binding nor `--iis-address`
/// gives one: `.invalid` never resolves (RFC 6761), so a forgotten placeholder fails
/// loudly (502) instead of reaching some other machine.
pub(super) const PLACEHOLDER_ADDRESS: &str = "iis-server.invalid";

/// One `[[host]]` to write.
struct HostOut<'a> {
    fqdn: String,
    site: &'a Site,
    endpoint: Endpoint,
    flags: u32,
    cert: Option<&'a SslCert>,
    binding_hash: Option<(&'a str, &'a str)>,
    /// Other bindings of the same name (another port or address).
    also: Vec<String>,
}

/// The rendered file, and how many hosts it has (0: nothing could be carried).
pub(super) fn render(app: &AppHost, netsh: &[SslCert], opt: &Options<'_>) -> (String, usize) {
    let mut hosts: Vec<HostOut<'_>> = Vec::new();
    let mut skipped: Vec<String> = Vec::new();
    let mut ports = BTreeSet::new();
    let mut http_ports = BTreeSet::new();
    for site in &app.sites {
        for b in &site.bindings {
            match b.protocol.as_str() {
                "https" => https_binding(site, b, netsh, &mut hosts, &mut skipped, &mut ports),
                "http" => {
                    if let Some(e) = b.endpoint() {
                        http_ports.insert(e.port);
                    }
                    skipped.push(format!(
                        "site {}: http binding {}: plain HTTP is not proxied; \
                         server.http_redirect answers it with a redirect to https",
                        quoted(&site.name),
                        clean(&b.information)
                    ));
                }
                other => skipped.push(format!(
                    "site {}: {} binding {}: {}",
                    quoted(&site.name),
                    clean(other),
                    clean(&b.information),
                    why_not(other)
                )),
            }
        }
    }
    let mut out = String::new();
    header(&mut out, opt, &hosts, &ports, &http_ports);
    for h in &hosts {
        host(&mut out, h, app, opt);
    }
    if !skipped.is_empty() {
        out.push_str("\n# Bindings not carried over:\n");
        for s in &skipped {
            let _ = writeln!(out, "# - {s}");
        }
    }
    (out, hosts.len())
}

fn https_binding<'a>(
    site: &'a Site,
    b: &'a Binding,
    netsh: &'a [SslCert],
    hosts: &mut Vec<HostOut<'a>>,
    skipped: &mut Vec<String>,
    ports: &mut BTreeSet<u16>,
) {
    let at = format!(
        "site {}: https binding {}",
        quoted(&site.name),
        clean(&b.information)
    );
    let Some(endpoint) = b.endpoint() else {
        skipped.push(format!("{at}: not IP:PORT:HOST"));
        return;
    };
    if endpoint.host.is_empty() {
        let cert = lookup(netsh, &endpoint, b.ssl_flags)
            .and_then(|c| c.hash.as_deref())
            .map(|h| format!(" (certificate {h})"))
            .unwrap_or_default();
        skipped.push(format!(
            "{at}{cert}: an IP-only binding without a host name; certfront chooses the \
             certificate by the name the client asks for (SNI), so add a [[host]] with the \
             names clients use"
        ));
        return;
    }
    let fqdn = normalize(&endpoint.host);
    if let Err(why) = check_dns_name(&fqdn, Allow::HOST) {
        skipped.push(format!(
            "{at}: host name {} is not a valid DNS name ({why})",
            quoted(&endpoint.host)
        ));
        return;
    }
    if let Some(existing) = hosts.iter_mut().find(|h| h.fqdn == fqdn) {
        existing.also.push(format!(
            "site {} binding {}",
            quoted(&site.name),
            clean(&b.information)
        ));
        ports.insert(endpoint.port);
        return;
    }
    ports.insert(endpoint.port);
    hosts.push(HostOut {
        cert: lookup(netsh, &endpoint, b.ssl_flags),
        binding_hash: b
            .certificate_hash
            .as_deref()
            .map(|h| (h, b.certificate_store.as_deref().unwrap_or("My"))),
        fqdn,
        site,
        endpoint,
        flags: b.ssl_flags,
        also: Vec::new(),
    });
}

/// The netsh entry HTTP.sys uses for a binding: by host name for SNI, the CCS port for
/// CCS, else by address (`*` is `0.0.0.0`).
fn lookup<'a>(netsh: &'a [SslCert], e: &Endpoint, flags: u32) -> Option<&'a SslCert> {
    let host = e.host.to_ascii_lowercase();
    let ip = if e.ip == "*" {
        "0.0.0.0"
    } else {
        e.ip.as_str()
    };
    netsh.iter().find(|c| match &c.key {
        Key::Ccs(port) => flags & SSL_CCS != 0 && *port == e.port,
        Key::Host(h, port) => flags & SSL_SNI != 0 && *h == host && *port == e.port,
        Key::Ip(i, port) => flags & (SSL_SNI | SSL_CCS) == 0 && i == ip && *port == e.port,
    })
}

fn why_not(protocol: &str) -> &'static str {
    match protocol {
        "net.tcp" => {
            "WCF's binary framing over TCP, not HTTP: no HTTP proxy can terminate it \
             (docs/migrating-from-iis.md, \"WCF net.tcp endpoints cannot be fronted\")"
        }
        "net.pipe" | "net.msmq" | "msmq.formatname" => {
            "a local WCF transport, not HTTP: it stays on the Windows server"
        }
        "ftp" | "ftps" => "FTP is not HTTP: it stays on the Windows server",
        _ => "not HTTP or HTTPS: certfront proxies HTTPS only",
    }
}

fn header(
    out: &mut String,
    opt: &Options<'_>,
    hosts: &[HostOut<'_>],
    ports: &BTreeSet<u16>,
    http_ports: &BTreeSet<u16>,
) {
    let _ = writeln!(
        out,
        "# certfront.toml written by `certfront import iis` from"
    );
    for line in opt.sources.lines() {
        let _ = writeln!(out, "#   {}", clean(line));
    }
    out.push_str(
        "# Lines marked TODO need you: export the certificates, write the password files,\n\
         # set the IIS server's address; then `certfront check -c certfront.toml`.\n\
         # Reference: docs/configuration.md; the steps: docs/migrating-from-iis.md.\n\n[server]\n",
    );
    let listen: Vec<String> = if ports.is_empty() {
        BTreeSet::from([443])
    } else {
        ports.clone()
    }
    .iter()
    .map(|p| format!("\"0.0.0.0:{p}\""))
    .collect();
    let _ = writeln!(out, "listen = [{}]", listen.join(", "));
    // A port IIS used for both (odd, but possible) stays with https: listeners must differ.
    match http_ports
        .iter()
        .find(|p| !ports.contains(p) && **p != 9443)
    {
        Some(p) => {
            let _ = writeln!(
                out,
                "http_redirect = \"0.0.0.0:{p}\"   # IIS had plain-HTTP bindings: answer them with a redirect to https"
            );
        }
        None => out.push_str(
            "# http_redirect = \"0.0.0.0:80\"   # plain HTTP answered with a redirect to https\n",
        ),
    }
    let admin = (9443..)
        .find(|p| !ports.contains(p) && !http_ports.contains(p))
        .unwrap_or(9443);
    let _ = writeln!(
        out,
        "admin = \"127.0.0.1:{admin}\"   # /metrics /healthz /readyz /certs"
    );
    if hosts.iter().any(|h| h.flags & SSL_CCS != 0) {
        let _ = writeln!(
            out,
            "\n# IIS Central Certificate Store: hosts with ccs = true take <fqdn>.pfx from this folder\n\
             # (_.example.org.pfx for *.example.org), with the one password. On a CIFS mount file\n\
             # events do not arrive: changes are picked up by the re-scan (server.rescan_seconds).\n\
             [ccs]\n\
             path = {}   # TODO: where the CCS share is mounted\n\
             password_file = {}   # TODO: the CCS private-key password, first line, mode 0600",
            toml_str(opt.ccs_dir),
            toml_str(&format!("{}/ccs.pass", opt.cert_dir))
        );
    }
}

fn host(out: &mut String, h: &HostOut<'_>, app: &AppHost, opt: &Options<'_>) {
    let _ = writeln!(
        out,
        "\n# IIS site {} (id {}), binding https {}{}",
        quoted(&h.site.name),
        clean(&h.site.id),
        clean(&format!(
            "{}:{}:{}",
            h.endpoint.ip, h.endpoint.port, h.endpoint.host
        )),
        flags_text(h.flags)
    );
    for a in &h.also {
        let _ = writeln!(out, "# also bound by {a}");
    }
    if h.flags & SSL_DISABLE_TLS13 != 0 {
        out.push_str("# IIS had TLS 1.3 disabled on this binding; certfront offers TLS 1.2 and 1.3 (tls.min_version)\n");
    }
    if h.flags & SSL_DISABLE_LEGACY_TLS != 0 {
        out.push_str("# IIS had legacy TLS disabled on this binding; certfront never offers TLS 1.0 or 1.1\n");
    }
    out.push_str("[[host]]\n");
    let _ = writeln!(out, "fqdn = {}", toml_str(&h.fqdn));
    let file = h.fqdn.replacen('*', "_", 1);
    if h.flags & SSL_CCS != 0 {
        let _ = writeln!(
            out,
            "ccs = true   # {}/{} from the Central Certificate Store",
            clean(opt.ccs_dir),
            certfront_config::ccs_file_name(&h.fqdn)
        );
    } else {
        match (h.cert.and_then(|c| c.hash.as_deref().map(|x| (x, c.store_name()))), h.binding_hash) {
            (Some((hash, store)), _) | (None, Some((hash, store))) => {
                let _ = writeln!(
                    out,
                    "# TODO: export certificate {hash} (Cert:\\LocalMachine\\{store}) with its private key\n\
                     # and \"Include all certificates in the certification path\" to this file"
                );
            }
            (None, None) => out.push_str(
                "# TODO: export this site's certificate (thumbprint: `netsh http show sslcert`, or\n\
                 # IIS Manager > Bindings) with its private key and \"Include all certificates in the\n\
                 # certification path\" to this file\n",
            ),
        }
        let _ = writeln!(
            out,
            "pfx = {}",
            toml_str(&format!("{}/{file}.pfx", opt.cert_dir))
        );
        let _ = writeln!(
            out,
            "pfx_password_file = {}   # TODO: the export password, first line, mode 0600",
            toml_str(&format!("{}/{file}.pass", opt.cert_dir))
        );
    }
    upstream(out, h, opt);
    client_auth(out, h, app, opt);
}

fn upstream(out: &mut String, h: &HostOut<'_>, opt: &Options<'_>) {
    let e = &h.endpoint;
    let specific = e.ip != "*" && e.ip != "0.0.0.0" && e.ip != "[::]";
    let (address, todo) = match (specific, opt.iis_address) {
        (true, _) => (e.ip.clone(), ""),
        (false, Some(a)) => (bracket(a), ""),
        (false, None) => (
            PLACEHOLDER_ADDRESS.to_string(),
            "   # TODO: the IIS server's IP address (or --iis-address)",
        ),
    };
    // IIS keeps its https binding: re-encrypt to it, verifying the certificate it serves
    // for this name (an IP address is not in it: tls_name, as the migration guide says).
    let tls_name = if h.fqdn.starts_with("*.") {
        out.push_str("# TODO: tls_name: a name the IIS server's certificate covers\n");
        h.fqdn.replacen('*', "iis", 1)
    } else {
        h.fqdn.clone()
    };
    let url = format!("https://{address}:{}", e.port);
    let _ = writeln!(
        out,
        "upstream = {{ url = {}, tls_name = {} }}{todo}",
        toml_str(&url),
        toml_str(&tls_name)
    );
    let _ = writeln!(
        out,
        "# upstream_ca = {}   # when IIS's certificate comes from a private CA",
        toml_str(&format!("{}/iis-root.pem", opt.cert_dir))
    );
}

/// `access@sslFlags` for the site: a `<location path="SITE">` wins over the server-wide
/// setting; `<location path="SITE/app">` is path-scoped, which certfront cannot do.
fn client_auth(out: &mut String, h: &HostOut<'_>, app: &AppHost, opt: &Options<'_>) {
    let site = h.site.name.as_str();
    let latest = |wanted: &dyn Fn(&Access) -> bool| app.access.iter().rev().find(|a| wanted(a));
    let effective =
        latest(&|a| a.path.eq_ignore_ascii_case(site)).or_else(|| latest(&|a| a.path.is_empty()));
    for a in &app.access {
        let scoped = a
            .path
            .get(..site.len() + 1)
            .is_some_and(|p| p.eq_ignore_ascii_case(&format!("{site}/")));
        if scoped && (a.negotiate || a.require) {
            let _ = writeln!(
                out,
                "# IIS asks for client certificates only under {}: certfront cannot scope them to a path\n\
                 # (TLS 1.3 and HTTP/2 forbid renegotiation); give that part its own name with its own\n\
                 # [host.client_auth] (docs/migrating-from-iis.md, \"Client certificates on part of a site\")",
                quoted(&a.path)
            );
        }
    }
    if h.cert.is_some_and(|c| c.negotiate_client_cert) {
        out.push_str("# netsh: \"Negotiate Client Certificate: Enabled\" on this binding\n");
    }
    let Some(a) = effective.filter(|a| a.negotiate || a.require) else {
        return;
    };
    let (mode, flag) = if a.require {
        ("required", "SslRequireCert")
    } else {
        ("optional", "SslNegotiateCert")
    };
    let _ = writeln!(
        out,
        "[host.client_auth]   # IIS: {flag}{}\nmode = \"{mode}\"\nca = {}   # TODO: the CA that issues the client certificates (PEM, DER or .p7b)\n\
         # arr_client_cert = true   # also send it as X-ARR-ClientCert, for applications written for IIS ARR",
        if a.path.is_empty() {
            " (server-wide)".to_string()
        } else {
            format!(" on {}", quoted(&a.path))
        },
        toml_str(&format!("{}/clients-ca.pem", opt.cert_dir))
    );
}
