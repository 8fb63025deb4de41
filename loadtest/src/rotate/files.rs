//! The three ways `rotate` replaces a host's certificate and key: rename over, rewrite in place, and the Kubernetes `..data` swap.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::ValueEnum;

use crate::mint::{Leaf, write_key};

/// How the files are replaced. Rotations cycle through the chosen modes in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum)]
pub enum Mode {
    /// Write a temporary file beside each, then rename it over (what careful tools do).
    Rename,
    /// Truncate and rewrite the certificate, then the key (what `cp` and editors do).
    InPlace,
    /// A Kubernetes Secret volume: `tls.crt -> ..data/tls.crt`, `..data -> ..<generation>/`,
    /// and an update renames a new `..data` symlink over the old one.
    K8s,
}

impl Mode {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Mode::Rename => "rename",
            Mode::InPlace => "in-place",
            Mode::K8s => "k8s",
        }
    }
}

/// The host's certificate and key paths, and the state of the Kubernetes layout.
pub(crate) struct Files {
    cert: PathBuf,
    key: PathBuf,
    generation: u64,
    /// The timestamped directory `..data` points at now (removed after the next swap, as
    /// the kubelet does).
    current_data_dir: Option<PathBuf>,
}

impl Files {
    pub(crate) fn new(cert: &Path, key: &Path, modes: &[Mode]) -> Result<Files> {
        for (flag, p) in [("--cert", cert), ("--key", key)] {
            if p.file_name().is_none() {
                bail!("{flag} {}: expected a file path", p.display());
            }
            let dir = parent(p);
            if !dir.is_dir() {
                bail!(
                    "{flag} {}: the directory {} does not exist",
                    p.display(),
                    dir.display()
                );
            }
        }
        if modes.contains(&Mode::K8s) && parent(cert) != parent(key) {
            bail!(
                "--modes k8s needs --cert and --key in one directory (a Secret volume); got {} and {}",
                cert.display(),
                key.display()
            );
        }
        Ok(Files {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            generation: 0,
            current_data_dir: None,
        })
    }

    /// Puts `leaf` in place by `mode`; when this returns, both files hold the new content.
    pub(crate) fn write(&mut self, mode: Mode, leaf: &Leaf) -> Result<()> {
        self.generation += 1;
        match mode {
            Mode::Rename => {
                let tmp = sibling(&self.cert, ".lt-tmp");
                std::fs::write(&tmp, &leaf.cert_pem)
                    .with_context(|| format!("{}: cannot write", tmp.display()))?;
                rename(&tmp, &self.cert)?;
                let tmp = sibling(&self.key, ".lt-tmp");
                write_key(&tmp, &leaf.key_pem)?;
                rename(&tmp, &self.key)
            }
            Mode::InPlace => {
                // A symlink left by the k8s mode would be written through into a directory
                // nobody watches (nor would a person edit a Secret volume): it goes, and a
                // plain file is created in its place (delete and re-create).
                for p in [&self.cert, &self.key] {
                    if p.symlink_metadata()
                        .is_ok_and(|m| m.file_type().is_symlink())
                    {
                        std::fs::remove_file(p)
                            .with_context(|| format!("{}: cannot remove", p.display()))?;
                    }
                }
                std::fs::write(&self.cert, &leaf.cert_pem)
                    .with_context(|| format!("{}: cannot write", self.cert.display()))?;
                write_key(&self.key, &leaf.key_pem)
            }
            Mode::K8s => self.swap_data(leaf),
        }
    }

