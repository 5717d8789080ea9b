-- 0003: finding the jobs that refer to a blob (PostgreSQL); see ../0003_blob_refs.sql.

CREATE INDEX jobs_sha256 ON jobs (sha256) WHERE sha256 IS NOT NULL;
