//! Which database a configuration names, and opening it.
//!
//! `database = "postgres://user@host:5432/jobs"` (or `postgresql://`) selects PostgreSQL; a path,
//! or `sqlite://path`, selects SQLite. `JOBD_DATABASE` overrides the config file.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{PgStore, SqliteStore, Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// An SQLite file, created on first use.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL (or `key=value` string), as libpq spells it.
    Postgres(String),
}

impl Database {
    /// Reads a `database` value; relative SQLite paths resolve against `base`.
    pub fn parse(value: &str, base: &Path) -> Database {
        if value.starts_with("postgres://") || value.starts_with("postgresql://") {
            return Database::Postgres(value.to_string());
        }
        let path = Path::new(value.strip_prefix("sqlite://").unwrap_or(value));
        Database::Sqlite(if path.is_relative() {
            base.join(path)
        } else {
            path.to_path_buf()
        })
    }
}

/// For logs and messages: the path, or the URL without its password.
impl fmt::Display for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "{}", path.display()),
            Database::Postgres(url) => match url::Url::parse(url) {
                Ok(mut parsed) if parsed.password().is_some() => {
                    let _ = parsed.set_password(Some("***"));
                    write!(f, "{parsed}")
                }
                _ => f.write_str(url),
            },
        }
    }
}

/// Opens (creating and migrating as needed) the database, with a pool of up to `pool_size`
/// connections.
fn open(database: &Database, pool_size: u32) -> Result<Arc<dyn Store>, StoreError> {
    match database {
        Database::Sqlite(path) => Ok(Arc::new(SqliteStore::open(path, pool_size)?)),
        Database::Postgres(url) => Ok(Arc::new(PgStore::open(url, pool_size)?)),
    }
}

/// Opens the database for jobctl. Its pool connects only as a command needs, up to what the
/// busiest one uses: an import on PostgreSQL reserves ids on one connection while two others
/// COPY into `jobs`.
pub fn open_for_jobctl(database: &Database) -> Result<Arc<dyn Store>, StoreError> {
    open(database, 3)
}

/// Opens the database for a daemon with `workers` workers. On SQLite, a connection per worker and
/// two more: they are free. On PostgreSQL each is a server process and a fleet multiplies them,
/// so a few, and commits that do not wait for the disk, as SQLite's in the daemon
/// ([`PgStore::open_for_daemon`]).
pub fn open_for_daemon(database: &Database, workers: usize) -> Result<Arc<dyn Store>, StoreError> {
    match database {
        Database::Sqlite(path) => Ok(Arc::new(SqliteStore::open(path, workers as u32 + 2)?)),
        Database::Postgres(url) => Ok(Arc::new(PgStore::open_for_daemon(url)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_select_postgres_and_paths_select_sqlite() {
        let base = Path::new("/etc/jobd");
        assert_eq!(
            Database::parse("postgres://jobd@db:5432/q", base),
            Database::Postgres("postgres://jobd@db:5432/q".into())
        );
        assert_eq!(
            Database::parse("postgresql://db/q", base),
            Database::Postgres("postgresql://db/q".into())
        );
        assert_eq!(
            Database::parse("q.db", base),
            Database::Sqlite("/etc/jobd/q.db".into())
        );
        assert_eq!(
            Database::parse("sqlite:///var/lib/q.db", base),
            Database::Sqlite("/var/lib/q.db".into())
        );
        assert_eq!(
            Database::parse("sqlite://q.db", base),
            Database::Sqlite("/etc/jobd/q.db".into())
        );
    }

    #[test]
    fn passwords_stay_out_of_logs() {
        let db = Database::Postgres("postgres://jobd:s3cret@db/q".into());
        assert_eq!(db.to_string(), "postgres://jobd:***@db/q");
    }
}
