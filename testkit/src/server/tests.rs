//! Tests of the loopback test server, mostly through a raw TCP client so that framing,
//! keep-alive and faults are observed exactly as sent.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::{Fault, Reply, TestServer};
use crate::images;

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A raw HTTP/1.1 client on one connection, so tests control exactly what is reused.
struct Client(BufReader<TcpStream>);

impl Client {
    fn connect(server: &TestServer) -> Client {
        let stream = TcpStream::connect(server.addr()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        Client(BufReader::new(stream))
    }

    fn send(&mut self, raw: &str) {
        self.0.get_mut().write_all(raw.as_bytes()).unwrap();
    }

    fn get(&mut self, path: &str) -> Response {
        self.send(&format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n"));
        self.read_response(false)
    }

    /// Reads one response; the body is framed by Content-Length, or by EOF when absent.
    fn read_response(&mut self, head_only: bool) -> Response {
        let mut line = String::new();
        self.0.read_line(&mut line).unwrap();
        let status = line.split(' ').nth(1).unwrap().parse().unwrap();
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.0.read_line(&mut line).unwrap();
            match line.trim_end().split_once(": ") {
                Some((n, v)) => headers.push((n.to_string(), v.to_string())),
                None => break,
            }
        }
        let mut response = Response {
            status,
            headers,
            body: Vec::new(),
        };
        match response
            .header("content-length")
            .map(|v| v.parse::<usize>().unwrap())
        {
            _ if head_only || status == 204 || status == 304 => {}
            Some(len) => {
                response.body.resize(len, 0);
                self.0.read_exact(&mut response.body).unwrap();
            }
            None => drop(self.0.read_to_end(&mut response.body).unwrap()),
        }
        response
    }

    /// True once the server has closed the connection (EOF or reset).
    fn is_closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.0.read(&mut byte), Ok(0) | Err(_))
    }
}

fn agent() -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .proxy(None)
        .http_status_as_error(false)
        .build();
    ureq::Agent::new_with_config(config)
}

#[test]
fn serves_an_image_to_ureq() {
    let server = TestServer::start();
    let png = images::png(8, 8, 1);
    server.route("/a.png", Reply::image(png.clone(), "image/png"));
    let mut response = agent().get(&server.url("/a.png")).call().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/png");
    assert_eq!(response.body_mut().read_to_vec().unwrap(), png);
    assert_eq!(server.hits("/a.png"), 1);
}

#[test]
fn keep_alive_serves_many_requests_on_one_connection() {
    let server = TestServer::start();
    server.route("/x", Reply::image(&b"12345"[..], "image/png"));
    let mut client = Client::connect(&server);
    assert_eq!(client.get("/x").body, b"12345");
    assert_eq!(client.get("/x").body, b"12345");
    assert_eq!((server.connections(), server.hits("/x")), (1, 2));

    // ureq's pool must be able to reuse the connection too.
    let agent = agent();
    for _ in 0..3 {
        agent
            .get(&server.url("/x"))
            .call()
            .unwrap()
            .body_mut()
            .read_to_vec()
            .unwrap();
    }
    assert_eq!((server.connections(), server.total_hits()), (2, 5));
}

#[test]
fn connection_close_and_http10_end_the_connection() {
    let server = TestServer::start();
    server.route("/x", Reply::image(&b"hi"[..], "image/gif"));
    let mut client = Client::connect(&server);
    client.send("GET /x HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_eq!(
        client.read_response(false).header("connection"),
        Some("close")
    );
    assert!(client.is_closed());
    let mut client = Client::connect(&server);
    client.send("GET /x HTTP/1.0\r\n\r\n");
    assert_eq!(client.read_response(false).body, b"hi");
    assert!(client.is_closed());
}

