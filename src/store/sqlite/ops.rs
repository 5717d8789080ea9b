//! The operator's controls: the pause switch, cancel, retry, and the blob references that
//! `jobctl prune --blobs` checks. Each write is one short IMMEDIATE transaction (bulk retries
//! run in batches of them).

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::SqliteStore;
use crate::job::{Cancel, State};
use crate::job::{JobId, now_ms};
use crate::store::admin::{RETRY_BATCH, requeue_in_batches};
use crate::store::{Context, Controls, References, StoreError};

/// What a cancelled queued job's `error` says.
const CANCELLED_BY_JOBCTL: &str = "cancelled by jobctl";


/// Whether the pause switch is on (the claim checks the same row).
pub(super) fn paused(conn: &Connection) -> Result<bool, StoreError> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM settings WHERE name = 'paused' AND value = '1')",
        [],
        |r| r.get(0),
    )
    .ctx("reading the pause switch")
}

impl Controls for SqliteStore {
    fn set_paused(&self, on: bool) -> Result<(), StoreError> {
        let conn = self.conn()?;
        if on {
            conn.execute(
                "INSERT INTO settings (name, value) VALUES ('paused', '1')
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                [],
            )
        } else {
            conn.execute("DELETE FROM settings WHERE name = 'paused'", [])
        }
        .ctx("setting the pause switch")?;
        Ok(())
    }

    fn cancel(&self, ids: &[JobId]) -> Result<Vec<(JobId, Option<State>)>, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx("cancelling jobs")?;
        let now = now_ms();
        let mut before = Vec::with_capacity(ids.len());
        for &id in ids {
            let state = state_of(&tx, id)?;
            match state.map(State::on_cancel) {
                Some(Cancel::Now) => tx.execute(
                    "UPDATE jobs SET state = 'cancelled', finished_at = ?2, error = ?3
                     WHERE id = ?1 AND state = 'queued'",
                    params![id, now, CANCELLED_BY_JOBCTL],
                ),
                Some(Cancel::WhenAttemptEnds) => tx.execute(
                    "UPDATE jobs SET cancel_requested = 1 WHERE id = ?1 AND state = 'running'",
                    [id],
                ),
                Some(Cancel::No) | None => Ok(0),
            }
            .ctx(format_args!("cancelling job {id}"))?;
            before.push((id, state));
        }
        tx.commit().ctx("committing the cancellations")?;
        Ok(before)
    }

    fn retry(&self, ids: &[JobId], force: bool) -> Result<Vec<(JobId, Option<State>)>, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx("requeueing jobs")?;
        let now = now_ms();
        let mut before = Vec::with_capacity(ids.len());
        for &id in ids {
            let state = state_of(&tx, id)?;
            if state.is_some_and(|s| s.retryable(force)) {
                tx.execute(REQUEUE_ONE, params![id, now])
                    .ctx(format_args!("requeueing job {id}"))?;
            }
            before.push((id, state));
        }
        tx.commit().ctx("committing the requeued jobs")?;
        Ok(before)
    }

    fn retry_failed(&self, error: Option<&str>) -> Result<u64, StoreError> {
        requeue_in_batches(|after| {
            let mut conn = self.conn()?;
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .ctx("requeueing failed jobs")?;
            let ids: Vec<i64> = tx
                .prepare_cached(REQUEUE_FAILED)
                .and_then(|mut stmt| {
                    stmt.query_map(params![now_ms(), error, after, RETRY_BATCH], |r| r.get(0))?
                        .collect()
                })
                .ctx("requeueing failed jobs")?;
            tx.commit().ctx("requeueing failed jobs")?;
            Ok(ids)
        })
    }
}

