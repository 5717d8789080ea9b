//! Bulk import for `jobctl import`: many rows per statement, many statements per transaction,
//! and a durable last commit.
//!
//! Rows arrive in batches from an iterator (jobctl parses the input on another thread). The write
//! lock is never held while waiting for input: rows gather in memory until a transaction's worth
//! is ready, then go in at once. With `skip_existing` they are staged in a temporary table first;
//! one read-only pass marks the URLs the database already has, and the rest move into `jobs` with
//! INSERT ... SELECT, again one short transaction per batch.

use std::sync::LazyLock;

use rusqlite::{CachedStatement, Connection, TransactionBehavior, params};

use super::SqliteStore;
use crate::job::now_ms;
use crate::store::admin::in_transactions;
use crate::store::{Context, Import, Imported, NewJob, StoreError};

/// Rows per transaction: a fraction of a second of the write lock, so that daemons claiming and
/// people at the sqlite3 shell get their turn, and few enough commits that they cost little.
const TX_ROWS: usize = 50_000;
/// Rows per INSERT statement: the per-statement overhead shrinks a hundredfold.
const ROWS_PER_STMT: usize = 100;
/// Page cache for the importing connection and its stage (KiB, as SQLite's negative
/// `cache_size`): a transaction's pages stay in memory instead of spilling into the log before
/// the commit. More buys no speed (measured), only memory.
const CACHE_KIB: i64 = 16_384;

/// `INSERT ... VALUES (...), (...), ...` for ROWS_PER_STMT rows into `table`: ?1 is the creation
/// time; each row binds url, priority, run_at and max_attempts.
///
/// `OR FAIL`: a multi-row INSERT that could ABORT half-way keeps a statement journal, a temporary
/// file that gets a copy of every page it touches; under FAIL it needs none. The rows are valid
/// by construction, and should one fail all the same, the whole transaction is rolled back.
fn multi_insert(table: &str) -> String {
    let rows: Vec<String> = (0..ROWS_PER_STMT)
        .map(|i| {
            let p = 2 + 4 * i;
            format!("(?{p}, ?{}, ?{}, ?{}, ?1)", p + 1, p + 2, p + 3)
        })
        .collect();
    format!(
        "INSERT OR FAIL INTO {table} (url, priority, run_at, max_attempts, created_at) VALUES {}",
        rows.join(", ")
    )
}

static INSERT_JOBS: LazyLock<String> = LazyLock::new(|| multi_insert("main.jobs"));
static INSERT_STAGE: LazyLock<String> = LazyLock::new(|| multi_insert("temp.import_stage"));

