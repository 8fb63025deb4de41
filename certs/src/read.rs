//! The one way certfront reads a file it is given (certificates, keys, `.pfx` and password
//! files, trust files, deny lists, ticket keys, the config; CRLs later): it must be a
//! regular file after links are followed, no larger than its kind's cap, and read within
//! [`TIME_LIMIT`] on a thread of its own.
//!
//! Why each rule: a link to `/dev/zero` is read forever into memory; a FIFO blocks the
//! reader at `open` until someone writes (so the type is checked before opening, and
//! again on the opened file); a 1 GB file is read whole before it is judged; a hung
//! network share (CIFS, NFS) blocks `stat` and `read` alike. A read that does not return
//! in time is abandoned: its thread is left to finish, and while it has not, the same
//! file is refused at once rather than waited for again.

use std::collections::HashSet;
use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, mpsc};
use std::time::Duration;

/// How long one file may take (`stat`, `open` and `read` together).
pub const TIME_LIMIT: Duration = Duration::from_secs(5);

/// Reads abandoned after [`TIME_LIMIT`] whose thread has not returned yet; past this,
/// every read is refused rather than leave more threads behind.
const MAX_HUNG: usize = 32;

/// What a file holds, which sets its size cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// PEM or DER certificates: a chain, a trust file, a CA root.
    Certificate,
    PrivateKey,
    Pfx,
    Password,
    DenyList,
    TicketKeys,
    Config,
    Crl,
}

impl FileKind {
    /// The largest file of this kind certfront reads (docs/configuration.md, "Files").
    pub const fn cap(self) -> u64 {
        const KIB: u64 = 1024;
        const MIB: u64 = 1024 * KIB;
        match self {
            FileKind::Certificate => 4 * MIB,
            FileKind::PrivateKey => MIB,
            FileKind::Pfx => 4 * MIB,
            FileKind::Password => 64 * KIB,
            FileKind::DenyList => 32 * MIB,
            FileKind::TicketKeys => 64 * KIB,
            FileKind::Config => 16 * MIB,
            FileKind::Crl => 64 * MIB,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            FileKind::Certificate => "certificate file",
            FileKind::PrivateKey => "private key file",
            FileKind::Pfx => ".pfx file",
            FileKind::Password => "password file",
            FileKind::DenyList => "deny list",
            FileKind::TicketKeys => "ticket key file",
            FileKind::Config => "configuration file",
            FileKind::Crl => "CRL file",
        }
    }
}

/// Why a file was not read, beside the operating system's own errors.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("not a regular file but {found}; expected a regular file (or a link to one)")]
    NotRegular { found: FileType },
    #[error("{size} bytes, more than the {cap} bytes a {kind} may have")]
    TooLarge {
        kind: &'static str,
        size: u64,
        cap: u64,
    },
    #[error("not read within {0:?} (a hung network share?); the last good content stays in use")]
    TimedOut(Duration),
    #[error("an earlier read of this file has not returned yet (a hung network share?)")]
    StillHung,
    #[error("{0} earlier file reads have not returned (hung network shares?); no more are started")]
    TooManyHung(usize),
}

/// A file type that is not a regular file, in words an administrator knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileType {
    Directory,
    Fifo,
    CharDevice,
    BlockDevice,
    Socket,
    Other,
}

impl fmt::Display for FileType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileType::Directory => "a directory",
            FileType::Fifo => "a FIFO (named pipe)",
            FileType::CharDevice => "a character device (such as /dev/zero)",
            FileType::BlockDevice => "a block device",
            FileType::Socket => "a socket",
            FileType::Other => "not a file",
        })
    }
}

fn file_type(meta: &std::fs::Metadata) -> FileType {
    let t = meta.file_type();
    if t.is_dir() {
        return FileType::Directory;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return FileType::Fifo;
        }
        if t.is_char_device() {
            return FileType::CharDevice;
        }
        if t.is_block_device() {
            return FileType::BlockDevice;
        }
        if t.is_socket() {
            return FileType::Socket;
        }
    }
    FileType::Other
}

fn refused(kind: io::ErrorKind, why: Refused) -> io::Error {
    io::Error::new(kind, why)
}

/// The checks on a file's metadata: a regular file within the cap.
fn admissible(meta: &std::fs::Metadata, kind: FileKind) -> io::Result<()> {
    if !meta.is_file() {
        let found = file_type(meta);
        return Err(refused(
            io::ErrorKind::InvalidInput,
            Refused::NotRegular { found },
        ));
    }
    if meta.len() > kind.cap() {
        return Err(too_large(kind, meta.len()));
    }
    Ok(())
}

fn too_large(kind: FileKind, size: u64) -> io::Error {
    refused(
        io::ErrorKind::InvalidData,
        Refused::TooLarge {
            kind: kind.name(),
            size,
            cap: kind.cap(),
        },
    )
}

/// The read itself, on the calling thread: type and size before opening, again on the
/// opened file (the path may have been swapped in between), then at most cap + 1 bytes.
fn read_now(path: &Path, kind: FileKind) -> io::Result<Vec<u8>> {
    admissible(&std::fs::metadata(path)?, kind)?;
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    admissible(&meta, kind)?;
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(kind.cap() + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > kind.cap() {
        // It grew while being read.
        return Err(too_large(kind, bytes.len() as u64));
    }
    Ok(bytes)
}

static HUNG: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);

fn hung() -> std::sync::MutexGuard<'static, Option<HashSet<PathBuf>>> {
    HUNG.lock().unwrap_or_else(|p| p.into_inner())
}

/// Reads `path` under every rule of this module. The errors are `io::Error`s so that
/// callers keep their `Read { path, source }` variants; certfront's own refusals carry a
/// [`Refused`] inside (`get_ref().downcast_ref::<Refused>()`).
pub fn read_file(path: &Path, kind: FileKind) -> io::Result<Vec<u8>> {
    read_within(path, kind, TIME_LIMIT)
}

