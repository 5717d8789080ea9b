//! Running jobd as an operator does: the metrics endpoint, JSON logs, the cron import script and
//! the systemd unit.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

use jobd_testkit::images;
use jobd_testkit::server::{Reply, TestServer};

use crate::support::{Env, Logged, finish, show, signal, wait_until};

/// A plain HTTP GET over loopback, returning the body.
fn get(addr: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect to the metrics endpoint");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default()
}

#[test]
fn metrics_are_served_on_loopback_and_count_what_happened() {
    let server = TestServer::start();
    server.route("/ok.png", Reply::image(images::png(5, 5, 1), "image/png"));
    server.route("/gone.png", Reply::status(404));
    let env = Env::with_config(
        "workers = 4\n[fetch]\nallow_ips = [\"127.0.0.1/32\"]\n[metrics]\nlisten = \"127.0.0.1:0\"\n",
    );
    env.add(&[server.url("/ok.png"), server.url("/gone.png")]);
    let daemon = Logged::spawn(env.jobd(&[]));
    daemon.wait_for_log("metrics on http://");
    let log = daemon.log();
    let addr = log
        .split("metrics on http://")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    wait_until("both jobs finished", || {
        env.count("SELECT COUNT(*) FROM jobs WHERE state IN ('done', 'failed')") == 2
    });
    let text = get(&addr, "/metrics");
    for line in [
        "jobd_attempts_total{outcome=\"done\",reason=\"none\"} 1",
        "jobd_attempts_total{outcome=\"failed\",reason=\"http_4xx\"} 1",
        "jobd_jobs{state=\"done\"} 1",
        "jobd_jobs{state=\"failed\"} 1",
        "jobd_workers 4",
        "jobd_ttfb_seconds_count 2",
        "jobd_attempt_seconds_count 2",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    assert!(get(&addr, "/").contains("not found"));
    signal(&daemon.child, "TERM");
    let (out, log) = daemon.finish();
    assert!(out.status.success(), "{}\n{log}", show(&out));
}

#[test]
fn metrics_refuse_a_non_loopback_address() {
    let env = Env::with_config("[metrics]\nlisten = \"0.0.0.0:9187\"\n");
    let out = finish(
        env.jobd(&["--drain"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("metrics.listen"),
        "{}",
        show(&out)
    );
}

#[test]
fn json_logs_carry_job_and_host() {
    let server = TestServer::start();
    server.route("/a.png", Reply::image(images::png(5, 5, 2), "image/png"));
    let env = Env::new("");
    env.add(&[server.url("/a.png")]);
    let mut cmd = env.jobd(&["--drain"]);
    cmd.env("JOBD_LOG_FORMAT", "json").env("JOBD_LOG", "info");
    let out = finish(
        cmd.stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    assert!(out.status.success(), "{}", show(&out));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let done = lines
        .iter()
        .find(|v| v["job"] == 1)
        .expect("a line about job 1");
    assert_eq!(done["host"], "127.0.0.1");
    assert_eq!(done["level"], "info");
    assert!(
        done["msg"].as_str().unwrap().starts_with("done in"),
        "{done}"
    );
    assert!(
        lines
            .iter()
            .all(|v| v["ts"].as_str().is_some_and(|t| t.ends_with('Z')))
    );
}

#[test]
fn the_cron_script_run_twice_at_once_imports_each_file_once() {
    let env = Env::new("");
    env.jobctl_ok(&["stats"]);
    let incoming = env.path("incoming");
    std::fs::create_dir(&incoming).unwrap();
    for f in 0..3 {
        let urls: String = (0..500)
            .map(|i| format!("https://example.org/{f}/{i}.jpg\n"))
            .collect();
        std::fs::write(incoming.join(format!("batch-{f}.txt")), urls).unwrap();
    }
    std::fs::write(
        incoming.join("partial.txt.part"),
        "https://example.org/not-yet.jpg\n",
    )
    .unwrap();
    // A jobctl that takes its time, so that the two runs overlap.
    let slow = env.path("slow-jobctl");
    std::fs::write(
        &slow,
        format!(
            "#!/bin/sh\nsleep 0.5\nexec {} \"$@\"\n",
            env!("CARGO_BIN_EXE_jobctl")
        ),
    )
    .unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&slow)
        .status()
        .unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/cron-import.sh");
    let run = || {
        Command::new("bash")
            .arg(script)
            .arg(&incoming)
            .arg("--config")
            .arg(env.config())
            .env("JOBCTL", &slow)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (first, second) = (run(), run());
    let (first, second) = (finish(first), finish(second));
    assert!(
        first.status.success() && second.status.success(),
        "{}\n{}",
        show(&first),
        show(&second)
    );
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&first.stdout),
        String::from_utf8_lossy(&second.stdout)
    );
    assert_eq!(logs.matches("another run holds").count(), 1, "{logs}");
    assert_eq!(logs.matches("added 500, rejected 0").count(), 3, "{logs}");
    assert_eq!(env.count("SELECT COUNT(*) FROM jobs"), 1_500);
    let done = std::fs::read_dir(incoming.join("done")).unwrap().count();
    assert_eq!(done, 3);
    assert!(
        incoming.join("partial.txt.part").exists(),
        "a file still being written was taken"
    );
}

/// Regression (issue 12): a CSV whose header said `priorty` went to done/ with the log line
/// `added 0, rejected 0 (exit 2)`, the reason dropped. A file with rejected lines, in part or
/// whole, goes to failed/, and the log carries jobctl's own words.
#[test]
fn the_cron_script_moves_rejected_files_to_failed_and_says_why() {
    let env = Env::new("");
    env.jobctl_ok(&["stats"]);
    let incoming = env.path("incoming");
    std::fs::create_dir(&incoming).unwrap();
    let files = [
        ("good.txt", "https://example.org/good.jpg\n"),
        ("typo.csv", "url,priorty\nhttps://example.org/typo.jpg,1\n"),
        ("partly.txt", "https://example.org/partly.jpg\nnot a url\n"),
    ];
    for (name, text) in files {
        std::fs::write(incoming.join(name), text).unwrap();
    }
    let out = finish(
        Command::new("bash")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/scripts/cron-import.sh"
            ))
            .arg(&incoming)
            .arg("--config")
            .arg(env.config())
            .env("JOBCTL", env!("CARGO_BIN_EXE_jobctl"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    assert!(out.status.success(), "{}", show(&out));
    let log = String::from_utf8_lossy(&out.stdout);
    let moved_to = |dir: &str| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(incoming.join(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .map(|n| n.split_once('-').map(|(_, name)| name.to_string()).unwrap())
            .collect();
        names.sort();
        names
    };
    assert_eq!(moved_to("done"), ["good.txt"], "{log}");
    assert_eq!(moved_to("failed"), ["partly.txt", "typo.csv"], "{log}");
    let line = |name: &str| {
        log.lines()
            .find(|l| l.contains(&format!(" {name}: ")))
            .unwrap_or_else(|| panic!("no log line for {name}: {log}"))
            .to_string()
    };
    assert!(
        line("good.txt").ends_with("good.txt: added 1, rejected 0"),
        "{log}"
    );
    let typo = line("typo.csv");
    assert!(
        typo.contains("failed (exit 2)") && typo.contains("\"priorty\""),
        "{typo}"
    );
    let partly = line("partly.txt");
    assert!(
        partly.contains("added 1, rejected 1")
            && partly.contains("line 2: ")
            && partly.contains("1 line of")
            && partly.contains("was rejected; the other lines were added"),
        "{partly}"
    );
    assert_eq!(log.lines().count(), 3, "one line per file: {log}");
    assert_eq!(env.count("SELECT COUNT(*) FROM jobs"), 2);
}

/// Regression (issue 12): a second daemon with the same config exited because the metrics
/// port was taken, without saying what to change.
#[test]
fn a_taken_metrics_port_says_what_to_change() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let env = Env::with_config(&format!(
        "[metrics]\nlisten = \"{}\"\n",
        taken.local_addr().unwrap()
    ));
    let out = finish(
        env.jobd(&["--drain"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the port is taken") && stderr.contains("[metrics] listen port"),
        "{stderr}"
    );
}

/// Regression (issue 13): jobd's last line did not say whether its config was at fault (exit 2:
/// fix the file) or the run failed (exit 1: the database, the blob_dir, the metrics port), and
/// the daemon's errors were bare strings. Each cause is printed once, not again as a "source".
#[test]
fn jobd_says_whether_its_config_or_its_run_failed() {
    let run = |env: &Env, args: &[&str]| {
        let out = env.jobd(args).stdin(Stdio::null()).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code(), stderr, show(&out))
    };
    // 2: the config file, a file it names, or --workers overriding it.
    for (env, args, words) in [
        (
            Env::with_config("wrokers = 3\n"),
            &["--drain"][..],
            "wrokers",
        ),
        (
            Env::new(""),
            &["--drain", "--workers", "0"][..],
            "--workers: ",
        ),
        (
            Env::with_config("[fetch]\nca_file = \"no-such-ca.pem\"\n"),
            &["--drain"][..],
            "fetch.ca_file: cannot read ",
        ),
    ] {
        let (code, stderr, shown) = run(&env, args);
        assert_eq!(code, Some(2), "{shown}");
        assert!(
            stderr.contains("bad configuration: ") && stderr.contains(words),
            "{shown}"
        );
        assert!(!stderr.contains("stopped on an error"), "{shown}");
    }
    // 1: a database, or a blob_dir, that cannot be opened (a file stands where a folder must).
    let no_db = Env::new("database = \"jobd.db/inside\"");
    std::fs::write(no_db.path("jobd.db"), "a file, not a folder").unwrap();
    let no_blobs = Env::new("");
    std::fs::write(no_blobs.path("blobs"), "a file, not a folder").unwrap();
    let (code, stderr, shown) = run(&no_db, &["--drain"]);
    assert_eq!(code, Some(1), "{shown}");
    assert!(
        stderr.contains("stopped on an error: ")
            && stderr.contains(&*no_db.path("jobd.db").to_string_lossy()),
        "{shown}"
    );
    let (code, stderr, shown) = run(&no_blobs, &["--drain"]);
    assert_eq!(code, Some(1), "{shown}");
    let blob_dir = no_blobs.path("blobs");
    assert!(
        stderr.contains(&format!(
            "stopped on an error: cannot open blob_dir {}: ",
            blob_dir.display()
        )),
        "{shown}"
    );
    // The cause is printed once, and not again as the error's source.
    assert_eq!(stderr.matches("(os error").count(), 1, "{shown}");
}

#[test]
fn the_systemd_unit_restarts_hardens_and_outwaits_the_grace_period() {
    let unit =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/jobd.service"))
            .unwrap();
    let value = |key: &str| {
        unit.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("jobd.service lacks {key}="))
            .to_string()
    };
    assert_eq!(value("Restart"), "on-failure");
    assert_eq!(value("NoNewPrivileges"), "yes");
    assert_eq!(value("ProtectSystem"), "strict");
    assert_eq!(value("KillSignal"), "SIGTERM");
    let stop: u64 = value("TimeoutStopSec")
        .trim_end_matches('s')
        .parse()
        .unwrap();
    let config = jobd::config::Config::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/daemon.toml"
    )))
    .unwrap();
    assert!(
        stop > config.grace_secs,
        "TimeoutStopSec={stop} does not outwait grace_secs={}",
        config.grace_secs
    );
}
