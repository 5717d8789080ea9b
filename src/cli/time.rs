//! Times on jobctl's command line and in its tables: durations (`90s`, `1h30m`), RFC 3339 times
//! (`2026-11-26T08:00:00Z`), and "3 min ago". Hand-written for UTC and fixed offsets, which is all
//! jobctl needs; the database holds Unix milliseconds.

const SECOND: i64 = 1_000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// A duration in ms: one or more `<number><unit>` with units ms, s, m, h, d, w (`1h30m`).
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let bad = || {
        format!(
            "{text:?} is not a duration; write e.g. 30s, 10m, 2h, 1d, 1h30m (units: ms s m h d w)"
        )
    };
    if text.is_empty() {
        return Err(bad());
    }
    let mut total: i64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let number: i64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => 1,
            "s" => SECOND,
            "m" | "min" => MINUTE,
            "h" => HOUR,
            "d" => DAY,
            "w" => 7 * DAY,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total = number
            .checked_mul(unit)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(|| format!("{text:?} is too long a duration"))?;
    }
    Ok(total)
}

/// `--at`: `+DURATION` from now, or an RFC 3339 time.
pub fn parse_at(text: &str, now: i64) -> Result<i64, String> {
    match text.strip_prefix('+') {
        Some(duration) => Ok(now.saturating_add(parse_duration(duration)?)),
        None => parse_rfc3339(text)
            .map_err(|e| format!("{e}; or write a time from now such as +10m, +2h, +1d")),
    }
}

/// `--since`/`--until`: a DURATION ago (`1h`: an hour ago), or an RFC 3339 time.
pub fn parse_since(text: &str, now: i64) -> Result<i64, String> {
    if text.starts_with(|c: char| c.is_ascii_digit()) && !text.contains(['-', ':', 'T']) {
        return Ok(now.saturating_sub(parse_duration(text)?));
    }
    parse_rfc3339(text).map_err(|e| format!("{e}; or write a time ago such as 30m, 1h, 2d"))
}

/// `YYYY-MM-DDTHH:MM[:SS[.fff]]` with `Z` or `±HH:MM`, or a bare date (midnight UTC). A space may
/// stand for the `T`.
pub fn parse_rfc3339(text: &str) -> Result<i64, String> {
    let bad = || format!("{text:?} is not an RFC 3339 time like 2026-11-26T08:00:00Z");
    let b = text.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Result<i64, String> {
        let part = text.get(range).ok_or_else(bad)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().map_err(|_| bad())
        } else {
            Err(bad())
        }
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(bad());
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err(format!("{text:?} names a day that does not exist"));
    }
    let date_ms = days_from_civil(year, month, day) * DAY;
    if b.len() == 10 {
        return Ok(date_ms);
    }
    if !matches!(b[10], b'T' | b't' | b' ') || b.len() < 16 || b[13] != b':' {
        return Err(bad());
    }
    let (hour, minute) = (num(11..13)?, num(14..16)?);
    let mut i = 16;
    let mut second = 0;
    let mut millis = 0;
    if b.get(i) == Some(&b':') {
        second = num(i + 1..i + 3)?;
        i += 3;
        if b.get(i) == Some(&b'.') {
            let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if digits == 0 {
                return Err(bad());
            }
            let frac = &text[i + 1..i + 1 + digits.min(3)];
            millis = format!("{frac:0<3}").parse::<i64>().map_err(|_| bad())?;
            i += 1 + digits;
        }
    }
    if hour > 23 || minute > 59 || second > 60 {
        return Err(format!("{text:?} names a time of day that does not exist"));
    }
    let offset = match &text[i..] {
        "Z" | "z" => 0,
        zone if zone.len() == 6 && (zone.starts_with('+') || zone.starts_with('-')) => {
            if zone.as_bytes()[3] != b':' {
                return Err(bad());
            }
            let (h, m) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            sign * (h * HOUR + m * MINUTE)
        }
        "" => {
            return Err(format!(
                "{text:?} has no time zone: add Z for UTC, or +01:00"
            ));
        }
        _ => return Err(bad()),
    };
    Ok(date_ms + hour * HOUR + minute * MINUTE + second.min(59) * SECOND + millis - offset)
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// "just now", "42 s ago", "3 min ago", "5 h ago", "2 d ago", or "in 10 min" for the future.
pub fn relative(then: i64, now: i64) -> String {
    let diff = now - then;
    let span = diff.abs();
    let amount = if span < SECOND {
        return "just now".into();
    } else if span < MINUTE {
        format!("{} s", span / SECOND)
    } else if span < HOUR {
        format!("{} min", span / MINUTE)
    } else if span < 2 * DAY {
        format!("{} h", span / HOUR)
    } else {
        format!("{} d", span / DAY)
    };
    if diff >= 0 {
        format!("{amount} ago")
    } else {
        format!("in {amount}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(30_000));
        assert_eq!(parse_duration("10m"), Ok(600_000));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration("2d"), Ok(172_800_000));
        assert_eq!(parse_duration("250ms"), Ok(250));
        assert_eq!(parse_duration("1w"), Ok(604_800_000));
        for bad in ["", "10", "m", "1x", "-5m", "1.5h", "99999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rfc3339_times() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_rfc3339("2026-11-26T08:00:00Z"), Ok(1_795_680_000_000));
        assert_eq!(
            parse_rfc3339("2026-11-26T09:00:00+01:00"),
            parse_rfc3339("2026-11-26T08:00:00Z")
        );
        assert_eq!(
            parse_rfc3339("2026-11-26 07:30:00.25-00:30"),
            Ok(1_795_680_000_250)
        );
        assert_eq!(parse_rfc3339("2026-11-26"), Ok(1_795_651_200_000));
        assert_eq!(parse_rfc3339("2024-02-29T00:00Z"), Ok(1_709_164_800_000));
        for bad in [
            "2026-11-26T08:00:00",
            "2025-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-11-26T24:00:00Z",
            "26-11-2026",
            "2026-11-26T08:00:00+0100",
            "2026-11-26T08:00:00.Z",
            "yesterday",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn at_and_since() {
        let now = 1_000_000_000_000;
        assert_eq!(parse_at("+10m", now), Ok(now + 600_000));
        assert_eq!(parse_at("1970-01-01T00:00:01Z", now), Ok(1_000));
        assert!(parse_at("10m", now).unwrap_err().contains("+10m"));
        assert_eq!(parse_since("1h", now), Ok(now - 3_600_000));
        assert_eq!(parse_since("2026-11-26", now), Ok(1_795_651_200_000));
        assert!(parse_since("soon", now).is_err());
    }

    #[test]
    fn relative_times() {
        let now = 10 * DAY;
        assert_eq!(relative(now, now), "just now");
        assert_eq!(relative(now - 42_000, now), "42 s ago");
        assert_eq!(relative(now - 3 * MINUTE - 5, now), "3 min ago");
        assert_eq!(relative(now - 5 * HOUR, now), "5 h ago");
        assert_eq!(relative(now - 3 * DAY, now), "3 d ago");
        assert_eq!(relative(now + 10 * MINUTE, now), "in 10 min");
    }
}