#[test]
fn unknown_paths_get_404_html_and_query_strings_route_by_path() {
    let server = TestServer::start();
    server.route("/known", Reply::status(204));
    let mut client = Client::connect(&server);
    let missing = client.get("/nope");
    assert_eq!(missing.status, 404);
    assert!(
        missing
            .header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(client.get("/known?size=large").status, 204);
    assert_eq!(
        (
            server.hits("/known"),
            server.hits("/nope"),
            server.total_hits()
        ),
        (1, 1, 2)
    );
}

#[test]
fn head_sends_the_length_but_no_body() {
    let server = TestServer::start();
    server.route("/img", Reply::image(vec![7u8; 1000], "image/jpeg"));
    let mut client = Client::connect(&server);
    client.send("HEAD /img HTTP/1.1\r\n\r\n");
    assert_eq!(
        client.read_response(true).header("content-length"),
        Some("1000")
    );
    // Had a body been sent, this response would be read from the middle of it.
    assert_eq!(client.get("/img").body.len(), 1000);
}

#[test]
fn redirects_carry_a_location() {
    let server = TestServer::start();
    server.route("/old", Reply::redirect(302, "/new"));
    let response = Client::connect(&server).get("/old");
    assert_eq!(
        (response.status, response.header("location")),
        (302, Some("/new"))
    );
}

#[test]
fn sequence_walks_its_replies_then_repeats_the_last() {
    let server = TestServer::start();
    let ok = Reply::image(&b"ok"[..], "image/png");
    server.route(
        "/flaky",
        Reply::sequence(vec![Reply::status(503), Reply::status(429), ok]),
    );
    let mut client = Client::connect(&server);
    let statuses: Vec<u16> = (0..4).map(|_| client.get("/flaky").status).collect();
    assert_eq!(statuses, [503, 429, 200, 200]);
}

#[test]
fn truncate_announces_the_full_length_then_closes_early() {
    let server = TestServer::start();
    server.route(
        "/cut",
        Reply::image(vec![1u8; 5000], "image/png").fault(Fault::Truncate(100)),
    );
    let mut client = Client::connect(&server);
    client.send("GET /cut HTTP/1.1\r\n\r\n");
    let response = client.read_response(true);
    assert_eq!(response.header("content-length"), Some("5000"));
    let mut body = Vec::new();
    client.0.read_to_end(&mut body).unwrap();
    assert_eq!(body.len(), 100);
}

#[test]
fn reset_closes_without_a_response_and_still_counts_the_hit() {
    let server = TestServer::start();
    server.route("/rst", Reply::status(200).fault(Fault::Reset));
    let mut client = Client::connect(&server);
    client.send("GET /rst HTTP/1.1\r\n\r\n");
    assert!(client.is_closed());
    assert_eq!(server.hits("/rst"), 1);
}

#[test]
fn endless_bodies_stream_until_the_client_leaves() {
    let server = TestServer::start();
    let head = images::png(4, 4, 1);
    for (path, content_length) in [("/sized", true), ("/unsized", false)] {
        let reply = Reply::image(head.clone(), "image/png");
        server.route(path, reply.fault(Fault::Endless { content_length }));
        let mut client = Client::connect(&server);
        client.send(&format!("GET {path} HTTP/1.1\r\n\r\n"));
        let response = client.read_response(true);
        let announced = content_length.then_some("1099511627776");
        assert_eq!(response.header("content-length"), announced);
        let mut body = vec![0u8; 1 << 20];
        client.0.read_exact(&mut body).unwrap();
        assert!(body.starts_with(&head));
    }
    drop(server); // must return although both writers are blocked on clients that stopped reading
}

#[test]
fn delays_trickling_and_wan_rate_slow_the_response() {
    let server = TestServer::start().with_wan(Duration::from_millis(50), Some(1_000_000));
    server.route("/slow", Reply::image(vec![0u8; 200_000], "image/webp"));
    server.route(
        "/drip",
        Reply::image(&b"abc"[..], "image/gif").fault(Fault::Trickle(Duration::from_millis(40))),
    );
    server.route(
        "/late",
        Reply::status(200).fault(Fault::Delay(Duration::from_millis(100))),
    );
    let mut client = Client::connect(&server);
    for (path, at_least_ms, len) in [
        ("/slow", 240, 200_000),
        ("/drip", 130, 3),
        ("/late", 150, 0),
    ] {
        let start = Instant::now();
        let response = client.get(path);
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_millis(at_least_ms),
            "{path} took {elapsed:?}"
        );
        assert!(len == 0 || response.body.len() == len, "{path}");
    }
}

#[test]
fn garbage_requests_get_400_and_the_server_keeps_serving() {
    let server = TestServer::start();
    for garbage in [
        "\x00\x01\x02\r\n\r\n",
        "GET\r\n\r\n",
        "GET / HTTP/9\r\n\r\n",
        "GET / HTTP/1.1\r\nno colon\r\n\r\n",
    ] {
        let mut client = Client::connect(&server);
        client.send(garbage);
        assert_eq!(client.read_response(false).status, 400, "{garbage:?}");
    }
    let mut client = Client::connect(&server);
    client.send(&format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(70_000)));
    assert_eq!(client.read_response(false).status, 431);
    assert_eq!(Client::connect(&server).get("/").status, 404);
}

