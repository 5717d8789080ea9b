//! jobctl's human-readable tables (`--json` output is in `json.rs`).

use super::time::relative;
use crate::job::{State, now_ms};
use crate::logger::span;
use crate::logger::timestamp;
use crate::store::{AttemptRow, JobRow, Stats};

fn or_dash<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

/// An RFC 3339 time with how long ago it was: `2026-11-26T08:00:00.000Z (3 min ago)`.
fn time(ms: Option<i64>, now: i64) -> String {
    ms.map_or_else(
        || "-".into(),
        |ms| format!("{} ({})", timestamp(ms), relative(ms, now)),
    )
}

/// A count with its noun: "1 blob", "3 blobs" (every noun jobctl counts takes an s).
pub fn count(n: impl Into<u64>, noun: &str) -> String {
    let n = n.into();
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

/// Keeps a table row on one line: control characters out, long text cut.
pub fn cell(text: &str, max: usize) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if clean.chars().count() <= max {
        clean
    } else {
        clean
            .chars()
            .take(max.saturating_sub(1))
            .chain(['…'])
            .collect()
    }
}

pub fn print_list(jobs: &[JobRow]) {
    let now = now_ms();
    println!(
        "{:>8}  {:<9}  {:>3}  {:>4}  {:<12}  URL / ERROR",
        "ID", "STATE", "TRY", "HTTP", "WHEN"
    );
    for job in jobs {
        // Queued for later: when it is due. Otherwise: when it last did something.
        let when = if job.state == State::Queued && job.run_at > now {
            relative(job.run_at, now)
        } else {
            relative(job.last_activity(), now)
        };
        let detail = match (job.state, &job.error) {
            (State::Running, _) if job.cancel_requested => {
                format!("{}  (cancel requested)", cell(&job.url, 80))
            }
            (State::Failed | State::Queued | State::Cancelled, Some(error)) => {
                format!("{}  ({})", cell(&job.url, 60), cell(error, 80))
            }
            _ => cell(&job.url, 100),
        };
        println!(
            "{:>8}  {:<9}  {:>3}  {:>4}  {:<12}  {detail}",
            job.id,
            job.state,
            job.attempts,
            or_dash(job.http_status),
            when,
        );
    }
}

/// `structure`, `decode`, or `structure (decode: <why not>)`.
fn validated(job: &JobRow) -> String {
    match (&job.validation, &job.validation_note) {
        (Some(level), Some(note)) => format!("{level} ({})", cell(note, 200)),
        (Some(level), None) => level.clone(),
        (None, _) => "-".into(),
    }
}

pub fn print_show(job: &JobRow, attempts: &[AttemptRow]) {
    let now = now_ms();
    let size = match (job.width, job.height) {
        (Some(w), Some(h)) => format!("{w}x{h}"),
        _ => "-".into(),
    };
    let fields = [
        ("id", job.id.to_string()),
        ("url", cell(&job.url, 2000)),
        (
            "state",
            if job.cancel_requested && job.state == State::Running {
                "running (cancel requested: it stops when this attempt ends)".into()
            } else {
                job.state.to_string()
            },
        ),
        ("priority", job.priority.to_string()),
        (
            "attempts",
            format!(
                "{} (limit {})",
                job.attempts,
                or_dash(
                    job.max_attempts
                        .map(|m| m.to_string())
                        .or(Some("from config".into()))
                )
            ),
        ),
        ("created", time(Some(job.created_at), now)),
        ("run after", time(Some(job.run_at), now)),
        ("started", time(job.started_at, now)),
        ("finished", time(job.finished_at, now)),
        ("worker", or_dash(job.worker.as_deref())),
        ("http status", or_dash(job.http_status)),
        ("declared type", or_dash(job.declared_mime.as_deref())),
        ("detected type", or_dash(job.mime.as_deref())),
        ("size", size),
        ("bytes", or_dash(job.bytes)),
        ("sha256", or_dash(job.sha256.as_deref())),
        ("blob", or_dash(job.blob_path.as_deref())),
        ("validated", validated(job)),
        (
            "error",
            or_dash(job.error.as_deref().map(|e| cell(e, 2000))),
        ),
    ];
    for (name, value) in fields {
        println!("{name:>13}: {value}");
    }
    println!();
    println!(
        "{:>3}  {:<13}  {:<24}  {:>4}  {:>7}  {:>8}  {:>8}  ERROR",
        "#", "OUTCOME", "STARTED", "HTTP", "TTFB", "DOWNLOAD", "TOTAL"
    );
    for a in attempts {
        let ms = |v: Option<i64>| v.map_or_else(|| "-".into(), |v| format!("{v} ms"));
        println!(
            "{:>3}  {:<13}  {:<24}  {:>4}  {:>7}  {:>8}  {:>8}  {}",
            a.attempt,
            a.outcome,
            timestamp(a.started_at),
            or_dash(a.http_status),
            ms(a.ttfb_ms),
            ms(a.download_ms),
            ms(a.total_ms),
            cell(a.error.as_deref().unwrap_or(""), 100),
        );
    }
}

pub fn print_stats(stats: &Stats) {
    for (state, n) in &stats.by_state {
        if *state == State::Queued && stats.scheduled > 0 {
            println!("{state:>10}: {n} ({} scheduled for later)", stats.scheduled);
        } else {
            println!("{state:>10}: {n}");
        }
    }
    if stats.paused {
        println!(
            "{:>10}: yes: no job is claimed until `jobctl resume`",
            "paused"
        );
    } else {
        println!("{:>10}: no", "paused");
    }
    let rates: Vec<String> = stats
        .done_within
        .iter()
        .map(|&(minutes, done)| {
            let per_sec = done as f64 / (minutes * 60) as f64;
            format!("{done} in {minutes} min ({per_sec:.2}/s)")
        })
        .collect();
    println!("\ndone jobs: {}", rates.join(", "));
    let window = if stats.timings_all_time {
        "all time (none in the last 15 min)"
    } else {
        "the last 15 min"
    };
    match (stats.ttfb_ms, stats.total_ms) {
        (None, None) => println!("timings: no done attempts yet"),
        (ttfb, total) => {
            let pair = |p: Option<(i64, i64)>| {
                p.map_or_else(
                    || "-".into(),
                    |(p50, p95)| format!("p50 {}, p95 {}", span(p50), span(p95)),
                )
            };
            println!(
                "timings of {} done attempts, {window}:\n  time to first byte {}\n  total time         {}",
                stats.timing_samples,
                pair(ttfb),
                pair(total)
            );
        }
    }
    println!(
        "stored: {} in {} blobs ({} downloaded by done jobs)",
        human_bytes(stats.blob_bytes),
        stats.blobs,
        human_bytes(stats.bytes_done)
    );
    if !stats.top_errors.is_empty() {
        println!("\ncommonest errors of failed jobs:");
        for (error, n) in &stats.top_errors {
            println!("{n:>10}  {}", cell(error, 120));
        }
    }
}

pub fn human_bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {} ({n} bytes)", UNITS[unit])
    }
}
