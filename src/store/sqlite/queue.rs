//! The queue operations on SQLite: claim, record, leases, reaping and pruning, each one short
//! IMMEDIATE transaction.

use std::cmp::Reverse;
use std::collections::HashSet;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use super::watch::SqliteWatch;
use super::{SqliteStore, WATCH_BUSY_TIMEOUT, configure};
use crate::job::{
    self, Applied, Claimed, LEASE_EXPIRED, RawUrl, Recorded, Report, Settlement, State, now_ms,
};
use crate::lock;
use crate::store::{
    ClaimOptions, Context, HostChange, HostState, Queue, StoreError, Watch, count_from_db,
};

/// The hosts a claim passes over, with `$now` and `$ceiling` the parameters for now and the
/// daemon's `max_per_host` (or NULL): those paused (`hosts.paused_until` after now), and those
/// with as many jobs running as their limit (`hosts.max_in_flight`, else the ceiling, else none).
macro_rules! blocked_hosts {
    ($now:literal, $ceiling:literal) => {
        concat!(
            "SELECT host FROM hosts WHERE paused_until > ",
            $now,
            " UNION ALL
             SELECT r.host FROM jobs AS r INDEXED BY jobs_running_host
             WHERE r.state = 'running' AND r.host IS NOT NULL
             GROUP BY r.host
             HAVING COUNT(*) >= COALESCE(
                 (SELECT h.max_in_flight FROM hosts h WHERE h.host = r.host),
                 ",
            $ceiling,
            ", 9223372036854775807)"
        )
    };
}

/// The SET of a claim: the job is running, its try counted, under this worker's lease (?2).
macro_rules! claim_set {
    () => {
        "UPDATE jobs
         SET state = 'running', attempts = attempts + 1, started_at = ?1, finished_at = NULL,
             lease_until = ?2, worker = ?3"
    };
}

/// The columns a claim returns: what the worker needs, and the claim order for sorting.
macro_rules! claimed_columns {
    () => {
        "RETURNING id, url, attempts, max_attempts, priority, run_at, host"
    };
}

/// Picks due jobs in claim order and marks them running, in one statement; nothing while the
/// queue is paused (`jobctl pause`). RETURNING yields rows in table order, so the claim order
/// columns come back too, for sorting. `INDEXED BY` pins the
/// partial index that is already in claim order: without statistics the planner prefers
/// `jobs_state` and sorts every queued row, which costs milliseconds at a million rows.
/// The limit is written `(SELECT ?4)`: SQLite re-prepares a statement on every run whose LIMIT
/// is a bare parameter, and that parse cost more than the claim itself.
///
/// The jobs of blocked hosts ([`blocked_hosts`]) are passed over and left as they are. The
/// running counts are those before this claim: one batch may take several jobs of a host, and so
/// overshoot its room by at most the batch (the daemon's own limit in memory still holds its
/// requests back). The blocked hosts are found once per claim; passing over a job then costs one
/// entry of `jobs_claim`, which holds the host, and one lookup in that set. This runs under the
/// write lock, so it looks at the first ?6 due jobs only ([`CLAIM_WINDOW`]); the jobs behind a
/// blocked host's long queue are found per host instead ([`claim_past_blocked`]).
pub(super) const CLAIM: &str = concat!(
    claim_set!(),
    "
    WHERE id IN (SELECT id FROM (SELECT id, host FROM jobs AS j INDEXED BY jobs_claim
                                 WHERE state = 'queued' AND run_at <= ?1
                                   AND NOT EXISTS (SELECT 1 FROM settings
                                                   WHERE name = 'paused' AND value = '1')
                                 ORDER BY priority DESC, run_at, id
                                 LIMIT (SELECT ?6)) AS c
                 WHERE c.host IS NULL OR c.host NOT IN (",
    blocked_hosts!("?1", "?5"),
    ")
                 LIMIT (SELECT ?4))
    ",
    claimed_columns!()
);

/// How many due jobs, in claim order, a claim looks at for ones whose host has room, before it
/// looks per host: a bound on the jobs of blocked hosts that one claim walks past.
const CLAIM_WINDOW: i64 = 256;

/// The hosts to pass over, on their own: ?1 now, ?2 the ceiling.
const BLOCKED: &str = blocked_hosts!("?1", "?2");

/// Whether `jobctl pause` holds the queue.
const PAUSED: &str = "SELECT EXISTS (SELECT 1 FROM settings WHERE name = 'paused' AND value = '1')";

/// The first host after ?1 (in text order) with queued jobs: one probe of `jobs_queued_host`. A
/// walk from '' visits every such host once, and a blocked host's jobs, however many, cost one
/// probe.
pub(super) const NEXT_HOST: &str = "
    SELECT host FROM jobs INDEXED BY jobs_queued_host
    WHERE state = 'queued' AND host > ?1 ORDER BY host LIMIT 1";

/// A host's (?1) first ?3 due jobs in claim order; ?1 NULL: the jobs without a host.
pub(super) const HOST_HEAD: &str = "
    SELECT id, priority, run_at FROM jobs INDEXED BY jobs_queued_host
    WHERE state = 'queued' AND host IS ?1 AND run_at <= ?2
    ORDER BY priority DESC, run_at, id LIMIT (SELECT ?3)";

/// Claims one job by id, if it is still queued.
const CLAIM_ONE: &str = concat!(
    claim_set!(),
    " WHERE id = ?4 AND state = 'queued' ",
    claimed_columns!()
);

/// The most hosts with queued jobs that a claim visits one by one. Past it (a queue spread over
/// more hosts, with a window's worth of blocked jobs in front), the claim walks the queue in
/// order instead, as far as it takes.
const HOST_PROBES: usize = 1_024;

const START_ATTEMPT: &str = "
    INSERT INTO attempts (job_id, attempt, worker, started_at)
    VALUES (?1, (SELECT COALESCE(MAX(attempt), 0) + 1 FROM attempts WHERE job_id = ?1), ?2, ?3)
    RETURNING id, attempt";

/// Records a settled attempt, but only while the claim still holds (`attempt_id` matches). A job
/// whose cancellation was requested while it ran is not queued again.
const FINISH_JOB: &str = "
    UPDATE jobs
    SET state = CASE WHEN ?3 = 'queued' AND cancel_requested THEN 'cancelled' ELSE ?3 END,
        finished_at = ?4, run_at = COALESCE(?5, run_at), error = ?6,
        http_status = ?7, declared_mime = ?8, mime = ?9, bytes = ?10, sha256 = ?11,
        blob_path = ?12, width = ?13, height = ?14, attempts = attempts - ?15,
        started_at = ?16, validation = ?17, validation_note = ?18, worker = NULL, attempt_id = NULL, lease_until = NULL
    WHERE id = ?1 AND attempt_id = ?2 AND state = 'running'";

/// A batch of finished jobs older than ?1 in the given states (comma-separated ?2).
const PRUNE_PICK: &str = "
    INSERT INTO prune_ids (id)
    SELECT id FROM jobs INDEXED BY jobs_finished
    WHERE state IN ('done', 'failed', 'cancelled') AND finished_at < ?1
      AND instr(',' || ?2 || ',', ',' || state || ',') > 0
    LIMIT ?3";

/// Gives a job back untouched but for its claim, if the claim still holds: queued (or cancelled,
/// if that was asked), the try not counted, ?3 its new run_at or NULL to keep it.
const GIVE_BACK: &str = "
    UPDATE jobs
    SET state = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'queued' END,
        attempts = attempts - 1, run_at = COALESCE(?3, run_at),
        worker = NULL, attempt_id = NULL, lease_until = NULL
    WHERE id = ?1 AND attempt_id = ?2 AND state = 'running'";

const INTERRUPT_ATTEMPT: &str = "
    UPDATE attempts SET finished_at = ?2, outcome = 'interrupted', error = ?3,
                        total_ms = ?2 - started_at
    WHERE id = ?1";

/// The jobs whose lease ran out, with what [`job::after_lease_expired`] needs.
const EXPIRED: &str = "
    SELECT id, attempt_id, attempts, max_attempts, cancel_requested
    FROM jobs INDEXED BY jobs_lease WHERE state = 'running' AND lease_until < ?1";

const REAP_ATTEMPT: &str = "
    UPDATE attempts SET finished_at = ?2, outcome = 'lease_expired', error = ?3 WHERE id = ?1";

const REAP_JOB: &str = "
    UPDATE jobs
    SET state = ?3, error = ?4, finished_at = ?5, worker = NULL, attempt_id = NULL,
        lease_until = NULL
    WHERE id = ?1 AND attempt_id IS ?2 AND state = 'running'";

const FINISH_ATTEMPT: &str = "
    UPDATE attempts
    SET finished_at = ?2, outcome = ?3, http_status = ?4, error = ?5, bytes = ?6,
        ttfb_ms = ?7, download_ms = ?8, total_ms = ?9, started_at = ?10
    WHERE id = ?1";

/// Records one attempt inside the caller's transaction, as its outcome settles it, if the claim
/// still holds.
fn record_one(
    tx: &Transaction<'_>,
    job: &Claimed,
    report: &Report,
    now: i64,
) -> Result<Applied, StoreError> {
    let doing = || format!("recording job {}", job.job_id);
    let Recorded {
        state,
        run_at,
        error,
        stored,
        refund,
        outcome,
    } = match report.outcome.settle() {
        Settlement::Recorded(recorded) => recorded,
        Settlement::GivenBack {
            run_at,
            interrupted,
        } => {
            let changed = tx
                .prepare_cached(GIVE_BACK)
                .and_then(|mut stmt| stmt.execute(params![job.job_id, job.attempt_id, run_at]))
                .ctx(doing())?;
            if changed == 0 {
                return Ok(Applied::ClaimLost);
            }
            match interrupted {
                Some(why) => tx
                    .prepare_cached(INTERRUPT_ATTEMPT)
                    .and_then(|mut stmt| stmt.execute(params![job.attempt_id, now, why])),
                None => tx
                    .prepare_cached("DELETE FROM attempts WHERE id = ?1")
                    .and_then(|mut stmt| stmt.execute([job.attempt_id])),
            }
            .ctx(doing())?;
            return Ok(Applied::Yes);
        }
    };
    let changed = tx
        .prepare_cached(FINISH_JOB)
        .and_then(|mut stmt| {
            stmt.execute(params![
                job.job_id,
                job.attempt_id,
                state.name(),
                now,
                run_at,
                error,
                report.http_status,
                report.declared_mime,
                stored.map(|s| s.mime),
                report.bytes.map(|b| b as i64),
                stored.map(|s| &s.sha256),
                stored.map(|s| &s.blob_path),
                stored.map(|s| s.width),
                stored.map(|s| s.height),
                refund,
                job.started_at,
                stored.map(|s| s.validation.name()),
                stored.and_then(|s| s.validation_note.as_deref()),
            ])
        })
        .ctx(doing())?;
    if changed == 0 {
        return Ok(Applied::ClaimLost);
    }
    tx.prepare_cached(FINISH_ATTEMPT)
        .and_then(|mut stmt| {
            stmt.execute(params![
                job.attempt_id,
                now,
                outcome,
                report.http_status,
                error,
                report.bytes.map(|b| b as i64),
                report.ttfb_ms,
                report.download_ms,
                now - job.started_at,
                job.started_at,
            ])
        })
        .ctx(format_args!(
            "recording attempt {} of job {}",
            job.attempt, job.job_id
        ))?;
    Ok(Applied::Yes)
}

/// An integer column as SQLite holds it, which may be a real or text if someone typed one.
fn loose_int(value: ValueRef<'_>) -> Option<i64> {
    match value {
        ValueRef::Integer(n) => Some(n),
        ValueRef::Real(f) => Some(f as i64),
        ValueRef::Null | ValueRef::Text(_) | ValueRef::Blob(_) => None,
    }
}

fn raw_url(value: ValueRef<'_>) -> RawUrl {
    match value {
        ValueRef::Text(bytes) => RawUrl::Text(String::from_utf8_lossy(bytes).into_owned()),
        ValueRef::Null => RawUrl::NotText("NULL"),
        ValueRef::Integer(_) => RawUrl::NotText("an integer"),
        ValueRef::Real(_) => RawUrl::NotText("a real number"),
        ValueRef::Blob(_) => RawUrl::NotText("a blob"),
    }
}

/// A claimed job, and its claim order: (priority, run_at).
type ClaimedInOrder = (Claimed, (i64, i64));

/// Reads the rows of [`claimed_columns`] into `into`.
fn read_claimed(
    mut rows: rusqlite::Rows<'_>,
    now: i64,
    into: &mut Vec<ClaimedInOrder>,
) -> Result<(), StoreError> {
    while let Some(row) = rows.next().ctx("claiming jobs")? {
        // Columns people may have set to anything: read what can be read.
        let value = |i| row.get_ref(i).ctx("reading a claimed job");
        let job = Claimed {
            job_id: row.get(0).ctx("reading a claimed job")?,
            url: raw_url(value(1)?),
            attempts: loose_int(value(2)?).map_or(0, count_from_db),
            max_attempts: loose_int(value(3)?).map(count_from_db),
            attempt_id: 0,
            attempt: 0,
            started_at: now,
            host: row.get(6).ctx("reading a claimed job")?,
        };
        let order = (
            loose_int(value(4)?).unwrap_or(0),
            loose_int(value(5)?).unwrap_or(0),
        );
        into.push((job, order));
    }
    Ok(())
}

/// What the look past blocked hosts found.
enum Past {
    Claimed(Vec<ClaimedInOrder>),
    /// More than [`HOST_PROBES`] hosts have queued jobs: nothing was claimed.
    TooManyHosts,
}

/// Claims up to `limit` due jobs of hosts that are not blocked, in claim order, visiting each
/// host's own queue in `jobs_queued_host`: the first `limit` due jobs of every host with room, and
/// of the jobs without a host, merged. A blocked host costs one probe however long its queue.
fn claim_past_blocked(
    tx: &Transaction<'_>,
    now: i64,
    lease_until: i64,
    worker: &str,
    limit: usize,
    ceiling: Option<u32>,
) -> Result<Past, StoreError> {
    let paused: bool = tx
        .prepare_cached(PAUSED)
        .and_then(|mut stmt| stmt.query_row([], |r| r.get(0)))
        .ctx("claiming jobs")?;
    let blocked: HashSet<String> = tx
        .prepare_cached(BLOCKED)
        .and_then(|mut stmt| {
            stmt.query_map(params![now, ceiling], |r| r.get(0))?
                .collect()
        })
        .ctx("finding the hosts to pass over")?;
    // Nothing blocked: the window held every due job there is.
    if paused || blocked.is_empty() {
        return Ok(Past::Claimed(Vec::new()));
    }
    let mut hosts: Vec<Option<String>> = vec![None];
    {
        let mut next = tx.prepare_cached(NEXT_HOST).ctx("claiming jobs")?;
        let mut after = String::new();
        let mut probes = 0;
        while let Some(host) = next
            .query_row([&after], |r| r.get::<_, String>(0))
            .optional()
            .ctx("claiming jobs")?
        {
            probes += 1;
            if probes > HOST_PROBES {
                return Ok(Past::TooManyHosts);
            }
            if !blocked.contains(&host) {
                hosts.push(Some(host.clone()));
            }
            after = host;
        }
    }
    // (id, claim order) of each host's first due jobs, then the first `limit` of them all.
    let mut heads: Vec<(i64, (i64, i64))> = Vec::new();
    {
        let mut head = tx.prepare_cached(HOST_HEAD).ctx("claiming jobs")?;
        for host in &hosts {
            let rows = head
                .query_map(params![host, now, limit as i64], |r| {
                    Ok((
                        r.get(0)?,
                        (
                            loose_int(r.get_ref(1)?).unwrap_or(0),
                            loose_int(r.get_ref(2)?).unwrap_or(0),
                        ),
                    ))
                })
                .and_then(Iterator::collect::<rusqlite::Result<Vec<_>>>)
                .ctx("claiming jobs")?;
            heads.extend(rows);
        }
    }
    heads.sort_by_key(|&(id, (priority, run_at))| (Reverse(priority), run_at, id));
    heads.truncate(limit);
    let mut claimed = Vec::with_capacity(heads.len());
    let mut one = tx.prepare_cached(CLAIM_ONE).ctx("claiming jobs")?;
    for (id, _) in heads {
        let rows = one
            .query(params![now, lease_until, worker, id])
            .ctx("claiming jobs")?;
        read_claimed(rows, now, &mut claimed)?;
    }
    Ok(Past::Claimed(claimed))
}

impl Queue for SqliteStore {
    fn claim(
        &self,
        worker: &str,
        limit: usize,
        options: ClaimOptions,
    ) -> Result<Vec<Claimed>, StoreError> {
        let _turn = lock(&self.write_turn);
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx("starting a claim")?;
        let now = now_ms();
        // Each with its claim order: (priority, run_at). The first look is at a window of due
        // jobs in claim order, which holds enough unless blocked hosts' jobs fill it. Then the
        // rest come from the other hosts' own queues, one probe per host.
        let lease_until = now + options.lease_ms;
        let mut claimed = Vec::new();
        {
            let mut pick = tx.prepare_cached(CLAIM).ctx("preparing the claim")?;
            let rows = pick
                .query(params![
                    now,
                    lease_until,
                    worker,
                    limit as i64,
                    options.per_host,
                    CLAIM_WINDOW.max(limit as i64)
                ])
                .ctx("claiming jobs")?;
            read_claimed(rows, now, &mut claimed)?;
        }
        if claimed.len() < limit {
            let wanted = limit - claimed.len();
            match claim_past_blocked(&tx, now, lease_until, worker, wanted, options.per_host)? {
                Past::Claimed(more) => claimed.extend(more),
                // A queue spread over too many hosts to visit: walk it in claim order, as far as
                // it takes. Under the write lock this costs about a tenth of a second per
                // million blocked jobs, so only when nothing else was found.
                Past::TooManyHosts if claimed.is_empty() => {
                    let mut pick = tx.prepare_cached(CLAIM).ctx("preparing the claim")?;
                    let rows = pick
                        .query(params![
                            now,
                            lease_until,
                            worker,
                            limit as i64,
                            options.per_host,
                            i64::MAX
                        ])
                        .ctx("claiming jobs")?;
                    read_claimed(rows, now, &mut claimed)?;
                }
                Past::TooManyHosts => {}
            }
        }
        claimed.sort_by_key(|(job, (priority, run_at))| (Reverse(*priority), *run_at, job.job_id));
        let mut claimed: Vec<Claimed> = claimed.into_iter().map(|(job, _)| job).collect();
        {
            let mut start = tx
                .prepare_cached(START_ATTEMPT)
                .ctx("preparing an attempt")?;
            let mut mark = tx
                .prepare_cached("UPDATE jobs SET attempt_id = ?2 WHERE id = ?1")
                .ctx("preparing an attempt")?;
            for job in &mut claimed {
                (job.attempt_id, job.attempt) = start
                    .query_row(params![job.job_id, worker, now], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                    .ctx(format_args!("starting an attempt of job {}", job.job_id))?;
                mark.execute(params![job.job_id, job.attempt_id])
                    .ctx(format_args!("claiming job {}", job.job_id))?;
            }
        }
        tx.commit().ctx("committing a claim")?;
        Ok(claimed)
    }

    fn record(&self, items: &[(&Claimed, &Report)]) -> Result<Vec<Applied>, StoreError> {
        let _turn = lock(&self.write_turn);
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(format_args!("recording {} jobs", items.len()))?;
        let now = now_ms();
        let applied = items
            .iter()
            .map(|(job, report)| record_one(&tx, job, report, now))
            .collect::<Result<Vec<_>, _>>()?;
        tx.commit()
            .ctx(format_args!("committing {} jobs", items.len()))?;
        Ok(applied)
    }

    fn extend_leases(&self, attempt_ids: &[i64], lease_ms: i64) -> Result<(), StoreError> {
        if attempt_ids.is_empty() {
            return Ok(());
        }
        let _turn = lock(&self.write_turn);
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx("extending leases")?;
        {
            let mut extend = tx
                .prepare_cached(
                    "UPDATE jobs SET lease_until = ?2
                     WHERE attempt_id = ?1 AND state = 'running'",
                )
                .ctx("extending leases")?;
            let until = now_ms() + lease_ms;
            for id in attempt_ids {
                extend.execute(params![id, until]).ctx("extending leases")?;
            }
        }
        tx.commit().ctx("extending leases")
    }

    fn reap_expired(&self, default_max_attempts: u32) -> Result<usize, StoreError> {
        let _turn = lock(&self.write_turn);
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx("reaping expired leases")?;
        let now = now_ms();
        // (job, attempt, the state it goes to)
        let expired: Vec<(i64, Option<i64>, State)> = tx
            .prepare_cached(EXPIRED)
            .and_then(|mut stmt| {
                stmt.query_map([now], |r| {
                    let attempts = loose_int(r.get_ref(2)?).map_or(0, count_from_db);
                    let max_attempts = loose_int(r.get_ref(3)?).map(count_from_db);
                    let cancel_requested = loose_int(r.get_ref(4)?).unwrap_or(0) != 0;
                    let state = job::after_lease_expired(
                        attempts,
                        max_attempts,
                        default_max_attempts,
                        cancel_requested,
                    );
                    Ok((r.get(0)?, r.get(1)?, state))
                })?
                .collect()
            })
            .ctx("reaping expired leases")?;
        for (id, attempt_id, state) in &expired {
            tx.prepare_cached(REAP_ATTEMPT)
                .and_then(|mut stmt| stmt.execute(params![attempt_id, now, LEASE_EXPIRED]))
                .and_then(|_| tx.prepare_cached(REAP_JOB))
                .and_then(|mut stmt| {
                    stmt.execute(params![id, attempt_id, state.name(), LEASE_EXPIRED, now])
                })
                .ctx(format_args!("reaping job {id}"))?;
        }
        tx.commit().ctx("reaping expired leases")?;
        Ok(expired.len())
    }

    fn prune(&self, before: i64, states: &[State], batch: usize) -> Result<usize, StoreError> {
        let mut pruned = 0;
        let states = super::state_list(states);
        loop {
            // One short transaction per batch, so the daemon and people at the shell get the
            // write lock in between.
            let _turn = lock(&self.write_turn);
            let mut conn = self.conn()?;
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .ctx("pruning finished jobs")?;
            tx.execute(
                "CREATE TEMP TABLE IF NOT EXISTS prune_ids (id INTEGER PRIMARY KEY)",
                [],
            )
            .and_then(|_| tx.execute("DELETE FROM prune_ids", []))
            .and_then(|_| {
                tx.prepare_cached(PRUNE_PICK)?
                    .execute(params![before, states, batch as i64])
            })
            .and_then(|_| {
                tx.execute(
                    "DELETE FROM attempts WHERE job_id IN (SELECT id FROM prune_ids)",
                    [],
                )
            })
            .ctx("pruning finished jobs")?;
            let n = tx
                .execute(
                    "DELETE FROM jobs WHERE id IN (SELECT id FROM prune_ids)",
                    [],
                )
                .ctx("pruning finished jobs")?;
            tx.commit().ctx("pruning finished jobs")?;
            pruned += n;
            if n < batch {
                return Ok(pruned);
            }
        }
    }

    fn watch(&self) -> Result<Box<dyn Watch>, StoreError> {
        let mut conn =
            Connection::open(&self.path).ctx(format_args!("opening {}", self.path.display()))?;
        configure(&mut conn).ctx(format_args!("opening {}", self.path.display()))?;
        // Its reads never wait in WAL mode; only the checkpoint could, and it must not.
        conn.busy_timeout(WATCH_BUSY_TIMEOUT)
            .ctx(format_args!("opening {}", self.path.display()))?;
        Ok(Box::new(SqliteWatch::new(conn)))
    }

    fn record_host(&self, host: &str, change: HostChange) -> Result<(), StoreError> {
        let _turn = lock(&self.write_turn);
        super::hosts::record(&*self.conn()?, host, change, now_ms())
    }

    fn hosts_in_trouble(&self) -> Result<Vec<HostState>, StoreError> {
        super::hosts::in_trouble(&*self.conn()?, now_ms())
    }
}
