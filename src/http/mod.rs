//! The HTTP face: routes, authentication, the error envelope, request logging and timeouts.
//! Handlers only translate between HTTP and the [`Verifier`]; no business rule lives here.

pub mod auth;
pub mod dev;
pub mod error;
pub mod extract;
pub mod health;
pub mod mfa;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rand::RngCore;
use tracing::Instrument;

use crate::domain::CodeLength;
use crate::policy::TrustedProxies;
use crate::service::Verifier;
use crate::sms::Outbox;
use crate::store::Store;

pub use auth::ApiKeys;
pub use error::ApiError;

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Everything a handler may use.
#[derive(Clone)]
pub struct AppState {
    pub verifier: Arc<Verifier>,
    pub store: Arc<dyn Store>,
    pub api_keys: Arc<ApiKeys>,
    /// Present only with the console sender: then `/dev/outbox` exists.
    pub outbox: Option<Arc<Outbox>>,
    pub trusted_proxies: Arc<TrustedProxies>,
    pub code_length: CodeLength,
    pub request_timeout: Duration,
    /// The last `/readyz` answer, reused for up to a second.
    pub readiness: Arc<health::ReadinessCache>,
}

/// The application's routes and middleware.
pub fn router(state: AppState) -> Router {
    let mut protected = Router::new()
        .route("/mfa/send-code", post(mfa::send_code))
        .route("/mfa/verify", post(mfa::verify_code));
    if state.outbox.is_some() {
        protected = protected.route("/dev/outbox", get(dev::outbox));
    }
    let protected = protected.route_layer(middleware::from_fn_with_state(
        Arc::clone(&state.api_keys),
        auth::require_api_key,
    ));
    Router::new()
        .merge(protected)
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .fallback(|| async { ApiError::RouteNotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(extract::MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(state.clone(), timeout))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// Answers 503 `unavailable` when a request takes longer than the configured timeout.
async fn timeout(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(state.request_timeout, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::Unavailable("request timed out".to_owned()).into_response(),
    }
}

/// One log line per request (route, status, latency) inside a span carrying the request id,
/// which is taken from `x-request-id` (when sane) or generated, and echoed back. 5xx details
/// attached by [`ApiError`] are logged here, never sent.
async fn log_request(mut req: Request, next: Next) -> Response {
    let request_id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map_or_else(new_request_id, str::to_owned);
    let header =
        HeaderValue::from_str(&request_id).unwrap_or_else(|_| HeaderValue::from_static("invalid"));
    req.headers_mut().insert(REQUEST_ID.clone(), header.clone());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let method = req.method().clone();
    let span = tracing::info_span!("request", id = %request_id, %method, route = %route);
    let started = Instant::now();
    let mut response = next.run(req).instrument(span.clone()).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let status = response.status();
    span.in_scope(|| {
        if let Some(detail) = response.extensions().get::<error::ErrorDetail>() {
            tracing::error!(status = status.as_u16(), latency_ms, error = %detail.0, "request failed");
        } else if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(status = status.as_u16(), latency_ms, "request failed");
        } else {
            tracing::info!(status = status.as_u16(), latency_ms, "request");
        }
    });
    response.headers_mut().insert(REQUEST_ID.clone(), header);
    response
}

fn new_request_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}
