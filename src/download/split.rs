//! Large bodies split across idle workers (issue 16 part 3), as aria2's `--split` does: while a
//! large body streams in, a worker with nothing to claim takes the second half of the longest
//! span still to come and fetches it with a `Range` request, writing it at its offset in the same
//! temporary file. The job's own worker (the *owner*) stops at the split point, waits for the
//! parts, fetches again any part that failed, and then reads the rest of the file back in order,
//! so that the hash and the validator see the body as one stream before it is sealed.
//!
//! Only a body that the first answer offers in ranges is split: `Accept-Ranges: bytes`, a
//! Content-Length of at least `split_min_bytes`, and a validator (a strong ETag, or
//! Last-Modified) that every range request sends as `If-Range`. Each part must be the `206` and
//! the exact `Content-Range` it asked for, with the same ETag: anything else is rejected, and the
//! body is not split further. A body that changed on the server fails the attempt, to be tried
//! again whole: never a mixed blob. Only a job's first try is split (`crate::download`).
//!
//! Architecture invariant: a part is a request like any other. It goes to the URL the owner
//! reached (through the same guarded agent), holds a slot of its host's limit for its whole
//! life (`Hosts::try_enter`: it is sent only if one is free now), and records no attempt: the
//! job's one attempt is the owner's.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use url::Url;

use crate::fetch::{Http, Ranges, Response};
use crate::hosts::{Hosts, Reaction, Signal};
use crate::job::{Failure, Reason};
use crate::lock;
use crate::retry::status_means_slow_down;

/// The least a part is worth: a smaller one would save less time than its request costs.
pub const MIN_PART: u64 = 256 * 1024;

/// A span is split only once its rate can be told: after it has been flowing this long. A body
/// that ends sooner is never offered.
pub const RATE_AFTER: Duration = Duration::from_millis(20);

/// The downloads in flight that may be split, shared by the daemon's workers.
#[derive(Default)]
pub struct Board {
    transfers: Mutex<Vec<Arc<Transfer>>>,
    /// Wakes the idle workers: a new download may be split.
    wake: OnceLock<Box<dyn Fn() + Send + Sync>>,
}

/// One body being fetched in spans, the owner's first.
pub struct Transfer {
    /// The URL the owner's request reached, after redirects.
    url: Url,
    /// Sent as `If-Range`.
    validator: String,
    first: Ranges,
    host: String,
    total: u64,
    /// The temporary file, for positional writes.
    file: File,
    /// The owner's time to first byte: how far a span runs on while a new part waits for its own.
    ttfb: Duration,
    state: Mutex<Spans>,
    changed: Condvar,
}

#[derive(Default)]
struct Spans {
    spans: Vec<Span>,
    /// No new parts: the owner has stopped waiting, or the server did not honour a range.
    closed: bool,
    /// The owner gave up: parts stop at their next piece.
    abandoned: bool,
    /// A part saw another entity (a new ETag): the body changed on the server.
    entity_changed: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Run {
    Running,
    Done,
    /// Stopped at `pos`: the bytes from there to `end` are missing.
    Failed,
}

#[derive(Clone, Debug)]
struct Span {
    /// Where it ends (exclusive); lowered when another worker takes the rest.
    end: u64,
    /// The bytes before this are claimed: written, or being written by the span's holder.
    pos: u64,
    /// When its first byte came, and where it stood then; None while it waits for an answer.
    flowing: Option<(Instant, u64)>,
    run: Run,
}

/// A body offered for splitting, held by its owner. Dropped, it leaves the board, and parts
/// still running stop.
pub struct Offer<'b> {
    board: &'b Board,
    pub transfer: Arc<Transfer>,
}

/// A part taken by an idle worker, with its slot on the host.
pub struct Part<'h> {
    transfer: Arc<Transfer>,
    index: usize,
    first: u64,
    last: u64,
    permit: crate::hosts::Permit<'h>,
    /// Ends the span however the part ends (a panic included), so that the owner never waits
    /// for a part nobody runs.
    _ends: Ends,
}

struct Ends {
    transfer: Arc<Transfer>,
    index: usize,
}

impl Drop for Ends {
    fn drop(&mut self) {
        self.transfer.end_span(self.index, None, false, false);
    }
}

impl Board {
    /// Sets what wakes the idle workers when a download may be split.
    pub fn set_waker(&self, wake: Box<dyn Fn() + Send + Sync>) {
        let _ = self.wake.set(wake);
    }