impl References for SqliteStore {
    fn blobs_of_finished(
        &self,
        before: i64,
        states: &[State],
        each: &mut dyn FnMut(&str),
    ) -> Result<(), StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare(
                "SELECT blob_path FROM jobs INDEXED BY jobs_finished
                 WHERE state IN ('done', 'failed', 'cancelled') AND finished_at < ?1
                   AND instr(',' || ?2 || ',', ',' || state || ',') > 0
                   AND blob_path IS NOT NULL",
            )
            .ctx("listing the blobs of finished jobs")?;
        let mut rows = stmt
            .query(params![before, super::state_list(states)])
            .ctx("listing the blobs of finished jobs")?;
        while let Some(row) = rows.next().ctx("listing the blobs of finished jobs")? {
            if let Ok(path) = row.get_ref(0).and_then(|v| Ok(v.as_str()?)) {
                each(path);
            }
        }
        Ok(())
    }

    fn blob_referenced(&self, sha256: &str) -> Result<bool, StoreError> {
        self.conn()?
            .prepare_cached(BLOB_REFERENCED)
            .and_then(|mut stmt| stmt.query_row([sha256], |r| r.get(0)))
            .ctx(format_args!("looking for jobs that use blob {sha256}"))
    }

    fn live_attempts(&self) -> Result<Vec<i64>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare(
                "SELECT attempt_id FROM jobs
                 WHERE state = 'running' AND lease_until >= ?1 AND attempt_id IS NOT NULL",
            )
            .ctx("listing running jobs")?;
        stmt.query_map([now_ms()], |r| r.get(0))
            .and_then(|rows| rows.collect())
            .ctx("listing running jobs")
    }

    fn still_live(&self, attempt_ids: &[i64]) -> Result<usize, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM jobs
                                WHERE attempt_id = ?1 AND state = 'running' AND lease_until >= ?2)",
            )
            .ctx("watching running jobs")?;
        let now = now_ms();
        let mut live = 0;
        for id in attempt_ids {
            if stmt
                .query_row(params![id, now], |r| r.get::<_, bool>(0))
                .ctx("watching running jobs")?
            {
                live += 1;
            }
        }
        Ok(live)
    }
}

fn state_of(conn: &Connection, id: JobId) -> Result<Option<State>, StoreError> {
    conn.prepare_cached("SELECT state FROM jobs WHERE id = ?1")
        .and_then(|mut stmt| stmt.query_row([id], |r| r.get(0)).optional())
        .ctx(format_args!("reading job {id}"))
}

/// Served by `jobs_sha256` (migration 0003): one index probe per blob.
const BLOB_REFERENCED: &str = "SELECT EXISTS (SELECT 1 FROM jobs WHERE sha256 = ?1)";

const REQUEUE_ONE: &str = "
    UPDATE jobs
    SET state = 'queued', attempts = 0, run_at = ?2, error = NULL, cancel_requested = 0,
        worker = NULL, attempt_id = NULL, lease_until = NULL
    WHERE id = ?1";

/// The next batch of failed jobs after id ?3, in id order, requeued; returns their ids.
const REQUEUE_FAILED: &str = "
    UPDATE jobs
    SET state = 'queued', attempts = 0, run_at = ?1, error = NULL, cancel_requested = 0,
        worker = NULL, attempt_id = NULL, lease_until = NULL
    WHERE id IN (SELECT id FROM jobs
                 WHERE state = 'failed' AND id > ?3
                   AND (?2 IS NULL OR instr(lower(error), lower(?2)) > 0)
                 ORDER BY id LIMIT ?4)
    RETURNING id";

#[cfg(test)]
mod tests {
    use super::*;
use crate::store::{Controls, Figures};

    #[test]
    fn blob_references_are_an_index_probe_and_jobctl_queries_run() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("q.db"), 2).unwrap();
        let conn = store.conn().unwrap();
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {BLOB_REFERENCED}"))
            .unwrap()
            .query_map(["x"], |r| r.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(plan.iter().any(|p| p.contains("jobs_sha256")), "{plan:?}");
        drop(conn);
        // The pinned (INDEXED BY) queries fail to prepare if their index cannot serve them.
        let stats = store.stats().unwrap();
        assert_eq!(
            (stats.blobs, stats.timing_samples, stats.paused),
            (0, 0, false)
        );
        store.set_paused(true).unwrap();
        assert!(store.counts().unwrap().1);
        store.set_paused(false).unwrap();
        assert!(!store.counts().unwrap().1);
    }
}
