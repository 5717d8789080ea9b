//! The store contract: every operation of [`Queue`] and [`Admin`], run the same way against both
//! backends (an SQLite file, and a fresh database on a throwaway PostgreSQL server), with
//! assertions read back through plain SQL that both accept. A behaviour that differs between the
//! backends fails here, whichever of them is wrong.

use std::collections::HashSet;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use jobd::job::{Applied, Claimed, Outcome, RawUrl, Report, State, Stored, now_ms};
use jobd::store::{self, ClaimOptions, Database, ListFilter, NewJob, Store};
use jobd::validate::Level;
use jobd_testkit::postgres;

use crate::support::wait_until;

/// Plain SQL on the test's database, beside the store: what a person at the shell would run.
trait Sql {
    fn exec(&mut self, sql: &str);
    fn count(&mut self, sql: &str) -> i64;
}

impl Sql for rusqlite::Connection {
    fn exec(&mut self, sql: &str) {
        self.execute_batch(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    fn count(&mut self, sql: &str) -> i64 {
        self.query_row(sql, [], |r| r.get(0))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}

impl Sql for ::postgres::Client {
    fn exec(&mut self, sql: &str) {
        self.batch_execute(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    fn count(&mut self, sql: &str) -> i64 {
        let row = self
            .query_one(sql, &[])
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        row.try_get::<_, i64>(0)
            .or_else(|_| row.try_get::<_, i32>(0).map(i64::from))
            .or_else(|_| row.try_get::<_, bool>(0).map(i64::from))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}

struct Fixture {
    store: Arc<dyn Store>,
    /// For a second handle on the same queue: another daemon.
    database: Database,
    sql: std::sync::Mutex<Box<dyn Sql + Send>>,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn sqlite() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let database = Database::Sqlite(dir.path().join("jobd.db"));
        let store = store::open_for_jobctl(&database).unwrap();
        let conn = rusqlite::Connection::open(dir.path().join("jobd.db")).unwrap();
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .unwrap();
        Fixture {
            store,
            database,
            sql: std::sync::Mutex::new(Box::new(conn)),
            _dir: dir,
        }
    }

    fn postgres() -> Fixture {
        let url = postgres::server().fresh_database();
        let database = Database::Postgres(url.clone());
        let store = store::open_for_jobctl(&database).unwrap();
        let client = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
        Fixture {
            store,
            database,
            sql: std::sync::Mutex::new(Box::new(client)),
            _dir: tempfile::tempdir().unwrap(),
        }
    }

    fn exec(&self, sql: &str) {
        self.sql.lock().unwrap().exec(sql);
    }

    fn count(&self, sql: &str) -> i64 {
        self.sql.lock().unwrap().count(sql)
    }

    fn add(&self, urls: &[&str]) -> Vec<i64> {
        let jobs: Vec<NewJob> = urls.iter().map(|u| NewJob::new(*u)).collect();
        self.store.add(&jobs).unwrap()
    }

    fn state(&self, id: i64) -> &'static str {
        self.store
            .show(id)
            .unwrap()
            .expect("the job exists")
            .0
            .state
            .name()
    }

    fn claim(&self, n: usize) -> Vec<Claimed> {
        self.store
            .claim("test/w0", n, ClaimOptions::lease(60_000))
            .unwrap()
    }
}

/// A run_at the daemon chose, as stored. PostgreSQL keeps it as the same delay from now by its
/// own clock, so it may differ by the milliseconds the statement took to arrive.
fn assert_near(stored: i64, chosen: i64) {
    assert!(
        (stored - chosen).abs() < 1_000,
        "run_at {stored}, chosen {chosen}"
    );
}

fn stored(name: &str) -> Stored {
    let sha256 = format!("{name:0>64}");
    Stored {
        mime: "image/png",
        blob_path: format!("{}/{}/{sha256}.png", &sha256[..2], &sha256[2..4]),
        sha256,
        bytes: 68,
        width: 2,
        height: 3,
        validation: Level::Structure,
        validation_note: Some("no memory-safe AVIF decoder".into()),
    }
}

fn done(name: &str) -> Report {
    Report {
        http_status: Some(200),
        declared_mime: Some("image/png".into()),
        bytes: Some(68),
        ttfb_ms: Some(5),
        download_ms: Some(7),
        ..Report::new(Outcome::Done(stored(name)))
    }
}

fn failed(error: &str) -> Report {
    Report {
        http_status: Some(404),
        ..Report::new(Outcome::Failed {
            error: error.into(),
        })
    }
}

/// Each name becomes a test on SQLite and a test on PostgreSQL.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $( #[test] fn $name() { super::$name(&super::Fixture::sqlite()) } )*
        }
        mod on_postgres {
            $( #[test] fn $name() { super::$name(&super::Fixture::postgres()) } )*
        }
    };
}

contract!(
    a_row_inserted_by_hand_is_runnable,
    racing_claimers_take_each_job_once,
    claims_follow_priority_then_age_and_skip_the_future,
    outcomes_are_recorded_on_job_and_attempt,
    a_reaped_claim_records_nothing,
    reaping_fails_jobs_whose_attempts_are_spent,
    release_refunds_and_postpone_forgets_the_attempt,
    leases_are_extended_and_seen_live,
    pause_stops_claims_and_cancel_follows_running_jobs,
    retry_requeues_what_failed,
    prune_deletes_old_finished_jobs_with_their_attempts,
    import_adds_in_order_and_skips_what_exists,
    list_show_and_stats_report_the_same_figures,
    the_watch_sees_new_rows_and_due_times,
    the_next_due_time_is_the_earliest_over_all_priorities,
    extreme_run_at_values_typed_by_hand_break_nothing,
    ids_are_never_reused_after_a_prune,
    the_dashboards_reads_and_the_heartbeats_agree,
    the_overviews_figures_stay_exact_through_every_change,
);

/// The shared politeness of issue 14: the host column, claims that pass over blocked hosts, the
/// watch, the `hosts` table.
mod hosts;

fn a_row_inserted_by_hand_is_runnable(f: &Fixture) {
    f.exec("INSERT INTO jobs (url) VALUES ('http://127.0.0.1/by-hand.png')");
    f.exec("INSERT INTO jobs (url) VALUES (NULL)");
    let claimed = f.claim(10);
    assert_eq!(claimed.len(), 2, "both rows are due at once");
    assert_eq!(
        claimed[0].url,
        RawUrl::Text("http://127.0.0.1/by-hand.png".into())
    );
    assert_eq!(claimed[1].url, RawUrl::NotText("NULL"));
    assert_eq!((claimed[0].attempt, claimed[0].attempts), (1, 1));
    assert_eq!(claimed[0].max_attempts, None);
    assert_eq!(
        f.count("SELECT COUNT(*) FROM jobs WHERE state = 'running' AND priority = 0"),
        2
    );
    // created_at and run_at default to now, in milliseconds.
    let now = now_ms();
    let created = f.count("SELECT MIN(created_at) FROM jobs");
    assert!(
        (now - created).abs() < 60_000,
        "created_at {created}, now {now}"
    );
}

fn racing_claimers_take_each_job_once(f: &Fixture) {
    let urls: Vec<String> = (0..600).map(|i| format!("http://127.0.0.1/{i}")).collect();
    let jobs: Vec<NewJob> = urls
        .iter()
        .enumerate()
        .map(|(i, u)| NewJob {
            priority: (i % 5) as i64,
            ..NewJob::new(u.as_str())
        })
        .collect();
    f.store.add(&jobs).unwrap();
    let threads: Vec<_> = (0..6)
        .map(|t| {
            let store = f.store.clone();
            thread::spawn(move || {
                let mut mine = Vec::new();
                loop {
                    let claimed = store
                        .claim(&format!("t{t}"), 1 + t % 4, ClaimOptions::lease(60_000))
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
    assert_eq!(seen.len(), 600);
    assert_eq!(
        f.count("SELECT COUNT(*) FROM attempts WHERE attempt = 1 AND outcome = 'running'"),
        600
    );
}

fn claims_follow_priority_then_age_and_skip_the_future(f: &Fixture) {
    let now = now_ms();
    let job = |url: &str, priority, run_at| NewJob {
        priority,
        run_at: Some(run_at),
        ..NewJob::new(url)
    };
    let ids = f
        .store
        .add(&[
            job("http://127.0.0.1/old-low", 0, now - 2_000),
            job("http://127.0.0.1/high", 5, now - 1_000),
            job("http://127.0.0.1/older-low", 0, now - 3_000),
            job("http://127.0.0.1/later", 9, now + 3_600_000),
        ])
        .unwrap();
    let claimed: Vec<i64> = f.claim(10).iter().map(|c| c.job_id).collect();
    assert_eq!(claimed, vec![ids[1], ids[2], ids[0]]);
    assert_eq!(f.state(ids[3]), "queued");
}

fn outcomes_are_recorded_on_job_and_attempt(f: &Fixture) {
    let ids = f.add(&[
        "http://127.0.0.1/done",
        "http://127.0.0.1/retry",
        "http://127.0.0.1/failed",
        "http://127.0.0.1/postponed",
    ]);
    let claimed = f.claim(4);
    let later = now_ms() + 3_600_000;
    let reports = [
        done("a"),
        Report::new(Outcome::Retry {
            run_at: later,
            error: "HTTP 503".into(),
        }),
        failed("HTTP 404: not found"),
        Report::new(Outcome::Postponed {
            run_at: later,
            error: "disk full".into(),
        }),
    ];
    let items: Vec<_> = claimed.iter().zip(&reports).collect();
    assert_eq!(f.store.record(&items).unwrap(), vec![Applied::Yes; 4]);
    let states: Vec<&str> = ids.iter().map(|&id| f.state(id)).collect();
    assert_eq!(states, ["done", "queued", "failed", "queued"]);
    let (job, attempts) = f.store.show(ids[0]).unwrap().unwrap();
    let blob = stored("a");
    assert_eq!(
        (
            job.sha256.as_deref(),
            job.blob_path.as_deref(),
            job.mime.as_deref(),
            job.width,
            job.height,
            job.bytes,
            job.http_status,
            job.worker.as_deref(),
            job.validation.as_deref(),
            job.validation_note.as_deref(),
        ),
        (
            Some(blob.sha256.as_str()),
            Some(blob.blob_path.as_str()),
            Some("image/png"),
            Some(2),
            Some(3),
            Some(68),
            Some(200),
            None,
            Some("structure"),
            Some("no memory-safe AVIF decoder"),
        )
    );
    assert_eq!(attempts.len(), 1);
    assert_eq!(
        (
            attempts[0].outcome.as_str(),
            attempts[0].ttfb_ms,
            attempts[0].download_ms
        ),
        ("done", Some(5), Some(7))
    );
    assert!(attempts[0].total_ms.is_some_and(|t| t >= 0));
    // The retry counts its attempt; the postponed job gets its attempt back.
    let retried = f.store.show(ids[1]).unwrap().unwrap().0;
    assert_eq!(
        (retried.attempts, retried.error.as_deref()),
        (1, Some("HTTP 503"))
    );
    assert_near(retried.run_at, later);
    let postponed = f.store.show(ids[3]).unwrap().unwrap().0;
    assert_eq!(postponed.attempts, 0);
    assert_near(postponed.run_at, later);
    assert_eq!(
        f.store.show(ids[2]).unwrap().unwrap().0.error.as_deref(),
        Some("HTTP 404: not found")
    );
    assert_eq!(
        f.count("SELECT COUNT(*) FROM attempts WHERE outcome IN ('done', 'retry', 'failed', 'postponed')"),
        4
    );
    // A second record of the same attempts finds its claims gone.
    assert_eq!(f.store.record(&items).unwrap(), vec![Applied::ClaimLost; 4]);
}

fn a_reaped_claim_records_nothing(f: &Fixture) {
    let ids = f.add(&["http://127.0.0.1/slow"]);
    // A lease that has already run out: its daemon is as good as dead.
    let claimed = f
        .store
        .claim("dead/w0", 1, ClaimOptions::lease(-1_000))
        .unwrap();
    assert_eq!(f.store.reap_expired(3).unwrap(), 1);
    assert_eq!(f.state(ids[0]), "queued");
    assert_eq!(
        f.store
            .record(&[(&claimed[0], &done("late"))])
            .map(|applied| applied[0])
            .unwrap(),
        Applied::ClaimLost
    );
    let (job, attempts) = f.store.show(ids[0]).unwrap().unwrap();
    assert_eq!((job.state.name(), job.sha256), ("queued", None));
    assert_eq!(attempts[0].outcome, "lease_expired");
    // The next claim is attempt 2, and counts both.
    let again = f.claim(1);
    assert_eq!((again[0].attempt, again[0].attempts), (2, 2));
    assert_eq!(f.store.reap_expired(3).unwrap(), 0, "a live lease stays");
}

fn reaping_fails_jobs_whose_attempts_are_spent(f: &Fixture) {
    let ids = f
        .store
        .add(&[NewJob {
            max_attempts: Some(1),
            ..NewJob::new("http://127.0.0.1/poison")
        }])
        .unwrap();
    f.store
        .claim("dead/w0", 1, ClaimOptions::lease(-1_000))
        .unwrap();
    assert_eq!(f.store.reap_expired(5).unwrap(), 1);
    let job = f.store.show(ids[0]).unwrap().unwrap().0;
    assert_eq!(job.state.name(), "failed");
    assert!(job.error.unwrap().contains("lease ran out"));
}

fn release_refunds_and_postpone_forgets_the_attempt(f: &Fixture) {
    let ids = f.add(&["http://127.0.0.1/a", "http://127.0.0.1/b"]);
    let claimed = f.claim(2);
    assert_eq!(
        f.store
            .record(&[(
                &claimed[0],
                &Report::new(Outcome::Interrupted {
                    why: "shutting down".into()
                })
            )])
            .map(|applied| applied[0])
            .unwrap(),
        Applied::Yes
    );
    let later = now_ms() + 60_000;
    assert_eq!(
        f.store
            .record(&[(
                &claimed[1],
                &Report::new(Outcome::Untried { run_at: later })
            )])
            .map(|applied| applied[0])
            .unwrap(),
        Applied::Yes
    );
    let (released, attempts) = f.store.show(ids[0]).unwrap().unwrap();
    assert_eq!((released.state.name(), released.attempts), ("queued", 0));
    assert_eq!(
        (attempts[0].outcome.as_str(), attempts[0].error.as_deref()),
        ("interrupted", Some("shutting down"))
    );
    let (postponed, attempts) = f.store.show(ids[1]).unwrap().unwrap();
    assert_eq!((postponed.state.name(), postponed.attempts), ("queued", 0));
    assert_near(postponed.run_at, later);
    assert!(attempts.is_empty());
    assert_eq!(
        f.store
            .record(&[(
                &claimed[0],
                &Report::new(Outcome::Interrupted {
                    why: "again".into()
                })
            )])
            .map(|applied| applied[0])
            .unwrap(),
        Applied::ClaimLost
    );
}

fn leases_are_extended_and_seen_live(f: &Fixture) {
    f.add(&["http://127.0.0.1/a", "http://127.0.0.1/b"]);
    let claimed = f.store.claim("w", 2, ClaimOptions::lease(-1_000)).unwrap();
    let tokens: Vec<i64> = claimed.iter().map(|c| c.attempt_id).collect();
    assert_eq!(f.store.still_live(&tokens).unwrap(), 0);
    assert!(f.store.live_attempts().unwrap().is_empty());
    f.store.extend_leases(&tokens[..1], 60_000).unwrap();
    assert_eq!(f.store.still_live(&tokens).unwrap(), 1);
    assert_eq!(f.store.live_attempts().unwrap(), tokens[..1]);
    assert_eq!(f.store.reap_expired(3).unwrap(), 1, "only the other one");
}

fn pause_stops_claims_and_cancel_follows_running_jobs(f: &Fixture) {
    let ids = f.add(&[
        "http://127.0.0.1/queued",
        "http://127.0.0.1/running",
        "http://127.0.0.1/later",
    ]);
    let running = f
        .store
        .claim("w", 1, ClaimOptions::lease(60_000))
        .unwrap()
        .into_iter()
        .next()
        .unwrap();
    assert_eq!(running.job_id, ids[0]);
    f.store.set_paused(true).unwrap();
    assert!(f.store.counts().unwrap().1);
    assert!(f.claim(5).is_empty(), "a paused queue hands out nothing");
    assert!(f.store.counts().unwrap().1);
    f.store.set_paused(false).unwrap();
    assert!(!f.store.counts().unwrap().1);
    let second = f.claim(1).into_iter().next().unwrap();
    let before = f.store.cancel(&[ids[0], ids[2], 999_999]).unwrap();
    assert_eq!(
        before,
        vec![
            (ids[0], Some(State::Running)),
            (ids[2], Some(State::Queued)),
            (999_999, None)
        ]
    );
    assert_eq!(f.state(ids[2]), "cancelled");
    let cancelled = f.store.show(ids[0]).unwrap().unwrap().0;
    assert!(cancelled.cancel_requested);
    assert_eq!(
        cancelled.state.name(),
        "running",
        "it ends when its attempt ends"
    );
    // A transient failure would queue it again: the cancel request ends it instead.
    let retry = Report::new(Outcome::Retry {
        run_at: now_ms(),
        error: "HTTP 503".into(),
    });
    f.store
        .record(&[(&running, &retry)])
        .map(|applied| applied[0])
        .unwrap();
    assert_eq!(f.state(ids[0]), "cancelled");
    // Releasing a job whose cancel was requested cancels it too.
    f.store.cancel(&[second.job_id]).unwrap();
    f.store
        .record(&[(
            &second,
            &Report::new(Outcome::Interrupted {
                why: "shutting down".into(),
            }),
        )])
        .map(|applied| applied[0])
        .unwrap();
    assert_eq!(f.state(second.job_id), "cancelled");
}

fn retry_requeues_what_failed(f: &Fixture) {
    let ids = f.add(&[
        "http://127.0.0.1/404",
        "http://127.0.0.1/tls",
        "http://127.0.0.1/fine",
    ]);
    let claimed = f.claim(3);
    let reports = [
        failed("HTTP 404: Not Found"),
        failed("TLS handshake failed"),
        done("b"),
    ];
    let items: Vec<_> = claimed.iter().zip(&reports).collect();
    f.store.record(&items).unwrap();
    assert_eq!(f.store.retry_failed(Some("http 404")).unwrap(), 1);
    assert_eq!(f.state(ids[0]), "queued");
    assert_eq!(f.state(ids[1]), "failed");
    let before = f.store.retry(&[ids[1], ids[2]], false).unwrap();
    assert_eq!(
        before,
        vec![(ids[1], Some(State::Failed)), (ids[2], Some(State::Done))]
    );
    assert_eq!(f.state(ids[1]), "queued");
    assert_eq!(f.state(ids[2]), "done", "done jobs need --force");
    f.store.retry(&[ids[2]], true).unwrap();
    let job = f.store.show(ids[2]).unwrap().unwrap().0;
    assert_eq!(
        (job.state.name(), job.attempts, job.error),
        ("queued", 0, None)
    );
    assert_eq!(f.store.retry_failed(None).unwrap(), 0);
}

fn prune_deletes_old_finished_jobs_with_their_attempts(f: &Fixture) {
    let ids = f.add(&[
        "http://127.0.0.1/old-done",
        "http://127.0.0.1/old-failed",
        "http://127.0.0.1/new-done",
        "http://127.0.0.1/queued",
    ]);
    let claimed = f.claim(3);
    let reports = [done("c"), failed("HTTP 410"), done("d")];
    let items: Vec<_> = claimed.iter().zip(&reports).collect();
    f.store.record(&items).unwrap();
    let old = now_ms() - 10 * 86_400_000;
    f.exec(&format!(
        "UPDATE jobs SET finished_at = {old} WHERE id IN ({}, {})",
        ids[0], ids[1]
    ));
    let cutoff = now_ms() - 86_400_000;
    let mut blobs = Vec::new();
    f.store
        .blobs_of_finished(cutoff, &[State::Done, State::Failed], &mut |p| {
            blobs.push(p.to_string())
        })
        .unwrap();
    assert_eq!(blobs, vec![stored("c").blob_path]);
    assert!(f.store.blob_referenced(&stored("c").sha256).unwrap());
    assert_eq!(f.store.prune(cutoff, &[State::Failed], 1).unwrap(), 1);
    assert_eq!(
        f.store
            .prune(cutoff, &[State::Done, State::Failed], 1)
            .unwrap(),
        1
    );
    assert!(f.store.show(ids[0]).unwrap().is_none());
    assert!(f.store.show(ids[1]).unwrap().is_none());
    assert!(!f.store.blob_referenced(&stored("c").sha256).unwrap());
    assert!(f.store.blob_referenced(&stored("d").sha256).unwrap());
    assert_eq!(
        f.count(&format!(
            "SELECT COUNT(*) FROM attempts WHERE job_id IN ({}, {})",
            ids[0], ids[1]
        )),
        0
    );
    assert_eq!(f.count("SELECT COUNT(*) FROM jobs"), 2);
}

fn import_adds_in_order_and_skips_what_exists(f: &Fixture) {
    let url = |i: usize| format!("http://127.0.0.1/import/{i}?q=a\tb\\c");
    let mut batches = (0..7).map(|b| {
        (b * 300..(b + 1) * 300)
            .map(|i| NewJob {
                priority: (i % 3) as i64,
                max_attempts: (i % 2 == 0).then_some(4),
                ..NewJob::new(url(i))
            })
            .collect::<Vec<_>>()
    });
    let mut progress = Vec::new();
    let imported = f
        .store
        .import(&mut batches, false, &mut |n| progress.push(n))
        .unwrap();
    assert_eq!(imported, (2_100, 0));
    assert_eq!(progress.last(), Some(&2_100));
    let first = f.store.list(&ListFilter {
        limit: 1,
        ..ListFilter::default()
    });
    let newest = &first.unwrap()[0];
    assert_eq!(newest.url, url(2_099), "tabs and backslashes survive");
    assert_eq!((newest.priority, newest.max_attempts), (2, None));
    assert_eq!(
        f.count("SELECT COUNT(*) FROM jobs WHERE max_attempts = 4"),
        1_050
    );
    // Ids follow the input order.
    assert_eq!(
        f.count(&format!(
            "SELECT COUNT(*) FROM jobs a JOIN jobs b ON b.id = a.id + 1 WHERE a.url = '{}' AND b.url = '{}'",
            url(10),
            url(11)
        )),
        1
    );
    // Fail one, then import again with an overlap: existing URLs are skipped, but not failed ones.
    let claimed = f.claim(1);
    assert_eq!(claimed[0].url, RawUrl::Text(url(2)), "priority 2, first in");
    f.store
        .record(&[(&claimed[0], &failed("HTTP 404"))])
        .map(|applied| applied[0])
        .unwrap();
    let mut again = std::iter::once(
        (0..100)
            .chain(2_100..2_200)
            .map(|i| NewJob::new(url(i)))
            .collect::<Vec<_>>(),
    );
    let (added, skipped) = f.store.import(&mut again, true, &mut |_| {}).unwrap();
    assert_eq!((added, skipped), (101, 99));
    assert_eq!(f.count("SELECT COUNT(*) FROM jobs"), 2_201);
}

fn list_show_and_stats_report_the_same_figures(f: &Fixture) {
    let ids = f.add(&[
        "http://127.0.0.1/a.png",
        "http://img.example.org/b.png",
        "http://cdn.img.example.org/c.png",
        "http://127.0.0.1/d.png",
    ]);
    let claimed = f.claim(3);
    let reports = [done("e"), failed("HTTP 404: Not Found"), done("e")];
    let items: Vec<_> = claimed.iter().zip(&reports).collect();
    f.store.record(&items).unwrap();
    let list = |filter: ListFilter| -> Vec<i64> {
        f.store
            .list(&ListFilter {
                limit: 100,
                ..filter
            })
            .unwrap()
            .iter()
            .map(|j| j.id)
            .collect()
    };
    assert_eq!(
        list(ListFilter::default()),
        vec![ids[3], ids[2], ids[1], ids[0]]
    );
    assert_eq!(
        list(ListFilter {
            state: Some(State::Done),
            ..ListFilter::default()
        }),
        vec![ids[2], ids[0]]
    );
    assert_eq!(
        list(ListFilter {
            error: Some("not FOUND".into()),
            ..ListFilter::default()
        }),
        vec![ids[1]]
    );
    assert_eq!(
        list(ListFilter {
            host: Some(".img.example.org".into()),
            ..ListFilter::default()
        }),
        vec![ids[2], ids[1]]
    );
    assert_eq!(
        list(ListFilter {
            host: Some("img.example.org".into()),
            ..ListFilter::default()
        }),
        vec![ids[1]]
    );
    assert_eq!(
        list(ListFilter {
            since: Some(now_ms() + 60_000),
            ..ListFilter::default()
        }),
        Vec::<i64>::new()
    );
    assert!(f.store.show(999_999).unwrap().is_none());
    let stats = f.store.stats().unwrap();
    let by_state: Vec<(&str, i64)> = stats.by_state.iter().map(|(s, n)| (s.name(), *n)).collect();
    assert_eq!(
        by_state,
        [
            ("queued", 1),
            ("running", 0),
            ("done", 2),
            ("failed", 1),
            ("cancelled", 0)
        ]
    );
    assert_eq!(
        (
            stats.bytes_done,
            stats.blobs,
            stats.blob_bytes,
            stats.paused
        ),
        (136, 1, 68, false)
    );
    assert_eq!(stats.top_errors, vec![("HTTP 404: Not Found".into(), 1)]);
    assert_eq!(stats.done_within[0], (1, 2));
    assert_eq!(
        (stats.timing_samples, stats.timings_all_time, stats.ttfb_ms),
        (2, false, Some((5, 5)))
    );
    let (counts, paused) = f.store.counts().unwrap();
    assert_eq!(counts, stats.by_state);
    assert!(!paused);
}

fn the_watch_sees_new_rows_and_due_times(f: &Fixture) {
    let mut watch = f.store.watch().unwrap();
    watch.changed(Duration::ZERO).unwrap();
    assert_eq!(watch.next_due().unwrap(), None);
    assert!(!watch.pending().unwrap());
    f.exec("INSERT INTO jobs (url) VALUES ('http://127.0.0.1/by-hand.png')");
    wait_until("the watch to see the new row", || {
        watch.changed(Duration::from_millis(5)).unwrap()
    });
    let due = watch.next_due().unwrap().expect("a queued job");
    assert!(due <= now_ms() + 1_000, "due {due} is now");
    assert!(watch.pending().unwrap());
    let counts = watch.counts().unwrap();
    assert_eq!(counts, vec![(State::Queued, 1)]);
    // A job scheduled for later is not due yet, by either clock.
    f.claim(1);
    let later = now_ms() + 3_600_000;
    f.exec(&format!(
        "INSERT INTO jobs (url, run_at) VALUES ('http://127.0.0.1/later.png', {later})"
    ));
    wait_until("the watch to see the scheduled row", || {
        watch.changed(Duration::from_millis(5)).unwrap()
    });
    let due = watch.next_due().unwrap().expect("a queued job");
    assert!((due - later).abs() < 5_000, "due {due}, scheduled {later}");
    assert_eq!(watch.queued_and_running().unwrap(), (1, 1));
}

fn the_next_due_time_is_the_earliest_over_all_priorities(f: &Fixture) {
    let mut watch = f.store.watch().unwrap();
    let now = now_ms();
    let job = |priority: i64, run_at: i64| NewJob {
        priority,
        run_at: Some(run_at),
        ..NewJob::new(format!("http://127.0.0.1/{priority}"))
    };
    let hour = 3_600_000;
    f.store
        .add(&[
            job(5, now + 2 * hour),
            job(1, now + hour),
            job(0, now + 3 * hour),
        ])
        .unwrap();
    let due = watch.next_due().unwrap().unwrap();
    assert!((due - (now + hour)).abs() < 5_000, "due {due}");
    // Many distinct priorities, the earliest at the lowest.
    let many: Vec<NewJob> = (10..200).map(|p| job(p, now + 4 * hour - p)).collect();
    f.store.add(&many).unwrap();
    f.store.add(&[job(-7, now + hour / 2)]).unwrap();
    let due = watch.next_due().unwrap().unwrap();
    assert!((due - (now + hour / 2)).abs() < 5_000, "due {due}");
    // A job due now, at the lowest priority of all.
    f.store.add(&[job(-100, now - 1_000)]).unwrap();
    assert!(watch.next_due().unwrap().unwrap() <= now_ms());
}

fn extreme_run_at_values_typed_by_hand_break_nothing(f: &Fixture) {
    let mut watch = f.store.watch().unwrap();
    f.exec(&format!(
        "INSERT INTO jobs (url, run_at) VALUES ('http://127.0.0.1/late', {})",
        i64::MAX
    ));
    assert!(watch.next_due().unwrap().unwrap() > now_ms() + 86_400_000);
    assert!(f.claim(1).is_empty(), "due at the end of time");
    f.exec(&format!(
        "INSERT INTO jobs (url, run_at) VALUES ('http://127.0.0.1/early', {})",
        i64::MIN
    ));
    assert!(watch.next_due().unwrap().unwrap() <= now_ms());
    assert_eq!(f.claim(5).len(), 1);
    // Counts and priorities out of any sensible range claim like any job.
    f.exec(&format!(
        "INSERT INTO jobs (url, priority, attempts, max_attempts)
         VALUES ('http://127.0.0.1/odd', {}, -3, -5)",
        i64::MIN
    ));
    f.exec("INSERT INTO jobs (url, priority) VALUES ('http://127.0.0.1/plain', 0)");
    let claimed = f.claim(5);
    let urls: Vec<&RawUrl> = claimed.iter().map(|c| &c.url).collect();
    assert_eq!(
        urls,
        [
            &RawUrl::Text("http://127.0.0.1/plain".into()),
            &RawUrl::Text("http://127.0.0.1/odd".into())
        ]
    );
    assert_eq!((claimed[1].attempts, claimed[1].max_attempts), (0, Some(0)));
}

/// Regression (issue 12): after a prune of every finished job, SQLite gave the next job the id
/// of a pruned one, so whatever outside the database kept that id named another image.
fn ids_are_never_reused_after_a_prune(f: &Fixture) {
    let first = f.add(&["http://127.0.0.1/a", "http://127.0.0.1/b"]);
    let claimed = f.claim(2);
    let reports = [done("a"), failed("HTTP 404")];
    let items: Vec<_> = claimed.iter().zip(&reports).collect();
    f.store.record(&items).unwrap();
    let everything = now_ms() + 86_400_000;
    assert_eq!(
        f.store
            .prune(
                everything,
                &[State::Done, State::Failed, State::Cancelled],
                10
            )
            .unwrap(),
        2
    );
    assert_eq!(f.count("SELECT COUNT(*) FROM jobs"), 0);
    let highest = first[1];
    // Every way in: jobctl add, an import, and a row typed by hand.
    let added = f.add(&["http://127.0.0.1/c"]);
    assert!(added[0] > highest, "id {} reused", added[0]);
    let mut batch = std::iter::once(vec![NewJob::new("http://127.0.0.1/d")]);
    f.store.import(&mut batch, false, &mut |_| {}).unwrap();
    f.exec("INSERT INTO jobs (url) VALUES ('http://127.0.0.1/e')");
    assert_eq!(
        f.count(&format!("SELECT COUNT(*) FROM jobs WHERE id <= {highest}")),
        0
    );
    // The newest pruned again, and still no going back.
    let newest = f.count("SELECT MAX(id) FROM jobs");
    f.exec(&format!("DELETE FROM jobs WHERE id = {newest}"));
    let again = f.add(&["http://127.0.0.1/f"]);
    assert!(again[0] > newest, "id {} reused", again[0]);
}

/// The dashboard's reads (issue 15): throughput buckets, failure groups, the gallery, a blob by
/// its sha256, the jobs list's URL search and pages; and the daemons' heartbeats.
fn the_dashboards_reads_and_the_heartbeats_agree(f: &Fixture) {
    use jobd::store::{GalleryFilter, Heartbeat};
    let ids = f.add(&[
        "http://a.example:8080/1.png",
        "http://a.example:8080/2.png",
        "http://b.example/3.png",
        "http://b.example/4.png",
        "http://a.example:8080/5.png",
    ]);
    let claimed = f.claim(5);
    let reports = [
        done("a"),
        failed("HTTP 404"),
        failed("HTTP 404"),
        failed("HTTP 404"),
        done("b"),
    ];
    let items: Vec<_> = claimed.iter().zip(&reports).collect();
    f.store.record(&items).unwrap();

    let now = now_ms();
    let buckets = f.store.throughput(now - 3_600_000, 60_000).unwrap();
    let (done_n, failed_n) = buckets
        .iter()
        .fold((0, 0), |(d, x), b| (d + b.done, x + b.failed));
    assert_eq!((done_n, failed_n), (2, 3));
    assert!(buckets.iter().all(|b| b.start % 60_000 == 0));
    assert!(
        f.store
            .throughput(now + 120_000, 60_000)
            .unwrap()
            .is_empty()
    );

    let groups: Vec<(String, Option<String>, i64)> = f
        .store
        .failure_groups(10)
        .unwrap()
        .into_iter()
        .map(|g| (g.error, g.host, g.count))
        .collect();
    assert_eq!(
        groups,
        [
            ("HTTP 404".into(), Some("b.example".into()), 2),
            ("HTTP 404".into(), Some("a.example:8080".into()), 1),
        ]
    );

    let gallery =
        |host: Option<&str>, mime: Option<&str>, before: Option<(i64, i64)>| -> Vec<i64> {
            f.store
                .gallery(&GalleryFilter {
                    host: host.map(String::from),
                    mime: mime.map(String::from),
                    before,
                    limit: 10,
                })
                .unwrap()
                .iter()
                .map(|j| j.id)
                .collect()
        };
    // The most recently finished first; in one group, ties go by id, newest first.
    assert_eq!(gallery(None, None, None), [ids[4], ids[0]]);
    assert_eq!(
        gallery(Some("a.example:8080"), Some("image/png"), None),
        [ids[4], ids[0]]
    );
    let finished = |id| f.store.show(id).unwrap().unwrap().0.finished_at.unwrap();
    assert_eq!(
        gallery(None, None, Some((finished(ids[4]), ids[4]))),
        [ids[0]]
    );
    assert_eq!(
        gallery(None, None, Some((finished(ids[4]) + 1, 0))),
        [ids[4], ids[0]]
    );
    assert!(gallery(None, None, Some((finished(ids[0]), ids[0]))).is_empty());
    assert!(gallery(Some("b.example"), None, None).is_empty());
    assert!(gallery(None, Some("image/gif"), None).is_empty());

    let sha = format!("{:0>64}", "a");
    let blob = f.store.blob(&sha).unwrap().expect("a done job's blob");
    assert_eq!((blob.mime.as_str(), blob.bytes), ("image/png", 68));
    assert_eq!(blob.blob_path, format!("00/00/{sha}.png"));
    assert!(f.store.blob(&format!("{:0>64}", "f")).unwrap().is_none());

    let listed = |filter: ListFilter| -> Vec<i64> {
        f.store
            .list(&ListFilter {
                limit: 10,
                ..filter
            })
            .unwrap()
            .iter()
            .map(|j| j.id)
            .collect()
    };
    let search = ListFilter {
        url: Some("a.example:8080/".into()),
        ..ListFilter::default()
    };
    assert_eq!(listed(search.clone()), [ids[4], ids[1], ids[0]]);
    assert_eq!(
        listed(ListFilter {
            before: Some(ids[4]),
            ..search
        }),
        [ids[1], ids[0]]
    );

    let beat = |name: &str, busy: u32| Heartbeat {
        name: name.into(),
        host: "h1".into(),
        pid: 42,
        version: "0.1.0".into(),
        workers: 8,
        busy,
        started_at: now - 5_000,
    };
    assert!(f.store.daemons().unwrap().is_empty());
    f.store.heartbeat(&beat("h1:42", 1)).unwrap();
    f.store.heartbeat(&beat("h2:7", 0)).unwrap();
    f.store.heartbeat(&beat("h1:42", 3)).unwrap();
    let live = f.store.daemons().unwrap();
    assert_eq!(live.len(), 2);
    assert_eq!(live[0].beat, beat("h1:42", 3));
    assert!(
        (live[0].seen_at - now_ms()).abs() < 5_000,
        "{}",
        live[0].seen_at
    );
    // A daemon silent for longer than the live window is left out.
    f.sql
        .lock()
        .unwrap()
        .exec("UPDATE daemons SET seen_at = seen_at - 60000 WHERE name = 'h2:7'");
    let names: Vec<String> = f
        .store
        .daemons()
        .unwrap()
        .into_iter()
        .map(|d| d.beat.name)
        .collect();
    assert_eq!(names, ["h1:42"]);
    f.store.daemon_stopped("h1:42").unwrap();
    assert!(f.store.daemons().unwrap().is_empty());
}

/// The overview's figures (issue 15) come from partial indexes and, on SQLite, count the queued
/// jobs as all jobs less the others: each must stay what plain SQL counts through claims,
/// records, a retry, and UPDATEs and DELETEs by hand, and agree with `jobctl stats`.
fn the_overviews_figures_stay_exact_through_every_change(f: &Fixture) {
    use jobd::store::Storage;
    let check = |when: &str| {
        let counts = f.store.queue_counts().unwrap();
        let want: Vec<(State, i64)> = State::ALL
            .iter()
            .map(|s| {
                let sql = format!("SELECT COUNT(*) FROM jobs WHERE state = '{}'", s.name());
                (*s, f.count(&sql))
            })
            .collect();
        assert_eq!(counts.by_state, want, "{when}: counts");
        let storage = f.store.storage().unwrap();
        let want = Storage {
            bytes_done: f.count("SELECT CAST(COALESCE(SUM(bytes), 0) AS BIGINT) FROM jobs WHERE state = 'done'"),
            blobs: f.count(
                "SELECT COUNT(DISTINCT sha256) FROM jobs WHERE state = 'done' AND sha256 IS NOT NULL",
            ),
            blob_bytes: f.count(
                "SELECT CAST(COALESCE(SUM(b), 0) AS BIGINT) FROM (SELECT MAX(bytes) AS b FROM jobs
                 WHERE state = 'done' AND sha256 IS NOT NULL GROUP BY sha256) AS blobs",
            ),
        };
        assert_eq!(storage, want, "{when}: storage");
        // The throughput: one bucket per minute with finished jobs, in order, adding up.
        let since = now_ms() - 3_600_000;
        let buckets = f.store.throughput(since, 60_000).unwrap();
        assert!(
            buckets.windows(2).all(|w| w[0].start < w[1].start),
            "{when}: {buckets:?}"
        );
        let finished = format!(
            "FROM jobs WHERE state IN ('done', 'failed', 'cancelled')
             AND finished_at >= {since} / 60000 * 60000"
        );
        assert_eq!(
            (
                buckets.len() as i64,
                buckets.iter().map(|b| b.done).sum::<i64>(),
                buckets.iter().map(|b| b.failed).sum::<i64>()
            ),
            (
                f.count(&format!(
                    "SELECT COUNT(DISTINCT finished_at / 60000) {finished}"
                )),
                f.count(&format!("SELECT COUNT(*) {finished} AND state = 'done'")),
                f.count(&format!("SELECT COUNT(*) {finished} AND state = 'failed'"))
            ),
            "{when}: throughput"
        );
        let stats = f.store.stats().unwrap();
        let timings = f.store.timing_figures().unwrap();
        assert_eq!(
            (counts.by_state, counts.scheduled, counts.paused),
            (stats.by_state, stats.scheduled, stats.paused),
            "{when}: counts as jobctl stats has them"
        );
        assert_eq!(
            (storage.bytes_done, storage.blobs, storage.blob_bytes),
            (stats.bytes_done, stats.blobs, stats.blob_bytes),
            "{when}: storage as jobctl stats has it"
        );
        assert_eq!(
            (
                timings.samples,
                timings.all_time,
                timings.ttfb_ms,
                timings.total_ms
            ),
            (
                stats.timing_samples,
                stats.timings_all_time,
                stats.ttfb_ms,
                stats.total_ms
            ),
            "{when}: timings as jobctl stats has them"
        );
        timings
    };
    let none = check("an empty queue");
    assert_eq!((none.samples, none.all_time, none.ttfb_ms), (0, true, None));

    let urls: Vec<String> = (0..26)
        .map(|i| format!("http://a.example/{i}.png"))
        .collect();
    let ids = f.add(&urls.iter().map(String::as_str).collect::<Vec<_>>());
    check("after an add");
    // 20 done with times to first byte of 1 to 20 ms (two share a blob), 2 failed, 2 running.
    let claimed = f.claim(24);
    let reports: Vec<Report> = (0..22)
        .map(|i| match i {
            0..20 => Report {
                ttfb_ms: Some(i + 1),
                ..done(&format!("{:x}", i.max(1)))
            },
            _ => failed("HTTP 404"),
        })
        .collect();
    let items: Vec<_> = claimed.iter().zip(&reports).collect();
    f.store.record(&items).unwrap();
    let timings = check("after records");
    // PostgreSQL counts queued jobs in an index once VACUUM has marked the table's pages
    // all-visible, and in one scan of the table before: both must count the same.
    f.exec("VACUUM");
    check("after records, vacuumed");
    // Nearest rank: the 10th and the 19th of 20.
    assert_eq!(
        (timings.samples, timings.all_time, timings.ttfb_ms),
        (20, false, Some((10, 19)))
    );
    assert_eq!(f.store.storage().unwrap().blobs, 19);

    // By hand: a done job queued again, one cancelled, one deleted; a queued job scheduled.
    f.exec(&format!(
        "UPDATE jobs SET state = 'queued', run_at = run_at + 3600000 WHERE id = {}",
        ids[0]
    ));
    f.exec(&format!(
        "UPDATE jobs SET state = 'cancelled' WHERE id = {}",
        ids[24]
    ));
    f.exec(&format!("DELETE FROM attempts WHERE job_id = {}", ids[5]));
    f.exec(&format!("DELETE FROM jobs WHERE id = {}", ids[5]));
    f.exec(&format!(
        "UPDATE jobs SET bytes = 1000 WHERE id = {}",
        ids[6]
    ));
    check("after changes by hand");
    f.exec("VACUUM");
    check("after changes by hand, vacuumed");
    assert_eq!(f.store.queue_counts().unwrap().scheduled, 1);
    // Failed jobs retried; running ones recorded done.
    assert_eq!(f.store.retry_failed(None).unwrap(), 2);
    let rest = &claimed[22..];
    let done_too: Vec<Report> = rest.iter().map(|_| done("ff")).collect();
    let items: Vec<_> = rest.iter().zip(&done_too).collect();
    f.store.record(&items).unwrap();
    check("after a retry and more records");
    f.exec("DELETE FROM attempts");
    f.exec("DELETE FROM jobs");
    check("after deleting everything");
}
