//! What a test server saw, for benchmarks that judge a client's politeness: requests answered,
//! by status, the most requests in flight at once, and when each request arrived.
//!
//! A request is in flight from the moment its head has been read to the moment the last byte of
//! its response has been handed to the socket (or the connection ended). So the count is the
//! server's view: a client that sends its next request on another connection within
//! microseconds of reading a response may be counted twice for that instant.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Instant;

use super::lock;

/// Arrival times kept at most (8 MiB); later requests are still counted.
const MAX_ARRIVALS: usize = 1 << 20;

/// A snapshot of a server's counters ([`super::TestServer::stats`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// Requests read, whatever was answered.
    pub requests: usize,
    /// Requests being answered now.
    pub in_flight: usize,
    /// The most requests in flight at any one time.
    pub max_in_flight: usize,
    /// Requests by the status of the reply chosen for them.
    pub statuses: BTreeMap<u16, usize>,
    /// When each request's head was read, in ms since the server started, in order; at most
    /// the first 1,048,576.
    pub arrivals_ms: Vec<f64>,
}

impl Stats {
    /// One JSON object with the fields above; statuses' keys are the codes as strings.
    pub fn to_json(&self) -> String {
        let mut json = format!(
            "{{\"requests\":{},\"in_flight\":{},\"max_in_flight\":{},\"statuses\":{{",
            self.requests, self.in_flight, self.max_in_flight
        );
        for (i, (status, n)) in self.statuses.iter().enumerate() {
            let comma = if i > 0 { "," } else { "" };
            let _ = write!(json, "{comma}\"{status}\":{n}");
        }
        json.push_str("},\"arrivals_ms\":[");
        for (i, ms) in self.arrivals_ms.iter().enumerate() {
            let comma = if i > 0 { "," } else { "" };
            let _ = write!(json, "{comma}{ms:.3}");
        }
        json.push_str("]}\n");
        json
    }
}

/// The live counters, shared by every connection thread.
pub(super) struct Recorder {
    start: Instant,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    log: Mutex<Log>,
}

#[derive(Default)]
struct Log {
    requests: usize,
    statuses: BTreeMap<u16, usize>,
    arrivals_us: Vec<u64>,
}

/// One request in flight; dropping it (after the response, or on any early return) ends it.
pub(super) struct InFlight<'a> {
    recorder: &'a Recorder,
}

impl Default for Recorder {
    fn default() -> Recorder {
        Recorder {
            start: Instant::now(),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            log: Mutex::new(Log::default()),
        }
    }
}

impl Recorder {
    /// A request's head has been read: counts it, notes its arrival and puts it in flight.
    pub(super) fn begin(&self) -> InFlight<'_> {
        let now = self.in_flight.fetch_add(1, SeqCst) + 1;
        self.max_in_flight.fetch_max(now, SeqCst);
        let mut log = lock(&self.log);
        log.requests += 1;
        if log.arrivals_us.len() < MAX_ARRIVALS {
            // Read the clock under the lock, so that the times are in order.
            log.arrivals_us
                .push(self.start.elapsed().as_micros() as u64);
        }
        InFlight { recorder: self }
    }

    pub(super) fn snapshot(&self) -> Stats {
        let log = lock(&self.log);
        Stats {
            requests: log.requests,
            in_flight: self.in_flight.load(SeqCst),
            max_in_flight: self.max_in_flight.load(SeqCst),
            statuses: log.statuses.clone(),
            arrivals_ms: log
                .arrivals_us
                .iter()
                .map(|&us| us as f64 / 1000.0)
                .collect(),
        }
    }
}

impl InFlight<'_> {
    /// The status of the reply chosen for this request.
    pub(super) fn answered(&self, status: u16) {
        *lock(&self.recorder.log).statuses.entry(status).or_default() += 1;
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.recorder.in_flight.fetch_sub(1, SeqCst);
    }
}
