-- 0005: job ids are never reused.
--
-- With `INTEGER PRIMARY KEY` alone, SQLite gives a new row the highest id in the table plus one:
-- once the newest jobs are pruned, their ids are handed out again, and whatever outside the
-- database kept an id (a web app, a log line, a ticket) then names another image.
-- AUTOINCREMENT records the highest id ever used in `sqlite_sequence` and never goes below it.
-- Ids freed before this migration ran cannot be known: the sequence starts from the highest id
-- left in the table.
--
-- SQLite cannot add AUTOINCREMENT to an existing table, so `jobs` is rebuilt as its
-- documentation describes: a new table with the same columns in the same order (0001's, then
-- 0002's cancel_requested and 0004's validation columns), the rows copied, the old table dropped,
-- the new one renamed, then the indexes and the view that reads it made again exactly as
-- 0001-0004 made them. jobd applies migrations with foreign keys off, as the rebuild requires:
-- with them on, dropping the old table would delete every attempt row through ON DELETE
-- CASCADE. (The sqlite3 shell has them off unless told otherwise.)

DROP VIEW jobs_view;

CREATE TABLE jobs_new (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    url           TEXT,
    state         TEXT    NOT NULL DEFAULT 'queued'
                  CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    priority      INTEGER NOT NULL DEFAULT 0,
    attempts      INTEGER NOT NULL DEFAULT 0,
    max_attempts  INTEGER,
    run_at        INTEGER NOT NULL
                  DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)),
    created_at    INTEGER NOT NULL
                  DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)),
    started_at    INTEGER,
    finished_at   INTEGER,
    http_status   INTEGER,
    declared_mime TEXT,
    mime          TEXT,
    bytes         INTEGER,
    sha256        TEXT,
    blob_path     TEXT,
    width         INTEGER,
    height        INTEGER,
    error         TEXT,
    worker        TEXT,
    attempt_id    INTEGER,
    lease_until   INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    validation    TEXT,
    validation_note TEXT
);

INSERT INTO jobs_new (
    id, url, state, priority, attempts, max_attempts, run_at, created_at, started_at,
    finished_at, http_status, declared_mime, mime, bytes, sha256, blob_path, width, height, error,
    worker, attempt_id, lease_until, cancel_requested, validation, validation_note)
SELECT
    id, url, state, priority, attempts, max_attempts, run_at, created_at, started_at,
    finished_at, http_status, declared_mime, mime, bytes, sha256, blob_path, width, height, error,
    worker, attempt_id, lease_until, cancel_requested, validation, validation_note
FROM jobs;

DROP TABLE jobs;
ALTER TABLE jobs_new RENAME TO jobs;

-- As 0001 made them.
CREATE INDEX jobs_claim ON jobs (priority DESC, run_at, id) WHERE state = 'queued';
CREATE INDEX jobs_due ON jobs (run_at) WHERE state = 'queued';
CREATE INDEX jobs_lease ON jobs (lease_until) WHERE state = 'running';
CREATE INDEX jobs_state ON jobs (state);
-- As 0002 made it.
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE state IN ('done', 'failed', 'cancelled');
-- As 0003 made it.
CREATE INDEX jobs_sha256 ON jobs (sha256) WHERE sha256 IS NOT NULL;

-- As 0004 made it.
CREATE VIEW jobs_view AS
SELECT id,
       state,
       url,
       priority,
       attempts,
       strftime('%Y-%m-%d %H:%M:%f', created_at / 1000.0, 'unixepoch') AS created,
       strftime('%Y-%m-%d %H:%M:%f', run_at / 1000.0, 'unixepoch') AS run_after,
       strftime('%Y-%m-%d %H:%M:%f', started_at / 1000.0, 'unixepoch') AS started,
       strftime('%Y-%m-%d %H:%M:%f', finished_at / 1000.0, 'unixepoch') AS finished,
       CASE WHEN finished_at >= started_at
            THEN printf('%.3f s', (finished_at - started_at) / 1000.0) END AS duration,
       http_status,
       mime,
       bytes,
       width,
       height,
       sha256,
       blob_path,
       error,
       validation,
       validation_note
FROM jobs;
