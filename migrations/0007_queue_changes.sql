-- 0007: a count of the jobs that go back into the queue (issue 14), so that a claim can trust
-- what an earlier one learnt about the head of the queue.
--
-- A claim that walks past a paused host's jobs at the head of the queue remembers how far it
-- walked: every due job before that point belonged to a blocked host. The next claim starts
-- there, while those hosts are still blocked and no job can have entered the queue before that
-- point. A job gets ahead of that point only when it is put back due now or earlier (a lease
-- that ran out, `jobctl retry`, an UPDATE by hand) or inserted with a priority or with a due
-- time in the past; each such change counts here, and a changed count sends the next claim back
-- to the head. A plain INSERT (priority 0, due now) and a claim count nothing, so an
-- import pays only the triggers' WHEN test.
--
-- A host index would let a claim skip a blocked host without this, but every import would pay
-- for it: its rows come host after host, and a million URLs over a thousand hosts took twice as
-- long with one (measured; see ARCHITECTURE.md).

CREATE TABLE queue_changes (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    changes INTEGER NOT NULL
);
INSERT INTO queue_changes (id, changes) VALUES (1, 0);

-- An INSERT is "due in the past" when its run_at is more than 100 ms before the statement's own
-- clock: a claim moves its point only over jobs due longer ago than that.
CREATE TRIGGER jobs_queued_ahead AFTER INSERT ON jobs
WHEN NEW.state = 'queued'
     AND (NEW.priority <> 0
          OR NEW.run_at < CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) - 100)
BEGIN
    UPDATE queue_changes SET changes = changes + 1 WHERE id = 1;
END;

-- A job put back to be tried later (a backoff, a pause's end) is due after now, and so after
-- any point a claim has learnt, which was due when it learnt it: it counts nothing. Neither does
-- one with another priority than the point's, which a claim walks anyway; but a trigger cannot
-- know the point, so any due job put back counts.
CREATE TRIGGER jobs_queued_again AFTER UPDATE OF state, priority, run_at ON jobs
WHEN NEW.state = 'queued'
     AND NEW.run_at <= CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
BEGIN
    UPDATE queue_changes SET changes = changes + 1 WHERE id = 1;
END;
