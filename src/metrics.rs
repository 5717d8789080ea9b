//! Prometheus metrics: counters and histograms that workers update with atomics, and an optional
//! endpoint on a loopback address (tiny_http, on a thread of its own) that renders them in the
//! text exposition format, with the queue depth read from the database at scrape time.
//!
//! Architecture invariant: a scrape never blocks a worker. Workers only touch atomics and one
//! short mutex around the attempt counters; the endpoint reads the database on its own
//! connection, and the store's readers never block its writers.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::job::{Outcome, Report, State};
use crate::hosts::Hosts;
use crate::lock;
use crate::store::{Queue, Watch};

/// Upper bounds, in seconds, of the latency histograms' buckets.
const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

#[derive(Debug, Default)]
struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_ms: AtomicU64,
}

impl Histogram {
    fn observe(&self, ms: i64) {
        let ms = ms.max(0) as u64;
        let secs = ms as f64 / 1000.0;
        if let Some(i) = BUCKETS.iter().position(|&b| secs <= b) {
            self.counts[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_ms.fetch_add(ms, Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, count) in BUCKETS.iter().zip(&self.counts) {
            cumulative += count.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_ms.load(Relaxed) as f64 / 1000.0
        );
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// What the daemon has done since it started.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Attempts by (outcome, reason); the reason is "none" for successes.
    attempts: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    bytes_stored: AtomicU64,
    ttfb: Histogram,
    total: Histogram,
    workers: AtomicUsize,
    busy: AtomicUsize,
    busy_ms: AtomicU64,
    /// The daemon's politeness, for its gauges (hosts paused, hosts narrowed).
    hosts: OnceLock<Arc<Hosts>>,
}

impl Metrics {
    pub fn new(workers: usize) -> Metrics {
        let metrics = Metrics::default();
        metrics.workers.store(workers, Relaxed);
        metrics
    }

    /// Reports the politeness of `hosts` at every scrape.
    pub fn watch_hosts(&self, hosts: Arc<Hosts>) {
        let _ = self.hosts.set(hosts);
    }

    /// Workers holding a job now.
    pub fn busy(&self) -> usize {
        self.busy.load(Relaxed)
    }

    /// A worker took a job in hand.
    pub fn started(&self) {
        self.busy.fetch_add(1, Relaxed);
    }

    /// A worker is done with a job it held for `held`.
    pub fn finished(&self, held: Duration) {
        self.busy.fetch_sub(1, Relaxed);
        self.busy_ms.fetch_add(held.as_millis() as u64, Relaxed);
    }

    /// Counts a recorded attempt.
    pub fn record(&self, report: &Report, total_ms: i64) {
        if !report.outcome.was_tried() {
            return;
        }
        let reason = report.reason.map_or("none", |r| r.label());
        *lock(&self.attempts)
            .entry((report.outcome.name(), reason))
            .or_default() += 1;
        if let Outcome::Done(stored) = &report.outcome {
            self.bytes_stored.fetch_add(stored.bytes, Relaxed);
        }
        if let Some(ttfb) = report.ttfb_ms {
            self.ttfb.observe(ttfb);
        }
        self.total.observe(total_ms);
    }

    /// The exposition text; `depth` is the number of jobs per state, read by the caller.
    pub fn render(&self, depth: &[(State, i64)]) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str(
            "# HELP jobd_attempts_total Attempts recorded, by outcome and failure reason.\n\
             # TYPE jobd_attempts_total counter\n",
        );
        for ((outcome, reason), n) in lock(&self.attempts).iter() {
            let _ = writeln!(
                out,
                "jobd_attempts_total{{outcome=\"{outcome}\",reason=\"{reason}\"}} {n}"
            );
        }
        let gauges = [
            (
                "jobd_stored_bytes_total",
                "counter",
                "Body bytes of jobs recorded done.",
                self.bytes_stored.load(Relaxed) as f64,
            ),
            (
                "jobd_workers",
                "gauge",
                "Worker threads.",
                self.workers.load(Relaxed) as f64,
            ),
            (
                "jobd_workers_busy",
                "gauge",
                "Workers holding a job right now.",
                self.busy.load(Relaxed) as f64,
            ),
            (
                "jobd_worker_busy_seconds_total",
                "counter",
                "Time workers spent holding jobs; its rate over jobd_workers is utilisation.",
                self.busy_ms.load(Relaxed) as f64 / 1000.0,
            ),
        ];
        let (paused, narrowed) = self.hosts.get().map_or((0, 0), |h| h.gauges());
        let hosts = [
            (
                "jobd_hosts_paused",
                "gauge",
                "Hosts this daemon sends nothing now: a Retry-After, or slow-downs at one request at a time.",
                paused as f64,
            ),
            (
                "jobd_hosts_narrowed",
                "gauge",
                "Hosts whose limit of requests in flight a 429 or 503 has set for the fleet.",
                narrowed as f64,
            ),
        ];
        for (name, kind, help, value) in gauges.into_iter().chain(hosts) {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
        out.push_str("# HELP jobd_jobs Jobs in the database, by state.\n# TYPE jobd_jobs gauge\n");
        for (state, n) in depth {
            let _ = writeln!(out, "jobd_jobs{{state=\"{state}\"}} {n}");
        }
        self.ttfb.render(
            &mut out,
            "jobd_ttfb_seconds",
            "Time from sending a request to its response headers.",
        );
        self.total.render(
            &mut out,
            "jobd_attempt_seconds",
            "Time from claim to recorded outcome, per attempt.",
        );
        out
    }
}

/// Serves `/metrics` on `addr` from a thread of its own. Returns the bound address (useful with
/// port 0).
pub fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    queue: &dyn Queue,
) -> Result<SocketAddr, ServeError> {
    let mut watch: Box<dyn Watch> = queue.watch().map_err(ServeError::Watch)?;
    let server =
        tiny_http::Server::http(addr).map_err(|source| ServeError::Listen { addr, source })?;
    let bound = server
        .server_addr()
        .to_ip()
        .ok_or(ServeError::NotIp { addr })?;
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for request in server.incoming_requests() {
                let response = if request.url() == "/metrics" {
                    let depth = watch.counts().unwrap_or_else(|e| {
                        log::warn!("metrics: cannot count jobs: {e}");
                        Vec::new()
                    });
                    let content_type = tiny_http::Header::from_bytes(
                        "Content-Type",
                        "text/plain; version=0.0.4; charset=utf-8",
                    )
                    .expect("a valid header");
                    tiny_http::Response::from_string(metrics.render(&depth))
                        .with_header(content_type)
                } else {
                    tiny_http::Response::from_string("not found; try /metrics\n")
                        .with_status_code(404)
                };
                if let Err(e) = request.respond(response) {
                    log::debug!("metrics: cannot answer a scrape: {e}");
                }
            }
        })
        .map_err(ServeError::Thread)?;
    Ok(bound)
}

