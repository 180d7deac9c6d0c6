use std::time::Duration;

use reqwest::header::CONTENT_TYPE;

use super::error::EmersionError;
use super::wire::{Fault, Operation, API_NS, SOAP11_ENV_NS};
use super::wsse;
use crate::billing::http::{self, ClientTls, Limits};
use crate::secret::Secret;
use crate::xml::{Element, XmlWriter};

#[derive(Debug, Clone)]
pub struct EmersionConfig {
    /// Base URL; operations are posted to `{base}/{Service}`.
    pub base_url: String,
    pub auth: EmersionAuth,
    /// Deadline of one call, the whole answer included.
    pub timeout: Duration,
    /// Largest answer read; a larger one fails the call.
    pub max_response_bytes: usize,
}

/// How billflow proves who it is to Emersion.
#[derive(Debug, Clone)]
pub enum EmersionAuth {
    /// The provider API's documented way: a TLS client certificate on every call.
    Certificate(ClientTls),
    /// A WS-Security UsernameToken in every envelope, as older public clients send it.
    WsSecurity { username: String, password: Secret },
}

impl EmersionConfig {
    fn limits(&self) -> Limits {
        Limits {
            timeout: self.timeout,
            max_response_bytes: self.max_response_bytes,
        }
    }
}

/// The Emersion API. Cheap to clone.
#[derive(Clone)]
pub struct EmersionClient {
    http: reqwest::Client,
    config: EmersionConfig,
    idempotency_key: Option<String>,
}

impl EmersionClient {
    pub fn new(config: EmersionConfig) -> Result<Self, reqwest::Error> {
        let http = match &config.auth {
            EmersionAuth::Certificate(certificate) => {
                http::client_with_certificate(config.limits(), certificate)?
            }
            EmersionAuth::WsSecurity { .. } => http::client(config.limits())?,
        };
        Ok(EmersionClient {
            http,
            config,
            idempotency_key: None,
        })
    }

    /// A client whose calls carry `Idempotency-Key: key`.
    pub fn with_idempotency_key(&self, key: String) -> Self {
        EmersionClient {
            idempotency_key: Some(key),
            ..self.clone()
        }
    }

    /// The SOAP 1.1 envelope of a call; with WS-Security, a fresh UsernameToken in its
    /// header.
    pub fn envelope<O: Operation>(&self, op: &O) -> String {
        let mut w = XmlWriter::new();
        w.start_with(
            "SOAP-ENV:Envelope",
            &[("xmlns:SOAP-ENV", SOAP11_ENV_NS), ("xmlns:api", API_NS)],
        );
        if let EmersionAuth::WsSecurity { username, password } = &self.config.auth {
            w.start("SOAP-ENV:Header");
            wsse::write_security(&mut w, username, password);
            w.end("SOAP-ENV:Header");
        }
        w.start("SOAP-ENV:Body");
        op.write_request(&mut w);
        w.end("SOAP-ENV:Body").end("SOAP-ENV:Envelope");
        w.finish()
    }

    pub async fn call<O: Operation>(&self, op: &O) -> Result<O::Response, EmersionError> {
        let operation = O::NAME;
        let url = format!(
            "{}/{}",
            self.config.base_url.trim_end_matches('/'),
            O::SERVICE.path()
        );
        let _timer = crate::billing::CallTimer::start("emersion", operation);
        let mut request = self.http.post(url);
        if let Some(key) = &self.idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        let request = request
            .header(CONTENT_TYPE, "text/xml; charset=utf-8")
            .header("SOAPAction", format!("\"{API_NS}#{operation}\""))
            .body(self.envelope(op));
        let answer = http::exchange(request, self.config.limits())
            .await
            .map_err(EmersionError::transport(operation))?;
        let status = answer.status;
        let body = answer.text();
        // SOAP 1.1 faults come with HTTP 500: read the body before judging the status.
        let doc = match Element::parse(&body) {
            Ok(doc) => doc,
            Err(_) if !status.is_success() => {
                return Err(EmersionError::Http {
                    operation,
                    status: status.as_u16(),
                    message: body.chars().take(500).collect(),
                })
            }
            Err(e) => {
                return Err(EmersionError::Malformed {
                    operation,
                    detail: e.to_string(),
                })
            }
        };
        if let Some(fault) = doc.descendant("Fault") {
            let fault = Fault::read(fault);
            return Err(EmersionError::Fault {
                operation,
                status: status.as_u16(),
                code: fault.code,
                message: fault.message,
            });
        }
        if !status.is_success() {
            return Err(EmersionError::Http {
                operation,
                status: status.as_u16(),
                message: "non-success status without a SOAP fault".into(),
            });
        }
        let name = O::RESPONSE;
        let reply = doc
            .descendant(name)
            .ok_or_else(|| EmersionError::Malformed {
                operation,
                detail: format!("no <{name}> in the response"),
            })?;
        O::read(reply).map_err(|e| EmersionError::Malformed {
            operation,
            detail: e.to_string(),
        })
    }
}
