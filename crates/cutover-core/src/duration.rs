//! Durations as users write them, on the command line, in the config file and in runbooks:
//! `250ms`, `2s`, `1m30s`, `1h`, `90d`, `1w 2d` (humantime's grammar, surrounding spaces
//! ignored). Every command reads them here, so a spelling that works for one works for all.
//!
//! What differs between settings is not the spelling but the range: a `--grace` may be zero,
//! a forecast horizon may not, a runbook step longer than a week is a typo. A [`Setting`]
//! says so, and names the examples its messages show.

use std::time::Duration;

/// What one setting accepts beyond the spelling, and how its messages read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setting {
    /// Examples shown when the text is not a duration, e.g. `100ms, 2s or 5m`.
    pub examples: &'static str,
    /// `None`: zero is a valid value. `Some(advice)`: zero is refused, with this advice
    /// after "is zero; ".
    pub zero: Option<&'static str>,
    /// The longest value and how a longer one is described (`longer than a week`).
    pub max: Option<(Duration, &'static str)>,
}

/// Any duration, zero included, without an upper bound: timeouts, intervals, offsets.
pub const ANY: Setting = Setting {
    examples: "100ms, 2s or 5m",
    zero: None,
    max: None,
};

/// Why a text is not a duration for a setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("an empty duration; write e.g. {examples}")]
    Empty { examples: &'static str },
    /// A bare number is ambiguous (seconds? minutes?): the message asks for the unit.
    #[error("`{text}` has no unit; write e.g. {text}s or {text}m (s, m, h, d)")]
    NoUnit { text: String },
    #[error("`{text}` is not a duration like {examples} ({reason})")]
    NotADuration {
        text: String,
        examples: &'static str,
        reason: String,
    },
    #[error("`{text}` is zero; {advice}")]
    Zero { text: String, advice: &'static str },
    #[error("`{text}` is {limit}")]
    TooLong { text: String, limit: &'static str },
}

/// Reads `s` as a duration of any length ([`ANY`]).
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    parse(s, &ANY)
}

/// Reads `s` as a duration for `setting`.
pub fn parse(s: &str, setting: &Setting) -> Result<Duration, DurationError> {
    let text = s.trim();
    if text.is_empty() {
        return Err(DurationError::Empty {
            examples: setting.examples,
        });
    }
    // `0` alone is zero in any unit; any other bare number needs one.
    if text != "0" && text.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(DurationError::NoUnit { text: text.into() });
    }
    let d = humantime::parse_duration(text).map_err(|e| DurationError::NotADuration {
        text: text.into(),
        examples: setting.examples,
        reason: e.to_string(),
    })?;
    if let (true, Some(advice)) = (d.is_zero(), setting.zero) {
        return Err(DurationError::Zero {
            text: text.into(),
            advice,
        });
    }
    if let Some((max, limit)) = setting.max {
        if d > max {
            return Err(DurationError::TooLong {
                text: text.into(),
                limit,
            });
        }
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const STEP: Setting = Setting {
        examples: "90s, 5m or 1h30m",
        zero: Some("a step takes some time"),
        max: Some((Duration::from_secs(7 * 86_400), "longer than a week")),
    };

    #[test]
    fn spellings() {
        for (text, secs) in [
            ("250ms", 0.25),
            ("2s", 2.0),
            (" 1m30s ", 90.0),
            ("1h", 3600.0),
            ("90d", 90.0 * 86_400.0),
            ("1w 2d", 9.0 * 86_400.0),
            ("0", 0.0),
            ("0s", 0.0),
        ] {
            assert_eq!(parse_duration(text).unwrap().as_secs_f64(), secs, "{text}");
        }
    }

    #[test]
    fn messages() {
        let msg = |s: &str, setting: &Setting| parse(s, setting).unwrap_err().to_string();
        assert_eq!(
            msg("", &ANY),
            "an empty duration; write e.g. 100ms, 2s or 5m"
        );
        assert_eq!(
            msg(" 5 ", &ANY),
            "`5` has no unit; write e.g. 5s or 5m (s, m, h, d)"
        );
        assert!(msg("5 minutes please", &ANY)
            .starts_with("`5 minutes please` is not a duration like 100ms, 2s or 5m ("));
        assert_eq!(msg("0s", &STEP), "`0s` is zero; a step takes some time");
        assert_eq!(msg("0", &STEP), "`0` is zero; a step takes some time");
        assert_eq!(msg("8d", &STEP), "`8d` is longer than a week");
        assert_eq!(parse("7d", &STEP), Ok(Duration::from_secs(7 * 86_400)));
    }

    proptest! {
        #[test]
        fn any_text_is_an_answer_never_a_panic(s in "\\PC{0,40}") {
            let _ = parse_duration(&s);
            let _ = parse(&s, &STEP);
        }

        #[test]
        fn units_combine(d in 0u64..400, h in 0u64..24, m in 0u64..60, s in 0u64..60, ms in 0u64..1000) {
            let text = format!("{d}d {h}h {m}m {s}s {ms}ms");
            let want = Duration::from_millis((((d * 24 + h) * 60 + m) * 60 + s) * 1000 + ms);
            prop_assert_eq!(parse_duration(&text), Ok(want));
        }
    }
}
