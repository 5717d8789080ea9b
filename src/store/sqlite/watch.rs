//! The SQLite watcher: sees other processes' commits through `PRAGMA data_version`, and answers
//! the supervisor's cheap questions on a connection of its own.

use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension};

use crate::job::State;
use crate::store::{Context, StoreError, Watch};

/// The first index entry of `jobs_due` answers this, however many jobs are queued.
pub(super) const NEXT_DUE: &str =
    "SELECT MIN(run_at) FROM jobs INDEXED BY jobs_due WHERE state = 'queued'";

/// Sees commits by other connections through `PRAGMA data_version`, which costs next to nothing.
/// (An update hook would see only this connection's own writes, not the sqlite3 shell's.)
///
/// It also keeps the write-ahead log bounded: SQLite's automatic checkpoints never shrink the
/// file, so every [`CHECKPOINT_EVERY`] the watcher checkpoints and truncates it.
pub(super) struct SqliteWatch {
    conn: Connection,
    data_version: Option<i64>,
    last_checkpoint: Instant,
}

/// How often the write-ahead log is checkpointed and truncated.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(10);

impl SqliteWatch {
    pub(super) fn new(conn: Connection) -> SqliteWatch {
        SqliteWatch {
            conn,
            data_version: None,
            last_checkpoint: Instant::now(),
        }
    }

    /// TRUNCATE resets the log to zero bytes once every reader is on the newest snapshot. A
    /// reader holding an old one (an open shell transaction) makes it give up, not wait: the
    /// watch connection's busy timeout is short, and the next round tries again.
    fn checkpoint(&mut self) {
        self.last_checkpoint = Instant::now();
        if let Err(e) = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        {
            log::debug!("checkpoint skipped: {e}");
        }
    }
}

impl Watch for SqliteWatch {
    fn changed(&mut self, wait: Duration) -> Result<bool, StoreError> {
        // SQLite tells no one: sleep, then look.
        std::thread::sleep(wait);
        if self.last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
            self.checkpoint();
        }
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

    fn counts(&mut self) -> Result<Vec<(State, i64)>, StoreError> {
        self.conn
            .prepare_cached("SELECT state, COUNT(*) FROM jobs GROUP BY state")
            .and_then(|mut stmt| {
                stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<Vec<_>, _>>()
            })
            .ctx("counting jobs")
    }

    fn queued_and_running(&mut self) -> Result<(i64, i64), StoreError> {
        self.conn
            .prepare_cached(
                "SELECT (SELECT COUNT(*) FROM jobs INDEXED BY jobs_due WHERE state = 'queued'),
                        (SELECT COUNT(*) FROM jobs INDEXED BY jobs_lease WHERE state = 'running')",
            )
            .and_then(|mut stmt| stmt.query_row([], |r| Ok((r.get(0)?, r.get(1)?))))
            .ctx("counting unfinished jobs")
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
