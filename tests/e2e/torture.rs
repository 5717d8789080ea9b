//! Kill -9 torture: jobd is killed at varied moments, ten times, during a 1,500-job run, then
//! restarted to drain. Afterwards every job is done exactly once, every blob verifies against its
//! sha256 and the served bytes, and no stray file is left in blob_dir.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use jobd_testkit::images;
use jobd_testkit::server::{Reply, TestServer};

use crate::support::{Env, files_under, finish, sha256_hex, signal, wait_until};

const JOBS: usize = 1500;
const KILLS: usize = 10;

/// A tiny LCG: kill moments vary, yet are the same on every run, so a failure can be replayed.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// Starts jobd with its log in a file: a pipe nobody reads would fill up and stall the daemon.
fn start(env: &Env, log: &Path, args: &[&str]) -> Child {
    let log = File::create(log).expect("log file");
    env.jobd(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start jobd")
}

fn read_log(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

#[test]
fn kill_9_ten_times_during_a_run_loses_nothing_and_records_nothing_twice() {
    let started = Instant::now();
    // A little latency per request, so that kills land mid-download as well as mid-record.
    let server = TestServer::start().with_wan(Duration::from_millis(5), None);
    let mut served = HashMap::new();
    let mut list = String::new();
    for i in 0..JOBS {
        let path = format!("/{i}.png");
        let bytes = images::png(8 + i as u32 % 13, 8, i as u64);
        let url = server.url(&path);
        list.push_str(&url);
        list.push('\n');
        served.insert(url, sha256_hex(&bytes));
        server.route(&path, Reply::image(bytes, "image/png"));
    }
    // A short lease brings a killed daemon's jobs back quickly (the reaper runs every second),
    // while a live daemon renews its own. Every expired lease counts as an attempt, so
    // max_attempts is far above what ten kills can use.
    let env = Env::with_config(
        "workers = 8\nlease_secs = 3\ngrace_secs = 1\n\
         [fetch]\ntimeout_secs = 2\nallow_ips = [\"127.0.0.1/32\"]\n\
         [retry]\nmax_attempts = 50\nbase_delay_ms = 10\nmax_delay_ms = 100\n",
    );
    std::fs::write(env.path("urls.txt"), list).unwrap();
    env.jobctl_ok(&["import", env.path("urls.txt").to_str().unwrap()]);

    let done = || env.count("SELECT COUNT(*) FROM jobs WHERE state = 'done'") as usize;
    let tmp = env.path("blobs").join(".tmp");
    let (mut landed, mut orphaned, mut parts) = (0, 0, 0);
    let mut rng = Lcg(0x6a6f_6264);
    for k in 0..KILLS {
        let log = env.path(&format!("jobd-{k}.log"));
        let mut daemon = start(&env, &log, &[]);
        let pid = daemon.id();
        let running = format!(
            "SELECT COUNT(*) FROM jobs WHERE state = 'running' AND worker LIKE '%:{pid}/%'"
        );
        if k % 5 == 4 {
            // Two kills land during start-up: while it opens the database, sweeps, reaps, or
            // has just claimed its first jobs.
            std::thread::sleep(Duration::from_millis(rng.below(60)));
        } else {
            // The others spread over the run, each once a share of the work is done and this
            // daemon holds jobs, then after a random beat: mid-claim, mid-download, mid-fsync.
            let target = JOBS * (k + 1) / (KILLS + 2) + rng.below(50) as usize;
            wait_until(&format!("{target} jobs done and some running"), || {
                let exited = daemon.try_wait().expect("try_wait");
                assert!(
                    exited.is_none(),
                    "jobd exited by itself: {}",
                    read_log(&log)
                );
                done() >= target && env.count(&running) > 0
            });
            std::thread::sleep(Duration::from_millis(rng.below(40)));
        }
        signal(&daemon, "KILL");
        let status = daemon.wait().expect("wait for jobd");
        assert_eq!(status.signal(), Some(9), "{status}: {}", read_log(&log));
        // Exact, unlike a look before the kill: the rows this daemon left behind as running.
        let left = env.count(&running);
        landed += usize::from(left > 0);
        orphaned += left;
        // Temporary files of the killed daemon, left for the next start-up to sweep.
        let mine = format!("/{pid}-");
        parts += files_under(&tmp)
            .iter()
            .filter(|f| f.to_string_lossy().contains(&mine))
            .count();
        eprintln!("kill {k}: {} done, {left} jobs orphaned", done());
    }

    // Not `Env::drain`: it reads the piped log only at exit, and hundreds of jobs' log lines
    // fill the 64 KiB pipe and stall the daemon.
    let log = env.path("jobd-drain.log");
    let out = finish(start(&env, &log, &["--drain"]));
    assert!(out.status.success(), "{}: {}", out.status, read_log(&log));

    // Every job is done, and exactly once: one `done` attempt each, and it is the job's last.
    let states = env.count("SELECT COUNT(*) FROM jobs WHERE state <> 'done'");
    assert_eq!(
        (env.count("SELECT COUNT(*) FROM jobs"), states),
        (JOBS as i64, 0)
    );
    let done_attempts = env.count("SELECT COUNT(*) FROM attempts WHERE outcome = 'done'");
    assert_eq!(done_attempts, JOBS as i64);
    let twice = env.count(
        "SELECT COUNT(*) FROM (SELECT job_id FROM attempts WHERE outcome = 'done'
                               GROUP BY job_id HAVING COUNT(*) > 1)",
    );
    assert_eq!(twice, 0, "jobs recorded done twice");
    let after_done = env.count(
        "SELECT COUNT(*) FROM attempts a JOIN attempts d ON d.job_id = a.job_id
         WHERE d.outcome = 'done' AND a.attempt > d.attempt",
    );
    assert_eq!(after_done, 0, "attempts started after a job was done");
    let claims = env.count(
        "SELECT COUNT(*) FROM jobs WHERE error IS NOT NULL OR worker IS NOT NULL
                                OR attempt_id IS NOT NULL OR lease_until IS NOT NULL",
    );
    assert_eq!(claims, 0, "done jobs that still hold a claim or an error");
    // jobs.attempts counts every try but those given back, lease expiries included.
    let miscounted = env.count(
        "SELECT COUNT(*) FROM jobs j
         WHERE attempts <> (SELECT COUNT(*) FROM attempts a WHERE a.job_id = j.id
                            AND a.outcome NOT IN ('interrupted', 'postponed'))",
    );
    assert_eq!(
        miscounted, 0,
        "jobs whose attempts column disagrees with their attempts"
    );
    // Nothing lost: every attempt ended, and each job a kill orphaned was reaped exactly once;
    // no live daemon's job expired (leases are renewed).
    let open = env.count("SELECT COUNT(*) FROM attempts WHERE outcome = 'running'");
    assert_eq!(open, 0, "attempts never finished");
    let expired = env.count("SELECT COUNT(*) FROM attempts WHERE outcome = 'lease_expired'");
    assert_eq!(
        expired, orphaned,
        "lease_expired attempts vs jobs left running"
    );

    // Every blob verifies against its recorded sha256 and against what the server served.
    let db = env.db();
    let mut stmt = db
        .prepare("SELECT id, url, sha256, blob_path, bytes FROM jobs")
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap();
    let mut referenced = HashSet::new();
    for row in rows {
        let (id, url, sha, blob_path, bytes): (i64, String, String, String, i64) = row.unwrap();
        let file = env.blob(&blob_path);
        assert_eq!(file.len() as i64, bytes, "job {id}: size of {blob_path}");
        assert_eq!(
            sha256_hex(&file),
            sha,
            "job {id}: {blob_path} vs its sha256"
        );
        assert_eq!(served[&url], sha, "job {id}: sha256 vs the bytes served");
        referenced.insert(env.path("blobs").join(blob_path));
    }
    assert_eq!(referenced.len(), JOBS, "distinct images share no blob");

    // No stray file: no `.part` left in blobs/.tmp, nothing a job does not reference.
    let stray: Vec<_> = files_under(&env.path("blobs"))
        .into_iter()
        .filter(|f| !referenced.contains(f))
        .collect();
    assert!(stray.is_empty(), "stray files in blob_dir: {stray:?}");

    // Refetches after a kill are expected: at most one request per attempt.
    let attempts = env.count("SELECT COUNT(*) FROM attempts");
    let hits = server.total_hits();
    assert!(
        hits >= JOBS && hits as i64 <= attempts,
        "{hits} requests for {attempts} attempts"
    );
    eprintln!(
        "torture: {KILLS} kills, {landed} with jobs running ({orphaned} jobs orphaned, \
         {parts} .part files left); {expired} lease_expired of {attempts} attempts; \
         {hits} requests for {JOBS} urls; {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
