//! The PostgreSQL watcher: LISTENs for the notifications that the triggers of migrations 0001
//! and 0009 send when rows are inserted or queued again, on a connection of its own, and answers
//! the supervisor's cheap questions on it. What it hears also tells the claims when a job may
//! have been queued behind the point they start from (`queue::Ahead`).

use std::time::{Duration, Instant};

use postgres::Client;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::Type;

use super::{CHANNEL, PgStore};
use crate::job::{State, now_ms};
use crate::store::{Context, StoreError, Watch};

/// Without a notification, the watcher still reports a change this often, so that a change that
/// sent none (an UPDATE by hand of a column the trigger does not watch, a notification lost
/// with a connection) is picked up all the same.
const FALLBACK_POLL: Duration = Duration::from_secs(1);

/// How long until the earliest queued job is due, in ms by the database's clock, without an
/// index on run_at (one would cost every import and every claim an entry more): within each
/// priority, `jobs_claim` is in run_at order, so the first entry of a priority is its earliest.
/// The recursion hops from one priority to the next lower one, one index probe each (a skip
/// scan), for at most $1 priorities; the second column says how many it visited. The wait is
/// computed in NUMERIC and held within about a million years either way: run_at is anyone's to
/// set, and `i64::MIN - now` does not fit in a BIGINT. (GREATEST ignores a NULL, hence the CASE
/// for an empty queue.) The third column says whether some host is paused now, so that the usual
/// case, none, costs one round trip.
const NEXT_DUE: &str = "
    WITH RECURSIVE levels (priority, run_at, n) AS (
        (SELECT priority, run_at, 1::BIGINT FROM jobs WHERE state = 'queued'
         ORDER BY priority DESC, run_at, id LIMIT 1)
        UNION ALL
        SELECT next.priority, next.run_at, levels.n + 1
        FROM levels, LATERAL (
            SELECT priority, run_at FROM jobs
            WHERE state = 'queued' AND priority < levels.priority
            ORDER BY priority DESC, run_at, id LIMIT 1) next
        WHERE levels.n < $1
    )
    SELECT CASE WHEN MIN(run_at) IS NOT NULL
             THEN LEAST(GREATEST(MIN(run_at)::NUMERIC - jobd_now_ms(), -3e16), 3e16)::BIGINT END,
           MAX(n),
           EXISTS (SELECT 1 FROM hosts WHERE paused_until > jobd_now_ms())
    FROM levels";

/// Priorities [`NEXT_DUE`] visits before giving up on hopping. Queues with more distinct
/// priorities among their queued jobs than this are rare; they get [`NEXT_DUE_BY_SCAN`].
const MAX_PRIORITIES: i64 = 64;

/// The same answer by reading every queued job's index entry.
const NEXT_DUE_BY_SCAN: &str = "
    SELECT CASE WHEN MIN(run_at) IS NOT NULL
             THEN LEAST(GREATEST(MIN(run_at)::NUMERIC - jobd_now_ms(), -3e16), 3e16)::BIGINT END
    FROM jobs WHERE state = 'queued'";

/// [`NEXT_DUE`] while some host is paused: host by host, the first entry of each host's run in
/// `jobs_queued_host` (a skip scan: one probe per host with queued jobs, however many jobs each
/// has), where a paused host's counts from the end of its pause; and the jobs without a host.
/// Walking `jobs_claim` past a paused host's jobs instead would read every one of them that
/// comes before the first other job, at every call.
const NEXT_DUE_PAST_PAUSES: &str = "
    WITH RECURSIVE each (host) AS (
        SELECT (SELECT MIN(host) FROM jobs WHERE state = 'queued' AND host IS NOT NULL)
        UNION ALL
        SELECT (SELECT MIN(host) FROM jobs WHERE state = 'queued' AND host > each.host)
        FROM each WHERE each.host IS NOT NULL
    ), due AS (
        SELECT GREATEST((SELECT MIN(run_at) FROM jobs
                         WHERE state = 'queued' AND host = each.host),
                        COALESCE((SELECT paused_until FROM hosts h WHERE h.host = each.host), 0))
               AS at
        FROM each WHERE each.host IS NOT NULL
        UNION ALL
        SELECT MIN(run_at) FROM jobs WHERE state = 'queued' AND host IS NULL
    )
    SELECT CASE WHEN MIN(at) IS NOT NULL
             THEN LEAST(GREATEST(MIN(at)::NUMERIC - jobd_now_ms(), -3e16), 3e16)::BIGINT END
    FROM due";

