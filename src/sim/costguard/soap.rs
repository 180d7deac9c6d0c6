//! The SOAP 1.2 Order Placement endpoint: CreateCart, ModifyCart, Checkout and SubmitCart,
//! answered in the shapes of seed 003's examples.

use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use rust_decimal::Decimal;

use super::orders::{CashTender, NewCart, Rejection, Restore};
use super::{Cart, CostGuard, Item, Simulator};
use crate::billing::costguard::soap::{ORDER_PLACEMENT_NS, SOAP12_ENV_NS};
use crate::money;
use crate::sim::faults::{FaultCode, Wire};
use crate::sim::Invalid;
use crate::xml::{Element, XmlWriter};

const RESPONSE_CONTENT_TYPE: &str = "application/soap+xml; charset=utf-8";
const OPERATIONS: [&str; 4] = ["CreateCart", "ModifyCart", "Checkout", "SubmitCart"];
/// Logged operation of a call that names none (unreadable body, no action).
const UNNAMED: &str = "OrderPlacement";
/// What CostGuard prints as the creating and modifying user.
const USER: &str = "JDOE";
// Fixed details of a restore ServiceDetail, as in the seed.
const RESTORE_CATALOG_ID: i64 = 18;
const RESTORE_DESCRIPTION: &str = "Equal Access";
const SERVICE_START_DATE: &str = "2005-01-01T00:00:00";

enum OrderCall {
    CreateCart(NewCart),
    ModifyCart {
        cart_id: i64,
        restores: Vec<Restore>,
        tenders: Vec<CashTender>,
    },
    Checkout {
        cart_id: i64,
    },
    SubmitCart {
        cart_id: i64,
    },
}

pub(super) async fn order_placement(
    State(sim): State<Simulator>,
    method: Method,
    uri: OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (operation, call) = read(&headers, &body);
    let entry = sim
        .calls()
        .record(&operation, &method, &uri, &headers, &body);
    let wire = SoapWire {
        operation: &operation,
        request: &body,
    };
    sim.faults()
        .serve(&operation, &wire, async {
            match call {
                Ok(call) => {
                    let (xml, applied) = place(&mut sim.costguard().lock(), &operation, call);
                    if applied {
                        sim.calls().mark_applied(entry);
                    }
                    soap(StatusCode::OK, xml)
                }
                Err(Invalid(reason)) => wire.fault(FaultCode::Sender, &reason),
            }
        })
        .await
}

/// The operation to log the call under, and the call if it is valid.
fn read(headers: &HeaderMap, body: &[u8]) -> (String, Result<OrderCall, Invalid>) {
    let action = action(headers);
    let parsed = std::str::from_utf8(body)
        .map_err(|_| Invalid::from("the request body is not UTF-8"))
        .and_then(|xml| Ok(Element::parse(xml)?));
    let operation = parsed
        .as_ref()
        .map_err(Invalid::clone)
        .and_then(operation_element);
    let name = match (&operation, &action) {
        (Ok(op), _) => op.name.clone(),
        (Err(_), Some(action)) => action.clone(),
        (Err(_), None) => UNNAMED.to_string(),
    };
    let call = operation.and_then(|op| read_call(op, action.as_deref()));
    (name, call)
}

/// The last segment of the `action` parameter of the Content-Type, if any.
fn action(headers: &HeaderMap) -> Option<String> {
    let content_type = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    let uri = content_type.split(';').skip(1).find_map(|param| {
        let (key, value) = param.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("action")
            .then(|| value.trim().trim_matches('"'))
    })?;
    Some(uri.rsplit('/').next().unwrap_or(uri).to_string())
}

fn operation_element(doc: &Element) -> Result<&Element, Invalid> {
    if doc.name != "Envelope" {
        return Err(format!("expected a SOAP Envelope, found <{}>", doc.name).into());
    }
    doc.child("Body")
        .ok_or("the Envelope has no Body")?
        .children
        .first()
        .ok_or_else(|| "the SOAP Body holds no operation element".into())
}