    /// Offers the body of `response` for splitting, if the server offers it in ranges and it
    /// is at least `min_bytes` long; `received` bytes have come already, at `flowing_since`.
    pub fn offer(
        &self,
        response: &Response,
        host: &str,
        file: impl FnOnce() -> std::io::Result<File>,
        min_bytes: u64,
        received: u64,
        flowing_since: Instant,
    ) -> Option<Offer<'_>> {
        let total = response.content_length?;
        let ranges = &response.ranges;
        if min_bytes == 0 || total < min_bytes || total < 2 * MIN_PART || !ranges.accepted {
            return None;
        }
        let (url, validator) = (ranges.url.clone()?, ranges.if_range()?.to_string());
        let file = file().ok()?;
        let transfer = Arc::new(Transfer {
            url,
            validator,
            first: ranges.clone(),
            host: host.to_string(),
            total,
            file,
            ttfb: response.ttfb,
            state: Mutex::new(Spans {
                spans: vec![Span {
                    end: total,
                    pos: received,
                    flowing: Some((flowing_since, 0)),
                    run: Run::Running,
                }],
                ..Spans::default()
            }),
            changed: Condvar::new(),
        });
        lock(&self.transfers).push(transfer.clone());
        if let Some(wake) = self.wake.get() {
            wake();
        }
        Some(Offer {
            board: self,
            transfer,
        })
    }

    /// Takes the second half of the longest span still to come, with a slot on its host, if
    /// one is worth a part and the host has a slot free now.
    pub fn take<'h>(&self, hosts: &'h Hosts) -> Option<Part<'h>> {
        let transfers = lock(&self.transfers);
        let now = Instant::now();
        // (time left, transfer, span, split point)
        let mut best: Option<(f64, &Arc<Transfer>, usize, u64)> = None;
        for transfer in transfers.iter() {
            let state = lock(&transfer.state);
            if state.closed {
                continue;
            }
            for (i, span) in state.spans.iter().enumerate() {
                let Some((since, at)) = span.flowing else {
                    continue;
                };
                let elapsed = now.duration_since(since);
                if span.run != Run::Running || elapsed < RATE_AFTER || span.pos <= at {
                    continue;
                }
                let rate = (span.pos - at) as f64 / elapsed.as_secs_f64();
                // The span runs on while the part waits for its first byte: split where both
                // would end together.
                let lead = (rate * transfer.ttfb.as_secs_f64()) as u64;
                let split = (span.pos + span.end).saturating_add(lead) / 2;
                if split >= span.end || span.end - split < MIN_PART {
                    continue;
                }
                let left = (span.end - span.pos) as f64 / rate;
                if best.as_ref().is_none_or(|b| left > b.0) {
                    best = Some((left, transfer, i, split));
                }
            }
        }
        let (_, transfer, i, split) = best?;
        let permit = hosts.try_enter(&transfer.host)?;
        let mut state = lock(&transfer.state);
        let span = state.spans.get_mut(i)?;
        // The holder may have moved on since the look above; the split must stay ahead of it.
        if span.run != Run::Running || split <= span.pos || split >= span.end {
            return None;
        }
        let end = std::mem::replace(&mut span.end, split);
        state.spans.push(Span {
            end,
            pos: split,
            flowing: None,
            run: Run::Running,
        });
        let index = state.spans.len() - 1;
        log::debug!(
            "{}: fetching bytes {split}-{} of {} in a part of its own",
            transfer.url,
            end - 1,
            transfer.total
        );
        Some(Part {
            transfer: transfer.clone(),
            index,
            first: split,
            last: end - 1,
            permit,
            _ends: Ends {
                transfer: transfer.clone(),
                index,
            },
        })
    }

    fn withdraw(&self, transfer: &Arc<Transfer>) {
        lock(&self.transfers).retain(|t| !Arc::ptr_eq(t, transfer));
    }
}

impl Drop for Offer<'_> {
    fn drop(&mut self) {
        self.board.withdraw(&self.transfer);
        let mut state = lock(&self.transfer.state);
        state.closed = true;
        state.abandoned = true;
        drop(state);
        self.transfer.changed.notify_all();
    }
}

impl Transfer {
    /// The owner's next piece of `n` bytes: how many of them are its own (the rest belong to
    /// parts), at most to the end of its span.
    /// Also says whether its span is complete with them.
    pub fn claim(&self, n: usize) -> (usize, bool) {
        let (_, take) = self.advance(0, n);
        let state = lock(&self.state);
        (take, state.spans[0].pos >= state.spans[0].end)
    }

