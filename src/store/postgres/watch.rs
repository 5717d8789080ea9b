//! The PostgreSQL watcher: LISTENs for the notifications that the triggers of migration 0001
//! send when rows are inserted or queued again, on a connection of its own, and answers the
//! supervisor's cheap questions on it.

use std::time::{Duration, Instant};

use postgres::Client;
use postgres::fallible_iterator::FallibleIterator;

use super::{CHANNEL, PgStore};
use crate::store::{Context, StoreError, Watch, now_ms};

/// Without a notification, the watcher still reports a change this often, so that a change that
/// sent none (an UPDATE by hand of a column the trigger does not watch, a notification lost
/// with a connection) is picked up all the same.
const FALLBACK_POLL: Duration = Duration::from_secs(1);

pub(super) struct PgWatch {
    store: PgStore,
    /// None after the connection broke: the next call connects again.
    client: Option<Client>,
    last_change: Instant,
}

impl PgWatch {
    pub(super) fn new(store: PgStore) -> Result<PgWatch, StoreError> {
        let mut watch = PgWatch {
            store,
            client: None,
            last_change: Instant::now(),
        };
        watch.client()?;
        Ok(watch)
    }

    /// The listening connection, connected (again) if need be.
    fn client(&mut self) -> Result<&mut Client, StoreError> {
        if self.client.as_ref().is_some_and(Client::is_closed) {
            self.client = None;
        }
        if self.client.is_none() {
            let mut client = self.store.connect()?;
            client
                .batch_execute(&format!("LISTEN {CHANNEL}"))
                .ctx("listening for new jobs")?;
            self.client = Some(client);
        }
        Ok(self.client.as_mut().expect("connected above"))
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
            self.client = None;
        }
        result.ctx(doing)
    }
}

impl Watch for PgWatch {
    fn changed(&mut self) -> Result<bool, StoreError> {
        let reconnecting = self.client.as_ref().is_none_or(Client::is_closed);
        let notified = self.ask(
            |client| {
                let mut notifications = client.notifications();
                let mut pending = notifications.iter();
                let mut any = false;
                while pending.next()?.is_some() {
                    any = true;
                }
                Ok(any)
            },
            "listening for new jobs",
        )?;
        // After a reconnection, whatever was sent meanwhile is lost: look.
        if notified || reconnecting || self.last_change.elapsed() >= FALLBACK_POLL {
            self.last_change = Instant::now();
            return Ok(true);
        }
        Ok(false)
    }

    fn next_due(&mut self) -> Result<Option<i64>, StoreError> {
        // How long until the job is due by the database's clock, turned into this machine's.
        let wait: Option<i64> = self.ask(
            |client| {
                client
                    .query_one(
                        "SELECT MIN(run_at) - jobd_now_ms() FROM jobs WHERE state = 'queued'",
                        &[],
                    )?
                    .try_get(0)
            },
            "looking for queued jobs",
        )?;
        Ok(wait.map(|ms| now_ms() + ms))
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

    fn counts(&mut self) -> Result<Vec<(String, i64)>, StoreError> {
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

    /// PostgreSQL manages its own log (and autovacuum its dead rows): nothing to do.
    fn checkpoint(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
}
