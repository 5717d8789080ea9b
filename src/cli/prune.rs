//! `jobctl prune`: deletes old finished jobs with their attempts (in batches, through
//! `Queue::prune`), and with `--blobs` the blob files that no remaining job refers to.
//!
//! Deleting a blob races with a daemon that is storing the same bytes right now: it may have seen
//! the file exist, dropped its own copy, and be about to record `done` with that name. So the
//! blob store first holds each blob aside ([`BlobStore::hold`]); every attempt running at that
//! moment is allowed to end; then a blob that a job refers to by now is restored, and the rest
//! are deleted. A job recorded in that window misses its file for moments, never for good.
//!
//! The wait is bounded (`--wait`, by default the fetch deadline plus a lease: no live attempt
//! outlasts that), and SIGINT or SIGTERM end it early. Either way every blob still held goes
//! back and none is deleted; if jobctl dies outright, the blob store's sweeper restores them.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use signal_hook::SigId;
use signal_hook::consts::{SIGINT, SIGTERM};

use super::output::{count, human_bytes};
use super::{Error, print_json};
use crate::blobs::{self, BlobStore, Held};
use crate::job::{Layout, State, now_ms};
use crate::logger::span;
use crate::store::Store;

/// Jobs deleted per transaction.
const PRUNE_BATCH: usize = 1_000;

/// What `--blobs` needs beside the database.
pub struct BlobOptions<'a> {
    pub blob_dir: &'a Path,
    /// How long to wait for the attempts running now to end.
    pub wait: Duration,
}

