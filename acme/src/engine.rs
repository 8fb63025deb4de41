//! The background work: one task per `acme = true` host that serves what is stored while
//! it is good, orders when it is missing, unusable or due, holds every issued certificate
//! to the rules before writing it, and retries failures with back-off.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use certfront_certs::{CertBundle, CertSource, Policy, TrustAnchors};
use instant_acme::{Account, CertificateIdentifier, ExternalAccountKey, NewAccount};
use rustls_pki_types::CertificateDer;
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

use crate::challenge::Challenges;
use crate::client::AcmeHttp;
use crate::error::AcmeError;
use crate::metrics::AcmeMetrics;
use crate::order::order;
use crate::schedule::{backoff, in_window, random_fraction, renewal_time};
use crate::settings::Settings;
use crate::storage::{account_path, load_account, lock_order, save_account, write_pair};

/// One host whose certificate comes from ACME, and where its pair is kept.
#[derive(Clone, Debug)]
pub struct AcmeHost {
    pub fqdn: String,
    /// fqdn then aliases: every name is ordered and checked.
    pub names: Vec<String>,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The host's rules (`[policy]` with its `[host.policy]`).
    pub policy: Policy,
}

/// The trust anchors an issued chain must reach, exactly as a file's must.
pub struct Gate {
    pub trust: TrustAnchors,
}

/// What `/certs` shows about a host's ACME state.
#[derive(Clone, Debug, Default)]
pub struct HostStatus {
    /// When the next order is planned (renewal, or a retry after a failure).
    pub next_renewal: Option<SystemTime>,
    /// Set by a failed order, cleared by the next success.
    pub failing_since: Option<SystemTime>,
    pub last_error: Option<String>,
    pub last_success: Option<SystemTime>,
}

/// Every ACME host's status, by fqdn; written by the engine, read by the admin listener.
#[derive(Default)]
pub struct StatusBoard(Mutex<HashMap<String, HostStatus>>);

impl StatusBoard {
    pub fn get(&self, fqdn: &str) -> Option<HostStatus> {
        self.lock().get(fqdn).cloned()
    }

