//! The configuration file (`daemon.toml`): serde structs, documented defaults, validation.
//!
//! Every key has a default, so an empty file is a valid config. Unknown keys are errors that name
//! the key (serde's `deny_unknown_fields`), because a typo that silently falls back to a default is
//! worse than a refusal to start. Relative paths resolve against the config file's folder.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::guard::AllowList;
use crate::store::Database;

/// The environment variable that names the config file when `--config` is not given.
pub const CONFIG_ENV: &str = "JOBD_CONFIG";
/// The environment variable that, when set, names the database instead of the config file's
/// `database` key (a path relative to the working folder, or a PostgreSQL URL).
pub const DATABASE_ENV: &str = "JOBD_DATABASE";
/// The config file used when neither `--config` nor `JOBD_CONFIG` is given.
pub const DEFAULT_CONFIG: &str = "daemon.toml";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The queue: an SQLite file (created, with its tables, on first use) or a PostgreSQL URL.
    #[serde(deserialize_with = "database")]
    pub database: Database,
    /// Where blobs are stored, as `ab/<sha256>.<ext>`.
    pub blob_dir: PathBuf,
    /// Worker threads, each downloading one job at a time.
    pub workers: usize,
    /// How long a claim is held before another daemon may take the job back. The daemon renews
    /// the leases of its jobs in flight every third of it, so only a dead daemon's jobs expire.
    pub lease_secs: u64,
    /// How often the daemon looks for rows written by other processes.
    pub poll_interval_ms: u64,
    /// On SIGTERM/SIGINT, how long jobs in flight may take to finish before they are put back.
    pub grace_secs: u64,
    /// Finished jobs (done, failed, cancelled) older than this many days are deleted with their
    /// attempts, hourly. Blobs stay. 0 keeps everything.
    pub retention_days: u64,
    pub fetch: FetchConfig,
    pub retry: RetryConfig,
    pub ui: UiConfig,
    pub metrics: MetricsConfig,
}

/// The dashboard, `jobctl serve`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UiConfig {
    /// Where `jobctl serve` listens unless `--listen` says otherwise.
    pub listen: std::net::SocketAddr,
    /// The token a browser logs in with (or a script sends as `Authorization: Bearer`). Required
    /// for an address other than loopback; unset, loopback needs no login.
    pub token: Option<String>,
    /// Host names the dashboard answers to besides its address (and `localhost` on loopback),
    /// e.g. the name a proxy forwards: any other `Host` header is refused (DNS rebinding).
    pub allowed_hosts: Vec<String>,
    /// The most disk the thumbnail cache (`blob_dir/.thumbs`) takes, in MiB; the oldest go first.
    pub thumbnail_cache_mb: u64,
}

impl Default for UiConfig {
    fn default() -> Self {
        UiConfig {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 8787)),
            token: None,
            allowed_hosts: Vec::new(),
            thumbnail_cache_mb: 256,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Where to serve Prometheus metrics (`/metrics`), e.g. "127.0.0.1:9187"; off when unset.
    /// Only loopback addresses are accepted: the figures include URLs' error counts and hosts'
    /// behaviour, which are nobody else's business.
    pub listen: Option<std::net::SocketAddr>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FetchConfig {
    /// Deadline for a whole attempt: connect, redirects, headers and body.
    pub timeout_secs: u64,
    /// Deadline for opening a TCP (and TLS) connection.
    pub connect_timeout_secs: u64,
    /// Largest body accepted, counted while streaming, with or without Content-Length.
    pub max_bytes: u64,
    /// Redirects followed before the job fails.
    pub max_redirects: u32,
    pub user_agent: String,
    /// Images whose header claims more pixels than this fail, so that a downstream decoder is
    /// never handed a decompression bomb.
    pub max_pixels: u64,
    /// Frames of an animation, pages of a multi-page TIFF, images in an icon: more fail.
    pub max_frames: u32,
    /// How far a body is proved to be an image before it is stored: `structure` (every format's
    /// container walked to its end, as the bytes stream past) or `decode` (every pixel decoded
    /// too, by memory-safe decoders; formats without one are stored at `structure`, with a note).
    pub validate: crate::validate::Level,
    /// Requests to one host (name and port) at the same time, from this daemon.
    pub max_per_host: usize,
    /// Requests per second that one host may be sent, from this daemon (a Crawl-delay); 0: no
    /// ceiling.
    pub max_rate_per_host: f64,
    /// Bodies of at least this many bytes, from a server that offers ranges, may be split: idle
    /// workers fetch the rest in ranges, within `max_per_host`; 0: never split.
    pub split_min_bytes: u64,
    /// CIDRs exempt from the address guard, e.g. `["127.0.0.1/32"]` for local tests.
    pub allow_ips: Vec<String>,
    /// Turns the address guard off entirely. Anyone who can insert a row can then make jobd
    /// fetch from your private network (cloud metadata, admin panels, databases).
    pub allow_private: bool,
    /// A PEM file of extra CA certificates (one or more) for servers behind a private PKI. They
    /// are trusted in addition to the built-in Mozilla roots. Certificates are always verified.
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Attempts per job, the first included; a job's own `max_attempts` column overrides it.
    pub max_attempts: u32,
    /// Backoff before the second attempt; it doubles with each further attempt, with jitter.
    pub base_delay_ms: u64,
    /// Backoff never exceeds this.
    pub max_delay_ms: u64,
}

/// `database` as written; relative SQLite paths are resolved in [`Config::parse`].
fn database<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Database, D::Error> {
    let value = String::deserialize(d)?;
    if value.is_empty() {
        return Err(serde::de::Error::custom(
            "must name an SQLite file or a postgres:// URL",
        ));
    }
    Ok(Database::parse(&value, Path::new("")))
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database: Database::Sqlite(PathBuf::from("jobd.db")),
            blob_dir: PathBuf::from("blobs"),
            workers: 10,
            lease_secs: 60,
            poll_interval_ms: 20,
            grace_secs: 10,
            retention_days: 0,
            fetch: FetchConfig::default(),
            retry: RetryConfig::default(),
            ui: UiConfig::default(),
            metrics: MetricsConfig::default(),
        }
    }
}

