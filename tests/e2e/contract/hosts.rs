//! The contract of shared politeness (issue 14), on both backends: `jobs.host` as the database
//! computes it, claims that pass over paused hosts and hosts left to other daemons, the watch's
//! next due time past a pause, the `hosts` table written by two daemons and read back with the
//! live daemons, and `jobctl hosts`' figures.

use std::time::Duration;

use jobd::job::{Outcome, Report, now_ms};
use jobd::store::{self, ClaimOptions, HostChange, NewJob};

use super::{Fixture, done, failed};
use crate::support::wait_until;

/// A claim as a daemon that leaves the hosts `pass_over` to others makes it.
fn claim_hosts(f: &Fixture, n: usize, pass_over: &[&str]) -> Vec<String> {
    let pass_over: Vec<String> = pass_over.iter().map(|h| h.to_string()).collect();
    let options = ClaimOptions {
        lease_ms: 60_000,
        pass_over: &pass_over,
    };
    f.store
        .claim("test/w0", n, options)
        .unwrap()
        .into_iter()
        .map(|c| {
            let path = match &c.url {
                jobd::job::RawUrl::Text(url) => url.rsplit('/').next().unwrap().to_string(),
                jobd::job::RawUrl::NotText(what) => what.to_string(),
            };
            format!("{}/{path}", c.host.as_deref().unwrap_or("-"))
        })
        .collect()
}

/// Pauses `host` for an hour, as a daemon that met its 429 would.
fn pause_for_an_hour(f: &Fixture, host: &str) {
    f.store
        .record_host(
            host,
            HostChange::Paused {
                until: now_ms() + 3_600_000,
                strikes: 1,
                max_in_flight: None,
            },
        )
        .unwrap();
}

contract!(
    the_host_column_is_the_urls_authority_for_every_way_in,
    a_paused_hosts_jobs_wait_untouched_while_others_are_claimed,
    a_job_behind_a_paused_hosts_long_queue_is_claimed,
    jobs_behind_a_blocked_queue_come_in_claim_order,
    every_way_ahead_of_a_blocked_queue_is_seen,
    a_host_left_to_other_daemons_is_passed_over,
    the_next_due_time_waits_out_a_pause,
    host_state_from_two_daemons_combines,
    the_fleet_is_the_live_daemons_and_the_hosts_in_trouble,
    hosts_lists_each_hosts_figures,
);

fn the_host_column_is_the_urls_authority_for_every_way_in(f: &Fixture) {
    let cases: [(&str, Option<&str>); 13] = [
        (
            "https://User:pw@Img.Example.org:8443/a.png?x",
            Some("img.example.org:8443"),
        ),
        ("http://127.0.0.1:45000/x.png", Some("127.0.0.1:45000")),
        ("HTTP://IMG.EXAMPLE.ORG/A.PNG", Some("img.example.org")),
        ("https://example.org?q=1/2", Some("example.org")),
        ("https://example.org#frag/x", Some("example.org")),
        ("https://example.org", Some("example.org")),
        ("https://user@example.org/p@q/r", Some("example.org")),
        ("https://[::1]:8080/a.png", Some("[::1]:8080")),
        ("https://Bücher.example/a.png", Some("bücher.example")),
        ("not a url", None),
        ("file:///etc/passwd", None),
        ("", None),
        ("mailto:someone@example.org", None),
    ];
    let quoted = |url: &str| format!("'{}'", url.replace('\'', "''"));
    for (url, _) in &cases {
        f.exec(&format!("INSERT INTO jobs (url) VALUES ({})", quoted(url)));
    }
    f.exec("INSERT INTO jobs (url) VALUES (NULL)");
    let has = |url: Option<&str>, host: Option<&str>| -> bool {
        let url = url.map_or_else(|| "url IS NULL".into(), |u| format!("url = {}", quoted(u)));
        let host = host.map_or_else(|| "host IS NULL".into(), |h| format!("host = '{h}'"));
        f.count(&format!("SELECT COUNT(*) FROM jobs WHERE {url} AND {host}")) == 1
    };
    for (url, host) in &cases {
        assert!(has(Some(url), *host), "{url}: expected {host:?}");
    }
    assert!(has(None, None), "a NULL url");
    // jobctl add and an import get it too, and a claim hands it over.
    f.add(&["https://A.Example.org/added.png"]);
    let mut batch = std::iter::once(vec![NewJob::new("https://b.example.org:81/imported.png")]);
    f.store.import(&mut batch, false, &mut |_| {}).unwrap();
    let mut claimed: Vec<Option<String>> = f.claim(20).into_iter().map(|c| c.host).collect();
    claimed.sort();
    let mut expected: Vec<Option<String>> = cases
        .iter()
        .map(|(_, h)| h.map(str::to_string))
        .chain([None])
        .chain([
            Some("a.example.org".to_string()),
            Some("b.example.org:81".to_string()),
        ])
        .collect();
    expected.sort();
    assert_eq!(claimed, expected);
}

