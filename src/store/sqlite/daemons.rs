//! The `daemons` table on SQLite: heartbeats in, live daemons out.

use rusqlite::params;

use super::SqliteStore;
use crate::job::now_ms;
use crate::lock;
use crate::store::dashboard::FORGET_AFTER_MS;
use crate::store::{
    Context, DaemonRow, Daemons, Heartbeat, LIVE_WITHIN_MS, StoreError, count_from_db,
};

const BEAT: &str = "
    INSERT INTO daemons (name, host, pid, version, workers, busy, started_at, seen_at)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
    ON CONFLICT (name) DO UPDATE
    SET host = excluded.host, pid = excluded.pid, version = excluded.version,
        workers = excluded.workers, busy = excluded.busy, started_at = excluded.started_at,
        seen_at = excluded.seen_at";

const LIVE: &str = "
    SELECT name, host, pid, version, workers, busy, started_at, seen_at FROM daemons
    WHERE seen_at >= ?1 ORDER BY name";

impl Daemons for SqliteStore {
    fn heartbeat(&self, beat: &Heartbeat) -> Result<(), StoreError> {
        let now = now_ms();
        let _turn = lock(&self.write_turn);
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .ctx("recording a heartbeat")?;
        tx.prepare_cached(BEAT)
            .and_then(|mut s| {
                s.execute(params![
                    beat.name,
                    beat.host,
                    beat.pid,
                    beat.version,
                    beat.workers,
                    beat.busy,
                    beat.started_at,
                    now
                ])
            })
            .ctx("recording a heartbeat")?;
        tx.execute(
            "DELETE FROM daemons WHERE seen_at < ?1",
            [now - FORGET_AFTER_MS],
        )
        .ctx("forgetting silent daemons")?;
        tx.commit().ctx("recording a heartbeat")
    }

    fn daemon_stopped(&self, name: &str) -> Result<(), StoreError> {
        let _turn = lock(&self.write_turn);
        self.conn()?
            .execute("DELETE FROM daemons WHERE name = ?1", [name])
            .ctx("removing a stopped daemon")?;
        Ok(())
    }

    fn daemons(&self) -> Result<Vec<DaemonRow>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(LIVE).ctx("listing daemons")?;
        stmt.query_map([now_ms() - LIVE_WITHIN_MS], |r| {
            Ok(DaemonRow {
                beat: Heartbeat {
                    name: r.get(0)?,
                    host: r.get(1)?,
                    pid: count_from_db(r.get(2)?),
                    version: r.get(3)?,
                    workers: count_from_db(r.get(4)?),
                    busy: count_from_db(r.get(5)?),
                    started_at: r.get(6)?,
                },
                seen_at: r.get(7)?,
            })
        })
        .and_then(|rows| rows.collect())
        .ctx("listing daemons")
    }
}