fn read_within(path: &Path, kind: FileKind, limit: Duration) -> io::Result<Vec<u8>> {
    let owned = path.to_owned();
    limited(path, limit, move || read_now(&owned, kind))
}

/// Runs `read` on a thread of its own and waits at most `limit` for it.
fn limited(
    path: &Path,
    limit: Duration,
    read: impl FnOnce() -> io::Result<Vec<u8>> + Send + 'static,
) -> io::Result<Vec<u8>> {
    {
        let hung = hung();
        if let Some(set) = hung.as_ref() {
            if set.contains(path) {
                return Err(refused(io::ErrorKind::TimedOut, Refused::StillHung));
            }
            if set.len() >= MAX_HUNG {
                return Err(refused(
                    io::ErrorKind::TimedOut,
                    Refused::TooManyHung(set.len()),
                ));
            }
        }
    }
    let (tx, rx) = mpsc::sync_channel(1);
    let owned = path.to_owned();
    std::thread::Builder::new()
        .name("certfront-read".into())
        .spawn(move || {
            let result = read();
            // Held while sending, so that the waiter's "hung" mark and this removal
            // cannot interleave.
            let mut hung = hung();
            if tx.send(result).is_err()
                && let Some(set) = hung.as_mut()
            {
                // Abandoned: the file is no longer hung now that this returned.
                set.remove(&owned);
            }
        })?;
    match rx.recv_timeout(limit) {
        Ok(result) => result,
        Err(_) => {
            let mut hung = hung();
            // The thread may have finished between the timeout and the lock.
            if let Ok(result) = rx.try_recv() {
                return result;
            }
            drop(rx);
            hung.get_or_insert_with(HashSet::new)
                .insert(path.to_owned());
            Err(refused(io::ErrorKind::TimedOut, Refused::TimedOut(limit)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(e: &io::Error) -> &Refused {
        e.get_ref()
            .and_then(|e| e.downcast_ref::<Refused>())
            .unwrap_or_else(|| panic!("not a refusal: {e}"))
    }

    #[test]
    fn a_regular_file_within_its_cap_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.pem");
        std::fs::write(&path, b"hello").unwrap();
        assert_eq!(read_file(&path, FileKind::Certificate).unwrap(), b"hello");
        // Through a link too.
        #[cfg(unix)]
        {
            let link = dir.path().join("link.pem");
            std::os::unix::fs::symlink(&path, &link).unwrap();
            assert_eq!(read_file(&link, FileKind::Certificate).unwrap(), b"hello");
        }
    }

    #[test]
    fn an_oversize_file_is_refused_before_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.txt");
        let file = std::fs::File::create(&path).unwrap();
        // Sparse: 1 GB that takes no disk.
        file.set_len(1 << 30).unwrap();
        let started = std::time::Instant::now();
        let e = read_file(&path, FileKind::Password).unwrap_err();
        assert!(
            matches!(
                refusal(&e),
                Refused::TooLarge {
                    size: 1073741824,
                    cap: 65536,
                    ..
                }
            ),
            "{e}"
        );
        assert!(
            e.to_string()
                .contains("more than the 65536 bytes a password file may have")
        );
        // Refused by its size, not after reading it (generous: a read takes seconds).
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[cfg(unix)]
    #[test]
    fn a_directory_a_device_and_a_fifo_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_file(dir.path(), FileKind::Config).unwrap_err();
        assert!(matches!(
            refusal(&e),
            Refused::NotRegular {
                found: FileType::Directory
            }
        ));
        let zero = dir.path().join("zero.pem");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let e = read_file(&zero, FileKind::Certificate).unwrap_err();
        assert!(
            matches!(
                refusal(&e),
                Refused::NotRegular {
                    found: FileType::CharDevice
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("/dev/zero"), "{e}");
        let fifo = dir.path().join("fifo.pem");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let started = std::time::Instant::now();
        let e = read_file(&fifo, FileKind::DenyList).unwrap_err();
        assert!(
            matches!(
                refusal(&e),
                Refused::NotRegular {
                    found: FileType::Fifo
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("FIFO"), "{e}");
        assert!(started.elapsed() < TIME_LIMIT, "the FIFO was waited for");
    }

    #[test]
    fn a_read_that_hangs_is_abandoned_and_not_waited_for_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("on-a-hung-share.pem");
        std::fs::write(&path, b"x").unwrap();
        let (release, wait) = mpsc::channel::<()>();
        let started = std::time::Instant::now();
        let e = limited(&path, Duration::from_millis(100), move || {
            // A share that answers only when the test says so.
            let _ = wait.recv();
            Ok(b"late".to_vec())
        })
        .unwrap_err();
        assert!(matches!(refusal(&e), Refused::TimedOut(_)), "{e}");
        assert!(started.elapsed() < Duration::from_secs(5));
        // While that read has not returned, the file is refused at once.
        let e = read_file(&path, FileKind::Certificate).unwrap_err();
        assert!(matches!(refusal(&e), Refused::StillHung), "{e}");
        // Another file is not held up.
        let other = dir.path().join("other.pem");
        std::fs::write(&other, b"y").unwrap();
        assert_eq!(read_file(&other, FileKind::Certificate).unwrap(), b"y");
        // Once the share answers, the file is read again.
        release.send(()).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            match read_file(&path, FileKind::Certificate) {
                Ok(bytes) => break assert_eq!(bytes, b"x"),
                Err(e) if std::time::Instant::now() < deadline => {
                    assert!(matches!(refusal(&e), Refused::StillHung), "{e}");
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("still refused: {e}"),
            }
        }
    }
}
