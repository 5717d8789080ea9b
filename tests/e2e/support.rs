//! Test support: a temp dir per test with its own config, database and blob_dir; the real
//! binaries; a polling wait with one timeout; direct SQL for assertions.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use sha2::{Digest, Sha256};

/// The one deadline for every wait in the suite: generous, because CI machines are noisy.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// Polls `done` until it holds, or panics after [`TIMEOUT`] naming what was awaited.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < TIMEOUT,
            "timed out after {TIMEOUT:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    jobd::blobs::hex(&Sha256::digest(bytes))
}

/// A test's own world: `dir/daemon.toml`, `dir/jobd.db`, `dir/blobs`.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    /// A config allowing only 127.0.0.1, with short delays so retries happen within a test.
    /// `extra` is appended to the top level (before the tables).
    pub fn new(extra: &str) -> Env {
        Env::with_config(&format!(
            "{extra}\nworkers = 4\ngrace_secs = 2\nlease_secs = 60\n\
             [fetch]\ntimeout_secs = 20\nallow_ips = [\"127.0.0.1/32\"]\n\
             [retry]\nmax_attempts = 3\nbase_delay_ms = 50\nmax_delay_ms = 200\n"
        ))
    }

    pub fn with_config(config: &str) -> Env {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("daemon.toml"), config).expect("write config");
        Env { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn config(&self) -> PathBuf {
        self.path("daemon.toml")
    }

    pub fn db(&self) -> Connection {
        let conn = Connection::open(self.path("jobd.db")).expect("open db");
        conn.busy_timeout(Duration::from_secs(10))
            .expect("busy timeout");
        conn
    }

    pub fn jobctl(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_jobctl"))
            .arg("--config")
            .arg(self.config())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run jobctl")
    }

    /// Runs jobctl with `input` on its stdin.
    pub fn jobctl_with_input(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_jobctl"))
            .arg("--config")
            .arg(self.config())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run jobctl");
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        let writer = {
            let input = input.to_vec();
            std::thread::spawn(move || stdin.write_all(&input))
        };
        let out = finish(child);
        writer
            .join()
            .expect("stdin writer")
            .expect("jobctl read its input");
        out
    }

    /// Runs jobctl and asserts success, returning stdout.
    pub fn jobctl_ok(&self, args: &[&str]) -> String {
        let out = self.jobctl(args);
        assert!(
            out.status.success(),
            "jobctl {args:?} failed: {}",
            show(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn jobd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_jobd"));
        cmd.arg("--config").arg(self.config()).args(args);
        cmd.env("JOBD_LOG", "debug");
        // Every daemon in the suite runs under a proxy setting that would break its fetches if it
        // were obeyed: a proxy would resolve targets out of the address guard's sight.
        for var in [
            "HTTP_PROXY",
            "http_proxy",
            "HTTPS_PROXY",
            "https_proxy",
            "ALL_PROXY",
            "all_proxy",
        ] {
            cmd.env(var, "http://127.0.0.1:9");
        }
        cmd
    }

    /// Runs `jobd --drain` to the end and asserts it exits 0 within the timeout.
    pub fn drain(&self, args: &[&str]) -> Output {
        let mut all = vec!["--drain"];
        all.extend_from_slice(args);
        let child = self
            .jobd(&all)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start jobd");
        let out = finish(child);
        assert!(out.status.success(), "jobd --drain failed: {}", show(&out));
        out
    }

    /// Adds jobs through jobctl; returns their ids.
    pub fn add(&self, urls: &[String]) -> Vec<i64> {
        let mut args = vec!["add"];
        args.extend(urls.iter().map(String::as_str));
        self.jobctl_ok(&args)
            .lines()
            .map(|l| l.trim().parse().expect("an id per line"))
            .collect()
    }

    pub fn job(&self, id: i64) -> JobState {
        self.db()
            .query_row(
                "SELECT state, attempts, error, http_status, sha256, blob_path, width, height, mime
                 FROM jobs WHERE id = ?1",
                [id],
                |r| {
                    Ok(JobState {
                        state: r.get(0)?,
                        attempts: r.get(1)?,
                        error: r.get(2)?,
                        http_status: r.get(3)?,
                        sha256: r.get(4)?,
                        blob_path: r.get(5)?,
                        width: r.get(6)?,
                        height: r.get(7)?,
                        mime: r.get(8)?,
                    })
                },
            )
            .expect("job row")
    }

    pub fn count(&self, sql: &str) -> i64 {
        self.db().query_row(sql, [], |r| r.get(0)).expect(sql)
    }

    pub fn outcomes(&self, id: i64) -> Vec<String> {
        let db = self.db();
        let mut stmt = db
            .prepare("SELECT outcome FROM attempts WHERE job_id = ?1 ORDER BY attempt")
            .unwrap();
        stmt.query_map([id], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    pub fn blob(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.path("blobs").join(rel)).expect("blob file")
    }
}

impl Drop for Env {
    /// A test that fails half-way leaves its daemons running: end every process that was started
    /// with this test's config, so none outlives the test.
    fn drop(&mut self) {
        let config = self.config();
        let needle = config.as_os_str().as_encoded_bytes();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            if pid != std::process::id() && cmdline.windows(needle.len()).any(|w| w == needle) {
                let _ = Command::new("kill")
                    .arg("-KILL")
                    .arg(pid.to_string())
                    .status();
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct JobState {
    pub state: String,
    pub attempts: i64,
    pub error: Option<String>,
    pub http_status: Option<i64>,
    pub sha256: Option<String>,
    pub blob_path: Option<String>,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub mime: Option<String>,
}

impl JobState {
    pub fn error(&self) -> &str {
        self.error.as_deref().unwrap_or("")
    }
}

/// Waits for a child with the suite's timeout, killing it if it hangs. Its pipes are read while
/// it runs: a daemon whose log filled a 64 KiB pipe would otherwise block forever.
pub fn finish(mut child: Child) -> Output {
    fn drain(
        pipe: Option<impl std::io::Read + Send + 'static>,
    ) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut buf);
            }
            buf
        })
    }
    let (stdout, stderr) = (drain(child.stdout.take()), drain(child.stderr.take()));
    let start = Instant::now();
    let (status, hung) = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break (status, false);
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            break (child.wait().expect("wait"), true);
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    };
    assert!(
        !hung,
        "process did not exit within {TIMEOUT:?}: {}",
        show(&out)
    );
    out
}

/// A process's exit status, stdout and stderr, for assertion messages.
pub fn show(out: &Output) -> String {
    format!(
        "{}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Sends a signal to a child process with the `kill` command (no libc binding needed).
pub fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} failed");
}

pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// A running daemon whose stderr is collected as it comes, so a test can wait for a log line.
pub struct Logged {
    pub child: Child,
    log: std::sync::Arc<std::sync::Mutex<String>>,
    reader: std::thread::JoinHandle<()>,
}

impl Logged {
    pub fn spawn(mut cmd: Command) -> Logged {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (mut stderr, sink) = (child.stderr.take().expect("stderr"), log.clone());
        let reader = std::thread::spawn(move || {
            use std::io::Read;
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Logged { child, log, reader }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn wait_for_log(&self, words: &str) {
        wait_until(&format!("{words:?} in the log"), || {
            self.log().contains(words)
        });
    }

    /// Waits for the process (with the suite's timeout); returns its output and whole log.
    pub fn finish(self) -> (Output, String) {
        let out = finish(self.child);
        self.reader.join().expect("log reader");
        let log = self.log.lock().unwrap().clone();
        (out, log)
    }
}
