//! The overview's figures, shared by everyone watching: read from the store at most once while
//! they are fresh, and when they go stale, served as they are while one background read brings
//! them up to date (stale-while-revalidate). So a page never waits for the database but the very
//! first, or the first after an action; and however many people watch, the store is read once
//! a second at most, and less often when a read takes long: never more than a fiftieth of the
//! time ([`fresh_for`]). A read asks for its three parts at once, on connections of their own.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::pages::{MINUTE, Overview};
use crate::job::now_ms;
use crate::lock;
use crate::store::{Store, StoreError};

/// How long figures stay fresh at least.
const FRESH: Duration = Duration::from_secs(1);

/// How long figures that took `read` to read stay fresh: [`FRESH`], or 50 times the read, so
/// that reading them never takes more than 2 % of the time, however large the queue.
pub fn fresh_for(read: Duration) -> Duration {
    FRESH.max(read * 50)
}

#[derive(Default)]
struct State {
    figures: Option<Arc<Overview>>,
    fresh_until: Option<Instant>,
    refreshing: bool,
}

pub struct Figures {
    store: Arc<dyn Store>,
    state: Mutex<State>,
    /// Held by the one request that reads when there are no figures at all.
    first: Mutex<()>,
}

impl Figures {
    pub fn new(store: Arc<dyn Store>) -> Arc<Figures> {
        Arc::new(Figures {
            store,
            state: Mutex::new(State::default()),
            first: Mutex::new(()),
        })
    }

    /// The figures: fresh ones, or stale ones while a refresh runs, or (with none yet) read now.
    pub fn get(self: &Arc<Figures>) -> Result<Arc<Overview>, StoreError> {
        {
            let mut state = lock(&self.state);
            if let Some(figures) = state.figures.clone() {
                let stale = state.fresh_until.is_none_or(|t| Instant::now() >= t);
                if stale && !state.refreshing {
                    state.refreshing = true;
                    let me = self.clone();
                    let spawned = std::thread::Builder::new()
                        .name("ui-figures".into())
                        .spawn(move || me.refresh());
                    if spawned.is_err() {
                        state.refreshing = false;
                    }
                }
                return Ok(figures);
            }
        }
        // No figures: one request reads them, the others wait for it.
        let _first = lock(&self.first);
        if let Some(figures) = lock(&self.state).figures.clone() {
            return Ok(figures);
        }
        self.read()
    }

    /// Drops the figures (after an action): the next page reads them afresh.
    pub fn forget(&self) {
        let mut state = lock(&self.state);
        state.figures = None;
        state.fresh_until = None;
    }

    fn refresh(&self) {
        if let Err(e) = self.read() {
            log::warn!("cannot read the overview's figures (showing the last ones): {e}");
            let mut state = lock(&self.state);
            state.fresh_until = Some(Instant::now() + FRESH);
        }
        lock(&self.state).refreshing = false;
    }

    /// Reads every figure, in three parts at once, each on a connection of its own: the counts
    /// (one snapshot), the storage and timings, and the throughput and the daemons. A cold page
    /// waits for the longest part, not their sum; every figure is exact for the moment its part
    /// read it, all within that one wait.
    fn read(&self) -> Result<Arc<Overview>, StoreError> {
        let started = Instant::now();
        let now = now_ms();
        let store = &*self.store;
        let (counts, stored, rest) = std::thread::scope(|s| {
            let counts = s.spawn(|| store.queue_counts());
            let stored = s.spawn(|| -> Result<_, StoreError> {
                Ok((store.storage()?, store.timing_figures()?))
            });
            let rest = (|| -> Result<_, StoreError> {
                Ok((
                    store.throughput(now - 1439 * MINUTE, MINUTE)?,
                    store.daemons()?,
                ))
            })();
            (
                counts.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
                stored.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
                rest,
            )
        });
        let (storage, timings) = stored?;
        let (minutes, daemons) = rest?;
        let figures = Arc::new(Overview {
            counts: counts?,
            storage,
            timings,
            minutes,
            daemons,
            now,
        });
        let mut state = lock(&self.state);
        state.figures = Some(figures.clone());
        state.fresh_until = Some(Instant::now() + fresh_for(started.elapsed()));
        Ok(figures)
    }
}

#[cfg(test)]
mod tests {
    use super::fresh_for;
    use std::time::Duration;

    #[test]
    fn slow_figures_are_reused_longer() {
        assert_eq!(fresh_for(Duration::from_millis(3)), Duration::from_secs(1));
        assert_eq!(fresh_for(Duration::from_millis(80)), Duration::from_millis(4000));
    }
}
