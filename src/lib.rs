//! jobd: a persistent job-queue daemon on SQLite (or PostgreSQL) that downloads, verifies and stores images.
//!
//! The binaries (`jobd`, `jobctl`) are thin; everything lives here. See ARCHITECTURE.md for the
//! bird's-eye view and the invariants each module keeps.

// What the two binaries use.
pub mod cli;
pub mod config;
pub mod daemon;
pub mod logger;

/// Declares modules that the binaries reach only through the ones above. They are public for
/// the integration tests and the benchmark harness (testkit/), and private when
/// `scripts/check.sh` builds the library with `--cfg product_only`: rustc's dead-code lint then
/// flags whatever the product itself never uses.
macro_rules! internal {
    ($($name:ident)*) => {$(
        #[cfg(not(product_only))]
        pub mod $name;
        #[cfg(product_only)]
        mod $name;
    )*};
}

internal! {
    blobs committer download fetch guard heartbeat hosts job joburl metrics retry roots sniff store
    supervisor ui validate worker
}

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
