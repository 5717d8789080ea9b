//! The jobs list (with its filters and pages), a job with its attempts and its image, and the
//! gallery of stored images.

use std::fmt::Write as _;

use super::html::{count, enc, esc, form, layout, ms, opt_when, size, when};
use super::pages::state_options;
use crate::job::{JobId, State};
use crate::store::{AttemptRow, GalleryFilter, JobRow, ListFilter};

/// Rows on a page of jobs, and images on a page of the gallery.
pub const PAGE: usize = 50;
pub const GALLERY_PAGE: usize = 48;

/// The `since` choices of the jobs filter, as (query value, label, minutes).
pub const SINCE: [(&str, &str, i64); 4] = [
    ("15m", "last 15 minutes", 15),
    ("1h", "last hour", 60),
    ("1d", "last day", 1440),
    ("7d", "last 7 days", 10_080),
];

/// The jobs filter as the URL carries it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobsQuery {
    pub state: Option<State>,
    pub host: String,
    pub error: String,
    pub q: String,
    pub since: String,
    pub before: Option<JobId>,
}

impl JobsQuery {
    pub fn parse(pairs: &[(String, String)]) -> JobsQuery {
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.trim().to_string())
                .unwrap_or_default()
        };
        JobsQuery {
            state: State::parse(&get("state")),
            host: get("host"),
            error: get("error"),
            q: get("q"),
            since: get("since"),
            before: get("before").parse().ok(),
        }
    }

    /// The store's filter for this query, `limit` rows at most.
    pub fn filter(&self, now: i64, limit: usize) -> ListFilter {
        let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
        ListFilter {
            state: self.state,
            error: some(&self.error),
            host: some(&self.host),
            since: SINCE
                .iter()
                .find(|(v, _, _)| *v == self.since)
                .map(|(_, _, minutes)| now - minutes * 60_000),
            until: None,
            url: some(&self.q),
            before: self.before,
            limit,
        }
    }

    /// The fields of the filter (not the page), for links and the bulk forms.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        [
            ("state", self.state.map(|s| s.name().to_string()).unwrap_or_default()),
            ("host", self.host.clone()),
            ("error", self.error.clone()),
            ("q", self.q.clone()),
            ("since", self.since.clone()),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect()
    }

    fn href(&self, before: Option<JobId>) -> String {
        let mut parts: Vec<String> = self
            .fields()
            .iter()
            .map(|(k, v)| format!("{k}={}", enc(v)))
            .collect();
        if let Some(b) = before {
            parts.push(format!("before={b}"));
        }
        format!("/jobs?{}", parts.join("&"))
    }
}

pub fn list(query: &JobsQuery, jobs: &[JobRow], more: bool, csrf: &str, now: i64) -> String {
    let mut since = String::from("<option value=\"\">any time</option>");
    for (value, label, _) in SINCE {
        let sel = if query.since == value { " selected" } else { "" };
        let _ = write!(since, "<option value=\"{value}\"{sel}>{label}</option>");
    }
    let mut body = format!(
        "<form method=\"get\" action=\"/jobs\" class=\"filters\">\
         <label>state <select name=\"state\">{}</select></label>\
         <label>host <input name=\"host\" value=\"{}\" placeholder=\"img.example.org or .example.org\"></label>\
         <label>error <input name=\"error\" value=\"{}\" placeholder=\"contains\"></label>\
         <label>URL <input type=\"search\" name=\"q\" value=\"{}\" placeholder=\"contains\"></label>\
         <label>active <select name=\"since\">{since}</select></label>\
         <button type=\"submit\">Filter</button></form>",
        state_options(query.state),
        esc(&query.host),
        esc(&query.error),
        esc(&query.q),
    );
    let fields = query.fields();
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let _ = write!(
        body,
        "<div class=\"bulk\">Every job this filter selects: {} {}</div>",
        form("/actions/retry-filter", csrf, &fields, "Retry all", ""),
        form("/actions/cancel-filter", csrf, &fields, "Cancel all", "danger")
    );
    if jobs.is_empty() {
        body.push_str("<p class=\"note\">No job matches.</p>");
        return layout("Jobs", "/jobs", &body);
    }
    body.push_str(
        "<table id=\"jobs\"><tr><th>id</th><th>state</th><th>url</th><th>tries</th><th>error</th><th>last active</th></tr>",
    );
    for j in jobs {
        let _ = write!(
            body,
            "<tr><td class=\"num\"><a href=\"/jobs/{0}\">{0}</a></td><td><span class=\"state state-{1}\">{1}</span></td>\
             <td class=\"url\">{2}</td><td class=\"num\">{3}</td><td class=\"error\">{4}</td><td>{5}</td></tr>",
            j.id,
            j.state.name(),
            esc(&j.url),
            j.attempts,
            esc(j.error.as_deref().unwrap_or("")),
            when(j.last_activity(), now)
        );
    }
    body.push_str("</table>");
    if more {
        let last = jobs.last().map(|j| j.id);
        let _ = write!(
            body,
            "<p><a class=\"next\" href=\"{}\">Next page →</a></p>",
            esc(&query.href(last))
        );
    }
    if query.before.is_some() {
        let _ = write!(body, "<p><a href=\"{}\">First page</a></p>", esc(&query.href(None)));
    }
    layout("Jobs", "/jobs", &body)
}

