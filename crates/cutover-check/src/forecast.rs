//! How long an ID space lasts.
//!
//! Headroom `H = ⌊(max_of_type − last_used) / step⌋` IDs. The rate `r` (IDs per second) comes
//! from readings of the counter at known instants: two readings `--sample` apart, or the
//! history of earlier runs. Time to exhaustion is `T = H / r` if consumption stays as it is,
//! and `T = ln(1 + k·H/r) / k` if it keeps growing at the continuous rate `k` (per second),
//! which is what integrating `r·e^(k·t)` from now until it has used `H` gives. `k` is
//! estimated only when the readings span at least two intervals (the rate of the later half
//! against the rate of the earlier half).

use serde::Serialize;

/// TiDB's default `AUTO_ID_CACHE`: IDs each TiDB server takes in one batch and loses when it
/// restarts (the next ID then jumps by up to this much).
pub const TIDB_AUTO_ID_CACHE: u64 = 30_000;

/// The largest value of an integer type (`tinyint` … `bigint`), signed or unsigned.
pub fn type_max(data_type: &str, unsigned: bool) -> Option<u64> {
    let bits = match data_type.to_ascii_lowercase().as_str() {
        "tinyint" => 8,
        "smallint" => 16,
        "mediumint" => 24,
        "int" | "integer" => 32,
        "bigint" => 64,
        _ => return None,
    };
    Some(if unsigned {
        if bits == 64 {
            u64::MAX
        } else {
            (1u64 << bits) - 1
        }
    } else {
        (1u64 << (bits - 1)) - 1
    })
}

/// One reading of a counter: seconds since the Unix epoch, and the last value used.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Reading {
    pub at: f64,
    pub value: u64,
}

/// Consumption estimated from readings.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Rate {
    /// IDs per second over all readings.
    pub per_second: f64,
    /// IDs per second over the later half, when the readings span two intervals or more.
    pub recent_per_second: Option<f64>,
    /// Continuous growth of the rate, per second (`r(t) = r·e^(k·t)`).
    pub growth_per_second: Option<f64>,
    /// Seconds between the first and the last reading.
    pub span_seconds: f64,
}

/// The rate from readings in any order, or `None` when they span no time or the counter went
/// backwards (a table recreated, a counter reset).
pub fn rate(readings: &[Reading]) -> Option<Rate> {
    let mut r: Vec<Reading> = readings
        .iter()
        .copied()
        .filter(|r| r.at.is_finite())
        .collect();
    r.sort_by(|a, b| a.at.total_cmp(&b.at));
    let (first, last) = (r.first()?, r.last()?);
    let span = last.at - first.at;
    if span <= 0.0 || last.value < first.value {
        return None;
    }
    let per_second = (last.value - first.value) as f64 / span;
    let mut out = Rate {
        per_second,
        recent_per_second: None,
        growth_per_second: None,
        span_seconds: span,
    };
    if r.len() >= 3 {
        let mid = r[r.len() / 2];
        let half = |a: Reading, b: Reading| -> Option<f64> {
            let dt = b.at - a.at;
            (dt > 0.0 && b.value >= a.value).then(|| (b.value - a.value) as f64 / dt)
        };
        if let (Some(r1), Some(r2)) = (half(*first, mid), half(mid, *last)) {
            out.recent_per_second = Some(r2);
            let dt = (last.at - first.at) / 2.0;
            if r1 > 0.0 && r2 > 0.0 && dt > 0.0 {
                let k = (r2 / r1).ln() / dt;
                if k.is_finite() && k.abs() > 1e-15 {
                    out.growth_per_second = Some(k);
                }
            }
        }
    }
    Some(out)
}

/// Seconds until `headroom` IDs are used at `per_second`; `None` when nothing is consumed.
pub fn eta_linear(headroom: u64, per_second: f64) -> Option<f64> {
    (per_second > 0.0 && per_second.is_finite()).then(|| headroom as f64 / per_second)
}

/// Seconds until `headroom` IDs are used when the rate starts at `per_second` and grows at
/// `k` per second; `None` when nothing is consumed, or when a shrinking rate never uses it up.
pub fn eta_growth(headroom: u64, per_second: f64, k: f64) -> Option<f64> {
    if !(per_second > 0.0 && per_second.is_finite() && k.is_finite()) {
        return None;
    }
    if k.abs() < 1e-15 {
        return eta_linear(headroom, per_second);
    }
    let x = 1.0 + k * headroom as f64 / per_second;
    if x <= 0.0 {
        return None;
    }
    let t = x.ln() / k;
    (t.is_finite() && t >= 0.0).then_some(t)
}

