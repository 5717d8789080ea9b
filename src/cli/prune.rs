//! `jobctl prune`: deletes old finished jobs with their attempts (in batches, through
//! `Queue::prune`), and with `--blobs` the blob files that no remaining job refers to.
//!
//! Deleting a blob races with a daemon that is storing the same bytes right now: it may have seen
//! the file exist, dropped its own copy, and be about to record `done` with that name. So a blob
//! is first moved aside into `blob_dir/.tmp`; every attempt running at that moment is allowed
//! to end; then a blob that a job refers to by now is moved back, and the rest are deleted. A
//! job recorded in that window misses its file for moments, never for good.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;

use super::output::human_bytes;
use super::{Failure, print_json};
use crate::store::{Store, StoreError, now_ms};

/// Jobs deleted per transaction.
const PRUNE_BATCH: usize = 1_000;
const FINISHED: [&str; 3] = ["done", "failed", "cancelled"];

pub fn run(
    store: &dyn Store,
    blob_dir: &Path,
    older_than: i64,
    states: &[String],
    blobs: bool,
    as_json: bool,
) -> Result<(), Failure> {
    let mut states: Vec<&str> = states.iter().map(String::as_str).collect();
    if states.is_empty() {
        states = FINISHED.to_vec();
    }
    states.sort_unstable();
    states.dedup();
    let before = now_ms().saturating_sub(older_than);
    let mut candidates = Candidates::default();
    if blobs {
        store.blobs_of_finished(before, &states, &mut |path| candidates.add(path))?;
    }
    let pruned = store.prune(before, &states, PRUNE_BATCH)?;
    let removed = if blobs {
        remove_unreferenced(store, blob_dir, candidates)?
    } else {
        Removed::default()
    };
    if as_json {
        print_json(&json!({
            "pruned": pruned,
            "blobs_removed": removed.files,
            "blob_bytes_removed": removed.bytes,
            "blobs_kept": removed.kept,
        }));
    } else {
        println!(
            "pruned {pruned} jobs ({}) and their attempts",
            states.join(", ")
        );
        if blobs {
            println!(
                "removed {} blob files ({}); kept {} that other jobs use",
                removed.files,
                human_bytes(removed.bytes as i64),
                removed.kept
            );
        }
    }
    Ok(())
}

/// The blobs of the jobs about to be pruned, compactly: 33 bytes each, whatever their number.
#[derive(Default)]
struct Candidates {
    blobs: Vec<([u8; 32], u8)>,
    /// File extensions, indexed by the u8 above (jobd has a dozen).
    exts: Vec<String>,
}

impl Candidates {
    /// Takes `ab/cd/<sha256>.<ext>` as jobd writes it; anything else is no path of ours and is
    /// never deleted.
    fn add(&mut self, blob_path: &str) {
        let Some((sha, ext)) = parse_blob_path(blob_path) else {
            return;
        };
        let idx = match self.exts.iter().position(|e| e == ext) {
            Some(i) => i,
            None if self.exts.len() < 256 => {
                self.exts.push(ext.to_string());
                self.exts.len() - 1
            }
            None => return,
        };
        self.blobs.push((sha, idx as u8));
    }
}

