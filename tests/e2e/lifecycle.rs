//! The daemon's life: picking up rows inserted by others, SIGTERM, a panicking worker.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use jobd::config::RetryConfig;
use jobd::job::{Applied, Claimed, Outcome, Report, State, Stored};
use jobd::store::{
    ClaimOptions, FleetState, HostChange, Jobs, NewJob, Queue, SqliteStore, StoreError, Watch,
};
use jobd::supervisor::{self, Options};
use jobd::worker::{Handled, Handler};
use jobd_testkit::images;
use jobd_testkit::server::{Fault, Reply, TestServer};

use crate::support::{Env, Logged, finish, show, signal, wait_until};

#[test]
fn rows_inserted_by_another_process_are_picked_up_and_sigterm_exits_cleanly() {
    let server = TestServer::start();
    server.route("/a.png", Reply::image(images::png(4, 4, 1), "image/png"));
    server.route(
        "/slow.png",
        Reply::image(images::png(4, 4, 2), "image/png")
            .fault(Fault::Delay(Duration::from_secs(30))),
    );
    let env = Env::new("");
    env.jobctl_ok(&["stats"]);
    let daemon = env
        .jobd(&[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // A plain INSERT from another connection, as the sqlite3 shell does it.
    env.db()
        .execute("INSERT INTO jobs(url) VALUES (?1)", [server.url("/a.png")])
        .unwrap();
    wait_until("the inserted job to be done", || env.job(1).state == "done");

    // A job still in flight when SIGTERM arrives goes back to the queue after the grace period.
    env.db()
        .execute(
            "INSERT INTO jobs(url) VALUES (?1)",
            [server.url("/slow.png")],
        )
        .unwrap();
    wait_until("the slow job to be running", || {
        env.job(2).state == "running"
    });
    signal(&daemon, "TERM");
    let out = finish(daemon);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(
        env.count("SELECT COUNT(*) FROM jobs WHERE state = 'running'"),
        0
    );
    let slow = env.job(2);
    assert_eq!(
        (slow.state.as_str(), slow.attempts),
        ("queued", 0),
        "{slow:?}"
    );
    assert_eq!(env.outcomes(2), ["interrupted"]);
}

#[test]
fn sigterm_on_an_idle_daemon_exits_zero_at_once() {
    let env = Env::new("");
    let daemon = env
        .jobd(&[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the database to exist", || env.path("jobd.db").exists());
    signal(&daemon, "INT");
    let out = finish(daemon);
    assert!(out.status.success(), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("stopped"));
}

/// A store with `n` queued jobs for in-process supervisor tests (their URLs are never fetched).
fn store_with_jobs(env: &Env, n: usize) -> SqliteStore {
    let store = SqliteStore::open(&env.path("jobd.db"), 4).unwrap();
    let jobs: Vec<NewJob> = (0..n)
        .map(|i| NewJob::new(format!("http://127.0.0.1/{i}")))
        .collect();
    store.add(&jobs).unwrap();
    store
}

/// Supervisor options with short ticks and retries, for in-process tests.
fn quick_options(workers: usize, drain: bool) -> Options {
    Options {
        workers,
        drain,
        poll_interval: Duration::from_millis(5),
        grace: Duration::from_secs(5),
        lease: Duration::from_secs(60),
        retention: None,
        retry: RetryConfig {
            max_attempts: 3,
            base_delay_ms: 10,
            max_delay_ms: 20,
        },
    }
}

/// A report of a done job that stored no blob, for handlers that do not download.
fn done_without_blob() -> Handled {
    Handled::Report(Report::new(Outcome::Done(Stored {
        mime: "image/png",
        sha256: "0".repeat(64),
        blob_path: "none".into(),
        bytes: 0,
        width: 1,
        height: 1,
        validation: jobd::validate::Level::Structure,
        validation_note: None,
    })))
}

/// Panics on its first job, then stores every job as done.
struct PanicsOnce {
    panicked: AtomicBool,
    handled: AtomicUsize,
}

impl Handler for PanicsOnce {
    fn handle(&self, job: &Claimed) -> Handled {
        if !self.panicked.swap(true, Ordering::SeqCst) {
            panic!("boom on job {}", job.job_id);
        }
        self.handled.fetch_add(1, Ordering::SeqCst);
        done_without_blob()
    }
}

#[test]
fn a_panicking_worker_is_replaced_and_its_job_requeued() {
    let env = Env::new("");
    let store = store_with_jobs(&env, 5);
    let handler = Arc::new(PanicsOnce {
        panicked: AtomicBool::new(false),
        handled: AtomicUsize::new(0),
    });
    // One worker: the queue can only drain if the panicked worker is replaced.
    let options = quick_options(1, true);
    supervisor::run(
        Arc::new(store),
        handler.clone(),
        Arc::new(jobd::metrics::Metrics::new(1)),
        Arc::new(jobd::committer::Committer::new(
            None,
            RetryConfig::default(),
        )),
        &options,
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!(handler.handled.load(Ordering::SeqCst), 5);
    assert_eq!(
        env.count("SELECT COUNT(*) FROM jobs WHERE state = 'done'"),
        5
    );
    let error: String = env
        .db()
        .query_row(
            "SELECT error FROM attempts WHERE outcome = 'retry'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(error.contains("worker panicked: boom on job"), "{error}");
}

/// A daemon with a 3 s lease, stopping (first SIGTERM seen) while it downloads `/slow.png`,
/// which takes `delay` to answer.
struct Stopping {
    server: TestServer,
    env: Env,
    job: i64,
    daemon: Logged,
}

fn stop_mid_download(grace_secs: u64, delay: Duration) -> Stopping {
    let server = TestServer::start();
    server.route(
        "/slow.png",
        Reply::image(images::png(4, 4, 5), "image/png").fault(Fault::Delay(delay)),
    );
    let env = Env::with_config(&format!(
        "grace_secs = {grace_secs}\nlease_secs = 3\n[fetch]\nallow_ips = [\"127.0.0.1/32\"]\n"
    ));
    let job = env.add(&[server.url("/slow.png")])[0];
    let daemon = Logged::spawn(env.jobd(&[]));
    wait_until("the job to be running", || env.job(job).state == "running");
    signal(&daemon.child, "TERM");
    // Signals of one kind merge while pending: a second one may only follow once this is seen.
    daemon.wait_for_log("stop signal received");
    Stopping {
        server,
        env,
        job,
        daemon,
    }
}

#[test]
fn a_second_signal_exits_at_once_and_the_lease_brings_the_job_back() {
    // A long grace period: only the second signal can make jobd exit quickly.
    let Stopping {
        server,
        env,
        job,
        daemon,
    } = stop_mid_download(60, Duration::from_secs(30));
    signal(&daemon.child, "TERM");
    let (out, log) = daemon.finish();
    assert_eq!(out.status.code(), Some(128 + 15), "{}\n{log}", show(&out));
    // The job was left running; any daemon's reaper returns it once the lease runs out.
    assert_eq!(env.job(job).state, "running");
    server.route("/slow.png", Reply::image(images::png(4, 4, 5), "image/png"));
    env.drain(&[]);
    assert_eq!(env.job(job).state, "done");
    assert_eq!(env.outcomes(job), ["lease_expired", "done"]);
}

/// Regression: leases were not renewed during the grace period, so a second daemon reaped a job
/// that the stopping daemon was still downloading, and the URL was fetched twice.
#[test]
fn leases_are_renewed_during_the_grace_period() {
    let Stopping {
        server,
        env,
        job,
        daemon,
    } = stop_mid_download(20, Duration::from_secs(5));
    // Another daemon on the same file, reaping expired leases while the first one finishes.
    let other = Logged::spawn(env.jobd(&["--drain"]));
    let (out, log) = daemon.finish();
    assert!(out.status.success(), "{}\n{log}", show(&out));
    let (out, other_log) = other.finish();
    assert!(out.status.success(), "{}\n{other_log}", show(&out));
    assert_eq!(env.outcomes(job), ["done"], "{log}\n{other_log}");
    assert_eq!(server.hits("/slow.png"), 1);
}

#[test]
fn retention_prunes_old_finished_jobs_and_keeps_the_rest() {
    let server = TestServer::start();
    server.route("/new.png", Reply::image(images::png(4, 4, 9), "image/png"));
    let env = Env::new("retention_days = 2");
    env.jobctl_ok(&["stats"]);
    let three_days_ago = jobd::job::now_ms() - 3 * 86_400_000;
    let db = env.db();
    for (state, finished) in [
        ("done", three_days_ago),
        ("failed", three_days_ago),
        ("done", jobd::job::now_ms()),
    ] {
        db.execute(
            "INSERT INTO jobs (url, state, finished_at) VALUES ('http://127.0.0.1/x', ?1, ?2)",
            rusqlite::params![state, finished],
        )
        .unwrap();
        db.execute(
            "INSERT INTO attempts (job_id, attempt, started_at, finished_at, outcome)
             VALUES (last_insert_rowid(), 1, ?1, ?1, ?2)",
            rusqlite::params![finished, state],
        )
        .unwrap();
    }
    db.execute(
        "INSERT INTO jobs (url) VALUES (?1)",
        [server.url("/new.png")],
    )
    .unwrap();
    drop(db);
    env.drain(&[]);
    assert_eq!(
        env.count("SELECT COUNT(*) FROM jobs"),
        2,
        "the two old jobs are gone"
    );
    assert_eq!(
        env.count("SELECT COUNT(*) FROM jobs WHERE state = 'done'"),
        2
    );
    assert_eq!(
        env.count("SELECT COUNT(*) FROM attempts WHERE job_id IN (1, 2)"),
        0
    );
}

/// Takes its time over every job, and says how many it has started.
struct Slow {
    started: AtomicUsize,
}

impl Handler for Slow {
    fn handle(&self, _job: &Claimed) -> Handled {
        self.started.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(100));
        Handled::Report(Report::new(Outcome::Failed {
            error: "slow".into(),
        }))
    }
}

#[test]
fn a_shutdown_returns_every_job_not_finished_untouched() {
    let env = Env::new("");
    let store = store_with_jobs(&env, 40);
    let handler = Arc::new(Slow {
        started: AtomicUsize::new(0),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let options = quick_options(8, false);
    let run = {
        let (handler, stop) = (handler.clone(), stop.clone());
        std::thread::spawn(move || {
            let metrics = Arc::new(jobd::metrics::Metrics::new(8));
            let committer = Arc::new(jobd::committer::Committer::new(
                None,
                RetryConfig::default(),
            ));
            supervisor::run(
                Arc::new(store),
                handler,
                metrics,
                committer,
                &options,
                &stop,
            )
        })
    };
    wait_until("several jobs started", || {
        handler.started.load(Ordering::SeqCst) >= 8
    });
    stop.store(true, Ordering::SeqCst);
    run.join().unwrap().unwrap();
    // Jobs claimed in a batch but never started are back, untried and uncounted.
    assert_eq!(
        env.count("SELECT COUNT(*) FROM jobs WHERE state = 'running'"),
        0
    );
    let started = handler.started.load(Ordering::SeqCst) as i64;
    assert_eq!(
        env.count("SELECT COUNT(*) FROM jobs WHERE state = 'failed'"),
        started
    );
    assert_eq!(
        env.count("SELECT COUNT(*) FROM jobs WHERE state = 'queued' AND attempts = 0"),
        40 - started
    );
    assert_eq!(
        env.count("SELECT COUNT(*) FROM attempts"),
        started,
        "an untried job kept an attempt row"
    );
}

/// A queue whose first group commit panics (a bug in the committer's path), then works.
struct CommitPanicsOnce {
    inner: SqliteStore,
    panicked: AtomicBool,
}

impl Queue for CommitPanicsOnce {
    fn claim(
        &self,
        worker: &str,
        limit: usize,
        options: ClaimOptions,
    ) -> Result<Vec<Claimed>, StoreError> {
        self.inner.claim(worker, limit, options)
    }
    fn record(&self, items: &[(&Claimed, &Report)]) -> Result<Vec<Applied>, StoreError> {
        if !self.panicked.swap(true, Ordering::SeqCst) {
            panic!("boom in the committer");
        }
        self.inner.record(items)
    }
    fn extend_leases(&self, attempt_ids: &[i64], lease_ms: i64) -> Result<(), StoreError> {
        self.inner.extend_leases(attempt_ids, lease_ms)
    }
    fn reap_expired(&self, default_max_attempts: u32) -> Result<usize, StoreError> {
        self.inner.reap_expired(default_max_attempts)
    }
    fn prune(&self, before: i64, states: &[State], batch: usize) -> Result<usize, StoreError> {
        self.inner.prune(before, states, batch)
    }
    fn watch(&self) -> Result<Box<dyn Watch>, StoreError> {
        self.inner.watch()
    }
    fn record_host(&self, host: &str, change: HostChange) -> Result<(), StoreError> {
        self.inner.record_host(host, change)
    }
    fn fleet(&self) -> Result<FleetState, StoreError> {
        self.inner.fleet()
    }
}

/// Records every job as done, without a blob.
struct AllDone;

impl Handler for AllDone {
    fn handle(&self, _job: &Claimed) -> Handled {
        done_without_blob()
    }
}

#[test]
fn a_dead_committer_is_replaced_and_the_leases_bring_its_jobs_back() {
    let env = Env::new("");
    let queue = CommitPanicsOnce {
        inner: store_with_jobs(&env, 5),
        panicked: AtomicBool::new(false),
    };
    let options = Options {
        lease: Duration::from_secs(3),
        ..quick_options(2, true)
    };
    supervisor::run(
        Arc::new(queue),
        Arc::new(AllDone),
        Arc::new(jobd::metrics::Metrics::new(2)),
        Arc::new(jobd::committer::Committer::new(
            None,
            RetryConfig::default(),
        )),
        &options,
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!(
        env.count("SELECT COUNT(*) FROM jobs WHERE state = 'done'"),
        5
    );
    assert!(env.count("SELECT COUNT(*) FROM attempts WHERE outcome = 'lease_expired'") >= 1);
}

/// Regression (issue 12): `jobd --drain` with a job due in 2 hours waited silently, even at
/// `JOBD_LOG=debug`, so a cron batch hung with no word why. It says what it waits for at start
/// and whenever that changes.
#[test]
fn drain_says_what_it_is_waiting_for() {
    let env = Env::new("");
    let later = env.jobctl_ok(&["add", "--at", "+2h", "https://example.org/later.png"]);
    let run_at = |id: &str| -> i64 {
        env.db()
            .query_row("SELECT run_at FROM jobs WHERE id = ?1", [id.trim()], |r| {
                r.get(0)
            })
            .unwrap()
    };
    let daemon = Logged::spawn(env.jobd(&["--drain"]));
    daemon.wait_for_log(&format!(
        "draining: waiting for 1 job scheduled for later; the next is due at {} (in 1 h 59 min)",
        jobd::logger::timestamp(run_at(&later))
    ));
    let sooner = env.jobctl_ok(&["add", "--at", "+1h", "https://example.org/sooner.png"]);
    daemon.wait_for_log(&format!(
        "draining: waiting for 2 jobs scheduled for later; the next is due at {}",
        jobd::logger::timestamp(run_at(&sooner))
    ));
    signal(&daemon.child, "TERM");
    let (out, log) = daemon.finish();
    assert!(out.status.success(), "{log}");
    assert_eq!(log.matches("draining: waiting for").count(), 2, "{log}");
}

/// A queue whose claim finds nothing although a job is due (as when its host is at its limit,
/// which the claim skips), counting claims and the supervisor's looks.
struct ClaimSkipsEverything {
    inner: SqliteStore,
    claims: Arc<AtomicUsize>,
    ticks: Arc<AtomicUsize>,
}

/// Counts the supervisor's ticks (each one call of `changed`).
struct CountingWatch {
    inner: Box<dyn Watch>,
    ticks: Arc<AtomicUsize>,
}

impl Watch for CountingWatch {
    fn changed(&mut self, wait: Duration) -> Result<bool, StoreError> {
        self.ticks.fetch_add(1, Ordering::SeqCst);
        self.inner.changed(wait)
    }
    fn next_due(&mut self) -> Result<Option<i64>, StoreError> {
        self.inner.next_due()
    }
    fn pending(&mut self) -> Result<bool, StoreError> {
        self.inner.pending()
    }
    fn counts(&mut self) -> Result<Vec<(State, i64)>, StoreError> {
        self.inner.counts()
    }
    fn queued_and_running(&mut self) -> Result<(i64, i64), StoreError> {
        self.inner.queued_and_running()
    }
}

impl Queue for ClaimSkipsEverything {
    fn claim(
        &self,
        _worker: &str,
        _limit: usize,
        _options: ClaimOptions,
    ) -> Result<Vec<Claimed>, StoreError> {
        self.claims.fetch_add(1, Ordering::SeqCst);
        Ok(Vec::new())
    }
    fn record(&self, items: &[(&Claimed, &Report)]) -> Result<Vec<Applied>, StoreError> {
        self.inner.record(items)
    }
    fn extend_leases(&self, attempt_ids: &[i64], lease_ms: i64) -> Result<(), StoreError> {
        self.inner.extend_leases(attempt_ids, lease_ms)
    }
    fn reap_expired(&self, default_max_attempts: u32) -> Result<usize, StoreError> {
        self.inner.reap_expired(default_max_attempts)
    }
    fn prune(&self, before: i64, states: &[State], batch: usize) -> Result<usize, StoreError> {
        self.inner.prune(before, states, batch)
    }
    fn record_host(&self, host: &str, change: HostChange) -> Result<(), StoreError> {
        self.inner.record_host(host, change)
    }
    fn fleet(&self) -> Result<FleetState, StoreError> {
        self.inner.fleet()
    }
    fn watch(&self) -> Result<Box<dyn Watch>, StoreError> {
        Ok(Box::new(CountingWatch {
            inner: self.inner.watch()?,
            ticks: self.ticks.clone(),
        }))
    }
}

/// Issue 14: a due job that the claim skips (its host is at its limit or paused) used to make the
/// supervisor wake the workers on every tick, and each woken worker claimed in vain: a saturated
/// host with a large queue then cost a core. Now idle workers are woken once per change, and
/// workers woken together make one empty claim between them.
#[test]
fn a_due_job_the_claim_skips_costs_one_claim_per_change_not_one_per_tick() {
    let env = Env::new("");
    let (claims, ticks) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let queue = ClaimSkipsEverything {
        inner: store_with_jobs(&env, 1),
        claims: claims.clone(),
        ticks: ticks.clone(),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let options = quick_options(4, false);
    let run = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let metrics = Arc::new(jobd::metrics::Metrics::new(4));
            let committer = Arc::new(jobd::committer::Committer::new(
                None,
                RetryConfig::default(),
            ));
            supervisor::run(
                Arc::new(queue),
                Arc::new(AllDone),
                metrics,
                committer,
                &options,
                &stop,
            )
        })
    };
    // Well over a hundred ticks (the poll interval is short), all with the job due.
    wait_until("the supervisor to tick a while", || {
        ticks.load(Ordering::SeqCst) >= 150
    });
    stop.store(true, Ordering::SeqCst);
    run.join().unwrap().unwrap();
    let claims = claims.load(Ordering::SeqCst);
    assert!(
        (1..=8).contains(&claims),
        "{claims} claims in {} ticks",
        ticks.load(Ordering::SeqCst)
    );
}
