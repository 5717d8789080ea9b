//! Why an attempt failed: its kind (what becomes of the job) and its reason (a fixed label for
//! metrics), with the words for the job's `error` column.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Transient,
    Permanent,
    /// Our side failed (storage), not the URL.
    Local,
}

/// Why an attempt failed, as a short fixed label for metrics and log filters; the words for
/// people are in [`Failure::error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The server answered with a status outside 2xx.
    Http(u16),
    Timeout,
    /// Refused, reset or closed connections, DNS failures.
    Network,
    Tls,
    /// A body shorter than its Content-Length.
    Truncated,
    Redirects,
    Blocked,
    BadUrl,
    NotImage,
    InvalidImage,
    TooLarge,
    /// Our blob store could not be written.
    Storage,
    /// A bug of ours: a worker panicked.
    Internal,
}

impl Reason {
    /// The label: `http_404`-style statuses are folded into their class (`http_4xx`), so that a
    /// label set stays small whatever servers answer.
    pub fn label(self) -> &'static str {
        match self {
            Reason::Http(429) => "http_429",
            Reason::Http(s) if (400..500).contains(&s) => "http_4xx",
            Reason::Http(s) if (500..600).contains(&s) => "http_5xx",
            Reason::Http(_) => "http_other",
            Reason::Timeout => "timeout",
            Reason::Network => "network",
            Reason::Tls => "tls",
            Reason::Truncated => "truncated",
            Reason::Redirects => "redirects",
            Reason::Blocked => "blocked_address",
            Reason::BadUrl => "bad_url",
            Reason::NotImage => "not_image",
            Reason::InvalidImage => "invalid_image",
            Reason::TooLarge => "too_large",
            Reason::Storage => "storage",
            Reason::Internal => "internal",
        }
    }
}

/// A failed attempt, in words for the job's `error` column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: Kind,
    pub reason: Reason,
    pub error: String,
    /// How long the server asked us to wait (Retry-After), if it did.
    pub retry_after: Option<Duration>,
}

impl Failure {
    fn new(kind: Kind, reason: Reason, error: impl Into<String>) -> Failure {
        Failure {
            kind,
            reason,
            error: error.into(),
            retry_after: None,
        }
    }

    pub fn transient(reason: Reason, error: impl Into<String>) -> Failure {
        Failure::new(Kind::Transient, reason, error)
    }

    pub fn permanent(reason: Reason, error: impl Into<String>) -> Failure {
        Failure::new(Kind::Permanent, reason, error)
    }

    /// Our storage failed; the reason is always [`Reason::Storage`].
    pub fn local(error: impl Into<String>) -> Failure {
        Failure::new(Kind::Local, Reason::Storage, error)
    }
}