fn read_call(op: &Element, action: Option<&str>) -> Result<OrderCall, Invalid> {
    if !OPERATIONS.contains(&op.name.as_str()) {
        return Err(format!("unknown operation {:?}", op.name).into());
    }
    if let Some(action) = action {
        if action != op.name {
            return Err(format!(
                "the action {action:?} does not match the operation element <{}>",
                op.name
            )
            .into());
        }
    }
    let token = op
        .path(&["Requestor", "AuthorizationToken"])
        .map(|t| t.text.as_str())
        .unwrap_or_default();
    if token.is_empty() {
        return Err("Requestor/AuthorizationToken is missing or empty".into());
    }
    let request = op.child("Request").ok_or("the operation has no Request")?;
    let cart_id = || request.parse_at::<i64>(&["CartID", "ID"]);
    Ok(match op.name.as_str() {
        "CreateCart" => OrderCall::CreateCart(NewCart {
            customer_id: request.parse_at(&["CustomerID", "ID"])?,
            authenticated_key: request
                .text_at(&["CustomerID", "AuthenticatedKey"])
                .unwrap_or_default()
                .to_string(),
            order_type_id: request.parse_at(&["AdditionalCartInformation", "OrderTypeID"])?,
            register_id: op.parse_opt(&["Requestor", "RegisterID"])?,
        }),
        "ModifyCart" => OrderCall::ModifyCart {
            cart_id: cart_id()?,
            restores: restores(request)?,
            tenders: tenders(request)?,
        },
        "Checkout" => OrderCall::Checkout {
            cart_id: cart_id()?,
        },
        _ => OrderCall::SubmitCart {
            cart_id: cart_id()?,
        },
    })
}

/// Local part of the `i:type` attribute: the prefix may vary.
fn item_type(item: &Element) -> &str {
    let qname = item.attr("type").unwrap_or_default();
    qname.rsplit(':').next().unwrap_or(qname)
}

fn restores(request: &Element) -> Result<Vec<Restore>, Invalid> {
    let Some(info) = request.path(&["AdditionalCartInformation", "ServiceInformation"]) else {
        return Ok(Vec::new());
    };
    info.children_named("ServiceInformationItem")
        .map(|item| match item_type(item) {
            "ServiceInformationItemForRestore" => Ok(Restore {
                service_id: item.parse_at(&["ServiceID"])?,
                reason_id: item.parse_at(&["ReasonID"])?,
            }),
            other => Err(format!("unsupported ServiceInformationItem type {other:?}").into()),
        })
        .collect()
}

fn tenders(request: &Element) -> Result<Vec<CashTender>, Invalid> {
    let Some(info) = request.child("TenderInformation") else {
        return Ok(Vec::new());
    };
    info.children_named("TenderInformationItem")
        .map(|item| match item_type(item) {
            "TenderInformationItemCash" => Ok(CashTender {
                amount: money::parse(item.text_at(&["Amount"])?, money::MAX_SCALE)
                    .map_err(|e| Invalid(format!("TenderInformationItem/Amount: {e}")))?,
                tender_type_id: item.parse_opt(&["TenderTypeID"])?,
                tender_status: item
                    .child("TenderStatus")
                    .map(|s| s.text.clone())
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "Captured".into()),
            }),
            other => Err(format!("unsupported TenderInformationItem type {other:?}").into()),
        })
        .collect()
}

/// Applies a valid call and writes the response envelope; also whether the call was
/// accepted, as every accepted Order Placement call changes its cart.
fn place(cg: &mut CostGuard, operation: &str, call: OrderCall) -> (String, bool) {
    let written = match call {
        OrderCall::CreateCart(new) => cg
            .create_cart(new)
            .and_then(|cart_id| cart_reply(operation, cg, cart_id)),
        OrderCall::ModifyCart {
            cart_id,
            restores,
            tenders,
        } => cg
            .modify_cart(cart_id, restores, tenders)
            .and_then(|()| cart_reply(operation, cg, cart_id)),
        OrderCall::Checkout { cart_id } => cg
            .checkout(cart_id)
            .and_then(|()| summary_reply(operation, cg, cart_id, false)),
        OrderCall::SubmitCart { cart_id } => cg
            .submit_cart(cart_id)
            .and_then(|()| summary_reply(operation, cg, cart_id, true)),
    };
    match written {
        Ok(xml) => (xml, true),
        Err(rejection) => {
            let xml = reply(
                operation,
                |w| {
                    w.empty("Result");
                },
                Some((rejection.code, &rejection.text)),
            );
            (xml, false)
        }
    }
}

