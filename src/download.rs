//! One attempt at one job: judge the URL, fetch it, prove from the bytes that it is an image,
//! stream it into the blob store, and say what happened.
//!
//! Architecture invariant: no SQL here. The attempt's outcome goes back as a [`Report`], which the
//! worker records through the queue.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Instant;

use url::Url;

use crate::blobs::{BlobStore, Sealed};
use crate::config::{Config, RetryConfig};
use crate::fetch::{Http, Response, io_failure};
use crate::hosts::{self, Hosts, Permit, Reaction, Signal};
use crate::job::{Claimed, Failure, Outcome, RawUrl, Reason, Report, Stored, now_ms};
use crate::joburl;
use crate::retry::{self, status_means_slow_down};
use crate::sniff::{self, SNIFF_LEN};
use crate::store::{HostChange, Queue};
use crate::validate::decode::{self, Decoded};
use crate::validate::{Invalid, Level, Limits, Problem, ReadAt, Validator};
use crate::worker::{Handled, Handler};

mod split;

use split::Board;

thread_local! {
    /// Each worker's read buffer, kept between jobs: allocating and zeroing 64 KiB per job shows
    /// in the profile at thousands of small images a second.
    static CHUNK: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; 64 * 1024]);
}

/// The real job handler: download, verify, store.
pub struct Downloader {
    /// Shared with the committer, which makes the sealed blobs durable.
    blobs: Arc<BlobStore>,
    http: Http,
    hosts: Arc<Hosts>,
    max_bytes: u64,
    limits: Limits,
    level: Level,
    /// Full decodes running at once (`validate = "decode"`): one per core. More would not finish
    /// sooner, and each may hold a decoder's buffers of up to `max_pixels` pixels.
    decoders: Slots,
    retry: RetryConfig,
    /// Where a host's new limit or pause goes, for every daemon on the queue.
    queue: Arc<dyn Queue>,
    /// Large bodies in flight that idle workers may help with (`split_min_bytes`; 0: never).
    board: Board,
    split_min_bytes: u64,
}

impl Downloader {
    pub fn new(
        config: &Config,
        blobs: Arc<BlobStore>,
        queue: Arc<dyn Queue>,
    ) -> Result<Downloader, crate::fetch::ClientError> {
        Ok(Downloader {
            http: Http::new(&config.fetch, config.workers)?,
            hosts: Arc::new(
                Hosts::new(
                    config.fetch.max_per_host,
                    config.retry.base_delay_ms,
                    config.retry.max_delay_ms,
                )
                .with_rate(config.fetch.max_rate_per_host),
            ),
            blobs,
            max_bytes: config.fetch.max_bytes,
            limits: Limits {
                max_pixels: config.fetch.max_pixels,
                max_frames: config.fetch.max_frames,
            },
            level: config.fetch.validate,
            decoders: Slots::new(std::thread::available_parallelism().map_or(1, usize::from)),
            retry: config.retry.clone(),
            queue,
            board: Board::default(),
            split_min_bytes: config.fetch.split_min_bytes,
        })
    }
}

impl Downloader {
    /// The daemon's politeness, for the metrics.
    pub fn hosts(&self) -> Arc<Hosts> {
        self.hosts.clone()
    }

    /// Logs what a host's answer changed, and tells the queue a narrowing or a pause at once,
    /// for every daemon: their claims pass over a paused host's jobs until the pause ends, and
    /// each takes its part of a narrowed limit at its next heartbeat. A widening waits for this
    /// daemon's next heartbeat (`crate::heartbeat`).
    fn learned(&self, host: &str, status: u16, reaction: Reaction, now: i64) {
        let change = match reaction {
            Reaction::None => return,
            Reaction::Widened(limit) => {
                match limit {
                    Some(limit) => log::debug!("{host}: up to {limit} requests to it at once again"),
                    None => log::debug!("{host}: as many requests to it as to any host again"),
                }
                return;
            }
            Reaction::Narrowed(limit) => {
                log::info!("{host} answered {status}: at most {limit} requests to it at once");
                HostChange::Narrowed {
                    max_in_flight: u32::try_from(limit).unwrap_or(u32::MAX),
                }
            }
            Reaction::Paused {
                until,
                strikes,
                limit,
            } => {
                log::info!(
                    "{host} answered {status}: no requests to it for {} ms",
                    until - now
                );
                HostChange::Paused {
                    until,
                    strikes,
                    max_in_flight: limit.map(|l| u32::try_from(l).unwrap_or(u32::MAX)),
                }
            }
        };
        if let Err(e) = self.queue.record_host(host, change) {
            log::warn!("cannot record what {host} answered in the database: {e}");
        }
    }
}