/// Why the metrics endpoint could not be served. `Display` is the whole line a user reads,
/// causes included; `source()` hands the cause to code that wants it.
#[derive(Debug)]
pub enum ServeError {
    /// The endpoint's own connection to the queue could not be opened.
    Watch(crate::store::StoreError),
    /// `addr` could not be listened on: typically the port is taken.
    Listen {
        addr: SocketAddr,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The listener came up on something other than an IP address.
    NotIp { addr: SocketAddr },
    /// The thread that answers scrapes could not be started.
    Thread(std::io::Error),
}

impl ServeError {
    /// True when another process holds the port (a second daemon with the same config, mostly).
    fn port_taken(&self) -> bool {
        let ServeError::Listen { source, .. } = self else {
            return false;
        };
        source
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::AddrInUse)
    }
}

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServeError::Watch(e) => write!(f, "cannot serve metrics: {e}"),
            ServeError::Listen { addr, .. } if self.port_taken() => write!(
                f,
                "cannot serve metrics on {addr}: the port is taken (another jobd with this \
                 config?); give each daemon its own [metrics] listen port, or leave listen unset \
                 for all but one"
            ),
            ServeError::Listen { addr, source } => {
                write!(f, "cannot serve metrics on {addr}: {source}")
            }
            ServeError::NotIp { addr } => write!(f, "metrics endpoint on {addr} has no IP address"),
            ServeError::Thread(e) => write!(f, "cannot start the metrics thread: {e}"),
        }
    }
}

impl std::error::Error for ServeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ServeError::Watch(e) => Some(e),
            ServeError::Listen { source, .. } => Some(source.as_ref()),
            ServeError::NotIp { .. } => None,
            ServeError::Thread(e) => Some(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::Reason;
    use crate::job::Stored;

    #[test]
    fn renders_counters_gauges_and_cumulative_histograms() {
        let m = Metrics::new(4);
        let mut done = Report::new(Outcome::Done(Stored {
            mime: "image/png",
            sha256: String::new(),
            blob_path: String::new(),
            bytes: 1234,
            width: 1,
            height: 1,
            validation: crate::validate::Level::Structure,
            validation_note: None,
        }));
        done.ttfb_ms = Some(40);
        m.record(&done, 80);
        let mut failed = Report::new(Outcome::Failed { error: "x".into() });
        failed.reason = Some(Reason::Http(404));
        m.record(&failed, 3_000);
        m.started();
        let hosts = Arc::new(crate::hosts::Hosts::new(16, 1_000, 60_000));
        hosts.heard("paused:80", crate::hosts::Signal::PauseUntil(i64::MAX));
        // Out of slow start with two requests in flight, then narrowed by a 503.
        let first = hosts.enter("busy:80").unwrap();
        hosts.heard("busy:80", crate::hosts::Signal::Fine);
        let second = hosts.enter("busy:80").unwrap();
        hosts.heard("busy:80", crate::hosts::Signal::SlowDown);
        drop((first, second));
        m.watch_hosts(hosts);
        let text = m.render(&[(State::Queued, 7)]);
        for line in [
            "jobd_hosts_paused 1",
            "jobd_hosts_narrowed 1",
            "jobd_attempts_total{outcome=\"done\",reason=\"none\"} 1",
            "jobd_attempts_total{outcome=\"failed\",reason=\"http_4xx\"} 1",
            "jobd_stored_bytes_total 1234",
            "jobd_workers 4",
            "jobd_workers_busy 1",
            "jobd_jobs{state=\"queued\"} 7",
            "jobd_ttfb_seconds_bucket{le=\"0.025\"} 0",
            "jobd_ttfb_seconds_bucket{le=\"0.05\"} 1",
            "jobd_attempt_seconds_bucket{le=\"0.1\"} 1",
            "jobd_attempt_seconds_bucket{le=\"5\"} 2",
            "jobd_attempt_seconds_bucket{le=\"+Inf\"} 2",
            "jobd_attempt_seconds_sum 3.08",
            "jobd_attempt_seconds_count 2",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }
}
