//! The overview, failures and hosts pages, rendered on the server from the store's figures.

use std::fmt::Write as _;

use super::html::{count, enc, esc, form, layout, ms, opt_when, size, when};
use crate::job::{State, now_ms};
use crate::store::{
    Bucket, DaemonRow, FailureGroup, HOSTS_WINDOW_MINUTES, HostRow, QueueCounts, Storage,
    TimingFigures,
};

/// What the overview shows, read once a second at most however many people watch it.
#[derive(Debug, Clone)]
pub struct Overview {
    pub counts: QueueCounts,
    pub storage: Storage,
    pub timings: TimingFigures,
    /// Done and failed per minute over the last day, oldest first.
    pub minutes: Vec<Bucket>,
    pub daemons: Vec<DaemonRow>,
    pub now: i64,
}

pub const MINUTE: i64 = 60_000;
pub const QUARTER: i64 = 15 * MINUTE;

/// The overview's live part (the script swaps it in place every few seconds).
pub fn overview_live(o: &Overview, csrf: &str) -> String {
    let (s, t) = (&o.counts, &o.timings);
    let mut out = String::new();
    let switch = if s.paused {
        format!(
            "<div class=\"paused\"><strong>Paused:</strong> no daemon claims a new job. {}</div>",
            form("/actions/resume", csrf, &[], "Resume", "primary")
        )
    } else {
        format!(
            "<div class=\"switch\">Daemons claim jobs. {}</div>",
            form("/actions/pause", csrf, &[], "Pause the queue", "")
        )
    };
    out.push_str(&switch);
    out.push_str("<section class=\"cards\">");
    for (state, n) in &s.by_state {
        let _ = write!(
            out,
            "<a class=\"card state-{0}\" href=\"/jobs?state={0}\"><span class=\"n\" id=\"count-{0}\">{1}</span><span>{0}</span></a>",
            state.name(),
            count(*n)
        );
    }
    let _ = write!(
        out,
        "<div class=\"card\"><span class=\"n\" id=\"count-scheduled\">{}</span><span>scheduled (queued, due later)</span></div></section>",
        count(s.scheduled)
    );
    let per_min = |b: &[Bucket], from: i64| -> String {
        let done: i64 = b.iter().filter(|b| b.start >= from).map(|b| b.done).sum();
        let rate = done as f64 / ((o.now - from) as f64 / MINUTE as f64).max(1.0);
        if rate >= 10.0 || rate == 0.0 {
            format!("{rate:.0}")
        } else {
            format!("{rate:.2}")
        }
    };
    let _ = write!(
        out,
        "<section><h2>Throughput</h2><p>Done per minute: <strong>{}</strong> over the last hour, \
         <strong>{}</strong> over the last day.</p><h3>Last hour, per minute</h3>{}\
         <h3>Last day, per 15 minutes</h3>{}</section>",
        per_min(&o.minutes, o.now - 60 * MINUTE),
        per_min(&o.minutes, o.now - 1440 * MINUTE),
        chart(&o.minutes, o.now, MINUTE, 60),
        chart(&regroup(&o.minutes, QUARTER), o.now, QUARTER, 96)
    );
    let pair = |p: Option<(i64, i64)>| {
        p.map_or_else(
            || "–".to_string(),
            |(a, b)| format!("{} / {}", ms(Some(a)), ms(Some(b))),
        )
    };
    let _ = write!(
        out,
        "<section class=\"two\"><div><h2>Timings</h2><table><tr><th></th><th>p50 / p95</th></tr>\
         <tr><td>time to first byte</td><td>{}</td></tr><tr><td>total</td><td>{}</td></tr></table>\
         <p class=\"note\">From {} done attempts {}.</p></div>\
         <div><h2>Stored</h2><table><tr><td>images (distinct blobs)</td><td>{}</td></tr>\
         <tr><td>on disk</td><td>{}</td></tr><tr><td>downloaded by done jobs</td><td>{}</td></tr></table></div></section>",
        pair(t.ttfb_ms),
        pair(t.total_ms),
        count(t.samples),
        if t.all_time {
            "(all time: none in the last 15 minutes)"
        } else {
            "of the last 15 minutes"
        },
        count(o.storage.blobs),
        size(o.storage.blob_bytes),
        size(o.storage.bytes_done)
    );
    out.push_str(&daemons_table(&o.daemons, o.now));
    let _ = write!(
        out,
        "<p class=\"note\" id=\"as-of\">Figures read {}; they refresh by themselves.</p>",
        when(o.now, now_ms())
    );
    out
}

