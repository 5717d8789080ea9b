-- 0010: the dashboard's overview at a million jobs (PostgreSQL); see ../0010_overview_indexes.sql.
-- The same partial indexes; PostgreSQL reads them in index-only scans, which visit no row once
-- (auto)vacuum has marked its pages all-visible (a row on a page not yet marked is still read
-- from the table, so the figures stay exact, only slower, right after a large change).
CREATE INDEX jobs_done ON jobs (sha256, bytes) WHERE state = 'done';
-- jobs_finished_state keeps jobs_finished's IN list here: the planner matches it with the
-- queries' own, and a COPY's test of it costs nothing measurable.
CREATE INDEX jobs_finished_state ON jobs (finished_at, state)
    WHERE state IN ('done', 'failed', 'cancelled');
CREATE INDEX attempts_done ON attempts (finished_at, ttfb_ms, total_ms) WHERE outcome = 'done';
