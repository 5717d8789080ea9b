//! The dashboard in a real browser: Debian's headless Chromium, driven by chromedriver over the
//! W3C WebDriver protocol (plain JSON over loopback HTTP, with ureq). It loads every page, waits
//! for the thumbnails to load and the overview to refresh itself, follows a failure group to its
//! jobs, clicks "Retry these" and sees the jobs queued in the database, then, once jobd has run
//! against the mended host, sees them as images; and it keeps screenshots of the overview, the gallery and a job
//! under `target/tmp/dashboard-screenshots/`. `scripts/check.sh` installs chromium and
//! chromium-driver when they are missing.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use jobd_testkit::images;
use jobd_testkit::server::Reply;

use super::{Serve, seeded};
use crate::support::wait_until;

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// chromedriver and one browser session; both end when dropped.
struct Browser {
    driver: Child,
    agent: ureq::Agent,
    session: String,
    base: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn start() -> Browser {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let driver = Command::new("chromedriver")
            .args([format!("--port={port}"), "--allowed-ips=127.0.0.1".into()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian's chromium-driver; scripts/check.sh installs it)");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .proxy(None)
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let base = format!("http://127.0.0.1:{port}");
        wait_until("chromedriver to answer", || {
            agent
                .get(format!("{base}/status"))
                .call()
                .ok()
                .and_then(|mut r| r.body_mut().read_to_string().ok())
                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                .is_some_and(|v| v["value"]["ready"] == true)
        });
        let profile = tempfile::tempdir().expect("a profile folder");
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,1000",
            &format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut browser = Browser {
            driver,
            agent,
            session: String::new(),
            base,
            _profile: profile,
        };
        let created = browser.call(
            "POST",
            "/session",
            json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args},
            }}}),
        );
        browser.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_string();
        browser
    }

    /// One WebDriver command; its `value`, or a panic with the driver's error.
    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.base);
        let response = match method {
            "GET" => self.agent.get(&url).call(),
            "DELETE" => self.agent.delete(&url).call(),
            _ => self
                .agent
                .post(&url)
                .header("Content-Type", "application/json")
                .send(body.to_string()),
        };
        let mut response = response.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status();
        let text = response
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .expect("WebDriver's answer");
        let value: Value = serde_json::from_str(&text).expect("WebDriver JSON");
        assert!(status.is_success(), "{method} {path}: {status} {value}");
        value["value"].clone()
    }

    fn session_call(&self, method: &str, path: &str, body: Value) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    fn open(&self, url: &str) {
        self.session_call("POST", "/url", json!({ "url": url }));
    }

    fn script(&self, script: &str) -> Value {
        self.session_call(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
    }

    /// The text of the first element matching `css`, if there is one.
    fn text(&self, css: &str) -> Option<String> {
        let found = self.script(&format!(
            "var e = document.querySelector({}); return e ? e.textContent : null;",
            json!(css)
        ));
        found.as_str().map(String::from)
    }

    fn click(&self, css: &str) {
        let element = self.session_call(
            "POST",
            "/element",
            json!({"using": "css selector", "value": css}),
        );
        let id = element[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("{css}: {element}"))
            .to_string();
        self.session_call("POST", &format!("/element/{id}/click"), json!({}));
    }

    fn screenshot(&self, name: &str) -> PathBuf {
        let encoded = self.session_call("GET", "/screenshot", json!(null));
        let bytes = base64_decode(encoded.as_str().expect("base64"));
        assert!(bytes.starts_with(b"\x89PNG"), "a PNG screenshot");
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let url = format!("{}/session/{}", self.base, self.session);
            let _ = self.agent.delete(&url).call();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let clean: Vec<u8> = text
        .bytes()
        .filter(|c| *c != b'=' && !c.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= value(*c) << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

#[test]
fn base64_decodes_as_the_rfc_says() {
    assert_eq!(base64_decode("aGVsbG8="), b"hello");
    assert_eq!(base64_decode("aGk="), b"hi");
    assert_eq!(base64_decode("YWJj"), b"abc");
}

#[test]
fn a_person_finds_the_failures_of_a_host_retries_them_and_sees_the_images() {
    let (env, server, _) = seeded();
    let serve = Serve::start(&env);
    let browser = Browser::start();
    let b = &serve.base;

    // The overview, and its live part refreshing itself when the queue changes.
    browser.open(&format!("{b}/"));
    assert_eq!(browser.text("#count-done").as_deref(), Some("3"));
    assert_eq!(browser.text("#count-failed").as_deref(), Some("3"));
    assert!(browser.text("svg.chart").is_some(), "the throughput chart");
    browser.screenshot("overview");
    env.jobctl_ok(&["add", "http://127.0.0.1:9/new.png"]);
    wait_until("the overview to show the new job without a reload", || {
        browser.text("#count-queued").as_deref() == Some("1")
    });

    // Every page loads, with its content.
    for (path, css, words) in [
        ("/jobs", "#jobs", "teapot.png"),
        ("/hosts", "#hosts", "127.0.0.1:"),
        ("/failures", "#failures", "HTTP 404"),
    ] {
        browser.open(&format!("{b}{path}"));
        let text = browser
            .text(css)
            .unwrap_or_else(|| panic!("{path}: no {css}"));
        assert!(text.contains(words), "{path}: {text}");
    }

    // The gallery: every thumbnail loads (decoded by the browser, so a real image).
    browser.open(&format!("{b}/gallery"));
    wait_until("the thumbnails to load", || {
        browser.script(
            "var i = Array.from(document.querySelectorAll('#gallery img'));
             return i.length === 3 && i.every(function (e) { return e.complete && e.naturalWidth > 0; });",
        ) == json!(true)
    });
    // Real thumbnails, not placeholders: the GIF of 64x48 is not enlarged, the others fit 320.
    let sizes = browser.script(
        "return Array.from(document.querySelectorAll('#gallery img'))
             .map(function (e) { return e.naturalWidth + 'x' + e.naturalHeight; }).sort();",
    );
    assert_eq!(sizes, json!(["320x240", "320x240", "64x48"]));
    browser.screenshot("gallery");

    // A job with its image, as the browser decoded it.
    browser.open(&format!("{b}/jobs/1"));
    wait_until("the job's image to load", || {
        browser.script("var e = document.querySelector('figure img'); return !!e && e.complete && e.naturalWidth;")
            == json!(640)
    });
    assert!(browser.text("#attempts").unwrap().contains("done"));
    browser.screenshot("job");

    // Find the failures of the host with two, retry them, see them queued in the database.
    browser.open(&format!("{b}/failures"));
    let first_row = browser.text("#failures tr:nth-child(2)").unwrap();
    assert!(
        first_row.contains("HTTP 404"),
        "the largest group first: {first_row}"
    );
    // Look at them: the group's count links to its jobs.
    browser.click("#failures tr:nth-child(2) a");
    wait_until("the group's jobs", || {
        browser
            .text("#jobs")
            .is_some_and(|t| t.contains("gone-1.png") && t.contains("gone-2.png"))
    });
    assert!(
        !browser.text("#jobs").unwrap().contains("teapot"),
        "only that host's 404s"
    );
    browser.open(&format!("{b}/failures"));
    browser.click("#failures tr:nth-child(2) button");
    wait_until("the two 404s to be queued", || {
        env.job(4).state == "queued" && env.job(5).state == "queued"
    });
    assert_eq!(env.job(6).state, "failed", "another host's failure stays");
    wait_until("the page to come back after the redirect", || {
        browser.text("h1").as_deref() == Some("Failures")
    });
    browser.screenshot("failures");

    // The retry button on a job's page, the same way.
    browser.open(&format!("{b}/jobs/6"));
    browser.click("form[action='/actions/retry'] button");
    wait_until("job 6 to be queued", || env.job(6).state == "queued");
    wait_until("the job page after the redirect", || {
        browser.text("#state").as_deref() == Some("queued")
    });
    for page in ["jobs", "hosts"] {
        browser.open(&format!("{b}/{page}"));
        browser.screenshot(page);
    }

    // The host has mended its files: jobd runs, and the retried failures turn into images.
    for (path, seed) in [("/gone-1.png", 41), ("/gone-2.png", 42)] {
        server.route(path, Reply::image(images::png(200, 100, seed), "image/png"));
    }
    let out = env.drain(&[]);
    assert!(out.status.success(), "{}", crate::support::show(&out));
    assert_eq!(
        (env.job(4).state.as_str(), env.job(5).state.as_str()),
        ("done", "done")
    );
    browser.open(&format!("{b}/jobs/4"));
    wait_until("job 4's image", || {
        browser.script(
            "var e = document.querySelector('figure img'); return !!e && e.complete && e.naturalWidth;",
        ) == json!(200)
    });
    browser.open(&format!("{b}/gallery"));
    wait_until("five thumbnails in the gallery", || {
        browser.script(
            "var i = Array.from(document.querySelectorAll('#gallery img'));
             return i.length === 5 && i.every(function (e) { return e.complete && e.naturalWidth > 0; });",
        ) == json!(true)
    });
}
