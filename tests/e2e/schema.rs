//! The schema is a contract with the sqlite3 shell: Debian 12's stock sqlite3 (3.40) loads it, and
//! a bare INSERT makes a runnable job.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::support::{Env, show};

/// The system's sqlite3 shell, or a failure that says how to get it (never a silent skip).
fn sqlite3(db: &std::path::Path, sql: &str) -> std::process::Output {
    let mut child = Command::new("sqlite3")
        .arg(db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("the sqlite3 shell is needed (apt-get install sqlite3): {e}"));
    let script = format!(".bail on\n.timeout 5000\n{sql};\n");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = crate::support::finish(child);
    assert!(out.status.success(), "sqlite3 {sql:?}: {}", show(&out));
    out
}

#[test]
fn the_sqlite3_shell_loads_the_schema_and_a_bare_insert_is_runnable() {
    let env = Env::new("");
    let db = env.path("shell.db");
    // Every migration, in order, as jobd applies them (PostgreSQL's are in a folder of their own).
    let mut files: Vec<_> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    for file in files {
        sqlite3(&db, &std::fs::read_to_string(file).unwrap());
    }
    sqlite3(
        &db,
        "INSERT INTO jobs(url) VALUES ('https://example.org/a.jpg')",
    );
    let out = sqlite3(
        &db,
        "SELECT state, priority, attempts, run_at <= created_at + 1, created_at > 1700000000000 FROM jobs",
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "queued|0|0|1|1"
    );
    let out = sqlite3(&db, "SELECT id, state, created FROM jobs_view");
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("1|queued|20"),
        "{}",
        show(&out)
    );
}

#[test]
fn jobd_and_the_shell_share_a_database() {
    let env = Env::new("");
    env.jobctl_ok(&["stats"]);
    sqlite3(
        &env.path("jobd.db"),
        "INSERT INTO jobs(url) VALUES ('https://example.org/b.png')",
    );
    let out = env.jobctl_ok(&["list"]);
    assert!(
        out.contains("https://example.org/b.png") && out.contains("queued"),
        "{out}"
    );
    // WAL, a version stamp (one per migration), and the database private to its owner.
    let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|e| e == "sql")
        })
        .count()
        .to_string();
    let out = sqlite3(
        &env.path("jobd.db"),
        "PRAGMA journal_mode; PRAGMA user_version;",
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["wal", migrations.as_str()]
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(env.path("jobd.db"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o077,
        0,
        "database mode {mode:o} exposes it to other users"
    );
}