impl Default for FetchConfig {
    fn default() -> Self {
        FetchConfig {
            timeout_secs: 120,
            connect_timeout_secs: 10,
            max_bytes: 50 * 1024 * 1024,
            max_redirects: 5,
            user_agent: concat!("jobd/", env!("CARGO_PKG_VERSION"), " (image downloader)").into(),
            max_pixels: 100_000_000,
            max_frames: 1_000,
            validate: crate::validate::Level::Structure,
            max_per_host: 16,
            max_rate_per_host: 0.0,
            split_min_bytes: 1024 * 1024,
            allow_ips: Vec::new(),
            allow_private: false,
            ca_file: None,
        }
    }
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: 5,
            base_delay_ms: 1_000,
            max_delay_ms: 10 * 60 * 1_000,
        }
    }
}

/// A config that could not be read or is not valid; the message names the file and the key.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// The config file to use: the explicit path, else `$JOBD_CONFIG`, else `./daemon.toml`.
    pub fn locate(explicit: Option<&Path>) -> PathBuf {
        match explicit {
            Some(path) => path.to_path_buf(),
            None => std::env::var_os(CONFIG_ENV)
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG)),
        }
    }

    /// Reads, parses and validates a config file, resolving relative paths against its folder.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read config {}: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut config = Config::parse(&text, base)
            .map_err(|ConfigError(msg)| ConfigError(format!("{}: {msg}", path.display())))?;
        if let Some(value) = std::env::var_os(DATABASE_ENV) {
            let value = value.to_str().ok_or_else(|| {
                ConfigError(format!("{DATABASE_ENV} is not valid UTF-8: {value:?}"))
            })?;
            config.database = Database::parse(value, Path::new(""));
        }
        Ok(config)
    }

    /// Parses and validates config text; relative paths resolve against `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text)
            .map_err(|e| misplaced_key(text).unwrap_or_else(|| ConfigError(e.to_string())))?;
        if let Database::Sqlite(path) = &config.database {
            config.database = Database::Sqlite(resolve(base, path));
        }
        config.blob_dir = resolve(base, &config.blob_dir);
        config.fetch.ca_file = config.fetch.ca_file.map(|p| resolve(base, &p));
        config.validate()?;
        Ok(config)
    }

    /// Checks the values that serde's types cannot; each error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| Err(ConfigError(format!("{key}: {why}")));
        if self.workers == 0 || self.workers > 1024 {
            return bad("workers", "must be between 1 and 1024");
        }
        if self.poll_interval_ms == 0 || self.poll_interval_ms > 60_000 {
            return bad("poll_interval_ms", "must be between 1 and 60000");
        }
        if self.fetch.timeout_secs == 0 {
            return bad("fetch.timeout_secs", "must be at least 1");
        }
        if self.fetch.connect_timeout_secs == 0 {
            return bad("fetch.connect_timeout_secs", "must be at least 1");
        }
        if self.lease_secs < 3 {
            return bad(
                "lease_secs",
                "must be at least 3 (leases are renewed every third of it)",
            );
        }
        if self.fetch.max_pixels == 0 {
            return bad("fetch.max_pixels", "must be at least 1");
        }
        if self.fetch.max_frames == 0 {
            return bad("fetch.max_frames", "must be at least 1");
        }
        if self.fetch.max_per_host == 0 {
            return bad("fetch.max_per_host", "must be at least 1");
        }
        if !(self.fetch.max_rate_per_host.is_finite() && self.fetch.max_rate_per_host >= 0.0) {
            return bad(
                "fetch.max_rate_per_host",
                "must be a number of requests per second, 0 for no ceiling",
            );
        }
        if self.fetch.max_bytes == 0 {
            return bad("fetch.max_bytes", "must be at least 1");
        }
        if self.fetch.user_agent.trim().is_empty() {
            return bad(
                "fetch.user_agent",
                "must not be empty (many sites refuse anonymous clients)",
            );
        }
        if let Err(e) = AllowList::parse(&self.fetch.allow_ips) {
            return bad("fetch.allow_ips", &e);
        }
        if let Some(Err(e)) = self
            .fetch
            .ca_file
            .as_deref()
            .map(crate::roots::load_ca_file)
        {
            return bad("fetch.ca_file", &e.to_string());
        }
        if self.metrics.listen.is_some_and(|a| !a.ip().is_loopback()) {
            return bad(
                "metrics.listen",
                "must be a loopback address such as 127.0.0.1:9187 (put a proxy in front to publish it)",
            );
        }
        if self.ui.token.as_ref().is_some_and(|t| t.trim().len() < 16) {
            return bad(
                "ui.token",
                "must be at least 16 characters (try: head -c 24 /dev/urandom | base64)",
            );
        }
        if self.retry.max_attempts == 0 {
            return bad("retry.max_attempts", "must be at least 1");
        }
        if self.retry.base_delay_ms > self.retry.max_delay_ms {
            return bad("retry.base_delay_ms", "must not exceed retry.max_delay_ms");
        }
        Ok(())
    }

    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_secs)
    }

    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }

    pub fn grace(&self) -> Duration {
        Duration::from_secs(self.grace_secs)
    }

    /// How long finished jobs are kept, if not forever.
    pub fn retention(&self) -> Option<Duration> {
        (self.retention_days > 0).then(|| Duration::from_secs(self.retention_days * 86_400))
    }
}

