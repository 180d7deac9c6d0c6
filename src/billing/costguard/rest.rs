//! CostGuard REST (JSON) wire types, shared by the client and the simulator.
//! Field names are the platform's; see API-NOTES.md for the pinned shapes. Amounts stay
//! the platform's text ([`RawAmount`]) until a workflow validates them with `crate::money`.

use serde::{Deserialize, Serialize};

use crate::money::RawAmount;

/// An IDI collection: `{"value": [...]}` (paging links are ignored: lookups by a unique
/// key return one page).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Collection<T> {
    pub value: Vec<T>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceNumberDetail {
    #[serde(rename = "ServiceNumber")]
    pub service_number: String,
    #[serde(rename = "CustomerID")]
    pub customer_id: i64,
    #[serde(rename = "ServiceID")]
    pub service_id: i64,
    #[serde(rename = "ServiceStatus")]
    pub service_status: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FavoritePricePoint {
    #[serde(rename = "serviceAdvancePayID")]
    pub service_advance_pay_id: i64,
    #[serde(rename = "catalogID")]
    pub catalog_id: i64,
    #[serde(rename = "pricePointID")]
    pub price_point_id: i64,
    #[serde(default)]
    pub description: String,
    pub active: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenewAdvancePayResult {
    #[serde(rename = "renewedAdvancePayProductCount")]
    pub renewed_advance_pay_product_count: i64,
    #[serde(rename = "serviceInformationItemID")]
    pub service_information_item_id: Option<i64>,
}

/// An order (a cart of Order Placement) as the order lookup shows it: a read-only probe
/// of what the order calls did. Money is written as decimal strings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderDetail {
    #[serde(rename = "orderID")]
    pub order_id: i64,
    #[serde(rename = "customerID")]
    pub customer_id: i64,
    #[serde(rename = "orderTypeID")]
    pub order_type_id: i64,
    #[serde(rename = "registerID")]
    pub register_id: Option<i64>,
    /// `Open`, `CheckedOut` (checked out and unchanged since) or `Submitted`.
    pub status: String,
    pub items: Vec<OrderItem>,
    pub tenders: Vec<OrderTender>,
    /// Set once the order is checked out.
    pub subtotal: Option<RawAmount>,
    #[serde(rename = "taxSubtotal")]
    pub tax_subtotal: Option<RawAmount>,
    #[serde(rename = "receiptNumber")]
    pub receipt_number: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderItem {
    #[serde(rename = "serviceInformationItemID")]
    pub service_information_item_id: i64,
    #[serde(rename = "serviceID")]
    pub service_id: i64,
    /// `Restore` or `AdvancePayRenewal`.
    #[serde(rename = "actionType")]
    pub action_type: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderTender {
    #[serde(rename = "tenderInformationItemID")]
    pub tender_information_item_id: i64,
    pub amount: RawAmount,
    #[serde(rename = "tenderTypeID")]
    pub tender_type_id: Option<i64>,
    #[serde(rename = "tenderStatus")]
    pub tender_status: String,
}

/// IDI's REST error body: `{"errors":[{"field":..,"loggingNumber":..,"message":..}]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestErrors {
    pub errors: Vec<RestError>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestError {
    #[serde(default)]
    pub field: Option<String>,
    #[serde(rename = "loggingNumber", default)]
    pub logging_number: Option<i64>,
    pub message: String,
}

impl RestErrors {
    pub fn one(field: &str, message: impl Into<String>) -> Self {
        RestErrors {
            errors: vec![RestError {
                field: Some(field.to_string()),
                logging_number: None,
                message: message.into(),
            }],
        }
    }

    pub fn summary(&self) -> String {
        self.errors
            .iter()
            .map(|e| match &e.field {
                Some(f) if !f.is_empty() => format!("{f}: {}", e.message),
                _ => e.message.clone(),
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Paths of the REST endpoints, relative to `COSTGUARD_URL`. Pinned in one place.
pub mod paths {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

    /// Everything but unreserved characters is percent-encoded in the `$filter` value.
    const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');

    fn segment(s: &str) -> String {
        utf8_percent_encode(s, QUERY_VALUE).to_string()
    }

    /// OData string literal: single-quoted, embedded quotes doubled.
    pub fn odata_quote(s: &str) -> String {
        format!("'{}'", s.replace('\'', "''"))
    }

    pub fn service_number_detail(env: &str, service_number: &str) -> String {
        let filter = format!("ServiceNumber eq {}", odata_quote(service_number));
        format!(
            "/customer/1xa/{}/CoreDataService/ServiceNumberDetail()?$filter={}",
            segment(env),
            segment(&filter)
        )
    }

    pub fn favorite_price_points(env: &str, service_id: i64) -> String {
        format!(
            "/ServiceAndFeatureManagement/2x/{}/api/service/{service_id}/favoriteAdvancePayPricePoint",
            segment(env)
        )
    }

    pub fn renew_advance_pay(env: &str, order_id: i64, service_id: i64) -> String {
        format!(
            "/OrderManagement/2x/{}/api/order/{order_id}/renewAdvancePay/{service_id}",
            segment(env)
        )
    }

    pub fn order(env: &str, order_id: i64) -> String {
        format!("/OrderManagement/2x/{}/api/order/{order_id}", segment(env))
    }

    pub fn order_placement(env: &str) -> String {
        format!("/orderplacement/1xa/{}/", segment(env))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;

    #[test]
    fn pinned_shapes_parse() {
        let detail: Collection<ServiceNumberDetail> = serde_json::from_str(
            r#"{"value":[{"ServiceNumber":"5555555555","CustomerID":10,"ServiceID":169053,"ServiceStatus":"Active"}]}"#,
        )
        .unwrap();
        assert_eq!(detail.value[0].service_id, 169053);
        let fav: Collection<FavoritePricePoint> = serde_json::from_str(
            r#"{"value":[{"serviceAdvancePayID":9001,"catalogID":18,"pricePointID":77,"description":"30 Day Unlimited","active":true}],"@odata.count":1}"#,
        )
        .unwrap();
        assert!(fav.value[0].active);
        let renewed: RenewAdvancePayResult = serde_json::from_str(
            r#"{ "renewedAdvancePayProductCount": 1, "serviceInformationItemID": 11 }"#,
        )
        .unwrap();
        assert_eq!(renewed.renewed_advance_pay_product_count, 1);
        let errors: RestErrors = serde_json::from_str(
            r#"{"errors":[{"field":"Customer","loggingNumber":500032,"message":"Not found"}]}"#,
        )
        .unwrap();
        assert_eq!(errors.summary(), "Customer: Not found");
    }

    #[test]
    fn order_detail_round_trips_its_pinned_shape() {
        let pinned = serde_json::json!({
            "orderID": 7010, "customerID": 10, "orderTypeID": 1013, "registerID": null,
            "status": "Open",
            "items": [{"serviceInformationItemID": 88443, "serviceID": 169053, "actionType": "Restore"}],
            "tenders": [{"tenderInformationItemID": 17, "amount": "14.34", "tenderTypeID": 2, "tenderStatus": "Captured"}],
            "subtotal": null, "taxSubtotal": null, "receiptNumber": null
        });
        let order: OrderDetail = serde_json::from_value(pinned.clone()).unwrap();
        assert_eq!(
            order.tenders[0].amount.validate(2),
            Ok(Decimal::new(1434, 2))
        );
        assert_eq!(order.items[0].action_type, "Restore");
        assert_eq!(serde_json::to_value(&order).unwrap(), pinned);
        assert_eq!(
            paths::order("test", 7010),
            "/OrderManagement/2x/test/api/order/7010"
        );
    }

    #[test]
    fn service_number_is_odata_quoted_then_url_encoded() {
        let path = paths::service_number_detail("test", "5<5&5'5");
        assert_eq!(
            path,
            "/customer/1xa/test/CoreDataService/ServiceNumberDetail()?$filter=ServiceNumber%20eq%20%275%3C5%265%27%275%27"
        );
    }
}
