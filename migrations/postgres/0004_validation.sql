-- 0004: how far each stored image was proved (PostgreSQL); see ../0004_validation.sql.

ALTER TABLE jobs ADD COLUMN validation TEXT;
ALTER TABLE jobs ADD COLUMN validation_note TEXT;

-- New columns go at the end of the view, so CREATE OR REPLACE keeps every grant and dependant.
CREATE OR REPLACE VIEW jobs_view AS
SELECT id,
       state,
       url,
       priority,
       attempts,
       to_timestamp(created_at / 1000.0) AS created,
       to_timestamp(run_at / 1000.0) AS run_after,
       to_timestamp(started_at / 1000.0) AS started,
       to_timestamp(finished_at / 1000.0) AS finished,
       CASE WHEN finished_at >= started_at
            THEN to_char((finished_at - started_at) / 1000.0, 'FM999999990.000') || ' s' END
           AS duration,
       http_status,
       mime,
       bytes,
       width,
       height,
       sha256,
       blob_path,
       error,
       validation,
       validation_note
FROM jobs;
