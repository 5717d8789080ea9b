//! The job lifecycle, written once: what a job is, the states it moves through, what an attempt
//! reports, and the rules of every move, as plain types and functions.
//!
//! A job is `queued` until a worker claims it (`running`); the attempt's [`Report`] then
//! settles it ([`Outcome::settle`]): `done`, `failed`, or `queued` again for a later try. A job
//! whose daemon died goes back when its lease runs out ([`after_lease_expired`]). People cancel
//! and requeue jobs ([`State::on_cancel`], [`State::retryable`]). Both storage backends run
//! these moves in their own SQL and decide none of them.
//!
//! Architecture invariant: this module is the bottom of the module graph. It uses nothing else
//! in the crate, does no I/O and holds no SQL.

mod clock;
mod failure;
mod layout;

use std::fmt;

pub use clock::now_ms;
pub use failure::{Failure, Kind, Reason};
pub use layout::{Layout, blob_path, parse_blob_path};

pub type JobId = i64;

/// Where a job is in its life. The schema allows exactly these five.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    Queued,
    Running,
    Done,
    Failed,
    Cancelled,
}

/// What `jobctl cancel` does to a job, by its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancel {
    /// Queued: cancelled at once, finished now.
    Now,
    /// Running: marked, so that it ends `cancelled` when its attempt ends, unless the attempt
    /// succeeds or fails for good.
    WhenAttemptEnds,
    /// Finished: left alone.
    No,
}

impl State {
    /// Every state, in the order people read them.
    pub const ALL: [State; 5] = [
        State::Queued,
        State::Running,
        State::Done,
        State::Failed,
        State::Cancelled,
    ];

    /// The states of a finished job: the ones retention and `jobctl prune` may delete.
    pub const FINISHED: [State; 3] = [State::Done, State::Failed, State::Cancelled];

    /// The name in the `state` column.
    pub fn name(self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Running => "running",
            State::Done => "done",
            State::Failed => "failed",
            State::Cancelled => "cancelled",
        }
    }

    pub fn parse(name: &str) -> Option<State> {
        State::ALL.into_iter().find(|s| s.name() == name)
    }

    pub fn is_finished(self) -> bool {
        State::FINISHED.contains(&self)
    }

    /// What `jobctl cancel` does to a job in this state.
    pub fn on_cancel(self) -> Cancel {
        match self {
            State::Queued => Cancel::Now,
            State::Running => Cancel::WhenAttemptEnds,
            State::Done | State::Failed | State::Cancelled => Cancel::No,
        }
    }

    /// Whether `jobctl retry` requeues a job in this state: failed and cancelled ones, and done
    /// ones too with `force`. Requeued means queued, due now, attempts and error cleared.
    pub fn retryable(self, force: bool) -> bool {
        matches!(self, State::Failed | State::Cancelled) || (force && self == State::Done)
    }

    /// The state a job settled `queued` ends in: `cancelled` if someone asked to cancel it while
    /// it ran. Backends apply this in the statement that records the attempt, to the row as it
    /// is then.
    pub fn unless_cancel_requested(self, cancel_requested: bool) -> State {
        if self == State::Queued && cancel_requested {
            State::Cancelled
        } else {
            self
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// The error a job whose lease ran out records.
pub const LEASE_EXPIRED: &str = "the lease ran out: the daemon working on it stopped or died";

/// The state of a running job whose lease ran out (its daemon died): queued for another try,
/// failed if its attempts are spent, cancelled if that was asked. The attempt counts: a job
/// that kills its daemon every time must end.
pub fn after_lease_expired(
    attempts: u32,
    max_attempts: Option<u32>,
    default_max_attempts: u32,
    cancel_requested: bool,
) -> State {
    if cancel_requested {
        State::Cancelled
    } else if attempts >= max_attempts.unwrap_or(default_max_attempts) {
        State::Failed
    } else {
        State::Queued
    }
}

/// The windows of `jobctl stats`, in minutes: done jobs within each, and the timings of the
/// last (or of all time, when no job finished within it).
pub const RECENT_MINUTES: [i64; 3] = [1, 5, 15];

/// The start of the window of `minutes` that ends at `now` (Unix ms).
pub fn window_start(now: i64, minutes: i64) -> i64 {
    now - minutes * 60_000
}

/// How far a stored image was proved: `[fetch] validate`, and what each `done` job records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// The container walked to its end, every frame within the limits (the default).
    #[default]
    Structure,
    /// The structure, and every pixel decoded by a memory-safe decoder.
    Decode,
}

impl Level {
    /// The name in the config and in the `validation` column.
    pub fn name(self) -> &'static str {
        match self {
            Level::Structure => "structure",
            Level::Decode => "decode",
        }
    }
}

