//! The REST (JSON) endpoints: service number lookup, favorite price points, renewAdvancePay,
//! the service item summary of an order and the pinned order lookup.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, OriginalUri, Path, Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use percent_encoding::percent_decode_str;

use super::orders::RestRejection;
use super::{Cart, CostGuard, Item, Simulator};
use crate::billing::costguard::rest::{
    Collection, FavoritePricePoint, OrderDetail, OrderItem, OrderTender, RestErrors,
    ServiceNumberDetail,
};
use crate::money::RawAmount;
use crate::sim::calls::Entry;
use crate::sim::faults::{FaultCode, Wire};

fn rest_error(status: StatusCode, field: &str, message: impl Into<String>) -> Response {
    (status, Json(RestErrors::one(field, message))).into_response()
}

/// Injected failures as IDI's REST API writes errors.
struct RestWire<'a> {
    headers: &'a HeaderMap,
}

impl Wire for RestWire<'_> {
    fn failure(&self, status: StatusCode, message: &str) -> Response {
        rest_error(status, "", message)
    }

    // REST has no SOAP fault; the nearest is the status a SOAP 1.2 binding would use.
    fn fault(&self, code: FaultCode, reason: &str) -> Response {
        let status = match code {
            FaultCode::Receiver => StatusCode::INTERNAL_SERVER_ERROR,
            FaultCode::Sender => StatusCode::BAD_REQUEST,
        };
        rest_error(status, "", reason)
    }

    fn rejection(&self, message: &str) -> Response {
        rest_error(StatusCode::BAD_REQUEST, "", message)
    }

    fn echo_credential(&self, status: StatusCode) -> Response {
        let token = wrap_token(self.headers).unwrap_or_default();
        let mut response = rest_error(
            status,
            "Authorization",
            format!("access_token \"{token}\" is not valid for this environment"),
        );
        response.headers_mut().insert(
            WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("WRAP"),
        );
        response
    }

    fn opening(&self) -> (&'static str, String) {
        ("application/json", "{\"value\":[".into())
    }
}

/// The request as it arrived, for the call log and the WRAP check.
pub(super) struct Arrival {
    method: Method,
    uri: OriginalUri,
    headers: HeaderMap,
    body: Bytes,
}

impl<S: Send + Sync> FromRequest<S> for Arrival {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let Ok(uri) = OriginalUri::from_request_parts(&mut parts, state).await;
        let method = parts.method.clone();
        let headers = parts.headers.clone();
        let body = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(Arrival {
            method,
            uri,
            headers,
            body,
        })
    }
}

impl Arrival {
    /// Logs the call; a call refused for its token is logged too.
    fn record(&self, sim: &Simulator, operation: &str) -> Entry {
        sim.calls().record(
            operation,
            &self.method,
            &self.uri,
            &self.headers,
            &self.body,
        )
    }

    fn wire(&self) -> RestWire<'_> {
        RestWire {
            headers: &self.headers,
        }
    }

    /// The 401 for a call without a WRAP token.
    fn unauthorized(&self) -> Option<Response> {
        if has_wrap_token(&self.headers) {
            return None;
        }
        let mut response = rest_error(
            StatusCode::UNAUTHORIZED,
            "Authorization",
            "an Authorization: WRAP access_token=\"...\" header is required",
        );
        response.headers_mut().insert(
            WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("WRAP"),
        );
        Some(response)
    }
}

/// `Authorization: WRAP access_token="<non-empty>"`; any token is accepted.
fn has_wrap_token(headers: &HeaderMap) -> bool {
    wrap_token(headers).is_some_and(|t| !t.is_empty())
}

/// The token of an `Authorization: WRAP access_token="..."` header.
fn wrap_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, params) = value.trim().split_once(char::is_whitespace)?;
    if !scheme.eq_ignore_ascii_case("WRAP") {
        return None;
    }
    params
        .trim()
        .strip_prefix("access_token=")
        .and_then(|t| t.strip_prefix('"'))
        .and_then(|t| t.strip_suffix('"'))
}

fn id(field: &'static str, raw: &str) -> Result<i64, RestRejection> {
    raw.parse().map_err(|_| RestRejection {
        status: StatusCode::BAD_REQUEST,
        field,
        message: format!("{raw:?} is not a valid id"),
    })
}

fn refused(r: RestRejection) -> Response {
    rest_error(r.status, r.field, r.message)
}

