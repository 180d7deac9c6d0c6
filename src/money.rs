//! Amounts of money that come from outside billflow (platform answers, commands): read
//! from text by strict rules, bounded, at most the currency's scale, added only with
//! checked arithmetic. Wire types carry such amounts as [`RawAmount`] until a workflow
//! validates them here.

use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize};

/// Longest amount text looked at; anything longer is refused before parsing.
pub const MAX_TEXT_LEN: usize = 40;

/// Every accepted amount, and every sum of them, is strictly between -LIMIT and LIMIT.
pub const LIMIT: Decimal = Decimal::from_parts(1_000_000_000, 0, 0, false, 0);

/// The most decimal places any amount may have, whatever the currency: with at most nine
/// whole digits, every accepted amount is held exactly. The scale for amounts checked
/// before they meet a currency (a command's, the simulator's).
pub const MAX_SCALE: u32 = 18;

/// Why an amount was refused. Each message names the value and the rule it broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error(
        "amount {prefix:?}… is {len} bytes long, more than the {MAX_TEXT_LEN} an amount may have"
    )]
    TooLong { prefix: String, len: usize },
    #[error("amount {0:?} is not a plain decimal (digits, optionally a leading minus and a point followed by digits; no exponent, no NaN)")]
    NotDecimal(String),
    #[error("amount {0:?} is out of range: its magnitude must be below {LIMIT}")]
    OutOfRange(String),
    #[error("amount {value:?} has more than {scale} decimal places")]
    TooPrecise { value: String, scale: u32 },
    #[error("amount {0:?} is negative")]
    Negative(String),
    #[error("amount {0} is not positive")]
    NotPositive(Decimal),
    #[error("{0} + {1} overflows")]
    Overflow(Decimal, Decimal),
}

/// Parses an amount: `-?[0-9]+(\.[0-9]+)?`, at most [`MAX_TEXT_LEN`] bytes, below
/// [`LIMIT`] in magnitude, at most `scale` decimal places once trailing zeros are dropped.
/// The result keeps no more than `scale` places, so `14.340` comes back as `14.34`.
pub fn parse(text: &str, scale: u32) -> Result<Decimal, MoneyError> {
    if text.len() > MAX_TEXT_LEN {
        return Err(MoneyError::TooLong {
            prefix: text.chars().take(MAX_TEXT_LEN).collect(),
            len: text.len(),
        });
    }
    let not_decimal = || MoneyError::NotDecimal(text.to_string());
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || (unsigned.contains('.') && !digits(fraction)) {
        return Err(not_decimal());
    }
    let whole = whole.trim_start_matches('0');
    let significant = fraction.trim_end_matches('0');
    // 10^9 has ten digits: a whole part of more than nine is out of range, whatever follows.
    if whole.len() > 9 {
        return Err(MoneyError::OutOfRange(text.to_string()));
    }
    let scale = scale.min(MAX_SCALE);
    if significant.len() > scale as usize {
        return Err(MoneyError::TooPrecise {
            value: text.to_string(),
            scale,
        });
    }
    // At most 9 + MAX_SCALE digits: always held exactly.
    let sign = if negative { "-" } else { "" };
    let whole = if whole.is_empty() { "0" } else { whole };
    let mut value = Decimal::from_str_exact(&format!("{sign}{whole}.{significant}0"))
        .map_err(|_| not_decimal())?;
    // Back to the places the text had, up to the scale: "12.00" stays 12.00.
    value.rescale(u32::try_from(fraction.len()).map_or(scale, |places| places.min(scale)));
    if value.is_zero() {
        value.set_sign_positive(true);
    }
    in_range(value, text)?;
    Ok(value)
}

/// Checks an amount already held as a `Decimal` by the rules of [`parse`].
pub fn check(value: Decimal, scale: u32) -> Result<Decimal, MoneyError> {
    let text = value.to_string();
    in_range(value, &text)?;
    if value.normalize().scale() > scale.min(MAX_SCALE) {
        return Err(MoneyError::TooPrecise { value: text, scale });
    }
    Ok(trimmed(value, scale))
}

/// `a + b`, refused when it overflows or leaves the range.
pub fn add(a: Decimal, b: Decimal) -> Result<Decimal, MoneyError> {
    let sum = a.checked_add(b).ok_or(MoneyError::Overflow(a, b))?;
    in_range(sum, &sum.to_string())?;
    Ok(sum)
}

/// The sum of amounts, each addition checked as in [`add`].
pub fn sum(amounts: impl IntoIterator<Item = Decimal>) -> Result<Decimal, MoneyError> {
    amounts.into_iter().try_fold(Decimal::ZERO, add)
}