/// The `url` column exactly as a user left it: the schema accepts any value, the worker judges.
#[derive(Debug, Clone, PartialEq)]
pub enum RawUrl {
    Text(String),
    /// NULL, a number or a blob: what the column held instead, for the error message.
    NotText(&'static str),
}

/// A job a worker holds: the claim token is its attempt row.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub job_id: JobId,
    /// The `attempts` row of this try; recording acts only while it still holds.
    pub attempt_id: i64,
    /// 1-based number of this try among all of the job's tries.
    pub attempt: u32,
    /// Tries that count towards the limit, this one included.
    pub attempts: u32,
    /// The job's own limit, if its row sets one.
    pub max_attempts: Option<u32>,
    pub url: RawUrl,
    /// When the attempt started: set at the claim, and again when a worker takes the job up.
    pub started_at: i64,
    /// The job's politeness key as the database computed it (`jobs.host`: the URL's authority,
    /// lowercased, without userinfo); None when the url is not a URL.
    pub host: Option<String>,
}

impl Claimed {
    /// The URL's host, for logs; "-" when the url is not a URL at all.
    pub fn host(&self) -> String {
        match &self.url {
            RawUrl::Text(raw) => url::Url::parse(raw)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_else(|| "-".into()),
            RawUrl::NotText(_) => "-".into(),
        }
    }
}

/// What one attempt found out, and what becomes of its job.
#[derive(Debug, Clone)]
pub struct Report {
    pub outcome: Outcome,
    pub http_status: Option<u16>,
    pub declared_mime: Option<String>,
    /// Body bytes received (all of them on success).
    pub bytes: Option<u64>,
    pub ttfb_ms: Option<i64>,
    pub download_ms: Option<i64>,
    /// Why the attempt failed, for metrics; None when it succeeded or never ran.
    pub reason: Option<Reason>,
}

impl Report {
    /// A report with nothing but its outcome: no response was read.
    pub fn new(outcome: Outcome) -> Report {
        Report {
            outcome,
            http_status: None,
            declared_mime: None,
            bytes: None,
            ttfb_ms: None,
            download_ms: None,
            reason: None,
        }
    }
}

#[derive(Debug, Clone)]
pub enum Outcome {
    Done(Stored),
    /// A transient failure: the job is queued again, not before `run_at`.
    Retry {
        run_at: i64,
        error: String,
    },
    /// A permanent failure, or a transient one with the attempts spent.
    Failed {
        error: String,
    },
    /// Not the URL's fault (our storage failed): queued again without spending the attempt.
    Postponed {
        run_at: i64,
        error: String,
    },
    /// Nothing was tried (its host is cooling down, or the daemon stopped before a worker took
    /// it up): back in the queue as it was, not before `run_at`, and the attempt never happened.
    Untried {
        run_at: i64,
    },
    /// The daemon stopped mid-attempt: back in the queue as it was, the attempt not counted but
    /// kept in the history, as `interrupted`, with why.
    Interrupted {
        why: String,
    },
}

/// A verified image, fsynced in the blob store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub mime: &'static str,
    pub sha256: String,
    pub blob_path: String,
    pub bytes: u64,
    pub width: u32,
    pub height: u32,
    /// How far the bytes were proved to be an image.
    pub validation: Level,
    /// Why a job asked to decode was stored at `structure` instead.
    pub validation_note: Option<String>,
}

/// What recording an outcome does to its job and its attempt row: the one table that both
/// backends run, each in its own SQL, and only while the claim still holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Settlement<'a> {
    /// The attempt ran: the job takes its result, and the attempt row records its outcome.
    Recorded(Recorded<'a>),
    /// The attempt did not happen, or was cut short: the job goes back to the queue as it was
    /// (subject to [`State::unless_cancel_requested`]), and the try does not count.
    GivenBack {
        /// The job's next `run_at`; None keeps it.
        run_at: Option<i64>,
        /// The attempt row: closed as `interrupted` with this reason, or (None) removed.
        interrupted: Option<&'a str>,
    },
}

impl Outcome {
    /// The name an attempt row records (an untried one is removed, and named only in logs).
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Done(_) => "done",
            Outcome::Retry { .. } => "retry",
            Outcome::Failed { .. } => "failed",
            Outcome::Postponed { .. } => "postponed",
            Outcome::Untried { .. } => "untried",
            Outcome::Interrupted { .. } => "interrupted",
        }
    }

    /// Whether the attempt ran far enough to count in the metrics: an untried job was never sent.
    pub fn was_tried(&self) -> bool {
        !matches!(self, Outcome::Untried { .. })
    }

    /// What recording this outcome does.
    pub fn settle(&self) -> Settlement<'_> {
        let outcome = self.name();
        let recorded = |state, run_at, error, stored, refund| {
            Settlement::Recorded(Recorded {
                state,
                run_at,
                error,
                stored,
                refund,
                outcome,
            })
        };
        match self {
            Outcome::Done(stored) => recorded(State::Done, None, None, Some(stored), 0),
            Outcome::Retry { run_at, error } => {
                recorded(State::Queued, Some(*run_at), Some(error), None, 0)
            }
            Outcome::Failed { error } => recorded(State::Failed, None, Some(error), None, 0),
            Outcome::Postponed { run_at, error } => {
                recorded(State::Queued, Some(*run_at), Some(error), None, 1)
            }
            Outcome::Untried { run_at } => Settlement::GivenBack {
                run_at: Some(*run_at),
                interrupted: None,
            },
            Outcome::Interrupted { why } => Settlement::GivenBack {
                run_at: None,
                interrupted: Some(why),
            },
        }
    }
}

