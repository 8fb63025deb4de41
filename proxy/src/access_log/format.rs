//! The three line formats of the access log: W3C Extended (the fields IIS writes by
//! default, then `cs-host` and certfront's own `x-` fields), JSON (one object per line,
//! the same field names) and text (`key=value`, like certfront's other log lines).

use std::io::{self, Write};

use certfront_config::AccessLog;
use http::HeaderValue;
use serde::Serialize;
use time::OffsetDateTime;

use super::{Entry, Text};

/// IIS's default fields in IIS's order, then `cs-host` and ours.
pub(crate) const W3C_FIELDS: &str = "date time s-ip cs-method cs-uri-stem cs-uri-query s-port \
     cs-username c-ip cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status \
     time-taken cs-host x-sni x-tls-version x-tls-cipher x-client-cert-thumbprint x-upstream \
     x-upstream-time x-request-id";

/// The directives IIS starts each log file with; tools find the columns in `#Fields`.
pub(super) fn w3c_header(out: &mut impl Write, at: OffsetDateTime) -> io::Result<()> {
    writeln!(
        out,
        "#Software: certfront {}\n#Version: 1.0\n#Date: {} {}\n#Fields: {W3C_FIELDS}",
        env!("CARGO_PKG_VERSION"),
        Ymd(at),
        Hms(at)
    )
}

/// A second of wall-clock time, rendered once for every line written in it.
pub(super) struct Stamp {
    pub secs: u64,
    pub at: OffsetDateTime,
    /// `YYYY-MM-DD HH:MM:SS`, W3C's `date time`.
    w3c: String,
}

impl Stamp {
    pub(super) fn new(secs: u64, t: std::time::SystemTime) -> Stamp {
        let at = OffsetDateTime::from(t);
        Stamp {
            secs,
            at,
            w3c: format!("{} {}", Ymd(at), Hms(at)),
        }
    }
}

pub(super) fn write(out: &mut impl Write, e: &Entry, stamp: &Stamp) -> io::Result<()> {
    match e.format {
        AccessLog::Off => Ok(()),
        AccessLog::W3c => w3c(out, e, &stamp.w3c),
        AccessLog::Json => json(out, e, stamp.at),
        AccessLog::Text => text(out, e, stamp.at),
    }
}

struct Ymd(OffsetDateTime);
impl std::fmt::Display for Ymd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = self.0;
        write!(
            f,
            "{:04}-{:02}-{:02}",
            t.year(),
            u8::from(t.month()),
            t.day()
        )
    }
}

struct Hms(OffsetDateTime);
impl std::fmt::Display for Hms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = self.0;
        write!(f, "{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second())
    }
}

/// One W3C field: `-` when empty, a space as `+` (as IIS writes a User-Agent), other
/// bytes a field cannot hold (controls, non-ASCII) as `%XX`, so a line always splits
/// into exactly the `#Fields` columns.
fn field(out: &mut impl Write, value: &[u8]) -> io::Result<()> {
    if value.is_empty() {
        return out.write_all(b" -");
    }
    out.write_all(b" ")?;
    let mut start = 0;
    for (i, &b) in value.iter().enumerate() {
        if (0x21..0x7f).contains(&b) {
            continue;
        }
        out.write_all(&value[start..i])?;
        if b == b' ' {
            out.write_all(b"+")?;
        } else {
            write!(out, "%{b:02X}")?;
        }
        start = i + 1;
    }
    out.write_all(&value[start..])
}

fn opt(v: &Option<HeaderValue>) -> &[u8] {
    v.as_ref().map(HeaderValue::as_bytes).unwrap_or_default()
}

fn w3c(out: &mut impl Write, e: &Entry, date_time: &str) -> io::Result<()> {
    // Addresses and numbers hold no space: written as they are, without a copy.
    out.write_all(date_time.as_bytes())?;
    match e.conn.local {
        Some(a) => write!(out, " {}", a.ip())?,
        None => out.write_all(b" -")?,
    }
    field(out, e.method.as_str().as_bytes())?;
    field(out, e.text(Text::Path))?;
    field(out, e.text(Text::Query))?;
    match e.conn.local {
        Some(a) => write!(out, " {}", a.port())?,
        None => out.write_all(b" -")?,
    }
    // cs-username: certfront authenticates no user.
    write!(out, " - {}", e.peer)?;
    field(out, e.text(Text::UserAgent))?;
    field(out, e.text(Text::Referer))?;
    write!(out, " {} 0 0 {}", e.status, e.time_taken_ms)?;
    field(out, e.text(Text::Host))?;
    field(out, e.conn.sni.as_deref().unwrap_or_default().as_bytes())?;
    field(out, e.conn.tls_version.as_bytes())?;
    field(out, e.conn.cipher.as_bytes())?;
    field(out, opt(&e.conn.client_thumbprint))?;
    field(out, e.upstream.as_deref().unwrap_or_default().as_bytes())?;
    match e.upstream_ms {
        Some(ms) => write!(out, " {ms}")?,
        None => out.write_all(b" -")?,
    }
    field(out, e.text(Text::RequestId))?;
    out.write_all(b"\n")
}

