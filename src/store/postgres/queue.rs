//! The queue operations on PostgreSQL: each one statement (or a few in one transaction), so that
//! a daemon far from its database pays one round trip per claim and one per group of results.
//! The frequent ones go with their parameter types (`query_typed`): a plain `query` prepares,
//! runs and closes an unnamed statement, three round trips where one does.

use std::collections::HashSet;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use postgres::Row;
use postgres::types::{ToSql, Type};

use super::PgStore;
use super::watch::PgWatch;
use crate::job::{
    self, Applied, Claimed, LEASE_EXPIRED, RawUrl, Recorded, Report, Settlement, State, now_ms,
};
use crate::lock;
use crate::store::{
    ClaimOptions, Context, FleetState, HostChange, Queue, StoreError, Watch, count_from_db,
};

/// What every part of a claim's walk asks of a job: due, the queue not paused, and its host not
/// blocked ($5: the paused hosts and those this daemon leaves to others). A blocked host's jobs
/// are passed over and left as they are. How many requests go to a host at once is each
/// daemon's to hold, within its part of the host's limit (`hosts.rs`).
macro_rules! free {
    () => {
        "state = 'queued' AND run_at <= jobd_now_ms()
          AND NOT EXISTS (SELECT 1 FROM settings WHERE name = 'paused' AND value = '1')
          AND (host IS NULL OR host <> ALL($5))"
    };
}

/// A claim around its `picked` ids: starts an attempt for each and marks them running. $1
/// limit, $2 worker, $3 lease (ms), $4 the daemon's clock for started_at (display only: run_at
/// and the lease use the database's). Returns the jobs in claim order, with their order keys.
macro_rules! claim {
    ($picked:expr) => {
        concat!(
            "WITH ",
            $picked,
            ", started AS (
        INSERT INTO attempts (job_id, attempt, worker, started_at)
        SELECT p.id,
               COALESCE((SELECT MAX(a.attempt) FROM attempts a WHERE a.job_id = p.id), 0) + 1,
               $2, $4
        FROM picked p
        RETURNING id, job_id, attempt
    ), claimed AS (
        UPDATE jobs j
        SET state = 'running', attempts = j.attempts + 1, started_at = $4, finished_at = NULL,
            lease_until = jobd_now_ms() + $3, worker = $2, attempt_id = s.id
        FROM started s
        WHERE j.id = s.job_id
        RETURNING j.id, j.url, j.attempts, j.max_attempts, s.id AS attempt_id, s.attempt,
                  j.priority, j.run_at, j.host
    )
    SELECT id, url, attempts, max_attempts, attempt_id, attempt, host, priority, run_at
    FROM claimed
    ORDER BY priority DESC, run_at, id"
        )
    };
}

/// Claims due jobs in claim order from the first, skipping rows that other daemons are claiming
/// at this moment (`SKIP LOCKED`: claimers never wait for each other).
const CLAIM: &str = claim!(concat!(
    "picked AS (SELECT id FROM jobs WHERE ",
    free!(),
    " ORDER BY priority DESC, run_at, id LIMIT $1 FOR UPDATE SKIP LOCKED)"
));