/// Refuses a negative amount.
pub fn not_negative(value: Decimal) -> Result<Decimal, MoneyError> {
    if value.is_sign_negative() && !value.is_zero() {
        return Err(MoneyError::Negative(value.to_string()));
    }
    Ok(value)
}

/// Refuses a zero or negative amount.
pub fn positive(value: Decimal) -> Result<Decimal, MoneyError> {
    if value <= Decimal::ZERO {
        return Err(MoneyError::NotPositive(value));
    }
    Ok(value)
}

fn in_range(value: Decimal, text: &str) -> Result<(), MoneyError> {
    if value.abs() >= LIMIT {
        return Err(MoneyError::OutOfRange(text.to_string()));
    }
    Ok(())
}

/// Drops trailing zeros beyond `scale`; the caller has checked none of them is significant.
fn trimmed(mut value: Decimal, scale: u32) -> Decimal {
    if value.scale() > scale {
        value.rescale(scale);
    }
    value
}

/// An amount exactly as a platform wrote it, not yet trusted: read it with
/// [`RawAmount::validate`]. Serialized as the JSON string it came as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RawAmount(String);

impl RawAmount {
    pub fn new(text: impl Into<String>) -> Self {
        RawAmount(text.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn validate(&self, scale: u32) -> Result<Decimal, MoneyError> {
        parse(&self.0, scale)
    }
}

impl From<Decimal> for RawAmount {
    fn from(value: Decimal) -> Self {
        RawAmount(value.to_string())
    }
}

impl fmt::Display for RawAmount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `deserialize_with` for an amount in a command: a JSON string read by [`parse`], or a
/// JSON number read the same way from its shortest decimal form. The currency's scale is
/// applied later, by the workflow, which knows it.
pub fn deserialize_amount<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    struct Visitor;

    impl serde::de::Visitor<'_> for Visitor {
        type Value = Decimal;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a decimal amount as a string, e.g. \"49.95\"")
        }

        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Decimal, E> {
            parse(v, MAX_SCALE).map_err(E::custom)
        }

        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Decimal, E> {
            self.visit_str(&v.to_string())
        }

        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Decimal, E> {
            self.visit_str(&v.to_string())
        }

        // Rust prints a float in its shortest exact form and never with an exponent.
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Decimal, E> {
            self.visit_str(&v.to_string())
        }
    }

    d.deserialize_any(Visitor)
}

