//! Large bodies split across idle workers (issue 16 part 3): a body offered in ranges is fetched
//! in parts by workers with nothing else to do, every part is checked, and the blob is whole
//! whatever the server does with a range. The test server's ranges are judged by curl.

use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;

use jobd_testkit::images;
use jobd_testkit::server::{Ranges, Reply, TestServer};

use crate::support::{Env, Logged, sha256_hex, show, signal, wait_until};

/// A 3 MB JPEG, different for each seed and always the same length.
fn big_jpeg(seed: u64) -> Vec<u8> {
    images::jpeg(2000, 1500, 3_000_000, seed)
}

/// A server that takes 50 ms to answer and sends each body at 4 MB/s: a 3 MB body takes 0.75 s,
/// long enough for idle workers to take parts of it.
fn slow_server() -> TestServer {
    TestServer::start().with_wan(Duration::from_millis(50), Some(4_000_000))
}

/// Four workers (three idle while one job runs), retries quick, and `extra` under `[fetch]`.
fn env(extra: &str) -> Env {
    Env::with_config(&format!(
        "workers = 4\ngrace_secs = 2\n\
         [fetch]\ntimeout_secs = 20\nallow_ips = [\"127.0.0.1/32\"]\n{extra}\n\
         [retry]\nmax_attempts = 3\nbase_delay_ms = 50\nmax_delay_ms = 200\n"
    ))
}

/// URLs of three small images on `server`, to be fetched first: a new host starts at one request
/// at a time, and each success lets one more in (slow start), so these make room for parts.
/// Fetched in the same run as the large body, they could come after it.
fn warm_up(server: &TestServer) -> Vec<String> {
    (0..3)
        .map(|i| {
            let path = format!("/small-{i}.png");
            server.route(&path, Reply::image(images::png(8, 8, i), "image/png"));
            server.url(&path)
        })
        .collect()
}

/// Runs a daemon that fetches three small images first, and once they are done (the host's
/// limit has grown to 4), a job for `path`; returns its id once it is done or failed, with the
/// daemon stopped. A daemon's host limits live in its memory, hence one daemon for both.
fn run_after_warm_up(env: &Env, server: &TestServer, path: &str) -> i64 {
    let daemon = Logged::spawn(env.jobd(&[]));
    env.add(&warm_up(server));
    wait_until("the warm-up jobs done", || {
        env.count("SELECT count(*) FROM jobs WHERE state = 'done'") == 3
    });
    let id = env.add(&[server.url(path)])[0];
    wait_until("the job finished", || {
        env.job(id).state == "done" || env.job(id).state == "failed"
    });
    signal(&daemon.child, "TERM");
    let (out, log) = daemon.finish();
    assert!(out.status.success(), "{}\n{log}", show(&out));
    id
}

/// Fetches `path` after the warm-up, and asserts that it is done with the blob of `body`.
fn fetch_one(env: &Env, server: &TestServer, path: &str, body: &[u8]) {
    let id = run_after_warm_up(env, server, path);
    assert_eq!(
        env.count("SELECT count(*) FROM jobs WHERE state = 'done'"),
        4
    );
    let job = env.job(id);
    assert_eq!(job.state, "done", "{job:?}");
    assert_eq!(job.sha256.as_deref(), Some(sha256_hex(body).as_str()));
    assert_eq!(env.blob(job.blob_path.as_deref().unwrap()), body);
}

/// The connections that carried a Range request.
fn range_connections(server: &TestServer) -> HashSet<usize> {
    server
        .range_requests()
        .iter()
        .map(|r| r.connection)
        .collect()
}

#[test]
fn a_large_body_is_split_across_idle_workers_and_stored_whole() {
    let server = slow_server();
    let body = big_jpeg(1);
    server.route(
        "/big.jpg",
        Reply::image(body.clone(), "image/jpeg").ranged(Ranges::Honour),
    );
    let env = env("");
    fetch_one(&env, &server, "/big.jpg", &body);
    let ranges = server.range_requests();
    assert!(
        range_connections(&server).len() >= 2,
        "parts did not come from several workers: {ranges:?}"
    );
    // One attempt, and its row counts the whole body.
    assert_eq!(
        env.count("SELECT max(bytes) FROM attempts"),
        body.len() as i64
    );
    assert_eq!(env.count("SELECT count(*) FROM attempts"), 4);
}

#[test]
fn a_server_that_does_not_offer_ranges_gets_one_stream() {
    let server = slow_server();
    let body = big_jpeg(2);
    server.route("/big.jpg", Reply::image(body.clone(), "image/jpeg"));
    let env = env("");
    fetch_one(&env, &server, "/big.jpg", &body);
    assert_eq!(server.range_requests(), vec![]);
}