pub(super) struct PgWatch {
    store: PgStore,
    /// None after the connection broke: the next call connects again.
    client: Option<Client>,
    last_change: Instant,
    /// [`FALLBACK_POLL`], but for tests that must tell a notification from a poll.
    fallback: Duration,
}

impl PgWatch {
    pub(super) fn new(store: PgStore) -> Result<PgWatch, StoreError> {
        PgWatch::with_fallback(store, FALLBACK_POLL)
    }

    fn with_fallback(store: PgStore, fallback: Duration) -> Result<PgWatch, StoreError> {
        let mut watch = PgWatch {
            store,
            client: None,
            last_change: Instant::now(),
            fallback,
        };
        watch.client()?;
        Ok(watch)
    }

    /// The listening connection, connected (again) if need be.
    fn client(&mut self) -> Result<&mut Client, StoreError> {
        if self.client.as_ref().is_some_and(Client::is_closed) {
            self.lost();
        }
        if self.client.is_none() {
            // Whatever is committed from now on is heard of; what came before, the claims find
            // by walking from the first due job.
            let mut client = self.store.connect()?;
            client
                .batch_execute(&format!("LISTEN {CHANNEL}"))
                .ctx("listening for new jobs")?;
            self.client = Some(client);
            self.store.ahead.listen();
        }
        Ok(self.client.as_mut().expect("connected above"))
    }

    /// Drops the listening connection: until the next one listens, notifications are lost.
    fn lost(&mut self) {
        if self.client.take().is_some() {
            self.store.ahead.deaf();
        }
    }

    /// Runs `ask` on the listening connection; a failure drops the connection, so that the next
    /// call starts afresh.
    fn ask<T>(
        &mut self,
        ask: impl FnOnce(&mut Client) -> Result<T, postgres::Error>,
        doing: &str,
    ) -> Result<T, StoreError> {
        let result = ask(self.client()?);
        if result.is_err() {
            self.lost();
        }
        result.ctx(doing)
    }
}

impl Drop for PgWatch {
    fn drop(&mut self) {
        self.lost();
    }
}

impl Watch for PgWatch {
    /// LISTEN: a commit that queues a job sends NOTIFY, and `changed` returns at once.
    fn wakes_on_change(&self) -> bool {
        true
    }

    fn changed(&mut self, wait: Duration) -> Result<bool, StoreError> {
        let reconnecting = self.client.as_ref().is_none_or(Client::is_closed);
        let ahead = self.store.ahead.clone();
        let listened = self.ask(
            |client| {
                // Blocks on the socket until the first notification or the end of `wait`. (Not
                // `iter()` for that: it never lets the client's runtime wait on the socket, so it
                // finds only what has been read already.) Then takes, without waiting, the rest
                // of what that read brought in. Not `timeout_iter(Duration::ZERO)`: the client's
                // timer counts whole milliseconds, and a wait of zero took up to one more,
                // a millisecond of every pickup. A notification left unread wakes the next
                // call at once: one look more, nothing lost.
                let mut notifications = client.notifications();
                let Some(first) = notifications.timeout_iter(wait).next()? else {
                    return Ok(false);
                };
                ahead.heard(first.payload().parse().ok());
                let mut rest = notifications.iter();
                while let Some(next) = rest.next()? {
                    ahead.heard(next.payload().parse().ok());
                }
                Ok(true)
            },
            "listening for new jobs",
        );
        let notified = match listened {
            Ok(notified) => notified,
            // The connection broke (the server restarted, or ended it): listen again at once.
            Err(e) if !reconnecting => {
                log::warn!("{e}; listening again");
                self.client()?;
                true
            }
            Err(e) => return Err(e),
        };
        // After a reconnection, whatever was sent meanwhile is lost: look.
        if notified || reconnecting || self.last_change.elapsed() >= self.fallback {
            self.last_change = Instant::now();
            return Ok(true);
        }
        Ok(false)
    }

