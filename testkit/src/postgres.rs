//! A throwaway PostgreSQL server for tests: initdb'd in a temporary folder, listening on 127.0.0.1
//! with a free port, with durability settings off, and gone with the test process that started it.
//!
//! [`server`] gives the process's shared server; tests get isolation from
//! [`TestPostgres::fresh_database`], not from servers. A test that restarts the server starts its
//! own with [`TestPostgres::start`], since a restart breaks every connection to it.
//!
//! Lifetime: the server runs under a small `sh` supervisor (the *lifeline shell*) whose standard
//! input is a pipe from this process. The write end is never closed while the server is wanted:
//! the shared server keeps it in a static, and when the process exits for any reason (return,
//! panic, SIGKILL) the kernel closes it. The shell then reads end-of-file, shuts the server down
//! and removes the temporary folder: no pg_ctl, no daemon to hunt down later. On an orderly exit
//! an `atexit` hook does the same and waits for it, so nothing outlives `cargo test`.
//! Architecture Invariant: this never touches a server it did not start, never listens on
//! anything but 127.0.0.1, and never sleeps blindly: it polls for a state with one deadline.

mod lifeline;
mod setup;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{OnceLock, PoisonError, RwLock, TryLockError};
use std::time::Duration;

use lifeline::{Lifeline, NotReady};
use setup::{Account, RemoveOnDrop, find_bin_dir, initdb, make_base_dir, server_account};

/// How long a server may take to accept connections after it is started (crash recovery
/// included), on a loaded two-core CI machine.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// How often startup is polled.
const TICK: Duration = Duration::from_millis(10);

/// Free ports tried before giving up; another process can take one between our probe and
/// postgres's bind.
const PORT_ATTEMPTS: usize = 5;

static SERVER: OnceLock<TestPostgres> = OnceLock::new();

/// Numbers databases and temporary folders, so names never repeat within the process.
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A PostgreSQL server for this test process, started on first use and stopped when the
/// process exits.
///
/// # Panics
/// If the server binaries are missing (the message says which package to install) or the
/// server cannot start; a test has nothing to do without it.
pub fn server() -> &'static TestPostgres {
    SERVER.get_or_init(|| {
        let pg = TestPostgres::start();
        // SAFETY: `stop_at_exit` is a plain function that cannot unwind.
        unsafe { libc::atexit(stop_at_exit) };
        pg
    })
}

/// On an orderly exit, stops the shared server and removes its folder before the process is
/// gone, so that nothing of it outlives `cargo test` even for a moment. Any other way out leaves
/// the same work to the lifeline shell, a few tens of milliseconds later.
extern "C" fn stop_at_exit() {
    let Some(pg) = SERVER.get() else { return };
    // A thread still restarting the server at exit keeps it: the shell will see to it.
    let mut running = match pg.running.try_write() {
        Ok(running) => running,
        Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        Err(TryLockError::WouldBlock) => return,
    };
    running.close();
}

/// A running server. Dropping it stops the server and removes its folder; the shared one from
/// [`server`] is never dropped and goes when the process exits.
pub struct TestPostgres {
    bin: PathBuf,
    /// The temporary folder: `data/`, the unix socket, `postgres.log`.
    base: PathBuf,
    account: Option<Account>,
    port: u16,
    /// Read-locked while a database is created, write-locked while the server restarts.
    running: RwLock<Lifeline>,
}

impl TestPostgres {
    /// Starts a private server, e.g. for a test that restarts it.
    ///
    /// # Panics
    /// As [`server`].
    pub fn start() -> TestPostgres {
        let bin = find_bin_dir().unwrap_or_else(|e| panic!("test PostgreSQL server: {e}"));
        let account = server_account();
        let base = make_base_dir(account);
        // Until a lifeline shell owns the folder, an early panic must not leave it behind.
        let cleanup = RemoveOnDrop(&base);
        initdb(&bin, &base, account);
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            let lifeline = Lifeline::spawn(&bin, &base, account, port);
            match lifeline.wait_ready(&base, port) {
                Ok(()) => {
                    std::mem::forget(cleanup);
                    return TestPostgres {
                        bin,
                        base,
                        account,
                        port,
                        running: RwLock::new(lifeline),
                    };
                }
                Err(NotReady::PortTaken) => lifeline.stop(),
                Err(NotReady::Other(e)) => panic!("test PostgreSQL server: {e}"),
            }
        }
        panic!(
            "test PostgreSQL server: {PORT_ATTEMPTS} free ports were taken before it bound them"
        );
    }

    /// A new, empty database, named `jobd_test_<pid>_<n>` so that it is unique in this process
    /// and across processes; returns its URL, e.g.
    /// `postgres://postgres@127.0.0.1:PORT/jobd_test_7_0`.
    ///
    /// # Panics
    /// If the server cannot create it.
    pub fn fresh_database(&self) -> String {
        let _running = self.running.read().unwrap_or_else(PoisonError::into_inner);
        let name = format!("jobd_test_{}_{}", process::id(), NEXT.fetch_add(1, SeqCst));
        let admin = self.url("postgres");
        let created =
            connect(&admin).and_then(|mut c| c.batch_execute(&format!("CREATE DATABASE {name}")));
        if let Err(e) = created {
            panic!("test PostgreSQL server: cannot create database {name} at {admin}: {e}");
        }
        self.url(&name)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server abruptly (immediate mode: no checkpoint, clients cut off) and starts it
    /// again on the same port and data; returns once it accepts connections again. Every open
    /// connection breaks, including other tests' if this is the shared server.
    ///
    /// # Panics
    /// If the server does not come back, e.g. because another process took its port meanwhile.
    pub fn restart(&self) {
        let mut running = self.running.write().unwrap_or_else(PoisonError::into_inner);
        running.stop_in_place();
        *running = Lifeline::spawn(&self.bin, &self.base, self.account, self.port);
        match running.wait_ready(&self.base, self.port) {
            Ok(()) => {}
            Err(NotReady::PortTaken) => panic!(
                "test PostgreSQL server: port {} was taken by another process during the restart",
                self.port
            ),
            Err(NotReady::Other(e)) => panic!("test PostgreSQL server, restarting: {e}"),
        }
    }

    fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

fn connect(url: &str) -> Result<postgres::Client, postgres::Error> {
    let mut config: postgres::Config = url.parse()?;
    config
        .connect_timeout(Duration::from_secs(5))
        .connect(postgres::NoTls)
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("test PostgreSQL server: cannot bind a port on 127.0.0.1: {e}"))
}

#[cfg(test)]
mod tests;
