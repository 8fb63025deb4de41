//! Session-ticket keys shared by every certfront instance (`tls.ticket_key_file`), so a
//! client that got a ticket from one instance behind a load balancer resumes on another,
//! like nginx's `ssl_session_ticket_key`.
//!
//! The file is text: one key a line, the base64 of 48 random bytes (`openssl rand -base64
//! 48`); blank lines and `#` comments are ignored. The first key encrypts new tickets,
//! every key decrypts. Bytes 0..16 name the key (written in front of each ticket, so the
//! right key is found without trying them all), bytes 16..48 are its AES-256-GCM key.
//! The file is re-read when it changes (watched like certificates, and checked every
//! minute); a bad file keeps the keys in use and is logged.
//!
//! Written here rather than taken from a crate: rustls' own ticketer makes random keys
//! per process and offers no way to give it keys, and the format is ours to document.

use certfront_certs::read::{FileKind, read_file};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::digest;
use base64::Engine;
use rustls::server::ProducesTickets;
use tracing::{error, info};

/// Bytes in one key: a 16-byte name and a 32-byte AES-256-GCM key.
pub(crate) const KEY_LEN: usize = 48;
const NAME_LEN: usize = 16;
/// What clients are told a ticket is good for (rustls' own ticketer uses the same).
const LIFETIME_SECONDS: u32 = 6 * 60 * 60;
/// How often the file is compared with what is in use, in case a change event was missed.
const RECHECK: Duration = Duration::from_secs(60);

/// Why a ticket key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TicketKeyError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: line {line}: {detail}; expected the base64 of {KEY_LEN} random bytes, e.g. from `openssl rand -base64 {KEY_LEN}`", path.display())]
    Line {
        path: PathBuf,
        line: usize,
        detail: String,
    },
    #[error("{}: no key in the file; expected one key a line, the base64 of {KEY_LEN} random bytes (make one with `openssl rand -base64 {KEY_LEN}`)", path.display())]
    Empty { path: PathBuf },
    #[error("{}: line {line} has the same key name as line {first}; every key must be different", path.display())]
    Duplicate {
        path: PathBuf,
        line: usize,
        first: usize,
    },
}

struct Key {
    name: [u8; NAME_LEN],
    aead: LessSafeKey,
}

/// The keys of one version of the file; the first encrypts.
pub(crate) struct TicketKeys {
    keys: Vec<Key>,
    content_hash: [u8; 32],
}

impl fmt::Debug for TicketKeys {
    // never print key material
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TicketKeys")
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

impl TicketKeys {
    /// Reads and checks the file.
    pub(crate) fn load(path: &Path) -> Result<Self, TicketKeyError> {
        let bytes =
            read_file(path, FileKind::TicketKeys).map_err(|source| TicketKeyError::Read {
                path: path.to_owned(),
                source,
            })?;
        Self::parse(path, &bytes)
    }

    /// Parses file content; `path` is for messages only.
    pub(crate) fn parse(path: &Path, bytes: &[u8]) -> Result<Self, TicketKeyError> {
        let text = String::from_utf8_lossy(bytes);
        let mut keys: Vec<(usize, Key)> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line_no = i + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |detail: String| TicketKeyError::Line {
                path: path.to_owned(),
                line: line_no,
                detail,
            };
            let raw = base64::engine::general_purpose::STANDARD
                .decode(line)
                .map_err(|e| bad(format!("not base64 ({e})")))?;
            if raw.len() != KEY_LEN {
                return Err(bad(format!("{} bytes", raw.len())));
            }
            let mut name = [0u8; NAME_LEN];
            name.copy_from_slice(&raw[..NAME_LEN]);
            if let Some((first, _)) = keys.iter().find(|(_, k)| k.name == name) {
                return Err(TicketKeyError::Duplicate {
                    path: path.to_owned(),
                    line: line_no,
                    first: *first,
                });
            }
            let unbound = UnboundKey::new(&AES_256_GCM, &raw[NAME_LEN..])
                .map_err(|_| bad("not an AES-256 key".to_owned()))?;
            keys.push((
                line_no,
                Key {
                    name,
                    aead: LessSafeKey::new(unbound),
                },
            ));
        }
        if keys.is_empty() {
            return Err(TicketKeyError::Empty {
                path: path.to_owned(),
            });
        }
        Ok(TicketKeys {
            keys: keys.into_iter().map(|(_, k)| k).collect(),
            content_hash: hash(bytes),
        })
    }

    /// How many keys the file holds.
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// `name || nonce || AES-256-GCM(plain) || tag`, the key name as associated data.
    fn seal(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let key = self.keys.first()?;
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).ok()?;
        let mut sealed = plain.to_vec();
        key.aead
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&key.name),
                &mut sealed,
            )
            .ok()?;
        let mut out = Vec::with_capacity(NAME_LEN + NONCE_LEN + sealed.len());
        out.extend_from_slice(&key.name);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Some(out)
    }

    /// The plaintext of a ticket made with any key of the file; `None` for anything else
    /// (another file's key, a dropped key, a forged or damaged ticket): a full handshake.
    fn open(&self, ticket: &[u8]) -> Option<Vec<u8>> {
        let name = ticket.get(..NAME_LEN)?;
        let nonce = ticket.get(NAME_LEN..NAME_LEN + NONCE_LEN)?;
        let key = self.keys.iter().find(|k| k.name == name)?;
        let mut sealed = ticket.get(NAME_LEN + NONCE_LEN..)?.to_vec();
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let plain = key
            .aead
            .open_in_place(nonce, Aad::from(&key.name), &mut sealed)
            .ok()?;
        Some(plain.to_vec())
    }
}

