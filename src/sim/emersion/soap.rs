//! The SOAP 1.1 transport: `POST /{Service}`, the SOAPAction header, the WS-Security
//! UsernameToken, and faults. Requests are read by local name; responses are written with
//! the `SOAP-ENV` and `ns1` prefixes.

use std::fmt::Display;

use crate::billing::emersion::wsse::password_digest;
use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::replies::answer;
use super::requests::{read_call, Call, Invalid};
use super::{Rejection, Service, Simulator, API_NS, SIM_PASSWORD, SIM_USERNAME, SOAP11_ENV_NS};
use crate::sim::faults::{FaultCode, Wire};
use crate::sim::tls::ClientCertificate;
use crate::xml::{Element, XmlWriter};

const RESPONSE_CONTENT_TYPE: &str = "text/xml; charset=utf-8";
const SOAP_ACTION: &str = "SOAPAction";
/// What the call log shows in place of a password or a password digest.
const REDACTED: &str = "[redacted]";

pub(super) async fn endpoint(
    State(sim): State<Simulator>,
    Path(path): Path<String>,
    method: Method,
    uri: OriginalUri,
    headers: HeaderMap,
    certificate: Option<Extension<ClientCertificate>>,
    body: Bytes,
) -> Response {
    let Some(service) = Service::ALL.into_iter().find(|s| s.name() == path) else {
        return fault(
            StatusCode::NOT_FOUND,
            FaultCode::Sender,
            &format!("Unknown service {path}"),
        );
    };
    let (operation, call) = read(service, &headers, &body, certificate.is_some());
    let entry = sim.calls().record(
        &operation,
        &method,
        &uri,
        &headers,
        redacted(&body).as_bytes(),
    );
    let wire = SoapWire { request: &body };
    sim.faults()
        .serve(&operation, &wire, async {
            let outcome = call.map_err(|Invalid(text)| text).and_then(|call| {
                let changes_state = call.changes_state();
                let xml = answer(&mut sim.emersion().lock(), &operation, call)
                    .map_err(|Rejection(text)| text)?;
                if changes_state {
                    sim.calls().mark_applied(entry);
                }
                Ok(xml)
            });
            match outcome {
                Ok(xml) => soap(StatusCode::OK, xml),
                Err(text) => wire.rejection(&text),
            }
        })
        .await
}

/// The operation to log the call under, and the call if it is valid.
fn read(
    service: Service,
    headers: &HeaderMap,
    body: &[u8],
    certified: bool,
) -> (String, Result<Call, Invalid>) {
    let action = soap_action(headers);
    let envelope = std::str::from_utf8(body)
        .map_err(|_| Invalid::from("the request body is not UTF-8"))
        .and_then(|xml| Ok(Element::parse(xml)?));
    let request = envelope
        .as_ref()
        .map_err(Invalid::clone)
        .and_then(|envelope| Ok((envelope, request_element(envelope)?)));
    let name = match (&request, &action) {
        (Ok((_, el)), _) => operation_name(el).to_string(),
        (Err(_), Some(action)) => action.rsplit('#').next().unwrap_or(action).to_string(),
        (Err(_), None) => service.name().to_string(),
    };
    let call = request
        .and_then(|(envelope, el)| validate(service, envelope, el, action.as_deref(), certified));
    (name, call)
}

/// The SOAPAction header without its quotes; an empty one names no operation.
fn soap_action(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(SOAP_ACTION)?.to_str().ok()?;
    let value = value.trim().trim_matches('"');
    (!value.is_empty()).then(|| value.to_string())
}

fn request_element(envelope: &Element) -> Result<&Element, Invalid> {
    if envelope.name != "Envelope" {
        return Err(format!("expected a SOAP Envelope, found <{}>", envelope.name).into());
    }
    envelope
        .child("Body")
        .ok_or("the Envelope has no Body")?
        .children
        .first()
        .ok_or_else(|| "the SOAP Body holds no operation element".into())
}

/// `StartOrder` for `<StartOrderRequest>`, `SetServiceConfiguration` for itself; an
/// unknown element is logged under its name without a `Request` suffix.
fn operation_name(el: &Element) -> &str {
    Service::by_request(&el.name).map_or_else(
        || el.name.strip_suffix("Request").unwrap_or(&el.name),
        |(_, op)| op.name,
    )
}

