//! The admin listener (plain HTTP, keep it on loopback or a management network):
//! `/healthz`, `/readyz`, `/metrics`, `/certs`.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;

use std::time::SystemTime;

use certfront_certs::CertSource;
use certfront_certs::store::ReloadResult;
use serde_json::{Value, json};

use crate::app::App;
use crate::clock::{fmt_time, unix};
use crate::respond::text;

/// How long a rendered `/metrics` or `/certs` is served again before the next render: a
/// client asking in a loop costs at most a few renders a second, not one per request.
const RENDER_EVERY: Duration = Duration::from_millis(250);

/// The last rendering of `/metrics`, of `/certs` and of the inventory page's first page.
#[derive(Default)]
pub(crate) struct Renders {
    metrics: Mutex<Option<(Instant, Bytes)>>,
    certs: Mutex<Option<(Instant, Bytes)>>,
    page: Mutex<Option<(Instant, Bytes)>>,
}

/// The copy in `cell` while it is younger than [`RENDER_EVERY`], else a new rendering.
/// The lock is held while rendering, so concurrent requests wait for one rendering
/// instead of each making its own.
fn rendered(cell: &Mutex<Option<(Instant, Bytes)>>, render: impl FnOnce() -> Bytes) -> Bytes {
    let mut cell = cell.lock().unwrap_or_else(|p| p.into_inner());
    match &*cell {
        Some((at, body)) if at.elapsed() < RENDER_EVERY => body.clone(),
        _ => {
            let body = render();
            *cell = Some((Instant::now(), body.clone()));
            body
        }
    }
}

/// Answers one admin request.
pub(crate) async fn handle(
    req: Request<Incoming>,
    app: Arc<App>,
    renders: Arc<Renders>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Ok(text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"));
    }
    let resp = match req.uri().path() {
        "/" => crate::inventory_page::response(match req.uri().query() {
            // What a browser opens and reloads: rendered at most every RENDER_EVERY.
            None => rendered(&renders.page, || {
                Bytes::from(crate::inventory_page::render(&app, None))
            }),
            query => Bytes::from(crate::inventory_page::render(&app, query)),
        }),
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => {
            let waiting = waiting(&app);
            if *app.shutdown.borrow() {
                text(StatusCode::SERVICE_UNAVAILABLE, "draining\n")
            } else if !waiting.is_empty() {
                crate::respond::plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    Bytes::from(format!(
                        "waiting for a certificate from ACME: {}\n",
                        waiting.join(", ")
                    )),
                )
            } else {
                text(StatusCode::OK, "ready\n")
            }
        }
        "/metrics" => {
            let body = rendered(&renders.metrics, || Bytes::from(app.metrics.render()));
            let mut resp = Response::new(Full::new(body));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            resp
        }
        "/certs" => {
            let body = rendered(&renders.certs, || {
                Bytes::from(
                    serde_json::to_vec_pretty(&inventory(&app)).expect("JSON of plain data"),
                )
            });
            let mut resp = Response::new(Full::new(body));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            resp
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try / /healthz /readyz /metrics /certs\n",
        ),
    };
    Ok(resp)
}

/// Hosts whose certificate waits for ACME (empty slots), for `/readyz`.
fn waiting(app: &App) -> Vec<String> {
    app.snapshot()
        .table
        .sites()
        .iter()
        .filter(|s| !s.cert.is_serving())
        .map(|s| s.fqdn.clone())
        .collect()
}

