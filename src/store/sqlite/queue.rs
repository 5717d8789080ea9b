//! The queue operations on SQLite: claim, record, leases, reaping and pruning, each one short
//! IMMEDIATE transaction.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use rusqlite::types::ValueRef;
use rusqlite::{Connection, Transaction, TransactionBehavior, params};

use super::watch::SqliteWatch;
use super::{SqliteStore, WATCH_BUSY_TIMEOUT, configure};
use crate::job::{
    self, Applied, Claimed, LEASE_EXPIRED, RawUrl, Recorded, Report, Settlement, State, now_ms,
};
use crate::lock;
use crate::store::{
    ClaimOptions, Context, FleetState, HostChange, Queue, StoreError, Watch, count_from_db,
};

/// The due jobs in claim order (?1 now), for a claim to walk: all of them, or those around a
/// point it has learnt to start from (?2 priority, ?3 run_at, ?4 id): before it in a higher
/// priority, after it in its own (first those due at the same time, then those due later), and
/// in the lower ones: one after the other, they are in claim order too. Each is one seek of the
/// index: a row value `(run_at, id) > (?3, ?4)` would seek on run_at alone, and walk every job due
/// at the same time again (an import's are). `INDEXED BY` pins the partial index that is already
/// in claim order: without statistics the planner prefers `jobs_state` and sorts every queued
/// row, which costs milliseconds at a million rows. A claim steps through a walk only as far as
/// it needs.
macro_rules! walk {
    ($range:literal, $order:literal) => {
        concat!(
            "SELECT id, priority, run_at, host FROM jobs AS j INDEXED BY jobs_claim
             WHERE state = 'queued' AND run_at <= ?1 ",
            $range,
            " ORDER BY ",
            $order
        )
    };
}
pub(super) const WALK_ALL: &str = walk!("", "priority DESC, run_at, id");
pub(super) const WALK_ABOVE: &str = walk!("AND priority > ?2", "priority DESC, run_at, id");
/// The point's own due time is past, so this needs no `run_at <= ?1`, which would make the
/// planner seek on it instead of the point.
pub(super) const WALK_SAME_TIME: &str = "
    SELECT id, priority, run_at, host FROM jobs AS j INDEXED BY jobs_claim
    WHERE state = 'queued' AND priority = ?2 AND run_at = ?3 AND id > ?4 AND ?1 IS NOT NULL
    ORDER BY id";
pub(super) const WALK_LATER: &str = walk!("AND priority = ?2 AND run_at > ?3", "run_at, id");
pub(super) const WALK_BELOW: &str = walk!("AND priority < ?2", "priority DESC, run_at, id");

/// The paused hosts (?1 now), whose jobs a claim passes over.
pub(super) const PAUSED: &str = "SELECT host FROM hosts WHERE paused_until > ?1";

/// Whether `jobctl pause` holds the queue, and the count of jobs that went back into it
/// (migration 0007), in one read.
const QUEUE_STATE: &str = "
    SELECT EXISTS (SELECT 1 FROM settings WHERE name = 'paused' AND value = '1'),
           (SELECT changes FROM queue_changes WHERE id = 1)";

/// Claims one job by id (?4), if it is still queued: running, its try counted, under the
/// worker's (?3) lease (?2), its attempt (?5) the claim's token. RETURNING gives what the worker
/// needs.
pub(super) const CLAIM_ONE: &str = "
    UPDATE jobs
    SET state = 'running', attempts = attempts + 1, started_at = ?1, finished_at = NULL,
        lease_until = ?2, worker = ?3, attempt_id = ?5
    WHERE id = ?4 AND state = 'queued'
    RETURNING id, url, attempts, max_attempts, host";

/// How long claims go on from what was learnt since a walk from the first due job, at most: a
/// bound on how long a job can wait that got ahead of the point in a way neither
/// `queue_changes` nor [`HEAD_MARGIN_MS`] covers (a transaction left open for longer than the
/// margin between its INSERT and its commit). Long: such a walk passes every blocked job.
const HEAD_TRUSTED_FOR: Duration = Duration::from_secs(300);

