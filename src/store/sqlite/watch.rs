//! The SQLite watcher: sees other processes' commits through `PRAGMA data_version`, and answers
//! the supervisor's cheap questions on a connection of its own.

use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension};

use crate::job::{State, now_ms};
use crate::store::{Context, StoreError, Watch};

/// The first index entry of `jobs_due` answers this, however many jobs are queued.
pub(super) const NEXT_DUE: &str =
    "SELECT MIN(run_at) FROM jobs INDEXED BY jobs_due WHERE state = 'queued'";

/// The earliest end of a pause after ?1, if some host is paused.
const FIRST_PAUSE_END: &str = "SELECT MIN(paused_until) FROM hosts WHERE paused_until > ?1";

/// How many queued jobs [`NEXT_DUE_PAST_PAUSES`] looks at, at most.
const LOOK: i64 = 1_000;

/// While some host is paused (at ?1): the first ?2 queued jobs in run_at order, from `jobs_due`,
/// as (the earliest run_at of a job whose host is not paused, the last run_at looked at, how
/// many were looked at). Bounded: a paused host may have a million jobs due, and this runs
/// whenever the database changes. (An index of queued jobs by host would answer exactly, one
/// probe per host, but costs every import far too much; see migration 0006.)
pub(super) const NEXT_DUE_PAST_PAUSES: &str = "
    SELECT MIN(CASE WHEN NOT paused THEN run_at END), MAX(run_at), COUNT(*) FROM (
        SELECT run_at, EXISTS (SELECT 1 FROM hosts h
                               WHERE h.host = j.host AND h.paused_until > ?1) AS paused
        FROM jobs AS j INDEXED BY jobs_due WHERE state = 'queued'
        ORDER BY run_at LIMIT ?2)";

/// Sees commits by other connections through `PRAGMA data_version`, which costs next to nothing.
/// (An update hook would see only this connection's own writes, not the sqlite3 shell's.)
///
/// It also keeps the write-ahead log bounded: SQLite's automatic checkpoints never shrink the
/// file, so every [`CHECKPOINT_EVERY`] the watcher checkpoints and truncates it.
pub(super) struct SqliteWatch {
    conn: Connection,
    /// Wake-ups from the database's files (Linux); without them, the watcher polls.
    #[cfg(target_os = "linux")]
    files: Option<super::inotify::FileChanges>,
    /// When `changed` last returned.
    last_look: Instant,
    data_version: Option<i64>,
    last_checkpoint: Instant,
    /// The first pause's end, when the last next due time was "now" on a guess.
    ask_again_at: Option<i64>,
    /// The files changed but `data_version` has not moved yet, so a commit may be on its way:
    /// look again after this long, twice as long each time (see [`SETTLE_MAX`]).
    settle: Option<Duration>,
}

/// How often the write-ahead log is checkpointed and truncated.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(10);

