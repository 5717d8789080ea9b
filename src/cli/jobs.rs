//! `add`, `list`, `show` and `stats`: putting jobs in and reading them back.

use serde_json::json;

use super::{Error, json, output, print_json};
use crate::job::JobId;
use crate::joburl;
use crate::store::{ListFilter, NewJob, Store};

/// Adds every URL or none: one bad URL rejects the whole command, naming it.
pub fn add(
    store: &dyn Store,
    urls: Vec<String>,
    priority: i64,
    run_at: Option<i64>,
    max_attempts: Option<u32>,
    as_json: bool,
) -> Result<(), Error> {
    let mut jobs = Vec::with_capacity(urls.len());
    for raw in urls {
        joburl::parse(&raw).map_err(|e| Error::BadInput(format!("{raw:?}: {e}")))?;
        // Stored as typed, so that people find their URL with a plain WHERE url = '...'.
        jobs.push(NewJob {
            url: raw,
            priority,
            run_at,
            max_attempts,
        });
    }
    let ids = store.add(&jobs)?;
    if as_json {
        print_json(&json!({ "ids": ids }));
    } else {
        for id in ids {
            println!("{id}");
        }
    }
    Ok(())
}

pub fn list(store: &dyn Store, filter: &ListFilter, as_json: bool) -> Result<(), Error> {
    let jobs = store.list(filter)?;
    if as_json {
        print_json(&json!({ "jobs": jobs.iter().map(json::job).collect::<Vec<_>>() }));
    } else {
        output::print_list(&jobs);
    }
    Ok(())
}

pub fn show(store: &dyn Store, id: JobId, as_json: bool) -> Result<(), Error> {
    let Some((job, attempts)) = store.show(id)? else {
        return Err(Error::NotFound(format!("no job with id {id}")));
    };
    if as_json {
        print_json(&json!({
            "job": json::job(&job),
            "attempts": attempts.iter().map(json::attempt).collect::<Vec<_>>(),
        }));
    } else {
        output::print_show(&job, &attempts);
    }
    Ok(())
}

pub fn stats(store: &dyn Store, as_json: bool) -> Result<(), Error> {
    let stats = store.stats()?;
    if as_json {
        print_json(&json::stats(&stats));
    } else {
        output::print_stats(&stats);
    }
    Ok(())
}
