//! Starting the daemon: open the store and the blob store, build the HTTP client, install the
//! signal handlers, and hand over to the supervisor.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use signal_hook::consts::{SIGINT, SIGTERM};

use crate::blobs::BlobStore;
use crate::committer::Committer;
use crate::config::Config;
use crate::download::Downloader;
use crate::metrics::{self, Metrics};
use crate::store;
use crate::supervisor::{self, Options};

/// Runs jobd until a signal stops it, or, with `drain`, until the queue is empty.
pub fn run(config: &Config, drain: bool) -> Result<(), String> {
    // First, so that a signal during start-up is a clean stop too.
    let stop = install_signal_handlers()?;
    let store =
        store::open_for_daemon(&config.database, config.workers).map_err(|e| e.to_string())?;
    let blobs = BlobStore::open(&config.blob_dir)
        .map_err(|e| format!("cannot open blob_dir {}: {e}", config.blob_dir.display()))?;
    let blobs = Arc::new(blobs);
    restore_abandoned_blobs(blobs.clone())?;
    let downloader = Downloader::new(config, blobs.clone())?;
    log::info!(
        "jobd {} on {} (blobs in {}), {} workers{}",
        env!("CARGO_PKG_VERSION"),
        config.database,
        config.blob_dir.display(),
        config.workers,
        if drain { ", exiting when drained" } else { "" }
    );
    let options = Options {
        workers: config.workers,
        drain,
        poll_interval: config.poll_interval(),
        grace: config.grace(),
        lease: config.lease(),
        retention: config.retention(),
        retry: config.retry.clone(),
    };
    let queue: Arc<dyn store::Queue> = store;
    let metrics = Arc::new(Metrics::new(config.workers));
    if let Some(addr) = config.metrics.listen {
        let bound = metrics::serve(addr, metrics.clone(), &*queue)?;
        log::info!("metrics on http://{bound}/metrics");
    }
    let committer = Arc::new(Committer::new(Some(blobs), config.retry.clone()));
    supervisor::run(
        queue,
        Arc::new(downloader),
        metrics,
        committer,
        &options,
        &stop,
    )
    .map_err(|e| e.to_string())?;
    log::info!("stopped");
    Ok(())
}

/// How often a running daemon restores blobs that a process now gone held aside.
const RESTORE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Every [`RESTORE_EVERY`], restores the blobs an interrupted `jobctl prune --blobs` left held
/// aside ([`BlobStore::restore_abandoned`]), so that a job recorded during its wait gets its file
/// back without a restart. The thread only reads folders and renames; it ends with the process.
fn restore_abandoned_blobs(blobs: Arc<BlobStore>) -> Result<(), String> {
    std::thread::Builder::new()
        .name("blob-restorer".into())
        .spawn(move || {
            loop {
                std::thread::sleep(RESTORE_EVERY);
                blobs.restore_abandoned();
            }
        })
        .map(|_| ())
        .map_err(|e| format!("cannot start the blob restorer: {e}"))
}

/// The first SIGTERM or SIGINT only sets a flag that the supervisor sees on its next tick; a
/// second one exits at once (leases make that safe).
fn install_signal_handlers() -> Result<Arc<AtomicBool>, String> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [SIGTERM, SIGINT] {
        // Registered first, so it sees the flag as the previous signal left it.
        signal_hook::flag::register_conditional_shutdown(signal, 128 + signal, stop.clone())
            .and_then(|_| signal_hook::flag::register(signal, stop.clone()))
            .map_err(|e| format!("cannot install the signal handler: {e}"))?;
    }
    Ok(stop)
}
