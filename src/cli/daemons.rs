//! `jobctl daemons`: the daemons working on the queue, from their heartbeats.

use super::time::relative;
use super::{Error, json, print_json};
use crate::job::now_ms;
use crate::store::Store;

pub fn run(store: &dyn Store, as_json: bool) -> Result<(), Error> {
    let daemons = store.daemons()?;
    if as_json {
        print_json(&json::daemons(&daemons));
        return Ok(());
    }
    let now = now_ms();
    println!(
        "{:<40}  {:>8}  {:<10}  {:>4}/{:<7}  {:<14}  LAST BEAT",
        "DAEMON", "PID", "VERSION", "BUSY", "WORKERS", "STARTED"
    );
    for d in &daemons {
        let b = &d.beat;
        println!(
            "{:<40}  {:>8}  {:<10}  {:>4}/{:<7}  {:<14}  {}",
            b.name,
            b.pid,
            b.version,
            b.busy,
            b.workers,
            relative(b.started_at, now),
            relative(d.seen_at, now)
        );
    }
    println!(
        "({} live: a heartbeat within the last {} s)",
        daemons.len(),
        crate::store::LIVE_WITHIN_MS / 1000
    );
    Ok(())
}
