//! A loopback HTTP/1.1 server for tests and benchmarks: canned replies per path, injected faults
//! (delays, resets, truncation, trickling, endless bodies, reply sequences) and WAN emulation,
//! over plain TCP or, with a certificate the caller provides, over TLS ([`TestServer::start_tls`]).
//! It counts what it answers ([`Stats`]), and can serve those counts as JSON for a benchmark.
//!
//! One thread accepts; each connection gets a thread that serves requests (keep-alive included)
//! until the client closes, an I/O error, or the server is dropped. Every blocking read, write
//! and sleep is sliced into short ticks that look at a shutdown flag, so a dropped server stops
//! its threads within a few tens of milliseconds even mid-way through an endless body.
//! Architecture Invariant: network input never panics a server thread; errors are logged at
//! debug level and end only the connection they happened on.

mod conn;
mod reply;
mod stats;
mod tls;

pub use reply::{Fault, Ranges, Reply};
pub use stats::Stats;

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// How often blocked reads, writes and sleeps look at the shutdown flag.
const TICK: Duration = Duration::from_millis(20);

/// A running server; its threads stop when it is dropped.
pub struct TestServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    acceptor: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Shared {
    routes: Mutex<HashMap<String, Route>>,
    hits: Mutex<HashMap<String, usize>>,
    total_hits: AtomicUsize,
    connections: AtomicUsize,
    /// Requests seen per target, for `Fault::SequencePerUrl` routes only.
    per_url: Mutex<HashMap<String, usize>>,
    /// The reply for targets that match no route; None means 404.
    fallback: Mutex<Option<Route>>,
    /// The path that answers [`Stats`] as JSON, if any; such requests are not counted.
    stats_path: Mutex<Option<String>>,
    recorder: stats::Recorder,
    shutdown: AtomicBool,
    wan: Mutex<Wan>,
    /// Every request with a `Range` header: its connection's number and the header.
    ranges_seen: Mutex<Vec<RangeRequest>>,
    /// Set for an https server; every connection then starts with a TLS handshake.
    tls: Option<Arc<rustls::ServerConfig>>,
}

/// A request that carried a `Range` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeRequest {
    /// The connection it came on, numbered from 1 in the order they were accepted.
    pub connection: usize,
    /// The header's value, e.g. `bytes=100-199`.
    pub range: String,
}

struct Route {
    reply: Reply,
    /// Requests served since the route was (re)registered; indexes `Fault::Sequence`.
    served: usize,
}

#[derive(Clone, Copy, Default)]
struct Wan {
    ttfb: Duration,
    bytes_per_sec: Option<u64>,
}

impl TestServer {
    /// Starts on 127.0.0.1 with a free port.
    ///
    /// # Panics
    /// If no loopback port can be bound, which leaves a test nothing to do.
    pub fn start() -> TestServer {
        TestServer::bind("127.0.0.1:0").expect("bind the test server to 127.0.0.1")
    }

    /// Starts on the given address, e.g. `127.0.0.2:0`.
    pub fn bind(addr: &str) -> io::Result<TestServer> {
        TestServer::bind_with(addr, Shared::default())
    }

    /// Starts an https server on 127.0.0.1 with a free port. `cert_chain_pem` is the server's
    /// certificate, then any intermediates; `key_pem` its private key (PKCS#8, PKCS#1 or SEC1).
    /// The caller makes them (tests use rcgen), so the library needs no certificate generator.
    ///
    /// # Panics
    /// If the PEM is unusable or no loopback port can be bound: a broken test fixture.
    pub fn start_tls(cert_chain_pem: &str, key_pem: &str) -> TestServer {
        let tls = tls::server_config(cert_chain_pem, key_pem).expect("a usable test certificate");
        let shared = Shared {
            tls: Some(tls),
            ..Shared::default()
        };
        TestServer::bind_with("127.0.0.1:0", shared).expect("bind the test server to 127.0.0.1")
    }

