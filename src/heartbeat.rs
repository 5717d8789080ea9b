//! The daemon's heartbeat: its exchange with the other daemons on the queue, every
//! [`HEARTBEAT_SECS`] from a thread of its own, and once before the workers start.
//!
//! - It writes this daemon's row of the `daemons` table (its host, pid, version, workers and
//!   busy workers), so that `jobctl daemons` and the dashboard list the daemons working on the
//!   queue, and deletes it at a clean stop. A daemon that dies leaves a row that stops beating,
//!   which readers then leave out.
//! - It tells the `hosts` table the limits that this daemon's successes widened, and takes in
//!   the live daemons and every host's limit and pause ([`Hosts::adopt`]): each daemon then has
//!   its part of a host's limit in flight, and the parts add up to the limit.
//!
//! Architecture invariant: a failing beat is logged and retried at the next one; it never stops
//! or slows the daemon.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::hosts::{Fleet, Hosts};
use crate::job::now_ms;
use crate::lock;
use crate::metrics::Metrics;
use crate::store::{HEARTBEAT_SECS, Heartbeat, HostChange, Store, StoreError};

/// The running heartbeat; [`Beating::stop`] ends it and removes the row.
pub struct Beating {
    queue: Arc<dyn Store>,
    hosts: Arc<Hosts>,
    name: String,
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

/// Beats once, then every [`HEARTBEAT_SECS`] from a thread of its own.
pub fn start(
    queue: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    hosts: Arc<Hosts>,
    workers: usize,
) -> Beating {
    let host = crate::hostname();
    let pid = std::process::id();
    let beat = Heartbeat {
        name: format!("{host}:{pid}"),
        host,
        pid,
        version: env!("CARGO_PKG_VERSION").into(),
        workers: u32::try_from(workers).unwrap_or(u32::MAX),
        busy: 0,
        started_at: now_ms(),
    };
    let stop = Arc::new((Mutex::new(false), Condvar::new()));
    let name = beat.name.clone();
    let failing = AtomicBool::new(false);
    // Before the workers start, so that their first requests keep to this daemon's part.
    beat_once(&*queue, &metrics, &hosts, &mut beat.clone(), &failing);
    let (thread_queue, thread_hosts, thread_stop) = (queue.clone(), hosts.clone(), stop.clone());
    let thread = std::thread::Builder::new()
        .name("heartbeat".into())
        .spawn(move || {
            run(
                &*thread_queue,
                &metrics,
                &thread_hosts,
                beat,
                &failing,
                &thread_stop,
            )
        })
        .map_err(|e| log::warn!("cannot start the heartbeat ({e}); jobctl daemons will not list this daemon"))
        .ok();
    Beating {
        queue,
        hosts,
        name,
        stop,
        thread,
    }
}

fn run(
    queue: &dyn Store,
    metrics: &Metrics,
    hosts: &Hosts,
    mut beat: Heartbeat,
    failing: &AtomicBool,
    stop: &(Mutex<bool>, Condvar),
) {
    loop {
        let (flag, wake) = stop;
        let stopped = lock(flag);
        let (stopped, _) = wake
            .wait_timeout_while(stopped, Duration::from_secs(HEARTBEAT_SECS), |s| !*s)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *stopped {
            return;
        }
        drop(stopped);
        beat_once(queue, metrics, hosts, &mut beat, failing);
    }
}

/// One beat; a failure is logged once, when the beats start failing.
fn beat_once(
    queue: &dyn Store,
    metrics: &Metrics,
    hosts: &Hosts,
    beat: &mut Heartbeat,
    failing: &AtomicBool,
) {
    beat.busy = u32::try_from(metrics.busy()).unwrap_or(u32::MAX);
    match queue
        .heartbeat(beat)
        .and_then(|()| exchange(queue, hosts, &beat.name))
    {
        Ok(()) => {
            if failing.swap(false, Ordering::Relaxed) {
                log::info!("the heartbeat is recorded again");
            }
        }
        Err(e) => {
            if !failing.swap(true, Ordering::Relaxed) {
                log::warn!("cannot record the heartbeat (will keep trying): {e}");
            }
        }
    }
}

/// Tells the `hosts` table the limits this daemon widened, and takes in the fleet: the live
/// daemons and every host's limit and pause.
fn exchange(queue: &dyn Store, hosts: &Hosts, me: &str) -> Result<(), StoreError> {
    let read_at = now_ms();
    tell_widenings(queue, hosts)?;
    let known = queue.fleet()?;
    let fleet = Fleet::among(&known.daemons, me);
    if fleet.daemons != hosts.fleet().daemons {
        log::info!(
            "{} daemons on the queue: each host's limit is shared out among them",
            fleet.daemons
        );
    }
    hosts.adopt(fleet, &known.hosts, read_at);
    Ok(())
}

/// Tells the `hosts` table the limits this daemon's successes widened since the last beat.
fn tell_widenings(queue: &dyn Store, hosts: &Hosts) -> Result<(), StoreError> {
    for (host, from, to) in hosts.widenings() {
        let change = HostChange::Widened {
            from: u32::try_from(from).unwrap_or(u32::MAX),
            to: to.map(|l| u32::try_from(l).unwrap_or(u32::MAX)),
        };
        queue.record_host(&host, change)?;
    }
    Ok(())
}

impl Beating {
    /// Ends the heartbeat, tells the widenings since the last beat, and removes this daemon's
    /// row.
    pub fn stop(mut self) {
        *lock(&self.stop.0) = true;
        self.stop.1.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        if let Err(e) = tell_widenings(&*self.queue, &self.hosts) {
            log::warn!("cannot tell the other daemons the hosts' limits: {e}");
        }
        if let Err(e) = self.queue.daemon_stopped(&self.name) {
            log::warn!("cannot remove this daemon from the daemons table: {e}");
        }
    }
}
