//! The supervisor thread: keeps exactly `workers` worker threads alive, wakes them when work is
//! due, reaps expired leases, and runs the shutdown (grace period, then put the rest back).
//!
//! It notices rows written by other processes through the store's [`Watch`], which either is told
//! of them or looks cheaply on a short tick, so an idle daemon stays near 0% CPU.

use std::any::Any;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::committer::{Committer, Item};
use crate::job::{Applied, Claimed, Failure, Outcome, Reason, Report, State, now_ms};
use crate::lock;
use crate::metrics::Metrics;
use crate::retry;
use crate::store::{Queue, StoreError, Watch};
use crate::worker::{self, Handler, Shared, Slot, Wake};

#[derive(Debug, Clone)]
pub struct Options {
    pub workers: usize,
    /// Return once no job is queued or running (scheduled retries included).
    pub drain: bool,
    pub poll_interval: Duration,
    pub grace: Duration,
    pub lease: Duration,
    pub retry: crate::config::RetryConfig,
    /// Finished jobs older than this are pruned; None keeps them.
    pub retention: Option<Duration>,
}

struct Worker {
    name: String,
    slot: Slot,
    thread: JoinHandle<()>,
}

fn spawn(shared: &Arc<Shared>, name: String) -> Worker {
    let slot: Slot = Arc::new(Mutex::new(None));
    let (thread_shared, thread_slot, thread_name) = (shared.clone(), slot.clone(), name.clone());
    let thread = thread::Builder::new()
        .name(name.clone())
        .spawn(move || worker::run(&thread_shared, &thread_name, &thread_slot))
        .unwrap_or_else(|e| panic!("cannot start worker thread {name}: {e}"));
    Worker { name, slot, thread }
}

/// Runs until `stop` is set (a signal) or, with `drain`, until the queue is empty.
pub fn run(
    queue: Arc<dyn Queue>,
    handler: Arc<dyn Handler>,
    metrics: Arc<Metrics>,
    committer: Arc<Committer>,
    options: &Options,
    stop: &AtomicBool,
) -> Result<(), StoreError> {
    let shared = Arc::new(Shared {
        queue: queue.clone(),
        handler,
        metrics,
        committer,
        inbox: Mutex::new(VecDeque::new()),
        idle: AtomicUsize::new(0),
        found_nothing_at: AtomicU64::new(u64::MAX),
        claiming: Mutex::new(()),
        ahead: worker::ClaimAhead::new(options.workers),
        wake: Wake::default(),
        stopping: AtomicBool::new(false),
        lease_ms: options.lease.as_millis() as i64,
    });
    // A body that idle workers may help with wakes them, if any is idle.
    let for_waker = Arc::downgrade(&shared);
    shared.handler.set_waker(Box::new(move || {
        if let Some(shared) = for_waker.upgrade() {
            if shared.idle.load(Ordering::SeqCst) > 0 {
                shared.wake.notify();
            }
        }
    }));
    let mut watch = queue.watch()?;
    reap(&*queue, options);
    let mut committer = spawn_committer(&shared)?;
    let prefix = worker_prefix();
    let mut workers: Vec<Worker> = (0..options.workers)
        .map(|i| spawn(&shared, format!("{prefix}/w{i}")))
        .collect();
    log::info!("started {} workers", workers.len());

    let reap_every = (options.lease / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
    let extend_every = options.lease / 3;
    let (mut last_reap, mut last_extend) = (Instant::now(), Instant::now());
    let mut last_prune: Option<Instant> = None;
    let mut due = Due::default();
    let mut drain_wait = options.drain.then(DrainWait::default);
    let mut watch_failing = false;
    while !stop.load(Ordering::SeqCst) {
        for worker in &mut workers {
            if worker.thread.is_finished() {
                replace(worker, &shared, options);
            }
        }
        if committer.is_finished() {
            // Only a bug ends it early; what it held is lost, and the leases bring those jobs
            // back. A new one takes over what has arrived since.
            let panic = std::mem::replace(&mut committer, spawn_committer(&shared)?).join();
            log::error!(
                "the committer stopped ({}); restarted",
                panic
                    .err()
                    .map_or("no panic".into(), |p| panic_message(&*p))
            );
        }
        if last_extend.elapsed() >= extend_every {
            extend_leases(&shared, &workers, options.lease);
            last_extend = Instant::now();
        }
        if last_reap.elapsed() >= reap_every {
            reap(&*queue, options);
            last_reap = Instant::now();
        }
        if let Some(keep) = options.retention {
            if last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
                prune(&*queue, keep);
                last_prune = Some(Instant::now());
            }
        }
        let wait = wait_for(&*watch, &due, options.poll_interval);
        match tick(&mut *watch, &shared, &mut due, drain_wait.as_mut(), wait) {
            Ok(drained) => {
                if watch_failing {
                    log::info!("the database answers again");
                    watch_failing = false;
                }
                if drained {
                    log::info!("queue drained; stopping");
                    break;
                }
            }
            Err(e) => {
                if !watch_failing {
                    log::error!("cannot watch the queue (will keep trying): {e}");
                    watch_failing = true;
                }
                // The wait may not have happened: pause here instead of spinning.
                thread::sleep(options.poll_interval);
            }
        }
    }
    if stop.load(Ordering::SeqCst) {
        log::info!("stop signal received: claiming no more jobs");
    }
    shut_down(&shared, workers, committer, options.grace, options.lease);
    Ok(())
}

