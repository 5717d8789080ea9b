-- 0001: the job queue and its attempt history.
--
-- People read and write these tables with the sqlite3 shell, so names are an interface.
-- `INSERT INTO jobs(url) VALUES ('https://...')` alone makes a runnable job: every other column has
-- a default. Defaults use only functions that Debian 12's sqlite3 (3.40) has: the "now in
-- milliseconds" expression below is julianday() arithmetic, not unixepoch('subsec') (3.42+).
-- All times are INTEGER milliseconds since the Unix epoch, UTC.

CREATE TABLE jobs (
    id            INTEGER PRIMARY KEY,
    -- Any value is accepted here; the daemon judges it when it claims the row and fails bad ones
    -- with an error that names the problem.
    url           TEXT,
    state         TEXT    NOT NULL DEFAULT 'queued'
                  CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    priority      INTEGER NOT NULL DEFAULT 0,          -- higher runs first
    attempts      INTEGER NOT NULL DEFAULT 0,          -- tries that count towards max_attempts
    max_attempts  INTEGER,                             -- NULL: [retry] max_attempts from the config
    run_at        INTEGER NOT NULL                     -- not before this time
                  DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)),
    created_at    INTEGER NOT NULL
                  DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)),
    started_at    INTEGER,                             -- start of the latest attempt
    finished_at   INTEGER,                             -- end of the latest attempt
    http_status   INTEGER,
    declared_mime TEXT,                                -- Content-Type as the server sent it
    mime          TEXT,                                -- detected from the bytes
    bytes         INTEGER,
    sha256        TEXT,                                -- lowercase hex of the stored bytes
    blob_path     TEXT,                                -- relative to blob_dir
    width         INTEGER,
    height        INTEGER,
    error         TEXT,                                -- why the latest attempt failed
    -- The claim: who holds a running job, which attempt row is theirs, and until when.
    worker        TEXT,
    attempt_id    INTEGER,
    lease_until   INTEGER
);

-- The claim walks this index in claim order, so it stays cheap with a million queued rows.
CREATE INDEX jobs_claim ON jobs (priority DESC, run_at, id) WHERE state = 'queued';
-- When the next scheduled retry is due.
CREATE INDEX jobs_due ON jobs (run_at) WHERE state = 'queued';
-- Running jobs whose lease ran out.
CREATE INDEX jobs_lease ON jobs (lease_until) WHERE state = 'running';
-- Counts per state for jobctl stats and list.
CREATE INDEX jobs_state ON jobs (state);

CREATE TABLE attempts (
    id           INTEGER PRIMARY KEY,
    job_id       INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    attempt      INTEGER NOT NULL,                     -- 1-based, every try including interrupted ones
    worker       TEXT,
    started_at   INTEGER NOT NULL,
    finished_at  INTEGER,
    -- running, done, retry (transient failure, retried later), failed (no retry),
    -- interrupted (shutdown put the job back; does not count), lease_expired (its daemon died)
    outcome      TEXT    NOT NULL DEFAULT 'running',
    http_status  INTEGER,
    error        TEXT,
    bytes        INTEGER,
    ttfb_ms      INTEGER,                              -- request sent to response headers in
    download_ms  INTEGER,                              -- headers in to last body byte
    total_ms     INTEGER,                              -- claim to recorded outcome
    UNIQUE (job_id, attempt)
);

-- For people: readable times and durations.
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
       error
FROM jobs;

CREATE VIEW attempts_view AS
SELECT job_id,
       attempt,
       outcome,
       strftime('%Y-%m-%d %H:%M:%f', started_at / 1000.0, 'unixepoch') AS started,
       strftime('%Y-%m-%d %H:%M:%f', finished_at / 1000.0, 'unixepoch') AS finished,
       ttfb_ms || ' ms' AS ttfb,
       download_ms || ' ms' AS download,
       total_ms || ' ms' AS total,
       http_status,
       bytes,
       worker,
       error
FROM attempts;
