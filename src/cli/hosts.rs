//! `jobctl hosts`: the hosts the queue holds jobs for, the busiest first, with what the daemons
//! share about each (its limit of requests in flight, its pause) and its recent figures.

use super::output::cell;
use super::time::relative;
use super::{Error, json, print_json};
use crate::job::now_ms;
use crate::logger::timestamp;
use crate::store::{HostRow, Store};

pub fn run(store: &dyn Store, as_json: bool) -> Result<(), Error> {
    let hosts = store.hosts()?;
    if as_json {
        print_json(&json::hosts(&hosts));
    } else {
        print_table(&hosts);
    }
    Ok(())
}

/// Done jobs per minute over the window of the recent figures.
pub fn done_per_minute(host: &HostRow) -> f64 {
    host.done_recently as f64 / crate::store::HOSTS_WINDOW_MINUTES as f64
}

fn print_table(hosts: &[HostRow]) {
    let now = now_ms();
    println!(
        "{:<32}  {:>9}  {:>7}  {:>8}  {:>8}  {:>8}  {:>6}  {:>5}  PAUSED UNTIL",
        "HOST", "QUEUED", "RUNNING", "DONE", "FAILED", "429/503", "/MIN", "LIMIT"
    );
    for host in hosts {
        let limit = host
            .max_in_flight
            .map_or_else(|| "-".to_string(), |n| n.to_string());
        let paused = host.paused_until.map_or_else(
            || "-".to_string(),
            |ms| format!("{} ({})", timestamp(ms), relative(ms, now)),
        );
        println!(
            "{:<32}  {:>9}  {:>7}  {:>8}  {:>8}  {:>8}  {:>6.1}  {:>5}  {paused}",
            cell(&host.host, 32),
            host.queued,
            host.running,
            host.done_recently,
            host.failed_recently,
            host.slow_downs_recently,
            done_per_minute(host),
            limit,
        );
    }
    println!(
        "(done, failed and 429/503 answers in the last {} minutes; LIMIT -: the daemons' max_per_host)",
        crate::store::HOSTS_WINDOW_MINUTES
    );
}
