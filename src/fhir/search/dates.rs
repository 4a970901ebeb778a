//! FHIR date, dateTime and instant values as half-open ranges [lo, hi) of microseconds
//! since the Unix epoch. A value's precision sets the range: `2024` covers the year,
//! `2024-03-01` the day, `2024-03-01T10:00:00Z` one second. Values without a time zone
//! (dates and partial dateTimes) are read as UTC; the README documents this.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};

pub fn range(s: &str) -> Option<(i64, i64)> {
    let s = s.trim();
    match s.len() {
        4 => {
            let y: i32 = s.parse().ok()?;
            let lo = NaiveDate::from_ymd_opt(y, 1, 1)?;
            let hi = NaiveDate::from_ymd_opt(y + 1, 1, 1)?;
            Some((micros(lo), micros(hi)))
        }
        7 => {
            let (y, m) = s.split_once('-')?;
            let (y, m): (i32, u32) = (y.parse().ok()?, m.parse().ok()?);
            let lo = NaiveDate::from_ymd_opt(y, m, 1)?;
            let hi = if m == 12 {
                NaiveDate::from_ymd_opt(y + 1, 1, 1)?
            } else {
                NaiveDate::from_ymd_opt(y, m + 1, 1)?
            };
            Some((micros(lo), micros(hi)))
        }
        10 => {
            let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
            Some((micros(d), micros(d.succ_opt()?)))
        }
        _ => {
            let (dt, precision) = parse_date_time(s)?;
            let lo = dt.timestamp_micros();
            Some((lo, lo + precision))
        }
    }
}

/// A dateTime with a time part; the second value is the width of its precision.
fn parse_date_time(s: &str) -> Option<(DateTime<Utc>, i64)> {
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        let frac = s
            .split_once('.')
            .map(|(_, f)| f.chars().take_while(char::is_ascii_digit).count())
            .unwrap_or(0);
        return Some((dt.with_timezone(&Utc), precision_micros(frac)));
    }
    // Minutes only (search values such as 2024-03-01T10:00Z) or no zone at all.
    for fmt in ["%Y-%m-%dT%H:%M%#z", "%Y-%m-%dT%H:%M%:z"] {
        if let Ok(dt) = DateTime::<FixedOffset>::parse_from_str(s, fmt) {
            return Some((dt.with_timezone(&Utc), 60_000_000));
        }
    }
    let z = s.strip_suffix('Z').map(|p| format!("{p}+00:00"));
    if let Some(z) = z {
        if let Ok(dt) = DateTime::<FixedOffset>::parse_from_str(&z, "%Y-%m-%dT%H:%M%:z") {
            return Some((dt.with_timezone(&Utc), 60_000_000));
        }
    }
    for (fmt, width) in [
        ("%Y-%m-%dT%H:%M:%S%.f", 0),
        ("%Y-%m-%dT%H:%M:%S", 1_000_000),
        ("%Y-%m-%dT%H:%M", 60_000_000),
    ] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(s, fmt) {
            let width = if width == 0 {
                let frac = s.split_once('.').map(|(_, f)| f.len()).unwrap_or(0);
                precision_micros(frac)
            } else {
                width
            };
            return Some((Utc.from_utc_datetime(&naive), width));
        }
    }
    None
}

fn precision_micros(fraction_digits: usize) -> i64 {
    match fraction_digits {
        0 => 1_000_000,
        1 => 100_000,
        2 => 10_000,
        3 => 1_000,
        4 => 100,
        5 => 10,
        _ => 1,
    }
}

fn micros(d: NaiveDate) -> i64 {
    let dt = d.and_hms_opt(0, 0, 0).expect("midnight exists");
    Utc.from_utc_datetime(&dt).timestamp_micros()
}

/// An instant rendered the way `meta.lastUpdated` carries it.
pub fn format_instant(micros: i64) -> String {
    let dt = DateTime::<Utc>::from_timestamp_micros(micros).unwrap_or_default();
    dt.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// RFC 7231 date for the Last-Modified header.
pub fn http_date(micros: i64) -> String {
    let dt = DateTime::<Utc>::from_timestamp_micros(micros).unwrap_or_default();
    dt.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

pub fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precision_sets_the_range() {
        let (lo, hi) = range("2024").unwrap();
        assert_eq!(format_instant(lo), "2024-01-01T00:00:00.000000Z");
        assert_eq!(format_instant(hi), "2025-01-01T00:00:00.000000Z");
        let (lo, hi) = range("2024-02").unwrap();
        assert_eq!(format_instant(hi - 1), "2024-02-29T23:59:59.999999Z");
        assert_eq!(hi - lo, 29 * 86_400_000_000);
        let (lo, hi) = range("2024-03-01T10:00:00+02:00").unwrap();
        assert_eq!(format_instant(lo), "2024-03-01T08:00:00.000000Z");
        assert_eq!(hi - lo, 1_000_000);
        let (lo, hi) = range("2024-03-01T10:00:00.123Z").unwrap();
        assert_eq!(hi - lo, 1_000);
        assert_eq!(format_instant(lo), "2024-03-01T10:00:00.123000Z");
        assert!(range("2024-03-01T10:00Z").is_some());
    }

    #[test]
    fn rejects_nonsense() {
        assert_eq!(range("2023-02-29"), None);
        assert_eq!(range("20x4"), None);
        assert_eq!(range("2024-13"), None);
        assert_eq!(range(""), None);
    }
}
