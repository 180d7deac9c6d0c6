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

/// One service item of an order, from Order Management's "Search Service Item
/// Summaries" (`GET .../order/{orderID}/serviceItemSummary`); help.idibilling.com
/// "Adding an AdvancePay Product" documents these fields, and that the
/// serviceInformationItemID must come from the order, never be derived from the
/// ServiceID. Other fields the platform sends are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceItemSummary {
    #[serde(rename = "serviceInformationItemID")]
    pub service_information_item_id: i64,
    #[serde(rename = "serviceID")]
    pub service_id: i64,
    #[serde(rename = "serviceNumber", default)]
    pub service_number: Option<String>,
}

/// The most items one page may hold: Order Management's `$top` cap ("Order Management
/// REST Service (2.45)": "up to 500").
pub const MAX_PAGE_ITEMS: usize = 500;

/// Longest service number accepted from a summary; real ones are phone-number sized.
const MAX_SERVICE_NUMBER_CHARS: usize = 64;

/// An order's service items: one page of an Order Management collection,
/// `{"@count", "@nextLink", "value"}` as "Order Management REST Service (2.45)" shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceItemSummaries {
    #[serde(rename = "@count", default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
    #[serde(rename = "@nextLink", default, skip_serializing_if = "Option::is_none")]
    pub next_link: Option<String>,
    #[serde(deserialize_with = "at_most_a_page")]
    pub value: Vec<ServiceItemSummary>,
}

impl ServiceItemSummaries {
    /// The answer, its ids and texts checked: a hostile or broken answer is an error,
    /// never a guess about what the order holds.
    pub fn checked(self) -> Result<Self, String> {
        if let Some(count) = self.count.filter(|c| *c < 0) {
            return Err(format!("@count {count} is negative"));
        }
        for item in &self.value {
            if item.service_information_item_id <= 0 || item.service_id <= 0 {
                return Err(format!(
                    "serviceInformationItemID {} / serviceID {} is not a positive id",
                    item.service_information_item_id, item.service_id
                ));
            }
            if let Some(number) = &item.service_number {
                if number.chars().count() > MAX_SERVICE_NUMBER_CHARS {
                    return Err(format!(
                        "serviceNumber longer than {MAX_SERVICE_NUMBER_CHARS} characters"
                    ));
                }
            }
        }
        Ok(self)
    }

    /// Whether this page is the whole list: no next page, and no more items counted.
    pub fn is_complete(&self) -> bool {
        let listed = i64::try_from(self.value.len()).unwrap_or(i64::MAX);
        self.next_link.is_none() && self.count.is_none_or(|c| c <= listed)
    }
}

/// A JSON array of at most [`MAX_PAGE_ITEMS`], refused as soon as it is longer.
fn at_most_a_page<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct Page<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Page<T> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "an array of at most {MAX_PAGE_ITEMS} items")
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut items = Vec::new();
            while let Some(item) = seq.next_element()? {
                if items.len() == MAX_PAGE_ITEMS {
                    return Err(serde::de::Error::custom(format!(
                        "more than {MAX_PAGE_ITEMS} items in one page"
                    )));
                }
                items.push(item);
            }
            Ok(items)
        }
    }
    deserializer.deserialize_seq(Page(std::marker::PhantomData))
}

