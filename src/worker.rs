//! A worker thread: claim a job, hand it to the [`Handler`], pass the result to the committer
//! (which records it, in groups); sleep when the queue has nothing due until the supervisor says
//! that something may be.
//!
//! Architecture invariant: the worker never holds a transaction while the handler runs; the
//! claim is one short transaction inside the queue, and recording is the committer's.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use crate::lock;
use std::time::Duration;

use crate::blobs::Sealed;
use crate::committer::{Committer, Item};
use crate::job::{Claimed, Outcome, Report};
use crate::metrics::Metrics;
use crate::store::{ClaimOptions, Queue, StoreError};

/// Does one attempt at one job. The real one downloads ([`crate::download::Downloader`]);
/// tests put in others.
pub trait Handler: Send + Sync {
    fn handle(&self, job: &Claimed) -> Handled;
    /// The hosts whose jobs the claims pass over, besides the paused ones: those this daemon
    /// leaves to the other daemons on the queue.
    fn pass_over(&self) -> Vec<String> {
        Vec::new()
    }
    /// Work an idle worker can do for a job another worker holds (a part of a large body, see
    /// `download/split.rs`), taken now and run by calling it; None if there is none.
    fn help(&self) -> Option<Box<dyn FnOnce() + '_>> {
        None
    }
    /// Sets what wakes the idle workers when the handler has work for them to [`Handler::help`]
    /// with.
    fn set_waker(&self, _wake: Box<dyn Fn() + Send + Sync>) {}
}

/// What became of a claimed job in the handler.
#[derive(Debug)]
pub enum Handled {
    /// The attempt ran: record its report.
    Report(Report),
    /// The attempt stored an image: make the blob durable, then record the report (`done`).
    Stored(Report, Sealed),
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

    /// Waits until a notification after `seen`.
    pub fn wait(&self, seen: u64) {
        let guard = lock(&self.generation);
        drop(
            self.cond
                .wait_while(guard, |g| *g == seen)
                .unwrap_or_else(PoisonError::into_inner),
        );
    }
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
    pub committer: Arc<Committer>,
    /// Jobs claimed for idle workers that no worker has taken yet.
    pub inbox: Mutex<VecDeque<Claimed>>,
    /// Workers waiting for work.
    pub idle: AtomicUsize,
    /// The wake generation at which a claim last found nothing (`u64::MAX`: none yet).
    pub found_nothing_at: AtomicU64,
    /// Held by the worker that is claiming for the others.
    pub claiming: Mutex<()>,
    /// How many jobs to claim ahead for busy workers, so that a worker finishing its job usually
    /// finds the next one in the inbox instead of starting a transaction of its own.
    pub ahead: ClaimAhead,
}

/// Claims ahead what the busy workers will finish within [`CLAIM_AHEAD_FOR`], as the recent
/// attempts' times say: for small images at loopback speed that is dozens of jobs per claim
/// (each claim is a transaction, and a commit writes every page it touched, so few large ones
/// cost a fraction of many small ones), for slow downloads none. Another daemon on the queue
/// then never waits for a job that this one holds but will not start for a while.
pub struct ClaimAhead {
    workers: usize,
    /// A moving average of the attempts' times, in microseconds.
    attempt_us: AtomicU64,
}

/// The horizon of [`ClaimAhead`]: a few commits' worth of time, far below any lease.
const CLAIM_AHEAD_FOR: Duration = Duration::from_millis(10);

impl ClaimAhead {
    pub fn new(workers: usize) -> ClaimAhead {
        ClaimAhead {
            workers,
            // Until an attempt has been timed, as if each took the horizon: one job per worker.
            attempt_us: AtomicU64::new(CLAIM_AHEAD_FOR.as_micros() as u64),
        }
    }

    /// Takes an attempt's time into the average (weight 1/8).
    fn attempted(&self, took: Duration) {
        let took = took.as_micros().min(u128::from(u32::MAX)) as u64;
        let _ = self
            .attempt_us
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |avg| {
                Some((avg * 7 + took) / 8)
            });
    }

    /// Jobs to claim ahead now: at most four per worker.
    fn jobs(&self) -> usize {
        let avg = self.attempt_us.load(Ordering::Relaxed).max(1);
        let per_worker = (CLAIM_AHEAD_FOR.as_micros() as u64 / avg).min(4);
        self.workers * per_worker as usize
    }
}

