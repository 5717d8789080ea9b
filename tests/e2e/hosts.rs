//! `jobctl hosts` through the real binary: its table and its JSON shape on a small queue, with
//! the `hosts` rows a daemon would have written.

use serde_json::{Value, json};

use crate::support::Env;

#[test]
fn jobctl_hosts_lists_hosts_busiest_first_as_a_table_and_as_json() {
    let env = Env::new("");
    env.jobctl_ok(&[
        "add",
        "https://Img.Example.org/1.png",
        "https://img.example.org/2.png",
        "https://img.example.org/3.png",
        "http://127.0.0.1:45000/a.png",
    ]);
    let now = jobd::job::now_ms();
    let paused_until = now + 600_000;
    let db = env.db();
    // A daemon's work on 127.0.0.1:45000: one job done, one failed after a 503 and a 429
    // within the window; it narrowed the host and paused another.
    db.execute_batch(&format!(
        "INSERT INTO jobs (url, state, finished_at) VALUES
             ('http://127.0.0.1:45000/b.png', 'done', {now}),
             ('http://127.0.0.1:45000/c.png', 'failed', {now});
         INSERT INTO attempts (job_id, attempt, started_at, finished_at, outcome, http_status)
             SELECT id, 1, {now}, {now}, 'retry', 503 FROM jobs WHERE url LIKE '%/c.png';
         INSERT INTO attempts (job_id, attempt, started_at, finished_at, outcome, http_status)
             SELECT id, 2, {now}, {now}, 'failed', 429 FROM jobs WHERE url LIKE '%/c.png';
         INSERT INTO hosts (host, max_in_flight, slow_downs) VALUES ('127.0.0.1:45000', 3, 2);
         INSERT INTO hosts (host, paused_until, strikes) VALUES ('gone.example', {paused_until}, 2);"
    ))
    .unwrap();
    let out = env.jobctl_ok(&["hosts", "--json"]);
    let hosts: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(
        hosts["hosts"],
        json!([
            {
                "host": "img.example.org", "queued": 3, "running": 0, "done_15m": 0,
                "failed_15m": 0, "slow_downs_15m": 0, "done_per_minute": 0.0,
                "max_in_flight": null, "paused_until": null
            },
            {
                "host": "127.0.0.1:45000", "queued": 1, "running": 0, "done_15m": 1,
                "failed_15m": 1, "slow_downs_15m": 2, "done_per_minute": 1.0 / 15.0,
                "max_in_flight": 3, "paused_until": null
            },
            {
                "host": "gone.example", "queued": 0, "running": 0, "done_15m": 0,
                "failed_15m": 0, "slow_downs_15m": 0, "done_per_minute": 0.0,
                "max_in_flight": null, "paused_until": paused_until
            },
        ])
    );
    let table = env.jobctl_ok(&["hosts"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("HOST"), "{table}");
    assert!(lines[1].starts_with("img.example.org "), "{table}");
    assert!(lines[2].starts_with("127.0.0.1:45000 "), "{table}");
    assert!(
        lines[3].starts_with("gone.example ")
            && lines[3].contains(&jobd::logger::timestamp(paused_until)),
        "{table}"
    );
    // An empty queue lists nothing.
    let empty = Env::new("");
    empty.jobctl_ok(&["init"]);
    assert_eq!(
        empty.jobctl_ok(&["hosts", "--json"]).trim(),
        r#"{"hosts":[]}"#
    );
}
