//! The access log: one line per request, in the format `server.access_log` names, written
//! by a thread of its own so that writing never blocks a request. Requests hand their
//! [`Entry`] to a bounded queue; a full queue drops the line and counts it
//! (`certfront_access_log_dropped_total`). SIGUSR1 reopens the file (logrotate).

mod format;

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use certfront_config::AccessLog;
use http::{HeaderValue, Method};
use prometheus::IntCounter;
use tracing::warn;

/// Lines waiting for the writer; beyond this a burst is dropped rather than held in memory.
const QUEUE: usize = 16 * 1024;
/// How often the writer takes the queued lines: [`QUEUE`] per batch is far above what
/// the proxy serves.
const BATCH: Duration = Duration::from_millis(50);

/// What a connection knows for its whole life, logged with each of its requests.
#[derive(Debug)]
pub(crate) struct ConnFacts {
    /// The address the client connected to (`s-ip`, `s-port`).
    pub local: Option<SocketAddr>,
    pub sni: Option<Box<str>>,
    pub tls_version: &'static str,
    pub cipher: &'static str,
    /// SHA-1 of the client certificate, upper-case hex (mutual TLS hosts only).
    pub client_thumbprint: Option<HeaderValue>,
}

/// The texts of a request that a line names.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Text {
    Path,
    Query,
    UserAgent,
    Referer,
    Host,
    RequestId,
}

/// A request's texts, copied into one buffer. Holding the request's own bytes instead
/// (its URI and header values share hyper's read buffer) until the writer runs would make
/// hyper allocate a new read buffer for the connection's next request.
#[derive(Debug, Default)]
pub(crate) struct Texts {
    buf: Vec<u8>,
    spans: [(u32, u32); 6],
}

impl Texts {
    pub(crate) fn with_capacity(n: usize) -> Texts {
        Texts {
            buf: Vec::with_capacity(n),
            spans: [(0, 0); 6],
        }
    }

    pub(crate) fn set(&mut self, which: Text, bytes: &[u8]) {
        let start = self.buf.len();
        self.buf.extend_from_slice(bytes);
        let end = self.buf.len();
        self.spans[which as usize] = (
            u32::try_from(start).unwrap_or(u32::MAX),
            u32::try_from(end).unwrap_or(u32::MAX),
        );
    }

    pub(crate) fn get(&self, which: Text) -> &[u8] {
        let (start, end) = self.spans[which as usize];
        self.buf
            .get(start as usize..end as usize)
            .unwrap_or_default()
    }
}

/// One request, as the writer thread formats it.
#[derive(Debug)]
pub(crate) struct Entry {
    pub format: AccessLog,
    /// When the response headers were ready.
    pub at: SystemTime,
    pub conn: Arc<ConnFacts>,
    pub peer: IpAddr,
    pub method: Method,
    pub texts: Texts,
    pub status: u16,
    pub time_taken_ms: u64,
    pub upstream: Option<Arc<str>>,
    pub upstream_ms: Option<u64>,
}

impl Entry {
    pub(crate) fn text(&self, which: Text) -> &[u8] {
        self.texts.get(which)
    }

    /// A text for formats that need UTF-8 (JSON, `tracing`); `None` when empty.
    pub(crate) fn str(&self, which: Text) -> Option<std::borrow::Cow<'_, str>> {
        let bytes = self.text(which);
        (!bytes.is_empty()).then(|| String::from_utf8_lossy(bytes))
    }
}

/// The request side of the access log: cheap to call, never blocks, no system call.
pub(crate) struct AccessLogger {
    tx: SyncSender<Box<Entry>>,
    flags: Arc<Flags>,
    dropped: IntCounter,
    writer: Mutex<Option<JoinHandle<()>>>,
}

/// What the writer thread is asked to do besides writing.
#[derive(Default)]
struct Flags {
    reopen: AtomicBool,
    stop: AtomicBool,
}

/// The access-log file cannot be opened.
#[derive(Debug, thiserror::Error)]
#[error("server.access_log_file: cannot open {}: {source}", .path.display())]
pub struct AccessLogError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

impl AccessLogger {
    /// Opens `file` (stderr when `None`) and starts the writer thread.
    pub(crate) fn start(
        file: Option<&Path>,
        dropped: IntCounter,
    ) -> Result<AccessLogger, AccessLogError> {
        Self::with_queue(file, dropped, QUEUE)
    }

    fn with_queue(
        file: Option<&Path>,
        dropped: IntCounter,
        queue: usize,
    ) -> Result<AccessLogger, AccessLogError> {
        let sink = Sink::open(file)?;
        let (tx, rx) = sync_channel(queue);
        let flags = Arc::new(Flags::default());
        let theirs = flags.clone();
        let writer = std::thread::Builder::new()
            .name("certfront-log".into())
            .spawn(move || writer(&rx, sink, &theirs))
            .map_err(|source| AccessLogError {
                path: file.map(Path::to_path_buf).unwrap_or_default(),
                source,
            })?;
        Ok(AccessLogger {
            tx,
            flags,
            dropped,
            writer: Mutex::new(Some(writer)),
        })
    }

    /// Queues one line; when the queue is full the line is dropped and counted.
    pub(crate) fn log(&self, entry: Entry) {
        if self.tx.try_send(Box::new(entry)).is_err() {
            self.dropped.inc();
        }
    }