/// An order (a cart of Order Placement) as the order lookup shows it: a read-only probe
/// of what the order calls did. Money is written as decimal strings.
// pinned: no IDI page shows an order read with items, tenders and status (API-NOTES.md,
// API-FINDINGS.md "CostGuard / IDI": order-status call not found). Used only by the
// probes behind COSTGUARD_PINNED_ORDER_PROBES; serviceItemSummary is the documented read.
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

    /// The pinned order read (see [`super::OrderDetail`]).
    pub fn order(env: &str, order_id: i64) -> String {
        format!("/OrderManagement/2x/{}/api/order/{order_id}", segment(env))
    }

    /// Search Service Item Summaries (help.idibilling.com "Adding an AdvancePay Product").
    pub fn service_item_summary(env: &str, order_id: i64) -> String {
        format!(
            "/OrderManagement/2x/{}/api/order/{order_id}/serviceItemSummary",
            segment(env)
        )
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

    fn summaries(body: &str) -> Result<ServiceItemSummaries, String> {
        serde_json::from_str::<ServiceItemSummaries>(body)
            .map_err(|e| e.to_string())
            .and_then(ServiceItemSummaries::checked)
    }

    #[test]
    fn service_item_summary_reads_the_documented_fields() {
        // The fields of "Adding an AdvancePay Product" in the 2.45 collection shape.
        let page = summaries(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/costguard/service_item_summary.response.json"
        )))
        .unwrap();
        assert_eq!(
            page.value,
            [ServiceItemSummary {
                service_information_item_id: 88443,
                service_id: 169053,
                service_number: Some("5555555555".into()),
            }]
        );
        assert!(page.is_complete());
        assert_eq!(
            paths::service_item_summary("te st", 7010),
            "/OrderManagement/2x/te%20st/api/order/7010/serviceItemSummary"
        );
        // Fields it does not know are ignored; an empty order is a complete empty list.
        let page = summaries(
            r#"{"value":[{"serviceInformationItemID":1,"serviceID":2,"extra":{"a":[1]}}]}"#,
        )
        .unwrap();
        assert_eq!(page.value[0].service_number, None);
        assert!(summaries(r#"{"@count":0,"value":[]}"#)
            .unwrap()
            .is_complete());
    }

    #[test]
    fn a_paged_service_item_summary_is_not_complete() {
        let item = r#"{"serviceInformationItemID":1,"serviceID":2}"#;
        let next = format!(
            r#"{{"@count":2,"@nextLink":"https://api.idibilling.com/x?$skip=1","value":[{item}]}}"#
        );
        assert!(!summaries(&next).unwrap().is_complete());
        let counted = format!(r#"{{"@count":2,"value":[{item}]}}"#);
        assert!(!summaries(&counted).unwrap().is_complete());
    }

    #[test]
    fn hostile_service_item_summaries_are_refused() {
        let item = r#"{"serviceInformationItemID":1,"serviceID":2}"#;
        let huge = format!(
            r#"{{"value":[{}]}}"#,
            vec![item; MAX_PAGE_ITEMS + 1].join(",")
        );
        let full = format!(r#"{{"value":[{}]}}"#, vec![item; MAX_PAGE_ITEMS].join(","));
        assert_eq!(summaries(&full).unwrap().value.len(), MAX_PAGE_ITEMS);
        let long_number = format!(
            r#"{{"value":[{{"serviceInformationItemID":1,"serviceID":2,"serviceNumber":"{}"}}]}}"#,
            "5".repeat(65)
        );
        for (body, needle) in [
            (huge.as_str(), "more than 500 items"),
            (
                r#"{"value":[{"serviceInformationItemID":-1,"serviceID":2}]}"#,
                "not a positive id",
            ),
            (
                r#"{"value":[{"serviceInformationItemID":1,"serviceID":0}]}"#,
                "not a positive id",
            ),
            (r#"{"@count":-3,"value":[]}"#, "negative"),
            (long_number.as_str(), "longer than 64"),
            (
                r#"{"value":[{"serviceInformationItemID":"1","serviceID":2}]}"#,
                "invalid type",
            ),
            (
                r#"{"value":[{"serviceInformationItemID":1e3,"serviceID":2}]}"#,
                "invalid type",
            ),
            (
                r#"{"value":[{"serviceInformationItemID":99999999999999999999,"serviceID":2}]}"#,
                "",
            ),
            (r#"{"value":[{"serviceID":2}]}"#, "missing field"),
            (r#"{"value":{}}"#, "an array of at most 500 items"),
            (r#"{"items":[]}"#, "missing field `value`"),
            (r#"{"value":[{"#, "EOF"),
            ("", "EOF"),
        ] {
            let err = summaries(body).unwrap_err();
            assert!(err.contains(needle), "{body}: {err}");
        }
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
