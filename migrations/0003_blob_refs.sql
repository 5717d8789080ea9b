-- 0003: finding the jobs that refer to a blob.
--
-- `jobctl prune --blobs` deletes a blob file only when no job row names its sha256 any more; this
-- partial index answers that per blob without a scan. Only rows with a stored image have a
-- sha256, so queued jobs (and a bulk import of them) never touch it. `jobctl stats` also walks it
-- to count distinct blobs and the bytes they hold.

CREATE INDEX jobs_sha256 ON jobs (sha256) WHERE sha256 IS NOT NULL;
