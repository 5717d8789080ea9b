//! jobctl's human-readable tables.

use crate::logger::timestamp;
use crate::store::{AttemptRow, JobRow, Stats};

fn or_dash<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

fn time(ms: Option<i64>) -> String {
    ms.map_or_else(|| "-".into(), timestamp)
}

/// Keeps a table row on one line: control characters out, long text cut.
fn cell(text: &str, max: usize) -> String {
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
    println!(
        "{:>8}  {:<9}  {:>3}  {:>4}  {:>10}  URL / ERROR",
        "ID", "STATE", "TRY", "HTTP", "BYTES"
    );
    for job in jobs {
        let detail = match (&job.state[..], &job.error) {
            ("failed", Some(error)) | ("queued", Some(error)) => {
                format!("{}  ({})", cell(&job.url, 60), cell(error, 80))
            }
            _ => cell(&job.url, 100),
        };
        println!(
            "{:>8}  {:<9}  {:>3}  {:>4}  {:>10}  {detail}",
            job.id,
            job.state,
            job.attempts,
            or_dash(job.http_status),
            or_dash(job.bytes),
        );
    }
}

pub fn print_show(job: &JobRow, attempts: &[AttemptRow]) {
    let size = match (job.width, job.height) {
        (Some(w), Some(h)) => format!("{w}x{h}"),
        _ => "-".into(),
    };
    let fields = [
        ("id", job.id.to_string()),
        ("url", cell(&job.url, 2000)),
        ("state", job.state.clone()),
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
        ("created", timestamp(job.created_at)),
        ("run after", timestamp(job.run_at)),
        ("started", time(job.started_at)),
        ("finished", time(job.finished_at)),
        ("http status", or_dash(job.http_status)),
        ("declared type", or_dash(job.declared_mime.as_deref())),
        ("detected type", or_dash(job.mime.as_deref())),
        ("size", size),
        ("bytes", or_dash(job.bytes)),
        ("sha256", or_dash(job.sha256.as_deref())),
        ("blob", or_dash(job.blob_path.as_deref())),
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
        if state == "queued" && stats.scheduled > 0 {
            println!("{state:>10}: {n} ({} scheduled for later)", stats.scheduled);
        } else {
            println!("{state:>10}: {n}");
        }
    }
    println!("{:>10}: {}", "stored", human_bytes(stats.bytes_done));
    if !stats.top_errors.is_empty() {
        println!("\ncommonest errors of failed jobs:");
        for (error, n) in &stats.top_errors {
            println!("{n:>10}  {}", cell(error, 120));
        }
    }
}

fn human_bytes(n: i64) -> String {
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