/// Regression: SQLite's claim looked at the first `4,096` due jobs only, so a job queued behind
/// more of a paused host's waited for the pause to end (the mixed benchmark stranded 15,000).
fn a_job_behind_a_paused_hosts_long_queue_is_claimed(f: &Fixture) {
    let many: Vec<NewJob> = (0..5_000)
        .map(|i| NewJob::new(format!("http://slow.test/{i}")))
        .collect();
    f.store.add(&many).unwrap();
    f.add(&["http://fast.test/behind"]);
    pause_for_an_hour(f, "slow.test");
    assert_eq!(claim_hosts(f, 4, &[]), ["fast.test/behind"]);
    assert!(claim_hosts(f, 4, &[]).is_empty());
}

/// Past more than a window of blocked jobs, the claim still takes the other hosts' jobs in claim
/// order (priority, then due time, then id), jobs without a host among them, and still passes
/// over a host left to other daemons and the paused host's own later jobs.
fn jobs_behind_a_blocked_queue_come_in_claim_order(f: &Fixture) {
    let job = |url: &str, priority: i64| NewJob {
        priority,
        ..NewJob::new(url)
    };
    f.store.add(&[job("http://busy.test/running", 0)]).unwrap();
    assert_eq!(claim_hosts(f, 1, &[]), ["busy.test/running"]);
    let mut jobs: Vec<NewJob> = (0..1_000)
        .map(|i| job(&format!("http://slow.test/{i}"), 0))
        .collect();
    jobs.extend([
        job("http://a.test/low", 0),
        job("http://busy.test/waits", 5),
        job("no host here", 0),
        job("http://b.test/high", 3),
        job("http://slow.test/high", 9),
        job("http://a.test/high", 3),
        job("http://c.test/low", 0),
    ]);
    f.store.add(&jobs).unwrap();
    pause_for_an_hour(f, "slow.test");
    assert_eq!(
        claim_hosts(f, 3, &["busy.test"]),
        ["b.test/high", "a.test/high", "a.test/low"]
    );
    assert_eq!(
        claim_hosts(f, 10, &["busy.test"]),
        ["-/no host here", "c.test/low"]
    );
    assert!(claim_hosts(f, 10, &["busy.test"]).is_empty());
    assert_eq!(
        f.count("SELECT COUNT(*) FROM jobs WHERE state = 'queued'"),
        1_002
    );
}

/// The claim remembers where a blocked host's jobs at the head of the queue end, and starts
/// there next time (SQLite: migration 0007; PostgreSQL: 0009). Every way a job can get in ahead of that point is seen: a
/// higher priority, a due time in the past, a job put back by hand, a plain INSERT after it,
/// and the blocked host's own jobs once its pause is lifted.
fn every_way_ahead_of_a_blocked_queue_is_seen(f: &Fixture) {
    // PostgreSQL's claims remember their point only while a watcher hears what is queued.
    let mut watch = f.store.watch().unwrap();
    let mut claim = |n| {
        while watch.changed(Duration::from_millis(100)).unwrap() {}
        claim_hosts(f, n, &[])
    };
    // Due a minute ago: old enough for SQLite's claim to move its point past them.
    let a_minute_ago = now_ms() - 60_000;
    let old = |url: String| NewJob {
        run_at: Some(a_minute_ago),
        ..NewJob::new(url)
    };
    let mut jobs: Vec<NewJob> = (0..300)
        .map(|i| old(format!("http://slow.test/{i}")))
        .collect();
    jobs.push(old("http://fast.test/1".into()));
    f.store.add(&jobs).unwrap();
    pause_for_an_hour(f, "slow.test");
    assert_eq!(claim(4), ["fast.test/1"]);
    f.exec("INSERT INTO jobs (url, run_at) VALUES ('http://fast.test/past', 0)");
    assert_eq!(claim(4), ["fast.test/past"]);
    f.exec("INSERT INTO jobs (url, priority) VALUES ('http://fast.test/urgent', 5)");
    assert_eq!(claim(4), ["fast.test/urgent"]);
    f.exec(
        "UPDATE jobs SET state = 'queued', run_at = 1, worker = NULL, lease_until = NULL
         WHERE url = 'http://fast.test/1'",
    );
    assert_eq!(claim(4), ["fast.test/1"]);
    f.exec("INSERT INTO jobs (url) VALUES ('http://fast.test/plain')");
    assert_eq!(claim(4), ["fast.test/plain"]);
    // A row whose INSERT took its clock a moment before the last claim, and whose commit made
    // it visible after: due a millisecond before the job that claim took.
    let before_plain = f.count("SELECT run_at FROM jobs WHERE url = 'http://fast.test/plain'") - 1;
    f.exec(&format!(
        "INSERT INTO jobs (url, run_at, created_at)
         VALUES ('http://fast.test/late', {before_plain}, {before_plain})"
    ));
    assert_eq!(claim(4), ["fast.test/late"]);
    assert!(claim(4).is_empty());
    // Put back for later, as a backoff does: claimed once it is due.
    f.exec(&format!(
        "UPDATE jobs SET state = 'queued', run_at = {}, worker = NULL, lease_until = NULL
         WHERE url = 'http://fast.test/plain'",
        now_ms() + 300
    ));
    assert!(claim(4).is_empty(), "not due yet");
    let mut later = Vec::new();
    wait_until("the job put back to be due", || {
        later = claim(4);
        !later.is_empty()
    });
    assert_eq!(later, ["fast.test/plain"]);
    f.exec("UPDATE hosts SET paused_until = 0");
    assert_eq!(claim(2), ["slow.test/0", "slow.test/1"], "the pause lifted");
}

