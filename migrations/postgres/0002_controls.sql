-- 0002: operators' controls (PostgreSQL); see ../0002_controls.sql.
--
-- `settings` holds switches that every daemon on the queue obeys, e.g. ('paused', '1') from
-- `jobctl pause`. `cancel_requested` marks a running job that `jobctl cancel` asked to stop: it
-- ends its current attempt and is not tried again.

CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Resuming wakes every daemon at once.
CREATE TRIGGER settings_changed AFTER INSERT OR UPDATE OR DELETE ON settings
    FOR EACH STATEMENT EXECUTE FUNCTION jobd_notify();

ALTER TABLE jobs ADD COLUMN cancel_requested BOOLEAN NOT NULL DEFAULT false;

-- Finished jobs by age, for `jobctl prune`, retention and recent-throughput figures.
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE state IN ('done', 'failed', 'cancelled');
-- Attempts by end time, for `jobctl stats` over the last minutes.
CREATE INDEX attempts_finished ON attempts (finished_at);
