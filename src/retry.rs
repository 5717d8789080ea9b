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
//!
//! A transient failure is retried with exponential backoff and jitter until the job's attempts
//! are spent; a permanent one fails the job at once.

use std::hash::{BuildHasher, Hasher, RandomState};

use crate::config::RetryConfig;
use crate::store::{Claimed, Outcome};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Transient,
    Permanent,
}

/// A failed attempt, in words for the job's `error` column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: Kind,
    pub error: String,
}

impl Failure {
    pub fn transient(error: impl Into<String>) -> Failure {
        Failure {
            kind: Kind::Transient,
            error: error.into(),
        }
    }

    pub fn permanent(error: impl Into<String>) -> Failure {
        Failure {
            kind: Kind::Permanent,
            error: error.into(),
        }
    }
}

/// Whether an HTTP status (outside 2xx) is worth another try.
pub fn status_kind(status: u16) -> Kind {
    match status {
        408 | 425 | 429 | 500 | 502 | 503 | 504 => Kind::Transient,
        _ => Kind::Permanent,
    }
}

/// What becomes of a job after a failed attempt: another try later, or failed for good.
pub fn after_failure(job: &Claimed, failure: Failure, policy: &RetryConfig, now: i64) -> Outcome {
    let limit = job.max_attempts.unwrap_or(policy.max_attempts).max(1);
    match failure.kind {
        Kind::Transient if job.attempts < limit => Outcome::Retry {
            run_at: now + backoff_ms(job.attempts, policy) as i64,
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
    hasher.write_u64(crate::store::now_ms() as u64);
    hasher.finish() % n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::RawUrl;

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
        }
    }

    #[test]
    fn the_status_table() {
        for s in [408, 425, 429, 500, 502, 503, 504] {
            assert_eq!(status_kind(s), Kind::Transient, "{s}");
        }
        for s in [300, 400, 401, 403, 404, 410, 451, 501, 505] {
            assert_eq!(status_kind(s), Kind::Permanent, "{s}");
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
        match after_failure(&job(1, None), Failure::transient("reset"), &p, 10_000) {
            Outcome::Retry { run_at, error } => {
                assert!((10_500..=11_000).contains(&run_at));
                assert_eq!(error, "reset");
            }
            other => panic!("{other:?}"),
        }
        match after_failure(&job(3, None), Failure::transient("reset"), &p, 0) {
            Outcome::Failed { error } => assert_eq!(error, "reset (gave up after 3 attempts)"),
            other => panic!("{other:?}"),
        }
        // The job's own limit wins over the config.
        assert!(matches!(
            after_failure(&job(3, Some(5)), Failure::transient("x"), &p, 0),
            Outcome::Retry { .. }
        ));
        assert!(matches!(
            after_failure(&job(1, Some(1)), Failure::transient("x"), &p, 0),
            Outcome::Failed { .. }
        ));
    }

    #[test]
    fn permanent_failures_fail_at_once() {
        match after_failure(&job(1, None), Failure::permanent("HTTP 404"), &policy(), 0) {
            Outcome::Failed { error } => assert_eq!(error, "HTTP 404"),
            other => panic!("{other:?}"),
        }
    }
}
