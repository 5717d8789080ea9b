//! `jobctl import`: URLs from a file or stdin (plain lines, CSV or TSV) into the queue, fast and
//! with bounded memory however long the file or its lines.
//!
//! A parser thread reads, checks and (with --skip-existing) de-duplicates the input, and hands
//! batches to this thread, which writes them with the store's bulk import. The two overlap, so
//! parsing URLs costs no time on the writer's path.

use std::collections::HashSet;
use std::fs::File;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{self, BufRead, BufReader, IsTerminal};
use std::path::Path;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use super::args::Format;
use super::input::{self, CappedLines, Layout, Line};
use super::{Error, print_json};
use crate::joburl::{self, MAX_URL_LEN};

/// The longest line read in full: a URL of the maximum length plus room for a CR, blanks and a
/// priority field. Longer lines are skipped without being held in memory; a URL within a line
/// is then judged by the URL check itself, with its own limit.
const MAX_LINE_LEN: usize = MAX_URL_LEN + 256;
use crate::store::{NewJob, Store};

/// Rows the parser hands over at a time; the store gathers them into larger transactions.
const BATCH: usize = 10_000;
/// Batches in flight between the threads: enough to keep the writer busy, little memory.
const IN_FLIGHT: usize = 4;
/// Rejected lines listed one by one; the rest are only counted.
const LISTED_REJECTS: usize = 20;

/// What the parser found in the input.
#[derive(Default)]
struct Parsed {
    rejected: u64,
    /// The first LISTED_REJECTS rejected lines: (line number, why).
    rejects: Vec<(u64, String)>,
    /// URLs skipped because an earlier line had them (with --skip-existing).
    repeated: u64,
    format: &'static str,
    /// Why reading stopped early (a read error or a bad header), if it did.
    stopped: Option<Error>,
}

pub fn run(
    store: &dyn Store,
    file: &Path,
    format: Format,
    skip_existing: bool,
    as_json: bool,
) -> Result<(), Error> {
    let (input, size): (Box<dyn BufRead + Send>, Option<u64>) = if file == Path::new("-") {
        (
            Box::new(BufReader::with_capacity(1 << 20, io::stdin())),
            None,
        )
    } else {
        let f = File::open(file)
            .map_err(|e| Error::Failed(format!("cannot open {}: {e}", file.display())))?;
        let size = f.metadata().ok().filter(|m| m.is_file()).map(|m| m.len());
        (Box::new(BufReader::with_capacity(1 << 20, f)), size)
    };
    let bar = progress_bar(size);
    let (tx, rx) = sync_channel::<Vec<NewJob>>(IN_FLIGHT);
    let parser_bar = bar.clone();
    let parser = std::thread::Builder::new()
        .name("import-parser".into())
        .spawn(move || parse(input, format, skip_existing, &tx, parser_bar.as_ref()))
        .map_err(|e| Error::Failed(format!("cannot start the import: {e}")))?;
    let imported = store.import(&mut rx.into_iter(), skip_existing, &mut |added| {
        if let Some(bar) = &bar {
            bar.set_message(format!("{added} added"));
        }
    });
    // The receiver is gone now, so a parser still reading stops at its next batch.
    let parsed = parser
        .join()
        .map_err(|_| Error::Failed("the import's parser thread panicked".into()))?;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let name = if file == Path::new("-") {
        "stdin".to_string()
    } else {
        file.display().to_string()
    };
    let (added, skipped_existing) = imported.map_err(|e| {
        Error::Failed(format!(
            "{e}; the rows committed before this stay (rerun with --skip-existing to add the rest)"
        ))
    })?;
    for (line, why) in &parsed.rejects {
        eprintln!("line {line}: {why}");
    }
    if parsed.rejected > LISTED_REJECTS as u64 {
        eprintln!(
            "... and {} more rejected lines",
            parsed.rejected - LISTED_REJECTS as u64
        );
    }
    let skipped = skipped_existing + parsed.repeated;
    if as_json {
        print_json(&json!({
            "format": parsed.format,
            "added": added,
            "skipped": skipped,
            "skipped_existing": skipped_existing,
            "skipped_repeated": parsed.repeated,
            "rejected": parsed.rejected,
            "rejects": parsed.rejects.iter()
                .map(|(line, error)| json!({"line": line, "error": error}))
                .collect::<Vec<_>>(),
        }));
    } else if skip_existing {
        println!(
            "added {added}, skipped {skipped} ({skipped_existing} already in the queue, {} repeated \
             in the input), rejected {}",
            parsed.repeated, parsed.rejected
        );
    } else {
        // The format that cron scripts already parse; nothing is skipped without the flag.
        println!("added {added}, rejected {}", parsed.rejected);
    }
    match parsed.stopped {
        Some(Error::BadInput(why)) => {
            return Err(Error::BadInput(format!("{name}: {why}")));
        }
        Some(Error::Failed(why) | Error::NotFound(why)) => {
            return Err(Error::Failed(format!(
                "{name}: {why}; the {added} rows before it were added"
            )));
        }
        None => {}
    }
    if parsed.rejected > 0 {
        let (rejected, were) = match parsed.rejected {
            1 => ("1 line".to_string(), "was"),
            n => (format!("{n} lines"), "were"),
        };
        return Err(Error::BadInput(format!(
            "{rejected} of {name} {were} rejected; the other lines were added"
        )));
    }
    Ok(())
}