/// JSON Schema of an amount read by [`deserialize_amount`].
pub fn amount_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": ["string", "number"],
        "pattern": "^-?[0-9]+(\\.[0-9]+)?$",
        "maxLength": MAX_TEXT_LEN
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn parse_accepts_plain_amounts_within_the_scale() {
        for (text, scale, expected) in [
            ("14.34", 2, "14.34"),
            ("0", 2, "0"),
            ("12", 2, "12"),
            ("-11.99", 2, "-11.99"),
            ("14.340", 2, "14.34"),
            ("14.3400000000000000000000000000", 2, "14.34"),
            ("0007.5", 2, "7.5"),
            ("999999999.99", 2, "999999999.99"),
            ("-999999999", 0, "-999999999"),
            ("1.234", 3, "1.234"),
            ("000000000000000000000000000001.00", 2, "1.00"),
        ] {
            let value = parse(text, scale).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(value.to_string(), expected, "{text}");
        }
    }

    #[test]
    fn parse_refuses_what_is_not_a_sane_amount() {
        let not_decimal = |s: &str| MoneyError::NotDecimal(s.to_string());
        let range = |s: &str| MoneyError::OutOfRange(s.to_string());
        let precise = |s: &str, scale| MoneyError::TooPrecise {
            value: s.to_string(),
            scale,
        };
        for (text, scale, expected) in [
            ("", 2, not_decimal("")),
            ("NaN", 2, not_decimal("NaN")),
            ("inf", 2, not_decimal("inf")),
            ("1e5", 2, not_decimal("1e5")),
            ("1E5", 2, not_decimal("1E5")),
            ("+1", 2, not_decimal("+1")),
            ("-", 2, not_decimal("-")),
            ("--1", 2, not_decimal("--1")),
            (".5", 2, not_decimal(".5")),
            ("5.", 2, not_decimal("5.")),
            ("1.2.3", 2, not_decimal("1.2.3")),
            (" 1", 2, not_decimal(" 1")),
            ("1,00", 2, not_decimal("1,00")),
            ("١٢", 2, not_decimal("١٢")),
            ("0x10", 2, not_decimal("0x10")),
            ("14.349999999999", 2, precise("14.349999999999", 2)),
            ("0.001", 2, precise("0.001", 2)),
            ("1.5", 0, precise("1.5", 0)),
            ("1000000000", 2, range("1000000000")),
            ("-1000000000.00", 2, range("-1000000000.00")),
            (
                "79228162514264337593543950335",
                2,
                range("79228162514264337593543950335"),
            ),
            ("99999999999999999999.5", 2, range("99999999999999999999.5")),
        ] {
            assert_eq!(parse(text, scale), Err(expected), "{text:?}");
        }
        let long = "1".repeat(41);
        assert!(matches!(
            parse(&long, 2),
            Err(MoneyError::TooLong { len: 41, .. })
        ));
        // The error never slices a multi-byte character.
        let wide = "é".repeat(30);
        assert!(matches!(parse(&wide, 2), Err(MoneyError::TooLong { .. })));
    }

    #[test]
    fn every_message_names_the_value_and_the_rule() {
        let cases = [
            (parse("1e5", 2), ["\"1e5\"", "no exponent"]),
            (
                parse("14.349999999999", 2),
                ["14.349999999999", "2 decimal places"],
            ),
            (parse("1000000000", 2), ["1000000000", "below 1000000000"]),
            (not_negative(dec("-1")), ["-1", "negative"]),
            (positive(Decimal::ZERO), ["0", "not positive"]),
        ];
        for (result, needles) in cases {
            let message = result.unwrap_err().to_string();
            for needle in needles {
                assert!(message.contains(needle), "{message:?} lacks {needle:?}");
            }
        }
    }

    #[test]
    fn check_applies_the_same_rules_to_decimals() {
        assert_eq!(check(dec("14.340"), 2).unwrap().to_string(), "14.34");
        assert_eq!(
            check(dec("14.349999999999"), 2),
            Err(MoneyError::TooPrecise {
                value: "14.349999999999".into(),
                scale: 2
            })
        );
        assert!(matches!(
            check(Decimal::MAX, 2),
            Err(MoneyError::OutOfRange(_))
        ));
        assert!(matches!(
            check(Decimal::MIN, 2),
            Err(MoneyError::OutOfRange(_))
        ));
    }

    #[test]
    fn arithmetic_is_checked() {
        assert_eq!(add(dec("11.99"), dec("2.35")).unwrap(), dec("14.34"));
        assert_eq!(
            add(Decimal::MAX, Decimal::ONE),
            Err(MoneyError::Overflow(Decimal::MAX, Decimal::ONE))
        );
        assert!(matches!(
            add(dec("999999999"), dec("1")),
            Err(MoneyError::OutOfRange(_))
        ));
        assert_eq!(
            sum([dec("1.10"), dec("2.20"), dec("3.30")]).unwrap(),
            dec("6.60")
        );
        assert_eq!(sum([]).unwrap(), Decimal::ZERO);
        assert!(sum([Decimal::MAX, Decimal::MAX]).is_err());
        assert_eq!(positive(dec("0.01")).unwrap(), dec("0.01"));
        assert!(positive(dec("-0.01")).is_err());
        assert_eq!(not_negative(Decimal::ZERO).unwrap(), Decimal::ZERO);
        assert_eq!(not_negative(dec("-0")).unwrap(), Decimal::ZERO);
    }

    #[test]
    fn raw_amounts_keep_their_text() {
        let raw: RawAmount = serde_json::from_str(r#""1e5""#).unwrap();
        assert_eq!(raw.as_str(), "1e5");
        assert_eq!(serde_json::to_string(&raw).unwrap(), r#""1e5""#);
        assert!(raw.validate(2).is_err());
        assert!(serde_json::from_str::<RawAmount>("14.34").is_err());
        assert_eq!(
            RawAmount::from(dec("14.34")).validate(2).unwrap(),
            dec("14.34")
        );
    }

    #[test]
    fn command_amounts_are_read_strictly() {
        #[derive(Deserialize)]
        struct Payment {
            #[serde(deserialize_with = "deserialize_amount")]
            amount: Decimal,
        }
        let read = |json: &str| serde_json::from_str::<Payment>(json).map(|p| p.amount);
        assert_eq!(read(r#"{"amount":"49.95"}"#).unwrap(), dec("49.95"));
        assert_eq!(read(r#"{"amount":49.95}"#).unwrap(), dec("49.95"));
        assert_eq!(read(r#"{"amount":50}"#).unwrap(), dec("50"));
        for bad in [
            r#"{"amount":"1e5"}"#,
            r#"{"amount":"NaN"}"#,
            r#"{"amount":""}"#,
            r#"{"amount":"79228162514264337593543950335"}"#,
            r#"{"amount":1e300}"#,
            r#"{"amount":"0.0000000000000000000000000000001"}"#,
            r#"{"amount":true}"#,
            r#"{"amount":null}"#,
        ] {
            assert!(read(bad).is_err(), "{bad}");
        }
    }
}
