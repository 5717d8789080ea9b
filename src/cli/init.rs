//! `jobctl init`: makes what the config names (the database with its tables, the blob_dir) and
//! says where they are and how to add a first job. The sqlite3 shell cannot create the tables,
//! so its first INSERT needs this (or a first run of jobd). Harmless on an existing setup:
//! migrations apply once, folders that exist stay as they are.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::json;

use super::{Error, print_json};
use crate::blobs::BlobStore;
use crate::config::Config;
use crate::store::Database;

/// The URL the printed examples add.
const EXAMPLE_URL: &str =
    "https://upload.wikimedia.org/wikipedia/commons/4/47/PNG_transparency_demonstration_1.png";

/// Runs once the database is open (made and migrated, as jobctl opens it for every command).
/// `config_arg` is the `--config` given, if any, so that the printed commands find the same
/// config.
pub fn run(config: &Config, config_arg: Option<&Path>, as_json: bool) -> Result<(), Error> {
    BlobStore::open(&config.blob_dir).map_err(|e| {
        Error::Failed(format!(
            "cannot make blob_dir {}: {e}",
            config.blob_dir.display()
        ))
    })?;
    let (backend, mode) = match &config.database {
        Database::Sqlite(path) => {
            let mode = std::fs::metadata(path)
                .map(|m| m.permissions().mode() & 0o777)
                .map_err(|e| Error::Failed(format!("cannot read {}: {e}", path.display())))?;
            ("sqlite", Some(mode))
        }
        Database::Postgres(_) => ("postgres", None),
    };
    if as_json {
        print_json(&json!({
            "backend": backend,
            "database": config.database.to_string(),
            "blob_dir": config.blob_dir.display().to_string(),
        }));
        return Ok(());
    }
    let insert = format!("INSERT INTO jobs(url) VALUES ('{EXAMPLE_URL}')");
    match (&config.database, mode) {
        (Database::Sqlite(path), Some(mode)) => {
            let who = if mode & 0o077 == 0 {
                "only its owner can read and write it; see docs/operations.md to share it"
            } else {
                "open beyond its owner"
            };
            println!(
                "database  {} (SQLite, mode {mode:o}: {who})",
                path.display()
            );
        }
        _ => println!("database  {} (PostgreSQL)", config.database),
    }
    println!("blobs     {}", config.blob_dir.display());
    println!("Ready. Add a first job with the database's shell or with jobctl:");
    match &config.database {
        Database::Sqlite(path) => println!(
            "  sqlite3 {} \".timeout 5000\" \"{insert}\"",
            quote(&path.display().to_string())
        ),
        Database::Postgres(_) => println!(
            "  psql {} -c \"{insert}\"",
            quote(&config.database.to_string())
        ),
    }
    let config_flag = config_arg.map_or(String::new(), |p| {
        format!("--config {} ", quote(&p.display().to_string()))
    });
    println!("  jobctl {config_flag}add {EXAMPLE_URL}");
    println!(
        "A running jobd picks it up within moments; `jobctl {config_flag}list` shows how it went."
    );
    Ok(())
}

/// A word for a POSIX shell: as it is when it holds nothing the shell would read, else quoted.
fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-:+@=,%".contains(&b));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn shell_words_are_quoted_only_when_needed() {
        assert_eq!(quote("/srv/jobd/jobd.db"), "/srv/jobd/jobd.db");
        assert_eq!(quote("/my data/jobd.db"), "'/my data/jobd.db'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }
}
