-- 0006: politeness shared through the database (issue 14).
--
-- `jobs.host` is a job's politeness key: the URL's authority (host, and port if any), lowercased,
-- without userinfo. It is the text after the first `://` up to the first `/`, `?` or `#`,
-- with everything up to and including the first `@` in it removed; NULL when the url has no
-- `://` (or the authority is empty, as in file:///x). The database computes it, so every way in
-- (an INSERT at the shell, jobctl, an import) gets it without writing it: VIRTUAL, it takes no
-- space in the row (SQLite still evaluates it as each row goes in, a cost every import pays). Only
-- built-in deterministic functions that SQLite 3.40 has (Debian 12's shell); the PostgreSQL
-- twin is the same expression.
--   https://User:pw@Img.Example.org:8443/a.png?x  ->  img.example.org:8443
--   http://127.0.0.1:45000/x.png                  ->  127.0.0.1:45000
-- The views are left as they were: `SELECT host, COUNT(*) FROM jobs GROUP BY host` reads it.

ALTER TABLE jobs ADD COLUMN host TEXT GENERATED ALWAYS AS (
    CASE WHEN instr(url, '://') > 0 THEN NULLIF(lower(substr(substr(replace(replace(substr(url, instr(url, '://') + 3), '?', '/'), '#', '/') || '/', 1, instr(replace(replace(substr(url, instr(url, '://') + 3), '?', '/'), '#', '/') || '/', '/') - 1), instr(substr(replace(replace(substr(url, instr(url, '://') + 3), '?', '/'), '#', '/') || '/', 1, instr(replace(replace(substr(url, instr(url, '://') + 3), '?', '/'), '#', '/') || '/', '/') - 1), '@') + 1)), '') END
) VIRTUAL;

-- The claim passes over the jobs of blocked hosts. With the host in its index it does so without
-- reading their rows (and computing their hosts again): a paused host's jobs first in line cost
-- a claim a third as much. An import's rows come in claim order, so they append to it.
DROP INDEX jobs_claim;
CREATE INDEX jobs_claim ON jobs (priority DESC, run_at, id, host) WHERE state = 'queued';

-- The claim counts a host's running jobs (its room under its limit). Only running rows enter it,
-- so an import pays nothing for it.
CREATE INDEX jobs_running_host ON jobs (host) WHERE state = 'running';
-- No index of queued jobs by host, unlike PostgreSQL's jobs_queued_host: an import's rows come
-- in host after host, so every transaction of it would rewrite most of such an index's pages
-- (measured when this was written: a million URLs took more than twice as long as with the
-- column alone). The watcher looks at the first queued jobs in jobs_due instead, the claim at
-- a window of jobs_claim, and `jobctl hosts` counts the queued jobs by reading them.

-- What the daemons on this queue have learnt about each host, so that all of them obey it:
-- the fleet's current limit of requests in flight (NULL: each daemon's `max_per_host`), a pause
-- (Unix ms; 0 or past: none) with its strikes (pauses in a row), and counts for `jobctl hosts`.
-- A daemon writes a row when a 429/503 narrows or pauses a host, and when successes widen it
-- again. Claims skip the jobs of a host that is paused or at its limit.
CREATE TABLE hosts (
    host              TEXT PRIMARY KEY,
    max_in_flight     INTEGER,
    paused_until      INTEGER NOT NULL DEFAULT 0,
    strikes           INTEGER NOT NULL DEFAULT 0,
    updated_at        INTEGER,
    slow_downs        INTEGER NOT NULL DEFAULT 0,  -- 429/503 answers seen
    last_slow_down_at INTEGER
);
