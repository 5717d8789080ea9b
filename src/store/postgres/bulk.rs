//! Bulk import for `jobctl import` on PostgreSQL: binary COPY, one per transaction of TX_ROWS.
//!
//! Rows arrive in batches from an iterator (jobctl parses the input on another thread). No
//! transaction is open while waiting for input: rows gather in memory until a transaction's
//! worth is ready, then go in at once. With `skip_existing` they are copied into a temporary
//! table first; one statement drops from it the URLs the database already has (a hash join, as
//! jobs.url has no index), and the rest move into `jobs` with INSERT ... SELECT in input order,
//! again one transaction per TX_ROWS. Every commit is durable as the server makes commits
//! (synchronous_commit is on by default), so the last one leaves every row on disk.

use postgres::Client;
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::Type;

use super::PgStore;
use super::admin::NOW;
use crate::store::admin::in_transactions;
use crate::store::{Context, Imported, NewJob, StoreError};

/// Rows per transaction: few enough commits that they cost little, and progress to report
/// every fraction of a second. (Claims never wait for an import here, unlike on SQLite.)
const TX_ROWS: usize = 50_000;

/// Server memory for the stage (`temp_buffers`) and for the hash join that finds the URLs the
/// queue has (`work_mem`, for that one statement): a million URLs fit in either.
const STAGE_MEMORY: &str = "128MB";

/// The columns a COPY fills, in order.
const COPY_TYPES: [Type; 5] = [Type::TEXT, Type::INT8, Type::INT8, Type::INT8, Type::INT8];

const COPY_JOBS: &str =
    "COPY jobs (url, priority, run_at, max_attempts, created_at) FROM STDIN (FORMAT binary)";

/// The stage, in this connection's temporary schema: no WAL, no locks on `jobs`. `seq` is the
/// input order; its index serves the move below, one range per transaction.
const CREATE_STAGE: &str = "
    CREATE TEMP TABLE IF NOT EXISTS import_stage (
        seq BIGINT PRIMARY KEY, url TEXT NOT NULL, priority BIGINT NOT NULL,
        run_at BIGINT NOT NULL, max_attempts BIGINT, created_at BIGINT NOT NULL);
    TRUNCATE pg_temp.import_stage";

const COPY_STAGE: &str =
    "COPY pg_temp.import_stage (seq, url, priority, run_at, max_attempts, created_at)
    FROM STDIN (FORMAT binary)";

/// Drops the staged URLs that the queue already has in a state other than failed or
/// cancelled. NOT EXISTS lets the planner pick a hash anti-join; ANALYZE first, since
/// autovacuum never looks at temporary tables. A URL that someone adds between this and the
/// move below is not noticed (as on SQLite).
const DROP_EXISTING: &str = "
    DELETE FROM pg_temp.import_stage s
    WHERE EXISTS (SELECT 1 FROM jobs j
                  WHERE j.url = s.url AND j.state NOT IN ('failed', 'cancelled'))";

/// One transaction's worth of staged rows, $1 < seq <= $2, into `jobs` in input order.
const MOVE_STAGED: &str = "
    INSERT INTO jobs (url, priority, run_at, max_attempts, created_at)
    SELECT url, priority, run_at, max_attempts, created_at FROM pg_temp.import_stage
    WHERE seq > $1 AND seq <= $2 ORDER BY seq";

