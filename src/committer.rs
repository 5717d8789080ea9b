//! The committer: records what the workers found out, in groups (group commit).
//!
//! Workers hand over each finished attempt and go on to the next job. The committer takes
//! everything that has arrived since its last round: it makes the group's sealed blobs durable
//! (a filesystem sync, the renames, and a second sync, which under load is the next group's
//! first: [`BlobStore::advance`]), then records every outcome in one transaction. Under load a
//! round covers many jobs, so durability costs one flush and one commit per group rather than
//! per job; with a single job in flight a round is one job, so latency stays that of one
//! attempt.
//!
//! Architecture invariant: `done` is committed only after the job's blob is durable at its
//! content address. A blob that cannot be made durable turns its job's outcome into `postponed`
//! (not the URL's fault).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::blobs::{Blob, BlobStore, Sealed};
use crate::config::RetryConfig;
use crate::job::{Applied, Claimed, Failure, Outcome, Reason, Report, now_ms};
use crate::lock;
use crate::metrics::Metrics;
use crate::retry;
use crate::store::Queue;

/// One finished attempt, waiting to be recorded.
pub struct Item {
    pub job: Claimed,
    pub report: Report,
    /// The image, when the attempt stored one.
    pub blob: Option<Sealed>,
}

/// The most attempts recorded in one transaction: large enough to amortise the flushes, small
/// enough that the write lock is held for only milliseconds.
const MAX_GROUP: usize = 256;

#[derive(Default)]
struct Inbox {
    items: VecDeque<Item>,
    closed: bool,
    /// The committer waits for items: only then does one need a wake-up call (a system call).
    waiting: bool,
}

pub struct Committer {
    inbox: Mutex<Inbox>,
    arrived: Condvar,
    /// Attempt ids of the group being recorded right now, for lease renewal.
    in_hand: Mutex<Vec<i64>>,
    blobs: Option<Arc<BlobStore>>,
    /// For a job whose blob cannot be made durable: when to try it again.
    retry: RetryConfig,
}

impl Committer {
    /// `blobs` is where sealed blobs are made durable; handlers that store none may pass None.
    pub fn new(blobs: Option<Arc<BlobStore>>, retry: RetryConfig) -> Committer {
        Committer {
            inbox: Mutex::new(Inbox::default()),
            arrived: Condvar::new(),
            in_hand: Mutex::new(Vec::new()),
            blobs,
            retry,
        }
    }

    /// Hands over a finished attempt.
    pub fn submit(&self, item: Item) {
        let mut inbox = lock(&self.inbox);
        inbox.items.push_back(item);
        let waiting = inbox.waiting;
        drop(inbox);
        if waiting {
            self.arrived.notify_one();
        }
    }

    /// Attempt ids of every job waiting here or being recorded: their leases must be renewed.
    pub fn held(&self) -> Vec<i64> {
        let mut held: Vec<i64> = lock(&self.inbox)
            .items
            .iter()
            .map(|i| i.job.attempt_id)
            .collect();
        held.extend(lock(&self.in_hand).iter());
        held
    }

    /// No more items will come: [`Committer::run`] returns once it has recorded what it holds.
    pub fn close(&self) {
        lock(&self.inbox).closed = true;
        self.arrived.notify_all();
    }

    /// The committer thread's loop. Returns after [`Committer::close`], once empty.
    ///
    /// Each round takes what has arrived and makes one sync ([`BlobStore::advance`]): it makes
    /// this group's bytes durable and the previous group's names, which is then recorded. This
    /// group's blobs are renamed to their addresses, and it is recorded after the next round's
    /// sync. That round comes at once, with whatever has arrived meanwhile or with nothing: a
    /// lone job waits for two syncs, as before, while under load each group costs one.
    pub fn run(&self, queue: &dyn Queue, metrics: &Metrics, stopping: &AtomicBool) {
        // A committer that died mid-group lost that group: stop renewing its leases, so that the
        // reaper brings those jobs back.
        lock(&self.in_hand).clear();
        let mut named: Option<Named> = None;
        loop {
            let group = if named.is_some() {
                self.take_arrived()
            } else {
                match self.next_group() {
                    Some(group) => group,
                    None => return,
                }
            };
            self.note_in_hand(named.as_ref(), &group);
            let ready;
            (ready, named) = self.advance(named, group);
            if !ready.is_empty() {
                record(queue, metrics, stopping, &ready);
            }
            self.note_in_hand(named.as_ref(), &[]);
        }
    }

    /// Notes the jobs in hand (a group waiting for its sync, and the one just taken), whose
    /// leases the supervisor renews.
    fn note_in_hand(&self, named: Option<&Named>, group: &[Item]) {
        *lock(&self.in_hand) = named
            .iter()
            .flat_map(|n| &n.items)
            .chain(group)
            .map(|i| i.job.attempt_id)
            .collect();
    }

    /// Waits for at least one item and takes up to [`MAX_GROUP`]; None once closed and empty.
    fn next_group(&self) -> Option<Vec<Item>> {
        let mut inbox = lock(&self.inbox);
        while inbox.items.is_empty() {
            if inbox.closed {
                return None;
            }
            inbox.waiting = true;
            inbox = self
                .arrived
                .wait(inbox)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            inbox.waiting = false;
        }
        let n = inbox.items.len().min(MAX_GROUP);
        Some(inbox.items.drain(..n).collect())
    }

