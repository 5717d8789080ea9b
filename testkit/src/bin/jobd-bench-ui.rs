//! jobd-bench-ui: the dashboard's targets (issue 15), for `scripts/bench.sh ui`.
//!
//! `jobd-bench-ui --backend sqlite|postgres --jobs N --photo FILE [--poll-secs S] [--clients C]
//! [--hold]`
//!
//! Fills a fresh database (an SQLite file, or a database on a throwaway PostgreSQL server) with N
//! jobs through the store, as jobd would leave them: 89 % queued, 10 % done (each with its done
//! attempt) and 1 % failed, over 50 hosts; records FILE (a photo) as one more done job's blob;
//! starts the release `jobctl serve` on it; then times, over loopback HTTP:
//! - the overview (`GET /`) as watchers get it, each request a second after the last, when the
//!   server's figures have gone stale (median and worst of 10); and the first page of a fresh
//!   server, which waits while every figure is read (median and worst of 5), right after the
//!   seeding (`overview_cold_fresh`) and, on PostgreSQL, again once autovacuum has been through
//!   the tables (`overview_cold`; it waits up to 10 minutes for that);
//! - the photo's thumbnail made afresh (its cache file removed before each of 5 requests), and
//!   served from the cache (median of 50);
//! - C clients (default 50) each asking for the overview's live part every second for S seconds
//!   (default 30), as the page's script does: the CPU the server used over that time, as a
//!   share of one core (`jobctl serve`'s own, plus on PostgreSQL that of the server processes
//!   serving its connections).
//!
//! Prints `name value` lines on stdout. With `--hold` it stops after the seeding, says where the
//! database is, and goes on when its standard input closes: time for EXPLAIN by hand.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use jobd::job::{Outcome, Report, Stored};
use jobd::store::{self, ClaimOptions, Database, NewJob, Store};
use jobd::validate::Level;
use sha2::{Digest, Sha256};

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "jobd-bench-ui: {e}\nusage: jobd-bench-ui --backend sqlite|postgres --jobs N --photo FILE [--poll-secs S] [--clients C] [--hold]"
            );
            ExitCode::from(2)
        }
    }
}

struct Options {
    postgres: bool,
    jobs: usize,
    photo: PathBuf,
    poll_secs: u64,
    clients: usize,
    /// Keep the seeded database until stdin closes, before timing anything (for EXPLAIN).
    hold: bool,
}

fn options(args: Vec<String>) -> Result<Options, String> {
    let mut o = Options {
        postgres: false,
        jobs: 1_000_000,
        photo: PathBuf::new(),
        poll_secs: 30,
        clients: 50,
        hold: false,
    };
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        if flag == "--hold" {
            o.hold = true;
            continue;
        }
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let number = || value.parse::<usize>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--backend" => o.postgres = value == "postgres",
            "--jobs" => o.jobs = number()?,
            "--photo" => o.photo = PathBuf::from(&value),
            "--poll-secs" => o.poll_secs = number()? as u64,
            "--clients" => o.clients = number()?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if o.photo.as_os_str().is_empty() {
        return Err("--photo is required".into());
    }
    Ok(o)
}

