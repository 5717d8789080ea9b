//! Logging: one line per event on stderr, `2026-01-02T03:04:05.678Z INFO  message`.
//!
//! The level comes from `JOBD_LOG` (error, warn, info, debug, trace; default info). Dependencies'
//! own messages (ureq, rustls) are shown only at `trace`, where they help to debug a fetch.

use std::io::Write;

use log::{Level, LevelFilter, Log, Metadata, Record};

/// The environment variable that sets the log level.
pub const LOG_ENV: &str = "JOBD_LOG";

struct Logger {
    level: LevelFilter,
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
        let level = match record.level() {
            Level::Error => "ERROR",
            Level::Warn => "WARN ",
            Level::Info => "INFO ",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        };
        let line = format!(
            "{} {level} {}\n",
            timestamp(crate::store::now_ms()),
            record.args()
        );
        // One write per line, so lines from different threads never interleave.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(timestamp(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(timestamp(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(timestamp(1_795_647_600_000), "2026-11-25T23:00:00.000Z");
    }
}