#[test]
fn request_bodies_are_skipped() {
    let server = TestServer::start();
    let mut client = Client::connect(&server);
    client.send("POST /form HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(client.read_response(false).status, 404);
    assert_eq!(client.get("/after").status, 404);
    assert_eq!((server.hits("/form"), server.hits("/after")), (1, 1));
}

#[test]
fn serve_dir_routes_files_by_name_with_their_type() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.webp"), images::webp(10, 10, 100, 1)).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
    let server = TestServer::start();
    assert_eq!(server.serve_dir(dir.path()).unwrap(), 2);
    let mut client = Client::connect(&server);
    assert_eq!(
        client.get("/a.webp").header("content-type"),
        Some("image/webp")
    );
    assert_eq!(
        client.get("/notes.txt").header("content-type"),
        Some("application/octet-stream")
    );
}

#[test]
fn dropping_the_server_stops_listening_and_closes_idle_connections() {
    let server = TestServer::start();
    let addr = server.addr();
    let mut idle = Client::connect(&server);
    assert_eq!(idle.get("/").status, 404);
    drop(server);
    assert!(idle.is_closed());
    assert!(TcpStream::connect(addr).is_err());
}

#[test]
fn sequence_per_url_starts_over_for_each_query_string() {
    let server = TestServer::start();
    let ok = Reply::image(&b"ok"[..], "image/png");
    server.route("/a", Reply::sequence_per_url(vec![Reply::status(503), ok]));
    let mut client = Client::connect(&server);
    let statuses: Vec<u16> = ["/a", "/a", "/a?n=1", "/a?n=2", "/a?n=1", "/a"]
        .map(|path| client.get(path).status)
        .into();
    assert_eq!(statuses, [503, 200, 503, 503, 200, 200]);
    assert_eq!(server.hits("/a"), 6);
}

#[test]
fn the_fallback_answers_every_unrouted_path() {
    let server = TestServer::start();
    server.route("/known", Reply::status(204));
    server.fallback(Reply::status(429).header("Retry-After", "60"));
    let mut client = Client::connect(&server);
    for path in ["/x.png", "/deep/y.jpg?n=3"] {
        let response = client.get(path);
        assert_eq!(
            (response.status, response.header("retry-after")),
            (429, Some("60"))
        );
    }
    assert_eq!(client.get("/known").status, 204);
}

#[test]
fn stats_count_requests_by_status_and_the_most_in_flight() {
    let server = TestServer::start();
    server.serve_stats("/_stats");
    server.route("/ok", Reply::status(204));
    let slow = Duration::from_millis(500);
    server.route("/slow", Reply::status(503).fault(Fault::Delay(slow)));
    // One connection: its requests follow each other, so never more than one is in flight.
    let mut client = Client::connect(&server);
    for _ in 0..3 {
        assert_eq!(client.get("/ok").status, 204);
    }
    assert_eq!(server.stats().max_in_flight, 1);
    // Three connections at once, each held for half a second by the delay.
    let start = Instant::now();
    let threads: Vec<_> = (0..3)
        .map(|_| {
            let mut client = Client::connect(&server);
            std::thread::spawn(move || client.get("/slow").status)
        })
        .collect();
    for thread in threads {
        assert_eq!(thread.join().unwrap(), 503);
    }
    assert!(
        start.elapsed() < 3 * slow,
        "the delays ran one after another"
    );
    let stats = server.stats();
    assert_eq!((stats.requests, stats.max_in_flight), (6, 3));
    assert_eq!(
        stats.statuses.iter().collect::<Vec<_>>(),
        [(&204, &3), (&503, &3)]
    );
    assert_eq!(stats.arrivals_ms.len(), 6);
    assert!(stats.arrivals_ms.is_sorted());

    // The stats path answers the same counts as JSON, and is not counted itself.
    let response = client.get("/_stats?poll=1");
    assert_eq!(response.header("content-type"), Some("application/json"));
    let json = String::from_utf8(response.body).unwrap();
    // (in_flight is left out: a server thread may still be ending its last response.)
    for part in [
        "{\"requests\":6,",
        ",\"max_in_flight\":3,\"statuses\":{\"204\":3,\"503\":3},\"arrivals_ms\":[",
    ] {
        assert!(json.contains(part), "{part} is not in {json}");
    }
    assert_eq!(server.stats().requests, 6);
    assert_eq!(server.total_hits(), 6);
}
