//! `/` on the admin listener: the inventory as a person reads it. One server-rendered HTML
//! page, no scripts, no external assets, every value from a certificate or the config
//! HTML-escaped. Hosts that need action (a refused reload, an expiring or missing
//! certificate, a backend down) come first; beyond [`PAGE`] hosts the page is paged, with
//! counts of all hosts on every page.

use std::fmt::{self, Write};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use certfront_certs::CertSource;
use certfront_certs::store::ReloadResult;
use http_body_util::Full;

use crate::app::App;
use crate::clock::{fmt_time, unix};
use crate::sites::{Route, Site};

/// Hosts per page: the whole table for most installations, a few hundred KB at most.
const PAGE: usize = 200;
/// Days left under which an expiry is critical (the shipped alert rules' threshold).
const CRITICAL_DAYS: i64 = 7;

/// HTML-escapes text (element content and quoted attribute values alike).
struct Esc<'a>(&'a str);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(i) = rest.find(['<', '>', '&', '"', '\'']) {
            f.write_str(&rest[..i])?;
            f.write_str(match rest.as_bytes()[i] {
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'&' => "&amp;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[i + 1..];
        }
        f.write_str(rest)
    }
}

/// How urgent a host is: lower sorts first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    /// Refused reload, no or an expired certificate, critical expiry, a backend down.
    Act,
    /// Within the policy's `expiry_warning_days`.
    Warn,
    Ok,
}

impl Level {
    fn class(self) -> &'static str {
        match self {
            Level::Act => "act",
            Level::Warn => "warn",
            Level::Ok => "ok",
        }
    }
}

/// One host's verdict: its level and the reasons, in words.
struct Verdict {
    level: Level,
    reasons: Vec<String>,
    days_left: Option<i64>,
}

fn verdict(app: &App, site: &Site, now: SystemTime) -> Verdict {
    let state = site.cert.state();
    let mut v = Verdict {
        level: Level::Ok,
        reasons: Vec::new(),
        days_left: None,
    };
    let raise = |v: &mut Verdict, level: Level, why: String| {
        v.level = v.level.min(level);
        v.reasons.push(why);
    };
    if state.status.last_result == Some(ReloadResult::Failure) {
        raise(&mut v, Level::Act, "reload refused".into());
    }
    match &state.served {
        None => raise(&mut v, Level::Act, "no certificate".into()),
        Some(served) => {
            let days = served.info.days_left(now);
            v.days_left = Some(days);
            if days < 0 {
                raise(&mut v, Level::Act, "expired".into());
            } else if days < CRITICAL_DAYS {
                raise(&mut v, Level::Act, format!("expires in {days} days"));
            } else if days < i64::from(site.host.policy.expiry_warning_days) {
                raise(&mut v, Level::Warn, format!("expires in {days} days"));
            }
        }
    }
    if let Some(auth) = &site.client_auth {
        if auth.crl_status().last_result == Some(ReloadResult::Failure) {
            raise(&mut v, Level::Act, "CRL reload refused".into());
        }
        let now = unix(now);
        for crl in auth.crl_set().iter() {
            match crl.next_update {
                Some(next) if next <= now => {
                    raise(&mut v, Level::Act, "CRL past its next update".into());
                }
                Some(next) if next - now < 86_400 => {
                    raise(&mut v, Level::Warn, "CRL due within a day".into());
                }
                _ => {}
            }
        }
    }
    if let Route::Upstream(ups) = &site.route {
        let down = ups.states().filter(|(_, up)| !up).count();
        if down > 0 {
            raise(&mut v, Level::Act, format!("{down} upstream(s) down"));
        }
    }
    if app
        .acme
        .json(&site.fqdn)
        .is_some_and(|a| !a["failing_since"].is_null())
    {
        raise(&mut v, Level::Warn, "ACME renewal failing".into());
    }
    if v.reasons.is_empty() {
        v.reasons.push("ok".into());
    }
    v
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1em 2em;color:#222}\
table{border-collapse:collapse;width:100%;margin-bottom:1.5em}\
th,td{border:1px solid #ccc;padding:4px 6px;vertical-align:top;text-align:left}\
th{background:#eee}tr.act td.v{background:#f8d0d0}tr.warn td.v{background:#fbe7b5}\
tr.ok td.v{background:#d6efd6}.mono{font-family:ui-monospace,monospace;font-size:12px;\
word-break:break-all}.err{color:#a00}.small{font-size:12px;color:#555}";

/// A rendered page (see [`render`]) as an admin-listener response.
pub(crate) fn response(body: Bytes) -> http::Response<Full<Bytes>> {
    let mut resp = http::Response::new(Full::new(body));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    resp
}

/// Renders the page; `query` is the request's query string (`page=N`).
pub(crate) fn render(app: &Arc<App>, query: Option<&str>) -> String {
    let now = SystemTime::now();
    let rt = app.snapshot();
    let sites = rt.table.sites();
    let mut rows: Vec<(Verdict, &Arc<Site>)> =
        sites.iter().map(|s| (verdict(app, s, now), s)).collect();
    // What needs action first, then the soonest expiry, then by name.
    rows.sort_by(|(a, sa), (b, sb)| {
        let key =
            |v: &Verdict, s: &Site| (v.level, v.days_left.unwrap_or(i64::MIN), s.fqdn.clone());
        key(a, sa).cmp(&key(b, sb))
    });
    let count = |l: Level| rows.iter().filter(|(v, _)| v.level == l).count();
    let pages = rows.len().div_ceil(PAGE).max(1);
    let page = query
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("page=")))
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1)
        .clamp(1, pages);

    let mut out = String::with_capacity(4096 + PAGE.min(rows.len()) * 1500);
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>certfront: certificates</title><style>{STYLE}</style></head><body>\
         <h1>certfront certificates</h1>\
         <p id=\"summary\">{} hosts: <b>{}</b> need action, {} warnings, {} ok.</p>",
        rows.len(),
        count(Level::Act),
        count(Level::Warn),
        count(Level::Ok)
    );
    config_section(&mut out, app, &rt.config.source.display().to_string());
    out.push_str(
        "<h2>Hosts</h2><table id=\"hosts\"><tr><th>host</th><th>verdict</th><th>certificate</th>\
         <th>valid</th><th>thumbprints</th><th>source</th><th>last reload</th>\
         <th>client authentication</th><th>upstreams</th></tr>",
    );
    for (v, site) in rows.iter().skip((page - 1) * PAGE).take(PAGE) {
        host_row(&mut out, app, site, v);
    }
    out.push_str("</table>");
    if pages > 1 {
        let _ = write!(out, "<p id=\"pages\">page {page} of {pages}:");
        for p in 1..=pages {
            if p == page {
                let _ = write!(out, " <b>{p}</b>");
            } else {
                let _ = write!(out, " <a href=\"/?page={p}\">{p}</a>");
            }
        }
        out.push_str("</p>");
    }
    cas_section(&mut out, app, now);
    process_section(&mut out, app);
    out.push_str("</body></html>\n");
    out
}