fn a_paused_hosts_jobs_wait_untouched_while_others_are_claimed(f: &Fixture) {
    f.add(&[
        "http://slow.test/1",
        "http://slow.test/2",
        "http://slow.test/3",
        "http://fast.test/1",
        "not a url",
        "http://fast.test/2",
    ]);
    let pause_ends = now_ms() + 1_500;
    f.store
        .record_host(
            "slow.test",
            HostChange::Paused {
                until: pause_ends,
                strikes: 1,
                max_in_flight: None,
            },
        )
        .unwrap();
    let claimed = claim_hosts(f, 10, &[]);
    assert_eq!(claimed, ["fast.test/1", "-/not a url", "fast.test/2"]);
    // Nothing of the paused host's was touched: no attempt, no try counted.
    assert_eq!(
        f.count(
            "SELECT COUNT(*) FROM jobs WHERE host = 'slow.test' AND state = 'queued'
             AND attempts = 0 AND started_at IS NULL"
        ),
        3
    );
    assert_eq!(f.count("SELECT COUNT(*) FROM attempts"), 3);
    assert!(claim_hosts(f, 10, &[]).is_empty(), "still paused");
    // Once the pause is over, they are claimed like any job.
    let mut got = Vec::new();
    wait_until("the paused host's jobs after the pause", || {
        got.extend(claim_hosts(f, 10, &[]));
        got.len() == 3
    });
    assert!(
        now_ms() >= pause_ends - 1_000,
        "claimed before the pause ended"
    );
    assert_eq!(got, ["slow.test/1", "slow.test/2", "slow.test/3"]);
}

fn a_host_left_to_other_daemons_is_passed_over(f: &Fixture) {
    f.add(&[
        "http://a.test/1",
        "http://b.test/1",
        "http://a.test/2",
        "http://b.test/2",
    ]);
    // This daemon's part of b.test's limit is 0: its claims leave b.test's jobs untouched.
    assert_eq!(claim_hosts(f, 1, &["b.test"]), ["a.test/1"]);
    assert_eq!(claim_hosts(f, 5, &["b.test", "c.test"]), ["a.test/2"]);
    assert_eq!(
        f.count("SELECT COUNT(*) FROM jobs WHERE host = 'b.test' AND attempts = 0"),
        2
    );
    // A limit in the table holds back requests, not claims: each daemon keeps to its part of it
    // in memory, and the jobs running are no measure of the requests in flight.
    f.store
        .record_host("b.test", HostChange::Narrowed { max_in_flight: 1 })
        .unwrap();
    assert_eq!(claim_hosts(f, 5, &[]), ["b.test/1", "b.test/2"]);
}