pub(super) async fn service_number_detail(
    State(sim): State<Simulator>,
    arrival: Arrival,
) -> Response {
    const OP: &str = "ServiceNumberDetail";
    arrival.record(&sim, OP);
    if let Some(response) = arrival.unauthorized() {
        return response;
    }
    let query = arrival.uri.query().unwrap_or_default();
    sim.faults()
        .serve(OP, &arrival.wire(), async {
            let number = match service_number_filter(query) {
                Ok(number) => number,
                Err(message) => return rest_error(StatusCode::BAD_REQUEST, "$filter", message),
            };
            let found = sim
                .costguard()
                .lock()
                .by_number(&number)
                .map(|s| ServiceNumberDetail {
                    service_number: s.service_number.clone(),
                    customer_id: s.customer_id,
                    service_id: s.service_id,
                    service_status: s.status.clone(),
                });
            Json(Collection {
                value: found.into_iter().collect(),
            })
            .into_response()
        })
        .await
}

pub(super) async fn favorite_price_points(
    State(sim): State<Simulator>,
    Path((_env, service_id)): Path<(String, String)>,
    arrival: Arrival,
) -> Response {
    const OP: &str = "favoriteAdvancePayPricePoint";
    arrival.record(&sim, OP);
    if let Some(response) = arrival.unauthorized() {
        return response;
    }
    sim.faults()
        .serve(OP, &arrival.wire(), async {
            let service_id = match id("serviceId", &service_id) {
                Ok(id) => id,
                Err(r) => return refused(r),
            };
            let cg = sim.costguard().lock();
            let Some(service) = cg.services.get(&service_id) else {
                return rest_error(
                    StatusCode::NOT_FOUND,
                    "Service",
                    format!("Service {service_id} was not found"),
                );
            };
            let value = service
                .favorites
                .iter()
                .map(|f| FavoritePricePoint {
                    service_advance_pay_id: f.service_advance_pay_id,
                    catalog_id: f.catalog_id,
                    price_point_id: f.price_point_id,
                    description: f.description.clone(),
                    active: f.active,
                })
                .collect();
            Json(Collection { value }).into_response()
        })
        .await
}

pub(super) async fn renew_advance_pay(
    State(sim): State<Simulator>,
    Path((_env, order_id, service_id)): Path<(String, String, String)>,
    arrival: Arrival,
) -> Response {
    const OP: &str = "renewAdvancePay";
    let entry = arrival.record(&sim, OP);
    if let Some(response) = arrival.unauthorized() {
        return response;
    }
    sim.faults()
        .serve(OP, &arrival.wire(), async {
            let (order_id, service_id) =
                match (id("orderId", &order_id), id("serviceId", &service_id)) {
                    (Ok(order), Ok(service)) => (order, service),
                    (Err(r), _) | (_, Err(r)) => return refused(r),
                };
            let body = &arrival.body;
            if !body.is_empty() && serde_json::from_slice::<serde_json::Value>(body).is_err() {
                return rest_error(StatusCode::BAD_REQUEST, "body", "the body is not JSON");
            }
            let renewed = sim
                .costguard()
                .lock()
                .renew_advance_pay(order_id, service_id);
            match renewed {
                Ok(result) => {
                    // A service without an active favorite adds nothing to the order.
                    if result.renewed_advance_pay_product_count > 0 {
                        sim.calls().mark_applied(entry);
                    }
                    Json(result).into_response()
                }
                Err(r) => refused(r),
            }
        })
        .await
}

/// Search Service Item Summaries: the service items the order holds now, one per
/// service information item, in the 2.45 collection shape. Read-only.
pub(super) async fn service_item_summary(
    State(sim): State<Simulator>,
    Path((_env, order_id)): Path<(String, String)>,
    arrival: Arrival,
) -> Response {
    order_read(sim, "serviceItemSummary", &order_id, arrival, |cg, cart| {
        Json(cg.service_items(cart)).into_response()
    })
    .await
}

/// The pinned, undocumented order lookup (see `rest::OrderDetail`), for the probes behind
/// COSTGUARD_PINNED_ORDER_PROBES.
pub(super) async fn order(
    State(sim): State<Simulator>,
    Path((_env, order_id)): Path<(String, String)>,
    arrival: Arrival,
) -> Response {
    order_read(sim, "getOrder", &order_id, arrival, |_, cart| {
        Json(order_detail(cart)).into_response()
    })
    .await
}

/// A read of one order (a cart by its id) under operation `op`: recorded, authenticated,
/// subject to faults, 404 for an order that does not exist.
async fn order_read(
    sim: Simulator,
    op: &'static str,
    order_id: &str,
    arrival: Arrival,
    answer: impl FnOnce(&CostGuard, &Cart) -> Response,
) -> Response {
    arrival.record(&sim, op);
    if let Some(response) = arrival.unauthorized() {
        return response;
    }
    sim.faults()
        .serve(op, &arrival.wire(), async {
            let order_id = match id("orderId", order_id) {
                Ok(id) => id,
                Err(r) => return refused(r),
            };
            let cg = sim.costguard().lock();
            match cg.carts.get(&order_id) {
                Some(cart) => answer(&cg, cart),
                None => rest_error(
                    StatusCode::NOT_FOUND,
                    "Order",
                    format!("Order {order_id} was not found"),
                ),
            }
        })
        .await
}