#[test]
fn split_min_bytes_0_never_splits() {
    let server = slow_server();
    let body = big_jpeg(3);
    server.route(
        "/big.jpg",
        Reply::image(body.clone(), "image/jpeg").ranged(Ranges::Honour),
    );
    let env = env("split_min_bytes = 0");
    fetch_one(&env, &server, "/big.jpg", &body);
    assert_eq!(server.range_requests(), vec![]);
}

#[test]
fn max_per_host_1_means_no_split() {
    let server = slow_server();
    let body = big_jpeg(4);
    server.route(
        "/big.jpg",
        Reply::image(body.clone(), "image/jpeg").ranged(Ranges::Honour),
    );
    let env = env("max_per_host = 1");
    fetch_one(&env, &server, "/big.jpg", &body);
    assert_eq!(server.range_requests(), vec![]);
}

/// A server that offers ranges but answers a range with the whole body (a 200), or with a
/// Content-Range other than the one asked for: the part is rejected, and the blob is whole.
#[test]
fn a_part_answered_with_200_or_a_wrong_content_range_is_rejected() {
    for (n, ranges) in [Ranges::Ignore, Ranges::WrongContentRange]
        .into_iter()
        .enumerate()
    {
        let server = slow_server();
        let body = big_jpeg(10 + n as u64);
        server.route(
            "/big.jpg",
            Reply::image(body.clone(), "image/jpeg").ranged(ranges),
        );
        let env = env("");
        fetch_one(&env, &server, "/big.jpg", &body);
        assert!(
            !server.range_requests().is_empty(),
            "{ranges:?}: no part was asked for"
        );
        // A rejected part stops the splitting: at most one try per idle worker (three), sent
        // before the first answer came, not one each time a worker is idle.
        assert!(
            server.range_requests().len() <= 3,
            "{ranges:?}: {:?}",
            server.range_requests()
        );
        assert_eq!(env.count("SELECT count(*) FROM attempts"), 4, "{ranges:?}");
    }
}

/// A part cut short: the owner fetches the rest of it again, and the blob is whole.
#[test]
fn a_truncated_part_is_fetched_again() {
    let server = slow_server();
    let body = big_jpeg(20);
    let honour = Reply::image(body.clone(), "image/jpeg").ranged(Ranges::Honour);
    // The owner's request is whole, the first part is cut after 100 KB, the rest are whole.
    server.route(
        "/big.jpg",
        Reply::sequence(vec![
            honour.clone(),
            Reply::image(body.clone(), "image/jpeg").ranged(Ranges::TruncateParts(100_000)),
            honour,
        ]),
    );
    let env = env("");
    fetch_one(&env, &server, "/big.jpg", &body);
    let ranges = server.range_requests();
    assert!(
        ranges.len() >= 2,
        "the cut part was not fetched again: {ranges:?}"
    );
    assert_eq!(env.count("SELECT count(*) FROM attempts"), 4);
}

/// The body changes on the server between the owner's request and a part's (a new ETag), and
/// the server does not look at If-Range: the part of the new body is refused by its ETag, the
/// attempt fails, and the retry stores the new body whole. Never a mix of the two.
#[test]
fn a_body_that_changes_between_requests_is_never_stored_mixed() {
    let server = slow_server();
    let (old, new) = (big_jpeg(30), big_jpeg(31));
    assert_eq!(old.len(), new.len());
    server.route(
        "/big.jpg",
        Reply::sequence(vec![
            Reply::image(old.clone(), "image/jpeg").ranged(Ranges::NoIfRange),
            Reply::image(new.clone(), "image/jpeg").ranged(Ranges::NoIfRange),
        ]),
    );
    let env = env("");
    let id = run_after_warm_up(&env, &server, "/big.jpg");
    let job = env.job(id);
    assert_eq!(job.state, "done", "{job:?}");
    assert!(!server.range_requests().is_empty(), "no part was asked for");
    assert_eq!(job.sha256.as_deref(), Some(sha256_hex(&new).as_str()));
    assert_eq!(env.blob(job.blob_path.as_deref().unwrap()), new);
    assert_eq!(
        env.outcomes(id).first().map(String::as_str),
        Some("retry"),
        "the first attempt stored a mix"
    );
}