pub fn overview(o: &Overview, csrf: &str) -> String {
    let body = format!(
        "<div id=\"live\" data-refresh=\"3000\">{}</div>",
        overview_live(o, csrf)
    );
    layout("Overview", "/", &body)
}

fn daemons_table(daemons: &[DaemonRow], now: i64) -> String {
    let mut out = format!("<section><h2>Daemons ({})</h2>", daemons.len());
    if daemons.is_empty() {
        out.push_str("<p class=\"note\">No daemon is working on this queue (none beat in the last 20 s).</p></section>");
        return out;
    }
    out.push_str("<table id=\"daemons\"><tr><th>daemon</th><th>version</th><th>busy / workers</th><th>started</th><th>last beat</th></tr>");
    for d in daemons {
        let b = &d.beat;
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{} / {}</td><td>{}</td><td>{}</td></tr>",
            esc(&b.name),
            esc(&b.version),
            b.busy,
            b.workers,
            when(b.started_at, now),
            when(d.seen_at, now)
        );
    }
    out.push_str("</table></section>");
    out
}

/// Buckets gathered into wider ones of `width` (a multiple of theirs).
pub fn regroup(buckets: &[Bucket], width: i64) -> Vec<Bucket> {
    let mut out: Vec<Bucket> = Vec::new();
    for b in buckets {
        let start = b.start / width * width;
        match out.last_mut() {
            Some(last) if last.start == start => {
                last.done += b.done;
                last.failed += b.failed;
            }
            _ => out.push(Bucket { start, ..*b }),
        }
    }
    out
}

/// A bar chart of done (and failed, stacked) per bucket, as inline SVG: the `n` buckets of
/// `width` up to the one holding `now`.
pub fn chart(buckets: &[Bucket], now: i64, width: i64, n: i64) -> String {
    let first = (now / width - (n - 1)) * width;
    let buckets: Vec<&Bucket> = buckets
        .iter()
        .filter(|b| (0..n).contains(&((b.start - first) / width)) && b.start >= first)
        .collect();
    let max = buckets
        .iter()
        .map(|b| b.done + b.failed)
        .max()
        .unwrap_or(0)
        .max(1);
    let bar = (720 / n).max(2);
    let (w, h) = (bar * n, 120);
    let mut out = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {w} {}\" role=\"img\" aria-label=\"done and failed per bucket\">",
        h + 14
    );
    for b in buckets {
        let x = (b.start - first) / width * bar;
        let done_h = b.done * h / max;
        let failed_h = b.failed * h / max;
        let _ = write!(
            out,
            "<rect class=\"done\" x=\"{x}\" y=\"{}\" width=\"{}\" height=\"{done_h}\"><title>{} done</title></rect>",
            h - done_h,
            (bar - 1).max(1),
            b.done
        );
        if failed_h > 0 {
            let _ = write!(
                out,
                "<rect class=\"failed\" x=\"{x}\" y=\"{}\" width=\"{}\" height=\"{failed_h}\"><title>{} failed</title></rect>",
                h - done_h - failed_h,
                (bar - 1).max(1),
                b.failed
            );
        }
    }
    let _ = write!(
        out,
        "<line x1=\"0\" y1=\"{h}\" x2=\"{w}\" y2=\"{h}\" class=\"axis\"/><text x=\"0\" y=\"{}\" class=\"label\">max {} per bucket</text></svg>",
        h + 12,
        count(max)
    );
    out
}

pub fn failures(groups: &[FailureGroup], csrf: &str, now: i64) -> String {
    let mut body = String::from(
        "<p>Failed jobs, grouped by their error and their host, the largest groups first. \
         <em>Retry these</em> requeues every failed job of the group.</p>",
    );
    if groups.is_empty() {
        body.push_str("<p class=\"note\">No failed job.</p>");
        return layout("Failures", "/failures", &body);
    }
    body.push_str("<table id=\"failures\"><tr><th>jobs</th><th>error</th><th>host</th><th>last</th><th></th></tr>");
    for g in groups {
        let host = g.host.as_deref().unwrap_or("");
        let name = host_name(host);
        let _ = write!(
            body,
            "<tr><td class=\"num\"><a href=\"/jobs?state=failed&amp;host={}&amp;error={}\">{}</a></td>\
             <td class=\"error\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&enc(name)),
            esc(&enc(&g.error)),
            count(g.count),
            esc(&g.error),
            esc(host),
            opt_when(g.last_at, now),
            form(
                "/actions/retry-group",
                csrf,
                &[("error", &g.error), ("host", host)],
                "Retry these",
                "primary"
            )
        );
    }
    body.push_str("</table>");
    layout("Failures", "/failures", &body)
}