pub fn run(
    store: &dyn Store,
    older_than: i64,
    states: &[State],
    blobs: Option<BlobOptions>,
    as_json: bool,
) -> Result<(), Error> {
    let mut states = states.to_vec();
    if states.is_empty() {
        states = State::FINISHED.to_vec();
    }
    states.sort_unstable_by_key(|s| s.name());
    states.dedup();
    let before = now_ms().saturating_sub(older_than);
    let mut candidates = Candidates::default();
    if blobs.is_some() {
        store.blobs_of_finished(before, &states, &mut |path| candidates.add(path))?;
    }
    let pruned = store.prune(before, &states, PRUNE_BATCH)?;
    let removed = match &blobs {
        Some(options) => remove_unreferenced(store, options, candidates).map_err(|e| match e {
            Error::Failed(why) => Error::Failed(format!(
                "{why}; the {} pruned before stay pruned",
                count(pruned as u64, "job")
            )),
            other => other,
        })?,
        None => Removed::default(),
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
            states
                .iter()
                .map(|s| s.name())
                .collect::<Vec<_>>()
                .join(", ")
        );
        if blobs.is_some() {
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
    /// Takes `ab/<sha256>.<ext>` as jobd writes it (or wrote it: [`Layout`]); anything else is no
    /// path of ours and is never deleted.
    fn add(&mut self, blob_path: &str) {
        let Some((hex, ext, _)) = crate::job::parse_blob_path(blob_path) else {
            return;
        };
        let mut sha = [0u8; 32];
        for (i, byte) in sha.iter_mut().enumerate() {
            match hex.get(2 * i..2 * i + 2).map(|p| u8::from_str_radix(p, 16)) {
                Some(Ok(b)) => *byte = b,
                _ => return,
            }
        }
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

#[derive(Default)]
struct Removed {
    files: u64,
    bytes: u64,
    /// Candidates that a remaining job still refers to.
    kept: u64,
}

fn remove_unreferenced(
    store: &dyn Store,
    options: &BlobOptions,
    mut candidates: Candidates,
) -> Result<Removed, Error> {
    candidates.blobs.sort_unstable();
    candidates.blobs.dedup();
    // Opening the store also restores what an earlier, interrupted prune left held.
    let blob_store = BlobStore::open(options.blob_dir).map_err(|e| {
        Error::Failed(format!(
            "cannot open blob_dir {}: {e}",
            options.blob_dir.display()
        ))
    })?;
    let signals = Signals::install()?;
    let mut removed = Removed::default();
    let mut held: Vec<Held> = Vec::new();
    let result = hold_unreferenced(store, &blob_store, &candidates, &signals, &mut held)
        .and_then(|kept| {
            removed.kept = kept;
            wait_for_running_attempts(store, options.wait, held.len(), &signals)
        })
        .and_then(|()| {
            // Popped only once the database has answered, so that on an error every blob not
            // yet decided is still in `held`, and goes back.
            while let Some(sha256) = held.last().map(|b| b.sha256.clone()) {
                let referenced = store.blob_referenced(&sha256)?;
                let Some(blob) = held.pop() else { break };
                if referenced {
                    restore(&blob_store, blob);
                    removed.kept += 1;
                    continue;
                }
                let shown = format!("{}.*", &blob.sha256);
                match blob_store.delete(blob) {
                    Ok(bytes) => {
                        removed.files += 1;
                        removed.bytes += bytes;
                    }
                    Err(e) => eprintln!("jobctl: cannot remove blob {shown}: {e}"),
                }
            }
            Ok(())
        });
    match result {
        Ok(()) => Ok(removed),
        Err(e) => {
            // Stopped, or without the database's word: nothing more is deleted, and every blob
            // still held goes back.
            let back = held.len();
            for blob in held {
                restore(&blob_store, blob);
            }
            let why = match e {
                Error::Failed(why) | Error::BadInput(why) | Error::NotFound(why) => why,
            };
            Err(Error::Failed(format!(
                "{why}; {} set aside put back, none deleted",
                count(back as u64, "blob")
            )))
        }
    }
}

/// Holds aside every candidate that no job refers to; returns how many are still referred to.
fn hold_unreferenced(
    store: &dyn Store,
    blob_store: &BlobStore,
    candidates: &Candidates,
    signals: &Signals,
    held: &mut Vec<Held>,
) -> Result<u64, Error> {
    let mut kept = 0;
    for (sha, ext) in &candidates.blobs {
        signals.check()?;
        let sha = blobs::hex(sha);
        if store.blob_referenced(&sha)? {
            kept += 1;
            continue;
        }
        let ext = &candidates.exts[usize::from(*ext)];
        // Where jobd stores it, and where an older jobd did: a store may hold both.
        for layout in Layout::ALL {
            let rel_path = layout.path(&sha, ext);
            match blob_store.hold(&rel_path) {
                Ok(Some(blob)) => held.push(blob),
                Ok(None) => {}
                Err(e) => eprintln!("jobctl: cannot remove blob {rel_path}: {e}"),
            }
        }
    }
    Ok(kept)
}

fn restore(blob_store: &BlobStore, blob: Held) {
    let shown = format!("{}.*", &blob.sha256);
    if let Err(e) = blob_store.restore(blob) {
        eprintln!("jobctl: cannot put blob {shown} back: {e}");
    }
}

/// Waits until every attempt that runs now has ended (or its daemon died: its lease expired),
/// for at most `bound`; a signal ends the wait early.
fn wait_for_running_attempts(
    store: &dyn Store,
    bound: Duration,
    held: usize,
    signals: &Signals,
) -> Result<(), Error> {
    if held == 0 {
        return Ok(());
    }
    let attempts = store.live_attempts()?;
    let start = Instant::now();
    let mut told = false;
    loop {
        signals.check()?;
        let live = store.still_live(&attempts)?;
        if live == 0 {
            return Ok(());
        }
        let waited = start.elapsed();
        if waited >= bound {
            return Err(Error::Failed(format!(
                "gave up after {}: {} running when the blobs were set aside still \
                 running (--wait sets how long to wait)",
                span(waited.as_millis() as i64),
                count(live as u64, "attempt")
            )));
        }
        if !told && waited > Duration::from_millis(500) {
            told = true;
            eprintln!(
                "jobctl: waiting up to {} for {} to end before deleting {} (one of them may \
                 be storing the same image); Ctrl-C puts the blobs back",
                span(bound.as_millis() as i64),
                count(live as u64, "running attempt"),
                count(held as u64, "blob")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// SIGINT and SIGTERM while blobs are held: the first ends the wait and puts the blobs back; a
/// second exits at once (the blob store's sweeper restores them then). Default handling returns
/// when this is dropped.
struct Signals {
    caught: Arc<AtomicUsize>,
    ids: Vec<SigId>,
}

impl Signals {
    fn install() -> Result<Signals, Error> {
        let caught = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(AtomicBool::new(false));
        let mut ids = Vec::new();
        for signal in [SIGINT, SIGTERM] {
            let registered = signal_hook::flag::register_conditional_shutdown(
                signal,
                128 + signal,
                seen.clone(),
            )
            .and_then(|first| {
                ids.push(first);
                signal_hook::flag::register(signal, seen.clone())
            })
            .and_then(|second| {
                ids.push(second);
                signal_hook::flag::register_usize(signal, caught.clone(), signal as usize)
            });
            match registered {
                Ok(id) => ids.push(id),
                Err(e) => {
                    return Err(Error::Failed(format!(
                        "cannot install the signal handler: {e}"
                    )));
                }
            }
        }
        Ok(Signals { caught, ids })
    }

    /// An error naming the signal, once one has arrived.
    fn check(&self) -> Result<(), Error> {
        let name = match self.caught.load(Ordering::SeqCst) {
            0 => return Ok(()),
            n if n == SIGINT as usize => "SIGINT",
            _ => "SIGTERM",
        };
        Err(Error::Failed(format!("interrupted by {name}")))
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Candidates;

    #[test]
    fn only_blob_paths_of_jobds_shape_are_taken() {
        let sha = "3aef82".to_string() + &"0".repeat(58);
        let mut candidates = Candidates::default();
        candidates.add(&format!("3a/ef/{sha}.png"));
        for bad in [
            format!("3a/ee/{sha}.png"),
            format!("../3a/ef/{sha}.png"),
            format!("3a/ef/{sha}.p/g"),
            format!("3a/ef/{}.png", sha.to_uppercase()),
            format!("3a/ef/{sha}"),
            "/etc/passwd".to_string(),
        ] {
            candidates.add(&bad);
        }
        assert_eq!(candidates.blobs.len(), 1);
        assert_eq!(candidates.blobs[0].0[..2], [0x3a, 0xef]);
        assert_eq!(candidates.exts, ["png"]);
    }
}
