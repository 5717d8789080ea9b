//! The queue operations on SQLite: claim, complete, release, postpone, leases, reaping and
//! pruning, each one short IMMEDIATE transaction.

use std::cmp::Reverse;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, Transaction, TransactionBehavior, params};

use super::watch::SqliteWatch;
use super::{SqliteStore, WATCH_BUSY_TIMEOUT, configure};
use crate::lock;
use crate::store::{
    Applied, Claimed, Context, Outcome, Queue, RawUrl, Report, StoreError, Watch, count_from_db,
    now_ms,
};

/// Picks due jobs in claim order and marks them running, in one statement; nothing while the
/// queue is paused (`jobctl pause`). RETURNING yields rows in table order, so the claim order
/// columns come back too, for sorting. `INDEXED BY` pins the
/// partial index that is already in claim order: without statistics the planner prefers
/// `jobs_state` and sorts every queued row, which costs milliseconds at a million rows.
/// The limit is written `(SELECT ?4)`: SQLite re-prepares a statement on every run whose LIMIT
/// is a bare parameter, and that parse cost more than the claim itself.
pub(super) const CLAIM: &str = "
    UPDATE jobs
    SET state = 'running', attempts = attempts + 1, started_at = ?1, finished_at = NULL,
        lease_until = ?2, worker = ?3
    WHERE id IN (SELECT id FROM jobs INDEXED BY jobs_claim
                 WHERE state = 'queued' AND run_at <= ?1
                   AND NOT EXISTS (SELECT 1 FROM settings WHERE name = 'paused' AND value = '1')
                 ORDER BY priority DESC, run_at, id
                 LIMIT (SELECT ?4))
    RETURNING id, url, attempts, max_attempts, priority, run_at";

const START_ATTEMPT: &str = "
    INSERT INTO attempts (job_id, attempt, worker, started_at)
    VALUES (?1, (SELECT COALESCE(MAX(attempt), 0) + 1 FROM attempts WHERE job_id = ?1), ?2, ?3)
    RETURNING id, attempt";

/// Records an outcome, but only while the claim still holds (`attempt_id` matches). A job whose
/// cancellation was requested while it ran is not queued again.
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

const FINISH_ATTEMPT: &str = "
    UPDATE attempts
    SET finished_at = ?2, outcome = ?3, http_status = ?4, error = ?5, bytes = ?6,
        ttfb_ms = ?7, download_ms = ?8, total_ms = ?9, started_at = ?10
    WHERE id = ?1";

