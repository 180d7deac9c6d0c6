use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest::{RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;

use super::error::CostGuardError;
use super::rest::{
    self, Collection, FavoritePricePoint, OrderDetail, RenewAdvancePayResult, ServiceItemSummaries,
    ServiceNumberDetail,
};
use super::soap::{self, Cart, CartSummary, OrderRequest, OrderResponse, Requestor};
use super::token::{CostGuardAuth, Tokens};
use crate::billing::http::{self, Answer, Limits};
use crate::secret::Secret;

#[derive(Debug, Clone)]
pub struct CostGuardConfig {
    /// Base URL, e.g. `https://api.idibilling.com` or a `billflow sim` address.
    pub base_url: String,
    /// Where the token comes from; it goes in REST `Authorization: WRAP access_token=".."`
    /// and SOAP `Requestor/AuthorizationToken`.
    pub auth: CostGuardAuth,
    /// The customer's `AuthenticatedKey` sent in CustomerID.
    pub authenticated_key: String,
    /// Deadline of one call, the whole answer included.
    pub timeout: Duration,
    /// Largest answer read; a larger one fails the call.
    pub max_response_bytes: usize,
}

impl CostGuardConfig {
    fn limits(&self) -> Limits {
        Limits {
            timeout: self.timeout,
            max_response_bytes: self.max_response_bytes,
        }
    }
}

/// One CostGuard environment's API. Cheap to clone.
#[derive(Clone)]
pub struct CostGuardClient {
    http: reqwest::Client,
    config: CostGuardConfig,
    /// Shared by every clone: one token per worker.
    tokens: Tokens,
    idempotency_key: Option<String>,
}

impl CostGuardClient {
    pub fn new(config: CostGuardConfig) -> Result<Self, reqwest::Error> {
        let http = http::client(config.limits())?;
        let tokens = Tokens::new(
            &config.auth,
            http.clone(),
            &config.base_url,
            config.limits(),
        );
        Ok(CostGuardClient {
            http,
            config,
            tokens,
            idempotency_key: None,
        })
    }

    /// A client whose calls carry `Idempotency-Key: key`.
    pub fn with_idempotency_key(&self, key: String) -> Self {
        CostGuardClient {
            idempotency_key: Some(key),
            ..self.clone()
        }
    }

    fn keyed(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.idempotency_key {
            Some(key) => request.header("Idempotency-Key", key),
            None => request,
        }
    }

    pub fn authenticated_key(&self) -> &str {
        &self.config.authenticated_key
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.base_url.trim_end_matches('/'))
    }

    /// Sends the request made with the current token; refused with 401, once more with a
    /// fresh token (a 401 proves the call was not processed, so this is safe for any
    /// call). A second 401 is a permanent authentication failure.
    async fn authorized(
        &self,
        env: &str,
        operation: &'static str,
        request: impl Fn(&Secret) -> RequestBuilder,
    ) -> Result<Answer, CostGuardError> {
        let token = self.tokens.get(env).await?;
        let answer = self.send(operation, request(&token)).await?;
        if answer.status != StatusCode::UNAUTHORIZED {
            return Ok(answer);
        }
        let Some(fresh) = self.tokens.renew(env, &token).await? else {
            return Ok(answer);
        };
        tracing::info!(
            operation,
            "CostGuard refused the token (401): retrying once with a fresh one"
        );
        let answer = self.send(operation, request(&fresh)).await?;
        if answer.status == StatusCode::UNAUTHORIZED {
            return Err(CostGuardError::Unauthorized { operation });
        }
        Ok(answer)
    }

    async fn send(
        &self,
        operation: &'static str,
        request: RequestBuilder,
    ) -> Result<Answer, CostGuardError> {
        http::exchange(self.keyed(request), self.config.limits())
            .await
            .map_err(CostGuardError::transport(operation))
    }

    /// Service Number Detail search: the internal ids and status of a service number.
    pub async fn service_number_detail(
        &self,
        env: &str,
        service_number: &str,
    ) -> Result<ServiceNumberDetail, CostGuardError> {
        const OP: &str = "ServiceNumberDetail";
        let url = self.url(&rest::paths::service_number_detail(env, service_number));
        let found: Collection<ServiceNumberDetail> =
            self.rest(env, OP, || self.http.get(&url)).await?;
        found
            .value
            .into_iter()
            .next()
            .ok_or_else(|| CostGuardError::ServiceNotFound(service_number.to_string()))
    }

    /// The service's favorite AdvancePay price points (active or not).
    pub async fn favorite_price_points(
        &self,
        env: &str,
        service_id: i64,
    ) -> Result<Vec<FavoritePricePoint>, CostGuardError> {
        const OP: &str = "favoriteAdvancePayPricePoint";
        let url = self.url(&rest::paths::favorite_price_points(env, service_id));
        let found: Collection<FavoritePricePoint> =
            self.rest(env, OP, || self.http.get(&url)).await?;
        Ok(found.value)
    }

    /// Adds the renewal items for every active favorite price point to an order.
    pub async fn renew_advance_pay(
        &self,
        env: &str,
        order_id: i64,
        service_id: i64,
    ) -> Result<RenewAdvancePayResult, CostGuardError> {
        const OP: &str = "renewAdvancePay";
        let url = self.url(&rest::paths::renew_advance_pay(env, order_id, service_id));
        let renewed: RenewAdvancePayResult = self
            .rest(env, OP, || {
                self.http.post(&url).json(&serde_json::json!({}))
            })
            .await?;
        if renewed.renewed_advance_pay_product_count < 1 {
            return Err(CostGuardError::NothingRenewed { service_id });
        }
        Ok(renewed)
    }

    /// Search Service Item Summaries: the service items on an order (documented; see
    /// [`rest::ServiceItemSummaries`]), read to reconcile a call whose outcome is unknown.
    pub async fn service_item_summary(
        &self,
        env: &str,
        order_id: i64,
    ) -> Result<ServiceItemSummaries, CostGuardError> {
        const OP: &str = "serviceItemSummary";
        let url = self.url(&rest::paths::service_item_summary(env, order_id));
        let page: ServiceItemSummaries = self.rest(env, OP, || self.http.get(&url)).await?;
        page.checked().map_err(|e| CostGuardError::malformed(OP, e))
    }

    /// The pinned order lookup (see [`OrderDetail`]): items, tenders and status of a
    /// cart, for the probes behind COSTGUARD_PINNED_ORDER_PROBES.
    pub async fn get_order(&self, env: &str, order_id: i64) -> Result<OrderDetail, CostGuardError> {
        const OP: &str = "getOrder";
        let url = self.url(&rest::paths::order(env, order_id));
        self.rest(env, OP, || self.http.get(&url)).await
    }

    async fn rest<T: DeserializeOwned>(
        &self,
        env: &str,
        operation: &'static str,
        request: impl Fn() -> RequestBuilder,
    ) -> Result<T, CostGuardError> {
        let _timer = crate::billing::CallTimer::start("costguard", operation);
        let answer = self
            .authorized(env, operation, |token| {
                request()
                    .header(reqwest::header::ACCEPT, "application/json")
                    .header(
                        AUTHORIZATION,
                        format!("WRAP access_token=\"{}\"", token.expose()),
                    )
            })
            .await?;
        if !answer.status.is_success() {
            let message = serde_json::from_slice::<rest::RestErrors>(&answer.body)
                .map(|e| e.summary())
                .unwrap_or_else(|_| answer.text().chars().take(500).collect());
            return Err(CostGuardError::Http {
                operation,
                status: answer.status.as_u16(),
                message,
            });
        }
        serde_json::from_slice(&answer.body).map_err(|e| CostGuardError::malformed(operation, e))
    }

    /// CreateCart: an empty order for the customer. `register_id` is set for orders that
    /// will be tendered (the renewal), and left out for the restore order.
    pub async fn create_cart(
        &self,
        env: &str,
        customer_id: i64,
        order_type_id: i64,
        register_id: Option<i64>,
    ) -> Result<Cart, CostGuardError> {
        let request = OrderRequest::CreateCart {
            order_type_id,
            customer: soap::KeyedId {
                authenticated_key: self.config.authenticated_key.clone(),
                id: customer_id,
            },
        };
        let result = self.order(env, &request, register_id).await?;
        soap::read_cart(result.as_ref()).map_err(|e| ("CreateCart", e).into())
    }

    /// ModifyCart with a restore service information item.
    pub async fn add_restore_item(
        &self,
        env: &str,
        cart: &soap::KeyedId,
        service_id: i64,
        reason_id: i64,
    ) -> Result<Cart, CostGuardError> {
        let request = OrderRequest::ModifyCartRestore {
            cart: cart.clone(),
            service_id,
            reason_id,
        };
        let result = self.order(env, &request, None).await?;
        soap::read_cart(result.as_ref()).map_err(|e| ("ModifyCart", e).into())
    }

    /// ModifyCart with one captured cash tender.
    pub async fn add_cash_tender(
        &self,
        env: &str,
        cart: &soap::KeyedId,
        amount: rust_decimal::Decimal,
        tender_type_id: i64,
    ) -> Result<Cart, CostGuardError> {
        let request = OrderRequest::ModifyCartCashTender {
            cart: cart.clone(),
            amount,
            tender_type_id,
        };
        let result = self.order(env, &request, None).await?;
        soap::read_cart(result.as_ref()).map_err(|e| ("ModifyCart", e).into())
    }

    /// Checkout: verifies the order and prices it. A restore order has no summary.
    pub async fn checkout(
        &self,
        env: &str,
        cart: &soap::KeyedId,
    ) -> Result<Option<CartSummary>, CostGuardError> {
        let request = OrderRequest::Checkout { cart: cart.clone() };
        let result = self.order(env, &request, None).await?;
        soap::read_summary(result.as_ref()).map_err(|e| ("Checkout", e).into())
    }

    pub async fn submit_cart(
        &self,
        env: &str,
        cart: &soap::KeyedId,
    ) -> Result<Option<CartSummary>, CostGuardError> {
        let request = OrderRequest::SubmitCart { cart: cart.clone() };
        let result = self.order(env, &request, None).await?;
        soap::read_summary(result.as_ref()).map_err(|e| ("SubmitCart", e).into())
    }

    /// Sends one Order Placement call and returns its `Result` element; Faults and
    /// `Error` messages become errors, warnings are logged.
    async fn order(
        &self,
        env: &str,
        request: &OrderRequest,
        register_id: Option<i64>,
    ) -> Result<Option<crate::xml::Element>, CostGuardError> {
        let operation = request.operation();
        let _timer = crate::billing::CallTimer::start("costguard", operation);
        let url = self.url(&rest::paths::order_placement(env));
        let answer = self
            .authorized(env, operation, |token| {
                let requestor = Requestor {
                    authorization_token: token.expose().to_string(),
                    register_id,
                };
                self.http
                    .post(url.clone())
                    .header(CONTENT_TYPE, soap::content_type(operation))
                    .body(request.envelope(&requestor))
            })
            .await?;
        let status = answer.status;
        let body = answer.text();
        // SOAP 1.2 faults come with 400/500; read the envelope before judging the status.
        match OrderResponse::parse(operation, &body) {
            Ok(OrderResponse::Fault(fault)) => Err(CostGuardError::Fault {
                operation,
                status: status.as_u16(),
                code: fault.code,
                reason: fault.reason,
            }),
            Ok(OrderResponse::Reply { .. }) if !status.is_success() => Err(CostGuardError::Http {
                operation,
                status: status.as_u16(),
                message: "non-success status with a reply body".into(),
            }),
            Ok(OrderResponse::Reply { result, messages }) => {
                let errors: Vec<String> = messages
                    .iter()
                    .filter(|m| m.is_error())
                    .map(|m| format!("[{}] {}", m.code, m.text))
                    .collect();
                for warning in messages.iter().filter(|m| !m.is_error()) {
                    tracing::warn!(operation, code = %warning.code, severity = %warning.severity, text = %warning.text, "CostGuard message");
                }
                if errors.is_empty() {
                    Ok(result)
                } else {
                    Err(CostGuardError::Rejected {
                        operation,
                        messages: errors.join("; "),
                    })
                }
            }
            Err(_) if !status.is_success() => Err(CostGuardError::Http {
                operation,
                status: status.as_u16(),
                message: body.chars().take(500).collect(),
            }),
            Err(e) => Err(CostGuardError::malformed(operation, e)),
        }
    }
}
