//! Faults on our side and the host's: slow-down answers, a broken blob store, a locked database,
//! a growing write-ahead log, and people inserting beside several daemons.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use jobd_testkit::images;
use jobd_testkit::server::{Fault, Reply, TestServer};

use crate::support::{Env, Logged, finish, show, signal, wait_until};

fn png(seed: u64) -> Vec<u8> {
    images::png(8, 8, seed)
}

/// Starts `n` daemons on the env's queue.
fn start_daemons(env: &Env, n: usize) -> Vec<std::process::Child> {
    (0..n)
        .map(|_| {
            env.jobd(&[])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect()
}

/// Stops daemons with SIGTERM, and asserts that each exits 0.
fn stop_daemons(daemons: Vec<std::process::Child>) {
    for daemon in daemons {
        signal(&daemon, "TERM");
        let out = finish(daemon);
        assert!(out.status.success(), "{}", show(&out));
    }
}

/// (finished_at of one attempt, started_at of the next) for a job's first two attempts.
fn gap_ms(env: &Env, id: i64) -> i64 {
    env.db()
        .query_row(
            "SELECT b.started_at - a.finished_at FROM attempts a JOIN attempts b
             ON a.job_id = b.job_id AND b.attempt = a.attempt + 1
             WHERE a.job_id = ?1 AND a.attempt = 1",
            [id],
            |r| r.get(0),
        )
        .unwrap()
}

#[test]
fn retry_after_is_honoured_in_seconds_and_as_a_date() {
    let server = TestServer::start();
    // HTTP dates have whole seconds: this one is between 3 and 4 s away when it is made.
    let soon = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(4));
    server.route(
        "/seconds",
        Reply::sequence(vec![
            Reply::status(429).header("Retry-After", "1"),
            Reply::image(png(1), "image/png"),
        ]),
    );
    server.route(
        "/date",
        Reply::sequence(vec![
            Reply::status(503).header("Retry-After", &soon),
            Reply::image(png(2), "image/png"),
        ]),
    );
    // Retry-After may not exceed max_delay_ms, so this test allows 5 s; the backoff alone would
    // wait 50 ms at most (base_delay_ms).
    let env = Env::with_config(
        "workers = 2\n[fetch]\nallow_ips = [\"127.0.0.1/32\"]\n\
         [retry]\nbase_delay_ms = 10\nmax_delay_ms = 5000\n",
    );
    let ids = env.add(&[server.url("/seconds"), server.url("/date")]);
    env.drain(&[]);
    for id in &ids {
        let job = env.job(*id);
        assert_eq!((job.state.as_str(), job.attempts), ("done", 2), "{job:?}");
    }
    assert!(
        gap_ms(&env, ids[0]) >= 950,
        "Retry-After: 1 waited {} ms",
        gap_ms(&env, ids[0])
    );
    assert!(
        gap_ms(&env, ids[1]) >= 1_500,
        "an HTTP-date Retry-After waited {} ms",
        gap_ms(&env, ids[1])
    );
}

/// Issue 14: a one-off 503 without Retry-After (a CDN's hiccup for one object) costs that job a
/// retry, and the host some concurrency for a while; it no longer stops the host's other jobs.
#[test]
fn a_one_off_503_without_retry_after_does_not_stop_the_host() {
    let busy = TestServer::start();
    busy.route(
        "/hiccup",
        Reply::sequence(vec![Reply::status(503), Reply::image(png(10), "image/png")]),
    );
    let mut urls = vec![busy.url("/hiccup")];
    for i in 0..8 {
        busy.route(&format!("/{i}"), Reply::image(png(i), "image/png"));
        urls.push(busy.url(&format!("/{i}")));
    }
    // A long backoff: had the 503 stopped the host, the others would wait as long.
    let env = Env::with_config(
        "[fetch]\nallow_ips = [\"127.0.0.1/32\"]\n[retry]\nbase_delay_ms = 4000\nmax_delay_ms = 5000\n",
    );
    let ids = env.add(&urls);
    env.drain(&["--workers", "2"]);

    assert_eq!(env.outcomes(ids[0]), ["retry", "done"]);
    let first_503: i64 = env
        .db()
        .query_row(
            "SELECT finished_at FROM attempts WHERE job_id = ?1 AND attempt = 1",
            [ids[0]],
            |r| r.get(0),
        )
        .unwrap();
    for (id, url) in ids[1..].iter().zip(&urls[1..]) {
        assert_eq!(env.outcomes(*id), ["done"], "{url}: never given back");
        let finished: i64 = env
            .db()
            .query_row("SELECT finished_at FROM jobs WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap();
        assert!(
            finished - first_503 < 1_500,
            "{url} waited {} ms after the 503",
            finished - first_503
        );
    }
}

/// Issue 14: `max_rate_per_host` spaces the requests to each host (a Crawl-delay), without
/// spending attempts; one host's turns do not hold up another's.
#[test]
fn a_rate_ceiling_spaces_a_hosts_requests_and_spends_no_attempts() {
    let slow = TestServer::start();
    let fast = TestServer::start();
    let mut urls = Vec::new();
    for i in 0..5 {
        slow.route(&format!("/{i}"), Reply::image(png(i), "image/png"));
        urls.push(slow.url(&format!("/{i}")));
        fast.route(&format!("/{i}"), Reply::image(png(50 + i), "image/png"));
        urls.push(fast.url(&format!("/{i}")));
    }
    // Four a second: a request every 250 ms, a turn close enough for a worker to wait for.
    let env =
        Env::with_config("[fetch]\nallow_ips = [\"127.0.0.1/32\"]\nmax_rate_per_host = 4.0\n");
    let ids = env.add(&urls);
    env.drain(&["--workers", "4"]);
    for id in &ids {
        assert_eq!(
            env.outcomes(*id),
            ["done"],
            "job {id}: waiting is not an attempt"
        );
    }
    let gaps = |server: &TestServer| -> Vec<f64> {
        let arrivals = server.stats().arrivals_ms;
        arrivals.windows(2).map(|w| w[1] - w[0]).collect()
    };
    for server in [&slow, &fast] {
        let spaced = gaps(server);
        assert_eq!(spaced.len(), 4);
        for gap in &spaced {
            assert!(*gap >= 240.0, "requests {gap} ms apart: {spaced:?}");
        }
    }
    // Each host's five requests take four turns; had the hosts waited for each other, the ten
    // would have taken nine.
    let span: i64 = env
        .db()
        .query_row(
            "SELECT MAX(finished_at) - MIN(started_at) FROM jobs",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(span < 1_900, "ten requests took {span} ms");
}

#[test]
fn a_slow_down_answer_cools_the_whole_host_without_spending_attempts() {
    let busy = TestServer::start();
    let other = TestServer::start();
    busy.route(
        "/first",
        Reply::sequence(vec![
            Reply::status(503).header("Retry-After", "2"),
            Reply::image(png(10), "image/png"),
        ]),
    );
    let mut urls = vec![busy.url("/first")];
    for i in 0..5 {
        busy.route(&format!("/{i}"), Reply::image(png(i), "image/png"));
        urls.push(busy.url(&format!("/{i}")));
    }
    other.route("/elsewhere", Reply::image(png(99), "image/png"));
    urls.push(other.url("/elsewhere"));
    let env = Env::with_config(
        "[fetch]\nallow_ips = [\"127.0.0.1/32\"]\n[retry]\nbase_delay_ms = 10\nmax_delay_ms = 5000\n",
    );
    let ids = env.add(&urls);
    env.drain(&["--workers", "1"]);

    let first_503: i64 = env
        .db()
        .query_row(
            "SELECT finished_at FROM attempts WHERE job_id = ?1 AND attempt = 1",
            [ids[0]],
            |r| r.get(0),
        )
        .unwrap();
    for (id, url) in ids[1..6].iter().zip(&urls[1..6]) {
        let job = env.job(*id);
        assert_eq!(
            (job.state.as_str(), job.attempts),
            ("done", 1),
            "{url}: {job:?}"
        );
        assert_eq!(
            env.outcomes(*id),
            ["done"],
            "{url}: waiting is not an attempt"
        );
        let started: i64 = env
            .db()
            .query_row(
                "SELECT started_at FROM attempts WHERE job_id = ?1",
                [id],
                |r| r.get(0),
            )
            .unwrap();
        assert!(
            started - first_503 >= 1_900,
            "{url} was fetched {} ms after the 503",
            started - first_503
        );
    }
    for i in 0..5 {
        assert_eq!(busy.hits(&format!("/{i}")), 1);
    }
    // Another host is not held up by the cool-down.
    let elsewhere: i64 = env
        .db()
        .query_row(
            "SELECT finished_at FROM jobs WHERE id = ?1",
            [ids[6]],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        elsewhere - first_503 < 1_500,
        "the other host waited {} ms",
        elsewhere - first_503
    );
}

#[test]
fn an_unwritable_blob_store_spends_no_attempts_and_recovers_by_itself() {
    let server = TestServer::start();
    for i in 0..3 {
        server.route(&format!("/{i}"), Reply::image(png(i), "image/png"));
    }
    let env = Env::new("");
    let daemon = env
        .jobd(&["--workers", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let tmp = env.path("blobs/.tmp");
    wait_until("the blob store to exist", || tmp.is_dir());
    // A file where the temp folder should be: writes fail with ENOTDIR, for root too (unlike a
    // read-only mode bit, which root ignores).
    std::fs::remove_dir(&tmp).unwrap();
    std::fs::write(&tmp, b"in the way").unwrap();
    let ids = env.add(
        &(0..3)
            .map(|i| server.url(&format!("/{i}")))
            .collect::<Vec<_>>(),
    );

    let postponed = || env.count("SELECT COUNT(*) FROM attempts WHERE outcome = 'postponed'");
    wait_until("a postponed attempt", || postponed() >= 1);
    let first = Instant::now();
    wait_until("three postponed attempts", || postponed() >= 3);
    // The worker backs off (0.5 s, then 1 s, ...) instead of spinning through the queue.
    assert!(
        first.elapsed() >= Duration::from_millis(1_200),
        "no backoff: {:?}",
        first.elapsed()
    );
    assert_eq!(
        env.count("SELECT COUNT(*) FROM jobs WHERE state = 'failed'"),
        0
    );
    assert_eq!(
        env.count("SELECT MAX(attempts) FROM jobs WHERE state = 'queued'"),
        0,
        "attempts were spent"
    );

    std::fs::remove_file(&tmp).unwrap();
    wait_until("all jobs done once storage is back", || {
        env.count("SELECT COUNT(*) FROM jobs WHERE state = 'done'") == 3
    });
    for id in ids {
        assert_eq!(env.job(id).attempts, 1);
    }
    signal(&daemon, "TERM");
    let out = finish(daemon);
    assert!(out.status.success(), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot write to the blob store"));
}

#[test]
fn a_database_locked_for_seconds_fails_no_job() {
    let server = TestServer::start();
    let mut urls = Vec::new();
    for i in 0..40 {
        server.route(&format!("/{i}"), Reply::image(png(i), "image/png"));
        urls.push(server.url(&format!("/{i}")));
    }
    let env = Env::new("");
    env.add(&urls);
    let daemon = env
        .jobd(&[])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("some jobs done", || {
        env.count("SELECT COUNT(*) FROM jobs WHERE state = 'done'") > 0
    });
    {
        // Someone holds the write lock (a forgotten shell transaction) for two seconds.
        let db = env.db();
        db.execute_batch("BEGIN IMMEDIATE").unwrap();
        std::thread::sleep(Duration::from_secs(2));
        db.execute_batch("COMMIT").unwrap();
    }
    wait_until("all jobs done", || {
        env.count("SELECT COUNT(*) FROM jobs WHERE state = 'done'") == 40
    });
    assert_eq!(
        env.count("SELECT COUNT(*) FROM attempts WHERE outcome <> 'done'"),
        0
    );
    signal(&daemon, "TERM");
    assert!(finish(daemon).status.success());
}

#[test]
fn the_wal_shrinks_once_a_long_reader_lets_go() {
    let server = TestServer::start();
    let mut urls = Vec::new();
    for i in 0..300 {
        server.route(&format!("/{i}"), Reply::image(png(i), "image/png"));
        urls.push(server.url(&format!("/{i}")));
    }
    let env = Env::new("");
    env.add(&urls);
    let wal = env.path("jobd.db-wal");
    let reader = env.db();
    // An open read transaction pins its snapshot: no checkpoint can reset the log meanwhile.
    reader.execute_batch("BEGIN").unwrap();
    let _: i64 = reader
        .query_row("SELECT COUNT(*) FROM jobs", [], |r| r.get(0))
        .unwrap();
    let daemon = env
        .jobd(&[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("all jobs done", || {
        env.count("SELECT COUNT(*) FROM jobs WHERE state = 'done'") == 300
    });
    let grown = std::fs::metadata(&wal).unwrap().len();
    assert!(
        grown > 1_000_000,
        "the log did not grow while pinned: {grown} bytes"
    );
    reader.execute_batch("COMMIT").unwrap();
    drop(reader);
    wait_until("the log to be truncated", || {
        std::fs::metadata(&wal).map_or(0, |m| m.len()) < 100_000
    });
    signal(&daemon, "TERM");
    assert!(finish(daemon).status.success());
}

#[test]
fn three_daemons_and_a_shell_inserting_at_full_speed_never_clash() {
    let server = TestServer::start();
    let env = Env::new("");
    env.jobctl_ok(&["stats"]);
    let daemons = start_daemons(&env, 3);
    let mut script = String::from(".bail on\n.timeout 5000\n");
    for i in 0..400 {
        server.route(&format!("/{i}"), Reply::image(png(i), "image/png"));
        script.push_str(&format!(
            "INSERT INTO jobs(url) VALUES ('{}');\n",
            server.url(&format!("/{i}"))
        ));
    }
    let mut shell = Command::new("sqlite3")
        .arg(env.path("jobd.db"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the sqlite3 shell is needed (apt-get install sqlite3)");
    shell
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = finish(shell);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "the shell failed: {}",
        show(&out)
    );
    wait_until("all 400 jobs done", || {
        env.count("SELECT COUNT(*) FROM jobs WHERE state = 'done'") == 400
    });
    stop_daemons(daemons);
    for i in 0..400 {
        assert_eq!(
            server.hits(&format!("/{i}")),
            1,
            "/{i} fetched more than once"
        );
    }
    assert_eq!(
        env.count("SELECT COUNT(*) FROM attempts"),
        400,
        "an attempt failed or repeated"
    );
}

#[test]
fn a_slow_down_on_a_jobs_last_attempt_still_cools_the_host() {
    let busy = TestServer::start();
    busy.route("/last", Reply::status(503).header("Retry-After", "2"));
    busy.route("/next", Reply::image(png(20), "image/png"));
    let env = Env::with_config(
        "[fetch]\nallow_ips = [\"127.0.0.1/32\"]\n[retry]\nmax_attempts = 1\nmax_delay_ms = 5000\n",
    );
    let ids = env.add(&[busy.url("/last"), busy.url("/next")]);
    env.drain(&["--workers", "1"]);
    assert_eq!(env.job(ids[0]).state, "failed");
    assert_eq!(env.job(ids[1]).state, "done");
    let gap: i64 = env
        .db()
        .query_row(
            "SELECT b.started_at - a.finished_at FROM jobs a, jobs b WHERE a.id = ?1 AND b.id = ?2",
            [ids[0], ids[1]],
            |r| r.get(0),
        )
        .unwrap();
    assert!(gap >= 1_900, "the host was asked again after {gap} ms");
}

/// A host that answers 503 to everything, with more jobs queued than SQLite's watcher looks at:
/// once every due job is that host's, its pause ends with nothing else changing, and the host is
/// asked again then, for longer each time (regression: it was asked twice, then not for 30 s).
#[test]
fn a_paused_hosts_long_queue_is_tried_again_when_each_pause_ends() {
    let bad = TestServer::start();
    bad.fallback(Reply::status(503));
    let env = Env::with_config(
        "[fetch]\nallow_ips = [\"127.0.0.1/32\"]\n[retry]\nbase_delay_ms = 200\nmax_delay_ms = 60000\n",
    );
    let urls: Vec<String> = (0..1_200).map(|i| bad.url(&format!("/{i}.png"))).collect();
    env.jobctl_with_input(&["import", "-"], urls.join("\n").as_bytes());
    let daemon = Logged::spawn(env.jobd(&["--workers", "4"]));
    // 503, 503 and a pause of 200 ms, then 400 ms, then 800 ms: five requests in about 1.5 s.
    // Without a look at each pause's end, the third waited for the supervisor's look every 30 s.
    let start = Instant::now();
    wait_until("the host asked five times", || bad.total_hits() >= 5);
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "five requests took {:?}",
        start.elapsed()
    );
    assert_eq!(bad.stats().max_in_flight, 1, "one request at a time");
    signal(&daemon.child, "TERM");
    daemon.finish();
}

/// Issue 14: a host's limit is the fleet's, not each daemon's. Three daemons on one queue find
/// the host's limit at 1 (as another daemon would have left it after a host that answers 503
/// to everything): one of them has it, the other two leave the host's jobs alone, and the host
/// never sees more than one request at a time, through every 503 and pause.
#[test]
fn three_daemons_share_a_hosts_limit_of_one() {
    let server = TestServer::start();
    server.fallback(Reply::status(503).fault(Fault::Delay(Duration::from_millis(300))));
    let env = Env::with_config(
        "workers = 4\n[fetch]\nallow_ips = [\"127.0.0.1/32\"]\n\
         [retry]\nbase_delay_ms = 100\nmax_delay_ms = 400\nmax_attempts = 100\n",
    );
    env.jobctl_ok(&["stats"]);
    let host = format!("127.0.0.1:{}", server.addr().port());
    env.db()
        .execute(
            "INSERT INTO hosts (host, max_in_flight) VALUES (?1, 1)",
            [&host],
        )
        .unwrap();
    let daemons = start_daemons(&env, 3);
    // Every daemon has read the fleet since the last one joined: each beat reads it.
    wait_until("three daemons that have seen each other", || {
        env.count(
            "SELECT COUNT(*) FROM daemons
             WHERE seen_at > (SELECT MAX(started_at) FROM daemons) + 1000",
        ) == 3
    });
    let urls: Vec<String> = (0..12).map(|i| server.url(&format!("/{i}.png"))).collect();
    env.add(&urls);
    wait_until("ten requests to the host", || server.total_hits() >= 10);
    stop_daemons(daemons);
    assert_eq!(
        server.stats().max_in_flight,
        1,
        "requests at once to the host"
    );
    let askers =
        env.count("SELECT COUNT(DISTINCT substr(worker, 1, instr(worker, '/') - 1)) FROM attempts");
    assert_eq!(askers, 1, "daemons that sent the host requests");
    assert_eq!(
        env.count("SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running')"),
        12,
        "a 503 is no reason to give a job up"
    );
}
