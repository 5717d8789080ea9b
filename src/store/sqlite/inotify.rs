//! Wake-ups from the database's own files (Linux inotify): a commit by any process writes the
//! write-ahead log (or, with a rollback journal, the database file), and the kernel says so at
//! once. The watcher then confirms with `data_version`, so a wake-up for something else costs one
//! cheap read and nothing more.
//!
//! The folder is watched rather than the files: the log is created by the first writer and may
//! be deleted by the last one, and a watch on a deleted file sees nothing more.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

/// An inotify watch on the folder of a database, for changes to the database and its log.
pub(super) struct FileChanges {
    fd: OwnedFd,
    /// The names whose changes count: the database, `-wal` and `-journal`.
    names: [Vec<u8>; 3],
}

impl FileChanges {
    /// Watches the folder of `db` for writes to it, its log or its journal.
    pub(super) fn watch(db: &Path) -> io::Result<FileChanges> {
        let name = db
            .file_name()
            .ok_or_else(|| io::Error::other("the database path names no file"))?
            .as_bytes();
        let dir = match db.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let dir = CString::new(dir.as_os_str().as_bytes()).map_err(io::Error::other)?;
        // SAFETY: plain system calls on a descriptor this function owns; the path is a valid C
        // string for the duration of the call.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by inotify_init1 and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let mask = libc::IN_MODIFY | libc::IN_CREATE | libc::IN_MOVED_TO | libc::IN_CLOSE_WRITE;
        // SAFETY: as above.
        if unsafe { libc::inotify_add_watch(fd.as_raw_fd(), dir.as_ptr(), mask) } < 0 {
            return Err(io::Error::last_os_error());
        }
        let with = |suffix: &str| [name, suffix.as_bytes()].concat();
        Ok(FileChanges {
            fd,
            names: [name.to_vec(), with("-wal"), with("-journal")],
        })
    }

    /// Waits up to `wait` for a write to the database's files; true if there was one. Every event
    /// that has arrived is taken, so a burst of writes is one wake-up.
    pub(super) fn wait(&self, wait: Duration) -> io::Result<bool> {
        let mut seen = self.take()?;
        if !seen {
            let mut poll = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = libc::c_int::try_from(wait.as_millis()).unwrap_or(libc::c_int::MAX);
            // SAFETY: one pollfd, valid for the call.
            match unsafe { libc::poll(&mut poll, 1, ms) } {
                n if n < 0 => {
                    let e = io::Error::last_os_error();
                    if e.kind() != io::ErrorKind::Interrupted {
                        return Err(e);
                    }
                }
                _ => seen = self.take()?,
            }
        }
        Ok(seen)
    }

    /// Reads every pending event; true if one was about the database's files.
    fn take(&self) -> io::Result<bool> {
        let mut seen = false;
        // Aligned for inotify_event; room for many events per read.
        let mut buf = [0u64; 512];
        loop {
            // SAFETY: reads into a buffer of the given size that this function owns.
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    std::mem::size_of_val(&buf),
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                return match e.kind() {
                    io::ErrorKind::WouldBlock => Ok(seen),
                    io::ErrorKind::Interrupted => continue,
                    _ => Err(e),
                };
            }
            // SAFETY: the kernel wrote `n` bytes into `buf`.
            let bytes = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), n as usize) };
            seen |= self.concern(bytes);
        }
    }

    /// Whether any of the events in `bytes` names one of the database's files.
    fn concern(&self, mut bytes: &[u8]) -> bool {
        const HEADER: usize = std::mem::size_of::<libc::inotify_event>();
        let mut seen = false;
        while bytes.len() >= HEADER {
            // The name's length is the header's last field (wd, mask, cookie, len: 4 bytes each).
            let len = u32::from_ne_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]) as usize;
            let end = (HEADER + len).min(bytes.len());
            let name = &bytes[HEADER..end];
            let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
            let mask = u32::from_ne_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
            // Overflow: events were lost, so one of them may have been ours.
            seen |= mask & libc::IN_Q_OVERFLOW != 0 || self.names.iter().any(|n| n == name);
            bytes = &bytes[end..];
        }
        seen
    }
}

impl std::fmt::Debug for FileChanges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileChanges")
            .field("db", &OsStr::from_bytes(&self.names[0]))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::FileChanges;
    use std::time::{Duration, Instant};

    #[test]
    fn a_write_to_the_log_wakes_at_once_and_other_files_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("q.db");
        let changes = FileChanges::watch(&db).unwrap();
        assert!(!changes.wait(Duration::from_millis(20)).unwrap(), "nothing yet");
        std::fs::write(dir.path().join("other.log"), b"x").unwrap();
        assert!(!changes.wait(Duration::from_millis(20)).unwrap(), "another file");
        // Whether the write comes before the wait begins or during it, the wait sees it.
        let writer = std::thread::spawn({
            let wal = dir.path().join("q.db-wal");
            move || std::fs::write(wal, b"frame").unwrap()
        });
        let start = Instant::now();
        assert!(changes.wait(Duration::from_secs(10)).unwrap());
        assert!(start.elapsed() < Duration::from_secs(5), "woke at the write");
        writer.join().unwrap();
        // The write's last events (its close) may come just after; then all is quiet.
        let mut wakes = 0;
        while changes.wait(Duration::from_millis(50)).unwrap() {
            wakes += 1;
            assert!(wakes < 10, "a write that never stops waking");
        }
    }
}
