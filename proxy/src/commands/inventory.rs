//! How certificates read in a terminal and in JSON (`check`, `certs inspect`, `/certs`).

use std::time::SystemTime;

use certfront_certs::CertSource;
use certfront_certs::inspect::CertInfo;
use certfront_config::Host;
use serde_json::{Value, json};

use crate::clock::fmt_time;
use crate::prepare::HostVerdict;

/// A certificate as JSON, with `days_left` at `now`.
pub(super) fn info_json(info: &CertInfo, now: SystemTime) -> Value {
    let mut v = serde_json::to_value(info).expect("JSON of plain data");
    if let Value::Object(map) = &mut v {
        map.insert("days_left".into(), json!(info.days_left(now)));
        map.insert(
            "not_before_rfc3339".into(),
            json!(fmt_time(info.not_before)),
        );
        map.insert("not_after_rfc3339".into(), json!(fmt_time(info.not_after)));
    }
    v
}

fn list<T: std::fmt::Display>(items: Option<&Vec<T>>) -> String {
    match items {
        None => "(extension absent)".to_owned(),
        Some(items) if items.is_empty() => "(none)".to_owned(),
        Some(items) => items
            .iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// The facts an administrator compares with what Windows' certificate dialog shows.
pub(crate) fn print_info(info: &CertInfo, now: SystemTime) {
    println!("  subject:             {}", info.subject);
    println!("  names (SAN):         {}", info.sans.join(", "));
    println!("  issuer:              {}", info.issuer);
    println!("  serial:              {}", info.serial);
    println!("  not before:          {}", fmt_time(info.not_before));
    println!(
        "  not after:           {} ({} days left)",
        fmt_time(info.not_after),
        info.days_left(now)
    );
    println!(
        "  key:                 {} {} bits",
        info.key_type, info.key_bits
    );
    println!("  signature:           {}", info.signature_algorithm);
    println!("  key usage:           {}", list(info.key_usage.as_ref()));
    println!(
        "  extended key usage:  {}",
        list(info.extended_key_usage.as_ref())
    );
    println!("  thumbprint (SHA-1):  {}", info.sha1_thumbprint);
    println!("  SHA-256:             {}", info.sha256_fingerprint);
    // Only when present, so certificates without them print as before.
    for url in &info.crl_distribution_points {
        println!("  CRL distribution:    {url}");
    }
    for entry in &info.authority_info_access {
        println!("  authority info:      {entry}");
    }
}

fn describe_source(source: &CertSource) -> String {
    match source {
        CertSource::Pem { cert, key } => format!("{} + {}", cert.display(), key.display()),
        CertSource::Pfx { path, .. } => path.display().to_string(),
        CertSource::Internal => "internal CA".to_owned(),
    }
}

/// One host of `certfront check`.
pub(super) fn print_host(host: &Host, verdict: &HostVerdict, now: SystemTime) {
    let status = if verdict.violations.is_empty() {
        "OK".to_owned()
    } else {
        format!("FAIL ({} problem(s))", verdict.violations.len())
    };
    println!("host {}: {status}", host.fqdn);
    if !host.aliases.is_empty() {
        println!("  aliases:             {}", host.aliases.join(", "));
    }
    println!("  source:              {}", describe_source(&host.source));
    if let Some(info) = &verdict.info {
        print_info(info, now);
    }
    println!();
}