/// Checks the call's envelope in this order: a known operation, the SOAPAction naming it,
/// the service offering it, the credentials (a verified client certificate, or else a
/// UsernameToken); then reads the request.
fn validate(
    service: Service,
    envelope: &Element,
    el: &Element,
    action: Option<&str>,
    certified: bool,
) -> Result<Call, Invalid> {
    let (offered_by, op) = Service::by_request(&el.name).ok_or_else(|| {
        format!(
            "Unknown operation: <{}> is not the request element of an operation of {API_NS}",
            el.name
        )
    })?;
    let operation = op.name;
    if let Some(action) = action {
        if action != format!("{API_NS}#{operation}") {
            return Err(format!(
                "SOAPAction \"{action}\" does not match the operation {operation} of the body"
            )
            .into());
        }
    }
    if offered_by != service {
        return Err(format!(
            "Operation {operation} is not available on service {}",
            service.name()
        )
        .into());
    }
    if !certified && !authenticated(envelope) {
        return Err("Authentication failed".into());
    }
    read_call(operation, el)
}

/// A WS-Security UsernameToken of the simulator's user whose PasswordDigest is made with
/// the simulator's password.
fn authenticated(envelope: &Element) -> bool {
    let Some(token) = envelope.path(&["Header", "Security", "UsernameToken"]) else {
        return false;
    };
    let field = |name| token.child(name).map(|e| e.text.as_str());
    let (Some(username), Some(digest), Some(nonce), Some(created)) = (
        field("Username"),
        field("Password"),
        field("Nonce"),
        field("Created"),
    ) else {
        return false;
    };
    let Ok(nonce) = STANDARD.decode(nonce) else {
        return false;
    };
    username == SIM_USERNAME && digest == password_digest(&nonce, created, SIM_PASSWORD)
}

/// The body with the content of every `Password` element (the UsernameToken digest and
/// the passwords some operations take) replaced, so the call log holds no secret. A
/// textual scan, because the log keeps the body as it was sent, not as it was parsed.
fn redacted(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out = String::with_capacity(text.len());
    let mut rest: &str = &text;
    while let Some(open) = rest.find('<') {
        let (before, from_tag) = rest.split_at(open);
        out.push_str(before);
        let Some(close) = from_tag.find('>') else {
            rest = from_tag;
            break;
        };
        let (tag, after) = from_tag.split_at(close + 1);
        out.push_str(tag);
        rest = after;
        if opens_password(tag) {
            // Up to the end tag, so CDATA or comments inside are skipped too.
            let end = rest.find("</").unwrap_or(rest.len());
            if end > 0 {
                out.push_str(REDACTED);
            }
            rest = &rest[end..];
        }
    }
    out.push_str(rest);
    out
}

/// `<Password …>` under any prefix; not an end tag or an empty element.
fn opens_password(tag: &str) -> bool {
    let inner = tag.trim_start_matches('<').trim_end_matches('>');
    if inner.starts_with(['/', '?', '!']) || inner.ends_with('/') {
        return false;
    }
    let name = inner.split(char::is_whitespace).next().unwrap_or(inner);
    name.rsplit(':').next() == Some("Password")
}

/// Writes the elements of a response body, each in the `ns1:` prefix of [`API_NS`].
pub(super) struct Ns1<'a>(&'a mut XmlWriter);

impl Ns1<'_> {
    pub(super) fn start(&mut self, name: &str) -> &mut Self {
        self.0.start(&format!("ns1:{name}"));
        self
    }

    pub(super) fn end(&mut self, name: &str) -> &mut Self {
        self.0.end(&format!("ns1:{name}"));
        self
    }

    pub(super) fn leaf(&mut self, name: &str, value: impl Display) -> &mut Self {
        self.0.leaf(&format!("ns1:{name}"), value);
        self
    }

    /// `<ns1:{name} ID="id">text</ns1:{name}>`, as the pages write typed references.
    pub(super) fn typed(&mut self, name: &str, id: i64, text: &str) -> &mut Self {
        let name = format!("ns1:{name}");
        self.0
            .start_with(&name, &[("ID", &id.to_string())])
            .text(text)
            .end(&name);
        self
    }
}