fn order_detail(cart: &Cart) -> OrderDetail {
    let status = if cart.submitted {
        "Submitted"
    } else if cart.checked_out_at.is_some() {
        "CheckedOut"
    } else {
        "Open"
    };
    let mut items: Vec<OrderItem> = cart
        .items
        .iter()
        .map(|item| match item {
            Item::Restore {
                service_information_item_id,
                service_id,
                ..
            } => OrderItem {
                service_information_item_id: *service_information_item_id,
                service_id: *service_id,
                action_type: "Restore".into(),
            },
            Item::Renewal {
                service_information_item_id,
                service_id,
                ..
            } => OrderItem {
                service_information_item_id: *service_information_item_id,
                service_id: *service_id,
                action_type: "AdvancePayRenewal".into(),
            },
        })
        .collect();
    // One renewAdvancePay adds a price point per active favorite under a single service
    // information item: the order lists that item once.
    items.dedup();
    let tenders = cart
        .tenders
        .iter()
        .map(|t| OrderTender {
            tender_information_item_id: t.tender_information_item_id,
            amount: t.amount.into(),
            tender_type_id: t.tender_type_id,
            tender_status: t.tender_status.clone(),
        })
        .collect();
    // The totals are only settled by a checkout; a change since then clears it.
    let (subtotal, tax_subtotal) = match cart.checked_out_at {
        Some(_) => {
            let (subtotal, tax_subtotal) = cart.printed_totals();
            (
                Some(RawAmount::new(subtotal)),
                Some(RawAmount::new(tax_subtotal)),
            )
        }
        None => (None, None),
    };
    OrderDetail {
        order_id: cart.cart_id,
        customer_id: cart.customer_id,
        order_type_id: cart.order_type_id,
        register_id: cart.register_id,
        status: status.into(),
        items,
        tenders,
        subtotal,
        tax_subtotal,
        receipt_number: cart.receipt_number.clone(),
    }
}

/// The service number of `$filter=ServiceNumber eq '<literal>'`.
fn service_number_filter(query: &str) -> Result<String, String> {
    let filter = query_param(query, "$filter")?.ok_or("the $filter parameter is required")?;
    let expected = "expected $filter=ServiceNumber eq '<service number>'";
    let rest = filter
        .trim_start()
        .strip_prefix("ServiceNumber")
        .filter(|r| r.starts_with(char::is_whitespace))
        .ok_or(expected)?;
    let rest = rest
        .trim_start()
        .strip_prefix("eq")
        .filter(|r| r.starts_with(char::is_whitespace))
        .ok_or(expected)?;
    odata_string(rest.trim())
}

/// An OData string literal: single-quoted, `''` standing for one `'`.
fn odata_string(literal: &str) -> Result<String, String> {
    let mut chars = literal.chars();
    if chars.next() != Some('\'') {
        return Err(format!("{literal:?} is not a quoted OData string"));
    }
    let mut out = String::new();
    while let Some(c) = chars.next() {
        if c != '\'' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\'') => out.push('\''),
            None => return Ok(out),
            Some(_) => return Err(format!("unexpected text after the string in {literal:?}")),
        }
    }
    Err(format!("unterminated OData string {literal:?}"))
}

/// The first value of `name` in a query string, percent-decoded.
fn query_param(query: &str, name: &str) -> Result<Option<String>, String> {
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if decode(key)? == name {
            return decode(value).map(Some);
        }
    }
    Ok(None)
}

fn decode(raw: &str) -> Result<String, String> {
    let spaced = raw.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| format!("{raw:?} is not percent-encoded UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_literals() {
        assert_eq!(
            service_number_filter("%24filter=ServiceNumber%20eq%20%275%3C5%265%27%275%27"),
            Ok("5<5&5'5".to_string())
        );
        assert_eq!(
            service_number_filter("$filter=ServiceNumber+eq+'1'"),
            Ok("1".to_string())
        );
        for bad in [
            "",
            "$filter=ServiceNumber eq 1",
            "$filter=ServiceNumber eq '1",
            "$filter=ServiceNumber eq '1'x'",
            "$filter=ServiceNumber eq'1'",
            "$filter=ServiceNumbereq '1'",
            "$filter=Other eq '1'",
            "$filter=%FF",
        ] {
            assert!(service_number_filter(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn wrap_header() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(AUTHORIZATION, value.parse().unwrap());
            has_wrap_token(&headers)
        };
        assert!(with("WRAP access_token=\"t\""));
        assert!(!with("WRAP access_token=\"\""));
        assert!(!with("Bearer t"));
        assert!(!has_wrap_token(&HeaderMap::new()));
    }
}
