//! Durations as people write them in configuration: `250ms`, `30s`, `5m`, `1h`, `7d`, and
//! sums such as `1h30m` (largest unit first). A bare number is refused, unless it is 0:
//! `30` could mean seconds or milliseconds, and guessing wrong costs a retry storm or a
//! stuck stage.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// The units, largest first, with their length in milliseconds.
const UNITS: [(&str, u64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a duration{problem}: use e.g. 250ms, 30s, 5m, 1h")]
pub struct DurationError {
    input: String,
    problem: Problem,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Problem {
    Malformed,
    NoUnit,
    UnknownUnit(String),
    UnitOrder,
    TooLong,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Malformed => Ok(()),
            Problem::NoUnit => f.write_str(" (a number needs a unit)"),
            Problem::UnknownUnit(unit) => write!(f, " (unknown unit {unit:?})"),
            Problem::UnitOrder => f.write_str(" (units go from largest to smallest, once each)"),
            Problem::TooLong => f.write_str(" (too long)"),
        }
    }
}

/// Parses `250ms`, `30s`, `5m`, `1h`, `7d`, `1h30m`, or `0`.
pub fn parse(input: &str) -> Result<Duration, DurationError> {
    let error = |problem| DurationError {
        input: input.to_string(),
        problem,
    };
    let text = input.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        return Err(error(Problem::Malformed));
    }
    let mut rest = text;
    let mut total: u64 = 0;
    // Index into UNITS of the last unit read: each later one must be smaller.
    let mut last: Option<usize> = None;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(error(Problem::Malformed));
        }
        let (number, tail) = rest.split_at(digits);
        let letters = tail
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(letters);
        if unit.is_empty() {
            return Err(error(if tail.is_empty() {
                Problem::NoUnit
            } else {
                Problem::Malformed
            }));
        }
        let Some(index) = UNITS.iter().position(|(name, _)| *name == unit) else {
            return Err(error(Problem::UnknownUnit(unit.to_string())));
        };
        if last.is_some_and(|last| index <= last) {
            return Err(error(Problem::UnitOrder));
        }
        last = Some(index);
        total = number
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(UNITS[index].1))
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(|| error(Problem::TooLong))?;
        rest = tail;
    }
    Ok(Duration::from_millis(total))
}

/// Writes a duration the way [`parse`] reads it, in whole milliseconds: `1h30m`, `250ms`,
/// `0s`.
pub fn format(duration: Duration) -> String {
    let mut ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        return "0s".into();
    }
    let mut text = String::new();
    for (unit, length) in UNITS {
        if ms >= length {
            text.push_str(&format!("{}{unit}", ms / length));
            ms %= length;
        }
    }
    text
}

/// For `#[serde(serialize_with)]`: a duration as its text.
pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format(*duration))
}

/// For `#[serde(deserialize_with)]` on an `Option<Duration>`: a duration from its text.
pub fn deserialize_option<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    Option::<String>::deserialize(deserializer)?
        .map(|text| parse(&text).map_err(serde::de::Error::custom))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_unit_and_sums() {
        let cases = [
            ("250ms", 250),
            ("30s", 30_000),
            ("5m", 300_000),
            ("1h", 3_600_000),
            ("7d", 604_800_000),
            ("1h30m", 5_400_000),
            ("1m500ms", 60_500),
            (" 2s ", 2_000),
            ("0", 0),
            ("0ms", 0),
        ];
        for (text, ms) in cases {
            assert_eq!(parse(text), Ok(Duration::from_millis(ms)), "{text}");
        }
    }

    #[test]
    fn errors_say_what_was_wrong() {
        let message = |text: &str| parse(text).unwrap_err().to_string();
        assert_eq!(
            message("5x"),
            r#""5x" is not a duration (unknown unit "x"): use e.g. 250ms, 30s, 5m, 1h"#
        );
        assert!(message("30000").contains("(a number needs a unit)"));
        assert!(message("30s5m").contains("largest to smallest"));
        assert!(message("1s1s").contains("largest to smallest"));
        assert!(message("99999999999999999999d").contains("too long"));
        for malformed in ["", "s", "-5s", "1.5s", "5 s", "ms5"] {
            assert!(
                message(malformed).starts_with(&format!("{malformed:?} is not a duration: use")),
                "{malformed}: {}",
                message(malformed)
            );
        }
    }

    #[test]
    fn formats_what_it_reads() {
        for (ms, text) in [
            (0, "0s"),
            (250, "250ms"),
            (30_000, "30s"),
            (5_400_000, "1h30m"),
            (604_800_000, "7d"),
            (90_061_001, "1d1h1m1s1ms"),
        ] {
            let duration = Duration::from_millis(ms);
            assert_eq!(format(duration), text);
            assert_eq!(parse(text), Ok(duration));
        }
    }
}
