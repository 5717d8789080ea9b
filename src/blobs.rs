//! The content-addressed blob store: `blob_dir/ab/cd/<sha256>.<ext>`.
//!
//! A body streams into a temporary file under `blob_dir/.tmp` while it is hashed; the file is
//! fsynced, then renamed to its content address and the directory fsynced, so a name that exists
//! always holds complete, durable bytes. Two writers of the same content race harmlessly: both
//! renames put identical bytes at the same name.
//!
//! Architecture invariant: no file or directory name comes from the URL or the server; names are
//! the hash, a fixed extension per format, and our own process id and counter.

use std::collections::HashSet;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use crate::worker::lock;

/// Blobs are readable by their owner's group and others, writable by the owner alone.
const FILE_MODE: u32 = 0o644;
const DIR_MODE: u32 = 0o755;
const TMP_DIR: &str = ".tmp";

#[derive(Debug)]
pub struct BlobStore {
    root: PathBuf,
    tmp: PathBuf,
    counter: AtomicU64,
    /// Folders `ab/cd` known to exist durably (at most 65,536).
    durable_dirs: Mutex<HashSet<String>>,
}

/// A blob in its final place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    pub sha256: String,
    /// Relative to the blob store's root.
    pub rel_path: String,
    pub bytes: u64,
    /// False when identical bytes were already stored and this copy was dropped.
    pub written: bool,
}

impl BlobStore {
    /// Opens the store, creating its folders. Temporary files left by dead processes are removed.
    pub fn open(root: &Path) -> io::Result<BlobStore> {
        let tmp = root.join(TMP_DIR);
        DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(&tmp)?;
        let store = BlobStore {
            root: root.to_path_buf(),
            tmp,
            counter: AtomicU64::new(0),
            durable_dirs: Mutex::new(HashSet::new()),
        };
        store.sweep_stale_temp_files();
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Makes sure `root/ab/cd` exists and that its entries in `root/ab` and `root` are on disk.
    /// Both folders' parents are fsynced the first time this process uses them, created or not:
    /// a crashed process may have left a folder whose own entry never reached the disk.
    fn durable_dir(&self, rel_dir: &str) -> io::Result<PathBuf> {
        let dir = self.root.join(rel_dir);
        if lock(&self.durable_dirs).contains(rel_dir) {
            return Ok(dir);
        }
        let top = dir.parent().unwrap_or(&self.root).to_path_buf();
        for (folder, parent) in [(&top, &self.root), (&dir, &top)] {
            match DirBuilder::new().mode(DIR_MODE).create(folder) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            File::open(parent)?.sync_all()?;
        }
        lock(&self.durable_dirs).insert(rel_dir.to_string());
        Ok(dir)
    }

    /// Starts a new blob in a temporary file of its own.
    pub fn create(&self) -> io::Result<BlobWriter<'_>> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let path = self.tmp.join(format!("{}-{n}.part", std::process::id()));
        let open = || {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(FILE_MODE)
                .open(&path)
        };
        let file = match open() {
            // Someone removed the folder (a cleanup, a remount): make it again and go on.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                DirBuilder::new()
                    .recursive(true)
                    .mode(DIR_MODE)
                    .create(&self.tmp)?;
                open()?
            }
            other => other?,
        };
        Ok(BlobWriter {
            store: self,
            file,
            path,
            hasher: Sha256::new(),
            bytes: 0,
            finished: false,
        })
    }

    /// Removes `.part` files whose process is gone. Files of live processes (other daemons on the
    /// same blob_dir) are left alone: they are being written right now.
    fn sweep_stale_temp_files(&self) {
        let Ok(entries) = fs::read_dir(&self.tmp) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".part"))
                .and_then(|n| n.split('-').next())
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            if pid == std::process::id() || !process_alive(pid) {
                match fs::remove_file(entry.path()) {
                    Ok(()) => log::info!("removed stale temporary file {}", entry.path().display()),
                    Err(e) => log::warn!("cannot remove {}: {e}", entry.path().display()),
                }
            }
        }
    }
}