impl Handler for Downloader {
    fn pass_over(&self) -> Vec<String> {
        self.hosts.left_to_others()
    }

    fn set_waker(&self, wake: Box<dyn Fn() + Send + Sync>) {
        self.board.set_waker(wake);
    }

    fn help(&self) -> Option<Box<dyn FnOnce() + '_>> {
        let part = self.board.take(&self.hosts)?;
        Some(Box::new(move || {
            let answered = CHUNK.with(|chunk| part.run(&self.http, &mut chunk.borrow_mut()));
            if let Some((host, status, reaction)) = answered {
                self.learned(&host, status, reaction, now_ms());
            }
        }))
    }

    fn handle(&self, job: &Claimed) -> Handled {
        let url = match &job.url {
            RawUrl::Text(raw) => joburl::parse(raw),
            RawUrl::NotText(kind) => Err(format!("url is {kind}, not text")),
        };
        let url = match url {
            Ok(url) => url,
            Err(error) => {
                let mut report = Report::new(Outcome::Failed { error });
                report.reason = Some(Reason::BadUrl);
                return Handled::Report(report);
            }
        };
        // The database's key for the job's host, which the claim goes by; the URL's own for a
        // job whose url the database could not read one from.
        let host = job.host.clone().unwrap_or_else(|| hosts::key(&url));
        let permit = match self.hosts.enter(&host) {
            Ok(permit) => permit,
            Err(until) => return Handled::Report(Report::new(retry::while_host_cools(until))),
        };
        // Only a job's first try is split: a retry, whatever failed before, streams the body
        // whole as it always has, so that a server whose ranges misbehave in a way no check
        // here foresaw (an ETag that changes at every request, say) costs a try, not the job.
        let split = (job.attempt <= 1).then_some(host.as_str());
        let (mut report, result) = self.attempt(&url, split, &permit);
        let now = now_ms();
        let mut signal = Signal::Fine;
        let sealed = match result {
            Ok((stored, sealed)) => {
                report.outcome = Outcome::Done(stored);
                Some(sealed)
            }
            Err(failure) => {
                report.reason = Some(failure.reason);
                if report.http_status.is_some_and(status_means_slow_down) {
                    signal = match failure.retry_after {
                        // The server's explicit word, capped as the job's own retry is.
                        Some(_) => Signal::PauseUntil(
                            now + retry::retry_delay_ms(&failure, job.attempts, &self.retry) as i64,
                        ),
                        None => Signal::SlowDown,
                    };
                }
                report.outcome = retry::after_failure(job, failure, &self.retry, now);
                None
            }
        };
        // Only an answer says something about the host; a failure to reach it frees the slot.
        if let Some(status) = report.http_status {
            self.learned(&host, status, permit.answered(signal), now);
        } else {
            drop(permit);
        }
        match sealed {
            Some(blob) => Handled::Stored(report, blob),
            None => Handled::Report(report),
        }
    }
}

impl Downloader {
    /// One GET: the report's facts (status, types, timings) and the stored image or the failure.
    /// `split`: the host's key, if the body may be split (see split.rs).
    fn attempt(
        &self,
        url: &Url,
        split: Option<&str>,
        permit: &Permit<'_>,
    ) -> (Report, Result<(Stored, Sealed), Failure>) {
        let mut report = Report::new(Outcome::Failed {
            error: String::new(),
        });
        let result = match self.http.get(url) {
            Err(failed) => {
                report.http_status = failed.status;
                report.declared_mime = failed.declared_mime;
                report.ttfb_ms = failed.ttfb.map(|d| d.as_millis() as i64);
                Err(failed.failure)
            }
            Ok(mut response) => {
                permit.accepted();
                report.http_status = Some(response.status);
                report.declared_mime = response.declared_mime.take();
                report.ttfb_ms = Some(response.ttfb.as_millis() as i64);
                let started = Instant::now();
                let mut received = 0;
                let stored = self.store_body(&mut response, split, &mut received);
                report.download_ms = Some(started.elapsed().as_millis() as i64);
                report.bytes = Some(received);
                stored
            }
        };
        (report, result)
    }

