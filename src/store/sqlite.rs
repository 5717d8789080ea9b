//! The SQLite backend: opening and migrating the file, the connection pool and the settings every
//! connection gets. The queue operations are in `queue.rs`, the watcher in `watch.rs`, the
//! operator's queries in `admin.rs` and the files it names.

mod admin;
mod bulk;
mod daemons;
mod dashboard;
mod hosts;
#[cfg(target_os = "linux")]
mod inotify;
mod ops;
mod queue;
mod stats;
mod watch;

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use r2d2::PooledConnection;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, TransactionBehavior};

use super::{Context, StoreError, migrations_applied};
use crate::job::State;

/// A `state` value; the schema's CHECK allows only the five.
impl rusqlite::types::FromSql for State {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        let name = value.as_str()?;
        State::parse(name)
            .ok_or_else(|| rusqlite::types::FromSqlError::Other(super::unknown_state(name)))
    }
}

/// States as the comma-separated list that the pruning queries take as one parameter.
fn state_list(states: &[State]) -> String {
    states
        .iter()
        .map(|s| s.name())
        .collect::<Vec<_>>()
        .join(",")
}

/// Numbered migrations, embedded. `PRAGMA user_version` holds how many have been applied.
/// Migrations only ever add.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/0001_init.sql"),
    include_str!("../../migrations/0002_controls.sql"),
    include_str!("../../migrations/0003_blob_refs.sql"),
    include_str!("../../migrations/0004_validation.sql"),
    include_str!("../../migrations/0005_ids_never_reused.sql"),
    include_str!("../../migrations/0006_hosts.sql"),
    include_str!("../../migrations/0007_queue_changes.sql"),
    include_str!("../../migrations/0008_daemons.sql"),
    include_str!("../../migrations/0009_notify_how_far_back.sql"),
    include_str!("../../migrations/0010_overview_indexes.sql"),
    include_str!("../../migrations/0011_no_running_host_index.sql"),
];

/// How long a connection waits for another writer before giving up. Writers hold the lock for
/// milliseconds, so reaching this means something is badly wrong (an open shell transaction).
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The watcher's busy timeout: short, so a blocked checkpoint never stalls the supervisor.
pub(super) const WATCH_BUSY_TIMEOUT: Duration = Duration::from_millis(100);

/// The SQLite queue. Cheap to clone: clones share one pool.
#[derive(Clone)]
pub struct SqliteStore {
    pub(super) pool: r2d2::Pool<SqliteConnectionManager>,
    pub(super) path: PathBuf,
    /// Taken around every write transaction of the queue, so that this process's threads wait
    /// for each other on a mutex, which wakes the next one at once. Waiting in SQLite's busy
    /// handler instead means sleeping 1 to 100 ms per try; with 16 workers and a committer that
    /// sleep, not the work, would set the pace. Other processes still meet the busy handler.
    pub(super) write_turn: Arc<Mutex<()>>,
    /// What the last claim learnt about the head of the queue, for the next one.
    pub(super) head: Arc<Mutex<Option<queue::Head>>>,
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
pub(super) fn configure(conn: &mut Connection) -> rusqlite::Result<()> {
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
        static NO_MEMSTATUS: std::sync::Once = std::sync::Once::new();
        // SAFETY: before SQLite initialises (the first connection), from one thread (the Once).
        NO_MEMSTATUS.call_once(|| unsafe {
            rusqlite::ffi::sqlite3_config(rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS, 0);
        });
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
            write_turn: Arc::new(Mutex::new(())),
            head: Arc::new(Mutex::new(None)),
            pool,
            path: path.to_path_buf(),
        };
        store.migrate()?;
        Ok(store)
    }

    pub(super) fn conn(&self) -> Result<PooledConnection<SqliteConnectionManager>, StoreError> {
        self.pool
            .get()
            .ctx(format_args!("connecting to {}", self.path.display()))
    }

    /// Applies pending migrations in one IMMEDIATE transaction, so two processes opening a new
    /// file at once cannot both apply them.
    ///
    /// They run on a connection of their own with foreign keys off, as SQLite's documented way
    /// of rebuilding a table requires (0005 rebuilds `jobs`): with them on, dropping the old
    /// table would delete every attempt through ON DELETE CASCADE. (The pragma cannot change
    /// inside a transaction, hence the separate connection, which is never pooled.) Before the
    /// commit, `foreign_key_check` proves that every reference still holds.
    fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = Connection::open(&self.path)
            .ctx(format_args!("opening the database {}", self.path.display()))?;
        configure(&mut conn).ctx("configuring the migration's connection")?;
        conn.pragma_update(None, "foreign_keys", false)
            .ctx("configuring the migration's connection")?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx("starting the migration")?;
        let applied: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .ctx("reading the schema version")?;
        let applied = migrations_applied(applied, MIGRATIONS.len())?;
        if applied == MIGRATIONS.len() {
            return Ok(());
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
            tx.execute_batch(sql)
                .ctx(format_args!("applying migration {}", i + 1))?;
            tx.pragma_update(None, "user_version", i as i64 + 1)
                .ctx("recording the schema version")?;
        }
        let broken: i64 = tx
            .query_row("SELECT COUNT(*) FROM pragma_foreign_key_check", [], |r| {
                r.get(0)
            })
            .ctx("checking references after the migration")?;
        if broken > 0 {
            return Err(StoreError::new(
                "checking references after the migration",
                format!("{broken} rows refer to rows that are gone; nothing was changed"),
            ));
        }
        tx.commit().ctx("committing the migration")
    }
}