/// What the supervisor knows of the next due job.
struct Due {
    /// The earliest time a job may be claimed (the store leaves out hosts that are paused).
    at: Option<i64>,
    /// The workers were woken for `at`, and nothing has changed since.
    woken: bool,
    looked: Instant,
    /// The queue changed while every worker was busy: look once one waits.
    unseen: bool,
    /// Look again then, even if nothing changes: `at` was a guess (see [`Watch::ask_again_at`]).
    again: Option<i64>,
}

impl Default for Due {
    fn default() -> Due {
        Due {
            at: None,
            woken: false,
            looked: Instant::now(),
            unseen: false,
            again: None,
        }
    }
}

/// How often the supervisor looks at the queue even when nothing seems to have changed. A look
/// that finds a job due may cost a claim that walks past a paused host's whole queue (a tenth
/// of a second per million jobs on SQLite), so not too often.
const LOOK_EVERY: Duration = Duration::from_secs(30);

/// How long the supervisor waits for a change before it looks again on its own. A watcher that
/// is told of changes (PostgreSQL's NOTIFY, SQLite's files through inotify) lets it wait long,
/// but never past the next due time or a look it must make again: an idle daemon then wakes a
/// few times a second, not every `poll_interval_ms`. Its other duties (leases, the reaper, a
/// worker to replace, a stop signal) can wait that long.
fn wait_for(watch: &dyn Watch, due: &Due, poll_interval: Duration) -> Duration {
    if !watch.wakes_on_change() {
        return poll_interval;
    }
    let now = now_ms();
    [due.at.filter(|_| !due.woken), due.again]
        .into_iter()
        .flatten()
        .map(|t| Duration::from_millis(t.saturating_sub(now).max(0) as u64))
        .fold(WAIT_FOR_CHANGES.max(poll_interval), Duration::min)
}

/// How long a supervisor whose watcher is told of changes waits for one, at most.
const WAIT_FOR_CHANGES: Duration = Duration::from_millis(250);

/// One look at the queue, after waiting up to `wait` for a change (the loop's only pause): wakes
/// idle workers when a job is due. With `drain` (`--drain`), says what it waits for, and returns
/// true once nothing is left to do.
///
/// It looks when the queue changed, when the next job's time has come and the workers were not
/// woken for it yet, and every [`LOOK_EVERY`]. A due job that the claim skips (its host is at its
/// limit) therefore wakes the workers once, not on every tick: the next change (that host's
/// running job recorded) wakes them again. While every worker is busy there is no one to wake (a
/// worker that finishes claims on its own), so a change waits to be looked at until one is idle:
/// the daemon's own commits do not cost a look each.
fn tick(
    watch: &mut dyn Watch,
    shared: &Shared,
    due: &mut Due,
    drain: Option<&mut DrainWait>,
    wait: Duration,
) -> Result<bool, StoreError> {
    let changed = watch.changed(wait)? || due.unseen;
    let now = now_ms();
    due.unseen = changed && shared.idle.load(Ordering::SeqCst) == 0;
    let looked = (changed && !due.unseen)
        || due.again.is_some_and(|t| t <= now)
        || (due.at.is_some_and(|t| t <= now) && !due.woken)
        || due.looked.elapsed() >= LOOK_EVERY;
    if looked {
        due.at = watch.next_due()?;
        due.again = watch.ask_again_at();
        due.looked = Instant::now();
        due.woken = due.at.is_some_and(|t| t <= now);
        if due.woken {
            shared.wake.notify();
        }
    }
    let Some(drain) = drain else {
        return Ok(false);
    };
    if looked {
        drain.look(watch, due.at, now)?;
    }
    Ok(!watch.pending()?)
}