/// How old a job's due time must be for a claim to move the point past it (ms): longer than a
/// writer waits for the lock between its INSERT's clock and its commit.
const HEAD_MARGIN_MS: i64 = 100;

/// What a claim learnt about the head of the queue: every due job before `key` (priority,
/// run_at, id, in claim order) belonged to one of `hosts`, when `queue_changes` stood at
/// `changes`. While those hosts are all still blocked and the count has not moved, no job has
/// entered the queue before `key` but in a higher priority (which a claim walks anyway), so the
/// next claim starts at `key` instead of walking past those hosts' jobs again.
#[derive(Debug)]
pub(in crate::store) struct Head {
    key: (i64, i64, i64),
    hosts: HashSet<String>,
    changes: i64,
    /// When the claims that learnt this last walked from the first due job.
    rooted: Instant,
}

const START_ATTEMPT: &str = "
    INSERT INTO attempts (job_id, attempt, worker, started_at)
    VALUES (?1, (SELECT COALESCE(MAX(attempt), 0) + 1 FROM attempts WHERE job_id = ?1), ?2, ?3)
    RETURNING id, attempt";

/// Records a settled attempt, but only while the claim still holds (`attempt_id` matches). A job
/// whose cancellation was requested while it ran is not queued again.
const FINISH_JOB: &str = "
    UPDATE jobs
    SET state = CASE WHEN ?3 = 'queued' AND cancel_requested THEN 'cancelled' ELSE ?3 END,
        finished_at = ?4, run_at = COALESCE(?5, run_at), error = ?6,
        http_status = ?7, declared_mime = ?8, mime = ?9, bytes = ?10, sha256 = ?11,
        blob_path = ?12, width = ?13, height = ?14, attempts = attempts - ?15,
        started_at = ?16, validation = ?17, validation_note = ?18, worker = NULL, attempt_id = NULL, lease_until = NULL
    WHERE id = ?1 AND attempt_id = ?2 AND state = 'running'";

/// A batch of finished jobs older than ?1 in the given states (comma-separated ?2).
const PRUNE_PICK: &str = "
    INSERT INTO prune_ids (id)
    SELECT id FROM jobs INDEXED BY jobs_finished
    WHERE state IN ('done', 'failed', 'cancelled') AND finished_at < ?1
      AND instr(',' || ?2 || ',', ',' || state || ',') > 0
    LIMIT ?3";

/// Gives a job back untouched but for its claim, if the claim still holds: queued (or cancelled,
/// if that was asked), the try not counted, ?3 its new run_at or NULL to keep it.
const GIVE_BACK: &str = "
    UPDATE jobs
    SET state = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'queued' END,
        attempts = attempts - 1, run_at = COALESCE(?3, run_at),
        worker = NULL, attempt_id = NULL, lease_until = NULL
    WHERE id = ?1 AND attempt_id = ?2 AND state = 'running'";

const INTERRUPT_ATTEMPT: &str = "
    UPDATE attempts SET finished_at = ?2, outcome = 'interrupted', error = ?3,
                        total_ms = ?2 - started_at
    WHERE id = ?1";

/// The jobs whose lease ran out, with what [`job::after_lease_expired`] needs.
const EXPIRED: &str = "
    SELECT id, attempt_id, attempts, max_attempts, cancel_requested
    FROM jobs INDEXED BY jobs_lease WHERE state = 'running' AND lease_until < ?1";

const REAP_ATTEMPT: &str = "
    UPDATE attempts SET finished_at = ?2, outcome = 'lease_expired', error = ?3 WHERE id = ?1";

const REAP_JOB: &str = "
    UPDATE jobs
    SET state = ?3, error = ?4, finished_at = ?5, worker = NULL, attempt_id = NULL,
        lease_until = NULL
    WHERE id = ?1 AND attempt_id IS ?2 AND state = 'running'";