    /// Asks the writer to reopen its file (after logrotate moved it away); done within
    /// one [`BATCH`].
    pub(crate) fn reopen(&self) {
        self.flags.reopen.store(true, Ordering::Release);
    }

    /// Writes what is queued and stops the writer (at the end of a drain), so that the
    /// last requests' lines are not lost when the process exits.
    pub(crate) fn finish(&self) {
        self.flags.stop.store(true, Ordering::Release);
        let handle = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

/// Where lines go: stderr, or a file opened for appending.
struct Sink {
    path: Option<PathBuf>,
    out: BufWriter<Box<dyn Write + Send>>,
    /// The format whose header this file has (W3C writes `#Fields` once per file and
    /// again when the format or the day changes).
    header: Option<(AccessLog, time::Date)>,
    /// The last line's second, rendered once for all lines of that second.
    stamp: Option<format::Stamp>,
}

impl Sink {
    fn open(path: Option<&Path>) -> Result<Sink, AccessLogError> {
        let out: Box<dyn Write + Send> = match path {
            None => Box::new(io::stderr()),
            Some(path) => Box::new(open_append(path)?),
        };
        Ok(Sink {
            path: path.map(Path::to_path_buf),
            out: BufWriter::with_capacity(64 * 1024, out),
            header: None,
            stamp: None,
        })
    }

    fn reopen(&mut self) {
        let Some(path) = &self.path else { return };
        let _ = self.out.flush();
        match open_append(path) {
            Ok(file) => {
                self.out = BufWriter::with_capacity(64 * 1024, Box::new(file));
                self.header = None;
            }
            Err(e) => warn!("{e}; still writing to the file opened before"),
        }
    }

    fn write(&mut self, entry: &Entry) -> io::Result<()> {
        if entry.format == AccessLog::Text && self.path.is_none() {
            // As before formats existed: a `tracing` line, so RUST_LOG still filters it.
            format::trace(entry);
            return Ok(());
        }
        let secs = entry
            .at
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if self.stamp.as_ref().is_none_or(|s| s.secs != secs) {
            self.stamp = Some(format::Stamp::new(secs, entry.at));
        }
        let stamp = self.stamp.as_ref().expect("set above");
        let at = stamp.at;
        if entry.format == AccessLog::W3c && self.header != Some((AccessLog::W3c, at.date())) {
            format::w3c_header(&mut self.out, at)?;
            self.header = Some((AccessLog::W3c, at.date()));
        } else if entry.format != AccessLog::W3c {
            self.header = None;
        }
        format::write(&mut self.out, entry, stamp)
    }
}

fn open_append(path: &Path) -> Result<File, AccessLogError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| AccessLogError {
            path: path.to_path_buf(),
            source,
        })
}

/// Every [`BATCH`]: takes what is queued, writes it, flushes. Polling instead of waiting
/// on the queue keeps the request side free of wake-ups (a futex call per line), and
/// writes whole buffers instead of a system call per line.
fn writer(rx: &Receiver<Box<Entry>>, mut sink: Sink, flags: &Flags) {
    let mut failing = false;
    loop {
        if flags.reopen.swap(false, Ordering::AcqRel) {
            sink.reopen();
        }
        // Read before draining: lines queued before `finish` are all written.
        let stop = flags.stop.load(Ordering::Acquire);
        let gone = loop {
            match rx.try_recv() {
                Ok(entry) => match sink.write(&entry) {
                    Ok(()) => failing = false,
                    Err(e) if !failing => {
                        // Once per run of failures, not once per line (a full disk).
                        warn!("access log: cannot write: {e}");
                        failing = true;
                    }
                    Err(_) => {}
                },
                Err(TryRecvError::Empty) => break false,
                Err(TryRecvError::Disconnected) => break true,
            }
        };
        let _ = sink.out.flush();
        if stop || gone {
            return;
        }
        std::thread::sleep(BATCH);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u32) -> Entry {
        let mut texts = Texts::with_capacity(32);
        texts.set(Text::Path, format!("/r{n}").as_bytes());
        texts.set(Text::RequestId, format!("id-{n}").as_bytes());
        Entry {
            format: AccessLog::W3c,
            at: SystemTime::now(),
            conn: Arc::new(ConnFacts {
                local: None,
                sni: None,
                tls_version: "TLSv1.3",
                cipher: "TLS13_AES_128_GCM_SHA256",
                client_thumbprint: None,
            }),
            peer: "192.0.2.7".parse().expect("address"),
            method: Method::GET,
            texts,
            status: 200,
            time_taken_ms: 1,
            upstream: None,
            upstream_ms: None,
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_and_every_queued_line_is_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("access.log");
        let dropped = IntCounter::new("dropped", "dropped").expect("counter");
        // A queue of 4 and a writer that takes it every 50 ms: a burst of 1,000 overflows.
        let log = AccessLogger::with_queue(Some(&path), dropped.clone(), 4).expect("start");
        for n in 0..1_000 {
            log.log(entry(n));
        }
        log.finish();
        let text = std::fs::read_to_string(&path).expect("log");
        let written = text.lines().filter(|l| !l.starts_with('#')).count() as u64;
        assert!(dropped.get() > 0, "nothing was dropped");
        assert!(written >= 4, "{written} lines written");
        assert_eq!(
            written + dropped.get(),
            1_000,
            "a line neither written nor counted"
        );
        assert!(text.starts_with("#Software: certfront "), "{text}");
        assert!(
            text.contains(" /r0 "),
            "the first line queued is written: {text}"
        );
    }
}