/// A `jobs.host` value (`host[:port]`) without its port, as `jobctl list --host` takes it.
pub fn host_name(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority
            .split_once(']')
            .map_or(authority, |(h, _)| h.trim_start_matches('['));
    }
    authority.split(':').next().unwrap_or(authority)
}

pub fn hosts(rows: &[HostRow], now: i64) -> String {
    let mut body = format!(
        "<p>Hosts with queued or running jobs, or a limit or pause the daemons share, the most \
         queued first. Done, failed and 429/503 count the last {HOSTS_WINDOW_MINUTES} minutes.</p>"
    );
    if rows.is_empty() {
        body.push_str("<p class=\"note\">No host has work or trouble.</p>");
        return layout("Hosts", "/hosts", &body);
    }
    body.push_str(
        "<table id=\"hosts\"><tr><th>host</th><th>queued</th><th>running</th><th>done</th><th>failed</th>\
         <th>429/503</th><th>done/min</th><th>limit</th><th>cool-down until</th></tr>",
    );
    for h in rows {
        let limit = h
            .max_in_flight
            .map_or_else(|| "max_per_host".to_string(), |n| n.to_string());
        let paused = h
            .paused_until
            .map_or_else(|| "–".to_string(), |t| when(t, now));
        let _ = write!(
            body,
            "<tr><td><a href=\"/jobs?host={}\">{}</a></td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{:.1}</td>\
             <td class=\"num\">{}</td><td>{}</td></tr>",
            esc(&enc(host_name(&h.host))),
            esc(&h.host),
            count(h.queued),
            count(h.running),
            count(h.done_recently),
            count(h.failed_recently),
            count(h.slow_downs_recently),
            h.done_recently as f64 / HOSTS_WINDOW_MINUTES as f64,
            esc(&limit),
            paused
        );
    }
    body.push_str("</table>");
    layout("Hosts", "/hosts", &body)
}

/// The state names, for the filters.
pub fn state_options(selected: Option<State>) -> String {
    let mut out = String::from("<option value=\"\">any state</option>");
    for s in State::ALL {
        let sel = if Some(s) == selected { " selected" } else { "" };
        let _ = write!(out, "<option value=\"{0}\"{sel}>{0}</option>", s.name());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_puts_each_bucket_at_its_minute() {
        let now = 10 * 60 * MINUTE + 5_000;
        let first = now / MINUTE * MINUTE - 59 * MINUTE;
        let buckets = [
            Bucket { start: first - MINUTE, done: 9, failed: 0 },
            Bucket { start: first, done: 4, failed: 0 },
            Bucket { start: first + 30 * MINUTE, done: 2, failed: 2 },
            Bucket { start: first + 59 * MINUTE, done: 1, failed: 0 },
        ];
        let svg = chart(&buckets, now, MINUTE, 60);
        assert!(!svg.contains(">9 done<"), "before the window: {svg}");
        assert!(svg.contains("x=\"708\" y=\"90\" width=\"11\" height=\"30\""), "the current minute last: {svg}");
        assert!(svg.contains("x=\"0\" y=\"0\" width=\"11\" height=\"120\""), "{svg}");
        assert!(svg.contains("x=\"360\" y=\"60\" width=\"11\" height=\"60\""), "{svg}");
        assert!(svg.contains("class=\"failed\" x=\"360\" y=\"0\""), "{svg}");
        assert!(svg.contains("max 4 per bucket"));
    }

    #[test]
    fn minutes_gather_into_quarters() {
        let b = |start, done| Bucket { start, done, failed: 1 };
        let q = regroup(&[b(0, 1), b(MINUTE, 2), b(QUARTER, 4), b(QUARTER + 14 * MINUTE, 8)], QUARTER);
        assert_eq!(q, [Bucket { start: 0, done: 3, failed: 2 }, Bucket { start: QUARTER, done: 12, failed: 2 }]);
    }

    #[test]
    fn a_hosts_port_is_left_out_for_the_jobs_filter() {
        assert_eq!(host_name("img.example.org:8443"), "img.example.org");
        assert_eq!(host_name("img.example.org"), "img.example.org");
        assert_eq!(host_name("[::1]:80"), "::1");
    }
}