const FINISH_ATTEMPT: &str = "
    UPDATE attempts
    SET finished_at = ?2, outcome = ?3, http_status = ?4, error = ?5, bytes = ?6,
        ttfb_ms = ?7, download_ms = ?8, total_ms = ?9, started_at = ?10
    WHERE id = ?1";

/// Records one attempt inside the caller's transaction, as its outcome settles it, if the claim
/// still holds.
fn record_one(
    tx: &Transaction<'_>,
    job: &Claimed,
    report: &Report,
    now: i64,
) -> Result<Applied, StoreError> {
    let doing = || format!("recording job {}", job.job_id);
    let Recorded {
        state,
        run_at,
        error,
        stored,
        refund,
        outcome,
    } = match report.outcome.settle() {
        Settlement::Recorded(recorded) => recorded,
        Settlement::GivenBack {
            run_at,
            interrupted,
        } => {
            let changed = tx
                .prepare_cached(GIVE_BACK)
                .and_then(|mut stmt| stmt.execute(params![job.job_id, job.attempt_id, run_at]))
                .ctx(doing())?;
            if changed == 0 {
                return Ok(Applied::ClaimLost);
            }
            match interrupted {
                Some(why) => tx
                    .prepare_cached(INTERRUPT_ATTEMPT)
                    .and_then(|mut stmt| stmt.execute(params![job.attempt_id, now, why])),
                None => tx
                    .prepare_cached("DELETE FROM attempts WHERE id = ?1")
                    .and_then(|mut stmt| stmt.execute([job.attempt_id])),
            }
            .ctx(doing())?;
            return Ok(Applied::Yes);
        }
    };
    let changed = tx
        .prepare_cached(FINISH_JOB)
        .and_then(|mut stmt| {
            stmt.execute(params![
                job.job_id,
                job.attempt_id,
                state.name(),
                now,
                run_at,
                error,
                report.http_status,
                report.declared_mime,
                stored.map(|s| s.mime),
                report.bytes.map(|b| b as i64),
                stored.map(|s| &s.sha256),
                stored.map(|s| &s.blob_path),
                stored.map(|s| s.width),
                stored.map(|s| s.height),
                refund,
                job.started_at,
                stored.map(|s| s.validation.name()),
                stored.and_then(|s| s.validation_note.as_deref()),
            ])
        })
        .ctx(doing())?;
    if changed == 0 {
        return Ok(Applied::ClaimLost);
    }
    tx.prepare_cached(FINISH_ATTEMPT)
        .and_then(|mut stmt| {
            stmt.execute(params![
                job.attempt_id,
                now,
                outcome,
                report.http_status,
                error,
                report.bytes.map(|b| b as i64),
                report.ttfb_ms,
                report.download_ms,
                now - job.started_at,
                job.started_at,
            ])
        })
        .ctx(format_args!(
            "recording attempt {} of job {}",
            job.attempt, job.job_id
        ))?;
    Ok(Applied::Yes)
}

/// An integer column as SQLite holds it, which may be a real or text if someone typed one.
fn loose_int(value: ValueRef<'_>) -> Option<i64> {
    match value {
        ValueRef::Integer(n) => Some(n),
        ValueRef::Real(f) => Some(f as i64),
        ValueRef::Null | ValueRef::Text(_) | ValueRef::Blob(_) => None,
    }
}

fn raw_url(value: ValueRef<'_>) -> RawUrl {
    match value {
        ValueRef::Text(bytes) => RawUrl::Text(String::from_utf8_lossy(bytes).into_owned()),
        ValueRef::Null => RawUrl::NotText("NULL"),
        ValueRef::Integer(_) => RawUrl::NotText("an integer"),
        ValueRef::Real(_) => RawUrl::NotText("a real number"),
        ValueRef::Blob(_) => RawUrl::NotText("a blob"),
    }
}

