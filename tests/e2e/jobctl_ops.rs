//! jobctl steering the queue, through its real binary, with real daemons where it matters:
//! pause and resume, cancel, retry, prune (with and without blobs), watch, and stats figures.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jobd_testkit::images;
use jobd_testkit::server::{Fault, Reply, TestServer};
use serde_json::Value;

use crate::support::{Env, Logged, files_under, finish, sha256_hex, show, signal, wait_until};

fn json(out: &str) -> Value {
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn png(seed: u64) -> Vec<u8> {
    images::png(8, 8, seed)
}

/// Inserts a job as a daemon that died would leave it: running, its lease long expired. The
/// next lease reaping of a live daemon puts it back in the queue.
fn insert_orphan(env: &Env, url: &str) -> i64 {
    let db = env.db();
    db.execute(
        "INSERT INTO jobs (url, state, attempts, started_at, lease_until, worker)
         VALUES (?1, 'running', 1, 1, 1, 'dead:1/w0')",
        [url],
    )
    .unwrap();
    db.last_insert_rowid()
}

#[test]
fn pause_holds_a_running_daemon_and_resume_releases_it() {
    let server = TestServer::start();
    for path in ["/before.png", "/held.png", "/orphan1.png", "/orphan2.png"] {
        server.route(path, Reply::image(png(path.len() as u64), "image/png"));
    }
    // lease_secs = 4: the daemon reaps expired leases every second, which is the clock below.
    let env = Env::with_config(
        "workers = 2\nlease_secs = 4\ngrace_secs = 2\npoll_interval_ms = 20\n\
         [fetch]\nallow_ips = [\"127.0.0.1/32\"]\n",
    );
    env.jobctl_ok(&["stats"]);
    let daemon = Logged::spawn(env.jobd(&[]));
    let before = env.add(&[server.url("/before.png")])[0];
    wait_until("the daemon to do a job", || env.job(before).state == "done");

    let paused = env.jobctl_ok(&["pause"]);
    assert!(paused.contains("paused"), "{paused}");
    let held = env.add(&[server.url("/held.png")])[0];
    // Proof that the daemon kept looking while the job was due: its lease reaper, which runs
    // once a second, puts back two orphans inserted one after the other. The second can only
    // come back at a reaping after the first, a second or more after `held` was due, and in
    // that time the daemon polled the queue some fifty times.
    let first = insert_orphan(&env, &server.url("/orphan1.png"));
    wait_until("the first orphan to be reaped", || {
        env.job(first).state == "queued"
    });
    let second = insert_orphan(&env, &server.url("/orphan2.png"));
    wait_until("the second orphan to be reaped", || {
        env.job(second).state == "queued"
    });
    assert_eq!(env.job(held).state, "queued");
    assert_eq!(server.hits("/held.png"), 0);
    let stats = json(&env.jobctl_ok(&["stats", "--json"]));
    assert_eq!(stats["paused"], true);
    assert!(env.jobctl_ok(&["stats"]).contains("paused: yes"));

    assert_eq!(json(&env.jobctl_ok(&["resume", "--json"]))["paused"], false);
    for id in [held, first, second] {
        wait_until("the held jobs to be done after resume", || {
            env.job(id).state == "done"
        });
    }
    signal(&daemon.child, "TERM");
    let (out, log) = daemon.finish();
    assert!(out.status.success(), "{}\n{log}", show(&out));
}

#[test]
fn cancel_a_queued_and_a_running_job() {
    let server = TestServer::start();
    // The attempt is in flight for three seconds, then fails in a way that would be retried.
    server.route(
        "/slow.png",
        Reply::status(503).fault(Fault::Delay(Duration::from_secs(3))),
    );
    server.route("/quick.png", Reply::image(png(1), "image/png"));
    let env = Env::new("");
    env.jobctl_ok(&["stats"]);
    let daemon = Logged::spawn(env.jobd(&[]));
    let running = env.add(&[server.url("/slow.png")])[0];
    let later = env.jobctl_ok(&["add", "--at", "+1h", &server.url("/quick.png")]);
    let later: i64 = later.trim().parse().unwrap();
    wait_until("the slow request to arrive", || {
        server.hits("/slow.png") == 1
    });

    let out = env.jobctl_ok(&["cancel", &running.to_string(), &later.to_string()]);
    assert!(out.contains(&format!("cancelled: {later}")), "{out}");
    assert!(
        out.contains(&format!(
            "when the attempt ends (unless it succeeds or fails for good): {running}"
        )),
        "{out}"
    );
    let queued = env.job(later);
    assert_eq!(
        (queued.state.as_str(), queued.error()),
        ("cancelled", "cancelled by jobctl")
    );
    assert_eq!(env.job(running).state, "running");
    let shown = env.jobctl_ok(&["show", &running.to_string()]);
    assert!(shown.contains("cancel requested"), "{shown}");

    wait_until("the running job to end cancelled", || {
        env.job(running).state == "cancelled"
    });
    assert_eq!(env.outcomes(running), ["retry"]);
    assert_eq!(
        server.hits("/slow.png"),
        1,
        "a cancelled job was tried again"
    );

    // Both are finished now: nothing to do is a failure (1), and JSON says why.
    let again = env.jobctl(&[
        "cancel",
        "--json",
        &running.to_string(),
        &later.to_string(),
        "99",
    ]);
    assert_eq!(again.status.code(), Some(1), "{}", show(&again));
    let report = json(&String::from_utf8_lossy(&again.stdout));
    assert_eq!(report["cancelled"], serde_json::json!([]));
    assert_eq!(report["cancel_requested"], serde_json::json!([]));
    assert_eq!(report["not_found"], serde_json::json!([99]));
    assert_eq!(
        report["already_finished"],
        serde_json::json!([{"id": running, "state": "cancelled"}, {"id": later, "state": "cancelled"}])
    );
    let missing = env.jobctl(&["cancel", "98", "99"]);
    assert_eq!(missing.status.code(), Some(3), "{}", show(&missing));

    signal(&daemon.child, "TERM");
    let (out, log) = daemon.finish();
    assert!(out.status.success(), "{}\n{log}", show(&out));
}

#[test]
fn retry_failed_jobs_by_error_and_by_id() {
    let server = TestServer::start();
    server.route("/gone.png", Reply::status(404));
    server.route("/page.png", Reply::html(200, "<html>not a picture</html>"));
    server.route("/ok.png", Reply::image(png(2), "image/png"));
    let env = Env::new("");
    let ids = env.add(&[
        server.url("/gone.png"),
        server.url("/page.png"),
        server.url("/ok.png"),
    ]);
    let (gone, page, ok) = (ids[0], ids[1], ids[2]);
    env.drain(&[]);
    assert_eq!(env.job(gone).state, "failed");
    assert_eq!(env.job(page).state, "failed");

    let refused = env.jobctl(&["retry", &ok.to_string()]);
    assert_eq!(refused.status.code(), Some(1), "{}", show(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--force"),
        "{}",
        show(&refused)
    );
    assert_eq!(env.jobctl(&["retry", "999"]).status.code(), Some(3));

    let report = json(&env.jobctl_ok(&["retry", "--failed", "--error", "http 404", "--json"]));
    assert_eq!(report["requeued"], 1);
    let requeued = env.job(gone);
    assert_eq!(
        (
            requeued.state.as_str(),
            requeued.attempts,
            requeued.error.as_deref()
        ),
        ("queued", 0, None)
    );
    assert_eq!(
        env.job(page).state,
        "failed",
        "the other error was requeued too"
    );

    server.route("/gone.png", Reply::image(png(3), "image/png"));
    env.drain(&[]);
    assert_eq!(env.job(gone).state, "done");
    assert_eq!(env.outcomes(gone), ["failed", "done"]);

    let forced = json(&env.jobctl_ok(&[
        "retry",
        "--json",
        "--force",
        &ok.to_string(),
        &page.to_string(),
    ]));
    assert_eq!(forced["requeued"], 2);
    assert_eq!(forced["ids"], serde_json::json!([ok, page]));
    assert_eq!(env.job(ok).state, "queued");
    let all = env.jobctl_ok(&["retry", "--failed"]);
    assert!(all.contains("requeued 0 failed jobs"), "{all}");
}

#[test]
fn prune_deletes_old_rows_and_with_blobs_the_files_nobody_uses() {
    let server = TestServer::start();
    let (x, y, z) = (png(10), png(11), png(12));
    server.route("/x1.png", Reply::image(x.clone(), "image/png"));
    server.route("/x2.png", Reply::image(x.clone(), "image/png"));
    server.route("/y.png", Reply::image(y.clone(), "image/png"));
    server.route("/z1.png", Reply::image(z.clone(), "image/png"));
    server.route("/z2.png", Reply::image(z.clone(), "image/png"));
    server.route("/missing.png", Reply::status(404));
    let env = Env::new("");
    let urls: Vec<String> = ["/x1.png", "/x2.png", "/y.png", "/z1.png", "/missing.png"]
        .iter()
        .map(|p| server.url(p))
        .collect();
    let ids = env.add(&urls);
    env.drain(&[]);
    let blob = |id: i64| env.path("blobs").join(env.job(id).blob_path.unwrap());
    let (x_file, y_file, z_file) = (blob(ids[0]), blob(ids[2]), blob(ids[3]));
    assert_eq!(blob(ids[1]), x_file, "identical images share one blob");
    let age = |id: i64| {
        env.db()
            .execute(
                "UPDATE jobs SET finished_at = finished_at - 2 * 86400000 WHERE id = ?1",
                [id],
            )
            .unwrap();
    };

    // Only failed ones, and only old ones.
    age(ids[4]);
    age(ids[0]);
    let out = env.jobctl_ok(&["prune", "--older-than", "1d", "--state", "failed"]);
    assert!(out.contains("pruned 1 jobs (failed)"), "{out}");
    assert_eq!(env.count("SELECT COUNT(*) FROM jobs"), 4);
    assert_eq!(
        env.count("SELECT COUNT(*) FROM attempts WHERE job_id = 5"),
        0
    );

    // Without --blobs the files stay, even those no job refers to any more.
    age(ids[2]);
    let report = json(&env.jobctl_ok(&["prune", "--older-than", "1d", "--json"]));
    assert_eq!(report["pruned"], 2);
    assert_eq!(report["blobs_removed"], 0);
    assert!(x_file.exists() && y_file.exists());

    // With --blobs: x's last job goes and so does x; z is still used by a newer job.
    let z2 = env.add(&[server.url("/z2.png")])[0];
    env.drain(&[]);
    assert_eq!(blob(z2), z_file);
    age(ids[1]);
    age(ids[3]);
    let report = json(&env.jobctl_ok(&["prune", "--older-than", "1d", "--blobs", "--json"]));
    assert_eq!(report["pruned"], 2, "{report}");
    assert_eq!(report["blobs_removed"], 1, "{report}");
    assert_eq!(report["blob_bytes_removed"], x.len() as u64, "{report}");
    assert_eq!(report["blobs_kept"], 1, "{report}");
    assert!(!x_file.exists(), "x is used by no job");
    assert!(z_file.exists(), "z is still used by job {z2}");
    assert!(
        y_file.exists(),
        "y was pruned without --blobs: jobctl no longer knows it"
    );
    assert!(
        !files_under(&env.path("blobs").join(".tmp"))
            .iter()
            .any(|f| f.to_string_lossy().contains("prune")),
        "blobs left aside"
    );
    assert_eq!(env.count("SELECT COUNT(*) FROM jobs"), 1);
    assert_eq!(env.job(z2).state, "done");
}

/// A done job, finished two days ago, whose blob is on disk; and a job running under a live
/// lease, as a daemon storing an image would hold it, so that `prune --blobs` has to wait.
/// Returns the blob's path.
fn a_pruneable_blob_and_a_running_attempt(env: &Env) -> std::path::PathBuf {
    env.jobctl_ok(&["stats"]);
    let bytes = png(40);
    let sha = sha256_hex(&bytes);
    let rel = format!("{}/{}/{sha}.png", &sha[..2], &sha[2..4]);
    let file = env.path("blobs").join(&rel);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, &bytes).unwrap();
    let db = env.db();
    db.execute(
        "INSERT INTO jobs (url, state, finished_at, sha256, blob_path)
         VALUES ('http://127.0.0.1/old.png', 'done', strftime('%s', 'now') * 1000 - 2 * 86400000,
                 ?1, ?2)",
        [&sha, &rel],
    )
    .unwrap();
    db.execute_batch(
        "INSERT INTO jobs (url, state, attempts, started_at, worker)
             VALUES ('http://127.0.0.1/slow.png', 'running', 1, 1, 'live:1/w0');
         INSERT INTO attempts (job_id, attempt, started_at) VALUES (last_insert_rowid(), 1, 1);
         UPDATE jobs SET attempt_id = last_insert_rowid(),
                         lease_until = strftime('%s', 'now') * 1000 + 3600000
             WHERE worker = 'live:1/w0';",
    )
    .unwrap();
    file
}

fn held_files(env: &Env) -> Vec<std::path::PathBuf> {
    files_under(&env.path("blobs").join(".tmp"))
        .into_iter()
        .filter(|f| f.to_string_lossy().ends_with(".held"))
        .collect()
}

/// Regression (issue 12): `prune --blobs` interrupted during its wait left the blobs it had
/// moved aside there for ever (under names no sweeper knew), even when a job had meanwhile
/// recorded one as done; and the wait had no bound.
#[test]
fn prune_blobs_puts_the_blobs_back_when_interrupted_or_when_its_wait_runs_out() {
    let env = Env::new("");
    let file = a_pruneable_blob_and_a_running_attempt(&env);
    let prune = Logged::spawn({
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_jobctl"));
        cmd.arg("--config")
            .arg(env.config())
            .args(["prune", "--older-than", "1d", "--blobs"]);
        cmd
    });
    prune.wait_for_log("waiting up to 1 min 20 s for 1 running attempt to end");
    assert!(
        !file.exists(),
        "the blob is not held aside while jobctl waits"
    );
    signal(&prune.child, "INT");
    let (out, log) = prune.finish();
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        log.contains("interrupted by SIGINT") && log.contains("1 blob set aside put back"),
        "{log}"
    );
    assert!(file.exists(), "the blob was not put back");
    assert!(held_files(&env).is_empty());
    assert_eq!(
        env.count("SELECT COUNT(*) FROM jobs WHERE state = 'done'"),
        0
    );

    // The same blob named by a job again, pruned again: this time the wait runs out.
    env.db()
        .execute(
            "INSERT INTO jobs (url, state, finished_at, sha256, blob_path)
             SELECT 'http://127.0.0.1/again.png', 'done', 1, ?1, ?2",
            [
                sha256_hex(&std::fs::read(&file).unwrap()),
                file.strip_prefix(env.path("blobs"))
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            ],
        )
        .unwrap();
    let out = env.jobctl(&["prune", "--older-than", "1d", "--blobs", "--wait", "1s"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("gave up after 1.") && stderr.contains("1 blob set aside put back"),
        "{stderr}"
    );
    assert!(file.exists() && held_files(&env).is_empty());
}

/// A jobctl killed outright while it holds blobs leaves them aside; the next blob store opened
/// on the folder (a daemon starting, another prune) sees that their owner is gone and restores
/// them.
#[test]
fn blobs_held_by_a_killed_jobctl_are_restored_by_the_next_daemon() {
    let env = Env::new("");
    let file = a_pruneable_blob_and_a_running_attempt(&env);
    let prune = Logged::spawn({
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_jobctl"));
        cmd.arg("--config")
            .arg(env.config())
            .args(["prune", "--older-than", "1d", "--blobs"]);
        cmd
    });
    prune.wait_for_log("waiting up to");
    signal(&prune.child, "KILL");
    let (out, _) = prune.finish();
    assert!(!out.status.success());
    assert!(!file.exists() && held_files(&env).len() == 1);
    // The running job ends, so that a draining daemon exits at once.
    env.db()
        .execute(
            "UPDATE jobs SET state = 'failed' WHERE state = 'running'",
            [],
        )
        .unwrap();
    env.drain(&[]);
    assert!(file.exists(), "the daemon did not restore the held blob");
    assert!(held_files(&env).is_empty());
}

/// Spawns `jobctl` with stdout read as it comes.
fn spawn_collecting(env: &Env, args: &[&str]) -> (Child, Arc<Mutex<String>>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_jobctl"))
        .arg("--config")
        .arg(env.config())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let text = Arc::new(Mutex::new(String::new()));
    let (mut stdout, sink) = (child.stdout.take().unwrap(), text.clone());
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    (child, text)
}

#[test]
fn watch_follows_the_queue_until_it_is_drained_and_stats_count_the_work() {
    let server = TestServer::start();
    let env = Env::new("");
    let urls: Vec<String> = (0..5)
        .map(|i| {
            let path = format!("/w{i}.png");
            server.route(&path, Reply::image(png(20 + i), "image/png"));
            server.url(&path)
        })
        .collect();
    env.jobctl_ok(&["pause"]);
    env.add(&urls);
    let daemon = Logged::spawn(env.jobd(&[]));
    let (watch, seen) = spawn_collecting(&env, &["watch", "--interval", "50ms"]);
    wait_until("watch to show the paused queue", || {
        seen.lock()
            .unwrap()
            .contains("queued 5, running 0, done 0, failed 0, cancelled 0, PAUSED")
    });
    env.jobctl_ok(&["resume"]);
    let out = finish(watch);
    assert!(out.status.success(), "{}", show(&out));
    let text = seen.lock().unwrap().clone();
    let last = text.lines().last().unwrap_or_default();
    assert!(
        last.contains("queued 0, running 0, done 5, failed 0, cancelled 0")
            && last.contains("drained"),
        "{text}"
    );

    // On a drained queue: one JSON line, at once.
    let lines = env.jobctl_ok(&["watch", "--json"]);
    let snapshot = json(lines.lines().next().unwrap());
    assert_eq!(snapshot["states"]["done"], 5);
    assert_eq!(snapshot["states"]["queued"], 0);
    assert_eq!(snapshot["finished"], 0);
    assert!(snapshot["eta_ms"].is_null(), "{snapshot}");

    let stats = json(&env.jobctl_ok(&["stats", "--json"]));
    assert_eq!(stats["throughput"]["1m"]["done"], 5, "{stats}");
    assert_eq!(stats["throughput"]["15m"]["done"], 5, "{stats}");
    assert_eq!(stats["timings"]["window"], "15m");
    assert_eq!(stats["timings"]["attempts"], 5);
    let ttfb = &stats["timings"]["ttfb_ms"];
    assert!(
        ttfb["p50"].as_i64().unwrap() <= ttfb["p95"].as_i64().unwrap(),
        "{stats}"
    );
    assert!(stats["timings"]["total_ms"]["p95"].is_i64(), "{stats}");
    assert_eq!(stats["blobs"], 5);
    assert_eq!(stats["blob_bytes"], stats["bytes_done"]);
    let human = env.jobctl_ok(&["stats"]);
    for words in [
        "done jobs: 5 in 1 min",
        "timings of 5 done attempts, the last 15 min",
        "in 5 blobs",
    ] {
        assert!(human.contains(words), "stats lacks {words:?}: {human}");
    }

    signal(&daemon.child, "TERM");
    let (out, log) = daemon.finish();
    assert!(out.status.success(), "{}\n{log}", show(&out));
}

/// The race `prune --blobs` guards against: a daemon storing the very bytes whose blob is being
/// deleted. The blob waits aside until the running attempt has ended, and is then kept.
#[test]
fn prune_blobs_waits_for_running_attempts_that_may_store_the_same_image() {
    let server = TestServer::start();
    let z = png(30);
    server.route("/old.png", Reply::image(z.clone(), "image/png"));
    server.route(
        "/slow.png",
        Reply::image(z.clone(), "image/png").fault(Fault::Delay(Duration::from_secs(2))),
    );
    let env = Env::new("");
    let old = env.add(&[server.url("/old.png")])[0];
    env.drain(&[]);
    let z_file = env.path("blobs").join(env.job(old).blob_path.unwrap());
    env.db()
        .execute("UPDATE jobs SET finished_at = finished_at - 86400000", [])
        .unwrap();

    let daemon = Logged::spawn(env.jobd(&[]));
    let slow = env.add(&[server.url("/slow.png")])[0];
    wait_until("the slow download to start", || {
        server.hits("/slow.png") == 1
    });
    let out = env.jobctl(&["prune", "--older-than", "1h", "--blobs", "--json"]);
    assert!(out.status.success(), "{}", show(&out));
    let report = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(report["pruned"], 1, "{report}");
    assert_eq!(report["blobs_removed"], 0, "{report}");
    assert_eq!(report["blobs_kept"], 1, "{report}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("for 1 running attempt to end"),
        "{}",
        show(&out)
    );
    let job = env.job(slow);
    assert_eq!(job.state, "done");
    assert_eq!(env.path("blobs").join(job.blob_path.unwrap()), z_file);
    assert_eq!(std::fs::read(&z_file).unwrap(), z);

    signal(&daemon.child, "TERM");
    let (out, log) = daemon.finish();
    assert!(out.status.success(), "{}\n{log}", show(&out));
}