/// The envelope of an accepted call: the response element `name` holding what `body`
/// writes.
pub(super) fn response(name: &str, body: impl FnOnce(&mut Ns1<'_>)) -> String {
    envelope(|w| {
        let mut b = Ns1(w);
        b.start(name);
        body(&mut b);
        b.end(name);
    })
}

fn envelope(body: impl FnOnce(&mut XmlWriter)) -> String {
    let mut w = XmlWriter::new();
    w.start_with(
        "SOAP-ENV:Envelope",
        &[("xmlns:SOAP-ENV", SOAP11_ENV_NS), ("xmlns:ns1", API_NS)],
    )
    .start("SOAP-ENV:Body");
    body(&mut w);
    w.end("SOAP-ENV:Body").end("SOAP-ENV:Envelope");
    w.finish()
}

fn soap(status: StatusCode, xml: String) -> Response {
    (status, [(CONTENT_TYPE, RESPONSE_CONTENT_TYPE)], xml).into_response()
}

/// A SOAP 1.1 fault; the text goes in `faultstring` and in `detail/ns1:Error`.
fn fault(status: StatusCode, code: FaultCode, text: &str) -> Response {
    let code = match code {
        FaultCode::Sender => "SOAP-ENV:Client",
        FaultCode::Receiver => "SOAP-ENV:Server",
    };
    let xml = envelope(|w| {
        w.start("SOAP-ENV:Fault")
            .leaf("faultcode", code)
            .leaf("faultstring", text)
            .start("detail")
            .leaf("ns1:Error", text)
            .end("detail")
            .end("SOAP-ENV:Fault");
    });
    soap(status, xml)
}

/// Refusals and injected failures as Emersion writes them.
struct SoapWire<'a> {
    /// The request as received, read again only to echo its credentials.
    request: &'a [u8],
}

impl SoapWire<'_> {
    /// The request's WS-Security `Username`, empty when it has none.
    fn username(&self) -> String {
        std::str::from_utf8(self.request)
            .ok()
            .and_then(|xml| Element::parse(xml).ok())
            .and_then(|doc| {
                doc.path(&["Header", "Security", "UsernameToken", "Username"])
                    .map(|u| u.text.clone())
            })
            .unwrap_or_default()
    }
}

impl Wire for SoapWire<'_> {
    fn failure(&self, status: StatusCode, message: &str) -> Response {
        fault(status, FaultCode::Receiver, message)
    }

    // The SOAP 1.1 HTTP binding answers every fault with 500.
    fn fault(&self, code: FaultCode, reason: &str) -> Response {
        fault(StatusCode::INTERNAL_SERVER_ERROR, code, reason)
    }

    fn rejection(&self, message: &str) -> Response {
        fault(
            StatusCode::INTERNAL_SERVER_ERROR,
            FaultCode::Sender,
            message,
        )
    }

    /// A Client fault naming the user and, so redaction can be tested on it, the
    /// simulator's password (a request carries only its digest).
    fn echo_credential(&self, status: StatusCode) -> Response {
        let text = format!(
            "Authentication failed for user {} with password {SIM_PASSWORD}",
            self.username()
        );
        fault(status, FaultCode::Sender, &text)
    }

    fn opening(&self) -> (&'static str, String) {
        let opening = format!(
            "<SOAP-ENV:Envelope xmlns:SOAP-ENV=\"{SOAP11_ENV_NS}\" xmlns:ns1=\"{API_NS}\"><SOAP-ENV:Body>"
        );
        (RESPONSE_CONTENT_TYPE, opening)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_under_any_prefix() {
        let body = r#"<e><wsse:Password Type="x#PasswordDigest">c2VjcmV0</wsse:Password>
            <Password>plain</Password><a:Password><![CDATA[cd<ata]]></a:Password>
            <Password/><PasswordHint>kept</PasswordHint><Username>kept</Username></e>"#;
        let out = redacted(body.as_bytes());
        for secret in ["c2VjcmV0", "plain", "cd<ata"] {
            assert!(!out.contains(secret), "{out}");
        }
        assert_eq!(out.matches(REDACTED).count(), 3, "{out}");
        assert!(out.contains("<PasswordHint>kept</PasswordHint>"), "{out}");
        assert!(out.contains("<Password/>"), "{out}");
        assert!(Element::parse(&out).is_ok(), "{out}");
    }

    #[test]
    fn digest_is_base64_sha1_of_nonce_created_password() {
        // Computed independently: base64(sha1(bytes 0..16 ++ created ++ password)).
        let nonce: Vec<u8> = (0..16).collect();
        let digest = password_digest(&nonce, "2026-11-22T10:00:00Z", SIM_PASSWORD);
        assert_eq!(digest, "NttSDsh5BDT3MQEqxkkd4fg9np4=");
    }
}
