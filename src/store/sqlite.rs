//! The SQLite backend: opening and migrating the file, the connection pool, and the queue
//! operations (claim, complete, release, reap) as short IMMEDIATE transactions.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use r2d2::PooledConnection;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use super::{Applied, Claimed, Context, Outcome, Queue, RawUrl, Report, StoreError, Watch, now_ms};

/// Numbered migrations, embedded. `PRAGMA user_version` holds how many have been applied.
/// Migrations only ever add.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/0001_init.sql"),
    include_str!("../../migrations/0002_controls.sql"),
    include_str!("../../migrations/0003_blob_refs.sql"),
];

/// How long a connection waits for another writer before giving up. Writers hold the lock for
/// milliseconds, so reaching this means something is badly wrong (an open shell transaction).
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The watcher's busy timeout: short, so a blocked checkpoint never stalls the supervisor.
const WATCH_BUSY_TIMEOUT: Duration = Duration::from_millis(100);

/// The SQLite queue. Cheap to clone: clones share one pool.
#[derive(Clone)]
pub struct SqliteStore {
    pub(super) pool: r2d2::Pool<SqliteConnectionManager>,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

/// Settings every connection gets: WAL so readers never block the writer, NORMAL sync (safe in
/// WAL: a crash of the process loses nothing; blobs are fsynced on their own before `done` is
/// committed), a busy timeout, and a bound on the WAL file left behind after checkpoints.
fn configure(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        log::warn!("database refused WAL mode (journal_mode = {mode}); expect lock contention");
    }
    conn.execute_batch(
        "PRAGMA synchronous = NORMAL;
         PRAGMA foreign_keys = ON;
         PRAGMA journal_size_limit = 67108864;",
    )
}

impl SqliteStore {
    /// Opens (creating and migrating as needed) the database at `path`, with a pool of up to
    /// `pool_size` connections.
    pub fn open(path: &Path, pool_size: u32) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).ctx(format_args!(
                "creating the database folder {}",
                dir.display()
            ))?;
        }
        // Create the file ourselves so that it is private to its owner from the first byte
        // (SQLite gives the -wal and -shm files the same permissions).
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .ctx(format_args!("opening the database {}", path.display()))?;
        let manager = SqliteConnectionManager::file(path).with_init(configure);
        let pool = r2d2::Pool::builder()
            .max_size(pool_size.max(1))
            .min_idle(Some(1))
            .connection_timeout(BUSY_TIMEOUT)
            .build(manager)
            .ctx(format_args!("opening the database {}", path.display()))?;
        let store = SqliteStore {
            pool,
            path: path.to_path_buf(),
        };
        store.migrate()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(super) fn conn(&self) -> Result<PooledConnection<SqliteConnectionManager>, StoreError> {
        self.pool
            .get()
            .ctx(format_args!("connecting to {}", self.path.display()))
    }

    /// Applies pending migrations in one IMMEDIATE transaction, so two processes opening a new
    /// file at once cannot both apply them.
    fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx("starting the migration")?;
        let applied: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .ctx("reading the schema version")?;
        let applied = usize::try_from(applied).unwrap_or(usize::MAX);
        if applied > MIGRATIONS.len() {
            return Err(StoreError::new(
                "checking the schema version",
                format!(
                    "the database has schema version {applied}, newer than this jobd knows ({}); upgrade jobd",
                    MIGRATIONS.len()
                ),
            ));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
            tx.execute_batch(sql)
                .ctx(format_args!("applying migration {}", i + 1))?;
            tx.pragma_update(None, "user_version", i as i64 + 1)
                .ctx("recording the schema version")?;
        }
        tx.commit().ctx("committing the migration")
    }
}

