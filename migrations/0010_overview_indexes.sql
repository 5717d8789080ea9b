-- 0010: the dashboard's overview at a million jobs (issue 15): indexes that hold exactly what its
-- figures add up, so that reading them never visits the rows of every done job.
--
-- All three are partial: a row enters only when it is finished, so an import, an INSERT at the
-- shell and a claim (whose new attempt is 'running') pay only the test of the WHERE. Recording
-- a done job adds one entry to each, a failed one to jobs_finished_state.
--
-- Bytes downloaded by done jobs and the distinct blobs they hold (`jobctl stats`, the overview):
-- a walk of this index in sha256 order, one group per blob. jobs_sha256 (0003) finds the jobs
-- of a blob for `prune --blobs`, but has neither state nor bytes, so the figures read every
-- done row through it.
CREATE INDEX jobs_done ON jobs (sha256, bytes) WHERE state = 'done';
-- Done and failed jobs per minute over the last day (the overview's throughput) and over the
-- last minutes (`jobctl stats`): jobs_finished (0002) has the time but not the state, so
-- reading them through it visited every finished job's row.
-- Its condition says "finished" as two comparisons, which state's CHECK makes the same rows as
-- jobs_finished's IN list: every INSERT tests each partial index's condition, and the IN list
-- cost a million-row import 0.3 s of CPU where the comparisons cost none measurable (a queued
-- row fails the first).
CREATE INDEX jobs_finished_state ON jobs (finished_at, state)
    WHERE state <> 'queued' AND state <> 'running';
-- The time-to-first-byte and total-time percentiles of the done attempts of the last 15 minutes.
CREATE INDEX attempts_done ON attempts (finished_at, ttfb_ms, total_ms) WHERE outcome = 'done';
