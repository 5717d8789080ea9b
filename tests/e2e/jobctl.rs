//! jobctl through its real binary: output, exit codes, import.

use crate::support::{Env, show};

#[test]
fn add_list_show_stats() {
    let env = Env::new("");
    let ids = env.jobctl_ok(&[
        "add",
        "https://example.org/a.jpg",
        "https://example.org/b.png",
        "--priority",
        "3",
    ]);
    assert_eq!(ids.lines().collect::<Vec<_>>(), ["1", "2"]);
    let list = env.jobctl_ok(&["list", "--state", "queued"]);
    assert!(list.contains("https://example.org/b.png"), "{list}");
    assert_eq!(env.count("SELECT COUNT(*) FROM jobs WHERE priority = 3"), 2);
    let show = env.jobctl_ok(&["show", "2"]);
    assert!(
        show.contains("state: queued") && show.contains("https://example.org/b.png"),
        "{show}"
    );
    let stats = env.jobctl_ok(&["stats"]);
    assert!(
        stats.contains("queued: 2") && stats.contains("done: 0"),
        "{stats}"
    );
}

#[test]
fn errors_have_distinct_exit_codes() {
    let env = Env::new("");
    let missing = env.jobctl(&["show", "999"]);
    assert_eq!(missing.status.code(), Some(3), "{}", show(&missing));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no job with id 999"));

    let bad = env.jobctl(&["add", "https://ok.example/a.png", "ftp://example.org/x"]);
    assert_eq!(bad.status.code(), Some(2), "{}", show(&bad));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("ftp"));
    assert_eq!(
        env.count("SELECT COUNT(*) FROM jobs"),
        0,
        "a rejected add inserted rows"
    );

    let bad_config = Env::with_config("wrokers = 3\n");
    let out = bad_config.jobctl(&["stats"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("wrokers"),
        "{}",
        show(&out)
    );
}

#[test]
fn import_skips_comments_and_reports_bad_lines_by_number() {
    let env = Env::new("");
    let file = env.path("urls.txt");
    let long = format!("https://example.org/{}", "x".repeat(1_000_000));
    std::fs::write(
        &file,
        format!(
            "# a comment\nhttps://example.org/1.jpg\n\n   \nnot a url\nhttps://example.org/2.jpg\r\n{long}\nftp://x/y\nhttps://example.org/3.jpg"
        ),
    )
    .unwrap();
    let out = env.jobctl(&["import", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for words in ["line 5:", "line 7:", "line 8:", "3 lines"] {
        assert!(stderr.contains(words), "stderr lacks {words:?}: {stderr}");
    }
    assert!(String::from_utf8_lossy(&out.stdout).contains("added 3, rejected 3"));
    assert_eq!(env.count("SELECT COUNT(*) FROM jobs"), 3);
    assert_eq!(
        env.count("SELECT COUNT(*) FROM jobs WHERE url = 'https://example.org/2.jpg'"),
        1
    );
}

#[test]
fn import_reads_stdin_in_large_batches() {
    let env = Env::new("");
    let urls: String = (0..25_000)
        .map(|i| format!("https://example.org/{i}.jpg\n"))
        .collect();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_jobctl"))
        .args(["--config", env.config().to_str().unwrap(), "import", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(urls.as_bytes())
        .unwrap();
    let out = crate::support::finish(child);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(env.count("SELECT COUNT(*) FROM jobs"), 25_000);
}

#[test]
fn import_survives_a_two_gigabyte_line_in_bounded_memory() {
    let env = Env::new("");
    // 1 GB of address space: far less than the 2 GB line, so holding it would fail.
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 1000000 && exec \"$0\" --config \"$1\" import -")
        .arg(env!("CARGO_BIN_EXE_jobctl"))
        .arg(env.config())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        stdin.write_all(b"https://example.org/before\n")?;
        let chunk = vec![b'a'; 1 << 20];
        for _ in 0..2048 {
            stdin.write_all(&chunk)?;
        }
        stdin.write_all(b"\nhttps://example.org/after\n")
    });
    let out = crate::support::finish(child);
    writer
        .join()
        .unwrap()
        .expect("jobctl read all of its input");
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 2: line is 2147483648 bytes long"),
        "{stderr}"
    );
    assert_eq!(env.count("SELECT COUNT(*) FROM jobs"), 2);
}
