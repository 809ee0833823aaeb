//! DATE, DATETIME, TIMESTAMP and TIME values, read from the text protocol field by field.

/// DATE, DATETIME and TIMESTAMP (in UTC), with microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DateTime {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub micros: u32,
}

/// TIME: a signed duration up to 838:59:59.999999.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Time {
    pub negative: bool,
    pub hours: u32,
    pub minute: u8,
    pub second: u8,
    pub micros: u32,
}

impl Time {
    pub(super) fn total_micros(&self) -> i128 {
        let t = ((self.hours as i128 * 60 + self.minute as i128) * 60 + self.second as i128)
            * 1_000_000
            + self.micros as i128;
        if self.negative {
            -t
        } else {
            t
        }
    }
}

pub(super) fn parse_datetime(s: &str) -> Option<DateTime> {
    let s = s.trim();
    let (date, time) = match s.split_once([' ', 'T']) {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let mut dp = date.split('-');
    let year = dp.next()?.parse().ok()?;
    let month = dp.next()?.parse().ok()?;
    let day = dp.next()?.parse().ok()?;
    if dp.next().is_some() {
        return None;
    }
    let mut dt = DateTime {
        year,
        month,
        day,
        hour: 0,
        minute: 0,
        second: 0,
        micros: 0,
    };
    if let Some(t) = time {
        let t = parse_time(t)?;
        if t.negative || t.hours > 23 {
            return None;
        }
        dt.hour = t.hours as u8;
        dt.minute = t.minute;
        dt.second = t.second;
        dt.micros = t.micros;
    }
    Some(dt)
}

pub(super) fn parse_time(s: &str) -> Option<Time> {
    let s = s.trim();
    let (negative, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let (hms, frac) = match s.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    };
    let mut p = hms.split(':');
    let hours: u32 = p.next()?.parse().ok()?;
    let minute: u8 = p.next()?.parse().ok()?;
    let second: u8 = p.next().unwrap_or("0").parse().ok()?;
    if p.next().is_some() || minute > 59 || second > 59 {
        return None;
    }
    let micros = match frac {
        None => 0,
        Some(f) if !f.is_empty() && f.len() <= 6 && f.bytes().all(|b| b.is_ascii_digit()) => {
            f.parse::<u32>().ok()? * 10u32.pow(6 - f.len() as u32)
        }
        Some(_) => return None,
    };
    Some(Time {
        negative: negative && (hours > 0 || minute > 0 || second > 0 || micros > 0),
        hours,
        minute,
        second,
        micros,
    })
}
