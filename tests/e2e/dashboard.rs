//! The dashboard (issue 15) as its users meet it: a real `jobctl serve` process over loopback,
//! asked by the real curl (a reference client that sends exactly what it is told, Host and
//! Origin included), and in `browser.rs` by a real headless Chromium over WebDriver.

mod browser;
mod security;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

use jobd_testkit::images;
use jobd_testkit::server::{Reply, TestServer};

use crate::support::{Env, Logged, sha256_hex, show, signal, wait_until};

/// A running `jobctl serve` on a port of its own; killed when dropped.
pub struct Serve {
    child: Child,
    pub base: String,
    pub host: String,
}

impl Serve {
    pub fn start(env: &Env) -> Serve {
        let mut child = Command::new(env!("CARGO_BIN_EXE_jobctl"))
            .arg("--config")
            .arg(env.config())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run jobctl serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("jobctl serve's first line");
        let host = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        Serve {
            child,
            base: format!("http://{host}"),
            host,
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// curl's answer: status, headers (lowercase names) and body.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// POSTs a form to `url` in the session of `cookie`, each field URL-encoded, as a browser does.
pub fn post_form(url: &str, cookie: &str, fields: &[(&str, &str)]) -> Answer {
    let cookie = format!("Cookie: {cookie}");
    let fields: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut args = vec!["-X", "POST", "-H", &cookie];
    for field in &fields {
        args.extend(["--data-urlencode", field]);
    }
    args.push(url);
    curl(&args)
}

/// Runs curl with `args` (and `-s -i`), parsing its answer.
pub fn curl(args: &[&str]) -> Answer {
    let out: Output = Command::new("curl")
        .args(["-s", "-i", "--max-time", "30", "--noproxy", "*"])
        .args(args)
        .output()
        .expect("curl is installed");
    assert!(out.status.success(), "curl {args:?}: {}", show(&out));
    let raw = out.stdout;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

/// A JPEG a real encoder wrote (image's), which decoders decode: testkit's JPEGs carry random
/// entropy-coded data.
fn real_jpeg(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
    });
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(
            &mut std::io::Cursor::new(&mut out),
            image::ImageFormat::Jpeg,
        )
        .expect("encoding a JPEG");
    out
}

/// A queue with stored images (a PNG with alpha, a JPEG, a GIF) and failures on two hosts,
/// made by the real jobd.
pub fn seeded() -> (Env, TestServer, Vec<Vec<u8>>) {
    let server = TestServer::start();
    let other = TestServer::start();
    let bodies = vec![
        images::png(640, 480, 1),
        real_jpeg(800, 600),
        images::gif(64, 48, 3),
    ];
    let urls = [
        server.url("/a.png"),
        server.url("/b.jpg"),
        server.url("/c.gif"),
        server.url("/gone-1.png"),
        server.url("/gone-2.png"),
        other.url("/teapot.png"),
    ];
    for (path, body, mime) in [
        ("/a.png", &bodies[0], "image/png"),
        ("/b.jpg", &bodies[1], "image/jpeg"),
        ("/c.gif", &bodies[2], "image/gif"),
    ] {
        server.route(path, Reply::image(body.clone(), mime));
    }
    server.fallback(Reply::status(404));
    other.fallback(Reply::status(418));
    let env = Env::new("");
    env.add(&urls);
    let out = env.drain(&[]);
    assert!(out.status.success(), "{}", show(&out));
    (env, server, bodies)
}

pub fn set_cookie(answer: &Answer) -> String {
    answer
        .header("set-cookie")
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_string()
}

/// The CSRF token of the first form on a page.
pub fn csrf_of(page: &str) -> String {
    page.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a form with a CSRF token")
        .to_string()
}

#[test]
fn every_page_answers_with_its_content_and_the_security_headers() {
    let (env, _server, bodies) = seeded();
    let serve = Serve::start(&env);
    let b = &serve.base;
    let failed: Vec<i64> = (4..=6).collect();
    for (path, words) in [
        (
            "/",
            vec![
                "id=\"count-done\">3<",
                "id=\"count-failed\">3<",
                "Throughput",
                "p50 / p95",
                "Daemons (0)",
            ],
        ),
        (
            "/jobs",
            vec!["<table id=\"jobs\">", "/a.png", "HTTP 404", "Retry all"],
        ),
        (
            "/jobs?state=failed&host=127.0.0.1&error=418",
            vec!["teapot.png", "HTTP 418"],
        ),
        (
            "/jobs/1",
            vec![
                "image/png",
                "640 × 480",
                &sha256_hex(&bodies[0]),
                "<ol class=\"timeline\"",
            ],
        ),
        (
            "/failures",
            vec![
                "<table id=\"failures\">",
                "HTTP 404",
                "Retry these",
                ">2</a>",
            ],
        ),
        ("/hosts", vec!["<table id=\"hosts\">"]),
        (
            "/gallery",
            vec![
                "<div class=\"grid\" id=\"gallery\">",
                "image/jpeg",
                "image/gif",
            ],
        ),
        ("/gallery?type=image/gif", vec!["image/gif"]),
    ] {
        let a = curl(&[&format!("{b}{path}")]);
        assert_eq!(a.status, 200, "{path}: {}", a.text());
        let page = a.text();
        for w in words {
            assert!(page.contains(w), "{path} lacks {w:?}:\n{page}");
        }
        assert!(
            a.header("content-security-policy")
                .unwrap()
                .contains("default-src 'none'")
        );
        assert_eq!(a.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(a.header("referrer-policy"), Some("no-referrer"));
    }
    let jobs = curl(&[&format!("{b}/jobs?state=failed")]).text();
    for id in &failed {
        assert!(jobs.contains(&format!("href=\"/jobs/{id}\"")), "{jobs}");
    }
    assert!(
        !curl(&[&format!("{b}/gallery?type=image/gif")])
            .text()
            .contains("image/jpeg ·")
    );
    assert_eq!(curl(&[&format!("{b}/jobs/999")]).status, 404);
    assert_eq!(curl(&[&format!("{b}/nothing")]).status, 404);

    // Images by their recorded sha256 only, as their detected type.
    for (body, mime) in bodies.iter().zip(["image/png", "image/jpeg", "image/gif"]) {
        let a = curl(&[&format!("{b}/blobs/{}", sha256_hex(body))]);
        assert_eq!((a.status, a.header("content-type")), (200, Some(mime)));
        assert_eq!(&a.body, body);
        let t = curl(&[&format!("{b}/thumbs/{}", sha256_hex(body))]);
        assert_eq!(t.status, 200);
        assert_eq!(t.header("x-thumbnail"), Some("image"));
        let thumb = image::load_from_memory(&t.body).expect("a thumbnail that decodes");
        assert!(thumb.width() <= 320 && thumb.height() <= 320);
    }
    let png =
        image::load_from_memory(&curl(&[&format!("{b}/thumbs/{}", sha256_hex(&bodies[0]))]).body)
            .unwrap();
    assert_eq!((png.width(), png.height()), (320, 240));
    let cached = env.path("blobs/.thumbs");
    assert_eq!(
        crate::support::files_under(&cached).len(),
        3,
        "one cached thumbnail each"
    );
    for path in [
        "/blobs/../daemon.toml".to_string(),
        "/blobs/%2e%2e%2fdaemon.toml".into(),
        format!("/blobs/{}", "0".repeat(64)),
        format!("/blobs/{}", sha256_hex(&bodies[0]).to_uppercase()),
        format!("/thumbs/{}", "0".repeat(64)),
    ] {
        let a = curl(&["--path-as-is", &format!("{b}{path}")]);
        assert_eq!(a.status, 404, "{path}");
    }
}

#[test]
fn jobctl_daemons_and_the_overview_list_a_running_daemon_until_it_stops() {
    let env = Env::new("");
    env.jobctl_ok(&["init"]);
    let mut jobd = Logged::spawn(env.jobd(&[]));
    let pid = jobd.child.id();
    let listed = || -> serde_json::Value {
        serde_json::from_str(&env.jobctl_ok(&["daemons", "--json"])).unwrap()
    };
    wait_until("the daemon's heartbeat", || {
        listed()["daemons"].as_array().is_some_and(|d| d.len() == 1)
    });
    let d = &listed()["daemons"][0];
    assert_eq!(d["pid"], pid);
    assert_eq!(d["workers"], 4);
    assert_eq!(d["version"], env!("CARGO_PKG_VERSION"));
    assert!(env.jobctl_ok(&["daemons"]).contains(&format!(":{pid}")));
    let serve = Serve::start(&env);
    let page = curl(&[&format!("{}/", serve.base)]).text();
    assert!(
        page.contains("Daemons (1)") && page.contains(&format!(":{pid}</td>")),
        "{page}"
    );
    signal(&jobd.child, "TERM");
    let _ = jobd.child.wait();
    assert!(
        listed()["daemons"].as_array().unwrap().is_empty(),
        "a clean stop removes its row"
    );
}
