//! A loopback HTTP/1.1 server for tests and benchmarks: canned replies per path, injected faults
//! (delays, resets, truncation, trickling, endless bodies, reply sequences) and WAN emulation,
//! over plain TCP or, with a certificate the caller provides, over TLS ([`TestServer::start_tls`]).
//!
//! One thread accepts; each connection gets a thread that serves requests (keep-alive included)
//! until the client closes, an I/O error, or the server is dropped. Every blocking read, write
//! and sleep is sliced into short ticks that look at a shutdown flag, so a dropped server stops
//! its threads within a few tens of milliseconds even mid-way through an endless body.
//! Architecture Invariant: network input never panics a server thread; errors are logged at
//! debug level and end only the connection they happened on.

mod conn;
mod tls;

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

/// A canned response. `Content-Length` is added when sending, from `body`, unless set with
/// [`Reply::header`] (which lets a test lie about it).
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Arc<[u8]>,
    pub fault: Fault,
}

/// Misbehaviour to inject into a reply.
#[derive(Clone, Debug, Default)]
pub enum Fault {
    #[default]
    None,
    /// Extra wait before the status line.
    Delay(Duration),
    /// Read the request, then close without responding. The client sees an orderly close
    /// (FIN), not an RST: forcing an RST needs `SO_LINGER`, which stable std cannot set.
    Reset,
    /// Announce the full Content-Length but send only the first N body bytes, then close.
    Truncate(usize),
    /// Send the body without a Content-Length, then close: the client cannot tell a body cut
    /// short from a whole one (HTTP/1.0 style).
    CloseDelimited,
    /// Send the body one byte per interval.
    Trickle(Duration),
    /// Send the body, then zero bytes until the client goes away; announced with a 1 TiB
    /// Content-Length, or with none (close-delimited).
    Endless { content_length: bool },
    /// The n-th request for the route gets the n-th reply; the last one repeats.
    Sequence(Vec<Reply>),
}

impl Reply {
    /// 200 with the given Content-Type.
    pub fn image(bytes: impl Into<Arc<[u8]>>, content_type: &str) -> Reply {
        Reply {
            status: 200,
            headers: Vec::new(),
            body: bytes.into(),
            fault: Fault::None,
        }
        .header("Content-Type", content_type)
    }

    /// The status with a small HTML body naming it.
    pub fn status(code: u16) -> Reply {
        Reply::html(
            code,
            &format!(
                "<html><body><h1>{code} {}</h1></body></html>\n",
                reason(code)
            ),
        )
    }

    /// The status with `body` as text/html.
    pub fn html(status: u16, body: &str) -> Reply {
        Reply {
            status,
            ..Reply::image(body.as_bytes(), "text/html; charset=utf-8")
        }
    }

    /// A redirect (301, 302, 303, 307 or 308) to `location`, absolute or relative.
    pub fn redirect(status: u16, location: &str) -> Reply {
        Reply::html(
            status,
            &format!("<html><body><a href=\"{location}\">moved</a></body></html>\n"),
        )
        .header("Location", location)
    }

    /// A reply whose n-th use is `replies[n]`, the last repeating (`Fault::Sequence` shorthand).
    pub fn sequence(replies: Vec<Reply>) -> Reply {
        Reply::status(500).fault(Fault::Sequence(replies))
    }

    /// Sets a header, replacing any of the same name (case-insensitive).
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Replaces the reply's fault.
    pub fn fault(mut self, fault: Fault) -> Reply {
        self.fault = fault;
        self
    }

    fn get_header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

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
    shutdown: AtomicBool,
    wan: Mutex<Wan>,
    /// Set for an https server; every connection then starts with a TLS handshake.
    tls: Option<Arc<rustls::ServerConfig>>,
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

    /// Serves every regular file in `dir` at `/<file name>`, typed by extension; returns how many.
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
                    Reply::image(std::fs::read(entry.path())?, kind),
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
        let Some(route) = routes.get_mut(key) else {
            return Reply::status(404);
        };
        route.served += 1;
        resolve(&route.reply, route.served - 1)
    }
}

fn resolve(reply: &Reply, n: usize) -> Reply {
    match &reply.fault {
        Fault::Sequence(replies) => match replies.get(n).or(replies.last()) {
            Some(next) => resolve(next, n),
            None => Reply::status(500),
        },
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
                shared.connections.fetch_add(1, SeqCst);
                let shared = Arc::clone(shared);
                let spawned = thread::Builder::new()
                    .name("testserver-conn".into())
                    .spawn(move || conn::serve_connection(stream, &shared));
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

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        410 => "Gone",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

#[cfg(test)]
mod tests;