/// The W3C fields under their W3C names; absent values are `null`.
#[derive(Serialize)]
struct JsonLine<'a> {
    date: String,
    time: String,
    #[serde(rename = "s-ip")]
    s_ip: Option<String>,
    #[serde(rename = "cs-method")]
    method: &'a str,
    #[serde(rename = "cs-uri-stem")]
    stem: std::borrow::Cow<'a, str>,
    #[serde(rename = "cs-uri-query")]
    query: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "s-port")]
    s_port: Option<u16>,
    #[serde(rename = "cs-username")]
    username: Option<&'a str>,
    #[serde(rename = "c-ip")]
    c_ip: String,
    #[serde(rename = "cs(User-Agent)")]
    user_agent: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "cs(Referer)")]
    referer: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "sc-status")]
    status: u16,
    #[serde(rename = "sc-substatus")]
    substatus: u16,
    #[serde(rename = "sc-win32-status")]
    win32_status: u32,
    #[serde(rename = "time-taken")]
    time_taken: u64,
    #[serde(rename = "cs-host")]
    host: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "x-sni")]
    sni: Option<&'a str>,
    #[serde(rename = "x-tls-version")]
    tls_version: &'a str,
    #[serde(rename = "x-tls-cipher")]
    cipher: &'a str,
    #[serde(rename = "x-client-cert-thumbprint")]
    thumbprint: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "x-upstream")]
    upstream: Option<&'a str>,
    #[serde(rename = "x-upstream-time")]
    upstream_time: Option<u64>,
    #[serde(rename = "x-request-id")]
    request_id: std::borrow::Cow<'a, str>,
}

fn lossy(v: &Option<HeaderValue>) -> Option<std::borrow::Cow<'_, str>> {
    v.as_ref().map(|v| String::from_utf8_lossy(v.as_bytes()))
}

fn json(out: &mut impl Write, e: &Entry, at: OffsetDateTime) -> io::Result<()> {
    let line = JsonLine {
        date: Ymd(at).to_string(),
        time: Hms(at).to_string(),
        s_ip: e.conn.local.map(|a| a.ip().to_string()),
        method: e.method.as_str(),
        stem: e.str(Text::Path).unwrap_or_default(),
        query: e.str(Text::Query),
        s_port: e.conn.local.map(|a| a.port()),
        username: None,
        c_ip: e.peer.to_string(),
        user_agent: e.str(Text::UserAgent),
        referer: e.str(Text::Referer),
        status: e.status,
        substatus: 0,
        win32_status: 0,
        time_taken: e.time_taken_ms,
        host: e.str(Text::Host),
        sni: e.conn.sni.as_deref(),
        tls_version: e.conn.tls_version,
        cipher: e.conn.cipher,
        thumbprint: lossy(&e.conn.client_thumbprint),
        upstream: e.upstream.as_deref(),
        upstream_time: e.upstream_ms,
        request_id: e.str(Text::RequestId).unwrap_or_default(),
    };
    serde_json::to_writer(&mut *out, &line)?;
    out.write_all(b"\n")
}

/// The text format on stderr: an `info` event of target `certfront::access`.
pub(super) fn trace(e: &Entry) {
    tracing::info!(
        target: "certfront::access",
        peer = %e.peer,
        method = %e.method,
        host = %e.str(Text::Host).unwrap_or("-".into()),
        path = %e.str(Text::Path).unwrap_or_default(),
        status = e.status,
        upstream = e.upstream.as_deref().unwrap_or("-"),
        ms = e.time_taken_ms,
        request_id = %e.str(Text::RequestId).unwrap_or("-".into()),
        "request"
    );
}

