//! The content-addressed blob store: `blob_dir/ab/<sha256>.<ext>` (see [`crate::job::Layout`]).
//!
//! A body streams into a temporary file under `blob_dir/.tmp` while it is hashed, and is then
//! *sealed*: hashed and closed, not yet durable. A whole group of sealed blobs is made durable at
//! once ([`BlobStore::advance`]): one filesystem sync makes their bytes durable, they are renamed
//! to their content addresses, and a second sync makes the names durable. So a name that exists
//! always holds complete bytes, and a group of a hundred blobs costs two flushes instead of two
//! hundred fsyncs. While groups keep coming, that is one flush per group: the sync that makes one
//! group's bytes durable also makes the previous group's names durable. Two writers of the same content race harmlessly: both renames put identical bytes at
//! the same name.
//!
//! Several daemons, on one machine or many, may share one blob_dir (NFS and the like): renames
//! are atomic on every POSIX filesystem, content addressing makes concurrent writers of the same
//! blob agree, and temporary names carry the machine's name and the process id, so neither
//! collide nor get swept by another machine's daemon.
//!
//! Deleting a blob races with a daemon that is storing the same bytes right now, so the store
//! also *holds* blobs aside for `jobctl prune --blobs` ([`BlobStore::hold`]): moved into `.tmp`
//! under a name that says whose they are and what they are, `<host>-<pid>-<sha256>.<ext>.held`,
//! then deleted or restored. If the process that holds them dies, the sweeper of the next store
//! opened on this blob_dir (a daemon's, also every minute while it runs, or jobctl's) restores
//! them: a blob is never lost because its deleter was interrupted.
//!
//! Architecture invariant: no file or directory name comes from the URL or the server; names are
//! the hash, a fixed extension per format, and our own host name, process id and counter.

use std::collections::HashSet;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use crate::job::Layout;
use crate::lock;

mod held;
mod sweep;

pub use held::Held;
use sweep::Sweep;

/// Blobs are readable by their owner's group and others, writable by the owner alone.
const FILE_MODE: u32 = 0o644;
const DIR_MODE: u32 = 0o755;
const TMP_DIR: &str = ".tmp";
/// Folders under `.tmp` that temporary files are spread over.
const TMP_SHARDS: u64 = 16;

