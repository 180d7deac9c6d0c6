//! The RetailServices service: payments.

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::{Operation, Service};
use crate::xml::{Element, XmlError, XmlWriter};

#[derive(Debug, Clone)]
pub struct CreatePayment {
    pub account_id: i64,
    pub transaction_category: String,
    pub reference: String,
    pub amount: Decimal,
    pub transaction_date: NaiveDate,
}

/// W `API/RetailServices/CreatePayment` (`ret:CreatePaymentRequest`).
impl Operation for CreatePayment {
    const NAME: &'static str = "CreatePayment";
    const SERVICE: Service = Service::RetailServices;
    const REQUEST: &'static str = "CreatePaymentRequest";
    const RESPONSE: &'static str = "CreatePaymentResponse";
    type Response = i64;
    fn write(&self, w: &mut XmlWriter) {
        w.leaf("AccountID", self.account_id)
            .leaf("TransactionCategory", &self.transaction_category)
            .leaf("Reference", &self.reference)
            .leaf("Amount", self.amount)
            // Emersion's documented date format: "DD MMM YYYY".
            .leaf("TransactionDate", self.transaction_date.format("%d %b %Y"));
    }
    fn read(r: &Element) -> Result<i64, XmlError> {
        r.parse_at(&["paymentID"])
    }
}