fn parse_blob_path(path: &str) -> Option<([u8; 32], &str)> {
    let (dirs, file) = path.rsplit_once('/')?;
    let (hex, ext) = file.split_once('.')?;
    let ext_ok = (1..=8).contains(&ext.len())
        && ext
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if hex.len() != 64 || !ext_ok || dirs != format!("{}/{}", &hex[..2], &hex[2..4]) {
        return None;
    }
    let mut sha = [0u8; 32];
    for (i, byte) in sha.iter_mut().enumerate() {
        let pair = hex.get(2 * i..2 * i + 2)?;
        if pair.bytes().any(|b| b.is_ascii_uppercase()) {
            return None;
        }
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some((sha, ext))
}

#[derive(Default)]
struct Removed {
    files: u64,
    bytes: u64,
    /// Candidates that a remaining job still refers to.
    kept: u64,
}

/// A blob moved aside: its sha256, where it lives, and where it waits.
struct Aside {
    sha: String,
    home: PathBuf,
    waiting: PathBuf,
}

fn remove_unreferenced(
    store: &dyn Store,
    blob_dir: &Path,
    mut candidates: Candidates,
) -> Result<Removed, Failure> {
    candidates.blobs.sort_unstable();
    candidates.blobs.dedup();
    let tmp = blob_dir.join(".tmp");
    fs::create_dir_all(&tmp)
        .map_err(|e| Failure::Other(format!("cannot create {}: {e}", tmp.display())))?;
    let mut removed = Removed::default();
    let mut aside = Vec::new();
    for (sha, ext) in &candidates.blobs {
        let sha: String = sha.iter().map(|b| format!("{b:02x}")).collect();
        if store.blob_referenced(&sha)? {
            removed.kept += 1;
            continue;
        }
        let ext = &candidates.exts[usize::from(*ext)];
        let home = blob_dir.join(format!("{}/{}/{sha}.{ext}", &sha[..2], &sha[2..4]));
        // Named like the daemon's temporary files, so that if jobctl dies here a daemon
        // sweeps it up at its next start.
        let waiting = tmp.join(format!("{}-prune-{sha}.part", std::process::id()));
        match fs::rename(&home, &waiting) {
            Ok(()) => aside.push(Aside { sha, home, waiting }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => eprintln!("jobctl: cannot remove {}: {e}", home.display()),
        }
    }
    let result = wait_for_running_attempts(store).and_then(|()| {
        for blob in &aside {
            if store.blob_referenced(&blob.sha)? {
                put_back(blob);
                removed.kept += 1;
            } else {
                let bytes = fs::metadata(&blob.waiting).map_or(0, |m| m.len());
                match fs::remove_file(&blob.waiting) {
                    Ok(()) => {
                        removed.files += 1;
                        removed.bytes += bytes;
                    }
                    Err(e) => eprintln!("jobctl: cannot remove {}: {e}", blob.waiting.display()),
                }
            }
        }
        Ok(())
    });
    match result {
        Ok(()) => Ok(removed),
        Err(e) => {
            // Without the database's word, nothing is deleted: every blob goes back.
            for blob in aside.iter().filter(|b| b.waiting.exists()) {
                put_back(blob);
            }
            Err(e.into())
        }
    }
}

/// Moves a blob back home, unless a daemon has meanwhile stored the same bytes there.
fn put_back(blob: &Aside) {
    let result = if blob.home.exists() {
        fs::remove_file(&blob.waiting)
    } else {
        fs::rename(&blob.waiting, &blob.home)
    };
    if let Err(e) = result {
        eprintln!(
            "jobctl: cannot move {} back to {}: {e}",
            blob.waiting.display(),
            blob.home.display()
        );
    }
}

/// Waits until every attempt that runs now has ended (or its daemon died: its lease expired).
fn wait_for_running_attempts(store: &dyn Store) -> Result<(), StoreError> {
    let attempts = store.live_attempts()?;
    let start = Instant::now();
    let mut told = false;
    loop {
        let live = store.still_live(&attempts)?;
        if live == 0 {
            return Ok(());
        }
        if !told && start.elapsed() > Duration::from_millis(500) {
            told = true;
            eprintln!(
                "jobctl: waiting for {live} running jobs to end their attempts before deleting \
                 blobs (one of them may be storing the same image)"
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::parse_blob_path;

    #[test]
    fn only_blob_paths_of_jobds_shape_are_taken() {
        let sha = "3aef82".to_string() + &"0".repeat(58);
        let good = format!("3a/ef/{sha}.png");
        assert_eq!(
            parse_blob_path(&good).map(|(s, e)| (s[0], s[1], e)),
            Some((0x3a, 0xef, "png"))
        );
        for bad in [
            format!("3a/ee/{sha}.png"),
            format!("../3a/ef/{sha}.png"),
            format!("3a/ef/{sha}.p/g"),
            format!("3a/ef/{}.png", sha.to_uppercase()),
            format!("3a/ef/{sha}"),
            "/etc/passwd".to_string(),
        ] {
            assert!(parse_blob_path(&bad).is_none(), "{bad}");
        }
    }
}