/// Claims due jobs in claim order from a point ($6 priority, $7 run_at, $8 id) that the blocked
/// hosts' jobs at the head of the queue end before: the higher priorities from their first job,
/// the point's own after it, then the lower ones. Each part locks only as many rows as the
/// claim reads from it.
const CLAIM_FROM: &str = claim!(concat!(
    "above AS (SELECT id FROM jobs WHERE ",
    free!(),
    " AND priority > $6 ORDER BY priority DESC, run_at, id LIMIT $1 FOR UPDATE SKIP LOCKED),
    same AS (SELECT id FROM jobs WHERE ",
    free!(),
    " AND priority = $6 AND (run_at, id) > ($7, $8) ORDER BY run_at, id LIMIT $1
        FOR UPDATE SKIP LOCKED),
    below AS (SELECT id FROM jobs WHERE ",
    free!(),
    " AND priority < $6 ORDER BY priority DESC, run_at, id LIMIT $1 FOR UPDATE SKIP LOCKED),
    picked AS (SELECT id FROM above UNION ALL SELECT id FROM same UNION ALL SELECT id FROM below
               LIMIT $1)"
));

/// The hosts paused now.
const PAUSED: &str = "SELECT host FROM hosts WHERE paused_until > jobd_now_ms()";

/// How long claims go on from a point learnt since a walk from the first due job, at most: a
/// bound for a job that got behind the point without a notification (an UPDATE by hand of a
/// column the triggers do not watch, a row another transaction held locked while a claim
/// passed it).
const HEAD_TRUSTED_FOR: Duration = Duration::from_secs(300);

/// How old a job's due time must be for a claim to move its point past it (ms): as far back as
/// an INSERT's notification reaches from its transaction's start (migration 0009), so that the
/// watcher needs to hear only of a transaction that began before a claim which missed it.
const HEAD_MARGIN_MS: i64 = 1_000;

/// What a claim learnt about the head of the queue, as SQLite's claim does (its `Head`): every
/// due job before `key` (priority, run_at, id, in claim order) was claimed, being claimed by
/// another daemon, or of one of `hosts`, when the watcher's count stood at `changes`. While
/// those hosts are all still blocked and the count has not moved, the next claim starts there.
#[derive(Debug)]
pub(in crate::store) struct Head {
    pub(super) key: (i64, i64, i64),
    hosts: HashSet<String>,
    changes: u64,
    /// When the claims that learnt this last walked from the first due job.
    rooted: Instant,
}

/// What the watcher tells the claims (`watch.rs`). Every way a job gets queued notifies after
/// its commit with the job's due time (migration 0009), so a job queued behind a point is
/// always heard of; the claims use a point only while a watcher listens.
#[derive(Debug, Default)]
pub(in crate::store) struct Ahead {
    /// The watchers listening: while there is one, no notification is lost.
    listeners: AtomicUsize,
    /// Notifications of a job due at or before `bound`: one may be behind a point.
    pub(super) changes: AtomicU64,
    /// The latest due time any point may have (the database's clock): each claim raises it
    /// before it reads, and moves its point only over jobs due by then.
    pub(super) bound: AtomicI64,
}

impl Ahead {
    /// A job due at `run_at` (the database's clock; None: unknown) was queued and committed.
    pub(super) fn heard(&self, run_at: Option<i64>) {
        if run_at.is_none_or(|at| at <= self.bound.load(Ordering::SeqCst)) {
            self.changes.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A watcher stopped listening (it is reconnecting, or gone): what it would have heard may be
    /// lost.
    pub(super) fn deaf(&self) {
        self.listeners.fetch_sub(1, Ordering::SeqCst);
        self.changes.fetch_add(1, Ordering::SeqCst);
    }

    /// A watcher listens (again): no point learnt before counts.
    pub(super) fn listen(&self) {
        self.changes.fetch_add(1, Ordering::SeqCst);
        self.listeners.fetch_add(1, Ordering::SeqCst);
    }
}

/// Records a group of outcomes in one statement, each only while its claim still holds
/// (`attempt_id` matches). A job whose cancellation was requested while it ran is not queued
/// again. Returns the attempt ids that were recorded. $19 is the time of the record, by the
/// daemon's clock: a new run_at (a retry's backoff, a postponement) is the daemon's time, and
/// becomes the same delay from now by the database's clock, which claims go by.
///
/// The job rows are locked first, in id order, as jobctl's cancel and retry lock them: two
/// statements that lock several rows in different orders can deadlock.
const COMPLETE: &str = "
    WITH r AS (
        SELECT * FROM unnest($1::BIGINT[], $2::BIGINT[], $3::TEXT[], $4::BIGINT[], $5::TEXT[],
                             $6::BIGINT[], $7::TEXT[], $8::TEXT[], $9::BIGINT[], $10::TEXT[],
                             $11::TEXT[], $12::BIGINT[], $13::BIGINT[], $14::BIGINT[],
                             $15::BIGINT[], $16::TEXT[], $17::BIGINT[], $18::BIGINT[],
                             $20::TEXT[], $21::TEXT[])
            AS r (job_id, attempt_id, state, run_at, error, http_status, declared_mime, mime,
                  bytes, sha256, blob_path, width, height, refund, started_at, outcome,
                  ttfb_ms, download_ms, validation, validation_note)
    ), locked AS (
        SELECT id FROM jobs WHERE id IN (SELECT job_id FROM r) ORDER BY id FOR UPDATE
    ), finished AS (
        UPDATE jobs j
        SET state = CASE WHEN r.state = 'queued' AND j.cancel_requested THEN 'cancelled'
                         ELSE r.state END,
            finished_at = $19, run_at = COALESCE(jobd_now_ms() + (r.run_at - $19), j.run_at),
            error = r.error,
            http_status = r.http_status, declared_mime = r.declared_mime, mime = r.mime,
            bytes = r.bytes, sha256 = r.sha256, blob_path = r.blob_path, width = r.width,
            height = r.height, attempts = j.attempts - r.refund, started_at = r.started_at,
            validation = r.validation, validation_note = r.validation_note,
            worker = NULL, attempt_id = NULL, lease_until = NULL
        FROM r JOIN locked l ON l.id = r.job_id
        WHERE j.id = r.job_id AND j.attempt_id = r.attempt_id AND j.state = 'running'
        RETURNING r.attempt_id
    ), recorded AS (
        UPDATE attempts a
        SET finished_at = $19, outcome = r.outcome, http_status = r.http_status, error = r.error,
            bytes = r.bytes, ttfb_ms = r.ttfb_ms, download_ms = r.download_ms,
            total_ms = $19 - r.started_at, started_at = r.started_at
        FROM r JOIN finished f ON f.attempt_id = r.attempt_id
        WHERE a.id = r.attempt_id
    )
    SELECT attempt_id FROM finished";

/// Gives a claimed job back: queued (or cancelled, if that was asked) without counting the try.
/// $1 job, $2 attempt, $3 new run_at (the daemon's time, $4 its now) or NULL to keep it.
const GIVE_BACK: &str = "
    UPDATE jobs
    SET state = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'queued' END,
        attempts = attempts - 1,
        run_at = COALESCE(jobd_now_ms() + ($3::BIGINT - $4::BIGINT), run_at),
        worker = NULL, attempt_id = NULL, lease_until = NULL
    WHERE id = $1 AND attempt_id = $2 AND state = 'running'";

/// The jobs whose lease ran out, with what [`job::after_lease_expired`] needs. Rows another
/// daemon is recording at this moment are skipped (they are not lost, only late).
const EXPIRED: &str = "
    SELECT id, attempt_id, attempts, max_attempts, cancel_requested FROM jobs
    WHERE state = 'running' AND lease_until < jobd_now_ms()
    FOR UPDATE SKIP LOCKED";

/// Settles reaped jobs: $1 ids, $2 their new states, $3 their attempts, $4 now (the daemon's
/// clock, for finished_at), $5 the error.
const REAP: &str = "
    WITH closed AS (
        UPDATE attempts SET finished_at = $4, outcome = 'lease_expired', error = $5
        WHERE id = ANY($3)
    )
    UPDATE jobs j
    SET state = r.state, error = $5, finished_at = $4, worker = NULL, attempt_id = NULL,
        lease_until = NULL
    FROM unnest($1::BIGINT[], $2::TEXT[]) AS r (id, state)
    WHERE j.id = r.id";

/// One batch of finished jobs older than $1 in the states $2; their attempts go with them
/// (ON DELETE CASCADE).
///
/// The conditions are repeated outside: a row that someone requeues (jobctl retry) while this
/// waits for its lock is checked again as it is then, and kept, where the subquery's answer
/// alone would still delete it.
const PRUNE: &str = "
    DELETE FROM jobs WHERE id IN (
        SELECT id FROM jobs
        WHERE state IN ('done', 'failed', 'cancelled') AND finished_at < $1
          AND state = ANY($2)
        LIMIT $3)
      AND state = ANY($2) AND finished_at < $1";

fn claimed_job(row: &Row, now: i64) -> Result<Claimed, postgres::Error> {
    let url: Option<String> = row.try_get(1)?;
    let count = |i: usize| -> Result<u32, postgres::Error> { Ok(count_from_db(row.try_get(i)?)) };
    Ok(Claimed {
        job_id: row.try_get(0)?,
        url: url.map_or(RawUrl::NotText("NULL"), RawUrl::Text),
        attempts: count(2)?,
        max_attempts: row.try_get::<_, Option<i64>>(3)?.map(count_from_db),
        attempt_id: row.try_get(4)?,
        attempt: count(5)?,
        started_at: now,
        host: row.try_get(6)?,
    })
}

/// The columns of [`COMPLETE`], one array per column, one element per job.
#[derive(Default)]
struct Columns<'a> {
    job_id: Vec<i64>,
    attempt_id: Vec<i64>,
    state: Vec<&'static str>,
    run_at: Vec<Option<i64>>,
    error: Vec<Option<&'a str>>,
    http_status: Vec<Option<i64>>,
    declared_mime: Vec<Option<&'a str>>,
    mime: Vec<Option<&'static str>>,
    bytes: Vec<Option<i64>>,
    sha256: Vec<Option<&'a str>>,
    blob_path: Vec<Option<&'a str>>,
    width: Vec<Option<i64>>,
    height: Vec<Option<i64>>,
    refund: Vec<i64>,
    started_at: Vec<i64>,
    outcome: Vec<&'static str>,
    ttfb_ms: Vec<Option<i64>>,
    download_ms: Vec<Option<i64>>,
    validation: Vec<Option<&'static str>>,
    validation_note: Vec<Option<&'a str>>,
}

impl<'a> Columns<'a> {
    /// Adds an attempt that ran, with the result its outcome settled.
    fn push(&mut self, job: &Claimed, report: &'a Report, recorded: Recorded<'a>) {
        let Recorded {
            state,
            run_at,
            error,
            stored,
            refund,
            outcome,
        } = recorded;
        self.job_id.push(job.job_id);
        self.attempt_id.push(job.attempt_id);
        self.state.push(state.name());
        self.run_at.push(run_at);
        self.error.push(error);
        self.http_status.push(report.http_status.map(i64::from));
        self.declared_mime.push(report.declared_mime.as_deref());
        self.mime.push(stored.map(|s| s.mime));
        self.bytes.push(report.bytes.map(|b| b as i64));
        self.sha256.push(stored.map(|s| s.sha256.as_str()));
        self.blob_path.push(stored.map(|s| s.blob_path.as_str()));
        self.width.push(stored.map(|s| i64::from(s.width)));
        self.height.push(stored.map(|s| i64::from(s.height)));
        self.refund.push(i64::from(refund));
        self.started_at.push(job.started_at);
        self.outcome.push(outcome);
        self.ttfb_ms.push(report.ttfb_ms);
        self.download_ms.push(report.download_ms);
        self.validation.push(stored.map(|s| s.validation.name()));
        self.validation_note
            .push(stored.and_then(|s| s.validation_note.as_deref()));
    }

    fn params<'s>(&'s self, now: &'s i64) -> [(&'s (dyn ToSql + Sync), Type); 21] {
        let (ints, texts) = (Type::INT8_ARRAY, Type::TEXT_ARRAY);
        [
            (&self.job_id, ints.clone()),
            (&self.attempt_id, ints.clone()),
            (&self.state, texts.clone()),
            (&self.run_at, ints.clone()),
            (&self.error, texts.clone()),
            (&self.http_status, ints.clone()),
            (&self.declared_mime, texts.clone()),
            (&self.mime, texts.clone()),
            (&self.bytes, ints.clone()),
            (&self.sha256, texts.clone()),
            (&self.blob_path, texts.clone()),
            (&self.width, ints.clone()),
            (&self.height, ints.clone()),
            (&self.refund, ints.clone()),
            (&self.started_at, ints.clone()),
            (&self.outcome, texts.clone()),
            (&self.ttfb_ms, ints.clone()),
            (&self.download_ms, ints),
            (now, Type::INT8),
            (&self.validation, texts.clone()),
            (&self.validation_note, texts),
        ]
    }
}

