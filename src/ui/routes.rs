//! One request in, one response out: the security checks every request passes, in order, then
//! one `match` on the method and path. Actions are POST forms that call the same store functions
//! as jobctl, and answer with a redirect to the page they came from.

use super::http::{Body, Method, Request, Response};
use super::jobs::{self, JobsQuery};
use super::pages;
use super::thumbs::{blob_file, is_sha256};
use super::{App, html};
use crate::job::{JobId, now_ms};
use crate::store::{ListFilter, StoreError};

/// The most jobs one bulk action (a filter's retry or cancel, a failure group's retry) acts on.
pub const BULK_LIMIT: usize = 100_000;
pub const APP_JS: &str = include_str!("static/app.js");
pub const STYLE_CSS: &str = include_str!("static/style.css");

/// Answers one request.
pub fn handle(app: &App, request: &Request) -> Response {
    if !app.guard.host_allowed(request) {
        return Response::text(
            421,
            "this dashboard does not answer to that Host (see [ui] allowed_hosts)",
        );
    }
    let session = app.guard.session(request);
    let get = matches!(request.method, Method::Get | Method::Head);
    let response = if get && request.path == "/static/app.js" {
        static_file("text/javascript; charset=utf-8", APP_JS)
    } else if get && request.path == "/static/style.css" {
        static_file("text/css; charset=utf-8", STYLE_CSS)
    } else if request.path == "/login" {
        login(app, request, &session.nonce)
    } else if !session.authorised {
        if get {
            Response::see_other("/login")
        } else {
            Response::text(401, "log in first")
        }
    } else if request.method == Method::Post && app.guard.cross_origin(request) {
        Response::text(403, "cross-origin request refused")
    } else if request.method == Method::Post
        && !session.bearer
        && !form_field(request, "csrf").is_some_and(|t| app.guard.csrf_ok(&session.nonce, &t))
    {
        Response::text(403, "missing or wrong CSRF token: reload the page and try again")
    } else {
        let csrf = app.guard.csrf(&session.nonce);
        route(app, request, &csrf).unwrap_or_else(|e| {
            log::error!("{} {}: {e}", request.path, request.query);
            Response::text(500, &format!("the database could not answer: {e}"))
        })
    };
    match session.set_cookie {
        Some(cookie) if !response.headers.iter().any(|(n, _)| *n == "Set-Cookie") => {
            response.with("Set-Cookie", cookie)
        }
        _ => response,
    }
}

fn static_file(content_type: &'static str, text: &str) -> Response {
    Response::new(200, content_type, text.as_bytes().to_vec())
        .with("Cache-Control", "public, max-age=3600".into())
}

fn form_field(request: &Request, name: &str) -> Option<String> {
    request
        .form()
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
}

fn login(app: &App, request: &Request, nonce: &str) -> Response {
    if !app.guard.needs_login() {
        return Response::see_other("/");
    }
    if request.method == Method::Post {
        if app.guard.cross_origin(request)
            || !form_field(request, "csrf").is_some_and(|t| app.guard.csrf_ok(nonce, &t))
        {
            return Response::text(403, "missing or wrong CSRF token: reload the page and try again");
        }
        return match app.guard.login(&form_field(request, "token").unwrap_or_default()) {
            Some(cookie) => Response::see_other("/").with("Set-Cookie", cookie),
            None => Response::text(403, "wrong token"),
        };
    }
    let body = format!(
        "<form method=\"post\" action=\"/login\" class=\"login\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <label>token <input type=\"password\" name=\"token\" autocomplete=\"current-password\" autofocus></label>\
         <button type=\"submit\" class=\"primary\">Log in</button></form>\
         <p class=\"note\">The token is <code>[ui] token</code> in daemon.toml.</p>",
        html::esc(&app.guard.csrf(nonce))
    );
    Response::html(html::layout("Log in", "", &body))
}