/// The page that asks before a bulk action: how many jobs the filter selects, and the same form
/// again with `confirm=1`.
pub fn confirm(query: &JobsQuery, verb: &str, n: usize, limit: usize, csrf: &str) -> String {
    let fields = query.fields();
    let described: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{k} <code>{}</code>", esc(v)))
        .collect();
    let mut with: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    with.push(("confirm", "1"));
    let action = if verb == "Retry" {
        "/actions/retry-filter"
    } else {
        "/actions/cancel-filter"
    };
    let body = format!(
        "<p>{verb} <strong id=\"selected\">{}</strong> jobs{}: {}?</p>{}<div class=\"actions\">{} <a href=\"{}\">Back to the jobs</a></div>",
        count(n as i64),
        if n >= limit { " (the most one click acts on)" } else { "" },
        if described.is_empty() {
            "every job".to_string()
        } else {
            described.join(", ")
        },
        if verb == "Retry" {
            "<p class=\"note\">Failed and cancelled jobs are requeued; the others are left alone.</p>"
        } else {
            "<p class=\"note\">Queued jobs are cancelled at once, running ones when their attempt ends; finished ones are left alone.</p>"
        },
        form(action, csrf, &with, &format!("{verb} them"), if verb == "Retry" { "primary" } else { "danger" }),
        esc(&query.href(None)),
    );
    layout(&format!("{verb} jobs"), "/jobs", &body)
}

pub fn job(job: &JobRow, attempts: &[AttemptRow], csrf: &str, now: i64) -> String {
    let id = job.id.to_string();
    let mut body = format!(
        "<div class=\"actions\"><span class=\"state state-{0}\" id=\"state\">{0}</span> {1} {2}</div>",
        job.state.name(),
        if job.state.retryable(job.state == State::Done) {
            let force = if job.state == State::Done { "1" } else { "" };
            form("/actions/retry", csrf, &[("id", &id), ("force", force)], "Retry", "primary")
        } else {
            String::new()
        },
        if matches!(job.state, State::Queued | State::Running) {
            form("/actions/cancel", csrf, &[("id", &id)], "Cancel", "danger")
        } else {
            String::new()
        },
    );
    if let (Some(sha), Some(mime)) = (&job.sha256, &job.mime) {
        let dims = match (job.width, job.height) {
            (Some(w), Some(h)) => format!("{w} × {h}, "),
            _ => String::new(),
        };
        let _ = write!(
            body,
            "<figure class=\"image\"><a href=\"/blobs/{0}\"><img src=\"/blobs/{0}\" alt=\"the stored image\"></a>\
             <figcaption>{1}, {2}{3}<br><code>sha256 {0}</code></figcaption></figure>",
            esc(sha),
            esc(mime),
            dims,
            size(job.bytes.unwrap_or(0))
        );
    }
    let opt = |v: &Option<String>| esc(v.as_deref().unwrap_or("–"));
    let num = |v: Option<i64>| v.map_or_else(|| "–".to_string(), |n| n.to_string());
    let rows: [(&str, String); 20] = [
        ("url", format!("<span class=\"url\">{}</span>", esc(&job.url))),
        ("state", esc(job.state.name())),
        ("priority", job.priority.to_string()),
        (
            "attempts",
            format!("{} of {}", job.attempts, num(job.max_attempts)),
        ),
        ("run at", when(job.run_at, now)),
        ("created", when(job.created_at, now)),
        ("started", opt_when(job.started_at, now)),
        ("finished", opt_when(job.finished_at, now)),
        ("HTTP status", num(job.http_status)),
        ("declared type", opt(&job.declared_mime)),
        ("detected type", opt(&job.mime)),
        ("bytes", job.bytes.map_or_else(|| "–".into(), size)),
        ("width × height", match (job.width, job.height) {
            (Some(w), Some(h)) => format!("{w} × {h}"),
            _ => "–".into(),
        }),
        ("sha256", opt(&job.sha256)),
        ("blob path", opt(&job.blob_path)),
        ("validation", opt(&job.validation)),
        ("validation note", opt(&job.validation_note)),
        ("error", format!("<span class=\"error\">{}</span>", opt(&job.error))),
        ("worker", opt(&job.worker)),
        (
            "cancel requested",
            if job.cancel_requested { "yes" } else { "no" }.into(),
        ),
    ];
    body.push_str("<dl class=\"fields\">");
    for (name, value) in rows {
        let _ = write!(body, "<dt>{name}</dt><dd>{value}</dd>");
    }
    body.push_str("</dl><h2>Attempts</h2>");
    if attempts.is_empty() {
        body.push_str("<p class=\"note\">Not tried yet.</p>");
    } else {
        body.push_str(
            "<ol class=\"timeline\" id=\"attempts\">",
        );
        for a in attempts {
            let _ = write!(
                body,
                "<li class=\"outcome-{0}\"><strong>#{1} {0}</strong> {2} by {3}<br>\
                 HTTP {4}, {5}; first byte {6}, download {7}, total {8}{9}</li>",
                esc(&a.outcome),
                a.attempt,
                when(a.started_at, now),
                esc(a.worker.as_deref().unwrap_or("–")),
                num(a.http_status),
                a.bytes.map_or_else(|| "no body".into(), size),
                ms(a.ttfb_ms),
                ms(a.download_ms),
                ms(a.total_ms),
                a.error
                    .as_deref()
                    .map(|e| format!("<br><span class=\"error\">{}</span>", esc(e)))
                    .unwrap_or_default()
            );
        }
        body.push_str("</ol>");
    }
    layout(&format!("Job {}", job.id), "/jobs", &body)
}

