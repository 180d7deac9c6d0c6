//! The CostGuard token every call carries: static from configuration, or obtained from
//! IDI's Security Token Service (help.idibilling.com "Getting Started: Security", Security
//! Token Service API 2.13) and shared by every stage of a worker. One login at a time per
//! worker (stages that need a token meanwhile wait for it and share it), a new token at
//! 75 % of the lifetime (the STS doc's figure), and a fresh login when a call was refused
//! with 401.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::error::CostGuardError;
use crate::billing::http::{self, Limits};
use crate::secret::Secret;

/// What the STS calls the audience of tokens for IDI's web services (documented).
pub const APPLIES_TO: &str = "http://idibilling.com/webservices";

/// The share of a token's lifetime after which a new one is obtained (STS API 2.13).
const REFRESH_AT: f64 = 0.75;

const LOGIN: &str = "login";

/// How billflow gets its CostGuard token.
#[derive(Debug, Clone)]
pub enum CostGuardAuth {
    /// A token from configuration, used as it is.
    Static(Secret),
    /// Credentials for the Security Token Service's login.
    Login { username: String, password: Secret },
}

/// The token source of one worker; clones share the cache.
#[derive(Clone)]
pub(super) struct Tokens(Arc<Source>);

enum Source {
    Static(Secret),
    Login(Login),
}

struct Login {
    http: reqwest::Client,
    base_url: String,
    limits: Limits,
    username: String,
    password: Secret,
    /// By environment: a token is issued for one. The lock is held across a login, so
    /// concurrent stages make one.
    cache: Mutex<HashMap<String, Cached>>,
}

struct Cached {
    token: Secret,
    /// When to log in again; `None` when the token said nothing of its expiry (a 401 then
    /// renews it).
    renew_at: Option<Instant>,
}

impl Tokens {
    pub(super) fn new(
        auth: &CostGuardAuth,
        http: reqwest::Client,
        base_url: &str,
        limits: Limits,
    ) -> Self {
        Tokens(Arc::new(match auth {
            CostGuardAuth::Static(token) => Source::Static(token.clone()),
            CostGuardAuth::Login { username, password } => Source::Login(Login {
                http,
                base_url: base_url.trim_end_matches('/').to_string(),
                limits,
                username: username.clone(),
                password: password.clone(),
                cache: Mutex::new(HashMap::new()),
            }),
        }))
    }

    /// The token for `env`, logging in when there is none or it is due for renewal.
    pub(super) async fn get(&self, env: &str) -> Result<Secret, CostGuardError> {
        let login = match &*self.0 {
            Source::Static(token) => return Ok(token.clone()),
            Source::Login(login) => login,
        };
        let mut cache = login.cache.lock().await;
        if let Some(cached) = cache.get(env) {
            if cached.renew_at.is_none_or(|at| Instant::now() < at) {
                return Ok(cached.token.clone());
            }
        }
        login.login(env, &mut cache).await
    }

    /// A token other than `refused`, which a call was just refused with (401): the one
    /// another stage got meanwhile, or a new login. `None` for a static token, which a new
    /// attempt cannot change.
    pub(super) async fn renew(
        &self,
        env: &str,
        refused: &Secret,
    ) -> Result<Option<Secret>, CostGuardError> {
        let login = match &*self.0 {
            Source::Static(_) => return Ok(None),
            Source::Login(login) => login,
        };
        let mut cache = login.cache.lock().await;
        if let Some(cached) = cache.get(env) {
            if cached.token != *refused {
                return Ok(Some(cached.token.clone()));
            }
        }
        login.login(env, &mut cache).await.map(Some)
    }
}

