//! The PostgreSQL backend, for fleets of daemons on many machines sharing one queue: opening the
//! pool, the migrations, and the connection settings. The queue operations are in `queue.rs`
//! (claims with `FOR UPDATE SKIP LOCKED`), the LISTEN/NOTIFY watcher in `watch.rs`, the
//! operator's queries in `admin.rs` and the files it names.
//!
//! Times that decide who holds a job (run_at against now, leases) are read from the database's
//! clock, `jobd_now_ms()`, so that daemons whose clocks disagree still agree on them.

mod admin;
mod bulk;
mod daemons;
mod dashboard;
mod hosts;
mod ops;
mod queue;
mod stats;
mod watch;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use postgres::{Client, Config, NoTls};
use postgres::types::{ToSql, Type};
use postgres::{Row, Statement};
use r2d2::PooledConnection;

use super::{Context, Database, StoreError, migrations_applied};
use crate::job::State;

/// Numbered migrations, embedded; `schema_migrations` records which ran. The same numbers as the
/// SQLite ones, each doing the same for this backend. Migrations only ever add.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/postgres/0001_init.sql"),
    include_str!("../../migrations/postgres/0002_controls.sql"),
    include_str!("../../migrations/postgres/0003_blob_refs.sql"),
    include_str!("../../migrations/postgres/0004_validation.sql"),
    include_str!("../../migrations/postgres/0005_ids_never_reused.sql"),
    include_str!("../../migrations/postgres/0006_hosts.sql"),
    include_str!("../../migrations/postgres/0007_queue_changes.sql"),
    include_str!("../../migrations/postgres/0008_daemons.sql"),
    include_str!("../../migrations/postgres/0009_notify_how_far_back.sql"),
    include_str!("../../migrations/postgres/0010_overview_indexes.sql"),
    include_str!("../../migrations/postgres/0011_no_running_host_index.sql"),
];

/// Serialises migrations between daemons starting at once (`pg_advisory_xact_lock`): "jobd" in
/// ASCII.
const MIGRATION_LOCK: i64 = 0x6a6f_6264;

/// How long to wait for a connection, from the pool or to the server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a connection may go unanswered before it counts as dead.
const DEAD_PATH: Duration = Duration::from_secs(30);
/// `keepalives_idle` when the URL does not set it (libpq's default).
const LIBPQ_KEEPALIVES_IDLE: Duration = Duration::from_secs(2 * 3600);

/// A daemon's pooled connections; the watcher has one more of its own.
const DAEMON_POOL: u32 = 4;

/// Whether a commit waits for the server's disk.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Commits {
    Durable,
    Fast,
}

/// The name every notification goes out on (the triggers of migration 0001 send it).
pub(super) const CHANNEL: &str = "jobd";

/// The pool's connections: each keeps the statements prepared on it ([`PgConn::query_prepared`]).
#[derive(Debug)]
pub(super) struct Manager {
    config: Config,
}

impl r2d2::ManageConnection for Manager {
    type Connection = PgConn;
    type Error = postgres::Error;

    fn connect(&self) -> Result<PgConn, postgres::Error> {
        Ok(PgConn {
            client: self.config.connect(NoTls)?,
            prepared: HashMap::new(),
        })
    }

    fn is_valid(&self, conn: &mut PgConn) -> Result<(), postgres::Error> {
        conn.client.simple_query("").map(|_| ())
    }

    fn has_broken(&self, conn: &mut PgConn) -> bool {
        conn.client.is_closed()
    }
}

/// A pooled connection, and the statements prepared on it.
pub(super) struct PgConn {
    client: Client,
    prepared: HashMap<&'static str, Statement>,
}

impl PgConn {
    /// `query_typed`, for the statements of every claim and record: prepared on this
    /// connection the first time, so that the server parses and plans them once, not at every
    /// call (most of a claim's time on the server).
    pub(super) fn query_prepared(
        &mut self,
        sql: &'static str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<Vec<Row>, postgres::Error> {
        let statement = match self.prepared.get(sql) {
            Some(statement) => statement.clone(),
            None => {
                let types: Vec<Type> = params.iter().map(|(_, ty)| ty.clone()).collect();
                let statement = self.client.prepare_typed(sql, &types)?;
                self.prepared.insert(sql, statement.clone());
                statement
            }
        };
        let values: Vec<&(dyn ToSql + Sync)> = params.iter().map(|(value, _)| *value).collect();
        self.client.query(&statement, &values)
    }
}