/// Reads the rows that [`CLAIM_ONE`] returns into `into`.
fn read_claimed(
    mut rows: rusqlite::Rows<'_>,
    now: i64,
    into: &mut Vec<Claimed>,
) -> Result<(), StoreError> {
    while let Some(row) = rows.next().ctx("claiming jobs")? {
        // Columns people may have set to anything: read what can be read.
        let value = |i| row.get_ref(i).ctx("reading a claimed job");
        let job = Claimed {
            job_id: row.get(0).ctx("reading a claimed job")?,
            url: raw_url(value(1)?),
            attempts: loose_int(value(2)?).map_or(0, count_from_db),
            max_attempts: loose_int(value(3)?).map(count_from_db),
            attempt_id: 0,
            attempt: 0,
            started_at: now,
            host: row.get(4).ctx("reading a claimed job")?,
        };
        into.push(job);
    }
    Ok(())
}

/// Walks the due jobs in claim order, from where `head` says the blocked hosts' jobs end (or from
/// the first), passing over the jobs of `blocked` hosts, until it has picked `limit` jobs. Returns
/// their ids, in claim order, and what it learnt for the next claim.
fn pick(
    tx: &Transaction<'_>,
    now: i64,
    limit: usize,
    blocked: &HashSet<String>,
    head: Option<Head>,
    changes: i64,
) -> Result<(Vec<i64>, Option<Head>), StoreError> {
    let (mut hosts, mut point, rooted, walks) = match head {
        Some(Head {
            key: (priority, run_at, id),
            hosts,
            rooted,
            ..
        }) => (
            hosts,
            Some((priority, run_at, id)),
            rooted,
            vec![
                (WALK_ABOVE, vec![now, priority]),
                (WALK_SAME_TIME, vec![now, priority, run_at, id]),
                (WALK_LATER, vec![now, priority, run_at]),
                (WALK_BELOW, vec![now, priority]),
            ],
        ),
        None => (HashSet::new(), None, Instant::now(), vec![(WALK_ALL, vec![now])]),
    };
    // A row is keyed by its due time when its INSERT runs, but others see it only when that
    // commits, which may be later (a writer waiting for the lock). So the point moves only over
    // jobs due a while ago, and stops at the first younger one: those are walked again.
    let settled = now - HEAD_MARGIN_MS;
    let mut moving = true;
    let mut picked = Vec::new();
    'walks: for (sql, args) in walks {
        let mut walk = tx.prepare_cached(sql).ctx("preparing the claim")?;
        let mut rows = walk
            .query(rusqlite::params_from_iter(args))
            .ctx("claiming jobs")?;
        while let Some(row) = rows.next().ctx("claiming jobs")? {
            if picked.len() == limit {
                break 'walks;
            }
            let id: i64 = row.get(0).ctx("claiming jobs")?;
            // Columns people may have set to anything: read what can be read.
            let priority = loose_int(row.get_ref(1).ctx("claiming jobs")?).unwrap_or(0);
            let run_at = loose_int(row.get_ref(2).ctx("claiming jobs")?).unwrap_or(0);
            moving &= run_at <= settled;
            if moving {
                point = Some((priority, run_at, id));
            }
            // Read in place: a walk past a paused host's million jobs allocates nothing.
            let host = match row.get_ref(3).ctx("claiming jobs")? {
                ValueRef::Text(bytes) => std::str::from_utf8(bytes).ok(),
                _ => None,
            };
            match host {
                Some(host) if blocked.contains(host) => {
                    if !hosts.contains(host) {
                        hosts.insert(host.to_string());
                    }
                }
                _ => picked.push(id),
            }
        }
    }
    // Every due job before the point is now claimed or a blocked host's.
    let learnt = point.map(|key| Head {
        key,
        hosts,
        changes,
        rooted,
    });
    Ok((picked, learnt))
}

