//! The `daemons` table on PostgreSQL: heartbeats in, live daemons out. seen_at is the database's
//! clock, so that daemons whose clocks disagree are judged alike; it comes back as the same age
//! on this machine's clock.

use super::PgStore;
use crate::job::now_ms;
use crate::store::dashboard::FORGET_AFTER_MS;
use crate::store::{
    Context, DaemonRow, Daemons, Heartbeat, LIVE_WITHIN_MS, StoreError, count_from_db,
};

const BEAT: &str = "
    INSERT INTO daemons (name, host, pid, version, workers, busy, started_at, seen_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, jobd_now_ms())
    ON CONFLICT (name) DO UPDATE
    SET host = excluded.host, pid = excluded.pid, version = excluded.version,
        workers = excluded.workers, busy = excluded.busy, started_at = excluded.started_at,
        seen_at = excluded.seen_at";

const FORGET: &str = "DELETE FROM daemons WHERE seen_at < jobd_now_ms() - $1";

/// The age of each beat, in ms.
const LIVE: &str = "
    SELECT name, host, pid, version, workers, busy, started_at, jobd_now_ms() - seen_at
    FROM daemons WHERE seen_at >= jobd_now_ms() - $1 ORDER BY name COLLATE \"C\"";

impl Daemons for PgStore {
    fn heartbeat(&self, beat: &Heartbeat) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().ctx("recording a heartbeat")?;
        tx.execute(
            BEAT,
            &[
                &beat.name,
                &beat.host,
                &i64::from(beat.pid),
                &beat.version,
                &i64::from(beat.workers),
                &i64::from(beat.busy),
                &beat.started_at,
            ],
        )
        .ctx("recording a heartbeat")?;
        tx.execute(FORGET, &[&FORGET_AFTER_MS])
            .ctx("forgetting silent daemons")?;
        tx.commit().ctx("recording a heartbeat")
    }

    fn daemon_stopped(&self, name: &str) -> Result<(), StoreError> {
        self.conn()?
            .execute("DELETE FROM daemons WHERE name = $1", &[&name])
            .ctx("removing a stopped daemon")?;
        Ok(())
    }

    fn daemons(&self) -> Result<Vec<DaemonRow>, StoreError> {
        let rows = self
            .conn()?
            .query(LIVE, &[&LIVE_WITHIN_MS])
            .ctx("listing daemons")?;
        let now = now_ms();
        rows.iter()
            .map(|r| {
                Ok(DaemonRow {
                    beat: Heartbeat {
                        name: r.try_get(0)?,
                        host: r.try_get(1)?,
                        pid: count_from_db(r.try_get(2)?),
                        version: r.try_get(3)?,
                        workers: count_from_db(r.try_get(4)?),
                        busy: count_from_db(r.try_get(5)?),
                        started_at: r.try_get(6)?,
                    },
                    seen_at: now - r.try_get::<_, i64>(7)?,
                })
            })
            .collect::<Result<_, postgres::Error>>()
            .ctx("listing daemons")
    }
}