    /// Streams the body into a new blob while hashing it. Stops as soon as the first bytes show
    /// that it is not an image, or it grows past `max_bytes`. The blob comes back sealed; the
    /// committer makes it durable with the rest of its group before recording `done`.
    fn store_body(
        &self,
        response: &mut Response,
        split: Option<&str>,
        received: &mut u64,
    ) -> Result<(Stored, Sealed), Failure> {
        CHUNK.with(|chunk| self.stream_body(response, split, received, &mut chunk.borrow_mut()))
    }

    fn stream_body(
        &self,
        response: &mut Response,
        split: Option<&str>,
        received: &mut u64,
        chunk: &mut [u8],
    ) -> Result<(Stored, Sealed), Failure> {
        let flowing_since = Instant::now();
        if let Some(declared) = response.content_length.filter(|&n| n > self.max_bytes) {
            return Err(Failure::permanent(
                Reason::TooLarge,
                format!(
                    "too large: the server announced {declared} bytes; the limit is {} ([fetch] max_bytes)",
                    self.max_bytes
                ),
            ));
        }
        let mut head = Vec::with_capacity(SNIFF_LEN);
        // Read until the format can be judged, before anything touches the disk.
        let mut eof = false;
        while head.len() < SNIFF_LEN {
            let n = read(&mut response.body, chunk)?;
            if n == 0 {
                eof = true;
                break;
            }
            head.extend_from_slice(&chunk[..n]);
        }
        *received = head.len() as u64;
        let format = sniff::sniff(&head).map_err(|e| with_declared(e, response))?;
        let limits = self.limits;
        let mut validator = Validator::for_mime(format.mime, limits);
        let invalid = |e: Invalid| refusal(e, format.mime, response.content_length);
        validator.feed(&head).map_err(invalid)?;
        let storage = |e: std::io::Error| {
            Failure::local(format!(
                "cannot write to the blob store {}: {e}",
                self.blobs.root().display()
            ))
        };
        let mut blob = self.blobs.create().map_err(storage)?;
        blob.write_all(&head).map_err(storage)?;
        let (mut offer, mut own_done) = (None::<split::Offer>, false);
        let mut offered = split.is_none();
        // The rest of the body, unless it already ended inside the sniffed head. Each piece is
        // validated, hashed and written in one pass; a body that cannot become an image stops
        // the download at once.
        while !eof && !own_done {
            let mut n = read(&mut response.body, chunk)?;
            if n == 0 {
                eof = true;
                continue;
            }
            match &offer {
                Some(offer) => (n, own_done) = offer.transfer.claim(n),
                // A large body may be split once its rate can be told: idle workers then fetch
                // the rest in parts (split.rs), and this stream stops where they begin.
                None if !offered && flowing_since.elapsed() >= split::RATE_AFTER => {
                    offered = true;
                    offer = self.board.offer(
                        response,
                        split.unwrap_or_default(),
                        || blob.ranges_file(),
                        self.split_min_bytes,
                        *received + n as u64,
                        flowing_since,
                    );
                }
                None => {}
            }
            *received += n as u64;
            if *received > self.max_bytes {
                return Err(Failure::permanent(
                    Reason::TooLarge,
                    format!(
                        "too large: the body grew past the limit of {} bytes ([fetch] max_bytes)",
                        self.max_bytes
                    ),
                ));
            }
            validator.feed(&chunk[..n]).map_err(invalid)?;
            blob.write_all(&chunk[..n]).map_err(storage)?;
        }
        if let Some(offer) = &offer {
            let transfer = &offer.transfer;
            let gaps = transfer.finish(&self.board, own_done)?;
            // Unsplit, a body cut short fails as it always has (below).
            if transfer.was_split() {
                // The parts that failed, and the owner's own rest if its stream broke: fetched
                // again by this worker, within its own slot on the host.
                for (from, to) in gaps {
                    transfer.fill(&self.http, from, to, chunk)?;
                }
                // The parts are in the file: the hash and the validator take them in order.
                let total = response.content_length.unwrap_or(*received);
                blob.take_in(total, chunk, |piece| validator.feed(piece).map_err(invalid))
                    .map_err(storage)??;
                *received = total;
            }
        }
        if let Some(declared) = response.content_length.filter(|&n| n != *received) {
            return Err(Failure::transient(
                Reason::Truncated,
                format!("the body was cut short: {received} of {declared} bytes arrived"),
            ));
        }
        let image = validator
            .finish(&mut TempFile::new(blob.temp_path()))
            .map_err(invalid)?;
        let (validation, validation_note) = match self.level {
            Level::Structure => (Level::Structure, None),
            Level::Decode => match self
                .decoders
                .run(|| decode::decode_file(format.mime, blob.temp_path(), limits))
            {
                Ok(Decoded::Full) => (Level::Decode, None),
                Ok(Decoded::Unsupported(why)) => (Level::Structure, Some(why)),
                Err(e) => return Err(invalid(e)),
            },
        };
        let mut sealed = blob.seal(format.ext);
        self.blobs.prepare(&mut sealed).map_err(storage)?;
        let stored = Stored {
            mime: format.mime,
            sha256: sealed.sha256.clone(),
            blob_path: sealed.rel_path.clone(),
            bytes: sealed.bytes,
            width: image.width,
            height: image.height,
            validation,
            validation_note,
        };
        Ok((stored, sealed))
    }
}

