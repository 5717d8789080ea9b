//! The lifeline shell: the `sh` that runs one postgres process for its owner and stops it, and
//! removes the server's folder, when the owner says so or goes away.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;
use std::{fs, thread};

use super::setup::{Account, as_server_user};
use super::{STARTUP_TIMEOUT, TICK, connect};

/// The lifeline shell. `$1` is the server's folder, the rest the postgres command line.
/// A watcher waits on the pipe (kept as fd 3): the word `stop` means "stop the server, keep the
/// folder" (a restart); end-of-file means the owner is gone, so the folder goes too. Shutdown is
/// immediate (SIGQUIT): the data is either thrown away or meant to go through crash recovery.
/// `exited` tells the owner that postgres is gone (e.g. it could not bind its port); the shell
/// itself always waits for the owner's word, so that a dead server's folder is still removed.
const SCRIPT: &str = r#"
base=$1; shift
exec 3<&0 </dev/null >>"$base/postgres.log" 2>&1
"$@" 3<&- &
pid=$!
{ read -r word <&3; kill -QUIT "$pid" 2>/dev/null; [ "$word" = stop ]; } &
watcher=$!
exec 3<&-
wait "$pid"
echo "postgres exited with status $?" >"$base/exited"
if ! wait "$watcher"; then rm -rf "$base"; fi
"#;

/// The lifeline shell of one server process (a restart makes a new one).
pub(super) struct Lifeline {
    shell: Child,
    /// Where this process's part of `postgres.log` starts.
    log_start: usize,
}

/// Why a server process did not become ready.
pub(super) enum NotReady {
    /// Another process bound the port first: worth another port, unless it is a restart.
    PortTaken,
    Other(String),
}

impl Lifeline {
    pub(super) fn spawn(bin: &Path, base: &Path, account: Option<Account>, port: u16) -> Lifeline {
        // The previous process's marker must not be taken for this one's, nor the pidfile of a
        // postmaster killed outright (one that exits leaves none); the shell that ran it is gone.
        let _ = fs::remove_file(base.join("exited"));
        let _ = fs::remove_file(base.join("data/postmaster.pid"));
        let log_start = fs::read(base.join("postgres.log")).map_or(0, |log| log.len());
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(SCRIPT)
            .arg("jobd-test-postgres")
            .arg(base);
        cmd.arg(bin.join("postgres"))
            .arg("-D")
            .arg(base.join("data"));
        cmd.arg("-p").arg(port.to_string());
        let socket_dir = format!("unix_socket_directories={}", base.display());
        for setting in [
            "listen_addresses=127.0.0.1",
            &socket_dir,
            // Tests only: the OS outlives every restart a test makes, so its page cache is
            // durable enough. synchronous_commit stays on: with it off, a commit is only in
            // postgres's shared memory for up to 600 ms, and an immediate restart loses it.
            "fsync=off",
            "full_page_writes=off",
            "max_connections=200",
            "shared_buffers=16MB",
            // Each CREATE DATABASE writes ~4 MB of WAL; checkpoint before it fills much memory.
            "max_wal_size=256MB",
        ] {
            cmd.arg("-c").arg(setting);
        }
        // Its own process group, so a Ctrl-C meant for the test process does not kill the shell
        // before it has cleaned up: the shell hears about it through the pipe instead.
        cmd.process_group(0).current_dir(base);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        as_server_user(&mut cmd, account);
        let shell = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("test PostgreSQL server: cannot run sh: {e}"));
        Lifeline { shell, log_start }
    }

    /// Polls until this server process says it is ready in its pidfile and then accepts a
    /// connection, until it exits, or until the deadline. The pidfile comes first because the
    /// port may be someone else's until our postmaster has bound it: a connection could reach
    /// their server, or hang on a listener that never answers (the client's connect timeout
    /// bounds the TCP connect, not the handshake).
    pub(super) fn wait_ready(&self, base: &Path, port: u16) -> Result<(), NotReady> {
        let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let mut last = "postmaster.pid never said ready".to_string();
        loop {
            if says_ready(base, port) {
                match connect(&url) {
                    Ok(_) => return Ok(()),
                    Err(e) => last = e.to_string(),
                }
            }
            if base.join("exited").exists() {
                let log = self.log_tail(base);
                return Err(if log.contains("Address already in use") {
                    NotReady::PortTaken
                } else {
                    NotReady::Other(format!("postgres exited on start; end of its log:\n{log}"))
                });
            }
            if Instant::now() > deadline {
                return Err(NotReady::Other(format!(
                    "not ready within {STARTUP_TIMEOUT:?} ({last}); end of its log:\n{}",
                    self.log_tail(base)
                )));
            }
            thread::sleep(TICK);
        }
    }

    /// The last lines this server process logged, for failure messages.
    fn log_tail(&self, base: &Path) -> String {
        let log = fs::read(base.join("postgres.log")).unwrap_or_default();
        let log = String::from_utf8_lossy(log.get(self.log_start..).unwrap_or_default());
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Stops the server, keeping its folder, and waits until the shell is gone.
    pub(super) fn stop(mut self) {
        self.stop_in_place();
    }

    pub(super) fn stop_in_place(&mut self) {
        if let Some(pipe) = self.shell.stdin.as_mut() {
            // A write error means the shell is already gone: nothing left to stop.
            let _ = pipe.write_all(b"stop\n");
        }
        let _ = self.shell.wait();
    }

    /// Closing the pipe is the owner going away: the shell stops the server and removes the
    /// folder (unless told `stop` before, in which case it has exited already).
    pub(super) fn close(&mut self) {
        drop(self.shell.stdin.take());
        let _ = self.shell.wait();
    }
}

impl Drop for Lifeline {
    fn drop(&mut self) {
        self.close();
    }
}

/// Whether the postmaster of `base` listens on `port` and accepts connections. Its pidfile's
/// lines: pid, data folder, start time, port, socket folder, listen address, shared memory key,
/// status (as pg_ctl reads it).
fn says_ready(base: &Path, port: u16) -> bool {
    let Ok(pidfile) = fs::read_to_string(base.join("data/postmaster.pid")) else {
        return false;
    };
    let lines: Vec<&str> = pidfile.lines().map(str::trim).collect();
    lines.get(3) == Some(&port.to_string().as_str()) && lines.get(7) == Some(&"ready")
}
