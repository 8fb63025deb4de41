//! File-change detection for hot reload: watch the *directory* of every file a host uses.
//!
//! Watching the file itself goes silent after the first rename, `rm` + re-create, or a
//! Kubernetes Secret update (whose events name `..data`, never `tls.crt`), so every event in
//! a watched directory marks every host with a file there as possibly changed. The reloader
//! then compares content hashes, so unrelated churn in a directory costs a read, not a swap.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};
use tracing::warn;

use crate::error::CertError;

/// Keeps the OS watches alive; dropping it stops them. One watcher serves the whole life
/// of the process: [`Watcher::set`] changes what it watches (after a configuration
/// reload) without a new inotify instance and thread each time.
pub struct Watcher<K> {
    inner: Mutex<RecommendedWatcher>,
    owners: Arc<ArcSwap<HashMap<PathBuf, Vec<K>>>>,
    /// The directories watched now.
    dirs: Mutex<Vec<PathBuf>>,
}

/// The directory that holds `file`, made absolute and canonical (events name canonical paths).
fn watched_dir(file: &Path) -> Option<PathBuf> {
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::canonicalize(&dir).ok()
}

/// Whether an event can mean new content: writes, creates, removes, renames, mode
/// changes and a close after writing; not opens, reads or a close after reading.
fn changes_content(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// Which directories to watch for `files`, and whose files each holds. Linear in the
/// number of files: 10,000 hosts sharing one certificate directory resolve that directory
/// once and list each owner once.
fn owners_of<K: Clone + Eq + Hash>(files: &[(K, PathBuf)]) -> HashMap<PathBuf, Vec<K>> {
    let mut owners: HashMap<PathBuf, Vec<K>> = HashMap::new();
    let mut listed: HashSet<(PathBuf, K)> = HashSet::new();
    // Each distinct parent is made canonical once (a syscall per path component).
    let mut resolved: HashMap<&Path, Option<PathBuf>> = HashMap::new();
    for (owner, file) in files {
        let parent = file.parent().unwrap_or(Path::new(""));
        let dir = resolved
            .entry(parent)
            .or_insert_with(|| watched_dir(file))
            .clone();
        match dir {
            Some(dir) => {
                if listed.insert((dir.clone(), owner.clone())) {
                    owners.entry(dir).or_default().push(owner.clone());
                }
            }
            None => warn!(
                "cannot watch the directory of {}: it does not exist; the periodic re-scan still covers it",
                file.display()
            ),
        }
    }
    owners
}

/// Watches the directories of `files` (each tagged with its owner, e.g. "host X's
/// certificate") and calls `notify` with the owners of a directory whenever anything in it
/// changes. `notify` runs on the watcher's thread, once per event, however many arrive: it
/// must neither block nor queue without bound (mark the owners in a set and wake the
/// reader).
pub fn watch<K, F>(files: &[(K, PathBuf)], notify: F) -> Result<Watcher<K>, CertError>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
    F: Fn(&[K]) + Send + 'static,
{
    let owners: Arc<ArcSwap<HashMap<PathBuf, Vec<K>>>> =
        Arc::new(ArcSwap::from_pointee(HashMap::new()));
    let handler = {
        let owners = owners.clone();
        move |res: notify::Result<Event>| match res {
            // Opening and reading a file (the reloader itself does) is no change; a
            // close after writing is the moment a copy is complete.
            Ok(event) if !changes_content(&event.kind) => {}
            Ok(event) => {
                let owners = owners.load();
                for path in &event.paths {
                    let dir = if owners.contains_key(path) {
                        Some(path.as_path())
                    } else {
                        path.parent()
                    };
                    if let Some(ids) = dir.and_then(|d| owners.get(d)) {
                        notify(ids);
                    }
                }
            }
            Err(e) => warn!("file watcher: {e}; the periodic re-scan still covers changes"),
        }
    };
    let inner = notify::recommended_watcher(handler).map_err(|source| CertError::Watch {
        path: PathBuf::from("."),
        source,
    })?;
    let watcher = Watcher {
        inner: Mutex::new(inner),
        owners,
        dirs: Mutex::new(Vec::new()),
    };
    watcher.set(files)?;
    Ok(watcher)
}

impl<K: Clone + Eq + Hash> Watcher<K> {
    /// Watches exactly the directories of `files` from now on.
    pub fn set(&self, files: &[(K, PathBuf)]) -> Result<(), CertError> {
        let owners = owners_of(files);
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut dirs = self.dirs.lock().unwrap_or_else(|e| e.into_inner());
        for gone in dirs.iter().filter(|d| !owners.contains_key(*d)) {
            let _ = inner.unwatch(gone);
        }
        for dir in owners.keys().filter(|d| !dirs.contains(d)) {
            inner
                .watch(dir, RecursiveMode::NonRecursive)
                .map_err(|source| CertError::Watch {
                    path: dir.clone(),
                    source,
                })?;
        }
        *dirs = owners.keys().cloned().collect();
        self.owners.store(Arc::new(owners));
        Ok(())
    }

    /// How many directories are watched.
    pub fn dirs(&self) -> usize {
        self.dirs.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    fn expect_owner(rx: &mpsc::Receiver<Vec<usize>>, owner: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(ids) if ids.contains(&owner) => return,
                Ok(_) => continue,
                Err(_) => break,
            }
        }
        panic!("no event for owner {owner}");
    }

    fn drain(rx: &mpsc::Receiver<Vec<usize>>) {
        while rx.recv_timeout(Duration::from_millis(100)).is_ok() {}
    }

    #[test]
    fn owners_are_listed_once_per_directory_in_order() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let mut files = Vec::new();
        // 3 hosts sharing one certificate and key in `a`; host 1 also has a file in `b`.
        for host in 0..3 {
            files.push((host, a.path().join("wild.pem")));
            files.push((host, a.path().join("wild-key.pem")));
        }
        files.push((1, b.path().join("deny.txt")));
        files.push((9, a.path().join("missing-dir").join("x.pem")));
        let owners = owners_of(&files);
        let a_dir = std::fs::canonicalize(a.path()).unwrap();
        let b_dir = std::fs::canonicalize(b.path()).unwrap();
        assert_eq!(owners.len(), 2, "{owners:?}");
        assert_eq!(owners[&a_dir], vec![0, 1, 2]);
        assert_eq!(owners[&b_dir], vec![1]);
    }

    #[test]
    fn sees_rewrite_rename_recreate_and_symlink_swap_every_time() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let cert = d.join("tls.crt");
        std::fs::write(&cert, "v0").unwrap();
        let other = tempfile::tempdir().unwrap();
        let (tx, rx) = mpsc::channel();
        let _w = watch(
            &[(7, cert.clone()), (9, other.path().join("x.pem"))],
            move |ids| {
                let _ = tx.send(ids.to_vec());
            },
        )
        .unwrap();
        for round in 0..2 {
            std::fs::write(&cert, format!("in place {round}")).unwrap();
            expect_owner(&rx, 7);
            drain(&rx);
            let tmp = d.join(".tls.crt.tmp");
            std::fs::write(&tmp, format!("renamed {round}")).unwrap();
            std::fs::rename(&tmp, &cert).unwrap();
            expect_owner(&rx, 7);
            drain(&rx);
            std::fs::remove_file(&cert).unwrap();
            std::fs::write(&cert, format!("re-created {round}")).unwrap();
            expect_owner(&rx, 7);
            drain(&rx);
        }
        // Reading (what the reloader does after every event) must not look like a change,
        // or every reload would trigger the next one.
        drain(&rx);
        let _ = std::fs::read(&cert).unwrap();
        assert!(
            rx.recv_timeout(Duration::from_millis(300)).is_err(),
            "a read was reported as a change"
        );
        // Kubernetes: ..data -> ..2026_11_22_xx, swapped by renaming a new symlink over it.
        for round in 0..2 {
            let ts = d.join(format!("..ts{round}"));
            std::fs::create_dir(&ts).unwrap();
            std::fs::write(ts.join("tls.key"), "k").unwrap();
            let tmp_link = d.join("..data_tmp");
            std::os::unix::fs::symlink(&ts, &tmp_link).unwrap();
            std::fs::rename(&tmp_link, d.join("..data")).unwrap();
            expect_owner(&rx, 7);
            drain(&rx);
        }
    }
}
