//! The daemon's heartbeat: a thread that writes this daemon's row of the `daemons` table (its
//! host, pid, version, workers and busy workers) every [`HEARTBEAT_SECS`], so that `jobctl
//! daemons` and the dashboard list the daemons working on the queue, and deletes it at a clean
//! stop. A daemon that dies leaves a row that stops beating, which readers then leave out.
//!
//! Architecture invariant: a failing beat is logged and retried at the next one; it never stops
//! or slows the daemon.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::job::now_ms;
use crate::lock;
use crate::metrics::Metrics;
use crate::store::{Daemons, HEARTBEAT_SECS, Heartbeat, Store};

/// The running heartbeat; [`Beating::stop`] ends it and removes the row.
pub struct Beating {
    queue: Arc<dyn Store>,
    name: String,
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

/// Starts beating at once, then every [`HEARTBEAT_SECS`].
pub fn start(queue: Arc<dyn Store>, metrics: Arc<Metrics>, workers: usize) -> Beating {
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
    let (thread_queue, thread_stop) = (queue.clone(), stop.clone());
    let thread = std::thread::Builder::new()
        .name("heartbeat".into())
        .spawn(move || run(&*thread_queue, &metrics, beat, &thread_stop))
        .map_err(|e| log::warn!("cannot start the heartbeat ({e}); jobctl daemons will not list this daemon"))
        .ok();
    Beating {
        queue,
        name,
        stop,
        thread,
    }
}

fn run(queue: &dyn Daemons, metrics: &Metrics, mut beat: Heartbeat, stop: &(Mutex<bool>, Condvar)) {
    let failing = AtomicBool::new(false);
    loop {
        beat.busy = u32::try_from(metrics.busy()).unwrap_or(u32::MAX);
        match queue.heartbeat(&beat) {
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
        let (flag, wake) = stop;
        let stopped = lock(flag);
        let (stopped, _) = wake
            .wait_timeout_while(stopped, Duration::from_secs(HEARTBEAT_SECS), |s| !*s)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *stopped {
            return;
        }
    }
}

impl Beating {
    /// Ends the heartbeat and removes this daemon's row.
    pub fn stop(mut self) {
        *lock(&self.stop.0) = true;
        self.stop.1.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        if let Err(e) = self.queue.daemon_stopped(&self.name) {
            log::warn!("cannot remove this daemon from the daemons table: {e}");
        }
    }
}
