//! Thread per core: accepted connections are served by a fixed set of single-threaded
//! runtimes, one per core, and stay on the worker that took them.
//!
//! On tokio's work-stealing runtime a request woke the other thread several times (client
//! read, upstream write, upstream read, client write): on a 2-core machine shared with
//! the load generator that was ~16% of certfront's CPU in the kernel's park and wake-up
//! paths (profile in the issue 9 closing note). Here a connection, the tasks it spawns
//! (HTTP/2 streams, tunnels, upstream connections) and the upstream connections it uses
//! (see `upstream::pool`, sharded by [`current`]) all live on one thread.
//!
//! The listeners, admission and the control plane (reloads, admin, ACME, signals) stay on
//! the main runtime: one place decides who is admitted, and a worker only serves.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::TcpStream;
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tracing::debug;

thread_local! {
    /// This thread's worker index; 0 on threads that are not workers.
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// The worker this thread is (0 elsewhere): what per-worker state is indexed by.
pub(crate) fn current() -> usize {
    INDEX.with(Cell::get)
}

/// How many workers a certfront runs: one per core it may use (cgroup quotas and CPU
/// affinity included), the same for every start in this process.
pub(crate) fn count() -> usize {
    static COUNT: OnceLock<usize> = OnceLock::new();
    *COUNT.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, MAX_WORKERS)
    })
}

/// A bound on threads even where the machine reports hundreds of cores.
const MAX_WORKERS: usize = 64;

/// The running workers. Dropping this stops them: connections still open are closed.
pub(crate) struct Workers {
    handles: Box<[Handle]>,
    /// Connections open on each worker: a new one goes to the least busy.
    open: Arc<[AtomicUsize]>,
    /// Dropped with `Workers`: each worker's runtime then shuts down.
    _stop: Box<[oneshot::Sender<()>]>,
}

impl Workers {
    /// Starts [`count`] worker threads, each with its own current-thread runtime (or,
    /// with `CERTFRONT_WORK_STEALING=1` in the environment, one work-stealing runtime
    /// with that many threads: a measuring switch for loadtest/, see its README).
    pub(crate) fn start() -> io::Result<Self> {
        if std::env::var_os("CERTFRONT_WORK_STEALING").is_some_and(|v| v == "1") {
            return Self::start_stealing();
        }
        let n = count();
        let mut handles = Vec::with_capacity(n);
        let mut stops = Vec::with_capacity(n);
        for index in 0..n {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            handles.push(runtime.handle().clone());
            let (stop, stopped) = oneshot::channel::<()>();
            stops.push(stop);
            std::thread::Builder::new()
                .name(format!("certfront-w{index}"))
                .spawn(move || {
                    INDEX.with(|i| i.set(index));
                    // Runs spawned connections until told to stop (or its sender is gone).
                    let _ = runtime.block_on(stopped);
                    runtime.shutdown_background();
                })?;
        }
        Ok(Workers {
            handles: handles.into(),
            open: (0..n).map(|_| AtomicUsize::new(0)).collect(),
            _stop: stops.into(),
        })
    }

    /// One tokio work-stealing runtime of [`count`] threads: a connection's tasks may run
    /// on any of them. Each thread still gets its own index, so upstream pools stay
    /// sharded per thread (a connection is then reused by whichever thread checks it out).
    fn start_stealing() -> io::Result<Self> {
        let next = Arc::new(AtomicUsize::new(0));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(count())
            .thread_name("certfront-w")
            .on_thread_start(move || {
                let index = next.fetch_add(1, Ordering::Relaxed);
                INDEX.with(|i| i.set(index));
            })
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("certfront-ws".into())
            .spawn(move || {
                let _ = runtime.block_on(stopped);
                runtime.shutdown_background();
            })?;
        Ok(Workers {
            handles: Box::new([handle]),
            open: Arc::new([AtomicUsize::new(0)]),
            _stop: Box::new([stop]),
        })
    }

