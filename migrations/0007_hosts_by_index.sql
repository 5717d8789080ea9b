-- 0007: an index of queued jobs by host, which an import can afford (issue 14).
--
-- A claim that meets a blocked host's long queue (a paused host, or one at its limit) takes the
-- jobs of the other hosts from this index, one probe per host, instead of walking past every
-- blocked job; `jobctl hosts` counts each host's queued jobs from it.
--
-- What made such an index too dear in 0006 was not the index but the generated column: SQLite
-- evaluates a VIRTUAL column's expression each time it builds an index entry, about two
-- microseconds a row, so a second index doubled what an import paid for it. `host` becomes a
-- plain column instead, holding the same value. jobctl computes it for the rows it adds, as the
-- expression would; for every other way in (an INSERT at the shell, a script, a view's
-- trigger) a trigger computes it from the url, with the expression of 0006. A url changed by
-- hand gets its host again. A host written by hand with its row is taken as written.

DROP INDEX jobs_claim;
DROP INDEX jobs_running_host;
ALTER TABLE jobs DROP COLUMN host;
ALTER TABLE jobs ADD COLUMN host TEXT;

CREATE TRIGGER jobs_host_on_insert AFTER INSERT ON jobs
WHEN NEW.host IS NULL AND instr(NEW.url, '://') > 0
BEGIN
    UPDATE jobs SET host = (
        CASE WHEN instr(NEW.url, '://') > 0 THEN NULLIF(lower(substr(substr(replace(replace(substr(NEW.url, instr(NEW.url, '://') + 3), '?', '/'), '#', '/') || '/', 1, instr(replace(replace(substr(NEW.url, instr(NEW.url, '://') + 3), '?', '/'), '#', '/') || '/', '/') - 1), instr(substr(replace(replace(substr(NEW.url, instr(NEW.url, '://') + 3), '?', '/'), '#', '/') || '/', 1, instr(replace(replace(substr(NEW.url, instr(NEW.url, '://') + 3), '?', '/'), '#', '/') || '/', '/') - 1), '@') + 1)), '') END
    ) WHERE id = NEW.id;
END;

CREATE TRIGGER jobs_host_on_new_url AFTER UPDATE OF url ON jobs
BEGIN
    UPDATE jobs SET host = (
        CASE WHEN instr(NEW.url, '://') > 0 THEN NULLIF(lower(substr(substr(replace(replace(substr(NEW.url, instr(NEW.url, '://') + 3), '?', '/'), '#', '/') || '/', 1, instr(replace(replace(substr(NEW.url, instr(NEW.url, '://') + 3), '?', '/'), '#', '/') || '/', '/') - 1), instr(substr(replace(replace(substr(NEW.url, instr(NEW.url, '://') + 3), '?', '/'), '#', '/') || '/', 1, instr(replace(replace(substr(NEW.url, instr(NEW.url, '://') + 3), '?', '/'), '#', '/') || '/', '/') - 1), '@') + 1)), '') END
    ) WHERE id = NEW.id;
END;

UPDATE jobs SET host = (
    CASE WHEN instr(url, '://') > 0 THEN NULLIF(lower(substr(substr(replace(replace(substr(url, instr(url, '://') + 3), '?', '/'), '#', '/') || '/', 1, instr(replace(replace(substr(url, instr(url, '://') + 3), '?', '/'), '#', '/') || '/', '/') - 1), instr(substr(replace(replace(substr(url, instr(url, '://') + 3), '?', '/'), '#', '/') || '/', 1, instr(replace(replace(substr(url, instr(url, '://') + 3), '?', '/'), '#', '/') || '/', '/') - 1), '@') + 1)), '') END
) WHERE instr(url, '://') > 0;

CREATE INDEX jobs_claim ON jobs (priority DESC, run_at, id, host) WHERE state = 'queued';
CREATE INDEX jobs_running_host ON jobs (host) WHERE state = 'running';
CREATE INDEX jobs_queued_host ON jobs (host, priority DESC, run_at, id) WHERE state = 'queued';