impl PgStore {
    /// Gives a claimed job back (untried or interrupted): the job row and its attempt row in
    /// one transaction, if the claim still holds.
    fn give_back(
        &self,
        job: &Claimed,
        run_at: Option<i64>,
        interrupted: Option<&str>,
    ) -> Result<Applied, StoreError> {
        let doing = || format!("giving job {} back", job.job_id);
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().ctx(doing())?;
        let now = now_ms();
        let changed = tx
            .execute(GIVE_BACK, &[&job.job_id, &job.attempt_id, &run_at, &now])
            .ctx(doing())?;
        if changed == 0 {
            return Ok(Applied::ClaimLost);
        }
        match interrupted {
            Some(why) => tx.execute(
                "UPDATE attempts SET finished_at = $2, outcome = 'interrupted', error = $3,
                                     total_ms = $2 - started_at
                 WHERE id = $1",
                &[&job.attempt_id, &now, &why],
            ),
            None => tx.execute("DELETE FROM attempts WHERE id = $1", &[&job.attempt_id]),
        }
        .ctx(doing())?;
        tx.commit().ctx(doing())?;
        Ok(Applied::Yes)
    }
}

impl Queue for PgStore {
    fn claim(
        &self,
        worker: &str,
        limit: usize,
        options: ClaimOptions<'_>,
    ) -> Result<Vec<Claimed>, StoreError> {
        let now = now_ms();
        let changes = self.ahead.changes.load(Ordering::SeqCst);
        let listening = self.ahead.listeners.load(Ordering::SeqCst) > 0;
        // Raised before the claim reads, so that the watcher counts any job committed after
        // that read which the point may pass.
        let bound = now + self.clock_offset_ms - HEAD_MARGIN_MS;
        self.ahead.bound.fetch_max(bound, Ordering::SeqCst);
        let mut conn = self.conn()?;
        let mut blocked: HashSet<String> = conn
            .query_prepared(PAUSED, &[])
            .ctx("finding the hosts to pass over")?
            .iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, _>>()
            .ctx("finding the hosts to pass over")?;
        blocked.extend(options.pass_over.iter().cloned());
        let head = lock(&self.head).take().filter(|head| {
            listening
                && head.changes == changes
                && head.rooted.elapsed() < HEAD_TRUSTED_FOR
                && head.hosts.is_subset(&blocked)
        });
        let hosts: Vec<&str> = blocked.iter().map(String::as_str).collect();
        let limit = limit as i64;
        let params: [(&(dyn ToSql + Sync), Type); 5] = [
            (&limit, Type::INT8),
            (&worker, Type::TEXT),
            (&options.lease_ms, Type::INT8),
            (&now, Type::INT8),
            (&hosts, Type::TEXT_ARRAY),
        ];
        let rows = match &head {
            Some(Head {
                key: (priority, run_at, id),
                ..
            }) => {
                let mut from = params.to_vec();
                from.extend([
                    (priority as &(dyn ToSql + Sync), Type::INT8),
                    (run_at, Type::INT8),
                    (id, Type::INT8),
                ]);
                conn.query_prepared(CLAIM_FROM, &from)
            }
            None => conn.query_prepared(CLAIM, &params),
        }
        .ctx("claiming jobs")?;
        // Every due job before the last one claimed is claimed, being claimed, or blocked.
        let mut point = head.as_ref().map(|h| h.key);
        let mut moving = true;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in &rows {
            let read = || -> Result<_, postgres::Error> {
                Ok((claimed_job(row, now)?, (row.try_get(7)?, row.try_get(8)?)))
            };
            let (job, (priority, run_at)) = read().ctx("reading a claimed job")?;
            moving &= run_at <= bound;
            if moving {
                point = Some((priority, run_at, job.job_id));
            }
            claimed.push(job);
        }
        if listening && let Some(key) = point {
            *lock(&self.head) = Some(Head {
                key,
                hosts: blocked,
                changes,
                rooted: head.map_or_else(Instant::now, |h| h.rooted),
            });
        }
        Ok(claimed)
    }

