//! Starting the daemon: open the store and the blob store, build the HTTP client, install the
//! signal handlers, and hand over to the supervisor.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use signal_hook::consts::{SIGINT, SIGTERM};

use crate::blobs::BlobStore;
use crate::committer::Committer;
use crate::config::{Config, ConfigError};
use crate::download::Downloader;
use crate::fetch::ClientError;
use crate::heartbeat;
use crate::metrics::{self, Metrics, ServeError};
use crate::store::{self, StoreError};
use crate::supervisor::{self, Options};

/// Runs jobd until a signal stops it, or, with `drain`, until the queue is empty.
pub fn run(config: &Config, drain: bool) -> Result<(), Error> {
    // First, so that a signal during start-up is a clean stop too.
    let stop = install_signal_handlers()?;
    let store = store::open_for_daemon(&config.database, config.workers)?;
    let blobs = BlobStore::open(&config.blob_dir).map_err(|source| Error::BlobDir {
        path: config.blob_dir.clone(),
        source,
    })?;
    let blobs = Arc::new(blobs);
    restore_abandoned_blobs(blobs.clone())?;
    let downloader = Downloader::new(config, blobs.clone(), store.clone())?;
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
    let beating_store = store.clone();
    let queue: Arc<dyn store::Queue> = store;
    let metrics = Arc::new(Metrics::new(config.workers));
    metrics.watch_hosts(downloader.hosts());
    if let Some(addr) = config.metrics.listen {
        let bound = metrics::serve(addr, metrics.clone(), &*queue)?;
        log::info!("metrics on http://{bound}/metrics");
    }
    let committer = Arc::new(Committer::new(Some(blobs), config.retry.clone()));
    let beating = heartbeat::start(
        beating_store,
        metrics.clone(),
        downloader.hosts(),
        config.workers,
    );
    let ran = supervisor::run(
        queue,
        Arc::new(downloader),
        metrics,
        committer,
        &options,
        &stop,
    );
    beating.stop();
    ran?;
    log::info!("stopped");
    Ok(())
}

/// How often a running daemon restores blobs that a process now gone held aside.
const RESTORE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Every [`RESTORE_EVERY`], restores the blobs an interrupted `jobctl prune --blobs` left held
/// aside ([`BlobStore::restore_abandoned`]), so that a job recorded during its wait gets its file
/// back without a restart. The thread only reads folders and renames; it ends with the process.
fn restore_abandoned_blobs(blobs: Arc<BlobStore>) -> Result<(), Error> {
    std::thread::Builder::new()
        .name("blob-restorer".into())
        .spawn(move || {
            loop {
                std::thread::sleep(RESTORE_EVERY);
                blobs.restore_abandoned();
            }
        })
        .map(|_| ())
        .map_err(|source| Error::Setup {
            what: "start the blob restorer",
            source,
        })
}

/// The first SIGTERM or SIGINT only sets a flag that the supervisor sees on its next tick; a
/// second one exits at once (leases make that safe).
fn install_signal_handlers() -> Result<Arc<AtomicBool>, Error> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [SIGTERM, SIGINT] {
        // Registered first, so it sees the flag as the previous signal left it.
        signal_hook::flag::register_conditional_shutdown(signal, 128 + signal, stop.clone())
            .and_then(|_| signal_hook::flag::register(signal, stop.clone()))
            .map_err(|source| Error::Setup {
                what: "install the signal handler",
                source,
            })?;
    }
    Ok(stop)
}

/// Why jobd could not start, or stopped before it was asked to.
///
/// The convention for every error type in jobd: `Display` is the whole line a user reads, causes
/// included (as [`StoreError`]'s is), so a top-level error is printed once with `{}` and never
/// with a walk down `source()`; `source()` hands the cause to code that wants to look at it.
#[derive(Debug)]
pub enum Error {
    /// The config file, or a command-line value that overrides it, is not valid (exit 2).
    Config(ConfigError),
    /// `[fetch]` gave an HTTP client that cannot be built (exit 2: the message names the key).
    Client(ClientError),
    /// The database could not be opened or used.
    Store(StoreError),
    /// The blob_dir could not be opened (created, or written to).
    BlobDir { path: PathBuf, source: io::Error },
    /// The metrics endpoint could not be served (typically: its port is taken).
    Metrics(ServeError),
    /// A thread or the signal handlers could not be set up; `what` says which ("start the blob
    /// restorer").
    Setup {
        what: &'static str,
        source: io::Error,
    },
}

impl Error {
    /// True when the configuration is at fault and running again without changing it cannot
    /// help (jobd exits 2), false for a failure of the machine, the database or the blob_dir
    /// (jobd exits 1).
    pub fn is_bad_config(&self) -> bool {
        matches!(self, Error::Config(_) | Error::Client(_))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(e) => e.fmt(f),
            Error::Client(e) => e.fmt(f),
            Error::Store(e) => e.fmt(f),
            Error::BlobDir { path, source } => {
                write!(f, "cannot open blob_dir {}: {source}", path.display())
            }
            Error::Metrics(e) => e.fmt(f),
            Error::Setup { what, source } => write!(f, "cannot {what}: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Config(e) => Some(e),
            Error::Client(e) => Some(e),
            Error::Store(e) => Some(e),
            Error::BlobDir { source, .. } => Some(source),
            Error::Metrics(e) => Some(e),
            Error::Setup { source, .. } => Some(source),
        }
    }
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Error::Config(e)
    }
}

impl From<ClientError> for Error {
    fn from(e: ClientError) -> Self {
        Error::Client(e)
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Error::Store(e)
    }
}

impl From<ServeError> for Error {
    fn from(e: ServeError) -> Self {
        Error::Metrics(e)
    }
}