fn the_next_due_time_waits_out_a_pause(f: &Fixture) {
    let mut watch = f.store.watch().unwrap();
    let hour = 3_600_000;
    let now = now_ms();
    f.add(&["http://paused.test/1", "http://paused.test/2"]);
    f.store
        .record_host(
            "paused.test",
            HostChange::Paused {
                until: now + hour,
                strikes: 3,
                max_in_flight: None,
            },
        )
        .unwrap();
    let near = |due: Option<i64>, at: i64| {
        let due = due.expect("a due time");
        assert!((due - at).abs() < 5_000, "due {due}, expected {at}");
    };
    near(watch.next_due().unwrap(), now + hour);
    // Another host's job scheduled later than the pause's end, and one earlier.
    let at = |url: &str, run_at: i64| NewJob {
        run_at: Some(run_at),
        ..NewJob::new(url)
    };
    f.store
        .add(&[at("http://other.test/1", now + 2 * hour)])
        .unwrap();
    near(watch.next_due().unwrap(), now + hour);
    f.store.add(&[at("not a url", now + hour / 2)]).unwrap();
    near(watch.next_due().unwrap(), now + hour / 2);
    // Without the other hosts' jobs, the pause's end again.
    f.exec("DELETE FROM jobs WHERE host IS NULL OR host = 'other.test'");
    near(watch.next_due().unwrap(), now + hour);
    // More of the paused host's jobs than a backend may look at in one go.
    let many: Vec<NewJob> = (0..1_500)
        .map(|i| NewJob::new(format!("http://paused.test/many/{i}")))
        .collect();
    f.store.add(&many).unwrap();
    // A backend that cannot tell (SQLite looks at the first jobs only) may answer earlier, which
    // costs one empty claim; never later, which would leave a due job waiting.
    let due = watch.next_due().unwrap().expect("a due time");
    assert!(
        due <= now + hour + 5_000,
        "due {due}, after the pause's end"
    );
    // Regression: a job due now behind more paused jobs than SQLite looks at was not due
    // until the pause's end, and the workers slept past it.
    f.add(&["http://other.test/behind"]);
    let due = watch.next_due().unwrap().expect("a due time");
    assert!(
        due <= now_ms() + 1_000,
        "a job due now behind 1,500 paused ones is due at {due}"
    );
    f.exec("DELETE FROM jobs WHERE host = 'other.test'");
    f.exec("DELETE FROM jobs");
    assert_eq!(watch.next_due().unwrap(), None);
}

fn host_state_from_two_daemons_combines(f: &Fixture) {
    let other = store::open_for_jobctl(&f.database).unwrap();
    let now = now_ms();
    let hour = 3_600_000;
    let pause = |until, strikes| HostChange::Paused {
        until,
        strikes,
        max_in_flight: None,
    };
    let narrow = |max_in_flight| HostChange::Narrowed { max_in_flight };
    let widen = |from, to| HostChange::Widened { from, to };
    // A pause only ever extends, and keeps the most strikes, whoever writes last.
    f.store
        .record_host("h.test", pause(now + 2 * hour, 2))
        .unwrap();
    other.record_host("h.test", pause(now + hour, 1)).unwrap();
    // A limit only narrows, whoever writes last: two daemons that halve it at once from what
    // they knew leave the lower of the two.
    f.store.record_host("h.test", narrow(2)).unwrap();
    other.record_host("h.test", narrow(4)).unwrap();
    // A widening applies to the limit it widened from: to the ceiling (g.test), one step
    // (k.test), and not at all when another daemon narrowed the limit since (m.test).
    other.record_host("g.test", narrow(3)).unwrap();
    f.store.record_host("g.test", widen(3, None)).unwrap();
    other.record_host("k.test", narrow(5)).unwrap();
    f.store.record_host("k.test", widen(5, Some(6))).unwrap();
    other.record_host("m.test", narrow(8)).unwrap();
    other.record_host("m.test", narrow(4)).unwrap();
    f.store.record_host("m.test", widen(8, Some(9))).unwrap();
    // A host that nobody narrowed has nothing to widen.
    f.store.record_host("n.test", widen(3, Some(4))).unwrap();
    // A pause that comes with a limit narrows it too; one without leaves it.
    other
        .record_host(
            "p.test",
            HostChange::Paused {
                until: now + hour,
                strikes: 1,
                max_in_flight: Some(1),
            },
        )
        .unwrap();
    f.store.record_host("p.test", pause(now + hour, 1)).unwrap();
    for daemon in [&f.store, &other] {
        let trouble = daemon.fleet().unwrap().hosts;
        let hosts: Vec<&str> = trouble.iter().map(|h| h.host.as_str()).collect();
        assert_eq!(
            hosts,
            ["h.test", "k.test", "m.test", "p.test"],
            "g.test is back at the ceiling"
        );
        let h = &trouble[0];
        assert_eq!((h.max_in_flight, h.strikes), (Some(2), 2));
        let until = h.paused_until.expect("paused");
        assert!((until - (now + 2 * hour)).abs() < 5_000, "until {until}");
        assert_eq!(
            (
                trouble[1].max_in_flight,
                trouble[1].paused_until,
                trouble[1].strikes
            ),
            (Some(6), None, 0)
        );
        assert_eq!(trouble[2].max_in_flight, Some(4), "a stale widening");
        assert_eq!(trouble[3].max_in_flight, Some(1));
        assert!(trouble[3].paused_until.is_some());
    }
    assert_eq!(
        f.count("SELECT COUNT(*) FROM hosts WHERE host = 'n.test'"),
        0
    );
    // Every slow-down counted once, whichever daemon saw it; widening is no slow-down.
    assert_eq!(
        f.count("SELECT slow_downs FROM hosts WHERE host = 'h.test'"),
        4
    );
    assert_eq!(
        f.count("SELECT slow_downs FROM hosts WHERE host = 'g.test'"),
        1
    );
    assert_eq!(
        f.count("SELECT COUNT(*) FROM hosts WHERE host = 'g.test' AND max_in_flight IS NULL"),
        1
    );
    // Widening resets the strikes but leaves the pause to run out.
    other.record_host("h.test", widen(2, Some(3))).unwrap();
    let h = &f.store.fleet().unwrap().hosts[0];
    assert_eq!((h.max_in_flight, h.strikes), (Some(3), 0));
    assert!(h.paused_until.is_some());
}