impl PgStore {
    /// Inserts every job of `batches` (already validated), in transactions of about TX_ROWS.
    /// With `skip_existing`, a URL already in the database in a state other than failed or
    /// cancelled is skipped. (URLs repeated within the input are the caller's to drop.)
    /// `progress` gets the number of rows added so far after each commit.
    pub(super) fn import_jobs(
        &self,
        batches: &mut dyn Iterator<Item = Vec<NewJob>>,
        skip_existing: bool,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Imported, StoreError> {
        let mut conn = self.conn()?;
        if skip_existing {
            import_skipping(&mut conn, batches, progress)
        } else {
            import_all(&mut conn, batches, progress).map(|added| (added, 0))
        }
    }
}

fn import_all(
    conn: &mut Client,
    batches: &mut dyn Iterator<Item = Vec<NewJob>>,
    progress: &mut dyn FnMut(u64),
) -> Result<u64, StoreError> {
    let mut added = 0u64;
    in_transactions(batches, TX_ROWS, |rows, _| {
        let mut tx = conn.transaction().ctx("importing jobs")?;
        let now: i64 = tx
            .query_one(NOW, &[])
            .and_then(|r| r.try_get(0))
            .ctx("importing jobs")?;
        let writer = tx.copy_in(COPY_JOBS).ctx("importing jobs")?;
        let mut writer = BinaryCopyInWriter::new(writer, &COPY_TYPES);
        for job in rows {
            let run_at = job.run_at.unwrap_or(now);
            let max_attempts = job.max_attempts.map(i64::from);
            writer
                .write(&[&job.url, &job.priority, &run_at, &max_attempts, &now])
                .ctx("importing jobs")?;
        }
        writer.finish().ctx("importing jobs")?;
        tx.commit().ctx("committing imported jobs")?;
        added += rows.len() as u64;
        progress(added);
        Ok(())
    })?;
    Ok(added)
}

fn import_skipping(
    conn: &mut Client,
    batches: &mut dyn Iterator<Item = Vec<NewJob>>,
    progress: &mut dyn FnMut(u64),
) -> Result<Imported, StoreError> {
    // Room for the stage in this session's memory (allocated as it fills). PostgreSQL accepts
    // the setting only before the session's first use of a temporary table; should that have
    // happened, the stage simply spills to temporary files sooner.
    let _ = conn.batch_execute(&format!("SET temp_buffers = '{STAGE_MEMORY}'"));
    conn.batch_execute(CREATE_STAGE)
        .ctx("preparing the import")?;
    let mut staged = 0i64;
    in_transactions(batches, TX_ROWS, |rows, _| {
        let now: i64 = conn
            .query_one(NOW, &[])
            .and_then(|r| r.try_get(0))
            .ctx("staging the import")?;
        let writer = conn.copy_in(COPY_STAGE).ctx("staging the import")?;
        let mut writer = BinaryCopyInWriter::new(writer, &STAGE_TYPES);
        for job in rows {
            staged += 1;
            let run_at = job.run_at.unwrap_or(now);
            let max_attempts = job.max_attempts.map(i64::from);
            writer
                .write(&[
                    &staged,
                    &job.url,
                    &job.priority,
                    &run_at,
                    &max_attempts,
                    &now,
                ])
                .ctx("staging the import")?;
        }
        writer.finish().ctx("staging the import")?;
        Ok(())
    })?;
    conn.batch_execute("ANALYZE pg_temp.import_stage")
        .ctx("looking for URLs the queue already has")?;
    let skipped = {
        const DOING: &str = "looking for URLs the queue already has";
        let mut tx = conn.transaction().ctx(DOING)?;
        // The hash of the queue's URLs in memory: about 100 MB per million jobs.
        tx.batch_execute(&format!("SET LOCAL work_mem = '{STAGE_MEMORY}'"))
            .ctx(DOING)?;
        let skipped = tx.execute(DROP_EXISTING, &[]).ctx(DOING)?;
        tx.commit().ctx(DOING)?;
        skipped
    };
    let mut added = 0u64;
    let mut from = 0i64;
    while from < staged {
        let to = from + TX_ROWS as i64;
        // One statement: a transaction of its own.
        added += conn
            .execute(MOVE_STAGED, &[&from, &to])
            .ctx("importing jobs")?;
        progress(added);
        from = to;
    }
    conn.batch_execute("DROP TABLE pg_temp.import_stage")
        .ctx("cleaning up after the import")?;
    Ok((added, skipped))
}

/// [`COPY_TYPES`] after the stage's `seq`.
const STAGE_TYPES: [Type; 6] = [
    Type::INT8,
    Type::TEXT,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
];
