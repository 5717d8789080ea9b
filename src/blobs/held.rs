//! Blobs held aside for `jobctl prune --blobs` (see [`super`]): moved out of their address into
//! `.tmp` as `<host>-<pid>-<sha256>.<ext>.held1` (or `.held`, for a blob at an address of the
//! older [`Layout::Nested`], as older versions named every held blob), then deleted or restored
//! by their holder, or restored by the sweeper once their holder is gone.

use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use super::sweep::{Sweep, owner_gone};
use super::{BlobStore, DIR_MODE};
use crate::job::{Layout, parse_blob_path};

/// The suffix of a blob held aside by [`BlobStore::hold`], which says which address it goes back
/// to.
pub(super) fn held_suffix(layout: Layout) -> &'static str {
    match layout {
        Layout::Flat => ".held1",
        Layout::Nested => ".held",
    }
}

/// The name of a held blob without its suffix, and the layout the suffix says; None for files
/// that are not held blobs.
pub(super) fn held_name(name: &str) -> Option<(&str, Layout)> {
    Layout::ALL.into_iter().find_map(|layout| {
        name.strip_suffix(held_suffix(layout))
            .map(|name| (name, layout))
    })
}

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

    /// Moves the blob at `rel_path` (of either [`Layout`]) out of its address, into `.tmp` under a
    /// name of this process. None if there is no such file. It waits there, unseen by
    /// jobs, until [`BlobStore::restore`] or [`BlobStore::delete`]; if this process dies first,
    /// the next sweep restores it.
    pub fn hold(&self, rel_path: &str) -> io::Result<Option<Held>> {
        let Some((sha256, ext, layout)) = parse_blob_path(rel_path) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{rel_path} is not a blob path of jobd's (ab/<sha256>.<ext>)"),
            ));
        };
        let home = self.root.join(rel_path);
        let aside = self.tmp.join(format!(
            "{}-{sha256}.{ext}{}",
            self.owner,
            held_suffix(layout)
        ));
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

    /// Restores a `<host>-<pid>-<sha256>.<ext>.held1` (or `.held`) file whose process is gone.
    pub(super) fn restore_if_abandoned(&self, path: &Path, when: Sweep) {
        let Some((name, layout)) = path.file_name().and_then(|n| n.to_str()).and_then(held_name)
        else {
            return;
        };
        let Some((blob, gone)) = owner_gone(path, name, &self.owner, when) else {
            return;
        };
        let Some((sha256, ext)) = blob.split_once('.').filter(|(sha, _)| sha.len() == 64) else {
            return;
        };
        let rel_path = layout.path(sha256, ext);
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
