//! Durations as runbooks write them (`90s`, `5m`, `1h30m`) and as reports show them.

use std::time::Duration;

use cutover_core::duration::{self, DurationError, Setting};

/// The longest duration a runbook may give: a step, a timeout or an approval window of more
/// than a week is a typo, not a plan.
pub const MAX: Duration = Duration::from_secs(7 * 24 * 3600);

/// What a runbook's `expect`, `timeout` and approval windows accept.
pub const STEP: Setting = Setting {
    examples: "90s, 5m or 1h30m",
    zero: Some("a step takes some time"),
    max: Some((MAX, "longer than a week")),
};

/// Parses `250ms`, `90s`, `5m`, `1h30m`, `2h 15m`. Zero and more than a week are refused.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    duration::parse(s, &STEP)
}

/// Seconds as a short human duration: `850ms`, `42s`, `4m05s`, `1h02m`.
pub fn human(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "?".into();
    }
    if secs < 1.0 {
        return format!("{:.0}ms", secs * 1000.0);
    }
    if secs < 60.0 {
        let s = format!("{secs:.1}");
        return format!("{}s", s.strip_suffix(".0").unwrap_or(&s));
    }
    let total = secs.round() as u64;
    let (h, m, s) = (total / 3600, (total % 3600) / 60, total % 60);
    if h > 0 {
        format!("{h}h{m:02}m")
    } else {
        format!("{m}m{s:02}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn examples() {
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration(" 1h30m "), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("5")
            .unwrap_err()
            .to_string()
            .contains("no unit"));
        assert!(parse_duration("0s")
            .unwrap_err()
            .to_string()
            .contains("zero"));
        assert!(parse_duration("5 minutes please").is_err());
        assert!(parse_duration("9999d")
            .unwrap_err()
            .to_string()
            .contains("week"));
        assert!(parse_duration("").is_err());
        assert_eq!(human(0.25), "250ms");
        assert_eq!(human(42.0), "42s");
        assert_eq!(human(2.5), "2.5s");
        assert_eq!(human(245.0), "4m05s");
        assert_eq!(human(3720.0), "1h02m");
    }

    proptest! {
        #[test]
        fn any_text_is_an_answer_never_a_panic(s in "\\PC{0,40}") {
            let _ = parse_duration(&s);
        }

        #[test]
        fn units_combine(h in 0u64..48, m in 0u64..60, s in 0u64..60) {
            prop_assume!(h + m + s > 0);
            let text = format!("{h}h{m}m{s}s");
            prop_assert_eq!(parse_duration(&text), Ok(Duration::from_secs(h * 3600 + m * 60 + s)));
        }

        #[test]
        fn human_is_total(x in proptest::num::f64::ANY) {
            let _ = human(x);
        }
    }
}
