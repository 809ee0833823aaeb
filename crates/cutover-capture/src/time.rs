//! The two timestamp forms of the logs, to microseconds since the Unix epoch.

use cutover_core::civil::days_from_civil;

fn num(s: &str) -> Option<i64> {
    if s.is_empty() || s.len() > 9 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn civil_us(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64, us: i64) -> Option<i64> {
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    // Both in range (checked above), so the casts are exact.
    let days = days_from_civil(y, mo as u32, d as u32);
    Some(((days * 86400 + h * 3600 + mi * 60 + s) * 1_000_000) + us)
}

/// Fractional seconds (`123456`, `123`) as microseconds.
fn fraction_us(f: &str) -> Option<i64> {
    if f.is_empty() || f.len() > 9 || !f.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut digits = f.to_string();
    digits.truncate(6);
    while digits.len() < 6 {
        digits.push('0');
    }
    digits.parse().ok()
}

/// `2024-01-31T10:00:00.123456Z`, `…+02:00`, or without zone (as UTC). Returns µs and
/// whether the time had a fraction.
pub fn parse_iso(s: &str) -> Option<(i64, bool)> {
    let s = s.trim();
    let (date, rest) = s.split_once('T')?;
    let mut dp = date.split('-');
    let y = num(dp.next()?)?;
    let mo = num(dp.next()?)?;
    let d = num(dp.next()?)?;
    if dp.next().is_some() {
        return None;
    }
    let (clock, offset_s) = if let Some(c) = rest.strip_suffix('Z') {
        (c, 0)
    } else if let Some(k) = rest.rfind(['+', '-']) {
        let (c, off) = rest.split_at(k);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (oh, om) = off.get(1..)?.split_once(':')?;
        (c, sign * (num(oh)? * 3600 + num(om)? * 60))
    } else {
        (rest, 0)
    };
    let (hms, frac) = match clock.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (clock, None),
    };
    let mut tp = hms.split(':');
    let h = num(tp.next()?)?;
    let mi = num(tp.next()?)?;
    let sec = num(tp.next()?)?;
    if tp.next().is_some() {
        return None;
    }
    let us = match frac {
        Some(f) => fraction_us(f)?,
        None => 0,
    };
    Some((
        civil_us(y, mo, d, h, mi, sec, us)? - offset_s * 1_000_000,
        frac.is_some(),
    ))
}

/// MariaDB's (and MySQL 5.6's) `YYMMDD HH:MM:SS` (hour possibly space-padded: `241127  9:05:01`).
pub fn parse_yymmdd(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, clock) = s.split_once(' ')?;
    let clock = clock.trim_start();
    if date.len() != 6 {
        return None;
    }
    let y = 2000 + num(date.get(0..2)?)?;
    let mo = num(date.get(2..4)?)?;
    let d = num(date.get(4..6)?)?;
    let mut tp = clock.split(':');
    let h = num(tp.next()?.trim())?;
    let mi = num(tp.next()?)?;
    let (sec, us) = match tp.next()?.split_once('.') {
        Some((a, f)) => (num(a)?, fraction_us(f)?),
        None => (num(clock.rsplit(':').next()?)?, 0),
    };
    if tp.next().is_some() {
        return None;
    }
    civil_us(y, mo, d, h, mi, sec, us)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms() {
        assert_eq!(parse_iso("1970-01-01T00:00:01Z"), Some((1_000_000, false)));
        assert_eq!(
            parse_iso("2024-02-29T12:00:00.5+01:00"),
            Some((1_709_204_400_500_000, true))
        );
        assert_eq!(parse_yymmdd("240229 11:00:00"), Some(1_709_204_400_000_000));
        assert_eq!(parse_yymmdd("240229  9:00:00"), Some(1_709_197_200_000_000));
        assert_eq!(parse_iso("2024-13-01T00:00:00Z"), None);
        assert_eq!(parse_yymmdd("hello world"), None);
    }
}
