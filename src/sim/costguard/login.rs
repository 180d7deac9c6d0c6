//! IDI's Security Token Service: `POST /securitytoken/1xa/{env}/api/login` issues a Simple
//! Web Token (body shapes as pinned in `billing::costguard::token::wire`), and the platform
//! refuses a token it issued once it has expired or was revoked, with 401. Tokens it did
//! not issue (a static `COSTGUARD_TOKEN`) are accepted as before.
//!
//! `GET /_sim/tokens` → `{"logins", "refused", "lifetime_ms"}`; `POST /_sim/tokens` with
//! `{"lifetime_ms": 2000}` sets the lifetime of tokens issued from then on, with
//! `{"revoke": true}` revokes every token issued so far.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{to_bytes, Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use crate::billing::costguard::rest::RestErrors;
use crate::billing::costguard::token::{paths, APPLIES_TO};
use crate::sim::{ops_error, ops_json, Simulator};
use crate::xml::Element;

/// The Security Token Service user the simulator knows.
pub const SIM_LOGIN_USERNAME: &str = "billflow-api";
pub const SIM_LOGIN_PASSWORD: &str = "billflow-sim-login";

/// The STS doc's example lifetime: "valid for 8 hours".
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(8 * 60 * 60);

/// Largest Order Placement body read for its token.
const MAX_SOAP_BODY: usize = 2 * 1024 * 1024;

/// Tokens issued, and what the tests read of them.
pub struct Tokens(Mutex<Issued>);

struct Issued {
    lifetime: Duration,
    /// Expiry of every token issued, `None` once revoked.
    issued: HashMap<String, Option<SystemTime>>,
    logins: u64,
    refused: u64,
}

enum Verdict {
    Valid,
    Expired,
    Revoked,
}

impl Tokens {
    pub fn new(lifetime: Duration) -> Self {
        Tokens(Mutex::new(Issued {
            lifetime,
            issued: HashMap::new(),
            logins: 0,
            refused: 0,
        }))
    }

    fn lock(&self) -> MutexGuard<'_, Issued> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn set_lifetime(&self, lifetime: Duration) {
        self.lock().lifetime = lifetime;
    }

    fn issue(&self, env: &str, username: &str) -> String {
        let mut state = self.lock();
        state.logins += 1;
        let expires = SystemTime::now() + state.lifetime;
        // Whole seconds, rounded down: a client never thinks a token lives longer than it does.
        let expires_on = expires
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let token = format!(
            "Environment={env}&Username={username}&Audience={}&ExpiresOn={expires_on}&Id={}&HMACSHA256=sim",
            percent_encoding::utf8_percent_encode(APPLIES_TO, percent_encoding::NON_ALPHANUMERIC),
            uuid::Uuid::new_v4().simple()
        );
        state.issued.insert(token.clone(), Some(expires));
        token
    }

    fn check(&self, token: &str) -> Verdict {
        let mut state = self.lock();
        let verdict = match state.issued.get(token) {
            None => Verdict::Valid,
            Some(None) => Verdict::Revoked,
            Some(Some(expires)) if SystemTime::now() >= *expires => Verdict::Expired,
            Some(Some(_)) => Verdict::Valid,
        };
        if !matches!(verdict, Verdict::Valid) {
            state.refused += 1;
        }
        verdict
    }

    fn revoke_all(&self) {
        for expiry in self.lock().issued.values_mut() {
            *expiry = None;
        }
    }

    fn snapshot(&self) -> serde_json::Value {
        let state = self.lock();
        serde_json::json!({
            "logins": state.logins,
            "refused": state.refused,
            "lifetime_ms": state.lifetime.as_millis() as u64,
        })
    }
}

pub(crate) fn routes() -> Router<Simulator> {
    Router::new()
        // The client's path, so the two cannot drift apart.
        .route(&paths::login("{env}"), post(login))
        .route("/_sim/tokens", get(tokens).post(steer_tokens))
}

#[derive(Deserialize)]
struct LoginRequest {
    #[serde(rename = "UserName")]
    username: String,
    #[serde(rename = "Password")]
    password: String,
    #[serde(rename = "AppliesTo")]
    applies_to: String,
}

fn rest_error(status: StatusCode, field: &str, message: &str) -> Response {
    (status, Json(RestErrors::one(field, message))).into_response()
}

/// The login; a wrong user or password gets a 401 that names neither's value.
async fn login(State(sim): State<Simulator>, Path(env): Path<String>, body: Bytes) -> Response {
    let Ok(request) = serde_json::from_slice::<LoginRequest>(&body) else {
        return rest_error(
            StatusCode::BAD_REQUEST,
            "",
            "the body must be {\"UserName\", \"Password\", \"AppliesTo\"}",
        );
    };
    if request.applies_to != APPLIES_TO {
        return rest_error(
            StatusCode::BAD_REQUEST,
            "AppliesTo",
            "AppliesTo is not an audience of this service",
        );
    }
    if request.username != SIM_LOGIN_USERNAME || request.password != SIM_LOGIN_PASSWORD {
        return rest_error(
            StatusCode::UNAUTHORIZED,
            "Password",
            "invalid username or password",
        );
    }
    Json(sim.tokens().issue(&env, &request.username)).into_response()
}

async fn tokens(State(sim): State<Simulator>) -> Json<serde_json::Value> {
    Json(sim.tokens().snapshot())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Steer {
    lifetime_ms: Option<u64>,
    #[serde(default)]
    revoke: bool,
}

async fn steer_tokens(State(sim): State<Simulator>, body: Bytes) -> Response {
    let steer: Steer = match ops_json(&body) {
        Ok(steer) => steer,
        Err(e) => return ops_error(StatusCode::BAD_REQUEST, e),
    };
    if let Some(ms) = steer.lifetime_ms {
        sim.tokens().set_lifetime(Duration::from_millis(ms));
    }
    if steer.revoke {
        sim.tokens().revoke_all();
    }
    Json(sim.tokens().snapshot()).into_response()
}

/// In front of CostGuard's API: a call carrying a token the service issued that has
/// expired or was revoked gets 401 before it reaches the platform. A call without a token
/// goes on, for the platform's own answer.
pub(crate) async fn authenticate(
    State(sim): State<Simulator>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let (token, body) = if parts.uri.path().starts_with("/orderplacement/") {
        let Ok(bytes) = to_bytes(body, MAX_SOAP_BODY).await else {
            return rest_error(StatusCode::PAYLOAD_TOO_LARGE, "", "body too large");
        };
        (soap_token(&bytes), Body::from(bytes))
    } else {
        (wrap_token(&parts.headers), body)
    };
    let verdict = token.as_deref().map(|t| sim.tokens().check(t));
    let problem = match verdict {
        Some(Verdict::Expired) => "the token has expired",
        Some(Verdict::Revoked) => "the token was revoked",
        Some(Verdict::Valid) | None => {
            return next.run(Request::from_parts(parts, body)).await;
        }
    };
    let mut response = rest_error(StatusCode::UNAUTHORIZED, "Authorization", problem);
    response
        .headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("WRAP"));
    response
}

fn wrap_token(headers: &axum::http::HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (_, params) = value.trim().split_once(char::is_whitespace)?;
    let token = params
        .trim()
        .strip_prefix("access_token=\"")?
        .strip_suffix('"')?;
    Some(token.to_string())
}

fn soap_token(body: &[u8]) -> Option<String> {
    let doc = Element::parse(std::str::from_utf8(body).ok()?).ok()?;
    doc.descendant("AuthorizationToken").map(|t| t.text.clone())
}