/// With `--drain`, what the daemon waits for when no job is due: a cron batch whose last job is
/// scheduled hours ahead must not hang without a word.
#[derive(Default)]
struct DrainWait {
    /// (jobs scheduled for later, the next due time) as last logged, while waiting.
    logged: Option<(i64, i64)>,
}

impl DrainWait {
    /// Logs the jobs scheduled for later and when the next is due, when no job is due now: at
    /// the first look and whenever either changes. Called only when the queue changed.
    fn look(
        &mut self,
        watch: &mut dyn Watch,
        next_due: Option<i64>,
        now: i64,
    ) -> Result<(), StoreError> {
        // The earliest queued job is in the future, so every queued job is.
        let Some(due) = next_due.filter(|&t| t > now) else {
            self.logged = None;
            return Ok(());
        };
        let (scheduled, running) = watch.queued_and_running()?;
        if self.logged == Some((scheduled, due)) {
            return Ok(());
        }
        self.logged = Some((scheduled, due));
        let running = match running {
            0 => String::new(),
            n => format!("; {n} running"),
        };
        log::info!(
            "draining: waiting for {scheduled} {} scheduled for later; the next is due at {} \
             (in {}){running}",
            if scheduled == 1 { "job" } else { "jobs" },
            crate::logger::timestamp(due),
            crate::logger::span(due - now),
        );
        Ok(())
    }
}

/// How often the shutdown looks whether the workers and the committer have finished: a drained
/// queue's daemon exits this long after its last job is recorded, at most.
const SHUTDOWN_LOOK: Duration = Duration::from_millis(1);

/// At shutdown, how long the committer may take to record what it holds.
const COMMIT_GRACE: Duration = Duration::from_secs(5);

/// How often finished jobs past `retention_days` are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3_600);

fn prune(queue: &dyn Queue, keep: Duration) {
    let before = now_ms() - keep.as_millis() as i64;
    match queue.prune(before, &State::FINISHED, 1_000) {
        Ok(0) => {}
        Ok(n) => log::info!(
            "retention: pruned {n} finished jobs older than {} days",
            keep.as_secs() / 86_400
        ),
        Err(e) => log::error!("retention: cannot prune finished jobs: {e}"),
    }
}

/// Renews the leases of the jobs in hand (with workers or waiting to be recorded): a slow but live
/// download is never taken back, while a dead daemon's jobs return after one lease.
fn extend_leases(shared: &Shared, workers: &[Worker], lease: Duration) {
    let mut held: Vec<i64> = workers
        .iter()
        .filter_map(|w| lock(&w.slot).as_ref().map(|job| job.attempt_id))
        .collect();
    held.extend(shared.committer.held());
    held.extend(lock(&shared.inbox).iter().map(|job| job.attempt_id));
    if let Err(e) = shared.queue.extend_leases(&held, lease.as_millis() as i64) {
        log::error!(
            "cannot extend the leases of {} jobs in flight: {e}",
            held.len()
        );
    }
}

fn reap(queue: &dyn Queue, options: &Options) {
    match queue.reap_expired(options.retry.max_attempts) {
        Ok(0) => {}
        Ok(n) => {
            log::warn!("{n} jobs had an expired lease (their daemon died); put back or failed")
        }
        Err(e) => log::error!("cannot reap expired leases: {e}"),
    }
}

fn spawn_committer(shared: &Arc<Shared>) -> Result<JoinHandle<()>, StoreError> {
    let shared = shared.clone();
    thread::Builder::new()
        .name("committer".into())
        .spawn(move || {
            shared
                .committer
                .run(&*shared.queue, &shared.metrics, &shared.stopping)
        })
        .map_err(|e| StoreError::new("starting the committer thread", e))
}

