//! Writing key and certificate files safely: private modes from the first byte, never a
//! half-written file visible under its final name, never two processes both "creating" one.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::CertError;

/// Creates `dir` (and parents) with mode 0700 when missing; an existing directory is
/// left as the administrator made it.
pub fn create_private_dir(dir: &Path) -> Result<(), CertError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|source| CertError::Write {
        path: dir.to_owned(),
        source,
    })
}

/// A fresh file `path` with `mode`, refusing to replace anything already there.
pub(crate) fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), CertError> {
    let write = || -> io::Result<()> {
        let mut file = open_options(mode).create_new(true).open(path)?;
        file.write_all(bytes)?;
        file.sync_all()
    };
    write().map_err(|source| match source.kind() {
        io::ErrorKind::AlreadyExists => CertError::Exists {
            path: path.to_owned(),
        },
        _ => CertError::Write {
            path: path.to_owned(),
            source,
        },
    })
}

/// Publishes `bytes` as `path` only if no file is there yet, atomically: written to a
/// temporary file first, then hard-linked into place (link fails when the name exists,
/// so of two racing processes exactly one wins). `Ok(false)`: someone else's file was
/// there first and is left untouched.
pub(crate) fn publish_once(path: &Path, bytes: &[u8], mode: u32) -> Result<bool, CertError> {
    let tmp = temp_name(path);
    write_new(&tmp, bytes, mode)?;
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        // file systems without hard links: an exclusive create is the next best thing
        Err(_) => match write_new(path, bytes, mode) {
            Ok(()) => Ok(true),
            Err(CertError::Exists { .. }) => Ok(false),
            Err(e) => Err(e),
        },
    }
}

/// Replaces `path` atomically (temporary file, then rename), so a reader sees the old or
/// the new content, never a mix.
pub fn replace(path: &Path, bytes: &[u8], mode: u32) -> Result<(), CertError> {
    let tmp = temp_name(path);
    write_new(&tmp, bytes, mode)?;
    fs::rename(&tmp, path).map_err(|source| {
        let _ = fs::remove_file(&tmp);
        CertError::Write {
            path: path.to_owned(),
            source,
        }
    })
}

fn temp_name(path: &Path) -> PathBuf {
    let mut random = [0u8; 8];
    // a name clash only makes write_new fail; no need to handle a failed RNG specially
    let _ = aws_lc_rs::rand::fill(&mut random);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(
        ".{name}.{}.{:x}.tmp",
        std::process::id(),
        u64::from_be_bytes(random)
    ))
}

fn open_options(mode: u32) -> OpenOptions {
    let mut options = OpenOptions::new();
    options.write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    options
}