fn cart_reply(operation: &str, cg: &CostGuard, cart_id: i64) -> Result<String, Rejection> {
    let cart = cg.cart(cart_id)?;
    Ok(reply(operation, |w| write_cart(w, cg, cart), None))
}

/// A restore cart checks out with an empty `<Result/>`; SubmitCart always summarises.
fn summary_reply(
    operation: &str,
    cg: &CostGuard,
    cart_id: i64,
    always: bool,
) -> Result<String, Rejection> {
    let cart = cg.cart(cart_id)?;
    Ok(reply(
        operation,
        |w| {
            if always || cart.item_count() > 0 {
                write_summary(w, cart);
            } else {
                w.empty("Result");
            }
        },
        None,
    ))
}

/// `{Op}Response` with a `Result` and `Messages` (one `Error` message when refused).
fn reply(
    operation: &str,
    result: impl FnOnce(&mut XmlWriter),
    error: Option<(&str, &str)>,
) -> String {
    let name = format!("{operation}Response");
    envelope(|w| {
        w.start_with(&name, &[("xmlns", ORDER_PLACEMENT_NS)]);
        result(w);
        match error {
            None => {
                w.empty("Messages");
            }
            Some((code, text)) => {
                w.start("Messages")
                    .start("Message")
                    .leaf("Code", code)
                    .leaf("Severity", "Error")
                    .leaf("Text", text)
                    .end("Message")
                    .end("Messages");
            }
        }
        w.end(&name);
    })
}

fn envelope(body: impl FnOnce(&mut XmlWriter)) -> String {
    let mut w = XmlWriter::new();
    w.start_with("env:Envelope", &[("xmlns:env", SOAP12_ENV_NS)])
        .start("env:Body");
    body(&mut w);
    w.end("env:Body").end("env:Envelope");
    w.finish()
}

fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, false)
}

fn keyed(w: &mut XmlWriter, name: &str, key: &str, id: i64) {
    w.group(name, &[("AuthenticatedKey", &key), ("ID", &id)]);
}

fn write_cart(w: &mut XmlWriter, cg: &CostGuard, cart: &Cart) {
    w.start("Result").start("Cart").start("CartDetails");
    if let Some(at) = cart.checked_out_at {
        w.leaf("CheckoutDate", stamp(at));
    }
    w.leaf("CreateDate", stamp(cart.created_at))
        .leaf("CreateUser", USER)
        .leaf("LastModifiedDate", stamp(cart.modified_at))
        .leaf("LastModifiedUser", USER)
        .leaf("OrderTypeID", cart.order_type_id);
    // The seed prints an empty Description only on a cart with no items yet.
    if cart.items.is_empty() {
        w.empty("Description");
    }
    write_service_details(w, cg, cart);
    w.end("CartDetails");
    keyed(w, "CartID", &cart.authenticated_key, cart.cart_id);
    keyed(w, "CustomerID", &cart.authenticated_key, cart.customer_id);
    w.leaf("IsVoid", false).leaf("NeedsRefresh", false);
    if let Some(receipt) = &cart.receipt_number {
        w.leaf("ReceiptNumber", receipt);
    }
    if !cart.tenders.is_empty() {
        w.start("TenderDetails");
        for tender in &cart.tenders {
            w.start("TenderDetail")
                .leaf("Amount", tender.amount)
                .leaf("TenderInformationItemID", tender.tender_information_item_id)
                .leaf("TenderInformationItemType", "Cash")
                .leaf("TenderStatus", &tender.tender_status);
            if let Some(tender_type) = tender.tender_type_id {
                w.leaf("TenderTypeID", tender_type);
            }
            w.end("TenderDetail");
        }
        w.end("TenderDetails");
    }
    w.end("Cart").end("Result");
}

