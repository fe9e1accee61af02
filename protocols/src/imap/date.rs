//! Dates in IMAP: `date-time` (`"17-Jul-1996 02:44:25 -0700"`, INTERNALDATE and APPEND),
//! `date` (`1-Feb-1994`, SEARCH) and the RFC 5322 `Date:` header (SENTBEFORE…, SORT).

use crate::imap::backend::InternalDate;

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month 1-12, day 1-31) of a day number.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn month_number(name: &[u8]) -> Option<u32> {
    MONTHS
        .iter()
        .position(|m| m.as_bytes().eq_ignore_ascii_case(name))
        .map(|i| i as u32 + 1)
}

fn number(bytes: &[u8]) -> Option<u32> {
    if bytes.is_empty() || bytes.len() > 4 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

fn valid_day(year: i64, month: u32, day: u32) -> bool {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return false,
    };
    (1..=days).contains(&day)
}

/// `date-day "-" date-month "-" date-year` (SEARCH BEFORE/ON/SINCE): the day number.
pub fn parse_date(text: &[u8]) -> Option<i64> {
    let mut parts = text.split(|&b| b == b'-');
    let day = number(parts.next()?)?;
    let month = month_number(parts.next()?)?;
    let year = number(parts.next()?)?;
    if parts.next().is_some() || !(1..=9999).contains(&year) {
        return None;
    }
    valid_day(i64::from(year), month, day).then(|| days_from_civil(i64::from(year), month, day))
}

/// `date-time`: `dd-Mon-yyyy hh:mm:ss +zzzz` (day may be space-padded).
pub fn parse_date_time(text: &[u8]) -> Option<InternalDate> {
    let text = text.strip_prefix(b" ").unwrap_or(text);
    let (date, rest) = text.split_at(text.iter().position(|&b| b == b' ')?);
    let days = parse_date(date)?;
    let rest = rest.strip_prefix(b" ")?;
    let (time, zone) = rest.split_at(rest.iter().position(|&b| b == b' ')?);
    let zone = zone.strip_prefix(b" ")?;
    let mut hms = time.split(|&b| b == b':');
    let h = number(hms.next()?)?;
    let m = number(hms.next()?)?;
    let s = number(hms.next()?)?;
    if hms.next().is_some() || h > 23 || m > 59 || s > 60 || time.len() != 8 {
        return None;
    }
    let tz = parse_zone(zone)?;
    let local = days * 86_400 + i64::from(h * 3600 + m * 60 + s);
    Some(InternalDate {
        unix_secs: local - i64::from(tz) * 60,
        tz_minutes: tz,
    })
}

fn parse_zone(zone: &[u8]) -> Option<i16> {
    let (sign, digits) = match zone.first()? {
        b'+' => (1, zone.get(1..)?),
        b'-' => (-1, zone.get(1..)?),
        _ => return None,
    };
    if digits.len() != 4 {
        return None;
    }
    let hh = number(digits.get(..2)?)?;
    let mm = number(digits.get(2..)?)?;
    if mm > 59 {
        return None;
    }
    Some(sign * (hh * 60 + mm) as i16)
}

/// `"17-Jul-1996 02:44:25 -0700"` with the quotes.
pub fn format_date_time(date: InternalDate) -> String {
    let local = date.unix_secs + i64::from(date.tz_minutes) * 60;
    let (y, mo, d) = civil_from_days(local.div_euclid(86_400));
    let secs = local.rem_euclid(86_400);
    let tz = date.tz_minutes;
    let sign = if tz < 0 { '-' } else { '+' };
    let tz = tz.unsigned_abs();
    format!(
        "\"{:02}-{}-{:04} {:02}:{:02}:{:02} {}{:02}{:02}\"",
        d,
        MONTHS[(mo - 1) as usize],
        y,
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        sign,
        tz / 60,
        tz % 60
    )
}

/// The day number of a date in its own zone (SEARCH compares dates "disregarding time
/// and timezone", RFC 9051 §6.4.4).
pub fn local_day(date: InternalDate) -> i64 {
    (date.unix_secs + i64::from(date.tz_minutes) * 60).div_euclid(86_400)
}

/// An RFC 5322 `Date:` value, leniently: `[Day,] d Mon yyyy hh:mm[:ss] zone`.
pub fn parse_rfc5322(value: &[u8]) -> Option<InternalDate> {
    let text = std::str::from_utf8(value).ok()?;
    let text = match text.find(',') {
        Some(comma) => &text[comma + 1..],
        None => text,
    };
    let mut words = text.split_whitespace();
    let day: u32 = words.next()?.parse().ok()?;
    let month = month_number(words.next()?.get(..3)?.as_bytes())?;
    let mut year: i64 = words.next()?.parse().ok()?;
    if year < 50 {
        year += 2000;
    } else if year < 1000 {
        year += 1900;
    }
    let mut hms = words.next()?.split(':');
    let h: u32 = hms.next()?.parse().ok()?;
    let m: u32 = hms.next()?.parse().ok()?;
    let s: u32 = hms.next().map_or(Some(0), |s| s.parse().ok())?;
    if !valid_day(year, month, day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    let tz = match words.next() {
        Some(z) if z.starts_with(['+', '-']) => parse_zone(z.as_bytes())?,
        _ => 0,
    };
    let local = days_from_civil(year, month, day) * 86_400 + i64::from(h * 3600 + m * 60 + s);
    Some(InternalDate {
        unix_secs: local - i64::from(tz) * 60,
        tz_minutes: tz,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_time_round_trips() {
        let d = parse_date_time(b"17-Jul-1996 02:44:25 -0700").expect("valid");
        assert_eq!(d.unix_secs, 837_596_665);
        assert_eq!(format_date_time(d), "\"17-Jul-1996 02:44:25 -0700\"");
        let d = parse_date_time(b" 1-Feb-2024 00:00:00 +0000").expect("valid");
        assert_eq!(format_date_time(d), "\"01-Feb-2024 00:00:00 +0000\"");
        assert!(parse_date_time(b"30-Feb-2024 00:00:00 +0000").is_none());
        assert!(parse_date_time(b"1-Feb-2024 24:00:00 +0000").is_none());
        assert!(parse_date_time(b"1-Feb-2024 00:00:00 0000").is_none());
    }

    #[test]
    fn header_dates() {
        let d = parse_rfc5322(b"Tue, 1 Jul 2003 10:52:37 +0200").expect("valid");
        assert_eq!(format_date_time(d), "\"01-Jul-2003 10:52:37 +0200\"");
        assert!(parse_rfc5322(b"garbage").is_none());
    }
}