impl std::ops::Deref for PgConn {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl std::ops::DerefMut for PgConn {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.client
    }
}

/// The PostgreSQL queue. Cheap to clone: clones share one pool, and what the claims learn.
#[derive(Clone)]
pub struct PgStore {
    pub(super) pool: r2d2::Pool<Manager>,
    /// For the watcher's own connection, which LISTENs and so stays out of the pool.
    pub(super) config: Config,
    /// The URL without its password, for messages.
    pub(super) name: String,
    /// The database's clock less this machine's when the store opened (ms).
    pub(super) clock_offset_ms: i64,
    /// Where the claims' walk may start, and what the watcher hears that moves it
    /// (`queue.rs`).
    pub(super) head: Arc<Mutex<Option<queue::Head>>>,
    pub(super) ahead: Arc<queue::Ahead>,
}

/// A `state` value; the schema's CHECK allows only the five.
impl<'a> postgres::types::FromSql<'a> for State {
    fn from_sql(
        ty: &postgres::types::Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let name = <&str as postgres::types::FromSql>::from_sql(ty, raw)?;
        State::parse(name).ok_or_else(|| super::unknown_state(name))
    }

    fn accepts(ty: &postgres::types::Type) -> bool {
        <&str as postgres::types::FromSql>::accepts(ty)
    }
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("database", &self.name)
            .finish()
    }
}

impl PgStore {
    /// Connects to the database at `url` (a `postgres://` URL or a libpq `key=value` string) with
    /// a pool of up to `pool_size` connections, and applies pending migrations.
    pub fn open(url: &str, pool_size: u32) -> Result<PgStore, StoreError> {
        PgStore::open_with(url, pool_size, Commits::Durable)
    }

    /// [`PgStore::open`] for a daemon: a small pool (its database work is serialised anyway:
    /// one claimer at a time, one committer, the supervisor), and commits that do not wait for
    /// the server's disk. That is SQLite's `synchronous = NORMAL`: a crash of the server may lose
    /// the last claims and records, never a blob, and a lost record only means the job runs
    /// again. Waiting for the disk at every claim and record halved the throughput.
    pub fn open_for_daemon(url: &str) -> Result<PgStore, StoreError> {
        PgStore::open_with(url, DAEMON_POOL, Commits::Fast)
    }

    fn open_with(url: &str, pool_size: u32, commits: Commits) -> Result<PgStore, StoreError> {
        let name = Database::Postgres(url.to_string()).to_string();
        let mut config: Config = url
            .parse()
            .ctx(format_args!("reading the database URL {name}"))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            // What pg_stat_activity shows for our connections.
            config.application_name("jobd");
        }
        // A dead network path (a failover, a partition) must not block a call for the kernel's
        // quarter of an hour of retransmissions: the supervisor would stop renewing leases and
        // other daemons would take the jobs back. Unacknowledged data fails after 30 s, and an
        // idle connection's death is noticed within a minute. Settings in the URL win.
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(DEAD_PATH);
        }
        if config.get_keepalives_idle() == LIBPQ_KEEPALIVES_IDLE {
            config.keepalives_idle(DEAD_PATH);
        }
        if config.get_keepalives_interval().is_none() {
            config.keepalives_interval(Duration::from_secs(10));
        }
        if config.get_keepalives_retries().is_none() {
            config.keepalives_retries(3);
        }
        if commits == Commits::Fast {
            // First, so that a setting in the URL's own `options` wins.
            let theirs = config.get_options().unwrap_or_default().to_string();
            config.options(format!("-c synchronous_commit=off {theirs}").trim_end());
        }
        // One connection first, for the migrations: if the server refuses (no such database, a
        // bad password), its own words reach the user at once, where the pool would only time
        // out saying "db error".
        let mut first = config
            .connect(NoTls)
            .ctx(format_args!("connecting to {name}"))?;
        migrate(&mut first)?;
        let clock_offset_ms = clock_offset(&mut first)?;
        drop(first);
        let pool = r2d2::Pool::builder()
            .max_size(pool_size.max(1))
            .min_idle(Some(1))
            .connection_timeout(CONNECT_TIMEOUT)
            // Not a round trip per check-out to test the connection: a connection that died
            // (the server restarted) fails its next statement, is dropped as broken, and the
            // caller retries as after any database error.
            .test_on_check_out(false)
            .build(Manager {
                config: config.clone(),
            })
            .ctx(format_args!("connecting to {name}"))?;
        Ok(PgStore {
            pool,
            config,
            name,
            clock_offset_ms,
            head: Arc::default(),
            ahead: Arc::default(),
        })
    }

    pub(super) fn conn(&self) -> Result<PooledConnection<Manager>, StoreError> {
        self.pool
            .get()
            .ctx(format_args!("connecting to {}", self.name))
    }

    /// A connection of its own, outside the pool (the watcher's).
    pub(super) fn connect(&self) -> Result<Client, StoreError> {
        self.config
            .connect(NoTls)
            .ctx(format_args!("connecting to {}", self.name))
    }
}