    fn swap_data(&mut self, leaf: &Leaf) -> Result<()> {
        let dir = parent(&self.cert).to_path_buf();
        let cert_name = file_name(&self.cert);
        let key_name = file_name(&self.key);
        let data_name = format!("..lt_{}_{:06}", std::process::id(), self.generation);
        let data_dir = dir.join(&data_name);
        std::fs::create_dir(&data_dir)
            .with_context(|| format!("{}: cannot create", data_dir.display()))?;
        std::fs::write(data_dir.join(&cert_name), &leaf.cert_pem)
            .with_context(|| format!("{}: cannot write", data_dir.display()))?;
        write_key(&data_dir.join(&key_name), &leaf.key_pem)?;
        let tmp_link = dir.join("..data_tmp");
        let _ = std::fs::remove_file(&tmp_link);
        std::os::unix::fs::symlink(&data_name, &tmp_link)
            .with_context(|| format!("{}: cannot create the symlink", tmp_link.display()))?;
        rename(&tmp_link, &dir.join("..data"))?;
        // The first swap after plain files (or after another mode) turns them into links.
        for (path, name) in [(&self.cert, &cert_name), (&self.key, &key_name)] {
            let want = Path::new("..data").join(name);
            if std::fs::read_link(path).ok().as_deref() != Some(want.as_path()) {
                let link = sibling(path, ".lt-link");
                let _ = std::fs::remove_file(&link);
                std::os::unix::fs::symlink(&want, &link)
                    .with_context(|| format!("{}: cannot create the symlink", link.display()))?;
                rename(&link, path)?;
            }
        }
        if let Some(old) = self.current_data_dir.replace(data_dir) {
            let _ = std::fs::remove_dir_all(old);
        }
        Ok(())
    }
}

fn parent(p: &Path) -> &Path {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn sibling(p: &Path, suffix: &str) -> PathBuf {
    parent(p).join(format!("{}{suffix}", file_name(p)))
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to)
        .with_context(|| format!("rename {} over {}", from.display(), to.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mint::{Authority, KeyKind};

    fn leaf(ca: &Authority) -> Leaf {
        ca.leaf(&["r.localhost".into()], KeyKind::EcdsaP256)
            .unwrap()
    }

    #[test]
    fn every_mode_leaves_the_new_pair_at_the_configured_paths() {
        let dir = std::env::temp_dir().join(format!("cf-lt-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
        let ca = Authority::generate("files root").unwrap();
        let all = [Mode::Rename, Mode::InPlace, Mode::K8s];
        let mut files = Files::new(&cert, &key, &all).unwrap();
        // Each mode after each other mode, including k8s twice in a row.
        let order = [
            Mode::K8s,
            Mode::K8s,
            Mode::Rename,
            Mode::K8s,
            Mode::InPlace,
            Mode::Rename,
            Mode::InPlace,
            Mode::K8s,
            Mode::InPlace,
        ];
        for mode in order {
            let l = leaf(&ca);
            files.write(mode, &l).unwrap();
            assert_eq!(
                std::fs::read_to_string(&cert).unwrap(),
                l.cert_pem,
                "{mode:?}"
            );
            assert_eq!(
                std::fs::read_to_string(&key).unwrap(),
                l.key_pem,
                "{mode:?}"
            );
            let linked = std::fs::symlink_metadata(&cert)
                .unwrap()
                .file_type()
                .is_symlink();
            assert_eq!(linked, mode == Mode::K8s, "{mode:?}");
            // No temporary file is left, and at most one generation directory.
            let names: Vec<String> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            assert!(!names.iter().any(|n| n.contains(".lt-")), "{names:?}");
            assert!(
                names.iter().filter(|n| n.starts_with("..lt_")).count() <= 1,
                "{names:?}"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn k8s_mode_needs_cert_and_key_in_one_directory() {
        let tmp = std::env::temp_dir();
        let e = Files::new(
            &tmp.join("tls.crt"),
            &tmp.join("no-such-dir-cf-lt/tls.key"),
            &[Mode::Rename],
        )
        .err()
        .unwrap();
        assert!(format!("{e}").contains("does not exist"), "{e}");
        let sub = tmp.join(format!("cf-lt-files-sub-{}", std::process::id()));
        std::fs::create_dir_all(&sub).unwrap();
        let e = Files::new(&tmp.join("tls.crt"), &sub.join("tls.key"), &[Mode::K8s])
            .err()
            .unwrap();
        assert!(format!("{e}").contains("in one directory"), "{e}");
        assert!(Files::new(&tmp.join("tls.crt"), &sub.join("tls.key"), &[Mode::Rename]).is_ok());
        std::fs::remove_dir_all(&sub).unwrap();
    }
}