impl SqliteWatch {
    pub(super) fn new(conn: Connection, path: &std::path::Path) -> SqliteWatch {
        #[cfg(target_os = "linux")]
        let files = super::inotify::FileChanges::watch(path)
            .inspect_err(|e| {
                log::warn!(
                    "cannot watch {} for changes ({e}); polling it instead",
                    path.display()
                );
            })
            .ok();
        #[cfg(not(target_os = "linux"))]
        let _ = path;
        SqliteWatch {
            conn,
            #[cfg(target_os = "linux")]
            files,
            last_look: Instant::now(),
            data_version: None,
            last_checkpoint: Instant::now(),
            ask_again_at: None,
            settle: None,
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

/// The next due time while some host is paused until `pause_end` at the earliest, from what
/// [`NEXT_DUE_PAST_PAUSES`] found: the first job of a host that is not paused, or the first end
/// of a pause, whichever is earlier. When every job looked at belongs to a paused host and there
/// are more, the first job past them is due no earlier than the last one looked at: that time
/// if it is still to come. If it has come, a job of a host that is not paused may be due now
/// behind them, so the answer is now: the workers are woken once, and the claim (which looks
/// further) decides. An answer that comes too early costs one empty claim; one that comes too
/// late would leave a due job waiting for the pause's end.
fn past_pauses(
    now: i64,
    pause_end: i64,
    unpaused: Option<i64>,
    last: Option<i64>,
    looked: i64,
) -> Option<i64> {
    if looked == 0 {
        return None;
    }
    match unpaused {
        Some(due) => Some(due.min(pause_end)),
        None if looked < LOOK => Some(pause_end),
        None => Some(last.filter(|&t| t > now).map_or(now, |t| t.min(pause_end))),
    }
}

/// The least time between two looks at the database, when its files keep changing.
const LOOK_GAP: Duration = Duration::from_millis(2);

/// After the files changed without `data_version` moving, the watcher looks again [`LOOK_GAP`]
/// later, then after twice as long each time, up to this gap. A commit writes the log first and
/// makes itself visible only after that (in shared memory, which no file event reports), with an
/// fsync between the two when the writer's `synchronous` is FULL, the default of a program that
/// sets nothing (Python's sqlite3 module). A look at the first write sees nothing yet, and no
/// further event comes: without these looks such a row waited for the supervisor's next look of
/// its own, up to 250 ms. Doubling finds a commit that an fsync delays by a few milliseconds or
/// by a hundred (a busy disk) with a few looks, and the watcher's own checkpoint, which changes
/// the files and no `data_version`, costs about eight looks.
const SETTLE_MAX: Duration = Duration::from_millis(256);

impl SqliteWatch {
    /// Waits up to `wait` for the database's files to change (Linux), or sleeps that long: SQLite
    /// tells no one of a commit, but the kernel sees its writes. True if the files changed.
    fn wait_for_files(&mut self, wait: Duration) -> bool {
        #[cfg(target_os = "linux")]
        if let Some(files) = &self.files {
            match files.wait(wait) {
                Ok(seen) => return seen,
                Err(e) => {
                    log::warn!("cannot watch the database for changes ({e}); polling it instead");
                    self.files = None;
                }
            }
        }
        std::thread::sleep(wait);
        false
    }
}

impl Watch for SqliteWatch {
    fn changed(&mut self, wait: Duration) -> Result<bool, StoreError> {
        // Under a storm of writes (an import), looks come no closer together than this.
        let gap = self.last_look.elapsed();
        if gap < LOOK_GAP {
            std::thread::sleep(LOOK_GAP - gap);
        }
        let wait = self.settle.map_or(wait, |gap| gap.min(wait));
        let files_changed = self.wait_for_files(wait.saturating_sub(LOOK_GAP));
        self.last_look = Instant::now();
        if self.last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
            self.checkpoint();
        }
        // Cached: this runs every poll tick, and preparing it would cost more than running it.
        let version: i64 = self
            .conn
            .prepare_cached("PRAGMA data_version")
            .and_then(|mut stmt| stmt.query_row([], |r| r.get(0)))
            .ctx("watching the database")?;
        let changed = self.data_version.replace(version) != Some(version);
        self.settle = if changed {
            None
        } else if files_changed {
            Some(LOOK_GAP)
        } else {
            self.settle.map(|gap| gap * 2).filter(|&gap| gap <= SETTLE_MAX)
        };
        Ok(changed)
    }

    fn next_due(&mut self) -> Result<Option<i64>, StoreError> {
        self.ask_again_at = None;
        let now = now_ms();
        let pause_end: Option<i64> = self
            .conn
            .prepare_cached(FIRST_PAUSE_END)
            .and_then(|mut stmt| stmt.query_row([now], |r| r.get(0)))
            .ctx("looking for paused hosts")?;
        let Some(pause_end) = pause_end else {
            return self
                .conn
                .prepare_cached(NEXT_DUE)
                .and_then(|mut stmt| stmt.query_row([], |r| r.get(0)).optional())
                .map(Option::flatten)
                .ctx("looking for queued jobs");
        };
        let (unpaused, last, looked): (Option<i64>, Option<i64>, i64) = self
            .conn
            .prepare_cached(NEXT_DUE_PAST_PAUSES)
            .and_then(|mut stmt| {
                stmt.query_row([now, LOOK], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            })
            .ctx("looking for queued jobs")?;
        let due = past_pauses(now, pause_end, unpaused, last, looked);
        self.ask_again_at = (due == Some(now)).then_some(pause_end);
        Ok(due)
    }

    fn ask_again_at(&self) -> Option<i64> {
        self.ask_again_at
    }

    fn wakes_on_change(&self) -> bool {
        #[cfg(target_os = "linux")]
        return self.files.is_some();
        #[cfg(not(target_os = "linux"))]
        false
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

#[cfg(test)]
mod tests {
    use super::{LOOK, past_pauses};
    #[cfg(target_os = "linux")]
    use super::{SETTLE_MAX, SqliteWatch};
    #[cfg(target_os = "linux")]
    use crate::store::Watch;
    #[cfg(target_os = "linux")]
    use std::time::{Duration, Instant};

    /// A client whose commit waits for an fsync (`synchronous = FULL`, Python's sqlite3 module)
    /// writes the log, then makes the commit visible, with no further file event. The watcher
    /// woke at the write, found `data_version` unmoved, and the row waited for the supervisor's
    /// own look, 250 ms later. Now a change of the files without a commit brings looks soon after,
    /// fewer and fewer, without any further event.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_log_write_not_yet_committed_is_looked_at_again_within_milliseconds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.db");
        let writer = rusqlite::Connection::open(&path).unwrap();
        writer
            .query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
            .unwrap();
        writer.execute_batch("CREATE TABLE t (x)").unwrap();
        let mut watch = SqliteWatch::new(rusqlite::Connection::open(&path).unwrap(), &path);
        assert!(watch.changed(Duration::ZERO).unwrap(), "the first look");
        assert!(!watch.changed(Duration::from_millis(20)).unwrap(), "quiet");

        // Opened for writing and closed: an event on the log, and no commit.
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("q.db-wal"))
            .unwrap();
        assert!(!watch.changed(Duration::from_secs(10)).unwrap(), "no commit yet");
        let start = Instant::now();
        assert!(!watch.changed(Duration::from_secs(10)).unwrap());
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "looked again after {:?}, not soon",
            start.elapsed()
        );
        // The gaps double up to SETTLE_MAX; then the supervisor's wait is the watcher's again.
        let mut looks = 0;
        let start = Instant::now();
        while start.elapsed() < SETTLE_MAX * 4 {
            watch.changed(SETTLE_MAX * 8).unwrap();
            looks += 1;
        }
        assert!(looks <= 10, "{looks} looks: the gaps do not grow");

        // A commit is seen at once, however long the wait.
        writer.execute("INSERT INTO t VALUES (1)", []).unwrap();
        let start = Instant::now();
        assert!(watch.changed(Duration::from_secs(10)).unwrap());
        assert!(start.elapsed() < Duration::from_secs(5), "woke at the commit");
    }

    #[test]
    fn past_pauses_answers_the_first_unpaused_job_or_a_pauses_end_and_never_too_late() {
        let (now, end) = (1_000, 5_000);
        assert_eq!(past_pauses(now, end, None, None, 0), None, "nothing queued");
        assert_eq!(past_pauses(now, end, Some(2_000), Some(900), 3), Some(2_000));
        assert_eq!(past_pauses(now, end, Some(9_000), Some(9_000), 3), Some(end));
        assert_eq!(past_pauses(now, end, None, Some(900), 3), Some(end), "all paused");
        // More paused jobs than it looks at: the next is due no earlier than the last seen, and
        // may be due now if that one is.
        assert_eq!(past_pauses(now, end, None, Some(3_000), LOOK), Some(3_000));
        assert_eq!(past_pauses(now, end, None, Some(900), LOOK), Some(now));
    }
}