    fn update(&self, fqdn: &str, f: impl FnOnce(&mut HostStatus)) {
        f(self.lock().entry(fqdn.to_owned()).or_default());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HostStatus>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A certificate from the store that passes the rules now.
pub(crate) struct Stored {
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    pub serial: String,
    leaf: CertificateDer<'static>,
}

/// Called with a host's fqdn after its new pair is written, so the proxy reloads it now
/// (the file watcher would too; this also covers a file system without events).
pub type OnStored = Arc<dyn Fn(&str) + Send + Sync>;

/// The running engine: its tasks stop when it is dropped.
pub struct Engine {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Engine {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// How often a sleeping host task wakes to look again (files written by another process,
/// the wall clock after a suspend, a new ARI window).
const WAKE_EVERY: Duration = Duration::from_secs(3600);
/// How long to wait when another process holds the name's lock.
const LOCKED_WAIT: Duration = Duration::from_secs(30);
/// How often ARI is asked again at most / at least (RFC 9773 Retry-After, clamped).
const ARI_POLL_MIN: Duration = Duration::from_secs(3600);
const ARI_POLL_MAX: Duration = Duration::from_secs(24 * 3600);

struct Ctx {
    settings: Settings,
    gate: Gate,
    challenges: Arc<Challenges>,
    metrics: AcmeMetrics,
    status: Arc<StatusBoard>,
    on_stored: OnStored,
    account: tokio::sync::Mutex<Option<Account>>,
    /// The directory offers no renewalInfo (RFC 9773); said once, not asked again.
    no_ari: AtomicBool,
}

impl Engine {
    /// Starts one task per host. Call it once the listeners are bound: the CA connects
    /// back to them to validate.
    pub fn spawn(
        settings: Settings,
        gate: Gate,
        hosts: Vec<AcmeHost>,
        challenges: Arc<Challenges>,
        metrics: AcmeMetrics,
        status: Arc<StatusBoard>,
        on_stored: OnStored,
    ) -> Engine {
        for host in &hosts {
            metrics.host(&host.fqdn);
        }
        let ctx = Arc::new(Ctx {
            settings,
            gate,
            challenges,
            metrics,
            status,
            on_stored,
            account: tokio::sync::Mutex::new(None),
            no_ari: AtomicBool::new(false),
        });
        let tasks = hosts
            .into_iter()
            .map(|host| tokio::spawn(run_host(ctx.clone(), host)))
            .collect();
        Engine { tasks }
    }
}

/// A host's life: sleep until due, order, check, store; back off on failure.
async fn run_host(ctx: Arc<Ctx>, host: AcmeHost) {
    let mut failures = 0u32;
    let mut retry_at: Option<SystemTime> = None;
    let mut jitter = random_fraction();
    let mut ari = Ari::default();
    loop {
        let now = SystemTime::now();
        let stored = read_stored(&ctx, &host, now);
        let due = match (&stored, retry_at) {
            (_, Some(at)) => at,
            (Ok(stored), None) => match ari.due(&ctx, stored, jitter, now).await {
                Some(at) => at,
                None => renewal_time(
                    stored.not_before,
                    stored.not_after,
                    ctx.settings.renew_before,
                    jitter,
                ),
            },
            (Err(why), None) => {
                info!(host = %host.fqdn, "ordering a certificate by ACME: {why}");
                now
            }
        };
        ctx.status
            .update(&host.fqdn, |s| s.next_renewal = Some(due));
        if let Ok(wait) = due.duration_since(now)
            && !wait.is_zero()
        {
            debug!(host = %host.fqdn, "next ACME order in {}s", wait.as_secs());
            tokio::time::sleep(wait.min(WAKE_EVERY)).await;
            if wait > WAKE_EVERY {
                continue;
            }
            // the retry or renewal time has come: look at the store once more first
            if retry_at.is_none()
                && read_stored(&ctx, &host, SystemTime::now()).is_ok_and(|s| {
                    s.not_after > stored.as_ref().map(|o| o.not_after).unwrap_or(UNIX_EPOCH)
                })
            {
                continue; // another process renewed it meanwhile
            }
        }
        let lock = match lock_order(&ctx.settings.dir, &host.fqdn) {
            Ok(lock) => lock,
            Err(e @ AcmeError::Locked { .. }) => {
                info!(host = %host.fqdn, "{e}");
                retry_at = Some(SystemTime::now() + LOCKED_WAIT);
                continue;
            }
            Err(e) => {
                fail(&ctx, &host, &e, &mut failures, &mut retry_at);
                continue;
            }
        };
        let replaces = stored
            .as_ref()
            .ok()
            .filter(|_| ari.supported)
            .and_then(|s| {
                CertificateIdentifier::try_from(&s.leaf)
                    .ok()
                    .map(|id| id.into_owned())
            });
        let result = attempt(&ctx, &host, replaces).await;
        drop(lock);
        match result {
            Ok(()) => {
                failures = 0;
                retry_at = None;
                jitter = random_fraction();
                ari = Ari::default();
                count_order(&ctx, &host, "success", false);
                ctx.status.update(&host.fqdn, |s| {
                    s.failing_since = None;
                    s.last_error = None;
                    s.last_success = Some(SystemTime::now());
                });
            }
            Err(e) => fail(&ctx, &host, &e, &mut failures, &mut retry_at),
        }
    }
}

/// One finished order in the metrics: its result, and whether the host's renewal is
/// failing now.
fn count_order(ctx: &Ctx, host: &AcmeHost, result: &str, failing: bool) {
    ctx.metrics
        .orders
        .with_label_values(&[&host.fqdn, result])
        .inc();
    ctx.metrics
        .renewal_failing
        .with_label_values(&[&host.fqdn])
        .set(i64::from(failing));
}

fn fail(
    ctx: &Ctx,
    host: &AcmeHost,
    e: &AcmeError,
    failures: &mut u32,
    retry_at: &mut Option<SystemTime>,
) {
    *failures += 1;
    let now = SystemTime::now();
    let wait = backoff(*failures, e.retry_after(), now);
    *retry_at = Some(now + wait);
    count_order(ctx, host, e.result(), true);
    ctx.status.update(&host.fqdn, |s| {
        s.failing_since.get_or_insert(now);
        s.last_error = Some(e.to_string());
    });
    error!(
        host = %host.fqdn,
        failures = *failures,
        "ACME order failed: {e}; the served certificate (if any) stays; next attempt in {}s",
        wait.as_secs()
    );
}

/// One order for `host`, its certificate held to the rules, then stored.
async fn attempt(
    ctx: &Ctx,
    host: &AcmeHost,
    replaces: Option<CertificateIdentifier<'static>>,
) -> Result<(), AcmeError> {
    let s = &ctx.settings;
    info!(
        host = %host.fqdn,
        "ordering a certificate for {} from {} ({})",
        host.names.join(", "),
        s.directory,
        s.challenge.as_str()
    );
    let mut account = ctx.account().await?;
    let mut result = order(
        &account,
        &s.directory,
        &host.names,
        s.challenge,
        s.key,
        &ctx.challenges,
        replaces.clone(),
    )
    .await;
    if let Err(e) = &result
        && (e.account_gone() || replaces.is_some())
    {
        // The CA forgot the account (a test CA restarted), or refused `replaces` (the old
        // certificate was replaced elsewhere already): one more try without either.
        warn!(host = %host.fqdn, "{e}; trying once more with a fresh account state");
        if e.account_gone() {
            *ctx.account.lock().await = None;
            let _ = std::fs::remove_file(account_path(&s.dir, &s.directory));
            account = ctx.account().await?;
        }
        result = order(
            &account,
            &s.directory,
            &host.names,
            s.challenge,
            s.key,
            &ctx.challenges,
            None,
        )
        .await;
    }
    let issued = result?;
    // The gate: the same load and rules as a file at start and at reload.
    let bundle = CertBundle::from_pem(
        &host.cert,
        issued.chain_pem.as_bytes(),
        &host.key,
        issued.key_pem.as_bytes(),
    )
    .map_err(|source| AcmeError::Issued { source })?;
    let source = CertSource::Pem {
        cert: host.cert.clone(),
        key: host.key.clone(),
    };
    let report = certfront_certs::check(
        &host.names,
        &source,
        &bundle,
        &host.policy,
        &ctx.gate.trust,
        SystemTime::now(),
    );
    if !report.violations.is_empty() {
        return Err(AcmeError::Policy {
            violations: report.violations.iter().map(|v| v.to_string()).collect(),
        });
    }
    let info = bundle
        .leaf_info()
        .map_err(|source| AcmeError::Issued { source })?;
    write_pair(
        &host.cert,
        issued.chain_pem.as_bytes(),
        &host.key,
        issued.key_pem.as_bytes(),
    )?;
    info!(
        host = %host.fqdn,
        "ACME certificate issued and stored: serial {} thumbprint {} expires {}",
        info.serial,
        info.sha1_thumbprint,
        unix_time(info.not_after).map(fmt_rfc3339).unwrap_or_default()
    );
    (ctx.on_stored)(&host.fqdn);
    Ok(())
}

/// The stored pair when it passes every rule now; else why not (missing, expired, a policy
/// that changed, names that changed).
fn read_stored(ctx: &Ctx, host: &AcmeHost, now: SystemTime) -> Result<Stored, String> {
    let source = CertSource::Pem {
        cert: host.cert.clone(),
        key: host.key.clone(),
    };
    let bundle = certfront_certs::load(&source).map_err(|e| match &e {
        certfront_certs::CertError::Read { source: io, .. }
            if io.kind() == std::io::ErrorKind::NotFound =>
        {
            "no certificate stored yet".to_owned()
        }
        _ => e.to_string(),
    })?;
    let report = certfront_certs::check(
        &host.names,
        &source,
        &bundle,
        &host.policy,
        &ctx.gate.trust,
        now,
    );
    if !report.violations.is_empty() {
        let why: Vec<String> = report.violations.iter().map(|v| v.to_string()).collect();
        return Err(format!(
            "the stored certificate is not usable: {}",
            why.join("; ")
        ));
    }
    let info = bundle.leaf_info().map_err(|e| e.to_string())?;
    let leaf = bundle.chain.first().cloned().ok_or("empty chain")?;
    Ok(Stored {
        not_before: unix_time(info.not_before).unwrap_or(UNIX_EPOCH),
        not_after: unix_time(info.not_after).unwrap_or(UNIX_EPOCH),
        serial: info.serial,
        leaf,
    })
}

/// ACME Renewal Information for the stored certificate (RFC 9773), asked at most as often
/// as the server's Retry-After says.
#[derive(Default)]
struct Ari {
    supported: bool,
    due: Option<SystemTime>,
    next_poll: Option<SystemTime>,
    serial: String,
}

impl Ari {
    async fn due(
        &mut self,
        ctx: &Ctx,
        stored: &Stored,
        jitter: f64,
        now: SystemTime,
    ) -> Option<SystemTime> {
        if ctx.no_ari.load(Ordering::Relaxed) {
            return None;
        }
        let fresh = self.serial == stored.serial && self.next_poll.is_some_and(|t| t > now);
        if fresh {
            return self.due;
        }
        let account = ctx.account().await.ok()?;
        let id = CertificateIdentifier::try_from(&stored.leaf).ok()?;
        self.serial = stored.serial.clone();
        match account.renewal_info(&id).await {
            Ok((info, retry)) => {
                self.supported = true;
                let start = SystemTime::from(info.suggested_window.start);
                let end = SystemTime::from(info.suggested_window.end);
                self.due = Some(in_window(start, end, jitter));
                self.next_poll = Some(now + retry.clamp(ARI_POLL_MIN, ARI_POLL_MAX));
                self.due
            }
            Err(instant_acme::Error::Unsupported(_)) => {
                if !ctx.no_ari.swap(true, Ordering::Relaxed) {
                    info!(
                        "{} offers no ACME Renewal Information (RFC 9773): renewing when a third \
                         of the lifetime (or acme.renew_before_days) is left",
                        ctx.settings.directory
                    );
                }
                None
            }
            Err(e) => {
                debug!("ACME renewal information unavailable: {e}");
                self.next_poll = Some(now + ARI_POLL_MIN);
                self.due = None;
                None
            }
        }
    }
}

impl Ctx {
    /// The account for the directory: in memory, else from `state_dir/acme/accounts/`, else
    /// created (with EAB when configured) and stored.
    async fn account(&self) -> Result<Account, AcmeError> {
        let mut cached = self.account.lock().await;
        if let Some(account) = cached.as_ref() {
            return Ok(account.clone());
        }
        let s = &self.settings;
        let server = |what: &'static str| {
            move |source| AcmeError::Server {
                directory: s.directory.clone(),
                what,
                source,
            }
        };
        let http = || -> Result<Box<AcmeHttp>, AcmeError> {
            AcmeHttp::new(s.roots.clone())
                .map(Box::new)
                .map_err(|e| server("HTTPS client")(instant_acme::Error::Other(Box::new(e))))
        };
        let path = account_path(&s.dir, &s.directory);
        let account = match load_account(&path)? {
            Some(credentials) => Account::builder_with_http(http()?)
                .from_credentials(credentials)
                .await
                .map_err(server("directory"))?,
            None => {
                let eab = s
                    .eab
                    .as_ref()
                    .map(|(kid, key)| ExternalAccountKey::new(kid.clone(), key));
                let (account, credentials) = Account::builder_with_http(http()?)
                    .create(
                        &NewAccount {
                            contact: &[s.contact.as_str()],
                            terms_of_service_agreed: true,
                            only_return_existing: false,
                        },
                        s.directory.clone(),
                        eab.as_ref(),
                    )
                    .await
                    .map_err(server("new account"))?;
                save_account(&path, &credentials)?;
                info!(
                    "ACME account created at {} and stored in {}",
                    s.directory,
                    path.display()
                );
                account
            }
        };
        *cached = Some(account.clone());
        Ok(account)
    }
}

fn unix_time(secs: i64) -> Option<SystemTime> {
    u64::try_from(secs)
        .ok()
        .and_then(|s| UNIX_EPOCH.checked_add(Duration::from_secs(s)))
}

fn fmt_rfc3339(t: SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
