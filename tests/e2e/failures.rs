//! Failures: each ends in the right state, with the right number of attempts and an error a
//! person can act on, and none of them holds up the other jobs.

use std::time::Duration;

use jobd_testkit::images;
use jobd_testkit::server::{Fault, Reply, TestServer};

use crate::support::Env;

fn png() -> Vec<u8> {
    images::png(16, 16, 99)
}

/// Runs one URL per case through one daemon, then checks (state, attempts, error words).
fn check(env: &Env, server: &TestServer, cases: &[(&str, Reply, &str, i64, &str)]) {
    for (path, reply, ..) in cases {
        server.route(path, reply.clone());
    }
    let urls: Vec<String> = cases.iter().map(|c| server.url(c.0)).collect();
    let ids = env.add(&urls);
    env.drain(&[]);
    for (id, (path, _, state, attempts, words)) in ids.iter().zip(cases) {
        let job = env.job(*id);
        assert_eq!(job.state, *state, "{path}: {job:?}");
        assert_eq!(job.attempts, *attempts, "{path}: {job:?}");
        assert!(
            job.error().contains(words),
            "{path}: error {:?} lacks {words:?}",
            job.error()
        );
    }
}

#[test]
fn http_and_content_failures() {
    let server = TestServer::start();
    let env = Env::new("");
    let html = "<html><body>Not found</body></html>";
    for i in 1..=4 {
        server.route(
            &format!("/chain{i}"),
            Reply::redirect(307, &format!("/chain{}", i - 1)),
        );
    }
    server.route("/chain0", Reply::image(png(), "image/png"));
    check(
        &env,
        &server,
        &[
            ("/ok", Reply::image(png(), "image/png"), "done", 1, ""),
            ("/missing", Reply::status(404), "failed", 1, "HTTP 404"),
            ("/forbidden", Reply::status(403), "failed", 1, "HTTP 403"),
            (
                "/html-as-jpeg",
                Reply::html(200, html).header("Content-Type", "image/jpeg"),
                "failed",
                1,
                "not an image",
            ),
            (
                "/pdf",
                Reply::image(&b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"[..], "image/png"),
                "failed",
                1,
                "application/pdf",
            ),
            (
                "/jpeg-as-html",
                Reply::image(images::jpeg(10, 10, 500, 1), "text/html"),
                "done",
                1,
                "",
            ),
            (
                "/junk-jpeg",
                Reply::image(
                    &b"\xff\xd8\xff\x00\x00junk junk junk junk junk junk junk junk junk junk junk"
                        [..],
                    "image/jpeg",
                ),
                "failed",
                1,
                "truncated: the JPEG ends before its frame header (SOF)",
            ),
            (
                "/empty",
                Reply::image(&b""[..], "image/png"),
                "failed",
                1,
                "empty",
            ),
            (
                "/flaky",
                Reply::sequence(vec![Reply::status(503), Reply::image(png(), "image/png")]),
                "done",
                2,
                "",
            ),
            (
                "/down",
                Reply::status(500),
                "failed",
                3,
                "gave up after 3 attempts",
            ),
            (
                "/loop",
                Reply::redirect(302, "/loop"),
                "failed",
                1,
                "too many redirects",
            ),
            ("/hop", Reply::redirect(301, "/ok"), "done", 1, ""),
            (
                "/always-503",
                Reply::status(503),
                "failed",
                3,
                "HTTP 503 Service Unavailable (gave up after 3 attempts)",
            ),
            // A chain of five redirects is the most the default allows; six is too many.
            ("/chain5", Reply::redirect(302, "/chain4"), "done", 1, ""),
            (
                "/chain6",
                Reply::redirect(302, "/chain5"),
                "failed",
                1,
                "too many redirects (more than 5)",
            ),
        ],
    );
    // The declared type is recorded beside the detected one.
    let declared: String = env
        .db()
        .query_row(
            "SELECT declared_mime || ' ' || mime FROM jobs WHERE url LIKE '%/jpeg-as-html'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(declared, "text/html image/jpeg");
    assert_eq!(env.job(2).http_status, Some(404));
}

#[test]
fn network_failures_are_retried_and_never_stored() {
    let server = TestServer::start();
    let env = Env::new("");
    let body = png();
    check(
        &env,
        &server,
        &[
            (
                "/reset",
                Reply::image(body.clone(), "image/png").fault(Fault::Reset),
                "failed",
                3,
                "",
            ),
            (
                "/truncated",
                Reply::image(body.clone(), "image/png").fault(Fault::Truncate(100)),
                "failed",
                3,
                "",
            ),
            (
                "/cut-once",
                Reply::sequence(vec![
                    Reply::image(body.clone(), "image/png").fault(Fault::Truncate(100)),
                    Reply::image(body.clone(), "image/png"),
                ]),
                "done",
                2,
                "",
            ),
        ],
    );
    // A truncated body never reaches the blob store; only the good one is there.
    assert_eq!(crate::support::files_under(&env.path("blobs")).len(), 1);
    let refused = Env::new("");
    let ids = refused.add(&["http://127.0.0.1:1/x.png".to_string()]);
    refused.drain(&[]);
    let job = refused.job(ids[0]);
    assert_eq!((job.state.as_str(), job.attempts), ("failed", 3));
    assert!(job.error().contains("refused"), "{job:?}");
}

#[test]
fn size_limit_holds_with_and_without_content_length() {
    let server = TestServer::start();
    let env = Env::with_config(
        "workers = 2\nlease_secs = 60\n[fetch]\ntimeout_secs = 20\nmax_bytes = 10000\n\
         allow_ips = [\"127.0.0.1/32\"]\n",
    );
    let big = images::png(100, 100, 1); // ~30 KB
    check(
        &env,
        &server,
        &[
            (
                "/announced",
                Reply::image(big.clone(), "image/png"),
                "failed",
                1,
                "the server announced",
            ),
            (
                "/endless",
                Reply::image(png(), "image/png").fault(Fault::Endless {
                    content_length: false,
                }),
                "failed",
                1,
                "grew past the limit of 10000",
            ),
            (
                "/endless-announced",
                Reply::image(png(), "image/png").fault(Fault::Endless {
                    content_length: true,
                }),
                "failed",
                1,
                "the server announced",
            ),
            ("/small", Reply::image(png(), "image/png"), "done", 1, ""),
        ],
    );
}

#[test]
fn a_trickling_server_cannot_hold_a_worker_past_the_deadline() {
    let server = TestServer::start();
    let env = Env::with_config(
        "workers = 1\nlease_secs = 60\n[fetch]\ntimeout_secs = 1\nallow_ips = [\"127.0.0.1/32\"]\n\
         [retry]\nmax_attempts = 1\n",
    );
    server.route(
        "/slow",
        Reply::image(png(), "image/png").fault(Fault::Trickle(Duration::from_millis(200))),
    );
    server.route("/next", Reply::image(images::png(3, 3, 3), "image/png"));
    let ids = env.add(&[server.url("/slow"), server.url("/next")]);
    env.drain(&[]);
    let slow = env.job(ids[0]);
    assert_eq!(slow.state, "failed");
    assert!(slow.error().contains("timed out"), "{slow:?}");
    assert_eq!(env.job(ids[1]).state, "done");
}

#[test]
fn forbidden_addresses_are_never_connected_to() {
    // A listener on the forbidden address proves that no connection reaches it.
    let forbidden = TestServer::bind("127.0.0.2:0").expect("bind 127.0.0.2");
    forbidden.route("/secret.png", Reply::image(png(), "image/png"));
    let allowed = TestServer::start();
    allowed.route(
        "/bounce",
        Reply::redirect(302, &forbidden.url("/secret.png")),
    );
    allowed.route("/ok.png", Reply::image(png(), "image/png"));
    let port = forbidden.addr().port();
    let env = Env::new("");
    let urls = [
        forbidden.url("/secret.png"),
        format!("http://0x7f000002:{port}/secret.png"),
        format!("http://2130706434:{port}/secret.png"),
        format!("http://127.2:{port}/secret.png"),
        format!("http://0177.0.0.2:{port}/secret.png"),
        format!("http://[::ffff:127.0.0.2]:{port}/secret.png"),
        format!("http://[::1]:{port}/secret.png"),
        // NAT64, 6to4 and Teredo forms that embed 127.0.0.2.
        format!("http://[64:ff9b::7f00:2]:{port}/secret.png"),
        format!("http://[2002:7f00:2::1]:{port}/secret.png"),
        format!("http://[2001:0:4136:e378:8000:63bf:80ff:fffd]:{port}/secret.png"),
        allowed.url("/bounce"),
    ];
    let ids = env.add(&urls);
    let good = env.add(&[allowed.url("/ok.png")]);
    env.drain(&[]);
    for (id, url) in ids.iter().zip(&urls) {
        let job = env.job(*id);
        assert_eq!(
            (job.state.as_str(), job.attempts),
            ("failed", 1),
            "{url}: {job:?}"
        );
        assert!(job.error().contains("is not allowed"), "{url}: {job:?}");
    }
    assert_eq!(env.job(good[0]).state, "done");
    assert_eq!(
        forbidden.connections(),
        0,
        "the forbidden address was contacted"
    );
}

#[test]
fn rows_typed_by_hand_fail_with_a_clear_error() {
    let server = TestServer::start();
    server.route("/ok.png", Reply::image(png(), "image/png"));
    let env = Env::new("");
    env.jobctl_ok(&["stats"]); // creates the database
    let cases: [(&str, &str); 7] = [
        ("NULL", "url is NULL"),
        ("''", "url is empty"),
        // TEXT affinity stores the number as the text '42'.
        ("42", "not a valid URL"),
        ("X'00ff'", "url is a blob"),
        ("'file:///etc/passwd'", "\"file\" is not supported"),
        ("'http://a/b' || char(10) || 'c'", "line break"),
        ("'no scheme here'", "white space"),
    ];
    let db = env.db();
    for (value, _) in &cases {
        db.execute(&format!("INSERT INTO jobs(url) VALUES ({value})"), [])
            .unwrap();
    }
    let long = format!("http://127.0.0.1/{}", "a".repeat(100_000));
    db.execute("INSERT INTO jobs(url) VALUES (?1)", [&long])
        .unwrap();
    db.execute("INSERT INTO jobs(url) VALUES (?1)", [server.url("/ok.png")])
        .unwrap();
    drop(db);
    env.drain(&[]);
    for (i, (value, words)) in cases.iter().enumerate() {
        let job = env.job(i as i64 + 1);
        assert_eq!(
            (job.state.as_str(), job.attempts),
            ("failed", 1),
            "{value}: {job:?}"
        );
        assert!(job.error().contains(words), "{value}: {job:?}");
    }
    assert!(env.job(8).error().contains("the limit is 8192"));
    assert_eq!(env.job(9).state, "done");
}

#[test]
fn images_that_lie_about_themselves_fail() {
    let server = TestServer::start();
    let env = Env::with_config(
        "workers = 2\n[fetch]\nmax_pixels = 5000\nallow_ips = [\"127.0.0.1/32\"]\n",
    );
    // The PNG signature followed by a chunk that is not IHDR.
    let mut no_ihdr = b"\x89PNG\r\n\x1a\n".to_vec();
    no_ihdr.extend_from_slice(b"\x00\x00\x00\x04tEXtjunk\x00\x00\x00\x00");
    no_ihdr.extend_from_slice(&[0u8; 64]);
    // A PNG sent gzip-compressed although nobody asked: the bytes kept are gzip, not an image.
    let gzipped = [&b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03"[..], &[0u8; 40]].concat();
    check(
        &env,
        &server,
        &[
            (
                "/no-ihdr",
                Reply::image(no_ihdr, "image/png"),
                "failed",
                1,
                "invalid image",
            ),
            (
                "/bomb",
                Reply::image(images::png(100, 100, 1), "image/png"),
                "failed",
                1,
                "too large: frame 1 is 100x100, over max_pixels (5000)",
            ),
            (
                "/fits",
                Reply::image(images::png(70, 70, 1), "image/png"),
                "done",
                1,
                "",
            ),
            (
                "/gzip",
                Reply::image(gzipped, "image/png").header("Content-Encoding", "gzip"),
                "failed",
                1,
                "application/gzip",
            ),
        ],
    );
}

/// Regression (issue 12): a redirect without a Location, or to a Location that is not ASCII,
/// was retried as "the server broke HTTP"; and a redirect that went out on a keep-alive
/// connection the server had closed cost an attempt ("connection closed early"), where curl and
/// browsers send it again on a new connection.
#[test]
fn redirects_fail_at_once_without_a_location_and_survive_a_closed_keep_alive() {
    let server = TestServer::start();
    let env = Env::new("");
    let body = png();
    server.route(
        "/keepalive/image.png",
        Reply::sequence(vec![
            Reply::image(body.clone(), "image/png").fault(Fault::Reset),
            Reply::image(body.clone(), "image/png"),
        ]),
    );
    check(
        &env,
        &server,
        &[
            (
                "/keepalive",
                Reply::redirect(302, "/keepalive/image.png"),
                "done",
                1,
                "",
            ),
            ("/no-location", Reply::status(302), "failed", 1, "Location"),
            (
                "/not-ascii",
                Reply::status(301).header("Location", "/\u{fc}ber.png"),
                "failed",
                1,
                "Location",
            ),
        ],
    );
    assert_eq!(env.outcomes(1), ["done"]);
}