/// A job's result after an attempt that ran.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Recorded<'a> {
    /// The job's next state; `queued` is subject to [`State::unless_cancel_requested`].
    pub state: State,
    /// The job's next `run_at`; None keeps it.
    pub run_at: Option<i64>,
    pub error: Option<&'a str>,
    pub stored: Option<&'a Stored>,
    /// Tries given back: 1 when this one must not count (the failure was ours).
    pub refund: u32,
    /// The attempt row's `outcome`.
    pub outcome: &'static str,
}

/// Whether recording found the claim still held. A lost claim means another daemon reaped the
/// job after its lease ran out; nothing was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Yes,
    ClaimLost,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored() -> Stored {
        Stored {
            mime: "image/png",
            sha256: "ab".repeat(32),
            blob_path: blob_path(&"ab".repeat(32), "png"),
            bytes: 10,
            width: 1,
            height: 1,
            validation: Level::Structure,
            validation_note: None,
        }
    }

    #[test]
    fn each_outcome_settles_its_job() {
        let done = Outcome::Done(stored());
        let Settlement::Recorded(Recorded {
            state,
            stored: Some(_),
            refund: 0,
            outcome: "done",
            error: None,
            run_at: None,
        }) = done.settle()
        else {
            panic!("{:?}", done.settle());
        };
        assert_eq!(state, State::Done);
        let cases = [
            (
                Outcome::Retry {
                    run_at: 5,
                    error: "HTTP 503".into(),
                },
                State::Queued,
                Some(5),
                0,
                "retry",
            ),
            (
                Outcome::Failed {
                    error: "HTTP 404".into(),
                },
                State::Failed,
                None,
                0,
                "failed",
            ),
            (
                Outcome::Postponed {
                    run_at: 7,
                    error: "disk full".into(),
                },
                State::Queued,
                Some(7),
                1,
                "postponed",
            ),
        ];
        for (outcome, want_state, want_run_at, want_refund, want_name) in cases {
            match outcome.settle() {
                Settlement::Recorded(Recorded {
                    state,
                    run_at,
                    error: Some(_),
                    stored: None,
                    refund,
                    outcome: name,
                }) => assert_eq!(
                    (state, run_at, refund, name),
                    (want_state, want_run_at, want_refund, want_name)
                ),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(
            Outcome::Untried { run_at: 9 }.settle(),
            Settlement::GivenBack {
                run_at: Some(9),
                interrupted: None
            }
        );
        assert_eq!(
            Outcome::Interrupted { why: "stop".into() }.settle(),
            Settlement::GivenBack {
                run_at: None,
                interrupted: Some("stop")
            }
        );
    }

    #[test]
    fn a_requested_cancel_wins_over_queueing_only() {
        for state in State::ALL {
            let want = if state == State::Queued {
                State::Cancelled
            } else {
                state
            };
            assert_eq!(state.unless_cancel_requested(true), want);
            assert_eq!(state.unless_cancel_requested(false), state);
        }
    }

    #[test]
    fn cancel_and_retry_accept_the_documented_states() {
        use State::*;
        let cancel: Vec<_> = State::ALL.iter().map(|s| s.on_cancel()).collect();
        assert_eq!(
            cancel,
            [
                Cancel::Now,
                Cancel::WhenAttemptEnds,
                Cancel::No,
                Cancel::No,
                Cancel::No
            ]
        );
        let retry: Vec<_> = State::ALL
            .into_iter()
            .filter(|s| s.retryable(false))
            .collect();
        assert_eq!(retry, [Failed, Cancelled]);
        let forced: Vec<_> = State::ALL
            .into_iter()
            .filter(|s| s.retryable(true))
            .collect();
        assert_eq!(forced, [Done, Failed, Cancelled]);
    }

    #[test]
    fn an_expired_lease_requeues_fails_or_cancels() {
        assert_eq!(after_lease_expired(1, None, 3, false), State::Queued);
        assert_eq!(after_lease_expired(3, None, 3, false), State::Failed);
        assert_eq!(after_lease_expired(3, Some(5), 3, false), State::Queued);
        assert_eq!(after_lease_expired(1, Some(1), 3, false), State::Failed);
        assert_eq!(after_lease_expired(1, None, 3, true), State::Cancelled);
    }

    #[test]
    fn state_names_round_trip() {
        for state in State::ALL {
            assert_eq!(State::parse(state.name()), Some(state));
            assert_eq!(state.to_string(), state.name());
        }
        assert_eq!(State::parse("Queued"), None);
        assert_eq!(
            State::FINISHED.iter().filter(|s| s.is_finished()).count(),
            3
        );
        assert!(!State::Running.is_finished());
    }
}