fn run(args: Vec<String>) -> Result<(), String> {
    let o = options(args)?;
    let dir = Folder(std::env::temp_dir().join(format!("jobd-bench-ui-{}", std::process::id())));
    std::fs::create_dir_all(dir.path()).map_err(|e| e.to_string())?;
    let pg = o.postgres.then(jobd_testkit::postgres::TestPostgres::start);
    let url = pg.as_ref().map(|pg| pg.fresh_database());
    let database = match &url {
        Some(url) => Database::parse(url, Path::new("")),
        None => Database::Sqlite(dir.path().join("jobd.db")),
    };
    let blob_dir = dir.path().join("blobs");
    let started = Instant::now();
    let store = store::open_for_jobctl(&database).map_err(|e| e.to_string())?;
    let sha = seed(&*store, o.jobs, &o.photo, &blob_dir)?;
    let seeded_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs_f64();
    eprintln!(
        "jobd-bench-ui: {} jobs seeded in {:.0} s in {database}",
        o.jobs,
        started.elapsed().as_secs_f64()
    );
    drop(store);
    if o.hold {
        let at = url.clone().unwrap_or_else(|| database.to_string());
        eprintln!("jobd-bench-ui: holding {at} until stdin closes");
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
    }

    let config = dir.path().join("daemon.toml");
    let db_line = match &url {
        Some(url) => format!("database = \"{url}\""),
        None => "database = \"jobd.db\"".into(),
    };
    std::fs::write(&config, format!("{db_line}\nblob_dir = \"blobs\"\n"))
        .map_err(|e| e.to_string())?;
    let mut serve = Serve::start(&config)?;
    let db_name = url
        .as_deref()
        .and_then(|u| u.rsplit('/').next())
        .map(String::from);

    // The overview as a watcher gets it: every request a second after the last, when the figures
    // have gone stale (they are served while one read refreshes them).
    let want = format!("id=\"count-queued\">{}<", group(o.jobs as i64 * 89 / 100));
    // The first page reads the figures while it waits (timed below, on fresh servers).
    get(serve.port, "/", &[])?;
    let mut times = Vec::new();
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(1_100));
        let (ms, body) = get(serve.port, "/", &[])?;
        if !body.contains(&want) {
            return Err(format!("the overview does not show the queue:\n{body}"));
        }
        times.push(ms);
    }
    println!("overview_ms_median {:.1}", median(&mut times.clone()));
    println!(
        "overview_ms_max {:.1}",
        times.iter().cloned().fold(0.0, f64::max)
    );
    // The first page of a fresh server, which reads every figure while it waits: right after the
    // seeding, and (on PostgreSQL) again once autovacuum has been through the tables, as it
    // does by itself within a minute or so of a bulk change. Until then PostgreSQL's
    // index-only scans still visit the rows (no page is marked all-visible yet) and its planner
    // has no statistics: the figures are as exact, only slower.
    let cold = |key: &str| -> Result<(), String> {
        let mut times = Vec::new();
        for _ in 0..5 {
            let mut fresh = Serve::start(&config)?;
            let (ms, body) = get(fresh.port, "/", &[])?;
            if !body.contains(&want) {
                return Err(format!("the overview does not show the queue:\n{body}"));
            }
            times.push(ms);
            fresh.stop();
        }
        println!("{key}_ms_median {:.1}", median(&mut times.clone()));
        println!(
            "{key}_ms_max {:.1}",
            times.iter().cloned().fold(0.0, f64::max)
        );
        Ok(())
    };
    cold("overview_cold_fresh")?;
    if let Some(url) = &url {
        let waited = Instant::now();
        let done = autovacuumed(url, seeded_at, Duration::from_secs(600))?;
        println!("autovacuum_done {}", u8::from(done));
        println!("autovacuum_wait_s {:.0}", waited.elapsed().as_secs_f64());
    }
    cold("overview_cold")?;

    // The thumbnail, made afresh, then from the cache.
    let cached = blob_dir
        .join(".thumbs")
        .join(&sha[..2])
        .join(format!("{sha}.jpg"));
    let mut made = Vec::new();
    for _ in 0..5 {
        let _ = std::fs::remove_file(&cached);
        let (ms, _) = get(serve.port, &format!("/thumbs/{sha}"), &[])?;
        if !cached.exists() {
            return Err("the thumbnail was not made (a placeholder?)".into());
        }
        made.push(ms);
    }
    let mut hits = Vec::new();
    for _ in 0..50 {
        hits.push(get(serve.port, &format!("/thumbs/{sha}"), &[])?.0);
    }
    let photo_len = std::fs::metadata(&o.photo)
        .map_err(|e| e.to_string())?
        .len();
    println!("photo_mb {:.1}", photo_len as f64 / 1e6);
    println!("thumbnail_ms_median {:.1}", median(&mut made));
    println!("thumbnail_cached_ms_median {:.2}", median(&mut hits));

    // Many watchers.
    let cpu_before = serve.cpu_seconds() + db_cpu_seconds(db_name.as_deref());
    let wall = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let (answered, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let clients: Vec<_> = (0..o.clients)
        .map(|i| {
            let (stop, answered, failed, port) =
                (stop.clone(), answered.clone(), failed.clone(), serve.port);
            std::thread::spawn(move || {
                // Spread over the second, as people's browsers would be.
                std::thread::sleep(Duration::from_millis((i as u64 * 1_000) / 50 % 1_000));
                while !stop.load(Ordering::Relaxed) {
                    let tick = Instant::now();
                    match get(port, "/", &[("X-Partial", "1")]) {
                        Ok(_) => answered.fetch_add(1, Ordering::Relaxed),
                        Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                    };
                    std::thread::sleep(Duration::from_secs(1).saturating_sub(tick.elapsed()));
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(o.poll_secs));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        let _ = c.join();
    }
    let secs = wall.elapsed().as_secs_f64();
    let cpu = serve.cpu_seconds() + db_cpu_seconds(db_name.as_deref()) - cpu_before;
    println!("poll_requests {}", answered.load(Ordering::Relaxed));
    println!("poll_failures {}", failed.load(Ordering::Relaxed));
    println!("poll_cpu_percent_of_one_core {:.2}", cpu / secs * 100.0);
    serve.stop();
    drop(pg);
    Ok(())
}

/// Waits until autovacuum (or a VACUUM and an ANALYZE) has been through `jobs` and `attempts`
/// since `since` (Unix seconds), polling every second up to `deadline`. Whether it has.
fn autovacuumed(url: &str, since: f64, deadline: Duration) -> Result<bool, String> {
    let mut client = postgres::Client::connect(url, postgres::NoTls).map_err(|e| e.to_string())?;
    let start = Instant::now();
    loop {
        let n: i64 = client
            .query_one(
                "SELECT COUNT(*) FROM pg_stat_user_tables
                 WHERE relname IN ('jobs', 'attempts')
                   AND extract(epoch FROM GREATEST(last_autovacuum, last_vacuum))::float8 >= $1
                   AND extract(epoch FROM GREATEST(last_autoanalyze, last_analyze))::float8 >= $1",
                &[&since],
            )
            .and_then(|r| r.try_get(0))
            .map_err(|e| e.to_string())?;
        if n == 2 {
            return Ok(true);
        }
        if start.elapsed() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// A temporary folder, removed when dropped.
struct Folder(PathBuf);

impl Folder {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Folder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// 1234567 as the dashboard writes it: "1,234,567".
fn group(n: i64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The queue: `jobs` jobs over 50 hosts, 10 % done, 1 % failed, the rest queued; then the photo
/// as one more done job, its blob in place. Returns the photo's sha256.
fn seed(store: &dyn Store, jobs: usize, photo: &Path, blob_dir: &Path) -> Result<String, String> {
    let mut batches = (0..jobs.div_ceil(50_000)).map(|b| {
        (b * 50_000..((b + 1) * 50_000).min(jobs))
            .map(|i| NewJob::new(format!("https://img{}.example.org/photos/{i}.jpg", i % 50)))
            .collect::<Vec<_>>()
    });
    store
        .import(&mut batches, false, &mut |_| {})
        .map_err(|e| e.to_string())?;
    let (done, failed) = (jobs / 10, jobs / 100);
    let claim = |n: usize| {
        store
            .claim("bench:1/w0", n, ClaimOptions::lease(600_000))
            .map_err(|e| e.to_string())
    };
    let mut left = done;
    while left > 0 {
        let claimed = claim(left.min(1_000))?;
        let reports: Vec<Report> = claimed
            .iter()
            .map(|c| done_report(&format!("{:064x}", c.job_id), 180_000))
            .collect();
        let items: Vec<_> = claimed.iter().zip(&reports).collect();
        store.record(&items).map_err(|e| e.to_string())?;
        left -= claimed.len();
    }
    let errors = [
        "HTTP 404",
        "HTTP 403",
        "timed out after 120 s",
        "not an image: text/html",
    ];
    let mut left = failed;
    while left > 0 {
        let claimed = claim(left.min(1_000))?;
        let reports: Vec<Report> = claimed
            .iter()
            .map(|c| {
                Report::new(Outcome::Failed {
                    error: errors[c.job_id as usize % errors.len()].into(),
                })
            })
            .collect();
        let items: Vec<_> = claimed.iter().zip(&reports).collect();
        store.record(&items).map_err(|e| e.to_string())?;
        left -= claimed.len();
    }
    // The photo: one more job, done, its blob where jobd would have put it.
    let bytes = std::fs::read(photo).map_err(|e| format!("{}: {e}", photo.display()))?;
    let sha = hex(&Sha256::digest(&bytes));
    let report = done_report(&sha, bytes.len() as u64);
    let rel = match &report.outcome {
        Outcome::Done(stored) => stored.blob_path.clone(),
        _ => unreachable!(),
    };
    let path = blob_dir.join(&rel);
    std::fs::create_dir_all(path.parent().unwrap_or(blob_dir)).map_err(|e| e.to_string())?;
    std::fs::write(&path, &bytes).map_err(|e| e.to_string())?;
    // Claimed before every queued job by its priority, and recorded done.
    store
        .add(&[NewJob {
            priority: 10,
            ..NewJob::new("https://img0.example.org/photos/the-photo.jpg")
        }])
        .map_err(|e| e.to_string())?;
    let claimed = claim(1)?;
    let photo_job = claimed.first().ok_or("the photo's job was not claimed")?;
    store
        .record(&[(photo_job, &report)])
        .map_err(|e| e.to_string())?;
    Ok(sha)
}

fn done_report(sha: &str, bytes: u64) -> Report {
    Report {
        http_status: Some(200),
        bytes: Some(bytes),
        ttfb_ms: Some(40),
        download_ms: Some(120),
        ..Report::new(Outcome::Done(Stored {
            mime: "image/jpeg",
            blob_path: format!("{}/{}/{sha}.jpg", &sha[..2], &sha[2..4]),
            sha256: sha.to_string(),
            bytes,
            width: 6000,
            height: 4000,
            validation: Level::Structure,
            validation_note: None,
        }))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One GET over a fresh connection, as a browser's request: (ms to the last byte, body).
fn get(port: u16, path: &str, headers: &[(&str, &str)]) -> Result<(f64, String), String> {
    let start = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n");
    for (n, v) in headers {
        request.push_str(&format!("{n}: {v}\r\n"));
    }
    request.push_str("\r\n");
    s.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    let text = String::from_utf8_lossy(&raw).into_owned();
    if !text.starts_with("HTTP/1.1 200") {
        return Err(format!("GET {path}: {}", text.lines().next().unwrap_or("")));
    }
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((ms, body))
}

struct Serve {
    child: Child,
    port: u16,
}

impl Serve {
    fn start(config: &Path) -> Result<Serve, String> {
        let jobctl = std::env::current_exe()
            .map_err(|e| e.to_string())?
            .with_file_name("jobctl");
        let mut child = Command::new(&jobctl)
            .arg("--config")
            .arg(config)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("{}: {e}", jobctl.display()))?;
        let mut out = child.stdout.take().ok_or("no stdout")?;
        let mut line = Vec::new();
        let mut byte = [0u8];
        while out.read(&mut byte).map_err(|e| e.to_string())? == 1 && byte[0] != b'\n' {
            line.push(byte[0]);
        }
        let line = String::from_utf8_lossy(&line).into_owned();
        let port = line
            .split("127.0.0.1:")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .and_then(|p| p.parse().ok())
            .ok_or(format!("jobctl serve said {line:?}"))?;
        Ok(Serve { child, port })
    }

    fn cpu_seconds(&self) -> f64 {
        proc_cpu_seconds(self.child.id())
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A process's CPU time (user and system), from /proc.
fn proc_cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // The fields after the command's closing parenthesis; utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, f)| f)
        .split_whitespace()
        .collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<f64>().ok())
        .sum();
    // SAFETY: sysconf only reads a constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks / hz.max(1.0)
}

/// The CPU time of the PostgreSQL processes serving the database `name` (their command line
/// names it), or 0.
fn db_cpu_seconds(name: Option<&str>) -> f64 {
    let Some(name) = name else { return 0.0 };
    let mut total = 0.0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(name) {
            total += proc_cpu_seconds(pid);
        }
    }
    total
}