fn hash(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, bytes).as_ref());
    out
}

/// The rustls ticketer over the keys of `tls.ticket_key_file`, following the file.
pub(crate) struct FileTicketer {
    inner: Arc<Inner>,
    _watcher: Option<certfront_certs::watch::Watcher<u8>>,
}

struct Inner {
    path: PathBuf,
    keys: ArcSwap<TicketKeys>,
    /// Serializes re-reads (watcher thread and the periodic check).
    refreshing: Mutex<()>,
}

impl fmt::Debug for FileTicketer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileTicketer")
            .field("path", &self.inner.path)
            .field("keys", &self.inner.keys.load().len())
            .finish()
    }
}

impl FileTicketer {
    /// Loads the file (an error if it is unusable) and follows its changes from now on.
    pub(crate) fn start(path: &Path) -> Result<Arc<Self>, TicketKeyError> {
        let keys = TicketKeys::load(path)?;
        info!(
            "session ticket keys: {} key(s) from {}",
            keys.len(),
            path.display()
        );
        let inner = Arc::new(Inner {
            path: path.to_owned(),
            keys: ArcSwap::from_pointee(keys),
            refreshing: Mutex::new(()),
        });
        let weak = Arc::downgrade(&inner);
        let watcher = certfront_certs::watch::watch(&[(0u8, path.to_owned())], move |_| {
            if let Some(inner) = weak.upgrade() {
                inner.refresh();
            }
        })
        .map_err(|e| error!("{e}; ticket key changes are picked up every minute only"))
        .ok();
        let weak = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("ticket-keys".into())
            .spawn(move || recheck(weak))
            .map_err(|e| error!("cannot start the ticket key re-check: {e}"))
            .ok();
        Ok(Arc::new(FileTicketer {
            inner,
            _watcher: watcher,
        }))
    }
}

/// Re-reads the file every minute until the ticketer is gone.
fn recheck(inner: Weak<Inner>) {
    loop {
        std::thread::sleep(RECHECK);
        match inner.upgrade() {
            Some(inner) => inner.refresh(),
            None => return,
        }
    }
}

impl Inner {
    /// Takes the file's keys when its content changed and is valid; otherwise logs and
    /// keeps the keys in use (a half-written file is retried on the next change).
    fn refresh(&self) {
        let _one_at_a_time = self.refreshing.lock().unwrap_or_else(|e| e.into_inner());
        let bytes = match read_file(&self.path, FileKind::TicketKeys) {
            Ok(bytes) => bytes,
            Err(e) => {
                error!(
                    "{}: cannot read: {e}; keeping the session ticket keys in use",
                    self.path.display()
                );
                return;
            }
        };
        if hash(&bytes) == self.keys.load().content_hash {
            return;
        }
        match TicketKeys::parse(&self.path, &bytes) {
            Ok(keys) => {
                info!(
                    "session ticket keys reloaded: {} key(s) from {}",
                    keys.len(),
                    self.path.display()
                );
                self.keys.store(Arc::new(keys));
            }
            Err(e) => error!("{e}; keeping the session ticket keys in use"),
        }
    }
}

impl ProducesTickets for FileTicketer {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        LIFETIME_SECONDS
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.inner.keys.load().seal(plain)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        self.inner.keys.load().open(cipher)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_line(fill: u8) -> String {
        let mut raw = [fill; KEY_LEN];
        raw[0] = fill.wrapping_add(1);
        base64::engine::general_purpose::STANDARD.encode(raw)
    }

    fn keys(text: &str) -> TicketKeys {
        TicketKeys::parse(Path::new("t.keys"), text.as_bytes()).unwrap()
    }

    #[test]
    fn first_key_encrypts_every_key_decrypts() {
        let old = keys(&format!("# comment\n\n{}\n", key_line(1)));
        let both = keys(&format!("{}\n{}\n", key_line(2), key_line(1)));
        let new = keys(&key_line(2));
        let ticket = old.seal(b"session state").unwrap();
        assert_eq!(both.open(&ticket).unwrap(), b"session state");
        assert!(
            new.open(&ticket).is_none(),
            "a removed key no longer decrypts"
        );
        let fresh = both.seal(b"next").unwrap();
        assert_eq!(new.open(&fresh).unwrap(), b"next");
        assert!(old.open(&fresh).is_none());
        // two tickets of one key differ (random nonce); tampering is refused
        assert_ne!(both.seal(b"x").unwrap(), both.seal(b"x").unwrap());
        let mut forged = fresh.clone();
        *forged.last_mut().unwrap() ^= 1;
        assert!(both.open(&forged).is_none());
        assert!(both.open(&fresh[..20]).is_none());
        assert!(both.open(b"").is_none());
    }

    #[test]
    fn bad_files_say_which_line_and_what_is_expected() {
        let err = |text: &str| {
            TicketKeys::parse(Path::new("/etc/certfront/tickets.keys"), text.as_bytes())
                .unwrap_err()
                .to_string()
        };
        let short = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        assert_eq!(
            err(&format!("{}\n{short}\n", key_line(1))),
            "/etc/certfront/tickets.keys: line 2: 32 bytes; expected the base64 of 48 random \
             bytes, e.g. from `openssl rand -base64 48`"
        );
        assert!(err("not base64!\n").contains("line 1: not base64"));
        assert!(err("# only a comment\n\n").contains("no key in the file"));
        let dup = format!("{}\n{}\n", key_line(3), key_line(3));
        assert!(err(&dup).contains("line 2 has the same key name as line 1"));
    }
}