impl Import for SqliteStore {
    fn import(
        &self,
        batches: &mut dyn Iterator<Item = Vec<NewJob>>,
        skip_existing: bool,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Imported, StoreError> {
        let mut conn = self.conn()?;
        // A commit in WAL mode with synchronous=NORMAL is atomic but not yet on disk; the FULL
        // last commit syncs the log, and every earlier commit with it.
        conn.execute_batch(&format!(
            "PRAGMA synchronous = NORMAL; PRAGMA cache_size = -{CACHE_KIB};"
        ))
        .ctx("preparing to import")?;
        let result = if skip_existing {
            import_skipping(&mut conn, batches, progress)
        } else {
            import_all(&mut conn, batches, progress).map(|added| (added, 0))
        };
        // The connection goes back to the pool: leave it as it was.
        let _ = conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA cache_size = -2000;");
        result
    }
}

fn import_all(
    conn: &mut Connection,
    batches: &mut dyn Iterator<Item = Vec<NewJob>>,
    progress: &mut dyn FnMut(u64),
) -> Result<u64, StoreError> {
    let mut added = 0u64;
    in_transactions(batches, TX_ROWS, |rows, last| {
        if last {
            durable(conn)?;
        }
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx("importing jobs")?;
        insert_rows(&tx, &INSERT_JOBS, "main.jobs", &rows)?;
        tx.commit().ctx("committing imported jobs")?;
        added += rows.len() as u64;
        progress(added);
        Ok(())
    })?;
    Ok(added)
}

fn import_skipping(
    conn: &mut Connection,
    batches: &mut dyn Iterator<Item = Vec<NewJob>>,
    progress: &mut dyn FnMut(u64),
) -> Result<Imported, StoreError> {
    // The stage lives in this connection's temp database: filling it takes no lock on the
    // main database at all.
    conn.execute_batch(&format!(
        "PRAGMA temp.cache_size = -{CACHE_KIB};
         CREATE TEMP TABLE IF NOT EXISTS import_stage (
             url TEXT NOT NULL, priority INTEGER NOT NULL, run_at INTEGER,
             max_attempts INTEGER, created_at INTEGER, skip INTEGER NOT NULL DEFAULT 0);
         DELETE FROM temp.import_stage;"
    ))
    .ctx("preparing the import")?;
    let mut staged = 0u64;
    in_transactions(batches, TX_ROWS, |rows, _| {
        let tx = conn.transaction().ctx("staging the import")?;
        insert_rows(&tx, &INSERT_STAGE, "temp.import_stage", &rows)?;
        tx.commit().ctx("staging the import")?;
        staged += rows.len() as u64;
        Ok(())
    })?;
    // One read of the main database (no write lock) marks the URLs it already has. A URL that
    // someone adds between this and the move below is not noticed.
    conn.execute(
        "UPDATE temp.import_stage SET skip = 1
         WHERE url IN (SELECT url FROM main.jobs WHERE state NOT IN ('failed', 'cancelled'))",
        [],
    )
    .ctx("looking for URLs the queue already has")?;
    let last_row: i64 = conn
        .query_row(
            "SELECT COALESCE(MAX(rowid), 0) FROM temp.import_stage",
            [],
            |r| r.get(0),
        )
        .ctx("importing jobs")?;
    let mut added = 0u64;
    let mut from = 0i64;
    while from < last_row {
        let to = from + TX_ROWS as i64;
        if to >= last_row {
            durable(conn)?;
        }
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx("importing jobs")?;
        added += tx
            .prepare_cached(
                "INSERT INTO main.jobs (url, priority, run_at, max_attempts, created_at)
                 SELECT url, priority, run_at, max_attempts, created_at FROM temp.import_stage
                 WHERE rowid > ?1 AND rowid <= ?2 AND skip = 0 ORDER BY rowid",
            )
            .and_then(|mut stmt| stmt.execute(params![from, to]))
            .ctx("importing jobs")? as u64;
        tx.commit().ctx("committing imported jobs")?;
        progress(added);
        from = to;
    }
    conn.execute_batch("DROP TABLE temp.import_stage")
        .ctx("cleaning up after the import")?;
    Ok((added, staged - added))
}

/// The next commit syncs the log: it and everything committed before it survive a power cut.
fn durable(conn: &Connection) -> Result<(), StoreError> {
    conn.pragma_update(None, "synchronous", "FULL")
        .ctx("preparing the last commit")
}

/// Inserts `rows`, ROWS_PER_STMT per statement, the remainder one by one.
fn insert_rows(
    conn: &Connection,
    many_sql: &str,
    table: &str,
    rows: &[NewJob],
) -> Result<(), StoreError> {
    let now = now_ms();
    let mut chunks = rows.chunks_exact(ROWS_PER_STMT);
    let mut many = conn.prepare_cached(many_sql).ctx("preparing the import")?;
    for chunk in &mut chunks {
        bind_rows(&mut many, now, chunk).ctx("importing jobs")?;
        many.raw_execute().ctx("importing jobs")?;
    }
    let mut one = conn
        .prepare_cached(&format!(
            "INSERT INTO {table} (url, priority, run_at, max_attempts, created_at)
             VALUES (?2, ?3, ?4, ?5, ?1)"
        ))
        .ctx("preparing the import")?;
    for row in chunks.remainder() {
        bind_rows(&mut one, now, std::slice::from_ref(row)).ctx("importing jobs")?;
        one.raw_execute().ctx("importing jobs")?;
    }
    Ok(())
}

fn bind_rows(stmt: &mut CachedStatement<'_>, now: i64, rows: &[NewJob]) -> rusqlite::Result<()> {
    stmt.raw_bind_parameter(1, now)?;
    for (i, job) in rows.iter().enumerate() {
        let p = 2 + 4 * i;
        stmt.raw_bind_parameter(p, job.url.as_str())?;
        stmt.raw_bind_parameter(p + 1, job.priority)?;
        stmt.raw_bind_parameter(p + 2, job.run_at.unwrap_or(now))?;
        stmt.raw_bind_parameter(p + 3, job.max_attempts)?;
    }
    Ok(())
}