/// The keys of each table ("" is the top of the file), to tell a key written under the wrong
/// one. A unit test holds this list to the structs above.
const SECTIONS: &[(&str, &[&str])] = &[
    (
        "",
        &[
            "database",
            "blob_dir",
            "workers",
            "lease_secs",
            "poll_interval_ms",
            "grace_secs",
            "retention_days",
        ],
    ),
    (
        "fetch",
        &[
            "timeout_secs",
            "connect_timeout_secs",
            "max_bytes",
            "max_redirects",
            "user_agent",
            "max_pixels",
            "max_frames",
            "validate",
            "max_per_host",
            "max_rate_per_host",
            "split_min_bytes",
            "allow_ips",
            "allow_private",
            "ca_file",
        ],
    ),
    ("retry", &["max_attempts", "base_delay_ms", "max_delay_ms"]),
    ("metrics", &["listen"]),
    (
        "ui",
        &["listen", "token", "allowed_hosts", "thumbnail_cache_mb"],
    ),
];

/// A key that belongs to another table than the one it is in: TOML puts every key after a
/// `[section]` line into that section, so a line appended to the file lands in its last one.
/// serde can only say "unknown field"; this says where the key goes.
fn misplaced_key(text: &str) -> Option<ConfigError> {
    let table: toml::Table = toml::from_str(text).ok()?;
    let home_of = |key: &str| {
        SECTIONS
            .iter()
            .find(|(_, keys)| keys.contains(&key))
            .map(|(section, _)| *section)
    };
    let place = |section: &str| {
        if section.is_empty() {
            "at the top of the file, before any [section] line".to_string()
        } else {
            format!("under [{section}]")
        }
    };
    let misplaced = |key: &str, section: &str| {
        // A key that two sections have (`listen`) is at home in either.
        let belongs = SECTIONS
            .iter()
            .any(|(s, keys)| *s == section && keys.contains(&key));
        if belongs {
            return None;
        }
        let home = home_of(key)?;
        let path = if section.is_empty() {
            key.to_string()
        } else {
            format!("{section}.{key}")
        };
        Some(ConfigError(format!(
            "{path}: unknown key here; {key} belongs {} (every key after a [section] line \
             belongs to that section: move it there)",
            place(home)
        )))
    };
    for (key, value) in &table {
        match value {
            toml::Value::Table(inner) if SECTIONS.iter().any(|(s, _)| s == key) => {
                if let Some(e) = inner.keys().find_map(|k| misplaced(k, key)) {
                    return Some(e);
                }
            }
            _ => {
                if let Some(e) = misplaced(key, "") {
                    return Some(e);
                }
            }
        }
    }
    None
}

