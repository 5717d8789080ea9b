//! A worker thread: claim a job, hand it to the [`Handler`], record the report; sleep when the
//! queue has nothing due until the supervisor says that something may be.
//!
//! Architecture invariant: the worker never holds a transaction while the handler runs; claim and
//! record are separate short transactions inside the queue.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::metrics::Metrics;
use crate::store::{Applied, Claimed, Outcome, Queue, Report};

/// Does one attempt at one job. The real one downloads ([`crate::download::Downloader`]);
/// tests put in others.
pub trait Handler: Send + Sync {
    fn handle(&self, job: &Claimed) -> Handled;
}

/// What became of a claimed job in the handler.
#[derive(Debug, Clone)]
pub enum Handled {
    /// The attempt ran: record its report.
    Report(Report),
    /// Nothing was tried (its host is cooling down): give the job back until `run_at`.
    Postpone { run_at: i64 },
}

/// A generation counter that idle workers wait on, so no wake-up is lost between a claim that
/// found nothing and the wait that follows it.
#[derive(Default)]
pub struct Wake {
    generation: Mutex<u64>,
    cond: Condvar,
}

impl Wake {
    pub fn generation(&self) -> u64 {
        *lock(&self.generation)
    }

    pub fn notify(&self) {
        *lock(&self.generation) += 1;
        self.cond.notify_all();
    }

    /// Waits until a notification after `seen`, or `timeout`.
    pub fn wait(&self, seen: u64, timeout: Duration) {
        let guard = lock(&self.generation);
        let _ = self
            .cond
            .wait_timeout_while(guard, timeout, |g| *g == seen)
            .unwrap_or_else(PoisonError::into_inner);
    }
}

/// Locks a mutex whose data stays valid even if a holder panicked.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What all workers share with each other and the supervisor.
pub struct Shared {
    pub queue: Arc<dyn Queue>,
    pub handler: Arc<dyn Handler>,
    pub wake: Wake,
    /// Set on shutdown: finish the job in hand, claim nothing more.
    pub stopping: AtomicBool,
    pub lease_ms: i64,
    pub metrics: Arc<Metrics>,
}

/// The job a worker holds, visible to the supervisor so it can put the job back if the worker
/// dies or outlives the grace period.
pub type Slot = Arc<Mutex<Option<Claimed>>>;

/// An idle worker also looks for work this often, in case a wake-up was missed.
const IDLE_RECHECK: Duration = Duration::from_secs(5);
/// After a local failure (database or storage), a worker waits before claiming again, starting
/// here and doubling up to the maximum, so a full disk or a locked database is not hammered.
const TROUBLE_FIRST: Duration = Duration::from_millis(500);
const TROUBLE_MAX: Duration = Duration::from_secs(30);

/// The worker loop; returns when `shared.stopping` is set.
pub fn run(shared: &Shared, name: &str, slot: &Slot) {
    let mut trouble: Option<Duration> = None;
    while !shared.stopping.load(Ordering::SeqCst) {
        if let Some(pause) = trouble {
            sleep_unless_stopping(shared, pause);
            if shared.stopping.load(Ordering::SeqCst) {
                break;
            }
        }
        let seen = shared.wake.generation();
        match shared.queue.claim(name, 1, shared.lease_ms) {
            Ok(jobs) if jobs.is_empty() => {
                trouble = None;
                shared.wake.wait(seen, IDLE_RECHECK);
            }
            Ok(jobs) => {
                for job in jobs {
                    *lock(slot) = Some(job.clone());
                    let held = std::time::Instant::now();
                    shared.metrics.started();
                    let local_failure = match shared.handler.handle(&job) {
                        Handled::Report(report) => {
                            record(shared, &job, &report);
                            matches!(report.outcome, Outcome::Postponed { .. })
                        }
                        Handled::Postpone { run_at } => {
                            postpone(shared, &job, run_at);
                            false
                        }
                    };
                    *lock(slot) = None;
                    shared.metrics.finished(held.elapsed());
                    trouble = local_failure.then(|| next_pause(trouble, name));
                }
            }
            Err(e) => {
                trouble = Some(next_pause(trouble, name));
                log::error!(
                    "{name}: cannot claim jobs (pausing {:?}): {e}",
                    trouble.unwrap_or_default()
                );
            }
        }
    }
}

/// Sleeps for `pause`, waking early only to stop (new work does not cut a pause short).
fn sleep_unless_stopping(shared: &Shared, pause: Duration) {
    let end = std::time::Instant::now() + pause;
    while !shared.stopping.load(Ordering::SeqCst) {
        let left = end.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

fn next_pause(previous: Option<Duration>, name: &str) -> Duration {
    let pause = previous.map_or(TROUBLE_FIRST, |p| (p * 2).min(TROUBLE_MAX));
    log::debug!("{name}: local trouble, pausing {pause:?} before the next claim");
    pause
}

fn postpone(shared: &Shared, job: &Claimed, run_at: i64) {
    let (id, host) = (job.job_id, job.host());
    match shared.queue.postpone(job, run_at) {
        Ok(_) => log::debug!(job = id, host; "host cooling down; back in the queue for {} ms",
            run_at - crate::store::now_ms()),
        Err(e) => log::error!(job = id, host; "cannot put the job back ({e}); its lease will"),
    }
}

/// Records a report, retrying while the database is unavailable. If the daemon stops first, the
/// lease brings the job back later.
pub fn record(shared: &Shared, job: &Claimed, report: &Report) {
    let (id, host) = (job.job_id, job.host());
    let mut delay = Duration::from_millis(50);
    loop {
        match shared.queue.complete(job, report) {
            Ok(Applied::Yes) => {
                let total = crate::store::now_ms() - job.started_at;
                shared.metrics.record(report, total);
                return log_outcome(job, report, total);
            }
            Ok(Applied::ClaimLost) => {
                log::warn!(job = id, host;
                    "attempt {} ended after its claim was taken back; its outcome is not recorded",
                    job.attempt);
                return;
            }
            Err(e) if shared.stopping.load(Ordering::SeqCst) => {
                log::error!(job = id, host;
                    "cannot record the outcome ({e}); its lease will bring the job back");
                return;
            }
            Err(e) => {
                log::error!(job = id, host;
                    "cannot record the outcome, retrying in {delay:?}: {e}");
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

fn log_outcome(job: &Claimed, report: &Report, total_ms: i64) {
    let (id, host) = (job.job_id, job.host());
    match &report.outcome {
        Outcome::Done(s) => log::info!(job = id, host;
            "done in {total_ms} ms: {} {}x{}, {} bytes, {}",
            s.mime, s.width, s.height, s.bytes, s.blob_path),
        Outcome::Retry { run_at, error } => log::warn!(job = id, host;
            "attempt {} failed, retrying in {} ms: {error}",
            job.attempt, run_at - crate::store::now_ms()),
        Outcome::Failed { error } => log::warn!(job = id, host; "failed: {error}"),
        Outcome::Postponed { error, .. } => log::error!(job = id, host;
            "not the URL's fault, back in the queue without spending an attempt: {error}"),
    }
}