fn host_row(out: &mut String, app: &App, site: &Site, v: &Verdict) {
    let state = site.cert.state();
    let _ = write!(
        out,
        "<tr class=\"{}\"><td><b>{}</b>",
        v.level.class(),
        Esc(&site.fqdn)
    );
    for alias in site.names.iter().skip(1) {
        let _ = write!(out, "<br>{}", Esc(alias));
    }
    let _ = write!(
        out,
        "</td><td class=\"v\">{}</td>",
        Esc(&v.reasons.join(", "))
    );
    match &state.served {
        Some(served) => {
            let i = &served.info;
            let _ = write!(
                out,
                "<td>{}<div class=\"small\">issuer: {}</div><div class=\"small\">{} {} bits, serial {}</div></td>\
                 <td>{}<br>{}<div class=\"small\">{} days left</div></td>\
                 <td class=\"mono\">SHA-1 {}<br>SHA-256 {}</td>",
                Esc(&i.subject),
                Esc(&i.issuer),
                i.key_type,
                i.key_bits,
                Esc(&i.serial),
                fmt_time(i.not_before),
                fmt_time(i.not_after),
                v.days_left.unwrap_or_default(),
                Esc(&i.sha1_thumbprint),
                Esc(&i.sha256_fingerprint),
            );
        }
        None => out.push_str("<td colspan=\"3\">no certificate served</td>"),
    }
    let source = site.cert.source();
    let acme = app.acme.json(&site.fqdn);
    out.push_str("<td>");
    match (&acme, source) {
        (Some(acme), _) => {
            let _ = write!(
                out,
                "ACME<div class=\"small\">next renewal: {}</div>",
                Esc(acme["next_renewal"].as_str().unwrap_or("-"))
            );
            if let Some(e) = acme["last_error"].as_str() {
                let _ = write!(out, "<div class=\"err\">{}</div>", Esc(e));
            }
        }
        (None, CertSource::Pem { .. }) => out.push_str("PEM files"),
        (None, CertSource::Pfx { .. }) => out.push_str(".pfx"),
        (None, CertSource::Internal) => out.push_str("internal CA"),
    }
    for f in source.files() {
        let _ = write!(
            out,
            "<div class=\"mono\">{}</div>",
            Esc(&f.display().to_string())
        );
    }
    out.push_str("</td><td>");
    let status = &state.status;
    match (status.last_result, status.last_attempt) {
        (Some(r), Some(at)) => {
            let _ = write!(
                out,
                "{} {}",
                fmt_time(unix(at)),
                if r == ReloadResult::Success {
                    "loaded"
                } else {
                    "<b>refused</b>"
                }
            );
        }
        _ => {
            if let Some(served) = &state.served {
                let _ = write!(out, "loaded {}", fmt_time(unix(served.loaded_at)));
            }
        }
    }
    if let Some(e) = &status.last_error {
        let _ = write!(out, "<div class=\"err\">{}</div>", Esc(e));
    }
    out.push_str("</td><td>");
    match &site.host.client_auth {
        None => out.push('-'),
        Some(auth) => {
            let _ = write!(
                out,
                "{:?}<div class=\"mono\">CA {}</div>",
                auth.mode,
                Esc(&auth.ca.display().to_string())
            );
            if let Some(deny) = site.client_auth.as_ref().and_then(|a| a.deny_status()) {
                let _ = write!(out, "<div>deny list: {} entries</div>", deny.entries);
                if let Some(e) = &deny.last_error {
                    let _ = write!(out, "<div class=\"err\">{}</div>", Esc(e));
                }
            }
            if let Some(state) = &site.client_auth {
                for crl in state.crl_set().iter() {
                    let next = crl.next_update.map_or_else(|| "none".to_owned(), fmt_time);
                    let _ = write!(
                        out,
                        "<div>CRL {}: {} revoked, next update {}</div>",
                        Esc(&crl.issuer),
                        crl.revoked,
                        Esc(&next)
                    );
                }
                if let Some(e) = &state.crl_status().last_error {
                    let _ = write!(out, "<div class=\"err\">CRL refused: {}</div>", Esc(e));
                }
            }
        }
    }
    out.push_str("</td><td>");
    match &site.route {
        Route::Respond { status, .. } => {
            let _ = write!(out, "answers {} itself", status.as_u16());
        }
        Route::Upstream(ups) => {
            for ((label, up), last) in ups.states().zip(ups.last_errors()) {
                let _ = write!(
                    out,
                    "<div>{} <b>{}</b>",
                    Esc(label),
                    if up { "up" } else { "cooling down" }
                );
                if let Some((at, e)) = last {
                    let _ = write!(
                        out,
                        "<div class=\"small\">last error {}: {}</div>",
                        fmt_time(unix(at)),
                        Esc(&e)
                    );
                }
                out.push_str("</div>");
            }
        }
    }
    out.push_str("</td></tr>");
}