/// The job a worker holds, visible to the supervisor so it can put the job back if the worker
/// dies or outlives the grace period.
pub type Slot = Arc<Mutex<Option<Claimed>>>;

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
        let next = lock(&shared.inbox).pop_front();
        let job = match next {
            Some(job) => job,
            None => match claim_for_idle_workers(shared, name, seen) {
                Ok(Some(job)) => job,
                Ok(None) => {
                    trouble = None;
                    // Counted idle before it looks for work to help with: a body offered after
                    // the look then wakes it (the handler's waker wakes only when one is idle).
                    shared.idle.fetch_add(1, Ordering::SeqCst);
                    let help = if shared.stopping.load(Ordering::SeqCst) {
                        None
                    } else {
                        shared.handler.help()
                    };
                    if help.is_none() {
                        // The supervisor wakes idle workers whenever a job may be due (and looks
                        // on its own now and then), so an idle worker costs nothing while it
                        // waits.
                        shared.wake.wait(seen);
                    }
                    shared.idle.fetch_sub(1, Ordering::SeqCst);
                    if let Some(help) = help {
                        help();
                    }
                    continue;
                }
                Err(e) => {
                    trouble = Some(next_pause(trouble, name));
                    log::error!(
                        "{name}: cannot claim jobs (pausing {:?}): {e}",
                        trouble.unwrap_or_default()
                    );
                    continue;
                }
            },
        };
        let local_failure = work_on(shared, job, slot);
        trouble = local_failure.then(|| next_pause(trouble, name));
    }
}

/// Claims one job for this worker, one for each idle worker and a few for the workers about to
/// finish, in one transaction: with many workers, one claim per job would have them queue for
/// the write lock. The extra jobs go to the shared inbox and the idle workers are woken to take
/// them. `seen` is the wake generation the worker saw before it came here.
fn claim_for_idle_workers(
    shared: &Shared,
    name: &str,
    seen: u64,
) -> Result<Option<Claimed>, StoreError> {
    // One claimer at a time, and it looks in the inbox again first: workers that start (or run
    // dry) together would otherwise each claim a batch, and jobs would start out of queue order.
    let _turn = lock(&shared.claiming);
    if let Some(job) = lock(&shared.inbox).pop_front() {
        return Ok(Some(job));
    }
    // Another worker found nothing to claim since the last wake-up: nothing has changed since
    // (a change would have woken us again), so neither would this claim. Workers woken together
    // then cost one empty claim, not one each, which matters when the only due jobs are those
    // of hosts the claim skips.
    if shared.found_nothing_at.load(Ordering::SeqCst) == seen {
        return Ok(None);
    }
    let want = 1 + shared.idle.load(Ordering::SeqCst) + shared.ahead.jobs();
    let pass_over = shared.handler.pass_over();
    let options = ClaimOptions {
        lease_ms: shared.lease_ms,
        pass_over: &pass_over,
    };
    let mut jobs = shared.queue.claim(name, want, options)?.into_iter();
    let mine = jobs.next();
    if mine.is_none() {
        shared.found_nothing_at.store(seen, Ordering::SeqCst);
    }
    let mut inbox = lock(&shared.inbox);
    let before = inbox.len();
    inbox.extend(jobs);
    let extra = inbox.len() > before;
    drop(inbox);
    if extra {
        shared.wake.notify();
    }
    Ok(mine)
}

/// Runs one job through the handler and hands the result to the committer. Returns true when
/// the attempt failed on our side (storage), so that the worker pauses before its next claim.
fn work_on(shared: &Shared, mut job: Claimed, slot: &Slot) -> bool {
    // A job may have waited in the inbox since its claim: its attempt starts now, and that is the
    // start the attempt row records.
    job.started_at = crate::job::now_ms();
    *lock(slot) = Some(job.clone());
    let held = std::time::Instant::now();
    shared.metrics.started();
    let local_failure = match shared.handler.handle(&job) {
        Handled::Report(report) => submit(shared, job, report, None),
        Handled::Stored(report, blob) => submit(shared, job, report, Some(blob)),
    };
    *lock(slot) = None;
    let took = held.elapsed();
    shared.metrics.finished(took);
    shared.ahead.attempted(took);
    local_failure
}

fn submit(shared: &Shared, job: Claimed, report: Report, blob: Option<Sealed>) -> bool {
    let local_failure = matches!(report.outcome, Outcome::Postponed { .. });
    shared.committer.submit(Item { job, report, blob });
    local_failure
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_ahead_what_the_workers_finish_within_the_horizon() {
        let ahead = ClaimAhead::new(16);
        assert_eq!(ahead.jobs(), 16, "untimed: one per worker");
        for _ in 0..100 {
            ahead.attempted(Duration::from_millis(2));
        }
        // 10 ms / 2 ms = 5 per worker, of which four are allowed.
        assert_eq!(ahead.jobs(), 64);
        for _ in 0..100 {
            ahead.attempted(Duration::from_millis(4));
        }
        assert_eq!(ahead.jobs(), 16 * 2);
        for _ in 0..100 {
            ahead.attempted(Duration::from_millis(500));
        }
        assert_eq!(ahead.jobs(), 0, "slow downloads: nothing held back from other daemons");
    }
}