#[cfg(test)]
mod tests {
    use super::queue::{
        CLAIM_ONE, WALK_ABOVE, WALK_ALL, WALK_BELOW, WALK_LATER, WALK_SAME_TIME,
    };
    use super::watch::{NEXT_DUE, NEXT_DUE_PAST_PAUSES};
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

    /// Regression: a bare `LIMIT ?` made SQLite re-prepare the claim on every run. (A pooled
    /// connection's statement cache outlives the claim, so a walk and a claim by id are prepared
    /// once and run each time.)
    #[test]
    fn the_claim_is_prepared_once() {
        use crate::job::{Outcome, Report};
        use crate::store::{ClaimOptions, Jobs, NewJob, Queue};
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("q.db"), 1).unwrap();
        let jobs: Vec<NewJob> = (0..20)
            .map(|i| NewJob::new(format!("http://127.0.0.1/{i}")))
            .collect();
        store.add(&jobs).unwrap();
        let failed = Report::new(Outcome::Failed { error: "x".into() });
        for limit in [1, 2, 3, 1, 2] {
            let claimed = store.claim("w", limit, ClaimOptions::lease(60_000)).unwrap();
            let items: Vec<_> = claimed.iter().map(|job| (job, &failed)).collect();
            store.record(&items).unwrap();
        }
        let conn = store.conn().unwrap();
        let mut walks = 0;
        for sql in [WALK_ALL, WALK_ABOVE, WALK_SAME_TIME, WALK_LATER, WALK_BELOW, CLAIM_ONE] {
            let stmt = conn.prepare_cached(sql).unwrap();
            assert_eq!(stmt.get_status(rusqlite::StatementStatus::RePrepare), 0);
            if sql != CLAIM_ONE {
                walks += stmt.get_status(rusqlite::StatementStatus::Run);
            }
        }
        assert!(walks >= 5, "{walks} walks for 5 claims");
        let sync: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            sync, 1,
            "jobctl's add left the pooled connection fsyncing every commit"
        );
    }

    /// Migration 0005 rebuilds `jobs` for AUTOINCREMENT: on a database in use, every row, every
    /// attempt (which a cascade would have deleted) and every index survives, and the references
    /// still cascade afterwards.
    #[test]
    fn the_rebuild_for_ids_never_reused_keeps_jobs_attempts_and_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.db");
        {
            let mut conn = Connection::open(&path).unwrap();
            configure(&mut conn).unwrap();
            for sql in &MIGRATIONS[..4] {
                conn.execute_batch(sql).unwrap();
            }
            conn.execute_batch(
                "PRAGMA user_version = 4;
                 INSERT INTO jobs (id, url, state, sha256, validation, validation_note)
                     VALUES (1, 'http://127.0.0.1/a', 'done', 'ab', 'structure', 'no decoder'),
                            (2, 'http://127.0.0.1/b', 'queued', NULL, NULL, NULL),
                            (7, 'http://127.0.0.1/c', 'failed', NULL, NULL, NULL);
                 INSERT INTO attempts (job_id, attempt, started_at, outcome)
                     VALUES (1, 1, 0, 'done'), (7, 1, 0, 'failed'), (7, 2, 0, 'failed');
                 UPDATE jobs SET cancel_requested = 1 WHERE id = 2;",
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path, 1).unwrap();
        let conn = store.conn().unwrap();
        let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
        assert_eq!(count("PRAGMA user_version"), MIGRATIONS.len() as i64);
        assert_eq!(count("SELECT COUNT(*) FROM attempts"), 3);
        assert_eq!(
            count(
                "SELECT COUNT(*) FROM jobs_view WHERE id = 1 AND validation = 'structure'
                 AND validation_note = 'no decoder' AND sha256 = 'ab'"
            ),
            1
        );
        assert_eq!(count("SELECT cancel_requested FROM jobs WHERE id = 2"), 1);
        assert_eq!(
            count("SELECT seq FROM sqlite_sequence WHERE name = 'jobs'"),
            7
        );
        for index in [
            "jobs_claim",
            "jobs_due",
            "jobs_lease",
            "jobs_state",
            "jobs_finished",
            "jobs_sha256",
        ] {
            assert_eq!(
                count(&format!(
                    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = '{index}'
                     AND tbl_name = 'jobs'"
                )),
                1,
                "{index}"
            );
        }
        conn.execute("DELETE FROM jobs WHERE id IN (1, 7)", [])
            .unwrap();
        assert_eq!(count("SELECT COUNT(*) FROM attempts"), 0, "no cascade");
        conn.execute("INSERT INTO jobs (url) VALUES ('http://127.0.0.1/d')", [])
            .unwrap();
        assert_eq!(count("SELECT MAX(id) FROM jobs"), 8);
    }

    #[test]
    fn the_hot_queries_walk_their_indexes_without_sorting() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("q.db"), 1).unwrap();
        let conn = store.conn().unwrap();
        for (sql, index) in [
            (WALK_ALL, "jobs_claim"),
            (WALK_ABOVE, "jobs_claim"),
            // A seek to the point itself, not to the first job due at its time.
            (WALK_SAME_TIME, "jobs_claim (priority=? AND run_at=? AND id>?)"),
            (WALK_LATER, "jobs_claim"),
            (WALK_BELOW, "jobs_claim"),
            (NEXT_DUE, "jobs_due"),
            (NEXT_DUE_PAST_PAUSES, "jobs_due"),
        ] {
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
