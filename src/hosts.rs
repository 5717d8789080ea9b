//! Politeness towards hosts, within one daemon: each host gets a number of requests it may have
//! in flight that adapts to what it answers (AIMD, as polite crawlers do), between 1 and
//! `max_per_host`, and a pause when it asks for one.
//!
//! - A host starts at one request in flight (slow start). Its first success status opens it to
//!   the ceiling ([`Permit::accepted`]), and each other answer that is not a slow-down lets one
//!   more in: a host that answers 503 to everything never gets more than one request at once,
//!   and a good one costs one time to first byte.
//! - After the first slow-down, an answer that does not ask to slow down counts as a success.
//!   After as many successes as the limit, the limit grows by one, up to the ceiling (additive
//!   increase).
//! - A 429 or 503 without Retry-After halves the limit, not below 1 (multiplicative decrease).
//!   The requests already in flight when it fell are sent under the old limit: their answers do
//!   not halve it again. At a limit of 1, a second such answer in a row pauses the host instead,
//!   for a time that doubles with every one in a row and resets with a success.
//! - [`SUSTAINED`] slow-downs in a row with no success between them (a host that answers 503 to
//!   everything) take the limit straight to 1 and pause the host.
//! - Retry-After is the server's explicit word: the host pauses until then.
//! - With `max_rate_per_host`, requests to a host start no closer together than its interval (a
//!   Crawl-delay). A worker waits for its host's turn only if it comes within [`SHORT_WAIT_MS`];
//!   otherwise its job goes back to the queue untried until then, so a slow host holds no worker
//!   while other hosts have work.
//!
//! A single 503 from a CDN therefore costs one job a retry and the host a little concurrency for a
//! while, not every other job's turn.
//!
//! Several daemons on one queue share what they learn through the `hosts` table: a pause holds
//! back every daemon's claims, and after a slow-down a host's limit is the fleet's. Each daemon
//! then has its part of it in flight ([`Fleet::part`]): the parts add up to the limit, and a
//! daemon whose part is 0 leaves the host's jobs to the others. A narrowing is written at once;
//! widenings, and what the others wrote, are exchanged with every heartbeat
//! (`crate::heartbeat`).

use std::collections::{HashMap, HashSet};
use std::sync::{Condvar, Mutex};

use url::Url;

use crate::job::now_ms;
use crate::lock;
use crate::store::HostState;

/// What an answer says about its host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Any answer that does not ask to slow down, errors included.
    Fine,
    /// 429 or 503 without Retry-After: too much, slow down.
    SlowDown,
    /// Retry-After: no request before this time (Unix ms).
    PauseUntil(i64),
}

/// How a host reacted to a [`Signal`]: for the log, and for the other daemons on the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reaction {
    None,
    /// The fleet's limit fell to this many requests at once.
    Narrowed(usize),
    /// Successes raised the fleet's limit to this many requests at once, or back to the ceiling
    /// (None).
    Widened(Option<usize>),
    /// No request before `until` (Unix ms); `strikes` pauses in a row at a limit of 1; `limit`
    /// the fleet's new limit, if the pause came with one.
    Paused {
        until: i64,
        strikes: u32,
        limit: Option<usize>,
    },
}

/// The daemons working on the queue, as this one last read them: how many, and this one's rank
/// among them by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fleet {
    pub daemons: usize,
    pub rank: usize,
}

impl Fleet {
    /// A daemon on its own.
    pub const ALONE: Fleet = Fleet {
        daemons: 1,
        rank: 0,
    };

    /// The fleet of the live daemons `names` as daemon `me` sees it (counting itself, whether
    /// or not its own heartbeat is in yet).
    pub fn among(names: &[String], me: &str) -> Fleet {
        let mut names: Vec<&str> = names.iter().map(String::as_str).collect();
        names.push(me);
        names.sort_unstable();
        names.dedup();
        Fleet {
            daemons: names.len(),
            rank: names.binary_search(&me).unwrap_or(0),
        }
    }

    /// This daemon's part of a fleet's limit of `limit` requests in flight to `host`. The parts
    /// of all the daemons add up to `limit`: each has `limit / daemons`, and the rest goes one
    /// each to the daemons whose turn comes first in a rotation that starts at a place set by
    /// the host's name, so that the hosts with small limits spread over the fleet.
    pub fn part(&self, host: &str, limit: usize) -> usize {
        let n = self.daemons.max(1);
        let start = (spread(host) % n as u64) as usize;
        let turn = (self.rank % n + start) % n;
        limit / n + usize::from(turn < limit % n)
    }
}

