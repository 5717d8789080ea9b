//! Tests of the throwaway PostgreSQL server, through the same client the backend uses.

use super::{TestPostgres, server};

fn connect(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls)
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"))
}

#[test]
fn fresh_databases_are_distinct_empty_and_usable() {
    let pg = server();
    let (a, b) = (pg.fresh_database(), pg.fresh_database());
    assert_ne!(a, b);
    let port = format!("127.0.0.1:{}/", pg.port());
    assert!(a.contains(&port), "{a} is not on port {}", pg.port());

    let (mut ca, mut cb) = (connect(&a), connect(&b));
    for (client, url) in [(&mut ca, &a), (&mut cb, &b)] {
        let name: String = client
            .query_one("SELECT current_database()", &[])
            .unwrap()
            .get(0);
        assert!(
            url.ends_with(&format!("/{name}")),
            "{url} connected to {name}"
        );
        let tables: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(tables, 0, "{url} is not empty");
    }

    ca.batch_execute("CREATE TABLE jobs (id BIGINT PRIMARY KEY, url TEXT NOT NULL)")
        .unwrap();
    ca.execute(
        "INSERT INTO jobs VALUES ($1, $2)",
        &[&1i64, &"http://a/1.png"],
    )
    .unwrap();
    let url: String = ca
        .query_one("SELECT url FROM jobs WHERE id = 1", &[])
        .unwrap()
        .get(0);
    assert_eq!(url, "http://a/1.png");
    // The same table name in the other database is another table.
    assert!(cb.query("SELECT * FROM jobs", &[]).is_err());
    cb.batch_execute("CREATE TABLE jobs (id BIGINT PRIMARY KEY)")
        .unwrap();
    let rows: i64 = cb
        .query_one("SELECT count(*) FROM jobs", &[])
        .unwrap()
        .get(0);
    assert_eq!(rows, 0);
}

#[test]
fn databases_created_by_parallel_tests_are_all_distinct() {
    let urls: Vec<String> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..4)
            .map(|_| s.spawn(|| [server().fresh_database(), server().fresh_database()]))
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let distinct: std::collections::HashSet<&String> = urls.iter().collect();
    assert_eq!(distinct.len(), 8, "{urls:?}");
    for url in &urls {
        connect(url).batch_execute("SELECT 1").unwrap();
    }
}

#[test]
fn a_row_committed_just_before_an_immediate_restart_survives_it() {
    // A private server: a restart cuts every connection, other tests' included.
    let pg = TestPostgres::start();
    let db = pg.fresh_database();
    let mut before = connect(&db);
    before
        .batch_execute("CREATE TABLE jobs (id BIGINT PRIMARY KEY)")
        .unwrap();
    before.execute("INSERT INTO jobs VALUES (1)", &[]).unwrap();

    // Right after the commit: with synchronous_commit=off this row would be lost.
    pg.restart();

    assert!(
        before.query("SELECT 1", &[]).is_err(),
        "the old connection outlived the restart"
    );
    let mut after = connect(&db);
    let ids: Vec<i64> = after
        .query("SELECT id FROM jobs", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids, [1]);
    after.execute("INSERT INTO jobs VALUES (2)", &[]).unwrap();
    assert_ne!(pg.fresh_database(), db);

    // The restarted server's lifeline still cleans up.
    let base = pg.base.clone();
    drop(pg);
    assert!(!base.exists(), "{} is still there", base.display());
}

#[test]
fn dropping_a_private_server_stops_it_and_removes_its_folder() {
    let pg = TestPostgres::start();
    let (base, port) = (pg.base.clone(), pg.port());
    assert!(base.join("data").is_dir());
    drop(pg);
    assert!(!base.exists(), "{} is still there", base.display());
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    assert!(
        postgres::Client::connect(&url, postgres::NoTls).is_err(),
        "still accepting on {port}"
    );
}