/// Picks due jobs in claim order and marks them running, in one statement; nothing while the
/// queue is paused (`jobctl pause`). `INDEXED BY` pins the
/// partial index that is already in claim order: without statistics the planner prefers
/// `jobs_state` and sorts every queued row, which costs milliseconds at a million rows.
const CLAIM: &str = "
    UPDATE jobs
    SET state = 'running', attempts = attempts + 1, started_at = ?1, finished_at = NULL,
        lease_until = ?2, worker = ?3
    WHERE id IN (SELECT id FROM jobs INDEXED BY jobs_claim
                 WHERE state = 'queued' AND run_at <= ?1
                   AND NOT EXISTS (SELECT 1 FROM settings WHERE name = 'paused' AND value = '1')
                 ORDER BY priority DESC, run_at, id
                 LIMIT ?4)
    RETURNING id, url, attempts, max_attempts";

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
        worker = NULL, attempt_id = NULL, lease_until = NULL
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
        ttfb_ms = ?7, download_ms = ?8, total_ms = ?9
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
            ])
        })
        .ctx(format_args!(
            "recording attempt {} of job {}",
            job.attempt, job.job_id
        ))?;
    Ok(Applied::Yes)
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
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx("starting a claim")?;
        let now = now_ms();
        let mut claimed = Vec::new();
        {
            let mut pick = tx.prepare_cached(CLAIM).ctx("preparing the claim")?;
            let mut rows = pick
                .query(params![now, now + lease_ms, worker, limit as i64])
                .ctx("claiming jobs")?;
            while let Some(row) = rows.next().ctx("claiming jobs")? {
                claimed.push(Claimed {
                    job_id: row.get(0).ctx("reading a claimed job")?,
                    url: raw_url(row.get_ref(1).ctx("reading a claimed job")?),
                    attempts: row.get(2).ctx("reading a claimed job")?,
                    max_attempts: row.get(3).ctx("reading a claimed job")?,
                    attempt_id: 0,
                    attempt: 0,
                    started_at: now,
                });
            }
        }
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
        Ok(Box::new(SqliteWatch {
            conn,
            data_version: None,
        }))
    }
}

/// The first index entry of `jobs_due` answers this, however many jobs are queued.
const NEXT_DUE: &str = "SELECT MIN(run_at) FROM jobs INDEXED BY jobs_due WHERE state = 'queued'";

/// Sees commits by other connections through `PRAGMA data_version`, which costs next to nothing.
/// (An update hook would see only this connection's own writes, not the sqlite3 shell's.)
struct SqliteWatch {
    conn: Connection,
    data_version: Option<i64>,
}

impl Watch for SqliteWatch {
    fn changed(&mut self) -> Result<bool, StoreError> {
        // Cached: this runs every poll tick, and preparing it would cost more than running it.
        let version: i64 = self
            .conn
            .prepare_cached("PRAGMA data_version")
            .and_then(|mut stmt| stmt.query_row([], |r| r.get(0)))
            .ctx("watching the database")?;
        Ok(self.data_version.replace(version) != Some(version))
    }

    fn next_due(&mut self) -> Result<Option<i64>, StoreError> {
        self.conn
            .prepare_cached(NEXT_DUE)
            .and_then(|mut stmt| stmt.query_row([], |r| r.get(0)).optional())
            .map(Option::flatten)
            .ctx("looking for queued jobs")
    }

    fn counts(&mut self) -> Result<Vec<(String, i64)>, StoreError> {
        self.conn
            .prepare_cached("SELECT state, COUNT(*) FROM jobs GROUP BY state")
            .and_then(|mut stmt| {
                stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<Vec<_>, _>>()
            })
            .ctx("counting jobs")
    }

    fn checkpoint(&mut self) -> Result<(), StoreError> {
        // TRUNCATE resets the log to zero bytes once every reader is on the newest snapshot. A
        // reader holding an old one (an open shell transaction) makes it give up, not wait: the
        // watch connection's busy timeout is short.
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .ctx("checkpointing the write-ahead log")
    }

    fn pending(&mut self) -> Result<bool, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM jobs WHERE state IN ('queued', 'running'))",
            )
            .and_then(|mut stmt| stmt.query_row([], |r| r.get(0)))
            .ctx("looking for unfinished jobs")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(conn: &Connection, sql: &str) -> Vec<String> {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let params = vec![rusqlite::types::Value::Integer(1); stmt.parameter_count()];
        stmt.query_map(rusqlite::params_from_iter(params), |r| {
            r.get::<_, String>(3)
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    }

    #[test]
    fn the_hot_queries_walk_their_indexes_without_sorting() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("q.db"), 1).unwrap();
        let conn = store.conn().unwrap();
        for (sql, index) in [(CLAIM, "jobs_claim"), (NEXT_DUE, "jobs_due")] {
            let plan = plan(&conn, sql);
            assert!(plan.iter().any(|p| p.contains(index)), "{plan:?}");
            assert!(
                !plan.iter().any(|p| p.contains("TEMP B-TREE")),
                "sorts: {plan:?}"
            );
            assert!(
                !plan.iter().any(|p| p == "SCAN jobs"),
                "scans the table: {plan:?}"
            );
        }
    }
}
