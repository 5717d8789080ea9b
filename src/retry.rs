//! The retry policy: which failures are transient, and how long to wait before the next try.
//!
//! | failure                                              | kind      |
//! |------------------------------------------------------|-----------|
//! | HTTP 408, 425, 429, 500, 502, 503, 504               | transient |
//! | any other HTTP status outside 2xx                    | permanent |
//! | timeout; connection refused, reset or cut short; DNS | transient |
//! | body shorter than its Content-Length                 | transient |
//! | not an image, invalid image, too large               | permanent |
//! | too many redirects, blocked address, unusable URL    | permanent |
//! | the blob store cannot be written (full, read-only)   | local     |
//!
//! A transient failure is retried with exponential backoff and jitter until the job's attempts
//! are spent; on 429 and 503 a Retry-After header (seconds or an HTTP date) replaces the backoff,
//! capped at `max_delay_ms`. A permanent failure fails the job at once. A local failure is not
//! the URL's fault: the job goes back to the queue without spending an attempt.
//!
//! Architecture invariant: this is the one place that decides when a job is tried next. The
//! download, the committer (a blob that cannot be made durable), the supervisor (a worker that
//! panicked) and the host cool-down all ask here.

use std::hash::{BuildHasher, Hasher, RandomState};
use std::time::{Duration, SystemTime};

use crate::config::RetryConfig;
use crate::job::{Claimed, Failure, Kind, Outcome, now_ms};

/// Reads a Retry-After value: delay-seconds or an HTTP date (relative to `now`). A date in the
/// past means "now"; anything unreadable is ignored.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// When the next try of a job may start after this failure: the server's Retry-After if it gave
/// one, else the backoff; never later than `max_delay_ms` from now.
pub fn retry_delay_ms(failure: &Failure, attempt: u32, policy: &RetryConfig) -> u64 {
    match failure.retry_after {
        Some(wait) => (wait.as_millis() as u64).min(policy.max_delay_ms),
        None => backoff_ms(attempt, policy),
    }
}

/// A local failure puts the job back this soon; the worker itself backs off meanwhile.
const LOCAL_RETRY_MS: i64 = 1_000;

/// Whether an HTTP status (outside 2xx) is worth another try.
pub fn status_is_transient(status: u16) -> bool {
    matches!(status, 408 | 425 | 429 | 500 | 502 | 503 | 504)
}

/// Statuses by which a server says "too much, slow down": they cool the whole host down.
pub fn status_means_slow_down(status: u16) -> bool {
    matches!(status, 429 | 503)
}

/// What becomes of a job that was not tried because its host is cooling down: back in the
/// queue, untried, until the cool-down ends.
pub fn while_host_cools(until: i64) -> Outcome {
    Outcome::Untried { run_at: until }
}

/// What becomes of a job after a failed attempt: another try later, or failed for good.
pub fn after_failure(job: &Claimed, failure: Failure, policy: &RetryConfig, now: i64) -> Outcome {
    let limit = job.max_attempts.unwrap_or(policy.max_attempts).max(1);
    match failure.kind {
        Kind::Local => Outcome::Postponed {
            run_at: now + LOCAL_RETRY_MS,
            error: failure.error,
        },
        Kind::Transient if job.attempts < limit => Outcome::Retry {
            run_at: now + retry_delay_ms(&failure, job.attempts, policy) as i64,
            error: failure.error,
        },
        Kind::Transient => Outcome::Failed {
            error: format!(
                "{} (gave up after {} attempts)",
                failure.error, job.attempts
            ),
        },
        Kind::Permanent => Outcome::Failed {
            error: failure.error,
        },
    }
}

/// The wait after the `attempt`-th failed try: base * 2^(attempt-1), capped, of which a random
/// half is taken away ("equal jitter"), so retries of many jobs failed together spread out.
pub fn backoff_ms(attempt: u32, policy: &RetryConfig) -> u64 {
    let exp = attempt.saturating_sub(1).min(32);
    let full = policy
        .base_delay_ms
        .saturating_mul(1u64 << exp)
        .min(policy.max_delay_ms);
    let half = full / 2;
    half + random_below(full - half + 1)
}