/// A bar on stderr when it is a terminal: bytes of a file, or a spinner for a pipe.
fn progress_bar(size: Option<u64>) -> Option<ProgressBar> {
    if !io::stderr().is_terminal() {
        return None;
    }
    let bar = match size {
        Some(size) => ProgressBar::new(size).with_style(
            ProgressStyle::with_template(
                "{wide_bar} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
            )
            .ok()?,
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {bytes} read, {bytes_per_sec} {msg}").ok()?,
        ),
    };
    bar.enable_steady_tick(Duration::from_millis(200));
    Some(bar)
}

/// The parser thread: reads every line, sends the good ones in batches, and reports the rest.
/// Returns early (without error) when the writer has gone away.
fn parse(
    input: Box<dyn BufRead + Send>,
    format: Format,
    skip_existing: bool,
    tx: &SyncSender<Vec<NewJob>>,
    bar: Option<&ProgressBar>,
) -> Parsed {
    let mut lines = CappedLines::new(input, MAX_LINE_LEN);
    let mut parsed = Parsed::default();
    let mut layout: Option<Layout> = None;
    // 16 bytes per distinct URL (a million URLs: ~32 MB with the table's slack), whatever
    // their length. Two URLs share a 128-bit hash with odds of ~1e-27 per pair of a million.
    let mut seen: HashSet<u128> = HashSet::new();
    let mut batch = Vec::with_capacity(BATCH);
    let reject = |parsed: &mut Parsed, line: u64, why: String| {
        parsed.rejected += 1;
        if parsed.rejects.len() < LISTED_REJECTS {
            parsed.rejects.push((line, why));
        }
    };
    loop {
        let (number, line) = match lines.next_line() {
            Ok(Some(found)) => found,
            Ok(None) => break,
            Err(e) => {
                let number = lines.number + 1;
                parsed.stopped = Some(Error::Failed(format!("reading line {number}: {e}")));
                break;
            }
        };
        // Kept untrimmed for records: a TSV line may start with an empty field (a tab).
        let raw = match line {
            Line::Text(text) => text,
            Line::TooLong(len) => {
                let why = format!(
                    "line is {len} bytes long; a line may have at most {MAX_LINE_LEN} (a URL {MAX_URL_LEN})"
                );
                reject(&mut parsed, number, why);
                continue;
            }
            Line::NotUtf8 => {
                reject(&mut parsed, number, "line is not UTF-8 text".into());
                continue;
            }
        };
        let text = raw.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        let layout = match &layout {
            Some(layout) => layout,
            None => {
                let (found, header) = match input::detect(text, format) {
                    Ok(found) => found,
                    Err(e) => {
                        parsed.stopped = Some(Error::BadInput(format!("line {number}: {e}")));
                        break;
                    }
                };
                parsed.format = found.name();
                let layout = layout.insert(found);
                if header {
                    continue;
                }
                layout
            }
        };
        let (url, priority) = match input::record(raw, layout) {
            Ok(found) => found,
            Err(why) => {
                reject(&mut parsed, number, why);
                continue;
            }
        };
        if let Err(why) = joburl::parse(&url) {
            reject(&mut parsed, number, why);
            continue;
        }
        if skip_existing && !seen.insert(hash128(&url)) {
            parsed.repeated += 1;
            continue;
        }
        batch.push(NewJob {
            url: url.into_owned(),
            priority,
            run_at: None,
            max_attempts: None,
        });
        if batch.len() == BATCH {
            if let Some(bar) = bar {
                bar.set_position(lines.bytes);
            }
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
            if tx.send(full).is_err() {
                return parsed;
            }
        }
    }
    if let Some(bar) = bar {
        bar.set_position(lines.bytes);
    }
    if !batch.is_empty() {
        let _ = tx.send(batch);
    }
    if parsed.format.is_empty() {
        parsed.format = Layout::LINES.name();
    }
    parsed
}

/// Two independent 64-bit SipHashes of the URL, as one 128-bit fingerprint.
fn hash128(url: &str) -> u128 {
    let mut a = DefaultHasher::new();
    url.hash(&mut a);
    let mut b = DefaultHasher::new();
    (0x5eed_u16, url).hash(&mut b);
    (u128::from(a.finish()) << 64) | u128::from(b.finish())
}