    /// Claims up to `n` bytes of span `i` (at most to its end): where they go, and how many.
    /// None when it is complete or the owner gave up.
    fn advance(&self, i: usize, n: usize) -> (u64, usize) {
        let mut state = lock(&self.state);
        let abandoned = state.abandoned;
        let span = &mut state.spans[i];
        let at = span.pos;
        if abandoned {
            return (at, 0);
        }
        let take = (span.end.saturating_sub(span.pos)).min(n as u64);
        span.pos += take;
        (at, take as usize)
    }

    /// Ends span `i`: done if it reached its end, else failed from `pos` on (`pos` set back to
    /// the last byte written if a write failed). `reject` closes the body to further parts: the
    /// server did not honour a range.
    fn end_span(&self, i: usize, written_to: Option<u64>, reject: bool, changed: bool) {
        let mut state = lock(&self.state);
        state.closed |= reject || changed;
        state.entity_changed |= changed;
        let span = &mut state.spans[i];
        if let Some(pos) = written_to {
            span.pos = pos;
        }
        let (pos, end) = (span.pos, span.end);
        // A part that wrote nothing goes back to the span it was split from, if that one is
        // still streaming up to it: a server that refuses a range costs nothing but the request.
        if pos < end {
            let before = state
                .spans
                .iter()
                .position(|s| s.run == Run::Running && s.end == pos);
            if let Some(j) = before {
                state.spans[j].end = end;
                state.spans[i].end = pos;
            }
        }
        let span = &mut state.spans[i];
        span.run = if span.pos >= span.end {
            Run::Done
        } else {
            Run::Failed
        };
        drop(state);
        self.changed.notify_all();
    }

    /// Whether the body was split at all.
    pub fn was_split(&self) -> bool {
        lock(&self.state).spans.len() > 1
    }