    fn bind_with(addr: &str, shared: Shared) -> io::Result<TestServer> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(shared);
        let for_thread = Arc::clone(&shared);
        let acceptor = thread::Builder::new()
            .name("testserver-accept".into())
            .spawn(move || accept_loop(&listener, &for_thread))?;
        Ok(TestServer {
            shared,
            addr,
            acceptor: Some(acceptor),
        })
    }

    /// Adds latency before every status line and caps each response's body rate.
    pub fn with_wan(self, ttfb: Duration, bytes_per_sec: Option<u64>) -> TestServer {
        *lock(&self.shared.wan) = Wan {
            ttfb,
            bytes_per_sec,
        };
        self
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR/path` (`https://` for a TLS server); `path` should start with '/'.
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.shared.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let slash = if path.starts_with('/') { "" } else { "/" };
        format!("{scheme}://{}{slash}{path}", self.addr)
    }

    /// Registers or replaces the reply for `path`. A request whose exact target is not routed is
    /// matched without its query string; anything still unmatched gets a 404.
    pub fn route(&self, path: &str, reply: Reply) {
        lock(&self.shared.routes).insert(path.to_string(), Route { reply, served: 0 });
    }

    /// Answers requests that match no route with `reply` instead of a 404.
    pub fn fallback(&self, reply: Reply) {
        *lock(&self.shared.fallback) = Some(Route { reply, served: 0 });
    }

    /// Answers GET `path` (any query string) with [`Stats::to_json`]. Those requests are left
    /// out of the stats and the hit counts, so a benchmark can poll without changing them.
    pub fn serve_stats(&self, path: &str) {
        *lock(&self.shared.stats_path) = Some(path.to_string());
    }

    /// What the server has seen so far (requests of the stats path left out).
    pub fn stats(&self) -> Stats {
        self.shared.recorder.snapshot()
    }

    /// Serves every regular file in `dir` at `/<file name>`, typed by extension, in ranges too
    /// ([`Ranges::Honour`]); returns how many.
    pub fn serve_dir(&self, dir: &Path) -> io::Result<usize> {
        let mut count = 0;
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if entry.file_type()?.is_file() {
                let kind =
                    super::images::content_type_for(&name).unwrap_or("application/octet-stream");
                self.route(
                    &format!("/{name}"),
                    Reply::image(std::fs::read(entry.path())?, kind).ranged(Ranges::Honour),
                );
                count += 1;
            }
        }
        Ok(count)
    }

    /// Requests received for `path` (counted under the key they were routed by).
    pub fn hits(&self, path: &str) -> usize {
        lock(&self.shared.hits).get(path).copied().unwrap_or(0)
    }

    pub fn total_hits(&self) -> usize {
        self.shared.total_hits.load(SeqCst)
    }

    /// The requests with a `Range` header so far, in order.
    pub fn range_requests(&self) -> Vec<RangeRequest> {
        lock(&self.shared.ranges_seen).clone()
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(SeqCst)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, SeqCst);
        // Wake the blocking accept() with a throwaway connection so it sees the flag. If even
        // that fails, leave the thread behind rather than hang the caller in join().
        let woke = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).is_ok();
        if let (true, Some(acceptor)) = (woke, self.acceptor.take()) {
            let _ = acceptor.join();
        }
    }
}

/// Poisoning only says another thread panicked; the maps are still consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn stopping(&self) -> bool {
        self.shutdown.load(SeqCst)
    }

    fn saw_range(&self, connection: usize, range: &str) {
        lock(&self.ranges_seen).push(RangeRequest {
            connection,
            range: range.to_string(),
        });
    }

    /// Whether a request target is the stats path (the query string aside).
    fn is_stats(&self, target: &str) -> bool {
        let path = target.split('?').next().unwrap_or(target);
        lock(&self.stats_path).as_deref() == Some(path)
    }

    /// Counts the hit and picks the reply for a request target.
    fn take_reply(&self, target: &str) -> Reply {
        self.total_hits.fetch_add(1, SeqCst);
        let mut routes = lock(&self.routes);
        let key = if routes.contains_key(target) {
            target
        } else {
            target.split('?').next().unwrap_or(target)
        };
        *lock(&self.hits).entry(key.to_string()).or_default() += 1;
        let mut fallback = lock(&self.fallback);
        let Some(route) = routes.get_mut(key).or(fallback.as_mut()) else {
            return Reply::status(404);
        };
        route.served += 1;
        let n = match route.reply.fault {
            Fault::SequencePerUrl(_) => {
                let mut per_url = lock(&self.per_url);
                let seen = per_url.entry(target.to_string()).or_default();
                *seen += 1;
                *seen - 1
            }
            _ => route.served - 1,
        };
        resolve(&route.reply, n)
    }
}

fn resolve(reply: &Reply, n: usize) -> Reply {
    match &reply.fault {
        Fault::Sequence(replies) | Fault::SequencePerUrl(replies) => {
            match replies.get(n).or(replies.last()) {
                Some(next) => resolve(next, n),
                None => Reply::status(500),
            }
        }
        _ => reply.clone(),
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stopping() {
            return;
        }
        match stream {
            Ok(stream) => {
                let id = shared.connections.fetch_add(1, SeqCst) + 1;
                let shared = Arc::clone(shared);
                let spawned = thread::Builder::new()
                    .name("testserver-conn".into())
                    .spawn(move || conn::serve_connection(stream, id, &shared));
                if let Err(e) = spawned {
                    log::warn!("test server: cannot start a connection thread: {e}");
                }
            }
            Err(e) => {
                // E.g. out of file descriptors: back off instead of spinning.
                log::debug!("test server: accept failed: {e}");
                thread::sleep(TICK);
            }
        }
    }
}

#[cfg(test)]
mod tests;
