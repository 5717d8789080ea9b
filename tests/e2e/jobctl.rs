//! jobctl through its real binary: output, JSON shapes, exit codes, import and its formats.
//! (The commands that steer a running daemon are in `jobctl_ops.rs`.)

use serde_json::Value;

use crate::support::{Env, show};

fn json(out: &str) -> Value {
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn now_ms() -> i64 {
    jobd::job::now_ms()
}

#[test]
fn add_list_show_stats() {
    let env = Env::new("");
    let ids = env.jobctl_ok(&[
        "add",
        "https://example.org/a.jpg",
        "https://example.org/b.png",
        "--priority",
        "3",
    ]);
    assert_eq!(ids.lines().collect::<Vec<_>>(), ["1", "2"]);
    let list = env.jobctl_ok(&["list", "--state", "queued"]);
    assert!(list.contains("https://example.org/b.png"), "{list}");
    assert_eq!(env.count("SELECT COUNT(*) FROM jobs WHERE priority = 3"), 2);
    let show = env.jobctl_ok(&["show", "2"]);
    assert!(
        show.contains("state: queued") && show.contains("https://example.org/b.png"),
        "{show}"
    );
    let stats = env.jobctl_ok(&["stats"]);
    assert!(
        stats.contains("queued: 2") && stats.contains("done: 0") && stats.contains("paused: no"),
        "{stats}"
    );
}

#[test]
fn add_at_a_later_time_and_every_json_shape() {
    let env = Env::new("");
    let added = json(&env.jobctl_ok(&[
        "add",
        "--json",
        "--at",
        "+2h",
        "--max-attempts",
        "7",
        "https://example.org/later.png",
    ]));
    assert_eq!(added["ids"], serde_json::json!([1]));
    let at = json(&env.jobctl_ok(&[
        "add",
        "--json",
        "--at",
        "2030-01-02T03:04:05.5+01:00",
        "https://example.org/fixed.png",
    ]));
    assert_eq!(at["ids"], serde_json::json!([2]));

    let shown = json(&env.jobctl_ok(&["show", "1", "--json"]));
    let job = &shown["job"];
    let run_at = job["run_at"].as_i64().unwrap();
    let due_in = run_at - now_ms();
    assert!(
        (7_100_000..=7_200_000).contains(&due_in),
        "run_at {run_at}: {job}"
    );
    assert_eq!(job["max_attempts"], 7);
    assert_eq!(job["state"], "queued");
    assert_eq!(job["url"], "https://example.org/later.png");
    for field in [
        "id",
        "priority",
        "attempts",
        "created_at",
        "started_at",
        "finished_at",
        "http_status",
        "declared_mime",
        "mime",
        "bytes",
        "width",
        "height",
        "sha256",
        "blob_path",
        "error",
        "cancel_requested",
        "worker",
    ] {
        assert!(
            job.get(field).is_some(),
            "show --json lacks job.{field}: {job}"
        );
    }
    assert_eq!(shown["attempts"], serde_json::json!([]));
    let fixed = json(&env.jobctl_ok(&["show", "2", "--json"]));
    assert_eq!(fixed["job"]["run_at"], 1_893_549_845_500_i64);

    let list = env.jobctl_ok(&["list"]);
    assert!(list.contains("in 1 h") || list.contains("in 2 h"), "{list}");
    let listed = json(&env.jobctl_ok(&["list", "--json"]));
    let ids: Vec<i64> = listed["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [2, 1]);

    let stats = json(&env.jobctl_ok(&["stats", "--json"]));
    assert_eq!(stats["states"]["queued"], 2);
    assert_eq!(stats["scheduled"], 2);
    assert_eq!(stats["paused"], false);
    for window in ["1m", "5m", "15m"] {
        assert_eq!(stats["throughput"][window]["done"], 0, "{stats}");
        assert!(
            stats["throughput"][window]["per_second"].is_number(),
            "{stats}"
        );
    }
    assert_eq!(stats["timings"]["attempts"], 0);
    assert!(stats["timings"]["ttfb_ms"].is_null(), "{stats}");
    for field in ["bytes_done", "blobs", "blob_bytes", "top_errors"] {
        assert!(
            stats.get(field).is_some(),
            "stats --json lacks {field}: {stats}"
        );
    }
    let human = env.jobctl_ok(&["stats"]);
    assert!(
        human.contains("queued: 2 (2 scheduled for later)"),
        "{human}"
    );
}

#[test]
fn bad_times_and_missing_arguments_are_bad_input() {
    let env = Env::new("");
    env.jobctl_ok(&["stats"]);
    for args in [
        &["add", "--at", "tomorrow", "https://example.org/a.png"][..],
        &["add", "--at", "10m", "https://example.org/a.png"],
        &["list", "--since", "yesterday"],
        &["prune"],
        &["prune", "--older-than", "7 days"],
        &["retry"],
        &["retry", "1", "--failed"],
        &["cancel"],
        &["import", "--format", "xml", "-"],
    ] {
        let out = env.jobctl(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", show(&out));
    }
    assert_eq!(env.count("SELECT COUNT(*) FROM jobs"), 0);
}

#[test]
fn help_explains_every_command() {
    let env = Env::new("");
    let top = env.jobctl_ok(&["--help"]);
    for words in [
        "Exit codes",
        "3 not found",
        "RFC 3339",
        "--json",
        "--config",
    ] {
        assert!(top.contains(words), "jobctl --help lacks {words:?}: {top}");
    }
    for (command, words) in [
        ("init", "first INSERT"),
        ("add", "--at"),
        ("import", "--skip-existing"),
        ("list", "--host"),
        ("show", "attempt history"),
        ("stats", "15 minutes"),
        ("retry", "--failed"),
        ("cancel", "when their attempt ends"),
        ("prune", "--blobs"),
        ("prune", "--wait"),
        ("watch", "drained"),
        ("pause", "claiming"),
        ("resume", "claim jobs again"),
    ] {
        let help = env.jobctl_ok(&[command, "--help"]);
        assert!(
            help.contains(words),
            "jobctl {command} --help lacks {words:?}: {help}"
        );
    }
}

#[test]
fn list_filters_by_state_error_host_and_time() {
    let env = Env::new("");
    env.jobctl_ok(&["stats"]);
    let now = now_ms();
    let minute = 60_000;
    let db = env.db();
    for (id, url, state, error, finished) in [
        (
            1,
            "https://a.example.org/1.png",
            "done",
            None,
            Some(now - 180 * minute),
        ),
        (
            2,
            "https://b.example.org/2.png",
            "failed",
            Some("HTTP 404"),
            Some(now - 10 * minute),
        ),
        (
            3,
            "https://img.b.example.org/3.png",
            "failed",
            Some("Not an image: text/html"),
            Some(now - 2 * 1440 * minute),
        ),
        (4, "https://c.example.org/4.png", "queued", None, None),
    ] {
        db.execute(
            "INSERT INTO jobs (id, url, state, error, finished_at, started_at, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5, COALESCE(?5, ?6))",
            rusqlite::params![id, url, state, error, finished, now],
        )
        .unwrap();
    }
    let ids = |args: &[&str]| -> Vec<i64> {
        let mut all = vec!["list", "--json"];
        all.extend_from_slice(args);
        json(&env.jobctl_ok(&all))["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(ids(&[]), [4, 3, 2, 1]);
    assert_eq!(ids(&["--state", "failed"]), [3, 2]);
    assert_eq!(ids(&["--error", "NOT AN"]), [3]);
    assert_eq!(
        ids(&["--error", "404", "--state", "done"]),
        Vec::<i64>::new()
    );
    assert_eq!(ids(&["--host", "B.example.org"]), [2]);
    assert_eq!(ids(&["--host", ".b.example.org"]), [3, 2]);
    assert_eq!(ids(&["--since", "1h"]), [4, 2]);
    assert_eq!(ids(&["--until", "1h"]), [3, 1]);
    assert_eq!(ids(&["--since", "1d", "--until", "30m"]), [1]);
    assert_eq!(ids(&["--until", "1970-01-02T00:00:00Z"]), Vec::<i64>::new());
    assert_eq!(ids(&["--limit", "2"]), [4, 3]);

    let table = env.jobctl_ok(&["list"]);
    for words in ["3 h ago", "10 min ago", "2 d ago", "just now", "(HTTP 404)"] {
        assert!(table.contains(words), "list lacks {words:?}: {table}");
    }
}

#[test]
fn errors_have_distinct_exit_codes() {
    let env = Env::new("");
    let missing = env.jobctl(&["show", "999"]);
    assert_eq!(missing.status.code(), Some(3), "{}", show(&missing));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no job with id 999"));

    let bad = env.jobctl(&["add", "https://ok.example/a.png", "ftp://example.org/x"]);
    assert_eq!(bad.status.code(), Some(2), "{}", show(&bad));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("ftp"));
    assert_eq!(
        env.count("SELECT COUNT(*) FROM jobs"),
        0,
        "a rejected add inserted rows"
    );

    let bad_config = Env::with_config("wrokers = 3\n");
    let out = bad_config.jobctl(&["stats"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("wrokers"),
        "{}",
        show(&out)
    );
}

/// Regression (issue 12): `jobctl import /no/such/file` exited 2, where the documented table
/// (docs/operations.md, "Exit codes") says 1 for a file that could not be used. Every row of the
/// table, for jobctl and jobd alike.
#[test]
fn exit_codes_follow_the_documented_table() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/operations.md"))
        .unwrap();
    for row in [
        "| 1 | failure: the database, the blob_dir or a file could not be used",
        "| 2 | bad input: usage, the config file (unreadable or invalid)",
        "| 3 | not found",
    ] {
        assert!(
            doc.contains(row),
            "docs/operations.md's table lacks {row:?}"
        );
    }
    let env = Env::new("");
    env.jobctl_ok(&["stats"]);
    let code = |out: std::process::Output| (out.status.code(), show(&out));
    // 1: a file or the database cannot be used.
    let missing = env.path("no-such-file.txt");
    assert_eq!(
        code(env.jobctl(&["import", missing.to_str().unwrap()])).0,
        Some(1)
    );
    assert_eq!(
        code(env.jobctl(&["import", env.path("").to_str().unwrap()])).0,
        Some(1)
    );
    let no_db = Env::new("database = \"jobd.db/inside\"");
    std::fs::write(no_db.path("jobd.db"), "a file, not a folder").unwrap();
    assert_eq!(code(no_db.jobctl(&["stats"])).0, Some(1));
    let out = no_db.jobd(&["--drain"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    // 2: usage and config, for jobd too.
    assert_eq!(code(env.jobctl(&["frobnicate"])).0, Some(2));
    let bad_config = Env::with_config("wrokers = 3\n");
    let out = bad_config.jobd(&["--drain"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let out = env.jobd(&["--drain", "--workers", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_jobd"))
        .arg("--config")
        .arg(env.path("missing.toml"))
        .arg("--drain")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
    // 3: not found.
    assert_eq!(code(env.jobctl(&["show", "999"])).0, Some(3));
}

#[test]
fn import_skips_comments_and_reports_bad_lines_by_number() {
    let env = Env::new("");
    let file = env.path("urls.txt");
    let long = format!("https://example.org/{}", "x".repeat(1_000_000));
    std::fs::write(
        &file,
        format!(
            "# a comment\nhttps://example.org/1.jpg\n\n   \nnot a url\nhttps://example.org/2.jpg\r\n{long}\nftp://x/y\nhttps://example.org/3.jpg"
        ),
    )
    .unwrap();
    let out = env.jobctl(&["import", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for words in ["line 5:", "line 7:", "line 8:", "3 lines of"] {
        assert!(stderr.contains(words), "stderr lacks {words:?}: {stderr}");
    }
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("added 3, rejected 3"),
        "{}",
        show(&out)
    );
    assert_eq!(env.count("SELECT COUNT(*) FROM jobs"), 3);
    assert_eq!(
        env.count("SELECT COUNT(*) FROM jobs WHERE url = 'https://example.org/2.jpg'"),
        1
    );
}

#[test]
fn import_reads_stdin_in_large_batches() {
    let env = Env::new("");
    let urls: String = (0..25_000)
        .map(|i| format!("https://example.org/{i}.jpg\n"))
        .collect();
    let out = env.jobctl_with_input(&["import", "-"], urls.as_bytes());
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(env.count("SELECT COUNT(*) FROM jobs"), 25_000);
}

#[test]
fn import_survives_a_two_gigabyte_line_in_bounded_memory() {
    let env = Env::new("");
    // 1 GB of address space: far less than the 2 GB line, so holding it would fail.
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 1000000 && exec \"$0\" --config \"$1\" import -")
        .arg(env!("CARGO_BIN_EXE_jobctl"))
        .arg(env.config())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        stdin.write_all(b"https://example.org/before\n")?;
        let chunk = vec![b'a'; 1 << 20];
        for _ in 0..2048 {
            stdin.write_all(&chunk)?;
        }
        stdin.write_all(b"\nhttps://example.org/after\n")
    });
    let out = crate::support::finish(child);
    writer
        .join()
        .unwrap()
        .expect("jobctl read all of its input");
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 2: line is 2147483648 bytes long"),
        "{stderr}"
    );
    assert_eq!(env.count("SELECT COUNT(*) FROM jobs"), 2);
}

#[test]
fn import_csv_and_tsv_with_priorities_and_bad_lines() {
    let env = Env::new("");
    let csv = env.path("urls.csv");
    std::fs::write(
        &csv,
        "\u{feff}url,priority\n\
         https://example.org/1.png,5\n\
         \"https://example.org/2.png?size=1,2\",-3\n\
         https://example.org/3.png,\n\
         # a comment\n\
         https://example.org/4.png,high\n\
         https://example.org/5.png,1,extra\n\
         \"https://example.org/6.png,2\n\
         ftp://example.org/7.png,1\n",
    )
    .unwrap();
    let out = env.jobctl(&["import", "--json", csv.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let report = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(report["format"], "CSV");
    assert_eq!(report["added"], 3);
    assert_eq!(report["rejected"], 4);
    assert_eq!(report["skipped"], 0);
    let lines: Vec<i64> = report["rejects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["line"].as_i64().unwrap())
        .collect();
    assert_eq!(lines, [6, 7, 8, 9]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for words in [
        "line 6: priority \"high\"",
        "line 7: the record has 3 fields",
        "line 8: a quote",
        "line 9: url scheme \"ftp\"",
    ] {
        assert!(stderr.contains(words), "stderr lacks {words:?}: {stderr}");
    }
    let priorities: Vec<(String, i64)> = env
        .db()
        .prepare("SELECT url, priority FROM jobs ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        priorities,
        [
            ("https://example.org/1.png".to_string(), 5),
            ("https://example.org/2.png?size=1,2".to_string(), -3),
            ("https://example.org/3.png".to_string(), 0),
        ]
    );

    // TSV, columns in any order, through stdin.
    let tsv = "priority\turl\n9\thttps://example.org/t1.png\n\thttps://example.org/t2.png\n";
    let out = env.jobctl_with_input(&["import", "--json"], tsv.as_bytes());
    assert!(out.status.success(), "{}", show(&out));
    let report = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(
        (report["format"].as_str(), report["added"].as_i64()),
        (Some("TSV"), Some(2))
    );
    assert_eq!(
        env.count("SELECT priority FROM jobs WHERE url = 'https://example.org/t1.png'"),
        9
    );

    // A header naming a column jobctl does not know stops the import before anything is added.
    let typo = env.path("typo.csv");
    std::fs::write(&typo, "url,priorty\nhttps://example.org/x.png,1\n").unwrap();
    let out = env.jobctl(&["import", typo.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("priorty"),
        "{}",
        show(&out)
    );
    assert_eq!(env.count("SELECT COUNT(*) FROM jobs"), 5);

    // --format lines takes a header-looking line as a (bad) URL.
    let out = env.jobctl(&["import", "--format", "lines", typo.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("line 1:"),
        "{}",
        show(&out)
    );
}

#[test]
fn import_skip_existing_skips_known_urls_and_repeats() {
    let env = Env::new("");
    env.jobctl_ok(&["stats"]);
    let db = env.db();
    for (url, state) in [
        ("https://example.org/queued.png", "queued"),
        ("https://example.org/done.png", "done"),
        ("https://example.org/running.png", "running"),
        ("https://example.org/failed.png", "failed"),
        ("https://example.org/cancelled.png", "cancelled"),
    ] {
        db.execute(
            "INSERT INTO jobs (url, state) VALUES (?1, ?2)",
            [url, state],
        )
        .unwrap();
    }
    let file = env.path("urls.txt");
    std::fs::write(
        &file,
        "https://example.org/queued.png\n\
         https://example.org/done.png\n\
         https://example.org/running.png\n\
         https://example.org/failed.png\n\
         https://example.org/cancelled.png\n\
         https://example.org/new.png\n\
         https://example.org/new.png\n\
         https://example.org/failed.png\n\
         https://example.org/other.png\n",
    )
    .unwrap();
    let report = json(&env.jobctl_ok(&[
        "import",
        "--json",
        "--skip-existing",
        file.to_str().unwrap(),
    ]));
    assert_eq!(report["added"], 4, "{report}");
    assert_eq!(report["skipped"], 5, "{report}");
    assert_eq!(report["skipped_existing"], 3, "{report}");
    assert_eq!(report["skipped_repeated"], 2, "{report}");
    assert_eq!(report["rejected"], 0, "{report}");
    for (url, n) in [
        ("queued", 1),
        ("done", 1),
        ("running", 1),
        ("failed", 2),
        ("cancelled", 2),
        ("new", 1),
        ("other", 1),
    ] {
        let sql = format!("SELECT COUNT(*) FROM jobs WHERE url = 'https://example.org/{url}.png'");
        assert_eq!(env.count(&sql), n, "{url}");
    }
    // Again: everything is known now.
    let again = env.jobctl_ok(&["import", "--skip-existing", file.to_str().unwrap()]);
    assert!(
        again.contains("added 0, skipped 9 (7 already in the queue, 2 repeated in the input)"),
        "{again}"
    );
    // Without the flag, repeats are separate jobs.
    let plain = env.jobctl_ok(&["import", file.to_str().unwrap()]);
    assert!(plain.contains("added 9, rejected 0"), "{plain}");
}

/// Regression: the line cap counted a CRLF line's `\r`, so a URL of exactly the maximum length
/// was rejected from a Windows-made file although `jobctl add` accepted it.
#[test]
fn import_accepts_a_maximum_length_url_on_a_crlf_line() {
    let env = Env::new("");
    let url = format!(
        "http://example.com/{}",
        "a".repeat(jobd::joburl::MAX_URL_LEN - 19)
    );
    assert_eq!(url.len(), jobd::joburl::MAX_URL_LEN);
    let file = env.path("crlf.txt");
    std::fs::write(&file, format!("{url}\r\n  {url}x  \r\n")).unwrap();
    let out = env.jobctl(&["import", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2: url is 8193 bytes long"));
    assert_eq!(env.count("SELECT COUNT(*) FROM jobs"), 1);
}