    fn next_due(&mut self) -> Result<Option<i64>, StoreError> {
        // How long until the job is due by the database's clock, turned into this machine's.
        let wait: Option<i64> = self.ask(
            |client| {
                let row = client.query_typed_one(NEXT_DUE, &[(&MAX_PRIORITIES, Type::INT8)])?;
                if row.try_get::<_, bool>(2)? {
                    return client.query_typed_one(NEXT_DUE_PAST_PAUSES, &[])?.try_get(0);
                }
                let levels: Option<i64> = row.try_get(1)?;
                if levels.is_some_and(|n| n >= MAX_PRIORITIES) {
                    return client.query_typed_one(NEXT_DUE_BY_SCAN, &[])?.try_get(0);
                }
                row.try_get(0)
            },
            "looking for queued jobs",
        )?;
        Ok(wait.map(|ms| now_ms().saturating_add(ms)))
    }

    fn pending(&mut self) -> Result<bool, StoreError> {
        self.ask(
            |client| {
                client
                    .query_one(
                        "SELECT EXISTS (SELECT 1 FROM jobs WHERE state IN ('queued', 'running'))",
                        &[],
                    )?
                    .try_get(0)
            },
            "looking for unfinished jobs",
        )
    }

    fn counts(&mut self) -> Result<Vec<(State, i64)>, StoreError> {
        self.ask(
            |client| {
                client
                    .query("SELECT state, COUNT(*) FROM jobs GROUP BY state", &[])?
                    .iter()
                    .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                    .collect()
            },
            "counting jobs",
        )
    }

    fn queued_and_running(&mut self) -> Result<(i64, i64), StoreError> {
        // jobs_claim holds the queued rows, jobs_lease the running ones.
        self.ask(
            |client| {
                let row = client.query_one(
                    "SELECT (SELECT COUNT(*) FROM jobs WHERE state = 'queued'),
                            (SELECT COUNT(*) FROM jobs WHERE state = 'running')",
                    &[],
                )?;
                Ok((row.try_get(0)?, row.try_get(1)?))
            },
            "counting unfinished jobs",
        )
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::PgWatch;
    use crate::job::{Outcome, Report};
    use crate::store::postgres::PgStore;
    use crate::store::{ClaimOptions, Controls, Jobs, NewJob, Queue, Watch};
    use jobd_testkit::postgres;

    /// Waits for `changed` to report a change; the fallback poll is an hour away, so only a
    /// notification (or a reconnection) can make it true.
    fn notified(watch: &mut PgWatch, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !watch.changed(Duration::from_millis(10)).unwrap() {
            assert!(Instant::now() < deadline, "no notification for {what}");
        }
    }

    #[test]
    fn inserts_requeues_and_the_pause_switch_notify_and_a_lost_listener_reconnects() {
        let url = postgres::server().fresh_database();
        let store = PgStore::open(&url, 2).unwrap();
        let mut watch = PgWatch::with_fallback(store.clone(), Duration::from_secs(3600)).unwrap();
        assert!(
            !watch.changed(Duration::ZERO).unwrap(),
            "nothing happened yet"
        );
        let mut psql = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
        psql.batch_execute("INSERT INTO jobs (url) VALUES ('http://127.0.0.1/a.png')")
            .unwrap();
        notified(&mut watch, "an INSERT by hand");
        store.add(&[NewJob::new("http://127.0.0.1/b.png")]).unwrap();
        notified(&mut watch, "jobctl add");
        let claimed = store.claim("w", 2, ClaimOptions::lease(60_000)).unwrap();
        assert_eq!(claimed.len(), 2);
        assert!(
            !watch.changed(Duration::from_millis(50)).unwrap(),
            "a claim queues nothing"
        );
        store
            .record(&[(
                &claimed[0],
                &Report::new(Outcome::Interrupted { why: "test".into() }),
            )])
            .map(|applied| applied[0])
            .unwrap();
        notified(&mut watch, "a released job");
        store.set_paused(true).unwrap();
        notified(&mut watch, "pause");
        store.set_paused(false).unwrap();
        notified(&mut watch, "resume");
        // The listening connection dies (a database restart, a network cut): the watcher
        // connects again, and reports a change since it may have missed some.
        psql.batch_execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()",
        )
        .unwrap();
        notified(&mut watch, "a lost listener");
        psql.batch_execute("INSERT INTO jobs (url) VALUES ('http://127.0.0.1/c.png')")
            .unwrap();
        notified(&mut watch, "an INSERT after reconnecting");
    }
}

#[cfg(test)]
mod claims_from_a_point {
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use super::PgWatch;
    use crate::job::now_ms;
    use crate::store::postgres::PgStore;
    use crate::store::{ClaimOptions, HostChange, Jobs, NewJob, Queue, Watch};
    use jobd_testkit::postgres;

