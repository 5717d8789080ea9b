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

/// Regression (issue 12): the shell's first INSERT failed with "no such table: jobs" until jobd
/// or jobctl had run once, and left an empty jobd.db behind. `jobctl init` makes the database
/// and the blob_dir, says how to add a first job, and the command it prints works. Run again, it
/// changes nothing.
#[test]
fn jobctl_init_prepares_the_database_for_the_shells_first_insert() {
    let env = Env::new("");
    let out = env.jobctl_ok(&["init"]);
    let db = env.path("jobd.db");
    assert!(db.is_file() && env.path("blobs").is_dir(), "{out}");
    assert!(
        out.contains(&format!("database  {} (SQLite, mode 600", db.display())),
        "{out}"
    );
    assert!(
        out.contains(&format!("blobs     {}", env.path("blobs").display())),
        "{out}"
    );
    // The printed shell command, run as printed.
    let shell = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("sqlite3 "))
        .unwrap_or_else(|| panic!("no sqlite3 command: {out}"));
    let ran = Command::new("sh")
        .arg("-c")
        .arg(format!("sqlite3 {shell}"))
        .output()
        .unwrap();
    assert!(ran.status.success(), "{}", show(&ran));
    assert!(out.contains(&format!(
        "jobctl --config {} add https://",
        env.config().display()
    )));
    assert_eq!(
        env.count("SELECT COUNT(*) FROM jobs WHERE state = 'queued'"),
        1
    );
    let again = env.jobctl_ok(&["init"]);
    assert_eq!(again, out);
    assert_eq!(env.count("SELECT COUNT(*) FROM jobs"), 1);
    let json: serde_json::Value =
        serde_json::from_str(&env.jobctl_ok(&["init", "--json"])).unwrap();
    assert_eq!(json["backend"], "sqlite");
    assert_eq!(json["database"], db.display().to_string());
}

/// The database is created private to its owner (0600). An operator who loosens it for a web
/// app in the same group (docs/operations.md: sharing the database) keeps the mode they set: jobd and jobctl
/// never tighten an existing file, and SQLite gives its -wal and -shm files the same mode.
#[test]
fn a_mode_set_on_the_database_is_kept() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new("");
    env.jobctl_ok(&["init"]);
    let db = env.path("jobd.db");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o660)).unwrap();
    // Refused at once, on loopback: jobd opens the database, claims, records.
    env.jobctl_ok(&["add", "http://127.0.0.1:1/a.png"]);
    env.drain(&[]);
    // A connection held open keeps the -wal and -shm files there to look at.
    let conn = env.db();
    let failed: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM jobs WHERE state = 'failed'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(failed, 1);
    for file in ["jobd.db", "jobd.db-wal", "jobd.db-shm"] {
        let mode = std::fs::metadata(env.path(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o660, "{file}");
    }
    drop(conn);
}