/// `key=value` like certfront's `tracing` lines; a value with a space or quote is quoted.
fn text(out: &mut impl Write, e: &Entry, at: OffsetDateTime) -> io::Result<()> {
    fn kv(out: &mut impl Write, key: &str, value: &[u8]) -> io::Result<()> {
        let value = String::from_utf8_lossy(value);
        if value.is_empty() {
            write!(out, " {key}=-")
        } else if value.bytes().any(|b| b <= b' ' || b == b'"' || b == 0x7f) {
            write!(out, " {key}={value:?}")
        } else {
            write!(out, " {key}={value}")
        }
    }
    write!(
        out,
        "{}T{}Z  INFO certfront::access: request",
        Ymd(at),
        Hms(at)
    )?;
    kv(out, "peer", e.peer.to_string().as_bytes())?;
    kv(out, "method", e.method.as_str().as_bytes())?;
    kv(out, "host", e.text(Text::Host))?;
    kv(out, "path", e.text(Text::Path))?;
    write!(out, " status={}", e.status)?;
    kv(
        out,
        "upstream",
        e.upstream.as_deref().unwrap_or_default().as_bytes(),
    )?;
    write!(out, " ms={}", e.time_taken_ms)?;
    kv(out, "request_id", e.text(Text::RequestId))?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::{Duration, UNIX_EPOCH};

    fn entry(format: AccessLog) -> Entry {
        let mut texts = super::super::Texts::with_capacity(128);
        texts.set(Text::Path, b"/a%20b/c");
        texts.set(Text::Query, b"x=1&y=two");
        texts.set(Text::Host, b"app.example.org");
        texts.set(Text::UserAgent, b"Mozilla/5.0 (Windows NT 10.0)");
        texts.set(Text::RequestId, b"abc-1");
        Entry {
            format,
            at: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            conn: Arc::new(super::super::ConnFacts {
                local: Some("127.0.0.1:8443".parse().unwrap()),
                sni: Some("app.example.org".into()),
                tls_version: "TLSv1.3",
                cipher: "TLS13_AES_128_GCM_SHA256",
                client_thumbprint: None,
            }),
            peer: "192.0.2.7".parse().unwrap(),
            method: http::Method::GET,
            texts,
            status: 200,
            time_taken_ms: 12,
            upstream: Some("http://10.0.0.1:80".into()),
            upstream_ms: Some(10),
        }
    }

    fn line(format: AccessLog) -> String {
        let e = entry(format);
        let mut out = Vec::new();
        write(&mut out, &e, &Stamp::new(1_800_000_000, e.at)).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_w3c_line_has_one_value_per_field_spaces_as_plus_and_empty_as_dash() {
        let l = line(AccessLog::W3c);
        assert_eq!(
            l,
            "2027-01-15 08:00:00 127.0.0.1 GET /a%20b/c x=1&y=two 8443 - 192.0.2.7 \
             Mozilla/5.0+(Windows+NT+10.0) - 200 0 0 12 app.example.org app.example.org \
             TLSv1.3 TLS13_AES_128_GCM_SHA256 - http://10.0.0.1:80 10 abc-1\n"
        );
        assert_eq!(
            l.split(' ').count(),
            W3C_FIELDS.split(' ').count(),
            "one column per #Fields name"
        );
    }

    #[test]
    fn a_w3c_field_escapes_what_would_split_the_line() {
        let mut out = Vec::new();
        field(&mut out, b"a b\tc\n\xc3\xa9").unwrap();
        assert_eq!(out, b" a+b%09c%0A%C3%A9");
    }

    #[test]
    fn a_json_line_is_one_object_with_the_w3c_names() {
        let l = line(AccessLog::Json);
        assert_eq!(l.lines().count(), 1);
        let v: serde_json::Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["date"], "2027-01-15");
        assert_eq!(v["cs-uri-query"], "x=1&y=two");
        assert_eq!(v["cs(User-Agent)"], "Mozilla/5.0 (Windows NT 10.0)");
        assert_eq!(v["cs(Referer)"], serde_json::Value::Null);
        assert_eq!(v["sc-status"], 200);
        assert_eq!(v["x-request-id"], "abc-1");
        assert_eq!(v["x-upstream-time"], 10);
    }

    #[test]
    fn a_text_line_names_each_value() {
        assert_eq!(
            line(AccessLog::Text),
            "2027-01-15T08:00:00Z  INFO certfront::access: request peer=192.0.2.7 method=GET \
             host=app.example.org path=/a%20b/c status=200 upstream=http://10.0.0.1:80 ms=12 \
             request_id=abc-1\n"
        );
    }
}