/// A hash of a host's name that every daemon computes alike, whatever its build (FNV-1a).
fn spread(host: &str) -> u64 {
    host.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Slow-downs in a row, with no success between them, after which a host goes straight to a
/// limit of 1 and a pause: a host that answers 503 to everything is not a one-off.
const SUSTAINED: u32 = 3;

/// How long a host must be idle before it is forgotten (and starts slow again).
const IDLE_SPELL_MS: i64 = 10_000;

/// The longest a worker waits for its host's next turn under a rate ceiling.
pub const SHORT_WAIT_MS: i64 = 250;

#[derive(Debug)]
pub struct Hosts {
    ceiling: usize,
    /// Whether a host starts at one request in flight (always, but in tests of what follows).
    slow_start: bool,
    /// The least time between two requests' starts to one host (ms); None: no rate ceiling.
    interval_ms: Option<i64>,
    /// The first pause of a host that keeps asking to slow down at a limit of 1, and the most.
    pause_ms: (i64, i64),
    state: Mutex<Table>,
    freed: Condvar,
    /// When idle hosts back to normal were last forgotten (Unix ms).
    swept: std::sync::atomic::AtomicI64,
}

#[derive(Debug, Default)]
struct Table {
    hosts: HashMap<String, Host>,
    /// None until the first read of the fleet: alone.
    fleet: Option<Fleet>,
    /// Requests waiting for a slot: only then is a freed slot worth a wake-up call (a system
    /// call, twice per request otherwise).
    waiting: usize,
}

impl Table {
    fn fleet(&self) -> Fleet {
        self.fleet.unwrap_or(Fleet::ALONE)
    }
}

#[derive(Debug)]
struct Host {
    active: usize,
    /// Requests allowed in flight: this daemon's, 1 to the ceiling; or once `shared`, the
    /// fleet's, 1 to the ceiling times the daemons.
    limit: usize,
    /// The limit is the fleet's, as a slow-down set it: this daemon has its part in flight.
    shared: bool,
    /// The fleet's limit as the `hosts` table last held it, to this daemon's knowledge (None:
    /// no limit): what a widening widens from.
    known: Option<usize>,
    /// When this daemon last changed the limit (Unix ms): a read of the table begun before
    /// that does not undo it.
    changed_at: i64,
    /// Still in slow start: no success status and no slow-down seen since the host was last idle;
    /// each answer raises the limit by one.
    slow_start: bool,
    /// Successes since the limit last changed.
    successes: usize,
    /// Answers still due from requests sent before the limit last fell: they say nothing new.
    sent_before_fall: usize,
    /// Pauses in a row at a limit of 1.
    strikes: u32,
    /// Slow-downs since the last success, stale ones included.
    slow_streak: u32,
    /// Unix ms before which no new request goes to this host.
    paused_until: i64,
    /// Under a rate ceiling: the earliest start of the next request (Unix ms).
    next_start: i64,
    /// When its last request in flight ended (Unix ms).
    idle_since: i64,
}

/// A slot for one request to a host; [`Permit::answered`] or dropping it frees the slot.
#[derive(Debug)]
pub struct Permit<'a> {
    hosts: &'a Hosts,
    key: String,
    /// Freed already, by `answered`.
    freed: bool,
}

/// The politeness key of a URL: host and port (`example.org:443`).
pub fn key(url: &Url) -> String {
    format!(
        "{}:{}",
        url.host_str().unwrap_or(""),
        url.port_or_known_default().unwrap_or(0)
    )
}

impl Hosts {
    /// `ceiling` is `max_per_host`; a host that keeps asking to slow down at a limit of 1 pauses
    /// for `first_pause_ms`, doubling each time up to `max_pause_ms`.
    pub fn new(ceiling: usize, first_pause_ms: u64, max_pause_ms: u64) -> Hosts {
        let first = i64::try_from(first_pause_ms.max(1)).unwrap_or(i64::MAX);
        let most = i64::try_from(max_pause_ms).unwrap_or(i64::MAX).max(first);
        Hosts {
            ceiling: ceiling.max(1),
            slow_start: true,
            interval_ms: None,
            pause_ms: (first, most),
            state: Mutex::new(Table::default()),
            freed: Condvar::new(),
            swept: std::sync::atomic::AtomicI64::new(0),
        }
    }

    /// At most `per_second` requests a second to any one host (0: no ceiling).
    pub fn with_rate(mut self, per_second: f64) -> Hosts {
        self.interval_ms =
            (per_second > 0.0).then(|| ((1_000.0 / per_second).ceil() as i64).max(1));
        self
    }

    fn fresh(&self) -> Host {
        let slow_start = self.slow_start && self.ceiling > 1;
        Host {
            active: 0,
            limit: if slow_start { 1 } else { self.ceiling },
            shared: false,
            known: None,
            changed_at: 0,
            slow_start,
            successes: 0,
            sent_before_fall: 0,
            strikes: 0,
            slow_streak: 0,
            paused_until: 0,
            next_start: 0,
            idle_since: now_ms(),
        }
    }

