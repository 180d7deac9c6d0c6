//! The amounts CostGuard answers, validated for the currency's scale (`crate::money`)
//! before they are used or passed on: a bad one fails its stage permanently, as the
//! platform's answer will not improve.

use rust_decimal::Decimal;

use super::pay::CheckedOut;
use crate::billing::costguard::rest::OrderTender;
use crate::billing::costguard::soap::CartSummary;
use crate::money::{self, MoneyError, RawAmount};
use crate::workflow::StageError;

pub(super) fn bad_amount(what: &str, err: MoneyError) -> StageError {
    StageError::permanent(format!("{what}: {err}"))
}

/// One amount of a platform answer, validated; `what` names it in the error.
pub(super) fn amount(what: &str, raw: &RawAmount, scale: u32) -> Result<Decimal, StageError> {
    raw.validate(scale)
        .and_then(money::not_negative)
        .map_err(|e| bad_amount(what, e))
}

/// Subtotal and TaxSubtotal of a cart summary, validated, and their checked sum.
pub(super) fn totals(
    operation: &str,
    summary: &CartSummary,
    scale: u32,
) -> Result<(Decimal, Decimal, Decimal), StageError> {
    let subtotal = amount(&format!("{operation} Subtotal"), &summary.subtotal, scale)?;
    let tax = amount(
        &format!("{operation} TaxSubtotal"),
        &summary.tax_subtotal,
        scale,
    )?;
    let due = money::add(subtotal, tax).map_err(|e| {
        bad_amount(
            &format!(
                "{operation} Subtotal {:?} + TaxSubtotal {:?}",
                summary.subtotal.as_str(),
                summary.tax_subtotal.as_str()
            ),
            e,
        )
    })?;
    Ok((subtotal, tax, due))
}

/// The amount due of a renewal checkout: it must be positive, as the tender pays it.
pub(super) fn amount_due(summary: &CartSummary, scale: u32) -> Result<CheckedOut, StageError> {
    let (subtotal, tax_subtotal, due) = totals("Checkout", summary, scale)?;
    let amount_due = money::positive(due).map_err(|e| {
        bad_amount(
            &format!(
                "Checkout amount due (Subtotal {:?} + TaxSubtotal {:?})",
                summary.subtotal.as_str(),
                summary.tax_subtotal.as_str()
            ),
            e,
        )
    })?;
    Ok(CheckedOut {
        subtotal,
        tax_subtotal,
        amount_due,
    })
}

/// What the tenders on an order add up to, each amount validated.
pub(super) fn tendered(tenders: &[OrderTender], scale: u32) -> Result<Decimal, StageError> {
    let amounts = tenders
        .iter()
        .map(|t| amount("order lookup tender amount", &t.amount, scale))
        .collect::<Result<Vec<_>, _>>()?;
    money::sum(amounts).map_err(|e| bad_amount("order lookup tenders", e))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::billing::costguard::soap::KeyedId;

    pub(in crate::workflow::advancepay) fn summary(subtotal: &str, tax: &str) -> CartSummary {
        CartSummary {
            cart_id: KeyedId {
                authenticated_key: "k".into(),
                id: 11,
            },
            cart_item_count: 1,
            estimated_mrc: RawAmount::new("0"),
            subtotal: RawAmount::new(subtotal),
            tax_subtotal: RawAmount::new(tax),
        }
    }

    #[test]
    fn the_amount_due_is_validated_and_positive() {
        let ok = amount_due(&summary("11.99", "2.35"), 2).unwrap();
        assert_eq!(ok.amount_due.to_string(), "14.34");
        let ok = amount_due(&summary("11.990", "2.350"), 2).unwrap();
        assert_eq!(ok.amount_due.to_string(), "14.34");
        assert_eq!(
            amount_due(&summary("11.995", "2.35"), 3)
                .unwrap()
                .amount_due
                .to_string(),
            "14.345"
        );
        for (subtotal, tax, needle) in [
            (
                "-11.99",
                "2.35",
                "Checkout Subtotal: amount \"-11.99\" is negative",
            ),
            (
                "11.99",
                "-2.35",
                "Checkout TaxSubtotal: amount \"-2.35\" is negative",
            ),
            ("0", "0", "amount 0 is not positive"),
            ("14.349999999999", "0", "more than 2 decimal places"),
            ("79228162514264337593543950335", "2.35", "out of range"),
            ("999999999.99", "0.01", "out of range"),
            ("1e5", "0", "not a plain decimal"),
            ("NaN", "0", "not a plain decimal"),
            ("", "0", "amount \"\" is not a plain decimal"),
        ] {
            let err = amount_due(&summary(subtotal, tax), 2).unwrap_err();
            assert_eq!(err.failure, crate::billing::Failure::Permanent);
            assert!(err.message.contains(needle), "{}", err.message);
        }
    }

    #[test]
    fn tenders_on_an_order_are_validated_and_summed() {
        let tender = |amount: &str| OrderTender {
            tender_information_item_id: 1,
            amount: RawAmount::new(amount),
            tender_type_id: Some(2),
            tender_status: "Captured".into(),
        };
        assert_eq!(
            tendered(&[tender("10.00"), tender("4.34")], 2)
                .unwrap()
                .to_string(),
            "14.34"
        );
        for bad in ["1e5", "14.349", "-1", "NaN", "1000000000"] {
            let err = tendered(&[tender(bad)], 2).unwrap_err();
            assert!(err.message.contains(&format!("{bad:?}")), "{}", err.message);
        }
        let err = tendered(&[tender("999999999"), tender("1")], 2).unwrap_err();
        assert!(err.message.contains("out of range"), "{}", err.message);
    }
}