/// The gallery's filter as the URL carries it.
pub fn gallery_filter(pairs: &[(String, String)]) -> GalleryFilter {
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.trim().to_ascii_lowercase())
            .filter(|v| !v.is_empty())
    };
    GalleryFilter {
        host: get("host"),
        mime: get("type"),
        before: get("before").and_then(|b| {
            let (at, id) = b.split_once('.')?;
            Some((at.parse().ok()?, id.parse().ok()?))
        }),
        limit: GALLERY_PAGE,
    }
}

/// The types jobd stores, for the gallery's filter.
pub const TYPES: [&str; 10] = [
    "image/jpeg",
    "image/png",
    "image/gif",
    "image/webp",
    "image/avif",
    "image/heif",
    "image/jxl",
    "image/bmp",
    "image/tiff",
    "image/vnd.microsoft.icon",
];

pub fn gallery(filter: &GalleryFilter, jobs: &[JobRow], now: i64) -> String {
    let mut types = String::from("<option value=\"\">any type</option>");
    for t in TYPES {
        let sel = if filter.mime.as_deref() == Some(t) { " selected" } else { "" };
        let _ = write!(types, "<option value=\"{t}\"{sel}>{t}</option>");
    }
    let mut body = format!(
        "<form method=\"get\" action=\"/gallery\" class=\"filters\">\
         <label>host <input name=\"host\" value=\"{}\" placeholder=\"img.example.org:8443\"></label>\
         <label>type <select name=\"type\">{types}</select></label><button type=\"submit\">Filter</button></form>",
        esc(filter.host.as_deref().unwrap_or(""))
    );
    if jobs.is_empty() {
        body.push_str("<p class=\"note\">No stored image matches.</p>");
        return layout("Gallery", "/gallery", &body);
    }
    body.push_str("<div class=\"grid\" id=\"gallery\">");
    for j in jobs {
        let (Some(sha), Some(mime)) = (&j.sha256, &j.mime) else {
            continue;
        };
        let _ = write!(
            body,
            "<a class=\"tile\" href=\"/jobs/{}\"><img src=\"/thumbs/{}\" alt=\"{}\" loading=\"lazy\">\
             <span>{} · {}</span><span class=\"note\">{}</span></a>",
            j.id,
            esc(sha),
            esc(mime),
            esc(mime),
            size(j.bytes.unwrap_or(0)),
            opt_when(j.finished_at, now)
        );
    }
    body.push_str("</div>");
    if jobs.len() >= filter.limit {
        let mut next = Vec::new();
        if let Some(h) = &filter.host {
            next.push(format!("host={}", enc(h)));
        }
        if let Some(t) = &filter.mime {
            next.push(format!("type={}", enc(t)));
        }
        if let Some(last) = jobs.last() {
            next.push(format!(
                "before={}.{}",
                last.finished_at.unwrap_or(0),
                last.id
            ));
        }
        let _ = write!(
            body,
            "<p><a class=\"next\" href=\"/gallery?{}\">Older images →</a></p>",
            esc(&next.join("&"))
        );
    }
    layout("Gallery", "/gallery", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &str) -> Vec<(String, String)> {
        url::form_urlencoded::parse(q.as_bytes()).into_owned().collect()
    }

    #[test]
    fn the_jobs_query_round_trips_through_its_links() {
        let q = JobsQuery::parse(&pairs("state=failed&host=a.org&error=HTTP+404&q=x%26y&since=1h&before=77"));
        assert_eq!(q.state, Some(State::Failed));
        assert_eq!((q.error.as_str(), q.q.as_str(), q.before), ("HTTP 404", "x&y", Some(77)));
        let f = q.filter(10_000_000, 51);
        assert_eq!(f.since, Some(10_000_000 - 3_600_000));
        assert_eq!((f.url.as_deref(), f.before, f.limit), (Some("x&y"), Some(77), 51));
        let href = q.href(Some(5));
        assert_eq!(href, "/jobs?state=failed&host=a.org&error=HTTP+404&q=x%26y&since=1h&before=5");
        assert_eq!(JobsQuery::parse(&pairs(href.split_once('?').unwrap().1)).before, Some(5));
        let none = JobsQuery::parse(&pairs("state=bogus&since=forever&before=x"));
        assert_eq!(none, JobsQuery { since: "forever".into(), ..JobsQuery::default() });
        assert_eq!(none.filter(0, 1).since, None);
    }
}
