//! The JSON shapes of `jobctl --json`, all in one place. docs/jobctl.md documents them; scripts
//! depend on them, so fields are only ever added, never renamed or removed. Times are Unix
//! milliseconds, as in the database.

use serde_json::{Value, json};

use crate::store::{AttemptRow, HostRow, JobRow, Stats};

pub fn job(job: &JobRow) -> Value {
    json!({
        "id": job.id,
        "url": job.url,
        "state": job.state.name(),
        "priority": job.priority,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "run_at": job.run_at,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "http_status": job.http_status,
        "declared_mime": job.declared_mime,
        "mime": job.mime,
        "bytes": job.bytes,
        "width": job.width,
        "height": job.height,
        "sha256": job.sha256,
        "blob_path": job.blob_path,
        "error": job.error,
        "cancel_requested": job.cancel_requested,
        "worker": job.worker,
        "validation": job.validation,
        "validation_note": job.validation_note,
    })
}

pub fn attempt(a: &AttemptRow) -> Value {
    json!({
        "attempt": a.attempt,
        "outcome": a.outcome,
        "worker": a.worker,
        "started_at": a.started_at,
        "finished_at": a.finished_at,
        "http_status": a.http_status,
        "bytes": a.bytes,
        "ttfb_ms": a.ttfb_ms,
        "download_ms": a.download_ms,
        "total_ms": a.total_ms,
        "error": a.error,
    })
}

/// `{"p50": n, "p95": n}`, or null without samples.
fn percentiles(p: Option<(i64, i64)>) -> Value {
    p.map_or(Value::Null, |(p50, p95)| json!({"p50": p50, "p95": p95}))
}

pub fn stats(s: &Stats) -> Value {
    let states: serde_json::Map<String, Value> = s
        .by_state
        .iter()
        .map(|(state, n)| (state.name().to_string(), json!(n)))
        .collect();
    let throughput: serde_json::Map<String, Value> = s
        .done_within
        .iter()
        .map(|&(minutes, done)| {
            (
                format!("{minutes}m"),
                json!({
                    "done": done,
                    "per_minute": done as f64 / minutes as f64,
                    "per_second": done as f64 / (minutes * 60) as f64,
                }),
            )
        })
        .collect();
    json!({
        "paused": s.paused,
        "states": states,
        "scheduled": s.scheduled,
        "throughput": throughput,
        "timings": {
            "window": if s.timings_all_time { "all" } else { "15m" },
            "attempts": s.timing_samples,
            "ttfb_ms": percentiles(s.ttfb_ms),
            "total_ms": percentiles(s.total_ms),
        },
        "bytes_done": s.bytes_done,
        "blobs": s.blobs,
        "blob_bytes": s.blob_bytes,
        "top_errors": s.top_errors.iter()
            .map(|(error, count)| json!({"error": error, "count": count}))
            .collect::<Vec<_>>(),
    })
}

/// `jobctl hosts`: an object, as every command prints, so that fields can be added beside the
/// rows.
pub fn hosts(hosts: &[HostRow]) -> Value {
    json!({ "hosts": hosts.iter().map(host).collect::<Vec<_>>() })
}

/// A row of `jobctl hosts`.
fn host(h: &HostRow) -> Value {
    json!({
        "host": h.host,
        "queued": h.queued,
        "running": h.running,
        "done_15m": h.done_recently,
        "failed_15m": h.failed_recently,
        "slow_downs_15m": h.slow_downs_recently,
        "done_per_minute": super::hosts::done_per_minute(h),
        "max_in_flight": h.max_in_flight,
        "paused_until": h.paused_until,
    })
}

/// `jobctl daemons --json`.
pub fn daemons(daemons: &[crate::store::DaemonRow]) -> Value {
    let rows: Vec<Value> = daemons
        .iter()
        .map(|d| {
            json!({
                "name": d.beat.name,
                "host": d.beat.host,
                "pid": d.beat.pid,
                "version": d.beat.version,
                "workers": d.beat.workers,
                "busy": d.beat.busy,
                "started_at": d.beat.started_at,
                "seen_at": d.seen_at,
            })
        })
        .collect();
    json!({ "daemons": rows })
}