fn the_fleet_is_the_live_daemons_and_the_hosts_in_trouble(f: &Fixture) {
    let fleet = f.store.fleet().unwrap();
    assert!(
        fleet.daemons.is_empty() && fleet.hosts.is_empty(),
        "{fleet:?}"
    );
    // Two daemons beating, one silent for a minute (dead), by the database's clock on both.
    let now = now_ms();
    for (name, seen_at) in [
        ("b-host:20", now),
        ("a-host:10", now - 1_000),
        ("c-host:30", now - 60_000),
    ] {
        f.exec(&format!(
            "INSERT INTO daemons (name, host, pid, version, workers, busy, started_at, seen_at)
             VALUES ('{name}', 'h', 1, 'v', 4, 0, {seen_at}, {seen_at})"
        ));
    }
    pause_for_an_hour(f, "x.test");
    let fleet = f.store.fleet().unwrap();
    assert_eq!(fleet.daemons, ["a-host:10", "b-host:20"]);
    assert_eq!(fleet.hosts.len(), 1);
    assert_eq!(fleet.hosts[0].host, "x.test");
}

fn hosts_lists_each_hosts_figures(f: &Fixture) {
    f.add(&[
        "http://busy.test/1",
        "http://busy.test/2",
        "http://busy.test/3",
        "http://busy.test/4",
        "http://quiet.test/1",
        "http://quiet.test/2",
        "not a url",
    ]);
    // busy.test: 2 running, 1 done, 1 failed after a 429; quiet.test: all queued.
    let claimed = f.claim(4);
    assert_eq!(claimed.len(), 4);
    let slow = Report {
        http_status: Some(429),
        ..failed("HTTP 429 Too Many Requests")
    };
    let done = done("a");
    f.store
        .record(&[(&claimed[0], &done), (&claimed[1], &slow)])
        .unwrap();
    let until = now_ms() + 600_000;
    f.store
        .record_host("busy.test", HostChange::Narrowed { max_in_flight: 2 })
        .unwrap();
    f.store
        .record_host(
            "gone.test",
            HostChange::Paused {
                until,
                strikes: 1,
                max_in_flight: None,
            },
        )
        .unwrap();
    let rows = f.store.hosts().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r.host.as_str()).collect();
    assert_eq!(names, ["quiet.test", "busy.test", "gone.test"]);
    let quiet = &rows[0];
    assert_eq!(
        (
            quiet.queued,
            quiet.running,
            quiet.max_in_flight,
            quiet.paused_until
        ),
        (2, 0, None, None)
    );
    let busy = &rows[1];
    assert_eq!(
        (
            busy.queued,
            busy.running,
            busy.done_recently,
            busy.failed_recently,
            busy.slow_downs_recently,
            busy.max_in_flight
        ),
        (0, 2, 1, 1, 1, Some(2))
    );
    let gone = &rows[2];
    assert_eq!((gone.queued, gone.running), (0, 0));
    let paused = gone.paused_until.expect("paused");
    assert!((paused - until).abs() < 5_000, "paused until {paused}");
    // A job given back untried is queued again, and counts there.
    let untried = Report::new(Outcome::Untried { run_at: now_ms() });
    f.store.record(&[(&claimed[2], &untried)]).unwrap();
    let rows = f.store.hosts().unwrap();
    assert_eq!(
        (rows[1].host.as_str(), rows[1].queued, rows[1].running),
        ("busy.test", 1, 1)
    );
}