/// The database's clock less this machine's: the midpoint of the quickest of a few round trips,
/// so that a slow one (a busy machine) does not skew it.
fn clock_offset(conn: &mut Client) -> Result<i64, StoreError> {
    let mut best: Option<(i64, i64)> = None;
    for _ in 0..5 {
        let before = crate::job::now_ms();
        let theirs: i64 = conn
            .query_one("SELECT jobd_now_ms()", &[])
            .and_then(|row| row.try_get(0))
            .ctx("reading the database's clock")?;
        let after = crate::job::now_ms();
        let sample = (after - before, theirs - (before + after) / 2);
        best = Some(best.map_or(sample, |b| b.min(sample)));
    }
    Ok(best.map_or(0, |(_, offset)| offset))
}

/// Applies pending migrations in one transaction, under an advisory lock so that daemons
/// starting together apply each one once.
fn migrate(conn: &mut Client) -> Result<(), StoreError> {
    let mut tx = conn.transaction().ctx("starting the migration")?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .ctx("waiting for other daemons' migrations")?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    BIGINT PRIMARY KEY,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .ctx("creating schema_migrations")?;
    let applied: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
        )
        .and_then(|row| row.try_get(0))
        .ctx("reading the schema version")?;
    let applied = migrations_applied(applied, MIGRATIONS.len())?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        tx.batch_execute(sql)
            .ctx(format_args!("applying migration {}", i + 1))?;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[&(i as i64 + 1)],
        )
        .ctx("recording the schema version")?;
    }
    tx.commit().ctx("committing the migration")
}

#[cfg(test)]
mod tests {
    use super::PgStore;
    use jobd_testkit::postgres;

    fn synchronous_commit(store: &PgStore) -> String {
        store
            .conn()
            .unwrap()
            .query_one("SHOW synchronous_commit", &[])
            .unwrap()
            .get(0)
    }

    #[test]
    fn a_dead_network_path_is_given_up_on_in_seconds_unless_the_url_says_otherwise() {
        let url = postgres::server().fresh_database();
        let store = PgStore::open(&url, 1).unwrap();
        assert_eq!(store.config.get_tcp_user_timeout(), Some(&super::DEAD_PATH));
        assert_eq!(store.config.get_keepalives_idle(), super::DEAD_PATH);
        let url = format!("{url}?tcp_user_timeout=5&keepalives_idle=7");
        let store = PgStore::open(&url, 1).unwrap();
        assert_eq!(
            store.config.get_tcp_user_timeout(),
            Some(&std::time::Duration::from_secs(5))
        );
        assert_eq!(
            store.config.get_keepalives_idle(),
            std::time::Duration::from_secs(7)
        );
    }

    #[test]
    fn daemons_commit_without_waiting_for_the_disk_and_jobctl_waits() {
        let url = postgres::server().fresh_database();
        assert_eq!(synchronous_commit(&PgStore::open(&url, 1).unwrap()), "on");
        assert_eq!(
            synchronous_commit(&PgStore::open_for_daemon(&url).unwrap()),
            "off"
        );
        // The URL's own setting wins.
        let url = format!("{url}?options=-c%20synchronous_commit%3Dlocal");
        assert_eq!(
            synchronous_commit(&PgStore::open_for_daemon(&url).unwrap()),
            "local"
        );
    }
}
