//! `jobctl import`: one URL per line from a file or stdin, inserted in large transactions, with
//! memory bounded however long the file or its lines.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;

use super::Failure;
use crate::joburl::{self, MAX_URL_LEN};
use crate::store::{NewJob, SqliteStore};

/// Rows per transaction: large enough that commits cost nothing, small enough to keep the write
/// lock for only a moment, so the daemon and people at the sqlite3 shell get their turn.
const BATCH: usize = 10_000;
/// Rejected lines listed one by one on stderr; the rest are only counted.
const LISTED_REJECTS: usize = 20;

pub fn run(store: &SqliteStore, file: &Path) -> Result<(), Failure> {
    let input: Box<dyn BufRead> = if file == Path::new("-") {
        Box::new(io::stdin().lock())
    } else {
        let f = File::open(file)
            .map_err(|e| Failure::BadInput(format!("cannot open {}: {e}", file.display())))?;
        Box::new(BufReader::with_capacity(256 * 1024, f))
    };
    let mut lines = CappedLines::new(input, MAX_URL_LEN);
    let (mut added, mut rejected) = (0usize, 0usize);
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let number = lines.number + 1;
        let line = match lines.next_line() {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(e) => {
                return Err(Failure::Other(format!(
                    "{}: line {number}: {e}",
                    file.display()
                )));
            }
        };
        let text = match line {
            Line::Text(text) => text.trim(),
            Line::TooLong(len) => {
                let why = format!("line is {len} bytes long; a URL may have at most {MAX_URL_LEN}");
                reject(&mut rejected, number, &why);
                continue;
            }
            Line::NotUtf8 => {
                reject(&mut rejected, number, "line is not UTF-8 text");
                continue;
            }
        };
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        match joburl::parse(text) {
            Ok(_) => batch.push(NewJob {
                url: text.to_string(),
                priority: 0,
                run_at: None,
                max_attempts: None,
            }),
            Err(e) => reject(&mut rejected, number, &e),
        }
        if batch.len() == BATCH {
            added += store.add(&batch)?.len();
            batch.clear();
        }
    }
    added += store.add(&batch)?.len();
    if rejected > LISTED_REJECTS {
        eprintln!("... and {} more rejected lines", rejected - LISTED_REJECTS);
    }
    println!("added {added}, rejected {rejected}");
    if rejected > 0 {
        return Err(Failure::BadInput(format!(
            "{rejected} lines of {} were rejected; the other lines were added",
            file.display()
        )));
    }
    Ok(())
}

fn reject(rejected: &mut usize, line: u64, why: &str) {
    *rejected += 1;
    if *rejected <= LISTED_REJECTS {
        eprintln!("line {line}: {why}");
    }
}

enum Line<'a> {
    Text(&'a str),
    /// A line longer than the cap, with its length.
    TooLong(usize),
    NotUtf8,
}

/// Reads lines without ever holding more than `cap` bytes of one: a 1 GB line costs no memory.
struct CappedLines<R> {
    input: R,
    cap: usize,
    buf: Vec<u8>,
    number: u64,
}

impl<R: BufRead> CappedLines<R> {
    fn new(input: R, cap: usize) -> Self {
        CappedLines {
            input,
            cap,
            buf: Vec::with_capacity(cap),
            number: 0,
        }
    }

    fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        self.buf.clear();
        let mut seen = 0usize;
        let mut any = false;
        loop {
            let chunk = match self.input.fill_buf() {
                Ok(chunk) => chunk,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                break;
            }
            any = true;
            let (part, done) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (&chunk[..i], Some(i + 1)),
                None => (chunk, None),
            };
            if seen + part.len() <= self.cap {
                self.buf.extend_from_slice(part);
            }
            seen += part.len();
            let consumed = done.unwrap_or(chunk.len());
            self.input.consume(consumed);
            if done.is_some() {
                break;
            }
        }
        if !any {
            return Ok(None);
        }
        self.number += 1;
        if seen > self.cap {
            return Ok(Some(Line::TooLong(seen)));
        }
        match std::str::from_utf8(&self.buf) {
            Ok(text) => Ok(Some(Line::Text(text.trim_end_matches('\r')))),
            Err(_) => Ok(Some(Line::NotUtf8)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], cap: usize) -> Vec<String> {
        let mut reader = CappedLines::new(input, cap);
        let mut out = Vec::new();
        while let Some(line) = reader.next_line().unwrap() {
            out.push(match line {
                Line::Text(t) => t.to_string(),
                Line::TooLong(n) => format!("too long: {n}"),
                Line::NotUtf8 => "not UTF-8".into(),
            });
        }
        out
    }

    #[test]
    fn splits_lines_and_caps_long_ones() {
        assert_eq!(lines(b"a\r\nbb\n\nccc", 5), ["a", "bb", "", "ccc"]);
        assert_eq!(lines(b"abcdefgh\nok\n", 5), ["too long: 8", "ok"]);
        assert!(lines(b"", 5).is_empty());
    }

    #[test]
    fn invalid_utf8_is_a_line_of_its_own() {
        assert_eq!(lines(b"\xff\xfe\nok", 10), ["not UTF-8", "ok"]);
    }
}