/// Where an ID space stands.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IdSpace {
    /// The largest value the column's type holds.
    pub capacity: u64,
    /// The last value used (AUTO_INCREMENT − 1, or MAX()).
    pub used: u64,
    /// `auto_increment_increment`.
    pub step: u64,
    /// IDs left.
    pub headroom: u64,
    /// `used / capacity`.
    pub ratio: f64,
}

impl IdSpace {
    pub fn new(capacity: u64, used: u64, step: u64) -> IdSpace {
        let step = step.max(1);
        IdSpace {
            capacity,
            used,
            step,
            headroom: capacity.saturating_sub(used) / step,
            ratio: if capacity == 0 {
                1.0
            } else {
                used.min(capacity) as f64 / capacity as f64
            },
        }
    }
}

/// A readable duration: `3.2 hours`, `41 days`, `12.5 years`.
pub fn human_duration(secs: f64) -> String {
    let s = secs.max(0.0);
    if s < 120.0 {
        format!("{s:.0} seconds")
    } else if s < 7200.0 {
        format!("{:.0} minutes", s / 60.0)
    } else if s < 3.0 * 86_400.0 {
        format!("{:.1} hours", s / 3600.0)
    } else if s < 730.0 * 86_400.0 {
        format!("{:.0} days", s / 86_400.0)
    } else if s < 1000.0 * 365.25 * 86_400.0 {
        format!("{:.1} years", s / (365.25 * 86_400.0))
    } else {
        "over 1,000 years".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn capacities() {
        assert_eq!(type_max("tinyint", false), Some(127));
        assert_eq!(type_max("TINYINT", true), Some(255));
        assert_eq!(type_max("int", false), Some(2_147_483_647));
        assert_eq!(type_max("bigint", true), Some(u64::MAX));
        assert_eq!(type_max("varchar", false), None);
    }

    #[test]
    fn linear_rate_from_two_readings() {
        let r = rate(&[
            Reading {
                at: 100.0,
                value: 1000,
            },
            Reading {
                at: 110.0,
                value: 1500,
            },
        ])
        .unwrap();
        assert_eq!(r.per_second, 50.0);
        assert_eq!(r.growth_per_second, None);
        assert_eq!(eta_linear(5000, r.per_second), Some(100.0));
        // Backwards: no rate.
        assert!(rate(&[Reading { at: 1.0, value: 9 }, Reading { at: 2.0, value: 1 }]).is_none());
    }

    #[test]
    fn growth_doubles_the_rate_over_the_span() {
        // 10/s in the first day, 20/s in the second.
        let day = 86_400.0;
        let r = rate(&[
            Reading { at: 0.0, value: 0 },
            Reading {
                at: day,
                value: 864_000,
            },
            Reading {
                at: 2.0 * day,
                value: 864_000 * 3,
            },
        ])
        .unwrap();
        let k = r.growth_per_second.unwrap();
        assert!((k - 2f64.ln() / day).abs() < 1e-12);
        let lin = eta_linear(1_000_000_000, r.recent_per_second.unwrap()).unwrap();
        let gro = eta_growth(1_000_000_000, r.recent_per_second.unwrap(), k).unwrap();
        assert!(gro < lin);
    }

    proptest! {
        #[test]
        fn growth_eta_is_at_most_linear_and_uses_the_headroom(h in 1u64..u64::MAX / 2, r in 1e-6f64..1e9, k in 1e-12f64..1e-3) {
            let lin = eta_linear(h, r).unwrap();
            if let Some(g) = eta_growth(h, r, k) {
                prop_assert!(g <= lin * (1.0 + 1e-9));
                // ∫0..T r·e^(k·t) dt = r/k·(e^(kT) − 1) = H
                let used = r / k * (k * g).exp_m1();
                prop_assert!((used - h as f64).abs() <= 1e-6 * h as f64 + 1.0);
            }
        }

        #[test]
        fn rate_never_panics(v in proptest::collection::vec((any::<f64>(), any::<u64>()), 0..8)) {
            let readings: Vec<Reading> = v.into_iter().map(|(at, value)| Reading { at, value }).collect();
            if let Some(r) = rate(&readings) {
                prop_assert!(r.per_second >= 0.0);
            }
        }

        #[test]
        fn headroom_times_step_fits(cap in any::<u64>(), used in any::<u64>(), step in 0u64..1000) {
            let s = IdSpace::new(cap, used, step);
            prop_assert!(s.headroom.saturating_mul(s.step) <= cap.saturating_sub(used));
            prop_assert!((0.0..=1.0).contains(&s.ratio));
        }
    }
}