    fn record(&self, items: &[(&Claimed, &Report)]) -> Result<Vec<Applied>, StoreError> {
        // Attempts that ran go in one statement; jobs given back (rare: a host cooling down, a
        // stop) each in a transaction of their own.
        let mut columns = Columns::default();
        let mut given_back = Vec::new();
        for (job, report) in items {
            match report.outcome.settle() {
                Settlement::Recorded(recorded) => columns.push(job, report, recorded),
                Settlement::GivenBack {
                    run_at,
                    interrupted,
                } => {
                    if self.give_back(job, run_at, interrupted)? == Applied::Yes {
                        given_back.push(job.attempt_id);
                    }
                }
            }
        }
        let mut applied = given_back;
        if !columns.job_id.is_empty() {
            let now = now_ms();
            let recorded = self
                .conn()?
                .query_prepared(COMPLETE, &columns.params(&now))
                .ctx(format_args!("recording {} jobs", items.len()))?;
            for row in recorded {
                applied.push(
                    row.try_get(0)
                        .ctx(format_args!("recording {} jobs", items.len()))?,
                );
            }
        }
        Ok(items
            .iter()
            .map(|(job, _)| {
                if applied.contains(&job.attempt_id) {
                    Applied::Yes
                } else {
                    Applied::ClaimLost
                }
            })
            .collect())
    }

