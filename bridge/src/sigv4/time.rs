//! The calendar arithmetic SigV4 needs: Unix seconds to and from `X-Amz-Date`'s ISO
//! 8601 basic format and HTTP dates. Apart from the signing recipe so that each file
//! reads as one thing; a date crate would be more weight than these few lines.

use std::time::{SystemTime, UNIX_EPOCH};

pub(super) fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn unix_time(date: (i64, i64, i64), hour: i64, minute: i64, second: i64) -> Option<i64> {
    let (year, month, day) = date;
    let valid = (1..=12).contains(&month)
        && (1..=days_in_month(year, month)).contains(&day)
        && (0..24).contains(&hour)
        && (0..60).contains(&minute)
        && (0..60).contains(&second);
    valid.then(|| days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// `20261125T171309Z`, the ISO 8601 basic format SigV4 signs (`X-Amz-Date`).
pub fn format_basic(t: i64) -> String {
    let (year, month, day) = civil_from_days(t.div_euclid(86_400));
    let secs = t.rem_euclid(86_400);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// `2026-11-25T17:14:08.224Z` from Unix milliseconds: the extended format with
/// milliseconds that SNS envelopes carry (kept here beside the calendar arithmetic).
pub fn format_iso_ms(ms: i64) -> String {
    let t = ms.div_euclid(1000);
    let (year, month, day) = civil_from_days(t.div_euclid(86_400));
    let secs = t.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        ms.rem_euclid(1000)
    )
}

/// Unix milliseconds of an ISO 8601 extended date-time as SNS takes it in a
/// ReplayPolicy: `2026-11-25T17:14:08Z`, with optional fractional seconds and a
/// `Z` or `±hh:mm` offset; `None` for anything else.
pub fn parse_iso_ms(s: &str) -> Option<i64> {
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-');
    let mut part = |len: usize| d.next().filter(|p| p.len() == len).and_then(digits);
    let (year, month, day) = (part(4)?, part(2)?, part(2)?);
    if d.next().is_some() {
        return None;
    }
    let (clock, offset) = if let Some(c) = time.strip_suffix('Z') {
        (c, 0)
    } else {
        let at = time.rfind(['+', '-'])?;
        let (c, zone) = time.split_at(at);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let (hh, mm) = zone.get(1..)?.split_once(':')?;
        let (hh, mm) = (digits(hh)?, digits(mm)?);
        if hh > 23 || mm > 59 {
            return None;
        }
        (c, sign * (hh * 3600 + mm * 60))
    };
    let (hms, frac) = match clock.split_once('.') {
        Some((hms, f)) if !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) => {
            let ms: String = f.chars().chain("00".chars()).take(3).collect();
            (hms, digits(&ms)?)
        }
        Some(_) => return None,
        None => (clock, 0),
    };
    let mut t = hms.split(':');
    let mut field = || t.next().filter(|f| f.len() == 2).and_then(digits);
    let (hour, minute, second) = (field()?, field()?, field()?);
    if t.next().is_some() {
        return None;
    }
    let secs = unix_time((year, month, day), hour, minute, second)? - offset;
    secs.checked_mul(1000)?.checked_add(frac)
}

fn digits(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

pub(super) fn parse_basic(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let n = |range: std::ops::Range<usize>| s.get(range).and_then(digits);
    unix_time(
        (n(0..4)?, n(4..6)?, n(6..8)?),
        n(9..11)?,
        n(11..13)?,
        n(13..15)?,
    )
}

/// RFC 7231's IMF-fixdate and the RFC 2822 dates it descends from:
/// `[Wed, ]25 Nov 2026 17:13:09 GMT|UT|UTC|Z|+hhmm|-hhmm`.
pub(super) fn parse_http_date(s: &str) -> Option<i64> {
    let s = s.split_once(',').map_or(s, |(_, rest)| rest);
    let mut words = s.split_ascii_whitespace();
    let day = words.next().filter(|d| d.len() <= 2).and_then(digits)?;
    let month = match words.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year = words.next().filter(|y| y.len() == 4).and_then(digits)?;
    let mut hms = words.next()?.split(':');
    let mut field = || hms.next().filter(|f| f.len() == 2).and_then(digits);
    let (hour, minute, second) = (field()?, field()?, field()?);
    let offset = match words.next()? {
        "GMT" | "UT" | "UTC" | "Z" => 0,
        zone => {
            let sign = match zone.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let hhmm = zone.get(1..).filter(|z| z.len() == 4).and_then(digits)?;
            sign * (hhmm / 100 * 3600 + hhmm % 100 * 60)
        }
    };
    if words.next().is_some() {
        return None;
    }
    Some(unix_time((year, month, day), hour, minute, second)? - offset)
}