    fn changes(store: &PgStore) -> u64 {
        store.ahead.changes.load(Ordering::SeqCst)
    }

    /// Takes in every notification sent so far (and waits a little for those on the way).
    fn hear(watch: &mut PgWatch) {
        while watch.changed(Duration::from_millis(200)).unwrap() {}
    }

    /// The claim remembers where a paused host's jobs at the head of the queue end while a
    /// watcher listens, and the watcher sends it back to the head when a job is queued behind
    /// that point, not when one is queued ahead of it.
    #[test]
    fn a_claim_starts_past_a_paused_hosts_jobs_until_one_is_queued_behind_them() {
        let url = postgres::server().fresh_database();
        let store = PgStore::open(&url, 2).unwrap();
        let a_minute_ago = now_ms() - 60_000;
        let mut jobs: Vec<NewJob> = (0..50)
            .map(|i| NewJob {
                run_at: Some(a_minute_ago),
                ..NewJob::new(format!("http://slow.test/{i}"))
            })
            .collect();
        jobs.push(NewJob {
            run_at: Some(a_minute_ago),
            ..NewJob::new("http://fast.test/1")
        });
        store.add(&jobs).unwrap();
        let hour = now_ms() + 3_600_000;
        let pause = HostChange::Paused {
            until: hour,
            strikes: 1,
            max_in_flight: None,
        };
        store.record_host("slow.test", pause).unwrap();
        let claim = || store.claim("w", 4, ClaimOptions::lease(60_000)).unwrap();
        // No watcher: nothing is remembered.
        assert_eq!(claim().len(), 1);
        assert!(store.head.lock().unwrap().is_none());
        let mut watch = PgWatch::with_fallback(store.clone(), Duration::from_secs(3600)).unwrap();
        store.add(&[NewJob {
            run_at: Some(a_minute_ago),
            ..NewJob::new("http://fast.test/2")
        }])
        .unwrap();
        hear(&mut watch);
        assert_eq!(claim().len(), 1);
        let key = store.head.lock().unwrap().as_ref().map(|head| head.key);
        let mut psql = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
        let id: i64 = psql
            .query_one("SELECT id FROM jobs WHERE url = 'http://fast.test/2'", &[])
            .unwrap()
            .get(0);
        assert_eq!(key, Some((0, a_minute_ago, id)), "the point is the job claimed");
        // A job queued now is ahead of the point: the watcher lets the point stand. (Queued a
        // little after the claim, more than the error of this machine's estimate of the
        // database's clock on a busy machine.)
        std::thread::sleep(Duration::from_millis(50));
        let before = changes(&store);
        store.add(&[NewJob::new("http://fast.test/now")]).unwrap();
        hear(&mut watch);
        assert_eq!(changes(&store), before, "a job queued ahead of the point");
        assert_eq!(claim().len(), 1);
        // One due before the point is heard of, and the next claim walks from the head.
        store.add(&[NewJob {
            run_at: Some(a_minute_ago - 1),
            ..NewJob::new("http://fast.test/behind")
        }])
        .unwrap();
        hear(&mut watch);
        assert_ne!(changes(&store), before, "a job queued behind the point");
        assert_eq!(claim().len(), 1, "the job behind the point");
        // A job whose transaction commits long after its INSERT is due when the INSERT ran,
        // and a claim meanwhile may move its point past that: its commit sends claims back.
        let mut late = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
        let mut tx = late.transaction().unwrap();
        tx.batch_execute("INSERT INTO jobs (url) VALUES ('http://fast.test/late')")
            .unwrap();
        let inserted_at = now_ms();
        store
            .add(&[NewJob {
                run_at: Some(inserted_at + 1),
                ..NewJob::new("http://fast.test/after")
            }])
            .unwrap();
        hear(&mut watch);
        // Past the margin, the claim's point moves over the job due after the late one.
        std::thread::sleep(Duration::from_millis(1_250));
        assert_eq!(claim().len(), 1);
        let before = changes(&store);
        tx.commit().unwrap();
        hear(&mut watch);
        assert_ne!(changes(&store), before, "a late commit behind the point");
        let late_job = claim();
        assert_eq!(late_job.len(), 1, "the late job");
        assert!(matches!(&late_job[0].url, crate::job::RawUrl::Text(u) if u.ends_with("/late")));
        // Without a watcher, claims walk from the head again.
        drop(watch);
        assert!(claim().is_empty());
        assert!(store.head.lock().unwrap().is_none());
    }
}
