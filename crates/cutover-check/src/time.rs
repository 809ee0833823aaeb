//! Civil dates in UTC, without a calendar crate: what the ID forecasts need is to print an
//! instant as `2024-11-20` / `2024-11-20T07:41:52Z` and to read an epoch written as a date.
//! The day arithmetic is [`cutover_core::civil`]'s.

use cutover_core::civil::{civil_from_days, days_from_civil};
use cutover_core::duration::{self, DurationError, Setting};

/// Seconds since the Unix epoch → `YYYY-MM-DDTHH:MM:SSZ`. Instants outside years 0..=9999
/// are printed as a number of seconds instead, so nothing here can panic.
pub fn format_instant(secs: i64) -> String {
    match civil(secs) {
        Some((y, m, d, hh, mm, ss)) => {
            format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
        }
        None => format!("{secs} s since 1970"),
    }
}

/// Seconds since the Unix epoch → `YYYY-MM-DD`.
pub fn format_date(secs: i64) -> String {
    match civil(secs) {
        Some((y, m, d, ..)) => format!("{y:04}-{m:02}-{d:02}"),
        None => format!("{secs} s since 1970"),
    }
}

fn civil(secs: i64) -> Option<(i64, u32, u32, u32, u32, u32)> {
    // Years 0..=9999 only.
    if !(-62_167_219_200..=253_402_300_799).contains(&secs) {
        return None;
    }
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    Some((
        y,
        m,
        d,
        (rem / 3600) as u32,
        (rem % 3600 / 60) as u32,
        (rem % 60) as u32,
    ))
}

/// A text that [`parse_instant_ms`] cannot read as a date.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a date like 2016-05-20 or 2016-05-20T00:00:00Z")]
pub struct NotADate(pub String);

/// Reads `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM:SS[.fff][Z]` (or a space instead of `T`) as
/// milliseconds since the Unix epoch, in UTC.
pub fn parse_instant_ms(s: &str) -> Result<i64, NotADate> {
    let bad = || NotADate(s.to_string());
    let s2 = s.trim().trim_end_matches('Z');
    let (date, time) = match s2.split_once(['T', ' ']) {
        Some((d, t)) => (d, Some(t)),
        None => (s2, None),
    };
    let parts: Vec<&str> = date.split('-').collect();
    if parts.len() != 3 || parts[0].len() != 4 || parts[1].len() != 2 || parts[2].len() != 2 {
        return Err(bad());
    }
    let num = |p: &str| -> Result<u32, NotADate> {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        p.parse::<u32>().map_err(|_| bad())
    };
    let (y, m, d) = (num(parts[0])?, num(parts[1])?, num(parts[2])?);
    if !(1..=12).contains(&m) || !(1..=days_in_month(i64::from(y), m)).contains(&d) {
        return Err(bad());
    }
    let mut ms = days_from_civil(i64::from(y), m, d) * 86_400_000;
    if let Some(t) = time {
        let (hms, frac) = match t.split_once('.') {
            Some((a, b)) => (a, Some(b)),
            None => (t, None),
        };
        let p: Vec<&str> = hms.split(':').collect();
        if p.len() != 3 || p.iter().any(|x| x.len() != 2) {
            return Err(bad());
        }
        let (hh, mm, ss) = (num(p[0])?, num(p[1])?, num(p[2])?);
        if hh > 23 || mm > 59 || ss > 59 {
            return Err(bad());
        }
        ms += i64::from(hh * 3600 + mm * 60 + ss) * 1000;
        if let Some(f) = frac {
            if f.is_empty() || f.len() > 3 {
                return Err(bad());
            }
            let v = num(f)?;
            ms += i64::from(v) * 10_i64.pow(3 - f.len() as u32);
        }
    }
    Ok(ms)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// Now, in seconds since the Unix epoch.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_dates() {
        assert_eq!(format_instant(0), "1970-01-01T00:00:00Z");
        assert_eq!(parse_instant_ms("2016-05-20").unwrap(), 1_463_702_400_000);
        assert_eq!(
            parse_instant_ms("2010-11-04T01:42:54.657Z").unwrap(),
            1_288_834_974_657
        );
        assert_eq!(format_date(1_463_702_400), "2016-05-20");
        assert!(parse_instant_ms("2016-02-30").is_err());
        assert!(parse_instant_ms("2016-5-20").is_err());
    }

    proptest! {
        #[test]
        fn format_then_parse_is_identity(secs in -62_167_219_200i64..253_402_300_799) {
            let text = format_instant(secs);
            prop_assert_eq!(parse_instant_ms(&text).unwrap(), secs * 1000);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,40}") {
            let _ = parse_instant_ms(&s);
        }
    }
}

/// What `--horizon` / `--sample` accept: more than zero, at most a hundred years.
pub const SPAN: Setting = Setting {
    examples: "90d, 36h or 10s",
    zero: Some("give a duration like 90d, 36h or 10s"),
    max: Some((
        std::time::Duration::from_secs(100 * 366 * 86_400),
        "more than a hundred years",
    )),
};

/// Reads `--horizon` / `--sample`: a duration like `90d`, `36h`, `10s` or `1w 2d`, more than
/// zero and at most a hundred years.
pub fn parse_span(s: &str) -> Result<std::time::Duration, DurationError> {
    duration::parse(s, &SPAN)
}

#[cfg(test)]
mod span_tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn spans() {
        assert_eq!(parse_span("90d").unwrap().as_secs(), 90 * 86_400);
        assert_eq!(parse_span("2s").unwrap().as_secs(), 2);
        assert!(parse_span("0s").is_err());
        assert!(parse_span("ninety days").is_err());
        assert!(parse_span("").is_err());
    }

    proptest! {
        #[test]
        fn span_never_panics(s in "\\PC{0,30}") {
            let _ = parse_span(&s);
        }

        #[test]
        fn span_reads_days_and_seconds(d in 1u64..10_000, s in 0u64..86_400) {
            let got = parse_span(&format!("{d}d {s}s")).unwrap();
            prop_assert_eq!(got.as_secs(), d * 86_400 + s);
        }
    }
}