/// `/certs`: per host, what is served and how the last reload went; then every CA
/// certificate depended on (see [`crate::dependents`]), soonest expiry first per role.
fn inventory(app: &App) -> Value {
    let now = SystemTime::now();
    let rt = app.snapshot();
    let hosts: Vec<Value> = rt
        .table
        .sites()
        .iter()
        .map(|site| {
            let slot = &site.cert;
            // One load: the certificate and the status of the reload that put it there.
            let state = slot.state();
            let (served, status) = (state.served.clone(), &state.status);
            let files: Vec<String> = slot
                .source()
                .files()
                .iter()
                .map(|f| f.display().to_string())
                .collect();
            let mut entry = json!({
                "host": site.fqdn,
                "names": slot.names(),
                "source": match slot.source() {
                    _ if app.acme.is_acme(&site.fqdn) => "acme",
                    CertSource::Pem { .. } => "pem",
                    CertSource::Pfx { .. } => "pfx",
                    CertSource::Internal => "internal",
                },
                "files": files,
                "acme": app.acme.json(&site.fqdn),
                "last_reload": {
                    "result": status.last_result.map(result_name),
                    "at": status.last_attempt.map(|t| fmt_time(unix(t))),
                    "error": &status.last_error,
                },
                "deny_list": site
                    .client_auth
                    .as_ref()
                    .and_then(|auth| auth.deny_status())
                    .map(|deny| json!({
                        "path": deny.path.display().to_string(),
                        "entries": deny.entries,
                        "loaded_at": fmt_time(unix(deny.loaded_at)),
                        "last_reload": {
                            "result": deny.last_result.map(result_name),
                            "at": deny.last_attempt.map(|t| fmt_time(unix(t))),
                            "error": deny.last_error,
                        },
                    })),
                "crl": site
                    .client_auth
                    .as_ref()
                    .filter(|auth| !auth.crl_paths().is_empty())
                    .map(|auth| {
                        let status = auth.crl_status();
                        json!({
                            "files": auth.crl_paths().iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
                            "in_force": auth.crl_set().iter().map(|c| json!({
                                "path": c.path.display().to_string(),
                                "issuer": c.issuer,
                                "number": c.number.as_ref().map(|n| n.to_string()),
                                "this_update": fmt_time(c.this_update),
                                "next_update": c.next_update.map(fmt_time),
                                "revoked": c.revoked,
                            })).collect::<Vec<_>>(),
                            "loaded_at": status.loaded_at.map(|t| fmt_time(unix(t))),
                            "last_reload": {
                                "result": status.last_result.map(result_name),
                                "at": status.last_attempt.map(|t| fmt_time(unix(t))),
                                "error": status.last_error,
                            },
                        })
                    }),
            });
            // An empty slot (a host waiting for ACME) has no certificate facts to show.
            if let (Some(served), Value::Object(map)) = (served, &mut entry) {
                let info = &served.info;
                let facts = json!({
                    "subject": info.subject,
                    "sans": info.sans,
                    "issuer": info.issuer,
                    "serial": info.serial,
                    "not_before": fmt_time(info.not_before),
                    "not_after": fmt_time(info.not_after),
                    "days_left": info.days_left(now),
                    "key_type": info.key_type.to_string(),
                    "key_bits": info.key_bits,
                    "signature_algorithm": info.signature_algorithm,
                    "sha1_thumbprint": info.sha1_thumbprint,
                    "sha256_fingerprint": info.sha256_fingerprint,
                    "loaded_at": fmt_time(unix(served.loaded_at)),
                });
                if let Value::Object(facts) = facts {
                    map.extend(facts);
                }
            }
            entry
        })
        .collect();
    let status = app.config_status().clone();
    let config = json!({
        "path": rt.config.source.display().to_string(),
        "loaded_at": status.loaded_at.map(|t| fmt_time(unix(t))),
        "last_reload": {
            "result": status.last_attempt.map(|_| if status.last_error.is_some() { "failure" } else { "success" }),
            "at": status.last_attempt.map(|t| fmt_time(unix(t))),
            "error": status.last_error,
        },
        "restart_needed": status.restart_needed,
    });
    let cas: Vec<Value> = app
        .metrics
        .cas()
        .iter()
        .map(|ca| {
            json!({
                "role": ca.role.as_str(),
                "subject": ca.subject,
                "thumbprint": ca.thumbprint,
                "not_after": fmt_time(ca.not_after),
                "days_left": ca.days_left(now),
                "origins": ca.origins,
            })
        })
        .collect();
    json!({ "config": config, "hosts": hosts, "cas": cas })
}

fn result_name(result: ReloadResult) -> &'static str {
    match result {
        ReloadResult::Success => "success",
        ReloadResult::Failure => "failure",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rendering_is_served_again_until_it_is_old() {
        let cell = Mutex::new(None);
        let renders = std::cell::Cell::new(0u32);
        let started = Instant::now();
        for _ in 0..1_000 {
            let body = rendered(&cell, || {
                renders.set(renders.get() + 1);
                Bytes::from(renders.get().to_string())
            });
            assert_eq!(body, renders.get().to_string());
        }
        // One rendering per RENDER_EVERY at most, however many requests.
        let periods = started.elapsed().as_millis() / RENDER_EVERY.as_millis() + 1;
        assert!(
            u128::from(renders.get()) <= periods,
            "{} renderings in {:?}",
            renders.get(),
            started.elapsed()
        );
        std::thread::sleep(RENDER_EVERY);
        let _ = rendered(&cell, || Bytes::from_static(b"new"));
        assert_eq!(rendered(&cell, || unreachable!()), "new");
    }
}
