//! Logging: one line per event on stderr, with the job and host when there is one:
//! `2026-01-02T03:04:05.678Z INFO  job=12 host=example.org done in 33 ms: ...`.
//!
//! The level comes from `JOBD_LOG` (error, warn, info, debug, trace; default info). Dependencies'
//! own messages (ureq, rustls) are shown only at `trace`, where they help to debug a fetch.
//! `JOBD_LOG_FORMAT=json` writes JSON lines instead, for log shippers:
//! `{"ts":"...","level":"info","job":12,"host":"example.org","msg":"done in 33 ms: ..."}`.

use std::io::Write;

use log::{Level, LevelFilter, Log, Metadata, Record};

/// The environment variable that sets the log level.
pub const LOG_ENV: &str = "JOBD_LOG";
/// The environment variable that selects JSON lines (`json`) over text.
pub const FORMAT_ENV: &str = "JOBD_LOG_FORMAT";

struct Logger {
    level: LevelFilter,
    json: bool,
}

/// Collects a record's key-values (`log::info!(job = 7, host; "...")`) as text.
#[derive(Default)]
struct Fields(Vec<(String, FieldValue)>);

enum FieldValue {
    Number(i64),
    Text(String),
}

impl<'kvs> log::kv::VisitSource<'kvs> for Fields {
    fn visit_pair(
        &mut self,
        key: log::kv::Key<'kvs>,
        value: log::kv::Value<'kvs>,
    ) -> Result<(), log::kv::Error> {
        let value = match value.to_i64() {
            Some(n) => FieldValue::Number(n),
            None => FieldValue::Text(value.to_string()),
        };
        self.0.push((key.to_string(), value));
        Ok(())
    }
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        let ours = metadata.target().starts_with("jobd");
        metadata.level() <= self.level && (ours || self.level == LevelFilter::Trace)
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let mut fields = Fields::default();
        let _ = record.key_values().visit(&mut fields);
        let ts = timestamp(crate::job::now_ms());
        let line = if self.json {
            json_line(&ts, record.level(), &fields, &record.args().to_string())
        } else {
            text_line(&ts, record.level(), &fields, record.args())
        };
        // One write per line, so lines from different threads never interleave.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

fn text_line(ts: &str, level: Level, fields: &Fields, msg: &std::fmt::Arguments) -> String {
    let level = match level {
        Level::Error => "ERROR",
        Level::Warn => "WARN ",
        Level::Info => "INFO ",
        Level::Debug => "DEBUG",
        Level::Trace => "TRACE",
    };
    let mut line = format!("{ts} {level} ");
    for (key, value) in &fields.0 {
        match value {
            FieldValue::Number(n) => line.push_str(&format!("{key}={n} ")),
            FieldValue::Text(t) => line.push_str(&format!("{key}={t} ")),
        }
    }
    line.push_str(&format!("{msg}\n"));
    line
}

fn json_line(ts: &str, level: Level, fields: &Fields, msg: &str) -> String {
    let mut object = serde_json::Map::new();
    object.insert("ts".into(), ts.into());
    object.insert("level".into(), level.as_str().to_ascii_lowercase().into());
    for (key, value) in &fields.0 {
        let value = match value {
            FieldValue::Number(n) => serde_json::Value::from(*n),
            FieldValue::Text(t) => serde_json::Value::from(t.as_str()),
        };
        object.insert(key.clone(), value);
    }
    object.insert("msg".into(), msg.into());
    let mut line = serde_json::Value::Object(object).to_string();
    line.push('\n');
    line
}

/// Installs the logger; the level comes from `JOBD_LOG`. An unknown level falls back to info,
/// with a warning that names it.
pub fn init() {
    let wanted = std::env::var(LOG_ENV).ok();
    let level = wanted.as_deref().map(|v| v.trim().parse::<LevelFilter>());
    let logger = Logger {
        level: match level {
            Some(Ok(level)) => level,
            _ => LevelFilter::Info,
        },
        json: std::env::var(FORMAT_ENV).is_ok_and(|f| f.eq_ignore_ascii_case("json")),
    };
    let max = logger.level;
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(max);
    }
    if let (Some(Err(_)), Some(raw)) = (level, wanted) {
        log::warn!(
            "{LOG_ENV}={raw:?} is not a level (error, warn, info, debug, trace); using info"
        );
    }
}

/// RFC 3339 UTC with milliseconds, from Unix milliseconds.
pub fn timestamp(ms: i64) -> String {
    let (days, rem) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

/// Days since 1970-01-01 to a (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// A span for people: "850 ms", "12.5 s", "3 min 20 s", "2 h 5 min".
pub fn span(ms: i64) -> String {
    if ms < 1_000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1_000.0)
    } else if ms < 3_600_000 {
        format!("{} min {} s", ms / 60_000, ms % 60_000 / 1_000)
    } else {
        format!("{} h {} min", ms / 3_600_000, ms % 3_600_000 / 60_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> Fields {
        Fields(vec![
            ("job".into(), FieldValue::Number(12)),
            ("host".into(), FieldValue::Text("example.org".into())),
        ])
    }

    #[test]
    fn text_lines_put_job_and_host_first() {
        let line = text_line(
            "T",
            Level::Warn,
            &fields(),
            &format_args!("failed: HTTP 404"),
        );
        assert_eq!(line, "T WARN  job=12 host=example.org failed: HTTP 404\n");
    }

    #[test]
    fn json_lines_are_one_object_each() {
        let line = json_line("T", Level::Info, &fields(), "said \"hi\"\nthen left");
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["level"], "info");
        assert_eq!(v["job"], 12);
        assert_eq!(v["host"], "example.org");
        assert_eq!(v["msg"], "said \"hi\"\nthen left");
    }

    #[test]
    fn spans_read_as_people_say_them() {
        assert_eq!(span(850), "850 ms");
        assert_eq!(span(12_500), "12.5 s");
        assert_eq!(span(200_000), "3 min 20 s");
        assert_eq!(span(7_500_000), "2 h 5 min");
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(timestamp(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(timestamp(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(timestamp(1_795_647_600_000), "2026-11-25T23:00:00.000Z");
    }
}
