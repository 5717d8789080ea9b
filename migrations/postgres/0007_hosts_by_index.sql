-- 0007: nothing to do on PostgreSQL; see ../0007_hosts_by_index.sql. There, `jobs.host` becomes
-- a plain column because SQLite evaluates a VIRTUAL column's expression for every index entry;
-- here it is STORED, computed once as a row goes in, and jobs_queued_host already exists.
SELECT 1;