    /// Serves `tcp` on the least busy worker: `serve` runs there, on that worker's
    /// reactor, until the connection ends.
    pub(crate) fn spawn<F, Fut>(&self, tcp: TcpStream, serve: F)
    where
        F: FnOnce(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        // Leaves the accepting reactor here and joins the worker's below.
        let std = match tcp.into_std() {
            Ok(std) => std,
            Err(e) => {
                debug!("accepted connection lost before it reached a worker: {e}");
                return;
            }
        };
        let index = least_busy(&self.open);
        let open = OpenOn::new(self.open.clone(), index);
        self.handles[index].spawn(async move {
            let _open = open;
            match TcpStream::from_std(std) {
                Ok(tcp) => serve(tcp).await,
                Err(e) => debug!("worker could not take an accepted connection: {e}"),
            }
        });
    }
}

/// The index with the fewest open connections; ties go to the lowest index, so a quiet
/// certfront serves one connection after another on the same worker (and its pools).
fn least_busy(open: &[AtomicUsize]) -> usize {
    let mut best = 0;
    let mut fewest = usize::MAX;
    for (i, n) in open.iter().enumerate() {
        let n = n.load(Ordering::Relaxed);
        if n < fewest {
            best = i;
            fewest = n;
        }
    }
    best
}

/// One connection counted on its worker for as long as it is served.
struct OpenOn {
    open: Arc<[AtomicUsize]>,
    index: usize,
}

impl OpenOn {
    fn new(open: Arc<[AtomicUsize]>, index: usize) -> Self {
        open[index].fetch_add(1, Ordering::Relaxed);
        OpenOn { open, index }
    }
}

impl Drop for OpenOn {
    fn drop(&mut self) {
        self.open[self.index].fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(v: &[usize]) -> Arc<[AtomicUsize]> {
        v.iter().map(|&n| AtomicUsize::new(n)).collect()
    }

    #[test]
    fn a_connection_goes_to_the_least_busy_worker() {
        assert_eq!(least_busy(&counts(&[3, 1, 2])), 1);
        assert_eq!(least_busy(&counts(&[0, 0])), 0, "ties go to the first");
        assert_eq!(least_busy(&counts(&[2, 2, 1, 1])), 2);
        assert_eq!(least_busy(&counts(&[5])), 0);
    }

    #[test]
    fn the_count_follows_the_open_connections() {
        let open = counts(&[0, 0]);
        let a = OpenOn::new(open.clone(), least_busy(&open));
        let b = OpenOn::new(open.clone(), least_busy(&open));
        assert_eq!((a.index, b.index), (0, 1));
        drop(a);
        assert_eq!(least_busy(&open), 0);
        assert_eq!(open[1].load(Ordering::Relaxed), 1);
        drop(b);
        assert!(open.iter().all(|n| n.load(Ordering::Relaxed) == 0));
    }

    /// Accepts one loopback connection, spawns it on `workers`, and returns the name of
    /// the thread that served it, its worker index there, and whether the stream worked.
    fn serve_one(workers: &Workers) -> (Option<String>, usize, bool) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let client = tokio::spawn(TcpStream::connect(addr));
            let (tcp, _) = listener.accept().await.unwrap();
            let (tx, rx) = oneshot::channel();
            workers.spawn(tcp, move |tcp| async move {
                let name = std::thread::current().name().map(str::to_owned);
                let _ = tx.send((name, current(), tcp.peer_addr().is_ok()));
            });
            let served = tokio::time::timeout(std::time::Duration::from_secs(10), rx)
                .await
                .expect("served within 10 s")
                .expect("sent");
            drop(client);
            served
        })
    }

    #[test]
    fn a_spawned_connection_runs_on_a_worker_thread() {
        let (name, index, connected) = serve_one(&Workers::start().expect("workers"));
        assert_eq!(name.as_deref(), Some("certfront-w0"));
        assert_eq!(index, 0);
        assert!(connected, "the stream still works on the worker's reactor");
    }

    #[test]
    fn the_work_stealing_mode_serves_on_its_own_threads() {
        let (name, _, connected) = serve_one(&Workers::start_stealing().expect("workers"));
        assert_eq!(name.as_deref(), Some("certfront-w"));
        assert!(connected);
    }
}
