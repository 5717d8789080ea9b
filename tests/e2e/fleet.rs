//! jobd and jobctl on PostgreSQL: a fleet of daemons on one queue and one blob_dir, rows inserted
//! with a plain SQL client, every jobctl command, and a database that restarts under load.

use std::process::{Child, Stdio};

use jobd_testkit::images;
use jobd_testkit::postgres;
use jobd_testkit::server::{Reply, TestServer};

use crate::support::{Env, finish, sha256_hex, show, wait_until};

/// A test's world on a fresh database of the shared server: the config names it, blobs stay in
/// the temp dir.
fn pg_env(extra: &str) -> (Env, String) {
    env_on(postgres::server(), extra)
}

fn env_on(server: &postgres::TestPostgres, extra: &str) -> (Env, String) {
    let url = server.fresh_database();
    (Env::new(&format!("database = \"{url}\"\n{extra}")), url)
}

fn client(url: &str) -> ::postgres::Client {
    ::postgres::Client::connect(url, ::postgres::NoTls).expect("connect to the test database")
}

fn count(url: &str, sql: &str) -> i64 {
    client(url)
        .query_one(sql, &[])
        .and_then(|row| row.try_get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn serve_images(server: &TestServer, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let path = format!("/{i}.png");
            server.route(
                &path,
                Reply::image(images::png(8, 8, i as u64), "image/png"),
            );
            server.url(&path)
        })
        .collect()
}