fn resolve(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_the_defaults() {
        let config = Config::parse("", Path::new("/etc/jobd")).unwrap();
        assert_eq!(config.workers, 10);
        assert_eq!(
            config.database,
            Database::Sqlite("/etc/jobd/jobd.db".into())
        );
        assert_eq!(config.blob_dir, Path::new("/etc/jobd/blobs"));
        assert_eq!(config.fetch.max_bytes, 50 * 1024 * 1024);
        assert_eq!(config.fetch.max_redirects, 5);
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::parse("wokers = 3", Path::new(".")).unwrap_err();
        assert!(err.0.contains("wokers"), "{err}");
        let err = Config::parse("[fetch]\ntimeout = 3", Path::new(".")).unwrap_err();
        assert!(err.0.contains("timeout"), "{err}");
    }

    /// Regression (issue 12): `allow_ips = [...]` appended to the shipped daemon.toml lands in
    /// its last section, [metrics], and the error said only "unknown field `allow_ips`,
    /// expected `listen`".
    #[test]
    fn a_key_under_another_section_names_its_section() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("daemon.toml");
        let shipped = std::fs::read_to_string(path).unwrap();
        let appended = format!("{shipped}\nallow_ips = [\"127.0.0.1/32\"]\n");
        let err = Config::parse(&appended, Path::new(".")).unwrap_err();
        assert!(
            err.0.starts_with("metrics.allow_ips: ")
                && err.0.contains("allow_ips belongs under [fetch]"),
            "{err}"
        );
        for (text, words) in [
            (
                "[retry]\nworkers = 2",
                "workers belongs at the top of the file",
            ),
            ("max_attempts = 2", "max_attempts belongs under [retry]"),
            (
                "[fetch]\nlisten = \"127.0.0.1:9\"",
                "listen belongs under [metrics]",
            ),
        ] {
            let err = Config::parse(text, Path::new(".")).unwrap_err();
            assert!(err.0.contains(words), "{text:?} gave {err}");
        }
        // A key unknown everywhere keeps serde's words, which list the keys of its section.
        let err = Config::parse("[fetch]\nallow_ip = []", Path::new(".")).unwrap_err();
        assert!(err.0.contains("unknown field `allow_ip`"), "{err}");
    }

    /// Regression (issue 12): `localhost` resolves to both 127.0.0.1 and ::1 where /etc/hosts
    /// says so (Debian's default), and a host with any forbidden address is refused, so the
    /// documented `allow_ips = ["127.0.0.1/32"]` refused `http://localhost/`. Every example in
    /// the docs and daemon.toml covers both.
    #[test]
    fn the_documented_allow_ips_examples_cover_both_localhost_addresses() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = vec!["README.md".to_string(), "daemon.toml".to_string()];
        for entry in std::fs::read_dir(root.join("docs")).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if name.ends_with(".md") {
                files.push(format!("docs/{name}"));
            }
        }
        let mut examples = 0;
        for file in &files {
            let text = std::fs::read_to_string(root.join(file)).unwrap();
            for line in text.lines().filter(|l| l.contains("allow_ips = [\"")) {
                let at = line.find("allow_ips").unwrap();
                let end = line[at..].find(']').map(|i| at + i + 1).unwrap();
                let table: toml::Table = toml::from_str(&line[at..end]).unwrap();
                let list: Vec<String> = table["allow_ips"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_string())
                    .collect();
                let allow = AllowList::parse(&list).unwrap();
                for ip in ["127.0.0.1", "::1"] {
                    assert!(
                        allow.contains(ip.parse().unwrap()),
                        "{file}: {line:?} refuses {ip}, which localhost may resolve to"
                    );
                }
                examples += 1;
            }
        }
        assert!(examples >= 2, "no allow_ips example found");
    }

    /// SECTIONS lists exactly the keys serde accepts in each table.
    #[test]
    fn the_section_table_matches_the_structs() {
        for (section, keys) in SECTIONS {
            let text = if section.is_empty() {
                "no_such_key = 1".to_string()
            } else {
                format!("[{section}]\nno_such_key = 1")
            };
            let err = Config::parse(&text, Path::new(".")).unwrap_err().0;
            let expected = err.split("expected").nth(1).unwrap_or("");
            let mut accepted: Vec<&str> = expected
                .split('`')
                .skip(1)
                .step_by(2)
                .filter(|k| !SECTIONS.iter().any(|(s, _)| s == k))
                .collect();
            accepted.sort_unstable();
            let mut listed = keys.to_vec();
            listed.sort_unstable();
            assert_eq!(accepted, listed, "[{section}]: {err}");
        }
    }

    #[test]
    fn absolute_paths_stay_put() {
        let config = Config::parse("database = \"/var/lib/jobd/q.db\"", Path::new("/etc")).unwrap();
        assert_eq!(
            config.database,
            Database::Sqlite("/var/lib/jobd/q.db".into())
        );
    }

    #[test]
    fn invalid_values_name_their_key() {
        for (text, key) in [
            ("workers = 0", "workers"),
            ("lease_secs = 2", "lease_secs"),
            ("[fetch]\nallow_ips = [\"nonsense\"]", "fetch.allow_ips"),
            ("[retry]\nmax_attempts = 0", "retry.max_attempts"),
            (
                "[retry]\nbase_delay_ms = 10\nmax_delay_ms = 5",
                "retry.base_delay_ms",
            ),
        ] {
            let err = Config::parse(text, Path::new(".")).unwrap_err();
            assert!(err.0.starts_with(key), "{text:?} gave {err}");
        }
    }

    #[test]
    fn ca_file_resolves_against_the_config_folder_and_must_hold_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let missing = Config::parse("[fetch]\nca_file = \"ca.pem\"", dir.path()).unwrap_err();
        assert!(
            missing.0.starts_with("fetch.ca_file: cannot read"),
            "{missing}"
        );
        assert!(
            missing
                .0
                .contains(&*dir.path().join("ca.pem").to_string_lossy())
        );
        for (text, words) in [
            ("not PEM at all", "holds no PEM certificate"),
            (
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                "certificate 1 cannot be used (BadEncoding)",
            ),
        ] {
            std::fs::write(dir.path().join("ca.pem"), text).unwrap();
            let err = Config::parse("[fetch]\nca_file = \"ca.pem\"", dir.path()).unwrap_err();
            assert!(err.0.starts_with("fetch.ca_file: "), "{err}");
            assert!(err.0.contains(words), "{text:?} gave {err}");
        }
    }

    fn read_repo_file(name: &str) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// A key documented in daemon.toml or docs/configuration.md, under its section ("" is the
    /// top of the file, as in SECTIONS).
    type Documented = std::collections::BTreeSet<(String, String)>;

    /// The keys of SECTIONS, which `the_section_table_matches_the_structs` holds to the structs.
    fn keys_of_the_structs() -> Documented {
        SECTIONS
            .iter()
            .flat_map(|(section, keys)| keys.iter().map(|k| (section.to_string(), k.to_string())))
            .collect()
    }

    /// daemon.toml's keys with their values, and whether each is commented out: a key it sets
    /// (`key = value`), or one it shows as `# key = value`, because it is unset by default or its
    /// default cannot be written down (the user agent names the version).
    fn daemon_toml_entries() -> Vec<(String, String, toml::Value, bool)> {
        let text = read_repo_file("daemon.toml");
        let mut section = String::new();
        let mut entries = Vec::new();
        for line in text.lines().map(str::trim) {
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name.to_string();
                continue;
            }
            let (commented, entry) = match line.strip_prefix("# ") {
                Some(rest) => (true, rest),
                None => (false, line),
            };
            let Some((key, _)) = entry.split_once(" = ") else {
                continue;
            };
            if key.is_empty() || !key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
                continue;
            }
            let table: toml::Table = match toml::from_str(entry) {
                Ok(table) => table,
                Err(_) if commented => continue,
                Err(e) => panic!("daemon.toml: {line:?}: {e}"),
            };
            entries.push((
                section.clone(),
                key.to_string(),
                table[key].clone(),
                commented,
            ));
        }
        entries
    }

    /// daemon.toml parses, every value it sets is the default, and it documents every key of the
    /// structs, each once: set, or commented out with its default (`# key = value`).
    #[test]
    fn the_repos_daemon_toml_documents_every_key_at_its_default() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("daemon.toml");
        let text = read_repo_file("daemon.toml");
        Config::load(&path).unwrap();
        let base = Path::new("/srv/jobd");
        assert_eq!(
            format!("{:?}", Config::parse(&text, base).unwrap()),
            format!("{:?}", Config::parse("", base).unwrap()),
            "daemon.toml sets a value that is not the default"
        );

        let entries = daemon_toml_entries();
        let documented: Documented = entries
            .iter()
            .map(|(section, key, _, _)| (section.clone(), key.clone()))
            .collect();
        assert_eq!(
            documented.len(),
            entries.len(),
            "a key twice in daemon.toml"
        );
        assert_eq!(
            documented,
            keys_of_the_structs(),
            "daemon.toml's keys (set or `# key = value`) against the structs' (SECTIONS)"
        );

        // The keys it sets are those TOML reads: no value spans lines, or hides from the scan.
        let table: toml::Table = toml::from_str(&text).unwrap();
        let mut set = Documented::new();
        for (key, value) in &table {
            match value {
                toml::Value::Table(inner) => {
                    set.extend(inner.keys().map(|k| (key.clone(), k.clone())));
                }
                _ => {
                    set.insert((String::new(), key.clone()));
                }
            }
        }
        let scanned: Documented = entries
            .iter()
            .filter(|e| !e.3)
            .map(|(section, key, _, _)| (section.clone(), key.clone()))
            .collect();
        assert_eq!(scanned, set);

        // The user agent's default, spelt with `<version>`, is the one the code sends.
        let agent = entries.iter().find(|e| e.1 == "user_agent").unwrap();
        assert!(
            agent.3,
            "daemon.toml pins user_agent, and its version would go stale"
        );
        assert_eq!(
            agent
                .2
                .as_str()
                .unwrap()
                .replace("<version>", env!("CARGO_PKG_VERSION")),
            FetchConfig::default().user_agent
        );
    }

    /// docs/configuration.md has a table row for every key daemon.toml documents, under its
    /// section's heading (`## Top level`, ``## `[fetch]` ``, ...), with its default, and no row
    /// for a key daemon.toml lacks. A row's first cell is the key in backticks, its second the
    /// default as TOML in backticks, or "unset".
    #[test]
    fn the_configuration_doc_matches_daemon_toml() {
        let doc = read_repo_file("docs/configuration.md");
        let mut section: Option<String> = None;
        let mut rows = Vec::new();
        for (n, line) in doc.lines().enumerate() {
            if let Some(heading) = line.strip_prefix("## ") {
                section = if heading == "Top level" {
                    Some(String::new())
                } else {
                    heading
                        .strip_prefix("`[")
                        .and_then(|h| h.strip_suffix("]`"))
                        .map(str::to_string)
                };
                continue;
            }
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let Some(key) = cells
                .get(1)
                .and_then(|c| c.strip_prefix('`'))
                .and_then(|c| c.strip_suffix('`'))
            else {
                continue;
            };
            let section = section.clone().unwrap_or_else(|| {
                panic!("docs/configuration.md:{}: a key outside a section", n + 1)
            });
            rows.push((section, key.to_string(), cells[2].to_string(), n + 1));
        }

        let documented: Documented = rows
            .iter()
            .map(|(s, k, _, _)| (s.clone(), k.clone()))
            .collect();
        assert_eq!(
            documented.len(),
            rows.len(),
            "a key twice in docs/configuration.md"
        );
        let entries = daemon_toml_entries();
        let in_daemon_toml: Documented = entries
            .iter()
            .map(|(section, key, _, _)| (section.clone(), key.clone()))
            .collect();
        assert_eq!(
            documented, in_daemon_toml,
            "docs/configuration.md's keys against daemon.toml's"
        );

        for (section, key, default, line) in &rows {
            let (_, _, value, commented) = entries
                .iter()
                .find(|(s, k, _, _)| s == section && k == key)
                .unwrap();
            if *commented && default == "unset" {
                continue;
            }
            let written = default
                .strip_prefix('`')
                .and_then(|d| d.strip_suffix('`'))
                .and_then(|d| toml::from_str::<toml::Table>(&format!("v = {d}")).ok());
            assert_eq!(
                written.as_ref().map(|t| &t["v"]),
                Some(value),
                "docs/configuration.md:{line}: the default of {key} is {default}, daemon.toml's {value}"
            );
        }
    }
}