/// A random number in `0..n` from the standard library's randomly seeded hasher; plenty for
/// jitter, and no extra crate.
fn random_below(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(now_ms() as u64);
    hasher.finish() % n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{RawUrl, Reason};

    fn policy() -> RetryConfig {
        RetryConfig {
            max_attempts: 3,
            base_delay_ms: 1_000,
            max_delay_ms: 5_000,
        }
    }

    fn job(attempts: u32, max_attempts: Option<u32>) -> Claimed {
        Claimed {
            job_id: 1,
            attempt_id: 1,
            attempt: attempts,
            attempts,
            max_attempts,
            url: RawUrl::Text("http://x/".into()),
            started_at: 0,
            host: Some("x".into()),
        }
    }

    #[test]
    fn the_status_table() {
        for s in [408, 425, 429, 500, 502, 503, 504] {
            assert!(status_is_transient(s), "{s}");
        }
        for s in [300, 400, 401, 403, 404, 410, 451, 501, 505] {
            assert!(!status_is_transient(s), "{s}");
        }
    }

    #[test]
    fn backoff_doubles_within_jitter_and_is_capped() {
        for _ in 0..200 {
            let p = policy();
            assert!((500..=1_000).contains(&backoff_ms(1, &p)));
            assert!((1_000..=2_000).contains(&backoff_ms(2, &p)));
            assert!((2_500..=5_000).contains(&backoff_ms(4, &p)));
            assert!((2_500..=5_000).contains(&backoff_ms(60, &p)));
        }
    }

    #[test]
    fn transient_failures_retry_until_the_attempts_are_spent() {
        let p = policy();
        match after_failure(
            &job(1, None),
            Failure::transient(Reason::Network, "reset"),
            &p,
            10_000,
        ) {
            Outcome::Retry { run_at, error } => {
                assert!((10_500..=11_000).contains(&run_at));
                assert_eq!(error, "reset");
            }
            other => panic!("{other:?}"),
        }
        match after_failure(
            &job(3, None),
            Failure::transient(Reason::Network, "reset"),
            &p,
            0,
        ) {
            Outcome::Failed { error } => assert_eq!(error, "reset (gave up after 3 attempts)"),
            other => panic!("{other:?}"),
        }
        // The job's own limit wins over the config.
        assert!(matches!(
            after_failure(
                &job(3, Some(5)),
                Failure::transient(Reason::Network, "x"),
                &p,
                0
            ),
            Outcome::Retry { .. }
        ));
        assert!(matches!(
            after_failure(
                &job(1, Some(1)),
                Failure::transient(Reason::Network, "x"),
                &p,
                0
            ),
            Outcome::Failed { .. }
        ));
    }

    #[test]
    fn retry_after_replaces_the_backoff_within_the_cap() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        let date = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(parse_retry_after(&date, now), Some(Duration::from_secs(90)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(90));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);

        let mut slow = Failure::transient(Reason::Http(429), "HTTP 429");
        slow.retry_after = Some(Duration::from_secs(3));
        assert_eq!(retry_delay_ms(&slow, 1, &policy()), 3_000);
        slow.retry_after = Some(Duration::from_secs(3_600));
        assert_eq!(
            retry_delay_ms(&slow, 1, &policy()),
            5_000,
            "capped at max_delay_ms"
        );
    }

    #[test]
    fn local_failures_do_not_spend_attempts() {
        // Even on the last attempt: the URL did nothing wrong.
        match after_failure(&job(3, None), Failure::local("disk full"), &policy(), 0) {
            Outcome::Postponed { run_at, error } => {
                assert_eq!((run_at, error.as_str()), (LOCAL_RETRY_MS, "disk full"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn permanent_failures_fail_at_once() {
        match after_failure(
            &job(1, None),
            Failure::permanent(Reason::Http(404), "HTTP 404"),
            &policy(),
            0,
        ) {
            Outcome::Failed { error } => assert_eq!(error, "HTTP 404"),
            other => panic!("{other:?}"),
        }
    }
}
