//! The sweeper of `.tmp`: temporary files of processes that are gone are removed (at open), and
//! blobs they held aside are restored (at open, and now and then while a daemon runs).

use std::fs;
use std::path::Path;
use std::time::Duration;

use super::BlobStore;
use super::held::held_name;

/// Temporary files of another machine are swept once they are this old: that daemon died, or it
/// would have finished or given up on them long ago (attempts have a deadline of minutes). The
/// same age applies to another machine's held blobs (jobctl's wait is bounded to minutes).
pub(super) const FOREIGN_TEMP_AGE: Duration = Duration::from_secs(24 * 3600);

impl BlobStore {
    /// At open: removes `.part` files whose process is gone, in `.tmp` and its shard folders,
    /// and restores held blobs whose process is gone. While running: only the latter. Files of
    /// live processes (other daemons, a jobctl at work) are left alone. Another machine's files
    /// count as abandoned only when a day old, since its processes cannot be seen from here.
    pub(super) fn sweep(&self, when: Sweep) {
        let Ok(entries) = fs::read_dir(&self.tmp) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if when == Sweep::AtOpen {
                    for inner in fs::read_dir(&path).into_iter().flatten().flatten() {
                        remove_if_stale(&inner.path(), &self.owner);
                    }
                }
            } else if path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| held_name(n).is_some())
            {
                self.restore_if_abandoned(&path, when);
            } else if when == Sweep::AtOpen {
                remove_if_stale(&path, &self.owner);
            }
        }
    }
}

/// When a sweep runs: at open, this process owns nothing yet, so files bearing its pid are a
/// dead process's whose pid was reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sweep {
    AtOpen,
    Running,
}

/// For a file named `<host>-<pid>-<rest>` (the name without its suffix): `<rest>`, and whether
/// the process that owns it is gone. None for names of another shape. A name without a host is
/// taken as this machine's.
pub(super) fn owner_gone<'a>(
    path: &Path,
    name: &'a str,
    owner: &str,
    when: Sweep,
) -> Option<(&'a str, bool)> {
    let mut parts = name.rsplitn(3, '-');
    let rest = parts.next()?;
    let pid = parts.next()?.parse::<u32>().ok()?;
    let ours = owner.rsplit_once('-').map(|(host, _)| host);
    let gone = match parts.next() {
        Some(host) if Some(host) != ours => fs::metadata(path)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > FOREIGN_TEMP_AGE)),
        _ if pid == std::process::id() => when == Sweep::AtOpen,
        _ => !process_alive(pid),
    };
    Some((rest, gone))
}

/// Removes a `<host>-<pid>-<n>.part` file whose process is gone (or is this one, starting
/// afresh).
pub(super) fn remove_if_stale(path: &Path, owner: &str) {
    let Some(stem) = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".part"))
    else {
        return;
    };
    if let Some((_, true)) = owner_gone(path, stem, owner, Sweep::AtOpen) {
        match fs::remove_file(path) {
            Ok(()) => log::info!("removed stale temporary file {}", path.display()),
            Err(e) => log::warn!("cannot remove {}: {e}", path.display()),
        }
    }
}

fn process_alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}
