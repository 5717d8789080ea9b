//! No job is ever claimed twice: threads racing on one store, and daemons racing on one file.

use std::collections::HashSet;
use std::sync::Arc;

use jobd::store::{ClaimOptions, Jobs, NewJob, Queue, SqliteStore};
use jobd_testkit::images;
use jobd_testkit::server::{Reply, TestServer};

use crate::support::{Env, finish, show};

#[test]
fn threads_racing_for_jobs_claim_each_exactly_once() {
    let env = Env::new("");
    let store = SqliteStore::open(&env.path("jobd.db"), 16).unwrap();
    let jobs: Vec<NewJob> = (0..2000)
        .map(|i| NewJob {
            priority: i % 7,
            ..NewJob::new(format!("http://127.0.0.1/{i}"))
        })
        .collect();
    store.add(&jobs).unwrap();
    let store = Arc::new(store);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                loop {
                    let claimed = store
                        .claim(&format!("t{t}"), 1 + t % 3, ClaimOptions::lease(60_000))
                        .unwrap();
                    if claimed.is_empty() {
                        return mine;
                    }
                    mine.extend(claimed.iter().map(|c| c.job_id));
                }
            })
        })
        .collect();
    let mut seen = HashSet::new();
    for thread in threads {
        for id in thread.join().unwrap() {
            assert!(seen.insert(id), "job {id} was claimed twice");
        }
    }
    assert_eq!(seen.len(), 2000);
    assert_eq!(
        env.count("SELECT COUNT(*) FROM jobs WHERE state = 'running'"),
        2000
    );
    assert_eq!(
        env.count("SELECT COUNT(*) FROM attempts WHERE attempt = 1"),
        2000
    );
}

#[test]
fn claims_follow_priority_then_age_and_skip_the_future() {
    let env = Env::new("");
    let store = SqliteStore::open(&env.path("jobd.db"), 2).unwrap();
    let job = |url: &str, priority, run_at| NewJob {
        url: url.into(),
        priority,
        run_at,
        max_attempts: None,
    };
    let later = Some(jobd::job::now_ms() + 3_600_000);
    store
        .add(&[
            job("a", 0, None),
            job("b", 5, None),
            job("c", 0, None),
            job("d", 9, later),
        ])
        .unwrap();
    let order: Vec<i64> = (0..3)
        .map(|_| store.claim("w", 1, ClaimOptions::lease(60_000)).unwrap()[0].job_id)
        .collect();
    assert_eq!(order, [2, 1, 3]);
    assert!(
        store
            .claim("w", 1, ClaimOptions::lease(60_000))
            .unwrap()
            .is_empty(),
        "a job due in an hour was claimed"
    );
}

#[test]
fn three_daemons_on_one_file_fetch_every_url_once() {
    // A little latency per request, so that all three daemons are up before the work is done.
    let server = TestServer::start().with_wan(std::time::Duration::from_millis(5), None);
    let env = Env::new("");
    let mut urls = Vec::new();
    for i in 0..300 {
        let path = format!("/{i}.png");
        server.route(&path, Reply::image(images::png(8, 8, i), "image/png"));
        urls.push(server.url(&path));
    }
    env.add(&urls);
    let daemons: Vec<_> = (0..3)
        .map(|_| {
            env.jobd(&["--drain"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for daemon in daemons {
        let out = finish(daemon);
        assert!(out.status.success(), "{}", show(&out));
    }
    assert_eq!(
        env.count("SELECT COUNT(*) FROM jobs WHERE state = 'done'"),
        300
    );
    assert_eq!(env.count("SELECT COUNT(*) FROM attempts"), 300);
    for i in 0..300 {
        assert_eq!(
            server.hits(&format!("/{i}.png")),
            1,
            "/{i}.png fetched more than once"
        );
    }
    // All three daemons did some of the work (they share the file, not a lock on it).
    assert!(
        env.count("SELECT COUNT(DISTINCT substr(worker, 1, instr(worker, '/'))) FROM attempts")
            >= 2
    );
}