fn spawn(env: &Env, args: &[&str]) -> Child {
    env.jobd(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start jobd")
}

#[test]
fn a_fleet_on_one_queue_and_one_blob_dir_fetches_every_url_once() {
    // A little latency per request, so that all three daemons are up before the work is done.
    let server = TestServer::start().with_wan(std::time::Duration::from_millis(5), None);
    let (env, url) = pg_env("");
    let urls = serve_images(&server, 300);
    let ids = env.add(&urls);
    assert_eq!(ids.len(), 300);
    let daemons: Vec<_> = (0..3).map(|_| spawn(&env, &["--drain"])).collect();
    for daemon in daemons {
        let out = finish(daemon);
        assert!(out.status.success(), "{}", show(&out));
    }
    assert_eq!(
        count(&url, "SELECT COUNT(*) FROM jobs WHERE state = 'done'"),
        300
    );
    assert_eq!(count(&url, "SELECT COUNT(*) FROM attempts"), 300);
    for i in 0..300 {
        assert_eq!(
            server.hits(&format!("/{i}.png")),
            1,
            "/{i}.png fetched twice"
        );
    }
    // Every blob is where its row says, with the bytes its row's sha256 names.
    let mut db = client(&url);
    for row in db.query("SELECT sha256, blob_path FROM jobs", &[]).unwrap() {
        let (sha, path): (String, String) = (row.get(0), row.get(1));
        assert_eq!(sha256_hex(&env.blob(&path)), sha);
    }
    assert!(
        count(
            &url,
            "SELECT COUNT(DISTINCT split_part(worker, '/', 1)) FROM attempts"
        ) >= 2,
        "the daemons shared the work"
    );
}

#[test]
fn a_row_inserted_by_hand_is_picked_up_by_a_running_daemon() {
    let server = TestServer::start();
    let (env, url) = pg_env("");
    let urls = serve_images(&server, 3);
    env.jobctl_ok(&["stats"]); // creates the tables
    let mut daemon = spawn(&env, &[]);
    let mut db = client(&url);
    for u in &urls {
        db.execute("INSERT INTO jobs (url) VALUES ($1)", &[u])
            .unwrap();
    }
    wait_until("the rows inserted by hand to be done", || {
        count(&url, "SELECT COUNT(*) FROM jobs WHERE state = 'done'") == 3
    });
    // A row that goes back to the queue by hand is picked up too.
    db.execute("UPDATE jobs SET state = 'queued' WHERE id = 1", &[])
        .unwrap();
    wait_until("the requeued row to be done again", || {
        count(&url, "SELECT COUNT(*) FROM attempts WHERE outcome = 'done'") == 4
    });
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    assert_eq!(server.hits("/0.png"), 2);
}

#[test]
fn jobctl_commands_work_on_postgres() {
    let server = TestServer::start();
    let (env, url) = pg_env("");
    let urls = serve_images(&server, 4);
    server.route("/gone.png", Reply::status(404));
    let mut all = urls.clone();
    all.push(server.url("/gone.png"));
    env.add(&all);
    let list = env.jobctl_with_input(&["import", "-"], format!("{}\n", urls[0]).as_bytes());
    assert!(list.status.success(), "{}", show(&list));
    env.jobctl_ok(&["pause"]);
    let stats = env.jobctl_ok(&["--json", "stats"]);
    assert!(stats.contains("\"paused\":true"), "{stats}");
    env.jobctl_ok(&["resume"]);
    env.drain(&[]);
    assert_eq!(
        count(&url, "SELECT COUNT(*) FROM jobs WHERE state = 'done'"),
        5
    );
    let failed = env.jobctl_ok(&["list", "--state", "failed"]);
    assert!(failed.contains("gone.png"), "{failed}");
    let shown = env.jobctl_ok(&["show", "5"]);
    assert!(shown.contains("404"), "{shown}");
    let stats = env.jobctl_ok(&["--json", "stats"]);
    assert!(stats.contains("\"done\":5"), "{stats}");
    assert!(
        env.jobctl_ok(&["retry", "--failed"])
            .contains("requeued 1 ")
    );
    assert_eq!(
        count(&url, "SELECT COUNT(*) FROM jobs WHERE state = 'queued'"),
        1
    );
    env.jobctl_ok(&["cancel", "5"]);
    let pruned = env.jobctl(&["prune", "--older-than", "0s", "--blobs"]);
    assert!(pruned.status.success(), "{}", show(&pruned));
    assert_eq!(count(&url, "SELECT COUNT(*) FROM jobs"), 0);
    assert_eq!(count(&url, "SELECT COUNT(*) FROM attempts"), 0);
}

#[test]
fn a_database_restart_loses_no_job_and_records_none_twice() {
    // Slow replies, so that jobs are in flight when the database goes away.
    let server = TestServer::start().with_wan(std::time::Duration::from_millis(30), None);
    // A server of its own: a restart breaks every connection to it.
    let pg = postgres::TestPostgres::start();
    let url = pg.fresh_database();
    // The restart is a crash: the daemon's last commits (which do not wait for the disk) may
    // be lost, and their jobs come back when their leases run out. Short leases, then.
    let env = Env::with_config(&format!(
        "database = \"{url}\"\nworkers = 4\ngrace_secs = 2\nlease_secs = 3\n\
         [fetch]\nallow_ips = [\"127.0.0.1/32\"]\n\
         [retry]\nbase_delay_ms = 50\nmax_delay_ms = 200\n"
    ));
    let urls = serve_images(&server, 200);
    env.add(&urls);
    let daemon = spawn(&env, &["--drain"]);
    wait_until("some jobs to be done", || {
        count(&url, "SELECT COUNT(*) FROM jobs WHERE state = 'done'") >= 20
    });
    pg.restart();
    let out = finish(daemon);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(
        count(&url, "SELECT COUNT(*) FROM jobs WHERE state = 'done'"),
        200,
        "{}",
        show(&out)
    );
    assert_eq!(
        count(&url, "SELECT COUNT(*) FROM attempts WHERE outcome = 'done'"),
        200,
        "no job recorded twice"
    );
}

#[test]
fn a_database_that_does_not_exist_is_named_at_once() {
    let url = format!(
        "postgres://postgres@127.0.0.1:{}/no_such_queue",
        postgres::server().port()
    );
    let env = Env::new(&format!("database = \"{url}\""));
    let out = env.jobctl(&["stats"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("database \"no_such_queue\" does not exist"),
        "{stderr}"
    );
    let out = env.jobd(&["--drain"]).output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not exist"),
        "{}",
        show(&out)
    );
}

/// psql, as docs/fleets.md shows it: a bare INSERT makes a runnable job, and the views read well.
#[test]
fn the_psql_shell_adds_runnable_jobs_and_reads_the_views() {
    let server = TestServer::start();
    let (env, url) = pg_env("");
    let image = serve_images(&server, 1).remove(0);
    env.jobctl_ok(&["stats"]); // creates the tables
    let psql = |sql: &str| {
        let out = std::process::Command::new("psql")
            .args([
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &url,
                "-c",
                sql,
            ])
            .output()
            .expect("run psql (scripts/check.sh installs it with PostgreSQL)");
        assert!(out.status.success(), "psql {sql}: {}", show(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    psql(&format!("INSERT INTO jobs(url) VALUES ('{image}')"));
    env.drain(&[]);
    assert_eq!(
        psql("SELECT state, mime, width, duration LIKE '%s' FROM jobs_view"),
        "done|image/png|8|t"
    );
    assert_eq!(
        psql("SELECT attempt, outcome, total LIKE '% ms' FROM attempts_view"),
        "1|done|t"
    );
}
