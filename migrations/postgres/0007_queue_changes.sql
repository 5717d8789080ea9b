-- 0007: nothing to do on PostgreSQL; see ../0007_queue_changes.sql. Its claim locks nothing it
-- passes over, and `jobs_queued_host` already lets the watcher skip a paused host's jobs.
SELECT 1;
