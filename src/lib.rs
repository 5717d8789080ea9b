//! jobd: a persistent job-queue daemon on SQLite (or PostgreSQL) that downloads, verifies and stores images.
//!
//! The binaries (`jobd`, `jobctl`) are thin; everything lives here. See ARCHITECTURE.md for the
//! bird's-eye view and the invariants each module keeps.

pub mod blobs;
pub mod cli;
pub mod committer;
pub mod config;
pub mod daemon;
pub mod download;
pub mod fetch;
pub mod guard;
pub mod hosts;
pub mod job;
pub mod joburl;
pub mod logger;
pub mod metrics;
pub mod retry;
pub mod roots;
pub mod sniff;
pub mod store;
pub mod supervisor;
pub mod validate;
pub mod worker;

/// Locks a mutex whose data stays valid even if a holder panicked: every mutex here guards plain
/// data (queues, counters, maps) that a panic cannot leave half-written.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// This machine's name, for worker names and temporary file names that must not collide with
/// another machine's on a shared database or blob_dir. Characters other than letters, digits,
/// dots and dashes become `_`.
pub(crate) fn hostname() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let name: String = name
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() {
        "localhost".into()
    } else {
        name
    }
}