#[derive(Debug)]
pub struct BlobStore {
    root: PathBuf,
    tmp: PathBuf,
    /// `<host>-<pid>`: the prefix of this process's temporary file names.
    owner: String,
    counter: AtomicU64,
    /// Folders `ab` known to exist (at most 256).
    known_dirs: Mutex<HashSet<String>>,
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
            owner: format!("{}-{}", crate::hostname(), std::process::id()),
            counter: AtomicU64::new(0),
            known_dirs: Mutex::new(HashSet::new()),
        };
        store.sweep(Sweep::AtOpen);
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Makes sure `root/ab` exists. Its entries become durable with the group's second sync.
    fn ensure_dir(&self, rel_dir: &str) -> io::Result<PathBuf> {
        let dir = self.root.join(rel_dir);
        if !lock(&self.known_dirs).contains(rel_dir) {
            DirBuilder::new()
                .recursive(true)
                .mode(DIR_MODE)
                .create(&dir)?;
            lock(&self.known_dirs).insert(rel_dir.to_string());
        }
        Ok(dir)
    }

    /// Flushes the filesystem that holds the blob store: every file and folder written so far is
    /// durable when it returns. One call covers a whole group of blobs.
    fn sync(&self) -> io::Result<()> {
        let root = File::open(&self.root)?;
        sync_filesystem(&root)
    }

    /// One step of the pipeline that makes groups durable with one sync each while they keep
    /// coming. A single sync makes the bytes of `sealed` durable and the names of `named` (the
    /// blobs that the previous step renamed). Returns `named`, now durable, and `sealed`, now
    /// renamed to their addresses: the next step's sync makes their names durable in turn. So a
    /// name that exists always holds complete bytes, and a name that a result reports is durable
    /// once a later step returns it. One result per blob, in order; a blob whose sync or rename
    /// failed carries its error on.
    #[allow(clippy::type_complexity)]
    pub fn advance(
        &self,
        named: Vec<io::Result<Blob>>,
        sealed: Vec<Sealed>,
    ) -> (Vec<io::Result<Blob>>, Vec<io::Result<Blob>>) {
        if named.iter().all(Result::is_err) && sealed.is_empty() {
            return (named, Vec::new());
        }
        let synced = self.sync();
        let failed = |e: &io::Error| io::Error::new(e.kind(), e.to_string());
        let durable = named
            .into_iter()
            .map(|blob| match &synced {
                Ok(()) => blob,
                Err(e) => blob.and(Err(failed(e))),
            })
            .collect();
        let renamed = sealed
            .into_iter()
            .map(|blob| match &synced {
                Ok(()) => self.place(blob),
                Err(e) => Err(failed(e)),
            })
            .collect();
        (durable, renamed)
    }

    /// Makes the folder a sealed blob will go to, and looks whether an older jobd stored the same
    /// bytes ([`Layout::Nested`]), from the worker's thread: creating folders is the slowest
    /// step on ext4, and the committer does the rest of a group's work on one thread.
    pub fn prepare(&self, blob: &mut Sealed) -> io::Result<()> {
        self.ensure_dir(blob.dir())?;
        blob.older = self.stored_before(blob);
        blob.looked = true;
        Ok(())
    }

    /// The address an older jobd gave these bytes, if they are there.
    fn stored_before(&self, blob: &Sealed) -> Option<String> {
        let ext = blob.rel_path.rsplit_once('.').map_or("", |(_, ext)| ext);
        let nested = Layout::Nested.path(&blob.sha256, ext);
        self.root.join(&nested).exists().then_some(nested)
    }

    /// Renames one sealed blob (whose bytes are durable) to its content address, unless the same
    /// bytes are there already, or at the address an older jobd gave them. An existing name holds
    /// these very bytes, durably: it was renamed there only after a sync, and the next sync covers
    /// its directory entry too.
    fn place(&self, mut blob: Sealed) -> io::Result<Blob> {
        let older = match blob.looked {
            true => blob.older.take(),
            false => self.stored_before(&blob),
        };
        let written = match older {
            Some(_) => false,
            None => {
                let rel_dir = blob.dir();
                self.ensure_dir(rel_dir)?;
                let target = self.root.join(&blob.rel_path);
                match rename_unless_taken(&blob.temp, &target) {
                    // The folder is gone although we made it (someone cleaned blob_dir up under
                    // the daemon): make it again. The next sync covers the new entries.
                    Err(e) if e.kind() == io::ErrorKind::NotFound && blob.temp.exists() => {
                        lock(&self.known_dirs).remove(rel_dir);
                        self.ensure_dir(rel_dir)?;
                        rename_unless_taken(&blob.temp, &target)?
                    }
                    other => other?,
                }
            }
        };
        blob.placed = written;
        Ok(Blob {
            sha256: std::mem::take(&mut blob.sha256),
            rel_path: older.unwrap_or_else(|| std::mem::take(&mut blob.rel_path)),
            bytes: blob.bytes,
            written,
        })
    }

    /// Starts a new blob in a temporary file of its own.
    pub fn create(&self) -> io::Result<BlobWriter> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        // Temporary files are spread over a few folders: every file created in one folder takes
        // that folder's lock, and 16 workers creating files in one folder queue for it.
        let shard = self.tmp.join(format!("{:x}", n % TMP_SHARDS));
        let path = shard.join(format!("{}-{n}.part", self.owner));
        let open = || {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(FILE_MODE)
                .open(&path)
        };
        let file = match open() {
            // A folder is missing (first use, a cleanup, a remount): make it and go on.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                DirBuilder::new()
                    .recursive(true)
                    .mode(DIR_MODE)
                    .create(&shard)?;
                open()?
            }
            other => other?,
        };
        Ok(BlobWriter {
            file,
            path,
            hasher: Sha256::new(),
            bytes: 0,
            sealed: false,
        })
    }
}

/// Renames `from` to `to` unless `to` exists; false if it does. One system call where the
/// filesystem knows `RENAME_NOREPLACE` (ext4, XFS, Btrfs, tmpfs), a look and a rename elsewhere
/// (NFS), where a twin renamed between the two replaces identical bytes.
fn rename_unless_taken(from: &Path, to: &Path) -> io::Result<bool> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        let c = |path: &Path| CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other);
        let (from_c, to_c) = (c(from)?, c(to)?);
        // SAFETY: both are NUL-terminated paths that outlive the call.
        let done = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                from_c.as_ptr(),
                libc::AT_FDCWD,
                to_c.as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        };
        if done == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EEXIST) => return Ok(false),
            Some(libc::EINVAL | libc::ENOSYS) => {}
            _ => return Err(e),
        }
    }
    if to.exists() {
        return Ok(false);
    }
    fs::rename(from, to).map(|()| true)
}