fn route(app: &App, request: &Request, csrf: &str) -> Result<Response, StoreError> {
    let path = request.path.as_str();
    let now = now_ms();
    Ok(match (request.method, path) {
        (Method::Get | Method::Head, "/") => {
            let overview = app.figures.get()?;
            if request.header("x-partial").is_some() {
                Response::html(pages::overview_live(&overview, csrf))
            } else {
                Response::html(pages::overview(&overview, csrf))
            }
        }
        (Method::Get | Method::Head, "/jobs") => {
            let query = JobsQuery::parse(&request.query_pairs());
            let mut rows = app.store.list(&query.filter(now, jobs::PAGE + 1))?;
            let more = rows.len() > jobs::PAGE;
            rows.truncate(jobs::PAGE);
            Response::html(jobs::list(&query, &rows, more, csrf, now))
        }
        (Method::Get | Method::Head, "/failures") => {
            Response::html(pages::failures(&app.store.failure_groups(200)?, csrf, now))
        }
        (Method::Get | Method::Head, "/hosts") => Response::html(pages::hosts(&app.store.hosts()?, now)),
        (Method::Get | Method::Head, "/gallery") => {
            let filter = jobs::gallery_filter(&request.query_pairs());
            Response::html(jobs::gallery(&filter, &app.store.gallery(&filter)?, now))
        }
        (Method::Get | Method::Head, p) if p.starts_with("/jobs/") => {
            match p["/jobs/".len()..].parse::<JobId>().ok() {
                Some(id) => match app.store.show(id)? {
                    Some((job, attempts)) => Response::html(jobs::job(&job, &attempts, csrf, now)),
                    None => not_found(),
                },
                None => not_found(),
            }
        }
        (Method::Get | Method::Head, p) if p.starts_with("/blobs/") => {
            blob(app, &p["/blobs/".len()..])?
        }
        (Method::Get | Method::Head, p) if p.starts_with("/thumbs/") => {
            thumb(app, &p["/thumbs/".len()..])?
        }
        (Method::Post, p) if p.starts_with("/actions/") => {
            action(app, request, &p["/actions/".len()..], csrf)?
        }
        _ => not_found(),
    })
}

fn not_found() -> Response {
    Response::html(html::layout("Not found", "", "<p>There is nothing here.</p>")).with_status(404)
}

impl Response {
    fn with_status(mut self, status: u16) -> Response {
        self.status = status;
        self
    }
}

/// The types an image is served as: raster formats only. SVG and HTML are never among them,
/// whatever a row says.
fn served_type(mime: &str) -> Option<&'static str> {
    jobs::TYPES
        .iter()
        .chain(&["image/apng", "image/x-icon"])
        .find(|t| **t == mime)
        .copied()
}

/// An image, by the sha256 a done job recorded: its recorded path, its detected type.
fn blob(app: &App, sha256: &str) -> Result<Response, StoreError> {
    if !is_sha256(sha256) {
        return Ok(not_found());
    }
    let Some(row) = app.store.blob(sha256)? else {
        return Ok(not_found());
    };
    let Some(content_type) = served_type(&row.mime) else {
        return Ok(Response::text(415, "this type is not served"));
    };
    let Some(path) = blob_file(&app.blob_dir, &row.blob_path) else {
        return Ok(not_found());
    };
    Ok(match std::fs::File::open(&path).and_then(|f| Ok((f.metadata()?.len(), f))) {
        Ok((len, file)) => Response {
            status: 200,
            content_type,
            headers: vec![
                ("Cache-Control", "private, max-age=86400, immutable".into()),
                ("Content-Disposition", "inline".into()),
            ],
            body: Body::File(file, len),
        },
        Err(e) => {
            log::warn!("blob {sha256} at {}: {e}", path.display());
            Response::text(404, "the blob file is missing")
        }
    })
}