    /// The fleet, and the host's entry, made fresh if it has none.
    fn host<'t>(&self, state: &'t mut Table, key: &str) -> (Fleet, &'t mut Host) {
        let fleet = state.fleet();
        let host = state
            .hosts
            .entry(key.to_string())
            .or_insert_with(|| self.fresh());
        (fleet, host)
    }

    /// Waits for a free slot on the host, within its current limit, and under a rate ceiling for
    /// its turn if that comes within [`SHORT_WAIT_MS`]. Returns `Err(until)` at once if the host
    /// is paused, or its turn is further away, so that the caller can give its job back until
    /// then; and `Err(now)` if this daemon's part of the fleet's limit is 0.
    pub fn enter(&self, key: &str) -> Result<Permit<'_>, i64> {
        let mut state = lock(&self.state);
        self.sweep(&mut state);
        loop {
            let (fleet, host) = self.host(&mut state, key);
            let now = now_ms();
            if host.paused_until > now {
                return Err(host.paused_until);
            }
            let allowed = host.allowed(key, fleet);
            if allowed == 0 {
                // The other daemons have the whole limit: the job goes back for them.
                return Err(now);
            }
            if host.next_start > now {
                let turn = host.next_start;
                if turn - now > SHORT_WAIT_MS {
                    return Err(turn);
                }
                drop(state);
                std::thread::sleep(std::time::Duration::from_millis((turn - now) as u64));
                state = lock(&self.state);
                continue;
            }
            if host.active < allowed {
                host.active += 1;
                if let Some(interval) = self.interval_ms {
                    host.next_start = now + interval;
                }
                return Ok(Permit {
                    hosts: self,
                    key: key.to_string(),
                    freed: false,
                });
            }
            // Every request holding a slot ends by its deadline, so this wait is bounded.
            state.waiting += 1;
            state = self
                .freed
                .wait(state)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            state.waiting -= 1;
        }
    }

    /// A slot on the host for one more request right now, if its limit (or this daemon's part of
    /// the fleet's) has one free, it is not paused and its turn under a rate ceiling has come;
    /// None otherwise, without waiting. For requests that are worth sending only at once: a
    /// range of a body another request is already fetching (`crate::download`).
    pub fn try_enter(&self, key: &str) -> Option<Permit<'_>> {
        let mut state = lock(&self.state);
        let (fleet, host) = self.host(&mut state, key);
        let now = now_ms();
        if host.paused_until > now || host.next_start > now || host.active >= host.allowed(key, fleet)
        {
            return None;
        }
        host.active += 1;
        if let Some(interval) = self.interval_ms {
            host.next_start = now + interval;
        }
        Some(Permit {
            hosts: self,
            key: key.to_string(),
            freed: false,
        })
    }

    /// Learns from an answer of the host whose permit is gone.
    #[cfg(test)]
    pub fn heard(&self, key: &str, signal: Signal) -> Reaction {
        self.learn(key, signal, false)
    }

    /// Learns from an answer of the host, freeing its request's slot first if `free`, under one
    /// lock: a request waiting for that slot sees the pause this answer calls for, not the slot.
    fn learn(&self, key: &str, signal: Signal, free: bool) -> Reaction {
        let mut state = lock(&self.state);
        let (fleet, host) = self.host(&mut state, key);
        let now = now_ms();
        if free {
            host.active = host.active.saturating_sub(1);
            if host.active == 0 {
                host.idle_since = now;
            }
        }
        let stale = host.sent_before_fall > 0;
        host.sent_before_fall = host.sent_before_fall.saturating_sub(1);
        if signal == Signal::SlowDown {
            host.slow_start = false;
        }
        let reaction = match signal {
            Signal::PauseUntil(until) => {
                host.paused_until = host.paused_until.max(until);
                Reaction::Paused {
                    until: host.paused_until,
                    strikes: host.strikes,
                    limit: None,
                }
            }
            Signal::Fine if host.slow_start => {
                host.strikes = 0;
                host.slow_streak = 0;
                host.limit = (host.limit + 1).min(self.ceiling);
                host.slow_start = host.limit < self.ceiling;
                Reaction::None
            }
            Signal::Fine => {
                host.strikes = 0;
                host.slow_streak = 0;
                host.successes += 1;
                let most = self.most(host, fleet);
                if host.successes >= host.allowed(key, fleet).max(1) && host.limit < most {
                    host.limit += 1;
                    host.successes = 0;
                    host.changed_at = now;
                    if host.shared && host.limit >= most {
                        // Back at every daemon's ceiling: the fleet's limit is lifted.
                        host.shared = false;
                        host.limit = self.ceiling;
                    }
                    Reaction::Widened(host.shared.then_some(host.limit))
                } else {
                    Reaction::None
                }
            }
            Signal::SlowDown if host.slow_streak + 1 >= SUSTAINED && host.limit > 1 => {
                // Nothing but slow-downs, however many were in flight: not a hiccup.
                host.slow_streak += 1;
                self.pause(host)
            }
            Signal::SlowDown if stale => {
                host.slow_streak += 1;
                Reaction::None
            }
            Signal::SlowDown if host.limit > 1 => {
                host.slow_streak += 1;
                // The first slow-down makes the limit the fleet's: half of what the daemons had
                // in flight at most, if each had as many as this one.
                let before = if host.shared {
                    host.limit
                } else {
                    host.limit * fleet.daemons
                };
                host.limit = (before / 2).max(1);
                host.shared = true;
                host.known = Some(host.limit);
                host.changed_at = now;
                host.successes = 0;
                host.sent_before_fall = host.active;
                Reaction::Narrowed(host.limit)
            }
            // At a limit of 1, a lone slow-down is a hiccup; one more in a row is not.
            Signal::SlowDown => {
                host.slow_streak += 1;
                if host.slow_streak >= 2 {
                    self.pause(host)
                } else {
                    Reaction::None
                }
            }
        };
        if self.settled(host) {
            state.hosts.remove(key);
        }
        // A larger limit may let a waiting request in.
        self.wake_waiting(state);
        reaction
    }

    /// The most the host's limit may grow to: the ceiling, or once the limit is the fleet's,
    /// the ceiling of every daemon.
    fn most(&self, host: &Host, fleet: Fleet) -> usize {
        if host.shared {
            self.ceiling * fleet.daemons
        } else {
            self.ceiling
        }
    }

    /// Pauses a host that keeps asking to slow down: at a limit of 1 for the whole fleet, for
    /// the first pause, doubling with each one in a row, up to the most.
    fn pause(&self, host: &mut Host) -> Reaction {
        let (first, most) = self.pause_ms;
        let pause = first
            .saturating_mul(1i64 << host.strikes.min(32))
            .min(most);
        let now = now_ms();
        host.limit = 1;
        host.shared = true;
        host.known = Some(1);
        host.changed_at = now;
        host.successes = 0;
        host.strikes += 1;
        host.paused_until = host.paused_until.max(now + pause);
        host.sent_before_fall = host.active;
        Reaction::Paused {
            until: host.paused_until,
            strikes: host.strikes,
            limit: Some(1),
        }
    }

    /// Whether a host has been idle for [`IDLE_SPELL_MS`] and is back to normal (at the ceiling,
    /// or in slow start, where a fresh entry would be too, with no limit of the fleet's): then
    /// it is forgotten, so that the map holds only hosts in use lately, paused, or with a limit.
    /// A host forgotten starts slow again, as TCP does after an idle spell; one that is only
    /// between two requests keeps its limit.
    fn settled(&self, host: &Host) -> bool {
        let now = now_ms();
        host.active == 0
            && now - host.idle_since >= IDLE_SPELL_MS
            && host.paused_until <= now
            && host.next_start <= now
            && (host.limit == self.ceiling || host.slow_start)
            && !host.shared
            && host.known.is_none()
            && host.strikes == 0
            && host.slow_streak == 0
    }

    /// Forgets the settled hosts, at most once an idle spell.
    fn sweep(&self, state: &mut Table) {
        let now = now_ms();
        let swept = self.swept.load(std::sync::atomic::Ordering::Relaxed);
        if now - swept >= IDLE_SPELL_MS {
            self.swept.store(now, std::sync::atomic::Ordering::Relaxed);
            state.hosts.retain(|_, host| !self.settled(host));
        }
    }

    /// The widenings this daemon has not told the fleet yet: each host's limit in the `hosts`
    /// table as this daemon last knew it, and its limit now (None: back at the ceiling).
    pub fn widenings(&self) -> Vec<(String, usize, Option<usize>)> {
        let state = lock(&self.state);
        state
            .hosts
            .iter()
            .filter_map(|(key, host)| {
                let known = host.known?;
                let now = host.shared.then_some(host.limit);
                (now.is_none_or(|limit| limit > known)).then(|| (key.clone(), known, now))
            })
            .collect()
    }

    /// Takes in what the daemons on the queue know, as read from the database at `read_at`
    /// (Unix ms): how many are alive and this one's rank, and each host's pause (the later of
    /// theirs and ours) and limit (the table's, unless this daemon changed it since the read
    /// began). A host with no limit in the table has none here either.
    pub fn adopt(&self, fleet: Fleet, known: &[HostState], read_at: i64) {
        let mut state = lock(&self.state);
        state.fleet = Some(fleet);
        let mut listed = HashSet::with_capacity(known.len());
        for row in known {
            listed.insert(row.host.as_str());
            let (_, host) = self.host(&mut state, &row.host);
            if let Some(until) = row.paused_until {
                host.paused_until = host.paused_until.max(until);
            }
            if host.changed_at >= read_at {
                continue;
            }
            match row.max_in_flight {
                Some(limit) => {
                    let limit = (limit as usize).max(1);
                    if !host.shared || host.limit != limit {
                        host.successes = 0;
                    }
                    host.limit = limit;
                    host.shared = true;
                    host.slow_start = false;
                    host.known = Some(limit);
                }
                None => self.lift(host),
            }
        }
        for (key, host) in &mut state.hosts {
            if !listed.contains(key.as_str()) && host.changed_at < read_at {
                self.lift(host);
            }
        }
        state.hosts.retain(|_, host| !self.settled(host));
        self.wake_waiting(state);
    }

    /// Lets the requests waiting for a slot look again, if any wait.
    fn wake_waiting(&self, state: std::sync::MutexGuard<'_, Table>) {
        let waiting = state.waiting > 0;
        drop(state);
        if waiting {
            self.freed.notify_all();
        }
    }

    /// The fleet has no limit for the host (any more): this daemon's own ceiling holds.
    fn lift(&self, host: &mut Host) {
        if host.shared {
            host.shared = false;
            host.limit = self.ceiling;
            host.successes = 0;
        }
        host.known = None;
    }

    /// The fleet as this daemon last read it.
    pub fn fleet(&self) -> Fleet {
        lock(&self.state).fleet()
    }

    /// The hosts whose jobs this daemon leaves to the others: its part of their limit is 0.
    pub fn left_to_others(&self) -> Vec<String> {
        let state = lock(&self.state);
        let fleet = state.fleet();
        state
            .hosts
            .iter()
            .filter(|(key, host)| host.allowed(key, fleet) == 0)
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// How many hosts are paused now, and how many have a limit below the ceiling: the politeness
    /// gauges of the metrics.
    pub fn gauges(&self) -> (usize, usize) {
        let now = now_ms();
        let state = lock(&self.state);
        let paused = state
            .hosts
            .values()
            .filter(|h| h.paused_until > now)
            .count();
        let narrowed = state.hosts.values().filter(|h| h.shared).count();
        (paused, narrowed)
    }

    /// Hosts that start at the ceiling: for the tests of what comes after slow start.
    #[cfg(test)]
    fn without_slow_start(mut self) -> Hosts {
        self.slow_start = false;
        self
    }

    /// The host's current limit of requests in flight.
    #[cfg(test)]
    fn limit(&self, key: &str) -> usize {
        lock(&self.state)
            .hosts
            .get(key)
            .map_or(self.ceiling, |h| h.limit)
    }
}

