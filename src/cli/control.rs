//! `pause`, `resume`, `cancel` and `retry`: steering the queue.
//!
//! Commands that name jobs follow pueue: if the command did something for at least one job it
//! succeeds, and the jobs it could not act on are reported on stderr; if it could act on none,
//! it fails (exit 3 when no job had these ids, else 1).

use serde_json::{Value, json};

use super::{Error, print_json};
use crate::job::{Cancel, JobId, State};
use crate::store::Store;

pub fn pause(store: &dyn Store, on: bool, as_json: bool) -> Result<(), Error> {
    store.set_paused(on)?;
    if as_json {
        print_json(&json!({ "paused": on }));
    } else if on {
        let running = store.live_attempts()?.len();
        println!(
            "paused: no daemon on this database claims a new job until `jobctl resume`; \
             {running} running jobs finish as usual"
        );
    } else {
        println!("resumed: daemons claim jobs again");
    }
    Ok(())
}

/// The jobs a command could not act on: unknown ids, and jobs in the wrong state.
#[derive(Default)]
struct Leftovers {
    not_found: Vec<JobId>,
    wrong_state: Vec<(JobId, String)>,
}

impl Leftovers {
    fn report(&self, what: &str) {
        if !self.wrong_state.is_empty() {
            let list: Vec<String> = self
                .wrong_state
                .iter()
                .map(|(id, state)| format!("{id} ({state})"))
                .collect();
            eprintln!("jobctl: {what}: {}", list.join(", "));
        }
        if !self.not_found.is_empty() {
            eprintln!("jobctl: no such job: {}", join(&self.not_found));
        }
    }

    fn wrong_state_json(&self) -> Value {
        self.wrong_state
            .iter()
            .map(|(id, state)| json!({"id": id, "state": state}))
            .collect()
    }

    /// Ok if anything was done, else the failure with the documented exit code.
    fn outcome(&self, acted: usize, nothing: &str) -> Result<(), Error> {
        if acted > 0 {
            Ok(())
        } else if self.wrong_state.is_empty() {
            Err(Error::NotFound(nothing.into()))
        } else {
            Err(Error::Failed(nothing.into()))
        }
    }
}

fn join(ids: &[JobId]) -> String {
    ids.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn cancel(store: &dyn Store, ids: &[JobId], as_json: bool) -> Result<(), Error> {
    let (mut cancelled, mut requested) = (Vec::new(), Vec::new());
    let mut left = Leftovers::default();
    for (id, state) in store.cancel(ids)? {
        match state.map(|s| (s, s.on_cancel())) {
            Some((_, Cancel::Now)) => cancelled.push(id),
            Some((_, Cancel::WhenAttemptEnds)) => requested.push(id),
            Some((other, Cancel::No)) => left.wrong_state.push((id, other.to_string())),
            None => left.not_found.push(id),
        }
    }
    if as_json {
        print_json(&json!({
            "cancelled": cancelled,
            "cancel_requested": requested,
            "already_finished": left.wrong_state_json(),
            "not_found": left.not_found,
        }));
    } else {
        if !cancelled.is_empty() {
            println!("cancelled: {}", join(&cancelled));
        }
        if !requested.is_empty() {
            println!(
                "running, cancelled when the attempt ends (unless it succeeds or fails for good): {}",
                join(&requested)
            );
        }
    }
    left.report("already finished, left alone");
    left.outcome(cancelled.len() + requested.len(), "no job was cancelled")
}

pub fn retry(store: &dyn Store, ids: &[JobId], force: bool, as_json: bool) -> Result<(), Error> {
    let mut requeued = Vec::new();
    let mut left = Leftovers::default();
    for (id, state) in store.retry(ids, force)? {
        match state {
            Some(s) if s.retryable(force) => requeued.push(id),
            Some(State::Done) => left
                .wrong_state
                .push((id, "done; --force requeues it".into())),
            Some(other) => left.wrong_state.push((id, other.to_string())),
            None => left.not_found.push(id),
        }
    }
    if as_json {
        print_json(&json!({
            "requeued": requeued.len(),
            "ids": requeued,
            "not_retried": left.wrong_state_json(),
            "not_found": left.not_found,
        }));
    } else if !requeued.is_empty() {
        println!("requeued: {}", join(&requeued));
    }
    left.report("not requeued");
    left.outcome(requeued.len(), "no job was requeued")
}

pub fn retry_failed(store: &dyn Store, error: Option<&str>, as_json: bool) -> Result<(), Error> {
    let requeued = store.retry_failed(error)?;
    if as_json {
        print_json(&json!({ "requeued": requeued }));
    } else {
        match error {
            Some(pattern) => {
                println!("requeued {requeued} failed jobs whose error contains {pattern:?}")
            }
            None => println!("requeued {requeued} failed jobs"),
        }
    }
    Ok(())
}
