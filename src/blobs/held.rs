//! Blobs held aside for `jobctl prune --blobs` (see [`super`]): moved out of their address into
//! `.tmp` as `<host>-<pid>-<sha256>.<ext>.held`, then deleted or restored by their holder, or
//! restored by the sweeper once their holder is gone.

use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use super::sweep::{Sweep, owner_gone};
use super::{BlobStore, DIR_MODE};
use crate::job::parse_blob_path;

/// The suffix of a blob held aside by [`BlobStore::hold`].
pub(super) const HELD_SUFFIX: &str = ".held";

/// A blob held out of its address by [`BlobStore::hold`]. Dropped without
/// [`BlobStore::restore`] or [`BlobStore::delete`], it stays aside until its process is gone and
/// a sweep restores it.
#[derive(Debug)]
pub struct Held {
    pub sha256: String,
    /// Its content address.
    home: PathBuf,
    /// Where it waits.
    aside: PathBuf,
    pub bytes: u64,
}

impl BlobStore {
    /// Restores the blobs that a process now gone held aside (see the module docs). A daemon
    /// calls it now and then, so that an interrupted `jobctl prune --blobs` on another terminal
    /// does not keep a blob from its job until the next start.
    pub fn restore_abandoned(&self) {
        self.sweep(Sweep::Running);
    }

    /// Moves the blob at `rel_path` (`ab/cd/<sha256>.<ext>`) out of its address, into `.tmp`
    /// under a name of this process. None if there is no such file. It waits there, unseen by
    /// jobs, until [`BlobStore::restore`] or [`BlobStore::delete`]; if this process dies first,
    /// the next sweep restores it.
    pub fn hold(&self, rel_path: &str) -> io::Result<Option<Held>> {
        let Some((sha256, ext)) = parse_blob_path(rel_path) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{rel_path} is not a blob path of jobd's (ab/cd/<sha256>.<ext>)"),
            ));
        };
        let home = self.root.join(rel_path);
        let aside = self
            .tmp
            .join(format!("{}-{sha256}.{ext}{HELD_SUFFIX}", self.owner));
        let bytes = match fs::metadata(&home) {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        match fs::rename(&home, &aside) {
            Ok(()) => Ok(Some(Held {
                sha256: sha256.to_string(),
                home,
                aside,
                bytes,
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Puts a held blob back at its address. If a daemon has meanwhile stored the same bytes
    /// there, the held copy is surplus and is deleted instead.
    pub fn restore(&self, held: Held) -> io::Result<()> {
        put_back(&held.aside, &held.home)
    }

    /// Deletes a held blob for good; returns its size.
    pub fn delete(&self, held: Held) -> io::Result<u64> {
        fs::remove_file(&held.aside)?;
        Ok(held.bytes)
    }

    /// Restores a `<host>-<pid>-<sha256>.<ext>.held` file whose process is gone.
    pub(super) fn restore_if_abandoned(&self, path: &Path, when: Sweep) {
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(HELD_SUFFIX))
        else {
            return;
        };
        let Some((blob, gone)) = owner_gone(path, name, &self.owner, when) else {
            return;
        };
        let (Some(first), Some(second)) = (blob.get(..2), blob.get(2..4)) else {
            return;
        };
        let rel_path = format!("{first}/{second}/{blob}");
        if !gone || parse_blob_path(&rel_path).is_none() {
            return;
        }
        match put_back(path, &self.root.join(&rel_path)) {
            Ok(()) => log::warn!(
                "restored blob {rel_path}, held aside by a process that is gone (an interrupted \
                 jobctl prune --blobs)"
            ),
            Err(e) => log::warn!("cannot restore {} to {rel_path}: {e}", path.display()),
        }
    }
}

/// Moves a held blob back home, making its folder again if it is gone. If the same bytes are
/// there already (a daemon stored them meanwhile), the held copy is surplus.
fn put_back(aside: &Path, home: &Path) -> io::Result<()> {
    if home.exists() {
        return fs::remove_file(aside);
    }
    if let Some(dir) = home.parent() {
        DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)?;
    }
    fs::rename(aside, home)
}