impl Queue for SqliteStore {
    fn claim(
        &self,
        worker: &str,
        limit: usize,
        options: ClaimOptions<'_>,
    ) -> Result<Vec<Claimed>, StoreError> {
        let _turn = lock(&self.write_turn);
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx("starting a claim")?;
        let now = now_ms();
        let (paused, changes): (bool, i64) = tx
            .prepare_cached(QUEUE_STATE)
            .and_then(|mut stmt| stmt.query_row([], |r| Ok((r.get(0)?, r.get(1)?))))
            .ctx("claiming jobs")?;
        if paused {
            return Ok(Vec::new());
        }
        let mut blocked: HashSet<String> = tx
            .prepare_cached(PAUSED)
            .and_then(|mut stmt| stmt.query_map([now], |r| r.get(0))?.collect())
            .ctx("finding the hosts to pass over")?;
        blocked.extend(options.pass_over.iter().cloned());
        let head = lock(&self.head).take().filter(|head| {
            head.changes == changes
                && head.rooted.elapsed() < HEAD_TRUSTED_FOR
                && head.hosts.is_subset(&blocked)
        });
        let (picked, learnt) = pick(&tx, now, limit, &blocked, head, changes)?;
        // Per job, two statements: its attempt row, whose id is the claim's token, and the job's
        // row, which takes that token in the same write that makes it running.
        let mut claimed = Vec::with_capacity(picked.len());
        {
            let mut start = tx
                .prepare_cached(START_ATTEMPT)
                .ctx("preparing an attempt")?;
            let mut one = tx.prepare_cached(CLAIM_ONE).ctx("claiming jobs")?;
            for id in picked {
                let (attempt_id, attempt) = start
                    .query_row(params![id, worker, now], |r| Ok((r.get(0)?, r.get(1)?)))
                    .ctx(format_args!("starting an attempt of job {id}"))?;
                let rows = one
                    .query(params![
                        now,
                        now + options.lease_ms,
                        worker,
                        id,
                        attempt_id
                    ])
                    .ctx("claiming jobs")?;
                let before = claimed.len();
                read_claimed(rows, now, &mut claimed)?;
                match claimed.get_mut(before) {
                    Some(job) => (job.attempt_id, job.attempt) = (attempt_id, attempt),
                    // Picked in this transaction, so still queued; but should it not be, its
                    // attempt goes with it.
                    None => {
                        tx.prepare_cached("DELETE FROM attempts WHERE id = ?1")
                            .and_then(|mut stmt| stmt.execute([attempt_id]))
                            .ctx("claiming jobs")?;
                    }
                }
            }
        }
        tx.commit().ctx("committing a claim")?;
        *lock(&self.head) = learnt;
        Ok(claimed)
    }

    fn record(&self, items: &[(&Claimed, &Report)]) -> Result<Vec<Applied>, StoreError> {
        let _turn = lock(&self.write_turn);
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(format_args!("recording {} jobs", items.len()))?;
        let now = now_ms();
        let applied = items
            .iter()
            .map(|(job, report)| record_one(&tx, job, report, now))
            .collect::<Result<Vec<_>, _>>()?;
        tx.commit()
            .ctx(format_args!("committing {} jobs", items.len()))?;
        Ok(applied)
    }

    fn extend_leases(&self, attempt_ids: &[i64], lease_ms: i64) -> Result<(), StoreError> {
        if attempt_ids.is_empty() {
            return Ok(());
        }
        let _turn = lock(&self.write_turn);
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx("extending leases")?;
        {
            let mut extend = tx
                .prepare_cached(
                    "UPDATE jobs SET lease_until = ?2
                     WHERE attempt_id = ?1 AND state = 'running'",
                )
                .ctx("extending leases")?;
            let until = now_ms() + lease_ms;
            for id in attempt_ids {
                extend.execute(params![id, until]).ctx("extending leases")?;
            }
        }
        tx.commit().ctx("extending leases")
    }