/// Records one outcome inside the caller's transaction, if the claim still holds.
fn finish(
    tx: &Transaction<'_>,
    job: &Claimed,
    report: &Report,
    now: i64,
) -> Result<Applied, StoreError> {
    // (state, run_at, error, stored blob, attempts given back)
    let (state, run_at, error, stored, refund) = match &report.outcome {
        Outcome::Done(stored) => ("done", None, None, Some(stored), 0),
        Outcome::Retry { run_at, error } => ("queued", Some(*run_at), Some(error), None, 0),
        Outcome::Failed { error } => ("failed", None, Some(error), None, 0),
        Outcome::Postponed { run_at, error } => ("queued", Some(*run_at), Some(error), None, 1),
    };
    let changed = tx
        .prepare_cached(FINISH_JOB)
        .and_then(|mut stmt| {
            stmt.execute(params![
                job.job_id,
                job.attempt_id,
                state,
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
        .ctx(format_args!("recording job {}", job.job_id))?;
    if changed == 0 {
        return Ok(Applied::ClaimLost);
    }
    tx.prepare_cached(FINISH_ATTEMPT)
        .and_then(|mut stmt| {
            stmt.execute(params![
                job.attempt_id,
                now,
                report.outcome.name(),
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

impl Queue for SqliteStore {
    fn claim(&self, worker: &str, limit: usize, lease_ms: i64) -> Result<Vec<Claimed>, StoreError> {
        let _turn = lock(&self.write_turn);
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx("starting a claim")?;
        let now = now_ms();
        // Each with its claim order: (priority, run_at).
        let mut claimed: Vec<(Claimed, (i64, i64))> = Vec::new();
        {
            let mut pick = tx.prepare_cached(CLAIM).ctx("preparing the claim")?;
            let mut rows = pick
                .query(params![now, now + lease_ms, worker, limit as i64])
                .ctx("claiming jobs")?;
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
                };
                let order = (
                    loose_int(value(4)?).unwrap_or(0),
                    loose_int(value(5)?).unwrap_or(0),
                );
                claimed.push((job, order));
            }
        }
        claimed.sort_by_key(|(job, (priority, run_at))| (Reverse(*priority), *run_at, job.job_id));
        let mut claimed: Vec<Claimed> = claimed.into_iter().map(|(job, _)| job).collect();
        {
            let mut start = tx
                .prepare_cached(START_ATTEMPT)
                .ctx("preparing an attempt")?;
            let mut mark = tx
                .prepare_cached("UPDATE jobs SET attempt_id = ?2 WHERE id = ?1")
                .ctx("preparing an attempt")?;
            for job in &mut claimed {
                (job.attempt_id, job.attempt) = start
                    .query_row(params![job.job_id, worker, now], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                    .ctx(format_args!("starting an attempt of job {}", job.job_id))?;
                mark.execute(params![job.job_id, job.attempt_id])
                    .ctx(format_args!("claiming job {}", job.job_id))?;
            }
        }
        tx.commit().ctx("committing a claim")?;
        Ok(claimed)
    }

    fn complete_many(&self, items: &[(&Claimed, &Report)]) -> Result<Vec<Applied>, StoreError> {
        let _turn = lock(&self.write_turn);
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(format_args!("recording {} jobs", items.len()))?;
        let now = now_ms();
        let applied = items
            .iter()
            .map(|(job, report)| finish(&tx, job, report, now))
            .collect::<Result<Vec<_>, _>>()?;
        tx.commit()
            .ctx(format_args!("committing {} jobs", items.len()))?;
        Ok(applied)
    }

    fn release(&self, job: &Claimed, why: &str) -> Result<Applied, StoreError> {
        let _turn = lock(&self.write_turn);
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(format_args!("releasing job {}", job.job_id))?;
        let now = now_ms();
        let changed = tx
            .execute(
                "UPDATE jobs
                 SET state = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'queued' END,
                     attempts = attempts - 1,
                     worker = NULL, attempt_id = NULL, lease_until = NULL
                 WHERE id = ?1 AND attempt_id = ?2 AND state = 'running'",
                params![job.job_id, job.attempt_id],
            )
            .ctx(format_args!("releasing job {}", job.job_id))?;
        if changed == 0 {
            return Ok(Applied::ClaimLost);
        }
        tx.execute(
            "UPDATE attempts SET finished_at = ?2, outcome = 'interrupted', error = ?3,
                                 total_ms = ?2 - started_at
             WHERE id = ?1",
            params![job.attempt_id, now, why],
        )
        .ctx(format_args!("releasing job {}", job.job_id))?;
        tx.commit()
            .ctx(format_args!("releasing job {}", job.job_id))?;
        Ok(Applied::Yes)
    }

    fn postpone(&self, job: &Claimed, run_at: i64) -> Result<Applied, StoreError> {
        let _turn = lock(&self.write_turn);
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(format_args!("postponing job {}", job.job_id))?;
        let changed = tx
            .execute(
                "UPDATE jobs
                 SET state = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'queued' END,
                     attempts = attempts - 1, run_at = ?3,
                     worker = NULL, attempt_id = NULL, lease_until = NULL
                 WHERE id = ?1 AND attempt_id = ?2 AND state = 'running'",
                params![job.job_id, job.attempt_id, run_at],
            )
            .ctx(format_args!("postponing job {}", job.job_id))?;
        if changed == 0 {
            return Ok(Applied::ClaimLost);
        }
        tx.execute("DELETE FROM attempts WHERE id = ?1", [job.attempt_id])
            .ctx(format_args!("postponing job {}", job.job_id))?;
        tx.commit()
            .ctx(format_args!("postponing job {}", job.job_id))?;
        Ok(Applied::Yes)
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
        const WHY: &str = "the lease ran out: the daemon working on it stopped or died";
        let _turn = lock(&self.write_turn);
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx("reaping expired leases")?;
        let now = now_ms();
        tx.execute(
            "UPDATE attempts SET finished_at = ?1, outcome = 'lease_expired', error = ?2
             WHERE id IN (SELECT attempt_id FROM jobs
                          WHERE state = 'running' AND lease_until < ?1)",
            params![now, WHY],
        )
        .ctx("reaping expired leases")?;
        let reaped = tx
            .execute(
                "UPDATE jobs
                 SET state = CASE WHEN cancel_requested THEN 'cancelled'
                                  WHEN attempts >= COALESCE(max_attempts, ?2) THEN 'failed'
                                  ELSE 'queued' END,
                     error = ?3, finished_at = ?1,
                     worker = NULL, attempt_id = NULL, lease_until = NULL
                 WHERE state = 'running' AND lease_until < ?1",
                params![now, default_max_attempts, WHY],
            )
            .ctx("reaping expired leases")?;
        tx.commit().ctx("reaping expired leases")?;
        Ok(reaped)
    }

    fn prune(&self, before: i64, states: &[&str], batch: usize) -> Result<usize, StoreError> {
        let mut pruned = 0;
        let states = states.join(",");
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
        Ok(Box::new(SqliteWatch::new(conn)))
    }
}
