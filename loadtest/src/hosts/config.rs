//! The configurations `hosts` starts a proxy with: N hosts sharing one wildcard certificate, for certfront (TOML) or nginx.

use std::fmt::Write as _;
use std::path::Path;

/// The parent of every generated host name (the wildcard certificate is `*.` this).
pub(crate) const DOMAIN: &str = "bench.localhost";

/// Name of host `i` of `n` (1-based): `h00001.bench.localhost`; zero-padded to at least
/// five digits so that names sort in creation order.
pub(crate) fn host_name(i: u32, n: u32) -> String {
    let width = n.to_string().len().max(5);
    format!("h{i:0width$}.{DOMAIN}")
}

/// Files the configurations name.
pub(crate) struct Paths<'a> {
    pub ca: &'a Path,
    pub cert: &'a Path,
    pub key: &'a Path,
    /// nginx only: the directory for its pid, logs and temporary files.
    pub work: &'a Path,
}

/// certfront: `n` hosts answering directly (`respond`, no backend), resumption off, no
/// access log and no periodic re-scan (10,000 hosts re-read every minute would blur the
/// measurement).
pub(crate) fn certfront(n: u32, port: u16, p: &Paths<'_>) -> String {
    let mut s = String::with_capacity(160 * n as usize + 400);
    let _ = write!(
        s,
        "[server]\nlisten = [\"127.0.0.1:{port}\"]\naccess_log = false\nrescan_seconds = 0\n\n\
         [tls]\ntrust = [{ca}]\nresumption = false\n",
        ca = toml_str(p.ca),
    );
    for i in 1..=n {
        let _ = write!(
            s,
            "\n[[host]]\nfqdn = \"{}\"\ncert = {}\nkey = {}\nrespond = {{ status = 200, body = \"ok\\n\" }}\n",
            host_name(i, n),
            toml_str(p.cert),
            toml_str(p.key),
        );
    }
    s
}

/// nginx: `n` `server` blocks on one port, each with the same certificate (nginx builds a
/// TLS context per server, which is the cost being measured), resumption off.
pub(crate) fn nginx(n: u32, port: u16, p: &Paths<'_>) -> String {
    let work = p.work.display();
    let mut s = String::with_capacity(120 * n as usize + 1000);
    let _ = write!(
        s,
        "worker_processes 2;\ndaemon off;\npid {work}/nginx.pid;\nerror_log {work}/nginx-error.log warn;\n\
         events {{ worker_connections 4096; }}\nhttp {{\n    access_log off;\n\
         \x20   client_body_temp_path {work}/body;\n    proxy_temp_path {work}/proxy;\n\
         \x20   fastcgi_temp_path {work}/fastcgi;\n    uwsgi_temp_path {work}/uwsgi;\n    scgi_temp_path {work}/scgi;\n\
         \x20   server_names_hash_max_size {hash};\n    server_names_hash_bucket_size 128;\n\
         \x20   ssl_certificate {cert};\n    ssl_certificate_key {key};\n\
         \x20   ssl_protocols TLSv1.2 TLSv1.3;\n    ssl_session_cache off;\n    ssl_session_tickets off;\n",
        hash = (2 * n).max(512),
        cert = p.cert.display(),
        key = p.key.display(),
    );
    for i in 1..=n {
        let _ = writeln!(
            s,
            "    server {{ listen 127.0.0.1:{port} ssl; server_name {}; return 200 \"ok\\n\"; }}",
            host_name(i, n)
        );
    }
    s.push_str("}\n");
    s
}

/// A TOML basic string holding `p`.
fn toml_str(p: &Path) -> String {
    let mut out = String::from("\"");
    for c in p.display().to_string().chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths() -> Paths<'static> {
        Paths {
            ca: Path::new("/tmp/x/ca.pem"),
            cert: Path::new("/tmp/x/wild \"card\".pem"),
            key: Path::new("/tmp/x/wild-key.pem"),
            work: Path::new("/tmp/x"),
        }
    }

    #[test]
    fn names_are_padded_unique_and_under_the_wildcard() {
        assert_eq!(host_name(1, 10_000), "h00001.bench.localhost");
        assert_eq!(host_name(10_000, 10_000), "h10000.bench.localhost");
        assert_eq!(host_name(7, 3), "h00007.bench.localhost");
        assert_eq!(host_name(1, 1_000_000), "h0000001.bench.localhost");
        let n = 2_000;
        let names: std::collections::BTreeSet<String> = (1..=n).map(|i| host_name(i, n)).collect();
        assert_eq!(names.len(), n as usize);
        for name in &names {
            let (label, rest) = name.split_once('.').unwrap();
            assert_eq!(rest, DOMAIN, "one label under the wildcard: {name}");
            assert!(label.chars().all(|c| c.is_ascii_alphanumeric()), "{name}");
        }
        // Creation order is sort order: the "last" host is the one written last.
        assert_eq!(names.iter().next_back().unwrap(), &host_name(n, n));
    }

    #[test]
    fn certfront_config_has_every_host_once_and_parses_as_toml() {
        let text = certfront(3, 18_999, &paths());
        let doc: toml::Table = text.parse().expect("valid TOML");
        let hosts = doc["host"].as_array().unwrap();
        assert_eq!(hosts.len(), 3);
        for (i, h) in hosts.iter().enumerate() {
            assert_eq!(h["fqdn"].as_str().unwrap(), host_name(i as u32 + 1, 3));
            assert_eq!(h["cert"].as_str().unwrap(), "/tmp/x/wild \"card\".pem");
            assert_eq!(h["respond"]["status"].as_integer(), Some(200));
        }
        assert_eq!(
            doc["server"]["listen"].as_array().unwrap()[0].as_str(),
            Some("127.0.0.1:18999")
        );
        assert_eq!(doc["tls"]["resumption"].as_bool(), Some(false));
        assert_eq!(doc["server"]["rescan_seconds"].as_integer(), Some(0));
    }

    #[test]
    fn nginx_config_has_one_server_block_per_host_and_balanced_braces() {
        let text = nginx(4, 18_998, &paths());
        assert_eq!(text.matches("server {").count(), 4);
        assert_eq!(text.matches('{').count(), text.matches('}').count());
        for i in 1..=4 {
            assert!(text.contains(&format!("server_name {};", host_name(i, 4))));
        }
        assert!(text.contains("listen 127.0.0.1:18998 ssl;"));
        assert!(text.contains("ssl_session_tickets off;"));
    }
}