/// Flushes the whole filesystem that holds `file` (Linux `syncfs`).
#[cfg(target_os = "linux")]
fn sync_filesystem(file: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: syncfs only reads the descriptor, which `file` keeps open for the call.
    if unsafe { libc::syncfs(file.as_raw_fd()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Elsewhere, `sync` flushes every filesystem: slower, just as safe.
#[cfg(not(target_os = "linux"))]
fn sync_filesystem(_file: &File) -> io::Result<()> {
    // SAFETY: sync takes no arguments and cannot fail.
    unsafe { libc::sync() };
    Ok(())
}

/// A blob being written. Dropped without [`BlobWriter::seal`], its temporary file is removed.
pub struct BlobWriter {
    file: File,
    path: PathBuf,
    hasher: Sha256,
    bytes: u64,
    sealed: bool,
}

impl Write for BlobWriter {
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

impl BlobWriter {
    /// The temporary file, for reading a header that did not fit in memory.
    pub fn temp_path(&self) -> &Path {
        &self.path
    }

    /// A second handle on the temporary file, for ranges of the body that other requests fetch:
    /// they write at their offsets (`write_all_at`), which leaves this writer's position alone.
    pub fn ranges_file(&self) -> io::Result<File> {
        self.file.try_clone()
    }

    /// Takes in the bytes from this writer's position up to `len`, which were written at their
    /// offsets through [`BlobWriter::ranges_file`]: reads them back in order, hashes them, and
    /// shows each piece to `see` (the validator), as if they had been written here. `see` may
    /// stop it with its own error (the inner result).
    pub fn take_in<E>(
        &mut self,
        len: u64,
        buf: &mut [u8],
        mut see: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> io::Result<Result<(), E>> {
        use std::io::{Seek, SeekFrom};
        use std::os::unix::fs::FileExt;
        let file = File::open(&self.path)?;
        while self.bytes < len {
            let n = buf.len().min(usize::try_from(len - self.bytes).unwrap_or(usize::MAX));
            file.read_exact_at(&mut buf[..n], self.bytes)?;
            self.hasher.update(&buf[..n]);
            self.bytes += n as u64;
            if let Err(e) = see(&buf[..n]) {
                return Ok(Err(e));
            }
        }
        self.file.seek(SeekFrom::Start(self.bytes))?;
        Ok(Ok(()))
    }

    /// Finishes writing: the content address is known, the bytes are not durable yet.
    pub fn seal(mut self, ext: &str) -> Sealed {
        let sha256 = hex(&std::mem::take(&mut self.hasher).finalize());
        let rel_path = crate::job::blob_path(&sha256, ext);
        self.sealed = true;
        Sealed {
            temp: std::mem::take(&mut self.path),
            sha256,
            rel_path,
            bytes: self.bytes,
            placed: false,
            looked: false,
            older: None,
        }
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if !self.sealed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// A blob fully written to its temporary file, waiting for [`BlobStore::advance`]. Dropped
/// without being placed, its temporary file is removed.
#[derive(Debug)]
pub struct Sealed {
    temp: PathBuf,
    pub sha256: String,
    /// Where it will live, relative to the blob store's root.
    pub rel_path: String,
    pub bytes: u64,
    placed: bool,
    /// [`BlobStore::prepare`] ran: `older` says whether an older jobd stored these bytes.
    looked: bool,
    older: Option<String>,
}

impl Sealed {
    /// The folder it will live in, relative to the blob store's root.
    fn dir(&self) -> &str {
        &self.rel_path[..2]
    }
}

impl Drop for Sealed {
    fn drop(&mut self) {
        if !self.placed {
            let _ = fs::remove_file(&self.temp);
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
    use super::held::held_suffix;
    use super::sweep::FOREIGN_TEMP_AGE;
    use super::*;
    use crate::job::blob_path;
    use std::os::unix::fs::PermissionsExt;

    fn sha256_hex(bytes: &[u8]) -> String {
        hex(&Sha256::digest(bytes))
    }

    /// Files (not folders) under the temporary folder.
    fn temp_files(root: &Path) -> usize {
        let mut n = 0;
        for entry in fs::read_dir(root.join(TMP_DIR)).unwrap().flatten() {
            if entry.path().is_dir() {
                n += fs::read_dir(entry.path()).unwrap().count();
            } else {
                n += 1;
            }
        }
        n
    }

    fn sealed(store: &BlobStore, bytes: &[u8], ext: &str) -> Sealed {
        let mut w = store.create().unwrap();
        w.write_all(bytes).unwrap();
        w.seal(ext)
    }

    /// A group made durable alone: two syncs.
    fn make_durable(store: &BlobStore, sealed: Vec<Sealed>) -> Vec<io::Result<Blob>> {
        let (_, named) = store.advance(Vec::new(), sealed);
        store.advance(named, Vec::new()).0
    }

    fn store_one(store: &BlobStore, bytes: &[u8], ext: &str) -> Blob {
        let blob = sealed(store, bytes, ext);
        make_durable(store, vec![blob]).pop().unwrap().unwrap()
    }

    #[test]
    fn stores_by_content_and_keeps_one_copy() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let mut w = store.create().unwrap();
        w.write_all(b"hello ").unwrap();
        w.write_all(b"image").unwrap();
        let blob = make_durable(&store, vec![w.seal("png")])
            .pop()
            .unwrap()
            .unwrap();
        let sha = sha256_hex(b"hello image");
        assert_eq!(blob.sha256, sha);
        assert_eq!(
            blob.rel_path,
            format!("{}/{sha}.png", &sha[..2])
        );
        assert!(blob.written);
        assert_eq!(
            fs::read(dir.path().join(&blob.rel_path)).unwrap(),
            b"hello image"
        );

        let second = store_one(&store, b"hello image", "png");
        assert!(!second.written);
        assert_eq!(second.rel_path, blob.rel_path);
        assert_eq!(temp_files(dir.path()), 0);
    }

    /// The pipeline: a step renames its group but reports it only from the next step, whose
    /// single sync makes those names durable; every result comes back once, in order.
    #[test]
    fn each_step_settles_the_previous_group_and_names_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let (settled, named) = store.advance(
            Vec::new(),
            vec![sealed(&store, b"one", "png"), sealed(&store, b"two", "gif")],
        );
        assert!(settled.is_empty());
        let named: Vec<Blob> = named.into_iter().map(Result::unwrap).collect();
        for blob in &named {
            assert!(dir.path().join(&blob.rel_path).exists(), "not renamed yet");
        }
        let (settled, next) = store.advance(
            named.into_iter().map(Ok).collect(),
            vec![sealed(&store, b"one", "png")],
        );
        let settled: Vec<String> = settled.into_iter().map(|b| b.unwrap().sha256).collect();
        assert_eq!(settled, [sha256_hex(b"one"), sha256_hex(b"two")]);
        let twin = next.into_iter().next().unwrap().unwrap();
        assert!(!twin.written, "the first group's name was found");
        let (settled, next) = store.advance(vec![Ok(twin)], Vec::new());
        assert_eq!(settled.len(), 1);
        assert!(next.is_empty());
        // Nothing to sync: nothing happens, and errors pass through untouched.
        let failed = io::Error::other("full");
        let (settled, next) = store.advance(vec![Err(failed)], Vec::new());
        assert_eq!(settled[0].as_ref().unwrap_err().to_string(), "full");
        assert!(next.is_empty());
        assert_eq!(temp_files(dir.path()), 0);
    }

    #[test]
    fn an_abandoned_blob_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let mut w = store.create().unwrap();
        w.write_all(b"half a body").unwrap();
        drop(w);
        // Sealed but never made durable (its job was given back): gone too.
        drop(sealed(&store, b"a whole body", "png"));
        assert_eq!(temp_files(dir.path()), 0);
    }

    #[test]
    fn a_group_places_each_blob_once_even_with_twins_inside() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let group = vec![
            sealed(&store, b"one", "png"),
            sealed(&store, b"two", "jpg"),
            sealed(&store, b"one", "png"),
        ];
        let placed: Vec<Blob> = make_durable(&store, group)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            placed.iter().map(|b| b.written).collect::<Vec<_>>(),
            [true, true, false]
        );
        assert_eq!(placed[0].rel_path, placed[2].rel_path);
        for blob in &placed {
            assert_eq!(
                sha256_hex(&fs::read(dir.path().join(&blob.rel_path)).unwrap()),
                blob.sha256
            );
        }
        assert_eq!(temp_files(dir.path()), 0);
    }

    #[test]
    fn stale_temp_files_of_dead_processes_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join(TMP_DIR);
        fs::create_dir_all(&tmp).unwrap();
        // pid_max on Linux is at most 2^22, so this process cannot exist.
        fs::write(tmp.join("99999999-0.part"), b"x").unwrap();
        fs::create_dir_all(tmp.join("3")).unwrap();
        fs::write(tmp.join("3").join("99999999-3.part"), b"x").unwrap();
        let live = format!("{}-0.part", std::os::unix::process::parent_id());
        fs::write(tmp.join(&live), b"x").unwrap();
        // The same with this machine's name, as this version writes them.
        let host = crate::hostname();
        fs::write(tmp.join(format!("{host}-99999999-1.part")), b"x").unwrap();
        let live_here = format!("{host}-{}-1.part", std::os::unix::process::parent_id());
        fs::write(tmp.join(&live_here), b"x").unwrap();
        // Another machine's: its processes cannot be seen from here, so only age counts.
        let foreign = "other-host.example-99999999-2.part";
        fs::write(tmp.join(foreign), b"x").unwrap();
        let old_foreign = tmp.join("other-host.example-99999999-3.part");
        File::create(&old_foreign)
            .unwrap()
            .set_modified(std::time::SystemTime::now() - 2 * FOREIGN_TEMP_AGE)
            .unwrap();
        BlobStore::open(dir.path()).unwrap();
        let mut left: Vec<_> = fs::read_dir(&tmp)
            .unwrap()
            .flatten()
            .filter(|e| e.path().is_file())
            .map(|e| e.file_name().into_string().unwrap())
            .collect();
        left.sort();
        let mut expected = vec![live, live_here, foreign.to_string()];
        expected.sort();
        assert_eq!(left, expected);
        assert_eq!(
            fs::read_dir(tmp.join("3")).unwrap().count(),
            0,
            "a shard was not swept"
        );
    }

    /// Regression (issue 12): after `rm -rf blob_dir` under a running daemon, every image whose
    /// `ab/cd` folder the daemon had made before failed with "No such file or directory" until a
    /// restart: the cache of known folders was never told.
    #[test]
    fn folders_that_vanish_are_made_again() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("blobs");
        let store = BlobStore::open(&root).unwrap();
        let first = store_one(&store, b"an image", "png");
        fs::remove_dir_all(&root).unwrap();
        // The same folder again (the same bytes), prepared from a worker as the daemon does.
        let mut again = sealed(&store, b"an image", "png");
        store.prepare(&mut again).unwrap();
        let placed = make_durable(&store, vec![again]).pop().unwrap().unwrap();
        assert_eq!(placed.rel_path, first.rel_path);
        assert_eq!(fs::read(root.join(&placed.rel_path)).unwrap(), b"an image");
        // And with the folder gone between the worker's preparation and the group's rename.
        fs::remove_dir_all(&root).unwrap();
        let mut late = sealed(&store, b"another image", "png");
        store.prepare(&mut late).unwrap();
        fs::remove_dir_all(root.join(&late.rel_path[..2])).unwrap();
        let placed = make_durable(&store, vec![late]).pop().unwrap().unwrap();
        assert_eq!(
            fs::read(root.join(&placed.rel_path)).unwrap(),
            b"another image"
        );
    }

    #[test]
    fn held_blobs_are_restored_or_deleted_and_a_twin_stored_meanwhile_wins() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let kept = store_one(&store, b"kept", "png");
        let gone = store_one(&store, b"gone", "gif");
        let twin = store_one(&store, b"twin", "png");
        let home = |blob: &Blob| dir.path().join(&blob.rel_path);

        let held = store.hold(&kept.rel_path).unwrap().unwrap();
        assert!(!home(&kept).exists(), "still visible at its address");
        assert_eq!(held.sha256, kept.sha256);
        store.restore(held).unwrap();
        assert_eq!(fs::read(home(&kept)).unwrap(), b"kept");

        let held = store.hold(&gone.rel_path).unwrap().unwrap();
        assert_eq!(store.delete(held).unwrap(), 4);
        assert!(!home(&gone).exists());
        assert!(
            store.hold(&gone.rel_path).unwrap().is_none(),
            "nothing to hold"
        );

        // A daemon stores the same bytes while they are held: the held copy is surplus.
        let held = store.hold(&twin.rel_path).unwrap().unwrap();
        store_one(&store, b"twin", "png");
        store.restore(held).unwrap();
        assert_eq!(fs::read(home(&twin)).unwrap(), b"twin");
        assert_eq!(temp_files(dir.path()), 0);
        assert!(store.hold("../../etc/passwd").is_err());
    }

    /// Regression (issue 12): an interrupted `jobctl prune --blobs` left blobs aside under names
    /// the sweeper did not know, for ever, even those a job had meanwhile recorded as done.
    #[test]
    fn blobs_held_by_a_process_now_gone_are_restored() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let blobs: Vec<Blob> = [&b"dead"[..], b"live", b"foreign", b"old foreign"]
            .iter()
            .map(|bytes| store_one(&store, bytes, "png"))
            .collect();
        let tmp = dir.path().join(TMP_DIR);
        let host = crate::hostname();
        let parent = std::os::unix::process::parent_id();
        let owners = [
            format!("{host}-99999999"),
            format!("{host}-{parent}"),
            "other-host.example-99999999".to_string(),
            "other-host.example-99999998".to_string(),
        ];
        for (blob, owner) in blobs.iter().zip(&owners) {
            let name = blob.rel_path.rsplit('/').next().unwrap();
            fs::rename(
                dir.path().join(&blob.rel_path),
                tmp.join(format!("{owner}-{name}{}", held_suffix(Layout::Flat))),
            )
            .unwrap();
        }
        File::options()
            .write(true)
            .open(tmp.join(format!(
                "{}-{}{}",
                owners[3],
                blobs[3].rel_path.rsplit('/').next().unwrap(),
                held_suffix(Layout::Flat)
            )))
            .unwrap()
            .set_modified(std::time::SystemTime::now() - 2 * FOREIGN_TEMP_AGE)
            .unwrap();
        // The content folder went too: it is made again.
        fs::remove_dir_all(dir.path().join(&blobs[0].rel_path[..2])).unwrap();
        store.restore_abandoned();
        let back: Vec<bool> = blobs
            .iter()
            .map(|b| dir.path().join(&b.rel_path).exists())
            .collect();
        assert_eq!(back, [true, false, false, true]);
        assert_eq!(
            temp_files(dir.path()),
            2,
            "the live and the young foreign stay held"
        );
    }

    /// A store written by jobd before issue 16 (`ab/cd/<sha256>.<ext>`): its blobs are found
    /// before the same bytes are stored again, and can be held and restored at their own address,
    /// also by the sweeper from a `.held` file an older jobctl left.
    #[test]
    fn blobs_at_the_older_nested_addresses_are_found_held_and_restored() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let sha = sha256_hex(b"an old image");
        let nested = Layout::Nested.path(&sha, "png");
        assert_eq!(nested, format!("{}/{}/{sha}.png", &sha[..2], &sha[2..4]));
        let home = dir.path().join(&nested);
        fs::create_dir_all(home.parent().unwrap()).unwrap();
        fs::write(&home, b"an old image").unwrap();

        let again = store_one(&store, b"an old image", "png");
        assert!(!again.written);
        assert_eq!(again.rel_path, nested);
        assert!(!dir.path().join(blob_path(&sha, "png")).exists());
        assert_eq!(temp_files(dir.path()), 0);
        // Another type for the same bytes is another address.
        assert!(store_one(&store, b"an old image", "gif").written);

        let held = store.hold(&nested).unwrap().unwrap();
        assert!(!home.exists());
        store.restore(held).unwrap();
        assert_eq!(fs::read(&home).unwrap(), b"an old image");

        // Held by a jobctl that died, in an older version's naming.
        let aside = dir
            .path()
            .join(TMP_DIR)
            .join(format!("{}-99999999-{sha}.png.held", crate::hostname()));
        fs::rename(&home, &aside).unwrap();
        BlobStore::open(dir.path()).unwrap();
        assert_eq!(fs::read(&home).unwrap(), b"an old image");
        assert!(!aside.exists());
    }

    #[test]
    fn a_fresh_store_makes_one_level_of_at_most_256_folders() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        for i in 0..600u32 {
            store_one(&store, &i.to_le_bytes(), "png");
        }
        let folders: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().into_string().unwrap())
            .filter(|name| name != TMP_DIR)
            .collect();
        assert!(folders.len() <= 256 && folders.len() > 200, "{}", folders.len());
        for folder in folders {
            for entry in fs::read_dir(dir.path().join(&folder)).unwrap().flatten() {
                assert!(entry.path().is_file(), "{} is a folder", entry.path().display());
            }
        }
    }

    #[test]
    fn nothing_is_world_writable() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let blob = store_one(&store, b"perm", "gif");
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