impl Login {
    async fn login(
        &self,
        env: &str,
        cache: &mut HashMap<String, Cached>,
    ) -> Result<Secret, CostGuardError> {
        let _timer = crate::billing::CallTimer::start("costguard", LOGIN);
        let url = format!("{}{}", self.base_url, paths::login(env));
        let request = self
            .http
            .post(url)
            .header(ACCEPT, "application/json")
            .header(CONTENT_TYPE, "application/json")
            .body(wire::request(&self.username, &self.password));
        let answer = http::exchange(request, self.limits)
            .await
            .map_err(|error| CostGuardError::Login {
                status: None,
                message: error.to_string(),
                transient: error.failure() != crate::billing::Failure::Permanent,
            })?;
        if !answer.status.is_success() {
            let status = answer.status.as_u16();
            return Err(CostGuardError::Login {
                status: Some(status),
                // The password is registered with the redactor; an echo of it is masked.
                message: answer.text().chars().take(300).collect(),
                transient: status >= 500 || status == 429,
            });
        }
        let token = wire::token(&answer.body).map_err(|detail| CostGuardError::Login {
            status: Some(answer.status.as_u16()),
            message: detail,
            transient: false,
        })?;
        // Masked wherever a platform might echo it, like the configured secrets.
        crate::redact::register([token.expose()]);
        let renew_at = wire::expires_on(token.expose()).map(|expires_on| {
            // In milliseconds: whole seconds would overstate a short lifetime.
            let left = expires_on
                .saturating_mul(1000)
                .saturating_sub(chrono::Utc::now().timestamp_millis());
            let lifetime = Duration::from_millis(u64::try_from(left).unwrap_or(0));
            Instant::now() + lifetime.mul_f64(REFRESH_AT)
        });
        if renew_at.is_none() {
            tracing::warn!(
                env,
                "the CostGuard token names no ExpiresOn: it is renewed when refused"
            );
        }
        tracing::info!(env, "logged in to the CostGuard Security Token Service");
        cache.insert(
            env.to_string(),
            Cached {
                token: token.clone(),
                renew_at,
            },
        );
        Ok(token)
    }
}

pub mod paths {
    /// The Security Token Service's login (help.idibilling.com "Getting Started: Security").
    pub fn login(env: &str) -> String {
        format!("/securitytoken/1xa/{env}/api/login")
    }
}

/// The login's request and answer.
pub mod wire {
    use crate::secret::Secret;

    // pinned: the STS pages show the login URL, not its bodies. The request is JSON
    // {"UserName", "Password", "AppliesTo"} (the credentials and audience the STS concepts
    // name); the answer is the token as a JSON string, a Simple Web Token whose ExpiresOn
    // (Unix seconds, per the SWT format) gives its lifetime.
    pub fn request(username: &str, password: &Secret) -> String {
        serde_json::json!({
            "UserName": username,
            "Password": password.expose(),
            "AppliesTo": super::APPLIES_TO,
        })
        .to_string()
    }

    /// The token of a login answer.
    pub fn token(body: &[u8]) -> Result<Secret, String> {
        match serde_json::from_slice::<String>(body) {
            Ok(token) if !token.trim().is_empty() => Ok(Secret::new(token.trim())),
            Ok(_) => Err("the login answered an empty token".into()),
            Err(_) => Err("the login's answer is not a JSON string (the token)".into()),
        }
    }

    /// The `ExpiresOn` field of a Simple Web Token (form-encoded `name=value&...`).
    pub fn expires_on(token: &str) -> Option<i64> {
        token
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(name, _)| *name == "ExpiresOn")
            .and_then(|(_, value)| value.parse().ok())
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn request_names_user_password_and_audience() {
            let body: serde_json::Value =
                serde_json::from_str(&request("api", &Secret::new("p\"w"))).unwrap();
            assert_eq!(
                body,
                serde_json::json!({"UserName": "api", "Password": "p\"w",
                                   "AppliesTo": "http://idibilling.com/webservices"})
            );
        }

        #[test]
        fn token_and_expiry_are_read() {
            let token =
                token(br#""Environment=test&ExpiresOn=1700000000&HMACSHA256=abc""#).unwrap();
            assert_eq!(expires_on(token.expose()), Some(1_700_000_000));
            assert_eq!(expires_on("Environment=test"), None);
            assert!(super::token(br#""""#).is_err());
            assert!(super::token(b"{}").is_err());
        }
    }
}
