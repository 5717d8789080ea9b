//! The `hosts` table on SQLite: what daemons record about a host, what they read back, and the
//! per-host figures of `jobctl hosts`.

use rusqlite::{Connection, params};

use crate::store::hosts::HOSTS_WINDOW_MINUTES;
use crate::store::{
    Context, FleetState, HostChange, HostRow, HostState, LIVE_WITHIN_MS, StoreError, count_from_db,
};

/// A slow-down narrowed the fleet's limit for the host: ?2 the new limit, ?3 now. The lower
/// limit wins.
const NARROWED: &str = "
    INSERT INTO hosts (host, max_in_flight, updated_at, slow_downs, last_slow_down_at)
    VALUES (?1, ?2, ?3, 1, ?3)
    ON CONFLICT (host) DO UPDATE
    SET max_in_flight = MIN(COALESCE(max_in_flight, excluded.max_in_flight),
                            excluded.max_in_flight),
        updated_at = excluded.updated_at,
        slow_downs = slow_downs + 1, last_slow_down_at = excluded.last_slow_down_at";

/// A slow-down paused the host until ?2, its ?3-th strike, and narrowed it to ?5 unless NULL;
/// ?4 now. A pause only extends, a limit only narrows.
const PAUSED: &str = "
    INSERT INTO hosts (host, max_in_flight, paused_until, strikes, updated_at, slow_downs,
                       last_slow_down_at)
    VALUES (?1, ?5, ?2, ?3, ?4, 1, ?4)
    ON CONFLICT (host) DO UPDATE
    SET max_in_flight = CASE WHEN excluded.max_in_flight IS NULL THEN max_in_flight
                             ELSE MIN(COALESCE(max_in_flight, excluded.max_in_flight),
                                      excluded.max_in_flight) END,
        paused_until = MAX(paused_until, excluded.paused_until),
        strikes = MAX(strikes, excluded.strikes), updated_at = excluded.updated_at,
        slow_downs = slow_downs + 1, last_slow_down_at = excluded.last_slow_down_at";

/// Successes widened the host from ?2 to ?3 (NULL: the ceiling), ?4 now, if its limit is still
/// ?2; strikes start over.
const WIDENED: &str = "
    UPDATE hosts SET max_in_flight = ?3, strikes = 0, updated_at = ?4
    WHERE host = ?1 AND max_in_flight = ?2";

const LIVE_DAEMONS: &str = "SELECT name FROM daemons WHERE seen_at >= ?1 ORDER BY name";

const IN_TROUBLE: &str = "
    SELECT host, max_in_flight, CASE WHEN paused_until > ?1 THEN paused_until END, strikes
    FROM hosts WHERE max_in_flight IS NOT NULL OR paused_until > ?1 ORDER BY host";

/// `jobctl hosts` in one statement: each part reads its own index (queued jobs, running jobs,
/// jobs finished in the window, attempts finished in it), and the `hosts` table. Counting
/// the queued jobs by host reads every queued row (there is no index of them by host: see
/// migration 0006), the one part whose cost grows with the queue.
const HOSTS: &str = "
    SELECT host, SUM(queued), SUM(running), SUM(done), SUM(failed), SUM(slow), MAX(lim),
           MAX(paused)
    FROM (
        SELECT host, COUNT(*) AS queued, 0 AS running, 0 AS done, 0 AS failed, 0 AS slow,
               NULL AS lim, NULL AS paused
        FROM jobs INDEXED BY jobs_due
        WHERE state = 'queued' AND host IS NOT NULL GROUP BY host
        UNION ALL
        SELECT host, 0, COUNT(*), 0, 0, 0, NULL, NULL FROM jobs INDEXED BY jobs_lease
        WHERE state = 'running' AND host IS NOT NULL GROUP BY host
        UNION ALL
        SELECT host, 0, 0, SUM(state = 'done'), SUM(state = 'failed'), 0, NULL, NULL
        FROM jobs INDEXED BY jobs_finished
        WHERE state IN ('done', 'failed', 'cancelled') AND finished_at >= ?2
          AND host IS NOT NULL
        GROUP BY host
        UNION ALL
        SELECT j.host, 0, 0, 0, 0, COUNT(*), NULL, NULL
        FROM attempts a JOIN jobs j ON j.id = a.job_id
        WHERE a.finished_at >= ?2 AND a.http_status IN (429, 503) AND j.host IS NOT NULL
        GROUP BY j.host
        UNION ALL
        SELECT host, 0, 0, 0, 0, 0, max_in_flight,
               CASE WHEN paused_until > ?1 THEN paused_until END
        FROM hosts
    )
    GROUP BY host
    ORDER BY SUM(queued) DESC, host";

/// Records `change` about `host` in one upsert (its own transaction).
pub(super) fn record(
    conn: &Connection,
    host: &str,
    change: HostChange,
    now: i64,
) -> Result<(), StoreError> {
    match change {
        HostChange::Narrowed { max_in_flight } => conn
            .prepare_cached(NARROWED)
            .and_then(|mut s| s.execute(params![host, max_in_flight, now])),
        HostChange::Paused {
            until,
            strikes,
            max_in_flight,
        } => conn
            .prepare_cached(PAUSED)
            .and_then(|mut s| s.execute(params![host, until, strikes, now, max_in_flight])),
        HostChange::Widened { from, to } => conn
            .prepare_cached(WIDENED)
            .and_then(|mut s| s.execute(params![host, from, to, now])),
    }
    .ctx(format_args!("recording the state of host {host}"))?;
    Ok(())
}

/// The live daemons, and the hosts with a limit or a pause at `now`, in one read.
pub(super) fn fleet(conn: &mut Connection, now: i64) -> Result<FleetState, StoreError> {
    let tx = conn.transaction().ctx("reading what the fleet knows")?;
    let daemons = tx
        .prepare_cached(LIVE_DAEMONS)
        .and_then(|mut stmt| {
            stmt.query_map([now - LIVE_WITHIN_MS], |r| r.get(0))?
                .collect()
        })
        .ctx("reading the live daemons")?;
    let hosts = in_trouble(&tx, now)?;
    Ok(FleetState { daemons, hosts })
}

/// The hosts with a limit or a pause at `now`.
fn in_trouble(conn: &Connection, now: i64) -> Result<Vec<HostState>, StoreError> {
    conn.prepare_cached(IN_TROUBLE)
        .and_then(|mut stmt| {
            stmt.query_map([now], |r| {
                Ok(HostState {
                    host: r.get(0)?,
                    max_in_flight: r.get::<_, Option<i64>>(1)?.map(count_from_db),
                    paused_until: r.get(2)?,
                    strikes: count_from_db(r.get(3)?),
                })
            })?
            .collect()
        })
        .ctx("reading the hosts' limits and pauses")
}

/// The rows of `jobctl hosts` at `now`.
pub(super) fn rows(conn: &Connection, now: i64) -> Result<Vec<HostRow>, StoreError> {
    let since = crate::job::window_start(now, HOSTS_WINDOW_MINUTES);
    conn.prepare(HOSTS)
        .and_then(|mut stmt| {
            stmt.query_map([now, since], |r| {
                Ok(HostRow {
                    host: r.get(0)?,
                    queued: r.get(1)?,
                    running: r.get(2)?,
                    done_recently: r.get(3)?,
                    failed_recently: r.get(4)?,
                    slow_downs_recently: r.get(5)?,
                    max_in_flight: r.get(6)?,
                    paused_until: r.get(7)?,
                })
            })?
            .collect()
        })
        .ctx("reading the hosts")
}
