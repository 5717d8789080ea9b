//! Politeness that the daemons on one queue share (issue 14): what a claim takes besides its
//! size, the changes a daemon records about a host, and what the `hosts` table and the jobs
//! say about each host. The SQL is in each backend's `hosts.rs`.

/// What a claim takes besides who claims and how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimOptions<'a> {
    /// The lease of each claimed job, in ms from now.
    pub lease_ms: i64,
    /// Hosts whose jobs this daemon leaves to the others on the queue (its part of their limit
    /// is 0: [`crate::hosts::Fleet::part`]). The claim passes over them as over a paused host's.
    pub pass_over: &'a [String],
}

impl ClaimOptions<'_> {
    /// A claim with this lease that passes over only the paused hosts.
    #[cfg_attr(
        product_only,
        expect(
            dead_code,
            reason = "the daemon's claims always say which hosts it leaves to others; tests and \
                      the benchmark harness claim as a daemon alone"
        )
    )]
    pub fn lease(lease_ms: i64) -> ClaimOptions<'static> {
        ClaimOptions {
            lease_ms,
            pass_over: &[],
        }
    }
}

/// What a daemon learnt about a host, for every daemon on the queue ([`super::Queue::record_host`]).
///
/// A host's `max_in_flight` is the fleet's limit: the requests to it in flight from all the
/// daemons together, which share it out ([`crate::hosts::Fleet::part`]). Several daemons may
/// write at once, and each change is one statement that keeps the cautious side of a race: a
/// limit only narrows to the lower of the two, a pause only extends, and a widening applies only
/// while the limit is still the one the daemon widened from (else it learns the newer one at its
/// next look).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostChange {
    /// A 429 or 503 narrowed the fleet's limit for the host to this (a slow-down).
    Narrowed { max_in_flight: u32 },
    /// A 429 or 503 paused the host until this time (Unix ms, this machine's clock), its
    /// `strikes`-th pause in a row (a slow-down), and narrowed its limit to `max_in_flight` if
    /// given.
    Paused {
        until: i64,
        strikes: u32,
        max_in_flight: Option<u32>,
    },
    /// Successes widened the limit from `from` to `to`, or back to each daemon's ceiling when
    /// None. The strikes start over.
    Widened { from: u32, to: Option<u32> },
}

/// What the daemons on a queue know together ([`super::Queue::fleet`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetState {
    /// The names of the live daemons (beating within [`super::LIVE_WITHIN_MS`]), in order.
    pub daemons: Vec<String>,
    /// The hosts with a limit or a pause now.
    pub hosts: Vec<HostState>,
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