    /// The owner's part is over (`complete` or not): closes the body to new parts once every
    /// part has ended, and returns the gaps left, `(from, to)` exclusive, in order. Err if a part
    /// saw the body change on the server.
    pub fn finish(&self, board: &Board, complete: bool) -> Result<Vec<(u64, u64)>, Failure> {
        let mut state = lock(&self.state);
        {
            let owner = &mut state.spans[0];
            owner.run = if complete && owner.pos >= owner.end {
                Run::Done
            } else {
                Run::Failed
            };
        }
        // Parts end by their deadline (the agent's timeout), so this wait is bounded.
        while state.spans.iter().any(|s| s.run == Run::Running) {
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        state.closed = true;
        drop(state);
        board.withdraw_ptr(self);
        let state = lock(&self.state);
        if state.entity_changed {
            return Err(changed_failure());
        }
        let mut gaps: Vec<(u64, u64)> = state
            .spans
            .iter()
            .filter(|s| s.run == Run::Failed && s.pos < s.end)
            .map(|s| (s.pos, s.end))
            .collect();
        gaps.sort_unstable();
        Ok(gaps)
    }

    /// Fetches the bytes `from..to` again, as the owner: a `206` of exactly that range, or a
    /// `200` of the same entity (its bytes before `from` skipped). If the answer to the range is
    /// neither, the body is asked for whole, without a range, as a single stream would.
    pub fn fill(&self, http: &Http, from: u64, to: u64, chunk: &mut [u8]) -> Result<(), Failure> {
        let failed = |failed: crate::fetch::HttpFailure| failed.failure;
        let mut response = http
            .get_range(&self.url, from, to - 1, &self.validator)
            .map_err(failed)?;
        let whole = match self.judge(&response, from, to - 1) {
            Verdict::Part => false,
            Verdict::Whole => true,
            Verdict::Changed => return Err(changed_failure()),
            Verdict::Wrong(why) => {
                log::info!("{}: {why}; fetching the body whole", self.url);
                response = http.get(&self.url).map_err(failed)?;
                if response.content_length != Some(self.total)
                    || !self.same_entity(&response.ranges)
                {
                    return Err(changed_failure());
                }
                true
            }
        };
        // A whole body: skip to the gap.
        let mut skip = if whole { from } else { 0 };
        while skip > 0 {
            let want = chunk.len().min(usize::try_from(skip).unwrap_or(usize::MAX));
            let n = super::read(&mut response.body, &mut chunk[..want])?;
            if n == 0 {
                return Err(cut_short(from, to));
            }
            skip -= n as u64;
        }
        let mut at = from;
        while at < to {
            let want = chunk.len().min(usize::try_from(to - at).unwrap_or(usize::MAX));
            let n = super::read(&mut response.body, &mut chunk[..want])?;
            if n == 0 {
                return Err(cut_short(from, to));
            }
            self.file.write_all_at(&chunk[..n], at).map_err(|e| {
                Failure::local(format!("cannot write a range of the body to the blob store: {e}"))
            })?;
            at += n as u64;
        }
        Ok(())
    }

    /// Whether an answer's validators are the first answer's (those it has).
    fn same_entity(&self, got: &Ranges) -> bool {
        let same = |ours: &Option<String>, theirs: &Option<String>| match (ours, theirs) {
            (Some(ours), Some(theirs)) => ours == theirs,
            _ => true,
        };
        same(&self.first.etag, &got.etag) && same(&self.first.last_modified, &got.last_modified)
    }

    /// What an answer to a range request for `first..=last` is.
    fn judge(&self, response: &Response, first: u64, last: u64) -> Verdict {
        let got = &response.ranges;
        if !self.same_entity(got) {
            return Verdict::Changed;
        }
        if response.status == 200 {
            return if response.content_length == Some(self.total) {
                Verdict::Whole
            } else {
                Verdict::Changed
            };
        }
        if response.status != 206 {
            return Verdict::Wrong(format!("HTTP {} to a range request", response.status));
        }
        let want = format!("bytes {first}-{last}/{}", self.total);
        if got.content_range.as_deref() != Some(want.as_str()) {
            return Verdict::Wrong(format!(
                "asked for {want}, the server sent Content-Range {:?}",
                got.content_range.as_deref().unwrap_or("(none)")
            ));
        }
        if response.content_length.is_some_and(|n| n != last + 1 - first) {
            return Verdict::Wrong(format!(
                "Content-Range {want} with a Content-Length of {}",
                response.content_length.unwrap_or(0)
            ));
        }
        Verdict::Part
    }
}

impl Board {
    fn withdraw_ptr(&self, transfer: &Transfer) {
        lock(&self.transfers).retain(|t| !std::ptr::eq(Arc::as_ptr(t), transfer));
    }
}

/// An answer to a range request.
enum Verdict {
    /// The `206` asked for.
    Part,
    /// A `200` with the whole body, of the same entity.
    Whole,
    /// Another entity: the body changed on the server.
    Changed,
    /// Not what was asked for.
    Wrong(String),
}

fn changed_failure() -> Failure {
    Failure::transient(
        Reason::Network,
        "the image changed on the server while it was fetched in parts",
    )
}

fn cut_short(from: u64, to: u64) -> Failure {
    Failure::transient(
        Reason::Truncated,
        format!("a range of the body (bytes {from}-{}) was cut short", to - 1),
    )
}

impl Part<'_> {
    /// Fetches the part and writes it at its offset. Returns the host, the status of the answer
    /// and what the host learnt from it, if the server answered.
    pub fn run(self, http: &Http, chunk: &mut [u8]) -> Option<(String, u16, Reaction)> {
        let Part {
            transfer,
            index,
            first,
            last,
            permit,
            _ends,
        } = self;
        let host = transfer.host.clone();
        let mut response = match http.get_range(&transfer.url, first, last, &transfer.validator) {
            Ok(response) => response,
            Err(failed) => {
                log::debug!("{}: a part failed: {}", transfer.url, failed.failure.error);
                transfer.end_span(index, None, false, false);
                let status = failed.status?;
                let signal = if status_means_slow_down(status) {
                    Signal::SlowDown
                } else {
                    Signal::Fine
                };
                return Some((host, status, permit.answered(signal)));
            }
        };
        let status = response.status;
        let verdict = transfer.judge(&response, first, last);
        if let Some((why, changed)) = match verdict {
            Verdict::Part => None,
            Verdict::Changed => Some((
                "the body changed on the server while it was fetched in parts".to_string(),
                true,
            )),
            Verdict::Whole => Some((
                "the server answered a range with the whole body".to_string(),
                false,
            )),
            Verdict::Wrong(why) => Some((why, false)),
        } {
            log::info!("{}: a part was rejected, and the body is not split further: {why}", transfer.url);
            transfer.end_span(index, None, true, changed);
            return Some((host, status, permit.answered(Signal::Fine)));
        }
        lock(&transfer.state).spans[index].flowing = Some((Instant::now(), first));
        loop {
            let n = match super::read(&mut response.body, chunk) {
                Ok(n) => n,
                Err(failure) => {
                    log::debug!("{}: a part failed: {}", transfer.url, failure.error);
                    0
                }
            };
            let (at, take) = transfer.advance(index, n);
            if take > 0 {
                if let Err(e) = transfer.file.write_all_at(&chunk[..take], at) {
                    log::warn!("{}: cannot write a part to the blob store: {e}", transfer.url);
                    transfer.end_span(index, Some(at), false, false);
                    break;
                }
            }
            // Its end came (another worker took the rest, or the owner gave up), or the body
            // ended: done if it is complete, else the owner fetches the rest.
            if take < n || n == 0 {
                transfer.end_span(index, None, false, false);
                break;
            }
        }
        // The slot is held until the body is in, as the owner's is.
        Some((host, status, permit.answered(Signal::Fine)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A board with one body of `total` bytes whose owner has `pos` bytes after 100 ms, with a
    /// time to first byte of 150 ms.
    fn board_with(total: u64, pos: u64) -> (Board, Arc<Transfer>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let file = File::create(dir.path().join("body")).unwrap();
        let transfer = Arc::new(Transfer {
            url: Url::parse("http://127.0.0.1:1/a.jpg").unwrap(),
            validator: "\"tag\"".into(),
            first: Ranges::default(),
            host: "127.0.0.1:1".into(),
            total,
            file,
            ttfb: Duration::from_millis(150),
            state: Mutex::new(Spans {
                spans: vec![Span {
                    end: total,
                    pos,
                    flowing: Some((Instant::now() - Duration::from_millis(100), 0)),
                    run: Run::Running,
                }],
                ..Spans::default()
            }),
            changed: Condvar::new(),
        });
        let board = Board::default();
        lock(&board.transfers).push(transfer.clone());
        (board, transfer, dir)
    }

    fn spans(transfer: &Transfer) -> Vec<(u64, u64, Run)> {
        let state = lock(&transfer.state);
        state.spans.iter().map(|s| (s.pos, s.end, s.run)).collect()
    }

    #[test]
    fn a_part_starts_where_both_halves_would_end_together() {
        // 2 MB in 100 ms: 20 MB/s, so the owner gets 3 MB further while the part waits 150 ms.
        let (board, transfer, _dir) = board_with(10_000_000, 2_000_000);
        let hosts = Hosts::new(4, 1_000, 60_000);
        let _owner = hosts.enter("127.0.0.1:1").unwrap();
        hosts.heard("127.0.0.1:1", Signal::Fine); // slow start: room for one more
        let part = board.take(&hosts).expect("a part");
        // (Less as the clock moves on between the setup and the look.)
        assert!((7_400_000..=7_500_000).contains(&part.first), "{}", part.first);
        assert_eq!(part.last, 9_999_999);
        assert_eq!(
            spans(&transfer),
            [
                (2_000_000, part.first, Run::Running),
                (part.first, 10_000_000, Run::Running)
            ]
        );
        // No slot free on the host: no part, and nothing changes.
        assert!(board.take(&hosts).is_none());
        assert_eq!(spans(&transfer).len(), 2);
    }

    #[test]
    fn no_part_smaller_than_the_least_worth_one() {
        // 3.4 MB left at 20 MB/s: both halves would end together with a part from 5.2 MB to
        // 5.4 MB, under the least worth a request.
        let (board, _transfer, _dir) = board_with(5_400_000, 2_000_000);
        let hosts = Hosts::new(4, 1_000, 60_000);
        hosts.heard("127.0.0.1:1", Signal::Fine);
        assert!(board.take(&hosts).is_none());
    }

    #[test]
    fn a_part_that_wrote_nothing_goes_back_to_the_owner_and_a_cut_one_leaves_a_gap() {
        let (board, transfer, _dir) = board_with(10_000_000, 2_000_000);
        let hosts = Hosts::new(4, 1_000, 60_000);
        hosts.heard("127.0.0.1:1", Signal::Fine);
        hosts.heard("127.0.0.1:1", Signal::Fine);
        let part = board.take(&hosts).unwrap();
        // Refused: the owner streams on to the end.
        transfer.end_span(part.index, None, true, false);
        assert_eq!(spans(&transfer)[0], (2_000_000, 10_000_000, Run::Running));
        assert!(lock(&transfer.state).closed, "split no further");
        drop(part);
        assert_eq!(transfer.claim(9_000_000), (8_000_000, true));
        assert_eq!(transfer.finish(&board, true).unwrap(), vec![]);
        assert!(lock(&board.transfers).is_empty(), "withdrawn");

        // A part cut after 1,000 bytes leaves the rest of it to the owner.
        let (board, transfer, _dir) = board_with(10_000_000, 2_000_000);
        let part = board.take(&hosts).unwrap();
        let first = part.first;
        assert_eq!(transfer.advance(part.index, 1_000), (first, 1_000));
        drop(part); // ends its span, as a part that panicked would
        assert_eq!(transfer.claim(9_000_000), ((first - 2_000_000) as usize, true));
        assert_eq!(
            transfer.finish(&board, true).unwrap(),
            vec![(first + 1_000, 10_000_000)]
        );
    }
}