    /// Takes up to [`MAX_GROUP`] of what has arrived, without waiting.
    fn take_arrived(&self) -> Vec<Item> {
        let mut inbox = lock(&self.inbox);
        let n = inbox.items.len().min(MAX_GROUP);
        inbox.items.drain(..n).collect()
    }

    /// One round (see [`Committer::run`]): returns the items that can be recorded now (the
    /// previous group, and this one if it stored no blob), and this group if it waits for the
    /// next round's sync.
    fn advance(&self, named: Option<Named>, mut group: Vec<Item>) -> (Vec<Item>, Option<Named>) {
        let Some(store) = &self.blobs else {
            return (group, None);
        };
        let (owners, sealed): (Vec<usize>, Vec<Sealed>) = group
            .iter_mut()
            .enumerate()
            .filter_map(|(i, item)| item.blob.take().map(|blob| (i, blob)))
            .unzip();
        let Named {
            items: mut ready,
            owners: named_owners,
            blobs,
        } = named.unwrap_or_default();
        let (durable, renamed) = store.advance(blobs, sealed);
        self.settle(store, &mut ready, named_owners.into_iter().zip(durable));
        if owners.is_empty() {
            ready.append(&mut group);
            return (ready, None);
        }
        let named = Named {
            items: group,
            owners,
            blobs: renamed,
        };
        (ready, Some(named))
    }

    /// Settles the items whose blobs are now durable, or could not be made so: such a job is
    /// settled as the retry policy says of a local failure, instead of done.
    fn settle(
        &self,
        store: &BlobStore,
        items: &mut [Item],
        results: impl Iterator<Item = (usize, std::io::Result<Blob>)>,
    ) {
        for (i, result) in results {
            let e = match result {
                Ok(blob) => {
                    if !blob.written {
                        log::debug!(job = items[i].job.job_id;
                            "identical bytes were already stored as {}; this copy was dropped",
                            blob.rel_path);
                    }
                    continue;
                }
                Err(e) => e,
            };
            let item = &mut items[i];
            log::error!(job = item.job.job_id; "cannot make the blob durable in {}: {e}",
                store.root().display());
            let failure = Failure::local(format!(
                "cannot store the blob in {}: {e}",
                store.root().display()
            ));
            item.report.reason = Some(Reason::Storage);
            item.report.outcome = retry::after_failure(&item.job, failure, &self.retry, now_ms());
        }
    }
}

/// A group whose blobs were renamed to their addresses, waiting for the sync that makes the names
/// durable before it is recorded: `blobs[k]` belongs to `items[owners[k]]`.
#[derive(Default)]
struct Named {
    items: Vec<Item>,
    owners: Vec<usize>,
    blobs: Vec<std::io::Result<Blob>>,
}

/// Records a group in one transaction, retrying while the database is unavailable. If the daemon
/// stops first, the leases bring the jobs back later.
fn record(queue: &dyn Queue, metrics: &Metrics, stopping: &AtomicBool, group: &[Item]) {
    let items: Vec<(&Claimed, &Report)> = group.iter().map(|i| (&i.job, &i.report)).collect();
    let mut delay = Duration::from_millis(50);
    let applied = loop {
        match queue.record(&items) {
            Ok(applied) => break applied,
            Err(e) if stopping.load(Ordering::SeqCst) => {
                log::error!(
                    "cannot record {} outcomes ({e}); their leases will bring the jobs back",
                    items.len()
                );
                return;
            }
            Err(e) => {
                log::error!(
                    "cannot record {} outcomes, retrying in {delay:?}: {e}",
                    items.len()
                );
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    };
    let now = now_ms();
    for ((job, report), applied) in items.iter().zip(applied) {
        let (id, host) = (job.job_id, job.host());
        match applied {
            Applied::Yes => {
                let total = now - job.started_at;
                metrics.record(report, total);
                log_outcome(job, report, total);
            }
            Applied::ClaimLost => log::warn!(job = id, host;
                "attempt {} ended after its claim was taken back; its outcome is not recorded",
                job.attempt),
        }
    }
}

fn log_outcome(job: &Claimed, report: &Report, total_ms: i64) {
    let (id, host) = (job.job_id, job.host());
    match &report.outcome {
        Outcome::Done(s) => log::info!(job = id, host;
            "done in {total_ms} ms: {} {}x{}, {} bytes, {}, validated to {}",
            s.mime, s.width, s.height, s.bytes, s.blob_path, s.validation.name()),
        Outcome::Retry { run_at, error } => log::warn!(job = id, host;
            "attempt {} failed, retrying in {} ms: {error}",
            job.attempt, run_at - now_ms()),
        Outcome::Failed { error } => log::warn!(job = id, host; "failed: {error}"),
        Outcome::Postponed { error, .. } => log::error!(job = id, host;
            "not the URL's fault, back in the queue without spending an attempt: {error}"),
        Outcome::Untried { run_at } => log::debug!(job = id, host;
            "host cooling down; back in the queue for {} ms", run_at - now_ms()),
        Outcome::Interrupted { why } => log::info!(job = id, host; "put back in the queue: {why}"),
    }
}
