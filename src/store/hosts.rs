//! Politeness that the daemons on one queue share (issue 14): what a claim takes besides its
//! size, the changes a daemon records about a host, and what the `hosts` table and the jobs
//! say about each host. The SQL is in each backend's `hosts.rs`.

/// What a claim takes besides who claims and how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimOptions {
    /// The lease of each claimed job, in ms from now.
    pub lease_ms: i64,
    /// The daemon's `max_per_host`: the limit of a host whose `hosts.max_in_flight` is NULL.
    /// A host with that many jobs running (by every daemon) is skipped. None: no ceiling, so
    /// only a limit the `hosts` table sets holds a host back.
    pub per_host: Option<u32>,
}

impl ClaimOptions {
    /// A claim with this lease and no per-host ceiling.
    pub fn lease(lease_ms: i64) -> ClaimOptions {
        ClaimOptions {
            lease_ms,
            per_host: None,
        }
    }
}

/// What a daemon learnt about a host, for every daemon on the queue ([`super::Queue::record_host`]).
///
/// Several daemons may write at once: each change is one upsert. A pause only ever extends
/// (`paused_until` becomes the later of the two, strikes the larger); a limit is the newest
/// written, whichever daemon wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(
    product_only,
    expect(
        dead_code,
        reason = "the daemon shares only pauses for now: a shared limit needs a claim that counts \
                  requests in flight, not running rows (download.rs); the contract tests keep \
                  both backends' SQL for limits right meanwhile"
    )
)]
pub enum HostChange {
    /// A 429 or 503 narrowed the host's limit of requests in flight to this (a slow-down).
    Narrowed { max_in_flight: u32 },
    /// A 429 or 503 paused the host until this time (Unix ms, this machine's clock), its
    /// `strikes`-th pause in a row (a slow-down).
    Paused { until: i64, strikes: u32 },
    /// Successes widened the limit again: to this many, or None when it is back at the
    /// ceiling. The strikes start over.
    Widened { max_in_flight: Option<u32> },
}

/// A host with a limit or a pause, as the `hosts` table holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostState {
    pub host: String,
    /// None: the daemon's ceiling.
    pub max_in_flight: Option<u32>,
    /// The end of its pause (Unix ms, this machine's clock), if it is paused now.
    pub paused_until: Option<i64>,
    pub strikes: u32,
}

/// A row of `jobctl hosts`: a host that has queued or running jobs or a row in `hosts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRow {
    pub host: String,
    pub queued: i64,
    pub running: i64,
    /// Jobs of the host that ended done, and failed, within the last [`HOSTS_WINDOW_MINUTES`].
    pub done_recently: i64,
    pub failed_recently: i64,
    /// Attempts answered 429 or 503 within the last [`HOSTS_WINDOW_MINUTES`].
    pub slow_downs_recently: i64,
    /// The fleet's limit for the host; None: the daemons' ceiling.
    pub max_in_flight: Option<i64>,
    /// The end of its pause (Unix ms, this machine's clock), if it is paused now.
    pub paused_until: Option<i64>,
}

/// The window of `jobctl hosts`' recent figures, in minutes.
pub const HOSTS_WINDOW_MINUTES: i64 = 15;
