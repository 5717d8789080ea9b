//! `jobctl watch`: follows the queue until nothing is queued or running. On a terminal, a
//! progress bar (jobs finished since the start out of those plus the ones left) with the rate,
//! the ETA and the counts per state; elsewhere a line per interval, or a JSON object per line.

use std::collections::VecDeque;
use std::io::{self, IsTerminal};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use super::{Error, print_json};
use crate::job::{State, now_ms};
use crate::logger::span;
use crate::logger::timestamp;
use crate::store::Store;

/// The rate is measured over this much of the recent past.
const RATE_WINDOW: Duration = Duration::from_secs(10);

/// One look at the queue.
struct Snapshot {
    counts: Vec<(State, i64)>,
    paused: bool,
}

impl Snapshot {
    fn take(store: &dyn Store) -> Result<Snapshot, Error> {
        let (counts, paused) = store.counts()?;
        Ok(Snapshot { counts, paused })
    }

    fn count(&self, state: State) -> i64 {
        self.counts
            .iter()
            .find(|(s, _)| *s == state)
            .map_or(0, |(_, n)| *n)
    }

    fn pending(&self) -> i64 {
        self.count(State::Queued) + self.count(State::Running)
    }

    fn finished(&self) -> i64 {
        self.count(State::Done) + self.count(State::Failed) + self.count(State::Cancelled)
    }

    /// `queued 10, running 4, done 100, failed 2, cancelled 0`
    fn describe(&self) -> String {
        self.counts
            .iter()
            .map(|(state, n)| format!("{state} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

pub fn run(store: &dyn Store, interval_ms: i64, as_json: bool) -> Result<(), Error> {
    let interval = Duration::from_millis(interval_ms.clamp(10, 3_600_000) as u64);
    let first = Snapshot::take(store)?;
    let finished_at_start = first.finished();
    let bar = (!as_json && io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::new(0);
        if let Ok(style) = ProgressStyle::with_template("{wide_bar} {pos}/{len}\n{msg}") {
            bar.set_style(style);
        }
        bar
    });
    // (when, jobs finished by then): the rate is the slope over the last RATE_WINDOW.
    let mut samples: VecDeque<(Instant, i64)> = VecDeque::new();
    let mut snapshot = first;
    loop {
        let now = Instant::now();
        let finished = snapshot.finished() - finished_at_start;
        samples.push_back((now, finished));
        while samples.len() > 2 && now.duration_since(samples[0].0) > RATE_WINDOW {
            samples.pop_front();
        }
        let rate = match (samples.front(), samples.len()) {
            (Some(&(then, before)), n) if n > 1 => {
                let secs = now.duration_since(then).as_secs_f64();
                (secs > 0.0).then(|| (finished - before) as f64 / secs)
            }
            _ => None,
        };
        let pending = snapshot.pending();
        let eta_ms = rate
            .filter(|r| *r > 0.0)
            .map(|r| (pending as f64 / r * 1000.0) as i64);
        let rate_text = rate.map_or_else(|| "-".into(), |r| format!("{r:.1}/s"));
        let eta_text = match (pending, eta_ms) {
            (0, _) => "drained".to_string(),
            (_, Some(ms)) => format!("ETA {}", span(ms)),
            (_, None) if snapshot.paused => "paused".into(),
            (_, None) => "ETA -".into(),
        };
        let paused = if snapshot.paused { ", PAUSED" } else { "" };
        if as_json {
            print_json(&json!({
                "time": now_ms(),
                "paused": snapshot.paused,
                "states": snapshot.counts.iter()
                    .map(|(s, n)| (s.name().to_string(), json!(n)))
                    .collect::<serde_json::Map<_, _>>(),
                "finished": finished,
                "rate_per_second": rate,
                "eta_ms": eta_ms,
            }));
        } else if let Some(bar) = &bar {
            bar.set_length((finished + pending).max(0) as u64);
            bar.set_position(finished.max(0) as u64);
            bar.set_message(format!(
                "{}{paused} | {rate_text}, {eta_text}",
                snapshot.describe()
            ));
        } else {
            println!(
                "{} {}{paused} | {rate_text}, {eta_text}",
                timestamp(now_ms()),
                snapshot.describe()
            );
        }
        if pending == 0 {
            if let Some(bar) = &bar {
                bar.finish();
            }
            return Ok(());
        }
        std::thread::sleep(interval);
        snapshot = Snapshot::take(store)?;
    }
}