/// The failure for a body that is not a whole, acceptable image. A body cut short although it
/// is as long as the server announced is the server's file, and retrying gets the same bytes;
/// one without a Content-Length may have lost its connection, so it is tried again.
fn refusal(e: Invalid, mime: &str, content_length: Option<u64>) -> Failure {
    let message = format!("{e} (detected {mime})");
    match e.problem {
        Problem::Truncated if content_length.is_none() => {
            Failure::transient(Reason::Truncated, message)
        }
        Problem::Truncated | Problem::Corrupt => Failure::permanent(Reason::InvalidImage, message),
        Problem::TooLarge => Failure::permanent(
            Reason::TooLarge,
            format!("{e} ([fetch] max_pixels, max_frames; detected {mime})"),
        ),
    }
}

/// A counting semaphore: at most `n` holders at once, the others wait their turn.
struct Slots {
    free: std::sync::Mutex<usize>,
    freed: std::sync::Condvar,
}

impl Slots {
    fn new(n: usize) -> Slots {
        Slots {
            free: std::sync::Mutex::new(n.max(1)),
            freed: std::sync::Condvar::new(),
        }
    }

    /// Runs `f` in a slot, waiting for one to be free.
    fn run<T>(&self, f: impl FnOnce() -> T) -> T {
        {
            let mut free = crate::lock(&self.free);
            while *free == 0 {
                free = self
                    .freed
                    .wait(free)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            *free -= 1;
        }
        // Given back even if `f` panics (the worker's panic path records the job).
        struct Release<'a>(&'a Slots);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                *crate::lock(&self.0.free) += 1;
                self.0.freed.notify_one();
            }
        }
        let _release = Release(self);
        f()
    }
}

/// The temporary file, opened for reading only if a validator reads back (TIFF's directories).
struct TempFile<'a> {
    path: &'a std::path::Path,
    file: Option<std::fs::File>,
}

impl<'a> TempFile<'a> {
    fn new(path: &'a std::path::Path) -> TempFile<'a> {
        TempFile { path, file: None }
    }
}

impl ReadAt for TempFile<'_> {
    fn read_exact_at(&mut self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        let file = match &mut self.file {
            Some(file) => file,
            None => self.file.insert(std::fs::File::open(self.path)?),
        };
        file.read_exact_at(buf, offset)
    }
}

fn read(body: &mut impl Read, buf: &mut [u8]) -> Result<usize, Failure> {
    loop {
        match body.read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => return other.map_err(|e| io_failure("reading the body", &e)),
        }
    }
}

/// Adds the declared type to a not-an-image error: "the server said image/jpeg" helps the reader.
fn with_declared(error: String, response: &Response) -> Failure {
    match &response.declared_mime {
        Some(declared) => Failure::permanent(
            Reason::NotImage,
            format!("{error}; the server said {declared}"),
        ),
        None => Failure::permanent(Reason::NotImage, error),
    }
}

#[cfg(test)]
mod tests {
    use super::Slots;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    #[test]
    fn slots_let_in_as_many_as_they_have_and_no_more() {
        let slots = Slots::new(2);
        let (running, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
        std::thread::scope(|s| {
            for _ in 0..5 {
                s.spawn(|| {
                    slots.run(|| {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        // Stay until a third holder shows up (a broken limit) or 100 ms pass.
                        let deadline = Instant::now() + Duration::from_millis(100);
                        while running.load(Ordering::SeqCst) < 3 && Instant::now() < deadline {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        running.fetch_sub(1, Ordering::SeqCst);
                    })
                });
            }
        });
        assert_eq!(most.load(Ordering::SeqCst), 2);
        // A panic inside gives its slot back.
        let one = Slots::new(1);
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| one.run(|| panic!())));
        assert_eq!(one.run(|| 7), 7);
    }
}
