-- 0006: politeness shared through the database (PostgreSQL); see ../0006_hosts.sql.
--
-- `jobs.host` is the same expression as SQLite's (strpos for instr; `COLLATE "C"` so that
-- lower() changes only ASCII letters, as SQLite's does). STORED, as PostgreSQL has no virtual
-- generated columns: adding it rewrites the table once.

ALTER TABLE jobs ADD COLUMN host TEXT GENERATED ALWAYS AS (
    CASE WHEN strpos(url, '://') > 0 THEN NULLIF(lower((substr(substr(replace(replace(substr(url, strpos(url, '://') + 3), '?', '/'), '#', '/') || '/', 1, strpos(replace(replace(substr(url, strpos(url, '://') + 3), '?', '/'), '#', '/') || '/', '/') - 1), strpos(substr(replace(replace(substr(url, strpos(url, '://') + 3), '?', '/'), '#', '/') || '/', 1, strpos(replace(replace(substr(url, strpos(url, '://') + 3), '?', '/'), '#', '/') || '/', '/') - 1), '@') + 1)) COLLATE "C"), '') END
) STORED;

-- The claim counts a host's running jobs (its room under its limit).
CREATE INDEX jobs_running_host ON jobs (host) WHERE state = 'running';
-- A host's queued jobs and when its first is due: the watcher's next due time while some host
-- is paused (one probe per host), and `jobctl hosts`. SQLite has no twin (see ../0006_hosts.sql):
-- there it would cost an import several times over; here, where COPY runs on two connections,
-- it costs an import about a third more.
CREATE INDEX jobs_queued_host ON jobs (host, run_at) WHERE state = 'queued';

-- What the daemons on this queue have learnt about each host; see ../0006_hosts.sql. Times are
-- the database's clock (jobd_now_ms()), as run_at and leases are.
CREATE TABLE hosts (
    host              TEXT PRIMARY KEY,
    max_in_flight     BIGINT,
    paused_until      BIGINT NOT NULL DEFAULT 0,
    strikes           BIGINT NOT NULL DEFAULT 0,
    updated_at        BIGINT,
    slow_downs        BIGINT NOT NULL DEFAULT 0,  -- 429/503 answers seen
    last_slow_down_at BIGINT
);