fn config_section(out: &mut String, app: &App, path: &str) {
    let status = app.config_status().clone();
    let _ = write!(
        out,
        "<h2>Configuration</h2><table id=\"config\"><tr><th>file</th><td class=\"mono\">{}</td></tr>\
         <tr><th>in force since</th><td>{}</td></tr>",
        Esc(path),
        status
            .loaded_at
            .map(|t| fmt_time(unix(t)))
            .unwrap_or_default()
    );
    if let Some(at) = status.last_attempt {
        let _ = write!(
            out,
            "<tr class=\"{}\"><th>last reload</th><td class=\"v\">{} {}",
            if status.last_error.is_some() {
                "act"
            } else {
                "ok"
            },
            fmt_time(unix(at)),
            if status.last_error.is_some() {
                "<b>refused</b>: the previous configuration stays in force"
            } else {
                "applied"
            }
        );
        if let Some(e) = &status.last_error {
            let _ = write!(out, "<pre class=\"err\">{}</pre>", Esc(e));
        }
        out.push_str("</td></tr>");
    }
    if !status.restart_needed.is_empty() {
        let _ = write!(
            out,
            "<tr class=\"warn\"><th>restart needed for</th><td class=\"v\">{}</td></tr>",
            Esc(&status.restart_needed.join(", "))
        );
    }
    out.push_str("</table>");
}

fn cas_section(out: &mut String, app: &App, now: SystemTime) {
    let mut cas = app.metrics.cas();
    cas.sort_by_key(|c| c.not_after);
    out.push_str(
        "<h2>CA certificates certfront depends on</h2><table id=\"cas\"><tr><th>role</th>\
         <th>subject</th><th>expires</th><th>thumbprint</th><th>where</th></tr>",
    );
    for ca in &cas {
        let days = ca.days_left(now);
        let level = if days < CRITICAL_DAYS {
            Level::Act
        } else if days < 30 {
            Level::Warn
        } else {
            Level::Ok
        };
        let _ = write!(
            out,
            "<tr class=\"{}\"><td>{}</td><td>{}</td><td class=\"v\">{} ({} days)</td>\
             <td class=\"mono\">{}</td><td class=\"small\">{}</td></tr>",
            level.class(),
            ca.role.as_str(),
            Esc(&ca.subject),
            fmt_time(ca.not_after),
            days,
            Esc(&ca.thumbprint),
            Esc(&ca.origins.join(", "))
        );
    }
    out.push_str("</table>");
}

fn process_section(out: &mut String, app: &App) {
    let rt = app.snapshot();
    let server = &rt.config.server;
    let mut listeners: Vec<String> = server.listen.iter().map(|a| format!("TLS {a}")).collect();
    listeners.extend(server.http_redirect.map(|a| format!("HTTP redirect {a}")));
    listeners.extend(server.admin.map(|a| format!("admin {a}")));
    let _ = write!(
        out,
        "<h2>Process</h2><table id=\"process\"><tr><th>version</th><td>certfront {}</td></tr>\
         <tr><th>started</th><td>{}</td></tr><tr><th>PID</th><td>{}</td></tr>\
         <tr><th>listeners</th><td>{}</td></tr></table>",
        env!("CARGO_PKG_VERSION"),
        fmt_time(unix(app.started)),
        std::process::id(),
        Esc(&listeners.join(", "))
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            Esc("<script>alert('x')</script> & \"q\"").to_string(),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(Esc("plain.example.org").to_string(), "plain.example.org");
    }
}