/// `ServiceDetails` list the restore items; renewal items do not appear in the seed's carts.
fn write_service_details(w: &mut XmlWriter, cg: &CostGuard, cart: &Cart) {
    let restores: Vec<_> = cart
        .items
        .iter()
        .filter_map(|item| match item {
            Item::Restore {
                service_information_item_id,
                service_id,
                reason_id,
            } => Some((*service_information_item_id, *service_id, *reason_id)),
            Item::Renewal { .. } => None,
        })
        .collect();
    if restores.is_empty() {
        return;
    }
    w.start("ServiceDetails");
    for (item_id, service_id, reason_id) in restores {
        let number = cg
            .services
            .get(&service_id)
            .map(|s| s.service_number.as_str())
            .unwrap_or_default();
        w.start("ServiceDetail")
            .leaf("ActionType", "Restore")
            .leaf("AlternateServiceNumber", number)
            .leaf("CatalogID", RESTORE_CATALOG_ID)
            .leaf("Description", RESTORE_DESCRIPTION)
            .leaf("ReasonID", reason_id)
            .leaf("ServiceID", service_id)
            .leaf("ServiceInformationItemID", item_id)
            .leaf("ServiceNumber", number)
            .leaf("StartDate", SERVICE_START_DATE)
            .leaf("TaxAccountType", "Business")
            .leaf("IsSimplePortIn", false)
            .end("ServiceDetail");
    }
    w.end("ServiceDetails");
}

fn write_summary(w: &mut XmlWriter, cart: &Cart) {
    let (subtotal, tax_subtotal) = cart.printed_totals();
    w.start("Result").start("CartSummary");
    keyed(w, "CartID", &cart.authenticated_key, cart.cart_id);
    w.leaf("CartItemCount", cart.item_count())
        .leaf("EstimatedMRC", Decimal::ZERO)
        .leaf("Subtotal", subtotal)
        .leaf("TaxSubtotal", tax_subtotal)
        .end("CartSummary")
        .end("Result");
}

fn soap(status: StatusCode, xml: String) -> Response {
    (status, [(CONTENT_TYPE, RESPONSE_CONTENT_TYPE)], xml).into_response()
}

/// Injected failures as Order Placement writes them.
struct SoapWire<'a> {
    operation: &'a str,
    /// The request as received, read again only to echo its token.
    request: &'a [u8],
}

impl SoapWire<'_> {
    /// The request's `Requestor/AuthorizationToken`, empty when it has none.
    fn token(&self) -> String {
        std::str::from_utf8(self.request)
            .ok()
            .and_then(|xml| Element::parse(xml).ok())
            .and_then(|doc| doc.descendant("AuthorizationToken").map(|t| t.text.clone()))
            .unwrap_or_default()
    }
}

impl Wire for SoapWire<'_> {
    fn failure(&self, status: StatusCode, message: &str) -> Response {
        fault(status, FaultCode::Receiver, message)
    }

    // The SOAP 1.2 HTTP binding: Sender faults are 400, Receiver faults 500.
    fn fault(&self, code: FaultCode, reason: &str) -> Response {
        let status = match code {
            FaultCode::Receiver => StatusCode::INTERNAL_SERVER_ERROR,
            FaultCode::Sender => StatusCode::BAD_REQUEST,
        };
        fault(status, code, reason)
    }

    fn rejection(&self, message: &str) -> Response {
        let xml = reply(
            self.operation,
            |w| {
                w.empty("Result");
            },
            Some(("InjectedError", message)),
        );
        soap(StatusCode::OK, xml)
    }

    /// A Sender fault, or with status 200 an `Error` message, naming the token.
    fn echo_credential(&self, status: StatusCode) -> Response {
        let text = format!(
            "Authorization failed: AuthorizationToken \"{}\" is not valid",
            self.token()
        );
        if status == StatusCode::OK {
            let xml = reply(
                self.operation,
                |w| {
                    w.empty("Result");
                },
                Some(("AuthorizationFailed", &text)),
            );
            return soap(status, xml);
        }
        fault(status, FaultCode::Sender, &text)
    }

    fn opening(&self) -> (&'static str, String) {
        let opening = format!(
            "<env:Envelope xmlns:env=\"{SOAP12_ENV_NS}\"><env:Body><{}Response xmlns=\"{ORDER_PLACEMENT_NS}\">",
            self.operation
        );
        (RESPONSE_CONTENT_TYPE, opening)
    }
}

fn fault(status: StatusCode, code: FaultCode, reason: &str) -> Response {
    let value = match code {
        FaultCode::Receiver => "env:Receiver",
        FaultCode::Sender => "env:Sender",
    };
    let xml = envelope(|w| {
        w.start("env:Fault")
            .start("env:Code")
            .leaf("env:Value", value)
            .end("env:Code")
            .start("env:Reason")
            .leaf("env:Text", reason)
            .end("env:Reason")
            .end("env:Fault");
    });
    soap(status, xml)
}