    fn reap_expired(&self, default_max_attempts: u32) -> Result<usize, StoreError> {
        let _turn = lock(&self.write_turn);
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx("reaping expired leases")?;
        let now = now_ms();
        // (job, attempt, the state it goes to)
        let expired: Vec<(i64, Option<i64>, State)> = tx
            .prepare_cached(EXPIRED)
            .and_then(|mut stmt| {
                stmt.query_map([now], |r| {
                    let attempts = loose_int(r.get_ref(2)?).map_or(0, count_from_db);
                    let max_attempts = loose_int(r.get_ref(3)?).map(count_from_db);
                    let cancel_requested = loose_int(r.get_ref(4)?).unwrap_or(0) != 0;
                    let state = job::after_lease_expired(
                        attempts,
                        max_attempts,
                        default_max_attempts,
                        cancel_requested,
                    );
                    Ok((r.get(0)?, r.get(1)?, state))
                })?
                .collect()
            })
            .ctx("reaping expired leases")?;
        for (id, attempt_id, state) in &expired {
            tx.prepare_cached(REAP_ATTEMPT)
                .and_then(|mut stmt| stmt.execute(params![attempt_id, now, LEASE_EXPIRED]))
                .and_then(|_| tx.prepare_cached(REAP_JOB))
                .and_then(|mut stmt| {
                    stmt.execute(params![id, attempt_id, state.name(), LEASE_EXPIRED, now])
                })
                .ctx(format_args!("reaping job {id}"))?;
        }
        tx.commit().ctx("reaping expired leases")?;
        Ok(expired.len())
    }

    fn prune(&self, before: i64, states: &[State], batch: usize) -> Result<usize, StoreError> {
        let mut pruned = 0;
        let states = super::state_list(states);
        loop {
            // One short transaction per batch, so the daemon and people at the shell get the
            // write lock in between.
            let _turn = lock(&self.write_turn);
            let mut conn = self.conn()?;
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .ctx("pruning finished jobs")?;
            tx.execute(
                "CREATE TEMP TABLE IF NOT EXISTS prune_ids (id INTEGER PRIMARY KEY)",
                [],
            )
            .and_then(|_| tx.execute("DELETE FROM prune_ids", []))
            .and_then(|_| {
                tx.prepare_cached(PRUNE_PICK)?
                    .execute(params![before, states, batch as i64])
            })
            .and_then(|_| {
                tx.execute(
                    "DELETE FROM attempts WHERE job_id IN (SELECT id FROM prune_ids)",
                    [],
                )
            })
            .ctx("pruning finished jobs")?;
            let n = tx
                .execute(
                    "DELETE FROM jobs WHERE id IN (SELECT id FROM prune_ids)",
                    [],
                )
                .ctx("pruning finished jobs")?;
            tx.commit().ctx("pruning finished jobs")?;
            pruned += n;
            if n < batch {
                return Ok(pruned);
            }
        }
    }

    fn watch(&self) -> Result<Box<dyn Watch>, StoreError> {
        let mut conn =
            Connection::open(&self.path).ctx(format_args!("opening {}", self.path.display()))?;
        configure(&mut conn).ctx(format_args!("opening {}", self.path.display()))?;
        // Its reads never wait in WAL mode; only the checkpoint could, and it must not.
        conn.busy_timeout(WATCH_BUSY_TIMEOUT)
            .ctx(format_args!("opening {}", self.path.display()))?;
        Ok(Box::new(SqliteWatch::new(conn, &self.path)))
    }

    fn record_host(&self, host: &str, change: HostChange) -> Result<(), StoreError> {
        let _turn = lock(&self.write_turn);
        super::hosts::record(&*self.conn()?, host, change, now_ms())
    }

    fn fleet(&self) -> Result<FleetState, StoreError> {
        super::hosts::fleet(&mut *self.conn()?, now_ms())
    }
}
