-- 0004: how far each stored image was proved.
--
-- `validation` is 'structure' (the streaming validator walked the whole container: every chunk,
-- marker, block or box to its end, every frame within the limits) or 'decode' (every pixel was
-- also decoded). `validation_note` says why a job asked to decode was stored at 'structure'
-- instead: no memory-safe decoder for its format, or a variant the decoder does not support.
-- Rows stored before this migration have neither: they were only sniffed.

ALTER TABLE jobs ADD COLUMN validation TEXT;
ALTER TABLE jobs ADD COLUMN validation_note TEXT;

DROP VIEW jobs_view;
CREATE VIEW jobs_view AS
SELECT id,
       state,
       url,
       priority,
       attempts,
       strftime('%Y-%m-%d %H:%M:%f', created_at / 1000.0, 'unixepoch') AS created,
       strftime('%Y-%m-%d %H:%M:%f', run_at / 1000.0, 'unixepoch') AS run_after,
       strftime('%Y-%m-%d %H:%M:%f', started_at / 1000.0, 'unixepoch') AS started,
       strftime('%Y-%m-%d %H:%M:%f', finished_at / 1000.0, 'unixepoch') AS finished,
       CASE WHEN finished_at >= started_at
            THEN printf('%.3f s', (finished_at - started_at) / 1000.0) END AS duration,
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