/// Joins a finished worker; if it panicked, records its job's failure and starts a new worker.
fn replace(worker: &mut Worker, shared: &Arc<Shared>, options: &Options) {
    let fresh = spawn(shared, worker.name.clone());
    let dead = std::mem::replace(worker, fresh);
    let panic = match dead.thread.join() {
        Ok(()) => return log::error!("{} stopped unexpectedly; restarted", dead.name),
        Err(panic) => panic_message(&*panic),
    };
    log::error!("{} panicked ({panic}); restarted", dead.name);
    if let Some(job) = lock(&dead.slot).take() {
        // Counted as an attempt, so a job that always crashes its worker ends as failed.
        let error = format!("internal error: the worker panicked: {panic}");
        let failure = Failure::transient(Reason::Internal, error);
        let mut report = Report::new(retry::after_failure(
            &job,
            failure,
            &options.retry,
            now_ms(),
        ));
        report.reason = Some(Reason::Internal);
        shared.committer.submit(Item {
            job,
            report,
            blob: None,
        });
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into())
}

/// Stops claiming, lets jobs in flight finish within `grace`, and puts the rest back.
fn shut_down(
    shared: &Shared,
    workers: Vec<Worker>,
    committer: JoinHandle<()>,
    grace: Duration,
    lease: Duration,
) {
    shared.stopping.store(true, Ordering::SeqCst);
    shared.wake.notify();
    // Jobs claimed for workers that never started them go back untried, due at once.
    let unstarted: Vec<Claimed> = lock(&shared.inbox).drain(..).collect();
    give_back(shared, unstarted, Outcome::Untried { run_at: now_ms() });

    let busy = workers.iter().filter(|w| lock(&w.slot).is_some()).count();
    if busy > 0 {
        log::info!(
            "stopping: waiting up to {grace:?} for {busy} jobs in flight; a second signal exits at once"
        );
    }
    let deadline = Instant::now() + grace;
    let mut last_extend = Instant::now();
    while Instant::now() < deadline && workers.iter().any(|w| !w.thread.is_finished()) {
        // The jobs still finishing are alive: keep their leases, or another daemon would take
        // them back mid-download when the grace period is longer than a lease.
        if last_extend.elapsed() >= lease / 3 {
            extend_leases(shared, &workers, lease);
            last_extend = Instant::now();
        }
        thread::sleep(SHUTDOWN_LOOK);
    }
    // A claim that was under way when the inbox was emptied has filled it again since.
    let unstarted: Vec<Claimed> = lock(&shared.inbox).drain(..).collect();
    give_back(shared, unstarted, Outcome::Untried { run_at: now_ms() });
    // What the finished workers handed over is recorded before the rest is put back.
    shared.committer.close();
    let deadline = Instant::now().max(deadline) + COMMIT_GRACE;
    while Instant::now() < deadline && !committer.is_finished() {
        thread::sleep(SHUTDOWN_LOOK);
    }
    let cut_short: Vec<Claimed> = workers
        .iter()
        .filter_map(|worker| lock(&worker.slot).take())
        .collect();
    let why = "jobd stopped before the attempt finished".to_string();
    give_back(shared, cut_short, Outcome::Interrupted { why });
}

/// Puts jobs back in the queue at shutdown, as `outcome` (untried or interrupted) settles them.
/// Recorded directly: the committer has stopped. What cannot be recorded, its lease brings back.
fn give_back(shared: &Shared, jobs: Vec<Claimed>, outcome: Outcome) {
    if jobs.is_empty() {
        return;
    }
    let report = Report::new(outcome);
    let items: Vec<(&Claimed, &Report)> = jobs.iter().map(|job| (job, &report)).collect();
    match shared.queue.record(&items) {
        Ok(applied) => {
            let back = applied.iter().filter(|a| **a == Applied::Yes).count();
            log::info!("put {back} jobs back in the queue");
        }
        Err(e) => log::error!(
            "cannot put {} jobs back ({e}); their leases will",
            jobs.len()
        ),
    }
}

/// "host:pid", so people can tell in `jobs.worker` which daemon holds a job.
fn worker_prefix() -> String {
    format!("{}:{}", crate::hostname(), std::process::id())
}