/// The test server's ranges, judged by curl: `-r` ranges (closed, open, suffix), curl's own
/// resume (`-C`, which checks that the Content-Range starts where it asked), a 416 past the end,
/// and an If-Range that names another entity.
#[test]
fn the_test_servers_ranges_agree_with_curl() {
    let server = TestServer::start();
    let body = images::png(64, 64, 7);
    let len = body.len();
    let reply = Reply::image(body.clone(), "image/png").ranged(Ranges::Honour);
    let etag = reply
        .headers
        .iter()
        .find(|(n, _)| n == "ETag")
        .map(|(_, v)| v.clone())
        .unwrap();
    server.route("/a.png", reply);
    let url = server.url("/a.png");
    let curl = |args: &[&str]| {
        let out = Command::new("curl")
            .args(["-sS", "--fail", "--noproxy", "*"])
            .args(args)
            .output()
            .expect("run curl");
        assert!(out.status.success(), "curl {args:?}: {out:?}");
        out.stdout
    };
    assert_eq!(curl(&["-r", "100-199", &url]), &body[100..200]);
    assert_eq!(curl(&["-r", "1000-", &url]), &body[1000..]);
    assert_eq!(curl(&["-r", "-50", &url]), &body[len - 50..]);
    let head =
        String::from_utf8(curl(&["-r", "10-19", "-D", "-", "-o", "/dev/null", &url])).unwrap();
    assert!(head.starts_with("HTTP/1.1 206"), "{head}");
    assert!(
        head.contains(&format!("Content-Range: bytes 10-19/{len}\r\n")),
        "{head}"
    );
    assert!(head.contains("Content-Length: 10\r\n"), "{head}");
    // curl's resume checks the Content-Range itself.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.png");
    std::fs::write(&file, &body[..500]).unwrap();
    curl(&["-C", "-", "-o", file.to_str().unwrap(), &url]);
    assert_eq!(std::fs::read(&file).unwrap(), body);
    // Past the end: 416, with the length.
    let out = Command::new("curl")
        .args([
            "-sS",
            "--noproxy",
            "*",
            "-r",
            &format!("{len}-"),
            "-D",
            "-",
            "-o",
            "/dev/null",
        ])
        .arg(&url)
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&out.stdout);
    assert!(head.starts_with("HTTP/1.1 416"), "{head}");
    assert!(
        head.contains(&format!("Content-Range: bytes */{len}")),
        "{head}"
    );
    // If-Range: the entity's own ETag gets the range, another one the whole body.
    let if_range = |tag: &str| curl(&["-r", "0-9", "-H", &format!("If-Range: {tag}"), &url]);
    assert_eq!(if_range(&etag), &body[..10]);
    assert_eq!(if_range("\"other\""), body);
}

/// A server whose ETag changes at every request, bytes unchanged: the split try fails as a
/// changed body, and the retry streams the body whole instead of splitting again, so the job is
/// done on its second try rather than failed after its last.
#[test]
fn a_server_whose_etag_changes_at_every_request_costs_one_try_not_the_job() {
    let server = slow_server();
    let body = big_jpeg(40);
    server.route(
        "/big.jpg",
        Reply::sequence(
            (0..20)
                .map(|n| {
                    Reply::image(body.clone(), "image/jpeg")
                        .ranged(Ranges::NoIfRange)
                        .header("ETag", &format!("\"{n}\""))
                })
                .collect(),
        ),
    );
    let env = env("");
    let id = run_after_warm_up(&env, &server, "/big.jpg");
    let job = env.job(id);
    assert_eq!(job.state, "done", "{job:?}");
    assert_eq!(job.sha256.as_deref(), Some(sha256_hex(&body).as_str()));
    assert_eq!(env.outcomes(id), ["retry", "done"]);
}

/// Parts go to the URL the job's own request reached after its redirects, through the same
/// agent: the redirect is asked once, by the job's request only.
#[test]
fn parts_go_to_the_url_after_the_redirects() {
    let server = slow_server();
    let body = big_jpeg(50);
    server.route("/moved.jpg", Reply::redirect(302, "/big.jpg"));
    server.route(
        "/big.jpg",
        Reply::image(body.clone(), "image/jpeg").ranged(Ranges::Honour),
    );
    let env = env("");
    let id = run_after_warm_up(&env, &server, "/moved.jpg");
    let job = env.job(id);
    assert_eq!(job.state, "done", "{job:?}");
    assert_eq!(job.sha256.as_deref(), Some(sha256_hex(&body).as_str()));
    assert!(!server.range_requests().is_empty(), "no part was asked for");
    assert_eq!(server.hits("/moved.jpg"), 1);
    assert_eq!(server.hits("/big.jpg"), 1 + server.range_requests().len());
}
