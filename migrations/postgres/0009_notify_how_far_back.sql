-- 0009: a notification says how far back in the queue its change reaches (issue 14).
--
-- A claim remembers where the jobs of paused hosts at the head of the queue end, and starts
-- there next time (store/postgres/queue.rs). Only a job queued behind that point can be missed,
-- and every way a job gets queued notifies: so each notification now carries a due time (run_at,
-- the database's clock) no later than that of any job it is about, and the daemons' watchers
-- send their claims back to the head of the queue when it is behind a point. A notification
-- arrives after its commit, which is what makes this safe under MVCC: a claim whose snapshot
-- missed the job hears of it afterwards.
--
-- An INSERT statement sends its transaction's start less a second: a defaulted run_at is later,
-- and so is that of `jobctl import`, which reads the clock for a chunk just before a writer
-- takes it. A row due earlier than that sends its own run_at. (Not a transition table of the
-- statement's rows, nor a call for each row: either made an import twice as slow.) A job queued
-- again, or given another due time or priority, sends its run_at.
CREATE FUNCTION jobd_notify_inserted() RETURNS TRIGGER
    LANGUAGE plpgsql
    AS $$ BEGIN
        PERFORM pg_notify('jobd',
            ((extract(epoch FROM transaction_timestamp()) * 1000)::BIGINT - 1000)::text);
        RETURN NULL;
    END $$;

CREATE FUNCTION jobd_notify_queued() RETURNS TRIGGER
    LANGUAGE plpgsql
    AS $$ BEGIN PERFORM pg_notify('jobd', NEW.run_at::text); RETURN NULL; END $$;

DROP TRIGGER jobs_inserted ON jobs;
CREATE TRIGGER jobs_inserted AFTER INSERT ON jobs
    FOR EACH STATEMENT EXECUTE FUNCTION jobd_notify_inserted();
CREATE TRIGGER jobs_inserted_early AFTER INSERT ON jobs
    FOR EACH ROW
    WHEN (NEW.run_at < (extract(epoch FROM transaction_timestamp()) * 1000)::BIGINT - 1000)
    EXECUTE FUNCTION jobd_notify_queued();

DROP TRIGGER jobs_requeued ON jobs;
CREATE TRIGGER jobs_requeued AFTER UPDATE OF state, run_at, priority ON jobs
    FOR EACH ROW WHEN (NEW.state = 'queued') EXECUTE FUNCTION jobd_notify_queued();