fn thumb(app: &App, sha256: &str) -> Result<Response, StoreError> {
    if !is_sha256(sha256) {
        return Ok(not_found());
    }
    let Some(row) = app.store.blob(sha256)? else {
        return Ok(not_found());
    };
    let t = app.thumbs.get(&row);
    let cache = if t.placeholder {
        "no-store"
    } else {
        "private, max-age=86400, immutable"
    };
    Ok(Response::new(200, t.content_type, t.bytes)
        .with("Cache-Control", cache.into())
        .with("X-Thumbnail", if t.placeholder { "placeholder" } else { "image" }.into()))
}

fn action(app: &App, request: &Request, name: &str, csrf: &str) -> Result<Response, StoreError> {
    let form = request.form();
    let field = |n: &str| {
        form.iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let store = &app.store;
    Ok(match name {
        "pause" | "resume" => {
            store.set_paused(name == "pause")?;
            app.figures.forget();
            Response::see_other("/")
        }
        "retry" | "cancel" => {
            let Ok(id) = field("id").parse::<JobId>() else {
                return Ok(Response::text(400, "which job? (id)"));
            };
            if name == "retry" {
                store.retry(&[id], field("force") == "1")?;
            } else {
                store.cancel(&[id])?;
            }
            app.figures.forget();
            Response::see_other(&format!("/jobs/{id}"))
        }
        "retry-filter" | "cancel-filter" => {
            let query = JobsQuery::parse(&form);
            let ids: Vec<JobId> = store
                .list(&query.filter(now_ms(), BULK_LIMIT))?
                .iter()
                .map(|j| j.id)
                .collect();
            let verb = if name == "retry-filter" { "Retry" } else { "Cancel" };
            if field("confirm") != "1" {
                return Ok(Response::html(jobs::confirm(&query, verb, ids.len(), BULK_LIMIT, csrf)));
            }
            for chunk in ids.chunks(1_000) {
                if name == "retry-filter" {
                    store.retry(chunk, false)?;
                } else {
                    store.cancel(chunk)?;
                }
            }
            app.figures.forget();
            let fields = query.fields();
            let back: Vec<String> = fields
                .iter()
                .map(|(k, v)| format!("{k}={}", html::enc(v)))
                .collect();
            Response::see_other(&format!("/jobs?{}", back.join("&")))
        }
        "retry-group" => {
            let (error, host) = (field("error"), field("host"));
            let filter = ListFilter {
                state: Some(crate::job::State::Failed),
                error: (!error.is_empty()).then(|| error.clone()),
                host: (!host.is_empty()).then(|| pages::host_name(&host).to_string()),
                limit: BULK_LIMIT,
                ..ListFilter::default()
            };
            let ids: Vec<JobId> = store
                .list(&filter)?
                .into_iter()
                .filter(|j| j.error.as_deref().unwrap_or("") == error && authority(&j.url) == host)
                .map(|j| j.id)
                .collect();
            for chunk in ids.chunks(1_000) {
                store.retry(chunk, false)?;
            }
            app.figures.forget();
            Response::see_other("/failures")
        }
        _ => not_found(),
    })
}

/// A URL's `host[:port]` as the database's `jobs.host` column computes it (migration 0006): the
/// text after `://` up to the first `/`, `?` or `#`, without userinfo, lowercased.
pub fn authority(url: &str) -> String {
    let Some((_, rest)) = url.split_once("://") else {
        return String::new();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let auth = &rest[..end];
    let auth = auth.split_once('@').map_or(auth, |(_, a)| a);
    auth.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_authority_is_what_the_database_computes() {
        assert_eq!(authority("https://User:pw@Img.Example.org:8443/a.png?x"), "img.example.org:8443");
        assert_eq!(authority("http://127.0.0.1:45000/x.png"), "127.0.0.1:45000");
        assert_eq!(authority("http://a.org?x=1"), "a.org");
        assert_eq!(authority("not a url"), "");
    }

    #[test]
    fn only_raster_types_are_served() {
        assert_eq!(served_type("image/png"), Some("image/png"));
        assert_eq!(served_type("image/svg+xml"), None);
        assert_eq!(served_type("text/html"), None);
        assert_eq!(served_type("image/png; charset=x"), None);
    }
}