fn process_alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// A blob being written. Dropped without [`BlobWriter::finish`], its temporary file is removed.
pub struct BlobWriter<'a> {
    store: &'a BlobStore,
    file: File,
    path: PathBuf,
    hasher: Sha256,
    bytes: u64,
    finished: bool,
}

impl Write for BlobWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl BlobWriter<'_> {
    /// The temporary file, for reading a header that did not fit in memory.
    pub fn temp_path(&self) -> &Path {
        &self.path
    }

    /// Makes the blob durable at its content address: fsync the file, rename it into place,
    /// fsync the directory. If the same bytes are already stored, this copy is dropped.
    pub fn finish(mut self, ext: &str) -> io::Result<Blob> {
        let sha256 = hex(&std::mem::take(&mut self.hasher).finalize());
        let rel_dir = format!("{}/{}", &sha256[..2], &sha256[2..4]);
        let rel_path = format!("{rel_dir}/{sha256}.{ext}");
        let dir = self.store.durable_dir(&rel_dir)?;
        let target = self.store.root.join(&rel_path);
        let written = !target.exists();
        if written {
            self.file.sync_all()?;
            fs::rename(&self.path, &target)?;
        }
        // Also when the name already existed: the process that renamed it there may have died
        // before its own directory fsync.
        File::open(&dir)?.sync_all()?;
        self.finished = written;
        Ok(Blob {
            sha256,
            rel_path,
            bytes: self.bytes,
            written,
        })
    }
}

impl Drop for BlobWriter<'_> {
    fn drop(&mut self) {
        if !self.finished {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn sha256_hex(bytes: &[u8]) -> String {
        hex(&Sha256::digest(bytes))
    }

    #[test]
    fn stores_by_content_and_keeps_one_copy() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let mut w = store.create().unwrap();
        w.write_all(b"hello ").unwrap();
        w.write_all(b"image").unwrap();
        let blob = w.finish("png").unwrap();
        let sha = sha256_hex(b"hello image");
        assert_eq!(blob.sha256, sha);
        assert_eq!(
            blob.rel_path,
            format!("{}/{}/{sha}.png", &sha[..2], &sha[2..4])
        );
        assert!(blob.written);
        assert_eq!(
            fs::read(dir.path().join(&blob.rel_path)).unwrap(),
            b"hello image"
        );

        let mut again = store.create().unwrap();
        again.write_all(b"hello image").unwrap();
        let second = again.finish("png").unwrap();
        assert!(!second.written);
        assert_eq!(second.rel_path, blob.rel_path);
        assert_eq!(fs::read_dir(dir.path().join(TMP_DIR)).unwrap().count(), 0);
    }

    #[test]
    fn an_abandoned_blob_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let mut w = store.create().unwrap();
        w.write_all(b"half a body").unwrap();
        drop(w);
        assert_eq!(fs::read_dir(dir.path().join(TMP_DIR)).unwrap().count(), 0);
    }

    #[test]
    fn stale_temp_files_of_dead_processes_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join(TMP_DIR);
        fs::create_dir_all(&tmp).unwrap();
        // pid_max on Linux is at most 2^22, so this process cannot exist.
        fs::write(tmp.join("99999999-0.part"), b"x").unwrap();
        let live = format!("{}-0.part", std::os::unix::process::parent_id());
        fs::write(tmp.join(&live), b"x").unwrap();
        BlobStore::open(dir.path()).unwrap();
        let left: Vec<_> = fs::read_dir(&tmp)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from(live)]);
    }

    #[test]
    fn nothing_is_world_writable() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let mut w = store.create().unwrap();
        w.write_all(b"perm").unwrap();
        let blob = w.finish("gif").unwrap();
        let mut path = dir.path().join(&blob.rel_path);
        loop {
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o002, 0, "{} is world-writable", path.display());
            if !path.pop() || path == dir.path() {
                break;
            }
        }
    }
}
