//! The parallel import against a real server: input order in ids across many chunks, with two
//! writers, one, or none; progress; and an import that fails half-way.

use postgres::{Client, NoTls};

use super::import_chunks;
use crate::store::postgres::PgStore;
use crate::store::{Import, Jobs, NewJob};
use jobd_testkit::postgres::server;

/// A URL per row, with a tab and a backslash, which COPY's text format would have to escape.
fn url(i: usize) -> String {
    format!("http://127.0.0.1/bulk/{i}?q=a\tb\\c")
}

/// `rows` jobs in batches of `batch`, as jobctl's parser hands them over.
fn batches(rows: usize, batch: usize) -> impl Iterator<Item = Vec<NewJob>> {
    (0..rows.div_ceil(batch)).map(move |b| {
        (b * batch..rows.min((b + 1) * batch))
            .map(|i| NewJob::new(url(i)))
            .collect()
    })
}

fn urls_in_order(db: &str, order: &str) -> Vec<String> {
    let mut client = Client::connect(db, NoTls).unwrap();
    client
        .query(&format!("SELECT url FROM jobs ORDER BY {order}"), &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn urls_in_id_order(db: &str) -> Vec<String> {
    urls_in_order(db, "id")
}

fn assert_progress_ends_at(progress: &[u64], total: u64) {
    assert!(
        progress.windows(2).all(|w| w[0] < w[1]),
        "progress only goes up: {progress:?}"
    );
    assert_eq!(progress.last(), Some(&total), "{progress:?}");
}

#[test]
fn ids_follow_the_input_across_many_chunks_with_two_writers_one_or_none() {
    let rows = 10_500;
    let want: Vec<String> = (0..rows).map(url).collect();
    for writers in [2, 1, 0] {
        let db = server().fresh_database();
        let store = PgStore::open(&db, writers as u32 + 1).unwrap();
        let mut progress = Vec::new();
        // Batches of 700 gather into chunks of 1,400: eight, the last one short.
        let added = import_chunks(&store, &mut batches(rows, 700), 1_000, writers, &mut |n| {
            progress.push(n)
        })
        .unwrap();
        assert_eq!(added, rows as u64, "{writers} writers");
        assert_eq!(progress.len(), 8, "a report per commit: {progress:?}");
        assert_progress_ends_at(&progress, rows as u64);
        assert!(
            urls_in_id_order(&db) == want,
            "{writers} writers: ids follow the input"
        );
        // And so does the claim order, which looks at run_at before the id: a chunk's clock
        // reading is never earlier than the one before it.
        assert!(
            urls_in_order(&db, "priority DESC, run_at, id") == want,
            "{writers} writers: claims follow the input"
        );
    }
}

#[test]
fn a_million_url_import_in_miniature_goes_through_the_pool_jobctl_opens() {
    // More than two transactions of TX_ROWS, the last one short, through `Admin::import`.
    let rows = 2 * super::TX_ROWS + 1;
    let db = server().fresh_database();
    let store = PgStore::open(&db, 3).unwrap();
    let mut progress = Vec::new();
    let imported = store
        .import(&mut batches(rows, 10_000), false, &mut |n| progress.push(n))
        .unwrap();
    assert_eq!(imported, (rows as u64, 0));
    assert_progress_ends_at(&progress, rows as u64);
    assert!(urls_in_id_order(&db) == (0..rows).map(url).collect::<Vec<_>>());
    // Jobs added afterwards get ids after the imported ones: the sequence was advanced.
    let ids = store.add(&[NewJob::new(url(rows))]).unwrap();
    assert_eq!(ids, [rows as i64 + 1]);
}

#[test]
fn a_chunk_the_server_refuses_stops_the_import_and_commits_so_far_stay() {
    // Chunk 5 (of 10, 1,000 rows each) holds a NUL byte, which no PostgreSQL text can.
    let db = server().fresh_database();
    let store = PgStore::open(&db, 3).unwrap();
    let mut input = batches(10_000, 1_000).enumerate().map(|(i, mut batch)| {
        if i == 5 {
            batch[500].url = "http://127.0.0.1/nul\0".into();
        }
        batch
    });
    let mut progress = Vec::new();
    let err = import_chunks(&store, &mut input, 1_000, 2, &mut |n| progress.push(n))
        .expect_err("a NUL byte in a URL");
    let message = err.to_string();
    assert!(message.starts_with("importing jobs: "), "{message}");
    assert!(message.contains("0x00"), "the server's reason: {message}");
    // Whole chunks went in or none of their rows, never the bad one's, each in input order;
    // progress counted exactly the committed ones.
    let urls = urls_in_id_order(&db);
    assert_eq!(urls.len() % 1_000, 0, "{} rows", urls.len());
    // When a writer took chunk 5, it had committed its previous chunk, and every chunk before
    // that was committed or in the other writer's hands: at most one of 0 to 4 is missing.
    assert!(urls.len() >= 4_000, "chunks before 5 are in");
    for chunk in urls.chunks(1_000) {
        let first: usize = chunk[0]["http://127.0.0.1/bulk/".len()..]
            .split('?')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap();
        assert_eq!(first % 1_000, 0);
        assert_ne!(first, 5_000);
        assert!(chunk == (first..first + 1_000).map(url).collect::<Vec<_>>());
    }
    assert_eq!(progress.last().copied().unwrap_or(0), urls.len() as u64);
}
