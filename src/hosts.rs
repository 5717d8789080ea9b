//! Politeness towards hosts, within one daemon: a cap on concurrent requests per host, and a
//! cool-down after a host answers 429 or 503, during which its other jobs wait instead of
//! hammering it.
//!
//! The state lives in memory: several daemons on one database each learn a host's cool-down from
//! their own first 429, which bounds the extra requests to one per daemon.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};

use url::Url;

use crate::job::now_ms;
use crate::lock;

#[derive(Debug)]
pub struct Hosts {
    per_host: usize,
    state: Mutex<HashMap<String, Host>>,
    freed: Condvar,
}

#[derive(Debug, Default)]
struct Host {
    active: usize,
    /// Unix ms before which no new request goes to this host.
    cool_until: i64,
}

/// A slot for one request to a host; dropping it frees the slot.
#[derive(Debug)]
pub struct Permit<'a> {
    hosts: &'a Hosts,
    key: String,
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
    pub fn new(per_host: usize) -> Hosts {
        Hosts {
            per_host: per_host.max(1),
            state: Mutex::new(HashMap::new()),
            freed: Condvar::new(),
        }
    }

    /// Waits for a free slot on the host. Returns `Err(until)` at once if the host is cooling
    /// down, so that the caller can put its job back until then.
    pub fn enter(&self, key: &str) -> Result<Permit<'_>, i64> {
        let mut state = lock(&self.state);
        loop {
            let host = state.entry(key.to_string()).or_default();
            if host.cool_until > now_ms() {
                return Err(host.cool_until);
            }
            if host.active < self.per_host {
                host.active += 1;
                return Ok(Permit {
                    hosts: self,
                    key: key.to_string(),
                });
            }
            // Every request holding a slot ends by its deadline, so this wait is bounded.
            state = self
                .freed
                .wait(state)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    /// No new request goes to the host before `until` (Unix ms).
    pub fn cool_down(&self, key: &str, until: i64) {
        let mut state = lock(&self.state);
        let host = state.entry(key.to_string()).or_default();
        host.cool_until = host.cool_until.max(until);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut state = lock(&self.hosts.state);
        if let Some(host) = state.get_mut(&self.key) {
            host.active -= 1;
            // Forget idle hosts, so the map holds only hosts in use or cooling down.
            if host.active == 0 && host.cool_until <= now_ms() {
                state.remove(&self.key);
            }
        }
        self.hosts.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn keys_are_host_and_port() {
        let url = |s| Url::parse(s).unwrap();
        assert_eq!(key(&url("https://Example.org/a.png")), "example.org:443");
        assert_eq!(key(&url("http://example.org:8080/")), "example.org:8080");
        assert_eq!(key(&url("http://[::1]/")), "[::1]:80");
    }

    #[test]
    fn no_more_than_the_cap_run_at_once() {
        let hosts = Arc::new(Hosts::new(2));
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

    #[test]
    fn a_cooling_host_turns_requests_away_until_its_time() {
        let hosts = Hosts::new(4);
        let until = now_ms() + 60_000;
        hosts.cool_down("h:80", until);
        assert_eq!(hosts.enter("h:80").unwrap_err(), until);
        hosts.cool_down("h:80", now_ms() - 1); // an earlier end never shortens it
        assert_eq!(hosts.enter("h:80").unwrap_err(), until);
        let past = Hosts::new(4);
        past.cool_down("h:80", now_ms() - 1);
        assert!(past.enter("h:80").is_ok());
    }
}