impl Host {
    /// How many requests this daemon may have in flight to the host (`key`): its limit, or its
    /// part of the fleet's.
    fn allowed(&self, key: &str, fleet: Fleet) -> usize {
        if self.shared {
            fleet.part(key, self.limit)
        } else {
            self.limit
        }
    }
}

impl Permit<'_> {
    /// The host accepted the request: a success status, before the body. A host in slow start
    /// has proved that it serves, so its limit goes to the ceiling at once, instead of one more
    /// per whole answer: on a host 150 ms away, with large bodies, that took ten workers half a
    /// second (the seed benchmark ran 1.56x curl's time). A host that refuses everything never
    /// gets here, and so still never has two requests in flight.
    pub fn accepted(&self) {
        let mut state = lock(&self.hosts.state);
        if let Some(host) = state.hosts.get_mut(&self.key) {
            if host.slow_start {
                host.slow_start = false;
                host.limit = host.limit.max(self.hosts.ceiling);
            }
        }
        self.hosts.wake_waiting(state);
    }

    /// The request's answer is in: frees the slot and learns from the answer at once.
    pub fn answered(mut self, signal: Signal) -> Reaction {
        self.freed = true;
        self.hosts.learn(&self.key, signal, true)
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.freed {
            return;
        }
        let mut state = lock(&self.hosts.state);
        if let Some(host) = state.hosts.get_mut(&self.key) {
            host.active -= 1;
            if host.active == 0 {
                host.idle_since = now_ms();
            }
            if self.hosts.settled(host) {
                state.hosts.remove(&self.key);
            }
        }
        self.hosts.wake_waiting(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// Lets an idle spell pass for every host, and has the next request forget the settled ones.
    fn after_an_idle_spell(hosts: &Hosts) {
        for host in lock(&hosts.state).hosts.values_mut() {
            host.idle_since -= IDLE_SPELL_MS;
        }
        hosts.swept.store(0, std::sync::atomic::Ordering::Relaxed);
        drop(hosts.enter("someone-else:80").unwrap());
        let mut state = lock(&hosts.state);
        state.hosts.remove("someone-else:80");
    }

    #[test]
    fn keys_are_host_and_port() {
        let url = |s| Url::parse(s).unwrap();
        assert_eq!(key(&url("https://Example.org/a.png")), "example.org:443");
        assert_eq!(key(&url("http://example.org:8080/")), "example.org:8080");
        assert_eq!(key(&url("http://[::1]/")), "[::1]:80");
    }

    #[test]
    fn no_more_than_the_limit_run_at_once() {
        let hosts = Arc::new(Hosts::new(2, 1_000, 60_000).without_slow_start());
        let (active, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let threads: Vec<_> = (0..6)
            .map(|_| {
                let (hosts, active, peak) = (hosts.clone(), active.clone(), peak.clone());
                std::thread::spawn(move || {
                    let _permit = hosts.enter("h:80").unwrap();
                    let now = active.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    active.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2);
        // Another host is never held up by this one.
        let _a = hosts.enter("h:80").unwrap();
        let _b = hosts.enter("h:80").unwrap();
        assert!(hosts.enter("other:80").is_ok());
    }

    /// A part of a split body goes out only if a slot is free now: it never waits, and never
    /// goes past the limit, slow start's included, or a pause.
    #[test]
    fn try_enter_takes_a_free_slot_or_none_at_once() {
        let hosts = Hosts::new(2, 1_000, 60_000);
        let first = hosts.enter("h:80").unwrap();
        assert!(hosts.try_enter("h:80").is_none(), "slow start: one at a time");
        hosts.heard("h:80", Signal::Fine);
        let second = hosts.try_enter("h:80").expect("the limit is 2 now");
        assert!(hosts.try_enter("h:80").is_none(), "max_per_host is 2");
        drop(second);
        assert!(hosts.try_enter("h:80").is_some());
        drop(first);
        lock(&hosts.state).hosts.get_mut("h:80").unwrap().paused_until = now_ms() + 60_000;
        assert!(hosts.try_enter("h:80").is_none(), "paused");
        let one = Hosts::new(1, 1_000, 60_000);
        let _only = one.enter("h:80").unwrap();
        assert!(one.try_enter("h:80").is_none(), "max_per_host = 1");
    }

    #[test]
    fn a_new_host_gets_one_request_and_one_more_with_each_success() {
        let hosts = Hosts::new(4, 1_000, 60_000);
        let first = hosts.enter("h:80").unwrap();
        assert_eq!(hosts.limit("h:80"), 1);
        // Before any answer, nobody else gets in: a second request would wait for a slot.
        lock(&hosts.state).hosts.get_mut("h:80").unwrap().paused_until = now_ms() + 60_000;
        assert!(hosts.enter("h:80").is_err());
        lock(&hosts.state).hosts.get_mut("h:80").unwrap().paused_until = 0;
        let second_pending = hosts.heard("h:80", Signal::Fine);
        assert_eq!(second_pending, Reaction::None, "slow start is not logged");
        assert_eq!(hosts.limit("h:80"), 2);
        let second = hosts.enter("h:80").unwrap();
        hosts.heard("h:80", Signal::Fine);
        hosts.heard("h:80", Signal::Fine);
        assert_eq!(hosts.limit("h:80"), 4, "the ceiling, after three answers");
        hosts.heard("h:80", Signal::Fine);
        assert_eq!(hosts.limit("h:80"), 4, "never above it");
        drop((first, second));
        assert_eq!(hosts.limit("h:80"), 4, "between two requests: kept");
        after_an_idle_spell(&hosts);
        assert!(lock(&hosts.state).hosts.is_empty(), "idle at the ceiling: forgotten");
        // A host that answers 503 to everything never has two requests in flight: the first
        // answer ends its slow start at one, the second pauses it.
        drop(hosts.enter("bad:80").unwrap());
        assert_eq!(hosts.heard("bad:80", Signal::SlowDown), Reaction::None);
        drop(hosts.enter("bad:80").unwrap());
        assert!(matches!(
            hosts.heard("bad:80", Signal::SlowDown),
            Reaction::Paused { strikes: 1, .. }
        ));
        assert_eq!(hosts.limit("bad:80"), 1);
        assert_eq!(hosts.gauges(), (1, 1));
        // Slow start ends at the first slow-down: from then on the limit grows additively.
        let hosts = Hosts::new(16, 1_000, 60_000);
        let held: Vec<_> = (0..8)
            .map(|i| {
                let permit = hosts.enter("h:80").unwrap();
                if i < 7 {
                    hosts.heard("h:80", Signal::Fine);
                }
                permit
            })
            .collect();
        assert_eq!(hosts.limit("h:80"), 8);
        assert_eq!(hosts.heard("h:80", Signal::SlowDown), Reaction::Narrowed(4));
        drop(held);
        for _ in 0..3 {
            hosts.heard("h:80", Signal::Fine);
        }
        assert_eq!(hosts.limit("h:80"), 4, "additive: four successes at 4 make 5, three do not");
    }

    /// Regression (issue 16): ten workers on a host 150 ms away waited half a second for slow
    /// start to open it one whole answer at a time.
    #[test]
    fn a_success_status_opens_a_new_host_to_the_ceiling_at_once() {
        let hosts = Hosts::new(10, 1_000, 60_000);
        let first = hosts.enter("h:80").unwrap();
        assert_eq!(hosts.limit("h:80"), 1);
        assert!(hosts.try_enter("h:80").is_none());
        first.accepted();
        assert_eq!(hosts.limit("h:80"), 10, "the headers are in: the body may take its time");
        let others: Vec<_> = (0..9).map_while(|_| hosts.try_enter("h:80")).collect();
        assert_eq!(others.len(), 9);
        assert!(hosts.try_enter("h:80").is_none(), "never above the ceiling");
        // Out of slow start: a whole answer counts as one success of the additive increase.
        assert_eq!(first.answered(Signal::Fine), Reaction::None);
        drop(others);
        assert_eq!(hosts.limit("h:80"), 10);
        // Accepted again later, in the additive phase: nothing changes.
        let hosts = Hosts::new(8, 1_000, 60_000).without_slow_start();
        let permit = hosts.enter("h:80").unwrap();
        assert_eq!(hosts.heard("h:80", Signal::SlowDown), Reaction::Narrowed(4));
        permit.accepted();
        assert_eq!(hosts.limit("h:80"), 4);
    }

    #[test]
    fn a_slow_down_halves_the_limit_and_successes_win_it_back_one_at_a_time() {
        let hosts = Hosts::new(8, 1_000, 60_000).without_slow_start();
        drop(hosts.enter("h:80").unwrap());
        assert_eq!(hosts.heard("h:80", Signal::SlowDown), Reaction::Narrowed(4));
        assert_eq!(hosts.limit("h:80"), 4);
        assert!(hosts.enter("h:80").is_ok(), "a narrower host is not paused");
        // Four successes at a limit of 4 make it 5; five more make it 6.
        for _ in 0..3 {
            assert_eq!(hosts.heard("h:80", Signal::Fine), Reaction::None);
        }
        assert_eq!(hosts.heard("h:80", Signal::Fine), Reaction::Widened(Some(5)));
        assert_eq!(hosts.limit("h:80"), 5);
        for _ in 0..5 {
            hosts.heard("h:80", Signal::Fine);
        }
        assert_eq!(hosts.limit("h:80"), 6);
        for _ in 0..100 {
            hosts.heard("h:80", Signal::Fine);
        }
        assert_eq!(hosts.limit("h:80"), 8, "never above the ceiling");
        after_an_idle_spell(&hosts);
        assert_eq!(lock(&hosts.state).hosts.len(), 1, "the table still has its limit");
        hosts.adopt(Fleet::ALONE, &[], now_ms() + 1);
        after_an_idle_spell(&hosts);
        assert!(
            lock(&hosts.state).hosts.is_empty(),
            "a host back to normal and idle is forgotten"
        );
    }

    #[test]
    fn answers_to_requests_sent_before_the_fall_do_not_halve_it_again() {
        let hosts = Hosts::new(16, 1_000, 60_000).without_slow_start();
        // Eight requests in flight when the first 503 comes back.
        let permits: Vec<_> = (0..8).map(|_| hosts.enter("h:80").unwrap()).collect();
        let mut permits = permits.into_iter();
        drop(permits.next());
        assert_eq!(hosts.heard("h:80", Signal::SlowDown), Reaction::Narrowed(8));
        for permit in permits {
            drop(permit);
            // Answered with the image: these were fine.
            assert_eq!(hosts.heard("h:80", Signal::Fine), Reaction::None);
        }
        assert_eq!(hosts.limit("h:80"), 8);
        // A request sent under the new limit that meets a 503 halves it again.
        drop(hosts.enter("h:80").unwrap());
        assert_eq!(hosts.heard("h:80", Signal::SlowDown), Reaction::Narrowed(4));
        // A stale 503 between successes says nothing new.
        let permits: Vec<_> = (0..3).map(|_| hosts.enter("h:80").unwrap()).collect();
        let mut permits = permits.into_iter();
        drop(permits.next());
        assert_eq!(hosts.heard("h:80", Signal::SlowDown), Reaction::Narrowed(2));
        drop(permits.next());
        assert_eq!(hosts.heard("h:80", Signal::Fine), Reaction::None);
        drop(permits.next());
        assert_eq!(hosts.heard("h:80", Signal::SlowDown), Reaction::None);
        assert_eq!(hosts.limit("h:80"), 2);
    }

    #[test]
    fn nothing_but_slow_downs_takes_a_host_to_one_request_and_a_pause_at_once() {
        let hosts = Hosts::new(16, 1_000, 60_000).without_slow_start();
        let permits: Vec<_> = (0..8).map(|_| hosts.enter("h:80").unwrap()).collect();
        let mut reactions = Vec::new();
        for permit in permits {
            drop(permit);
            reactions.push(hosts.heard("h:80", Signal::SlowDown));
        }
        assert_eq!(reactions[..2], [Reaction::Narrowed(8), Reaction::None]);
        assert!(
            matches!(reactions[2], Reaction::Paused { strikes: 1, .. }),
            "{reactions:?}"
        );
        assert_eq!(hosts.limit("h:80"), 1);
        assert!(hosts.enter("h:80").is_err(), "paused");
    }

    #[test]
    fn at_a_limit_of_one_slow_downs_in_a_row_pause_the_host_for_longer() {
        let hosts = Hosts::new(1, 1_000, 3_000).without_slow_start();
        assert_eq!(
            hosts.heard("h:80", Signal::SlowDown),
            Reaction::None,
            "a lone 503 is a hiccup"
        );
        let mut pauses = Vec::new();
        for _ in 0..4 {
            let before = now_ms();
            let Reaction::Paused { until, .. } = hosts.heard("h:80", Signal::SlowDown) else {
                panic!("a host at a limit of 1 pauses");
            };
            pauses.push(((until - before) as f64 / 1_000.0).round() as i64);
            assert_eq!(hosts.enter("h:80").unwrap_err(), until);
            // Time passes: let the host out of its pause.
            lock(&hosts.state).hosts.get_mut("h:80").unwrap().paused_until = 0;
        }
        assert_eq!(pauses, [1, 2, 3, 3], "doubling, up to the most");
        // A success resets the count.
        hosts.heard("h:80", Signal::Fine);
        assert_eq!(hosts.heard("h:80", Signal::SlowDown), Reaction::None);
        let before = now_ms();
        let Reaction::Paused { until, strikes, .. } = hosts.heard("h:80", Signal::SlowDown) else {
            panic!("paused");
        };
        assert_eq!(strikes, 1);
        assert!(until - before <= 1_100, "back to the first pause");
    }

    #[test]
    fn a_rate_ceiling_spaces_requests_and_turns_away_those_far_from_their_turn() {
        // Ten a second: a request every 100 ms; a worker waits for a turn that close.
        let hosts = Hosts::new(4, 1_000, 60_000).with_rate(10.0).without_slow_start();
        let start = std::time::Instant::now();
        for _ in 0..3 {
            drop(hosts.enter("h:80").unwrap());
        }
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(195), "3 starts in {took:?}");
        // One every two seconds: the second request's turn is too far to wait for.
        let slow = Hosts::new(4, 1_000, 60_000).with_rate(0.5).without_slow_start();
        let before = now_ms();
        drop(slow.enter("h:80").unwrap());
        let turn = slow.enter("h:80").unwrap_err();
        assert!((1_900..=2_100).contains(&(turn - before)), "turn in {} ms", turn - before);
        assert!(slow.enter("other:80").is_ok(), "other hosts keep their own turns");
        // Without a ceiling, nothing waits.
        let free = Hosts::new(4, 1_000, 60_000).with_rate(0.0).without_slow_start();
        let start = std::time::Instant::now();
        for _ in 0..3 {
            drop(free.enter("h:80").unwrap());
        }
        assert!(start.elapsed() < Duration::from_millis(50));
    }

    fn limit_of(host: &str, max_in_flight: Option<u32>, paused_until: Option<i64>) -> HostState {
        HostState {
            host: host.into(),
            max_in_flight,
            paused_until,
            strikes: 0,
        }
    }

    #[test]
    fn the_parts_of_a_limit_add_up_to_it_and_spread_over_the_fleet() {
        let hosts: Vec<String> = (0..200).map(|i| format!("img{i}.example.org:443")).collect();
        for daemons in 1..=7 {
            for limit in 0..=30 {
                for host in &hosts {
                    let parts: Vec<usize> = (0..daemons)
                        .map(|rank| Fleet { daemons, rank }.part(host, limit))
                        .collect();
                    assert_eq!(parts.iter().sum::<usize>(), limit, "{daemons} {limit} {host}");
                    assert!(parts.iter().all(|&p| p == limit / daemons || p == limit / daemons + 1));
                }
            }
        }
        // A limit of 1 among 4 daemons: each has some of the 200 hosts.
        for rank in 0..4 {
            let mine = hosts
                .iter()
                .filter(|h| Fleet { daemons: 4, rank }.part(h, 1) == 1)
                .count();
            assert!((20..=80).contains(&mine), "daemon {rank} has {mine} of 200");
        }
    }

    #[test]
    fn a_daemon_knows_its_rank_among_the_live_ones() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(Fleet::among(&names(&[]), "m:1"), Fleet::ALONE);
        assert_eq!(
            Fleet::among(&names(&["b:2", "a:1"]), "c:3"),
            Fleet { daemons: 3, rank: 2 },
            "its own beat not in yet"
        );
        assert_eq!(
            Fleet::among(&names(&["a:1", "b:2", "c:3"]), "b:2"),
            Fleet { daemons: 3, rank: 1 }
        );
    }

    #[test]
    fn a_slow_down_in_a_fleet_halves_what_all_the_daemons_had() {
        let hosts = Hosts::new(16, 1_000, 60_000).without_slow_start();
        let fleet = Fleet { daemons: 4, rank: 1 };
        hosts.adopt(fleet, &[], now_ms());
        assert_eq!(hosts.heard("h:80", Signal::SlowDown), Reaction::Narrowed(32));
        assert!(hosts.widenings().is_empty(), "a narrowing is told at once");
        let part = fleet.part("h:80", 32);
        assert_eq!(part, 8);
        for _ in 1..part {
            assert_eq!(hosts.heard("h:80", Signal::Fine), Reaction::None);
        }
        assert_eq!(hosts.heard("h:80", Signal::Fine), Reaction::Widened(Some(33)));
        assert_eq!(hosts.widenings(), [("h:80".to_string(), 32, Some(33))]);
        // Widened up to every daemon's ceiling, the fleet's limit is lifted.
        hosts.adopt(fleet, &[limit_of("h:80", Some(63), None)], now_ms() + 1);
        assert!(hosts.widenings().is_empty(), "the table has what this daemon has");
        while hosts.heard("h:80", Signal::Fine) == Reaction::None {}
        assert_eq!(hosts.limit("h:80"), 16);
        assert_eq!(hosts.widenings(), [("h:80".to_string(), 63, None)]);
        assert_eq!(hosts.left_to_others(), Vec::<String>::new());
    }

    #[test]
    fn a_daemon_keeps_to_its_part_of_the_fleets_limit() {
        let read_at = now_ms();
        let known = [limit_of("h:80", Some(1), None)];
        let fleet = |rank| Fleet { daemons: 2, rank };
        let (mine, theirs) = if fleet(0).part("h:80", 1) == 1 { (0, 1) } else { (1, 0) };
        let with_it = Hosts::new(16, 1_000, 60_000);
        with_it.adopt(fleet(mine), &known, read_at);
        let without = Hosts::new(16, 1_000, 60_000);
        without.adopt(fleet(theirs), &known, read_at);
        // The one whose part it is has one request in flight, and leaves nothing to others.
        let permit = with_it.enter("h:80").unwrap();
        assert_eq!(with_it.limit("h:80"), 1);
        assert!(with_it.left_to_others().is_empty());
        drop(permit);
        // The other sends none, gives the job back at once, and its claims pass the host over.
        let until = without.enter("h:80").unwrap_err();
        assert!(until <= now_ms());
        assert_eq!(without.left_to_others(), ["h:80"]);
        // Alone again, the whole limit is its own.
        without.adopt(Fleet::ALONE, &known, now_ms());
        assert!(without.enter("h:80").is_ok());
    }

    #[test]
    fn what_other_daemons_learnt_is_taken_in() {
        let hosts = Hosts::new(16, 1_000, 60_000).without_slow_start();
        hosts.adopt(Fleet::ALONE, &[limit_of("h:80", Some(4), None)], now_ms());
        assert_eq!(hosts.limit("h:80"), 4);
        // The table's word, whichever way it went: another daemon widened it.
        hosts.adopt(Fleet::ALONE, &[limit_of("h:80", Some(8), None)], now_ms());
        assert_eq!(hosts.limit("h:80"), 8);
        let until = now_ms() + 60_000;
        hosts.adopt(Fleet::ALONE, &[limit_of("h:80", Some(8), Some(until))], now_ms());
        assert_eq!(hosts.enter("h:80").unwrap_err(), until);
        // A change of this daemon's after the read began stands.
        let read_at = now_ms() - 1;
        hosts.heard("g:80", Signal::SlowDown);
        hosts.adopt(Fleet::ALONE, &[], read_at);
        assert_eq!(hosts.limit("g:80"), 8);
        // Gone from the table: the limit is lifted, and an idle host is forgotten.
        hosts.adopt(Fleet::ALONE, &[], now_ms() + 1);
        assert_eq!((hosts.limit("g:80"), hosts.limit("h:80")), (16, 16));
        hosts.heard("g:80", Signal::Fine);
        hosts.adopt(Fleet::ALONE, &[limit_of("quiet:80", None, None)], now_ms());
        lock(&hosts.state).hosts.get_mut("h:80").unwrap().paused_until = 0;
        after_an_idle_spell(&hosts);
        assert!(lock(&hosts.state).hosts.is_empty(), "nothing to learn, nothing kept");
    }

    #[test]
    fn retry_after_pauses_the_host_until_then() {
        let hosts = Hosts::new(4, 1_000, 60_000).without_slow_start();
        let until = now_ms() + 60_000;
        assert_eq!(
            hosts.heard("h:80", Signal::PauseUntil(until)),
            Reaction::Paused {
                until,
                strikes: 0,
                limit: None
            }
        );
        assert_eq!(hosts.enter("h:80").unwrap_err(), until);
        // An earlier end never shortens it.
        hosts.heard("h:80", Signal::PauseUntil(now_ms() - 1));
        assert_eq!(hosts.enter("h:80").unwrap_err(), until);
        assert_eq!(hosts.limit("h:80"), 4, "the server said when; the limit stays");
        let past = Hosts::new(4, 1_000, 60_000).without_slow_start();
        past.heard("h:80", Signal::PauseUntil(now_ms() - 1));
        assert!(past.enter("h:80").is_ok());
    }
}
