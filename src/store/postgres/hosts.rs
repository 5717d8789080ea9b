//! The `hosts` table on PostgreSQL: what daemons record about a host, what they read back, and
//! the per-host figures of `jobctl hosts`. Pauses are kept by the database's clock
//! (`jobd_now_ms()`), as run_at and leases are: a daemon's time becomes the same delay from the
//! database's now as it is written, and the same delay from the daemon's now as it is read.

use postgres::Client;
use postgres::types::Type;

use crate::store::hosts::HOSTS_WINDOW_MINUTES;
use crate::store::{
    Context, FleetState, HostChange, HostRow, HostState, LIVE_WITHIN_MS, StoreError, count_from_db,
};

/// A slow-down narrowed the fleet's limit for the host to $2. The lower limit wins.
const NARROWED: &str = "
    INSERT INTO hosts (host, max_in_flight, updated_at, slow_downs, last_slow_down_at)
    VALUES ($1, $2, jobd_now_ms(), 1, jobd_now_ms())
    ON CONFLICT (host) DO UPDATE
    SET max_in_flight = LEAST(hosts.max_in_flight, excluded.max_in_flight),
        updated_at = excluded.updated_at,
        slow_downs = hosts.slow_downs + 1, last_slow_down_at = excluded.last_slow_down_at";

/// A slow-down paused the host until $2 (the daemon's clock, $4 its now), its $3-th strike, and
/// narrowed it to $5 unless NULL. A pause only extends, a limit only narrows.
const PAUSED: &str = "
    INSERT INTO hosts (host, max_in_flight, paused_until, strikes, updated_at, slow_downs,
                       last_slow_down_at)
    VALUES ($1, $5, jobd_now_ms() + ($2 - $4), $3, jobd_now_ms(), 1, jobd_now_ms())
    ON CONFLICT (host) DO UPDATE
    SET max_in_flight = LEAST(hosts.max_in_flight, excluded.max_in_flight),
        paused_until = GREATEST(hosts.paused_until, excluded.paused_until),
        strikes = GREATEST(hosts.strikes, excluded.strikes), updated_at = excluded.updated_at,
        slow_downs = hosts.slow_downs + 1, last_slow_down_at = excluded.last_slow_down_at";

/// Successes widened the host from $2 to $3 (NULL: the ceiling), if its limit is still $2;
/// strikes start over.
const WIDENED: &str = "
    UPDATE hosts SET max_in_flight = $3, strikes = 0, updated_at = jobd_now_ms()
    WHERE host = $1 AND max_in_flight = $2";

/// The live daemons, in the order every daemon sorts them.
const LIVE_DAEMONS: &str = "
    SELECT name FROM daemons WHERE seen_at >= jobd_now_ms() - $1 ORDER BY name COLLATE \"C\"";

/// The pause's end comes back as the time left, for the daemon to add to its own now.
const IN_TROUBLE: &str = "
    SELECT host, max_in_flight,
           CASE WHEN paused_until > jobd_now_ms() THEN paused_until - jobd_now_ms() END, strikes
    FROM hosts WHERE max_in_flight IS NOT NULL OR paused_until > jobd_now_ms() ORDER BY host";

/// `jobctl hosts` in one statement: each part reads its own index (queued and running jobs by
/// host, jobs finished in the window, attempts finished in it), and the `hosts` table. $1 the
/// start of the window, by jobctl's clock, as finished_at is written.
const HOSTS: &str = r#"
    SELECT host, SUM(queued)::BIGINT, SUM(running)::BIGINT, SUM(done)::BIGINT,
           SUM(failed)::BIGINT, SUM(slow)::BIGINT, MAX(lim), MAX(paused_for)
    FROM (
        SELECT host, COUNT(*) AS queued, 0::BIGINT AS running, 0::BIGINT AS done,
               0::BIGINT AS failed, 0::BIGINT AS slow, NULL::BIGINT AS lim,
               NULL::BIGINT AS paused_for
        FROM jobs WHERE state = 'queued' AND host IS NOT NULL GROUP BY host
        UNION ALL
        SELECT host, 0, COUNT(*), 0, 0, 0, NULL, NULL FROM jobs
        WHERE state = 'running' AND host IS NOT NULL GROUP BY host
        UNION ALL
        SELECT host, 0, 0, COUNT(*) FILTER (WHERE state = 'done'),
               COUNT(*) FILTER (WHERE state = 'failed'), 0, NULL, NULL
        FROM jobs
        WHERE state IN ('done', 'failed', 'cancelled') AND finished_at >= $1
          AND host IS NOT NULL
        GROUP BY host
        UNION ALL
        SELECT j.host, 0, 0, 0, 0, COUNT(*), NULL, NULL
        FROM attempts a JOIN jobs j ON j.id = a.job_id
        WHERE a.finished_at >= $1 AND a.http_status IN (429, 503) AND j.host IS NOT NULL
        GROUP BY j.host
        UNION ALL
        SELECT host, 0, 0, 0, 0, 0, max_in_flight,
               CASE WHEN paused_until > jobd_now_ms() THEN paused_until - jobd_now_ms() END
        FROM hosts
    ) AS parts
    GROUP BY host
    ORDER BY SUM(queued) DESC, host COLLATE "C""#;

