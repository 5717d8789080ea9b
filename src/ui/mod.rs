//! The web dashboard, `jobctl serve`: server-rendered pages of the queue (overview, jobs, a job,
//! failures, hosts, gallery), forms that retry, cancel, pause and resume through the same store
//! functions as jobctl, and thumbnails of the stored images.
//!
//! One file per concern: `http.rs` reads a request and writes a response under limits;
//! `security.rs` checks Host, login, sessions, CSRF and origins; `routes.rs` dispatches; `pages.rs`,
//! `jobs.rs` and `html.rs` render; `thumbs.rs` makes and caches thumbnails.
//!
//! Architecture invariant: like jobctl, it is a client of the queue: no SQL (every read is a
//! store trait method), no path from a request, and it works with or without daemons.

mod figures;
mod html;
mod http;
mod jobs;
mod pages;
mod routes;
mod security;
mod thumbs;

use std::fmt;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::mpsc::{TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::config::Config;
use crate::store::Store;

/// For the benchmark harness (scripts/bench.sh ui).
#[cfg(not(product_only))]
pub use thumbs::thumbnail;

/// Threads that answer requests: each handles one connection at a time, read under a deadline.
pub const WORKERS: usize = 8;
/// Connections accepted but not yet taken by a worker; beyond, a connection gets a 503 at once.
const BACKLOG: usize = 64;

/// Why the dashboard did not start.
#[derive(Debug)]
pub enum Error {
    /// A non-loopback address without `[ui] token`.
    NeedsToken(SocketAddr),
    Listen(SocketAddr, std::io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NeedsToken(addr) => write!(
                f,
                "{addr} is not a loopback address: set [ui] token in the config first, so that \
                 only people with the token can see and steer the queue"
            ),
            Error::Listen(addr, e) => write!(f, "cannot listen on {addr}: {e}"),
        }
    }
}

impl std::error::Error for Error {}

/// What every request handler shares.
pub struct App {
    store: Arc<dyn Store>,
    guard: security::Guard,
    thumbs: thumbs::Thumbs,
    blob_dir: PathBuf,
    figures: Arc<figures::Figures>,
}

/// A bound dashboard, not yet serving.
pub struct Server {
    listener: TcpListener,
    app: Arc<App>,
}

impl Server {
    /// Checks the address against the token rule and binds it.
    pub fn bind(config: &Config, store: Arc<dyn Store>, listen: SocketAddr) -> Result<Server, Error> {
        if !listen.ip().is_loopback() && config.ui.token.is_none() {
            return Err(Error::NeedsToken(listen));
        }
        let listener = TcpListener::bind(listen).map_err(|e| Error::Listen(listen, e))?;
        let bound = listener.local_addr().map_err(|e| Error::Listen(listen, e))?;
        let app = App {
            figures: figures::Figures::new(store.clone()),
            store,
            guard: security::Guard::new(bound, config.ui.token.clone(), &config.ui.allowed_hosts),
            thumbs: thumbs::Thumbs::new(
                &config.blob_dir,
                config.fetch.max_pixels,
                config.ui.thumbnail_cache_mb.saturating_mul(1 << 20),
            ),
            blob_dir: config.blob_dir.clone(),
        };
        Ok(Server {
            listener,
            app: Arc::new(app),
        })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves until the process ends: a fixed pool of [`WORKERS`], fed by the accepting thread
    /// through a queue of [`BACKLOG`]; a connection that finds it full is answered 503 at once.
    pub fn run(self) {
        let (tx, rx) = sync_channel::<TcpStream>(BACKLOG);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..WORKERS {
            let (rx, app) = (rx.clone(), self.app.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("ui-{i}"))
                .spawn(move || {
                    loop {
                        let next = crate::lock(&rx).recv();
                        match next {
                            Ok(stream) => serve_one(&app, stream),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                log::error!("cannot start a dashboard worker: {e}");
            }
        }
        for stream in self.listener.incoming() {
            let stream = match stream {
                Ok(stream) => stream,
                Err(e) => {
                    // Out of file descriptors, say: wait a moment rather than spin.
                    log::warn!("cannot accept a connection: {e}");
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    continue;
                }
            };
            if let Err(TrySendError::Full(mut stream)) = tx.try_send(stream) {
                let _ = http::Response::text(503, "busy; try again in a moment")
                    .write(&mut stream, false);
            }
        }
    }
}

fn serve_one(app: &App, mut stream: TcpStream) {
    let response = match http::read_request(&mut stream) {
        Ok(request) => {
            let head = request.method == http::Method::Head;
            let started = Instant::now();
            let response = routes::handle(app, &request);
            log::debug!(
                "{:?} {} {} in {:?}",
                request.method,
                request.path,
                response.status,
                started.elapsed()
            );
            let _ = response.write(&mut stream, head);
            return;
        }
        Err(refused) => refused.response(),
    };
    if let Some(response) = response {
        let _ = response.write(&mut stream, false);
    }
}
