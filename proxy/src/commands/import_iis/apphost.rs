//! What `import iis` reads from `applicationHost.config`: each site's bindings and the
//! client-certificate settings (`system.webServer/security/access@sslFlags`).

use roxmltree::{Document, Node, ParsingOptions};

/// One `<site>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Site {
    pub name: String,
    pub id: String,
    pub bindings: Vec<Binding>,
}

/// One `<binding>`: `bindingInformation` is `IP:PORT:HOST` for http/https, something
/// else for the other protocols (net.tcp `808:*`, ftp `*:21:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Binding {
    pub protocol: String,
    pub information: String,
    /// The binding's `sslFlags` bits (0 when absent): 1 SNI, 2 Central Certificate Store,
    /// and on IIS 10 4 disableHTTP2, 8 disableOCSPStapling, 16 disableQUIC,
    /// 32 disableTLS13, 64 disableLegacyTLS.
    pub ssl_flags: u32,
    /// `certificateHash` and `certificateStoreName`, which some tools write into the
    /// binding (IIS itself keeps them in HTTP.sys: netsh).
    pub certificate_hash: Option<String>,
    pub certificate_store: Option<String>,
}

pub(super) const SSL_SNI: u32 = 1;
pub(super) const SSL_CCS: u32 = 2;
pub(super) const SSL_DISABLE_TLS13: u32 = 32;
pub(super) const SSL_DISABLE_LEGACY_TLS: u32 = 64;

/// `access@sslFlags` for one `<location path>` ("" is server-wide).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Access {
    pub path: String,
    pub negotiate: bool,
    pub require: bool,
}

/// The parts of `applicationHost.config` the importer uses.
#[derive(Debug, Default)]
pub(super) struct AppHost {
    pub sites: Vec<Site>,
    pub access: Vec<Access>,
}

/// Nodes beyond this are refused: a real applicationHost.config has a few thousand.
const NODES_LIMIT: u32 = 1_000_000;

/// Parses the file. roxmltree refuses a DTD (so no entity can be declared, let alone
/// expanded) and knows only the five predefined entities.
pub(super) fn parse(text: &str) -> Result<AppHost, roxmltree::Error> {
    let options = ParsingOptions {
        allow_dtd: false,
        nodes_limit: NODES_LIMIT,
        ..ParsingOptions::default()
    };
    let doc = Document::parse_with_options(text, options)?;
    let root = doc.root_element();
    let mut out = AppHost::default();
    for sites in root
        .children()
        .filter(|n| n.has_tag_name("system.applicationHost"))
        .flat_map(|n| n.children().filter(|c| c.has_tag_name("sites")))
    {
        for site in sites.children().filter(|n| n.has_tag_name("site")) {
            out.sites.push(read_site(site));
        }
    }
    // Server-wide defaults first, then <location path="...">, in file order.
    for ws in root
        .children()
        .filter(|n| n.has_tag_name("system.webServer"))
    {
        out.access.extend(access(ws, ""));
    }
    for loc in root.children().filter(|n| n.has_tag_name("location")) {
        let path = loc.attribute("path").unwrap_or("");
        for ws in loc
            .children()
            .filter(|n| n.has_tag_name("system.webServer"))
        {
            out.access.extend(access(ws, path));
        }
    }
    Ok(out)
}

fn read_site(site: Node<'_, '_>) -> Site {
    let bindings = site
        .children()
        .filter(|n| n.has_tag_name("bindings"))
        .flat_map(|b| b.children().filter(|n| n.has_tag_name("binding")))
        .map(|b| Binding {
            protocol: b.attribute("protocol").unwrap_or("").to_ascii_lowercase(),
            information: b.attribute("bindingInformation").unwrap_or("").to_string(),
            ssl_flags: b
                .attribute("sslFlags")
                .and_then(|f| f.trim().parse().ok())
                .unwrap_or(0),
            certificate_hash: b
                .attribute("certificateHash")
                .filter(|h| !h.is_empty())
                .map(|h| h.to_ascii_uppercase()),
            certificate_store: b.attribute("certificateStoreName").map(str::to_string),
        })
        .collect();
    Site {
        name: site.attribute("name").unwrap_or("").to_string(),
        id: site.attribute("id").unwrap_or("").to_string(),
        bindings,
    }
}

/// `<security><access sslFlags="Ssl, SslNegotiateCert, SslRequireCert"/>` under one
/// `<system.webServer>`.
fn access(ws: Node<'_, '_>, path: &str) -> Option<Access> {
    let flags = ws
        .children()
        .filter(|n| n.has_tag_name("security"))
        .flat_map(|s| s.children().filter(|n| n.has_tag_name("access")))
        .find_map(|a| a.attribute("sslFlags"))?;
    let has = |name: &str| {
        flags
            .split(',')
            .any(|f| f.trim().eq_ignore_ascii_case(name))
    };
    Some(Access {
        path: path.trim_matches('/').to_string(),
        negotiate: has("SslNegotiateCert"),
        require: has("SslRequireCert"),
    })
}

/// `IP:PORT:HOST` of an http/https binding; IPv6 addresses are in brackets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Endpoint {
    /// `*` for all unassigned addresses.
    pub ip: String,
    pub port: u16,
    /// Empty when the binding has no host name.
    pub host: String,
}

impl Binding {
    /// The endpoint of an http/https binding, or `None` when `bindingInformation` is not
    /// `IP:PORT:HOST`.
    pub(super) fn endpoint(&self) -> Option<Endpoint> {
        let info = self.information.trim();
        let (ip, rest) = if let Some(after) = info.strip_prefix('[') {
            let (v6, rest) = after.split_once(']')?;
            (format!("[{v6}]"), rest.strip_prefix(':')?)
        } else {
            let (ip, rest) = info.split_once(':')?;
            (ip.to_string(), rest)
        };
        let (port, host) = rest.split_once(':')?;
        Some(Endpoint {
            ip,
            port: port.parse().ok()?,
            host: host.trim().to_string(),
        })
    }
}