/// Records `change` about `host` in one upsert. `now` is the daemon's clock.
pub(super) fn record(
    conn: &mut Client,
    host: &str,
    change: HostChange,
    now: i64,
) -> Result<(), StoreError> {
    match change {
        HostChange::Narrowed { max_in_flight } => conn.query_typed(
            NARROWED,
            &[
                (&host, Type::TEXT),
                (&i64::from(max_in_flight), Type::INT8),
            ],
        ),
        HostChange::Paused {
            until,
            strikes,
            max_in_flight,
        } => conn.query_typed(
            PAUSED,
            &[
                (&host, Type::TEXT),
                (&until, Type::INT8),
                (&i64::from(strikes), Type::INT8),
                (&now, Type::INT8),
                (&max_in_flight.map(i64::from), Type::INT8),
            ],
        ),
        HostChange::Widened { from, to } => conn.query_typed(
            WIDENED,
            &[
                (&host, Type::TEXT),
                (&i64::from(from), Type::INT8),
                (&to.map(i64::from), Type::INT8),
            ],
        ),
    }
    .ctx(format_args!("recording the state of host {host}"))?;
    Ok(())
}

/// The live daemons, and the hosts with a limit or a pause now, in one read.
pub(super) fn fleet(conn: &mut Client, now: i64) -> Result<FleetState, StoreError> {
    let mut tx = conn
        .build_transaction()
        .read_only(true)
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .start()
        .ctx("reading what the fleet knows")?;
    let daemons = tx
        .query_typed(LIVE_DAEMONS, &[(&LIVE_WITHIN_MS, Type::INT8)])
        .ctx("reading the live daemons")?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, postgres::Error>>()
        .ctx("reading the live daemons")?;
    let hosts = in_trouble(&mut tx, now)?;
    tx.commit().ctx("reading what the fleet knows")?;
    Ok(FleetState { daemons, hosts })
}

/// The hosts with a limit or a pause now; pauses end at `now` (the daemon's clock) plus what
/// is left of them.
fn in_trouble(
    conn: &mut impl postgres::GenericClient,
    now: i64,
) -> Result<Vec<HostState>, StoreError> {
    conn.query_typed(IN_TROUBLE, &[])
        .ctx("reading the hosts' limits and pauses")?
        .iter()
        .map(|r| {
            Ok(HostState {
                host: r.try_get(0)?,
                max_in_flight: r.try_get::<_, Option<i64>>(1)?.map(count_from_db),
                paused_until: r
                    .try_get::<_, Option<i64>>(2)?
                    .map(|left| now.saturating_add(left)),
                strikes: count_from_db(r.try_get(3)?),
            })
        })
        .collect::<Result<_, postgres::Error>>()
        .ctx("reading the hosts' limits and pauses")
}

/// The rows of `jobctl hosts`; `now` is jobctl's clock.
pub(super) fn rows(conn: &mut impl postgres::GenericClient, now: i64) -> Result<Vec<HostRow>, StoreError> {
    let since = crate::job::window_start(now, HOSTS_WINDOW_MINUTES);
    conn.query(HOSTS, &[&since])
        .ctx("reading the hosts")?
        .iter()
        .map(|r| {
            Ok(HostRow {
                host: r.try_get(0)?,
                queued: r.try_get(1)?,
                running: r.try_get(2)?,
                done_recently: r.try_get(3)?,
                failed_recently: r.try_get(4)?,
                slow_downs_recently: r.try_get(5)?,
                max_in_flight: r.try_get(6)?,
                paused_until: r
                    .try_get::<_, Option<i64>>(7)?
                    .map(|left| now.saturating_add(left)),
            })
        })
        .collect::<Result<_, postgres::Error>>()
        .ctx("reading the hosts")
}