    fn extend_leases(&self, attempt_ids: &[i64], lease_ms: i64) -> Result<(), StoreError> {
        if attempt_ids.is_empty() {
            return Ok(());
        }
        self.conn()?
            .query_typed(
                // Rows locked right now are being recorded (or cancelled): they need no
                // renewal, and waiting for them in another order could deadlock.
                "UPDATE jobs SET lease_until = jobd_now_ms() + $2
                 WHERE id IN (SELECT id FROM jobs
                              WHERE state = 'running' AND attempt_id = ANY($1)
                              FOR UPDATE SKIP LOCKED)",
                &[(&attempt_ids, Type::INT8_ARRAY), (&lease_ms, Type::INT8)],
            )
            .ctx("extending leases")?;
        Ok(())
    }

    fn reap_expired(&self, default_max_attempts: u32) -> Result<usize, StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().ctx("reaping expired leases")?;
        let (mut ids, mut states, mut attempts) = (Vec::new(), Vec::new(), Vec::new());
        for row in tx.query(EXPIRED, &[]).ctx("reaping expired leases")? {
            let read = || -> Result<_, postgres::Error> {
                let id: i64 = row.try_get(0)?;
                let attempt_id: Option<i64> = row.try_get(1)?;
                let state = job::after_lease_expired(
                    count_from_db(row.try_get(2)?),
                    row.try_get::<_, Option<i64>>(3)?.map(count_from_db),
                    default_max_attempts,
                    row.try_get(4)?,
                );
                Ok((id, attempt_id, state))
            };
            let (id, attempt_id, state) = read().ctx("reaping expired leases")?;
            ids.push(id);
            states.push(state.name());
            attempts.extend(attempt_id);
        }
        if !ids.is_empty() {
            tx.execute(REAP, &[&ids, &states, &attempts, &now_ms(), &LEASE_EXPIRED])
                .ctx("reaping expired leases")?;
        }
        tx.commit().ctx("reaping expired leases")?;
        Ok(ids.len())
    }

    fn prune(&self, before: i64, states: &[State], batch: usize) -> Result<usize, StoreError> {
        let mut pruned = 0;
        let states: Vec<&str> = states.iter().map(|s| s.name()).collect();
        loop {
            // One short transaction per batch.
            let n = self
                .conn()?
                .execute(PRUNE, &[&before, &states, &(batch as i64)])
                .ctx("pruning finished jobs")? as usize;
            pruned += n;
            if n < batch {
                return Ok(pruned);
            }
        }
    }

    fn watch(&self) -> Result<Box<dyn Watch>, StoreError> {
        Ok(Box::new(PgWatch::new(self.clone())?))
    }

    fn record_host(&self, host: &str, change: HostChange) -> Result<(), StoreError> {
        super::hosts::record(&mut *self.conn()?, host, change, now_ms())
    }

    fn fleet(&self) -> Result<FleetState, StoreError> {
        super::hosts::fleet(&mut *self.conn()?, now_ms())
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    /// A database whose clock runs an hour ahead of this machine's: a retry's backoff and a
    /// postponement are delays from now by the database's clock, or the job would be due at
    /// once, and claimed and postponed again and again.
    #[test]
    fn a_daemon_whose_clock_is_late_still_waits_out_backoff_and_cool_downs() {
        let url = postgres::server().fresh_database();
        let store = PgStore::open(&url, 2).unwrap();
        ::postgres::Client::connect(&url, ::postgres::NoTls)
            .unwrap()
            .batch_execute(
                "CREATE OR REPLACE FUNCTION jobd_now_ms() RETURNS BIGINT LANGUAGE sql STABLE
                 AS $$ SELECT (extract(epoch FROM statement_timestamp()) * 1000)::BIGINT
                              + 3600000 $$",
            )
            .unwrap();
        store
            .add(&[
                NewJob::new("http://127.0.0.1/retried.png"),
                NewJob::new("http://127.0.0.1/postponed.png"),
            ])
            .unwrap();
        let claimed = store.claim("w", 2, ClaimOptions::lease(60_000)).unwrap();
        assert_eq!(claimed.len(), 2);
        let in_a_minute = crate::job::now_ms() + 60_000;
        let retry = Report::new(Outcome::Retry {
            run_at: in_a_minute,
            error: "HTTP 503".into(),
        });
        store
            .record(&[(&claimed[0], &retry)])
            .map(|applied| applied[0])
            .unwrap();
        store
            .record(&[(
                &claimed[1],
                &Report::new(Outcome::Untried {
                    run_at: in_a_minute,
                }),
            )])
            .map(|applied| applied[0])
            .unwrap();
        assert!(
            store.claim("w", 2, ClaimOptions::lease(60_000)).unwrap().is_empty(),
            "both are due in a minute, by either clock"
        );
        let mut watch = store.watch().unwrap();
        let due = watch.next_due().unwrap().unwrap();
        assert!(
            (due - in_a_minute).abs() < 5_000,
            "due {due}, expected {in_a_minute}"
        );
    }

    use crate::job::{Outcome, Report, State};
    use crate::store::postgres::PgStore;
    use crate::store::{ClaimOptions, Jobs, NewJob, Queue};
    use jobd_testkit::postgres;

    /// A prune that waits for a row which someone is requeueing must look at the row again once
    /// it may: the job is queued now, and stays.
    #[test]
    fn a_prune_spares_a_job_requeued_while_it_waited() {
        let url = postgres::server().fresh_database();
        let store = PgStore::open(&url, 2).unwrap();
        let id = store.add(&[NewJob::new("http://127.0.0.1/a.png")]).unwrap()[0];
        let job = store.claim("w", 1, ClaimOptions::lease(60_000)).unwrap().remove(0);
        let failed = Report::new(Outcome::Failed {
            error: "HTTP 404".into(),
        });
        store
            .record(&[(&job, &failed)])
            .map(|applied| applied[0])
            .unwrap();
        let mut person = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
        let mut requeue = person.transaction().unwrap();
        requeue
            .execute("UPDATE jobs SET state = 'queued' WHERE id = $1", &[&id])
            .unwrap();
        let pruner = {
            let store = store.clone();
            std::thread::spawn(move || store.prune(i64::MAX, &[State::Failed], 100).unwrap())
        };
        // Wait until the prune is blocked on the requeued row, then let the requeue commit.
        let mut watcher = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let waiting: i64 = watcher
                .query_one(
                    "SELECT COUNT(*) FROM pg_stat_activity
                     WHERE wait_event_type = 'Lock' AND query LIKE '%DELETE FROM jobs%'",
                    &[],
                )
                .unwrap()
                .get(0);
            if waiting > 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the prune never waited for the row"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        requeue.commit().unwrap();
        assert_eq!(pruner.join().unwrap(), 0);
        assert_eq!(store.show(id).unwrap().unwrap().0.state, State::Queued);
    }
}
