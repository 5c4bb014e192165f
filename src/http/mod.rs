//! The HTTP face: routes, authentication, the error envelope, request logging and timeouts,
//! and the connections they are served on ([`serve`]: header and idle deadlines, a cap).
//! Handlers only translate between HTTP and the [`Verifier`]; no business rule lives here.

pub mod auth;
pub mod callbacks;
pub mod dev;
pub mod error;
pub mod extract;
pub mod guard;
pub mod health;
pub mod idempotency;
pub mod jwt;
pub mod metrics;
pub mod mfa;
pub mod refusals;
pub mod serve;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use rand::RngCore;
use tracing::Instrument;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

use crate::clock::Clock;
use crate::crypto::Keys;
use crate::domain::CodeLength;
use crate::error::Chain;
use crate::policy::TrustedProxies;
use crate::service::Verifier;
use crate::sms::Outbox;
use crate::store::Store;

pub use auth::ApiKeys;
pub use error::ApiError;

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Everything a handler may use, behind one `Arc`: axum clones the state for every extractor
/// and middleware that takes it, so a clone is one reference count, not one per field.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct Shared {
    pub verifier: Arc<Verifier>,
    pub store: Arc<dyn Store>,
    pub keys: Arc<Keys>,
    pub clock: Arc<dyn Clock>,
    pub auth: Arc<auth::Authenticator>,
    /// Present only with the console sender: then `/dev/outbox` exists.
    pub outbox: Option<Arc<Outbox>>,
    pub trusted_proxies: Arc<TrustedProxies>,
    pub code_length: CodeLength,
    pub request_timeout: Duration,
    /// `/metrics` is served on the main listener (behind the API key) unless it has its own.
    pub metrics_on_main: bool,
    /// The last `/readyz` answer, reused for up to a second.
    pub readiness: Arc<health::ReadinessCache>,
    /// The `/v2` face (Twilio Verify's API).
    pub twilio: Arc<crate::twilio_api::TwilioApi>,
    /// Refusals counted per client, so a flood is summarised in the log (see [`refusals`]).
    pub refusals: Arc<refusals::RefusalLog>,
    /// The operator console (`/console`).
    pub console: Arc<crate::console::Console>,
    /// The vendors' delivery receipts (`POST /callbacks/{vendor}`).
    pub receipts: Arc<callbacks::Receipts>,
    /// Requests in flight (read by the events dispatcher, which yields to a saturated server).
    pub load: Arc<crate::load::RequestLoad>,
    /// Each route's and status's request metrics, registered once.
    pub request_metrics: metrics::RequestMetrics,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "verifyd",
        description = "Self-hosted SMS one-time-code (2FA) service: send a code, check it. The Linker Studio 2FA contract.",
        license(name = "Apache-2.0")
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "mfa", description = "Send and check one-time codes"),
        (name = "operations", description = "Probes and metrics"),
        (name = "development", description = "Only with the console sender"),
        (name = "receipts", description = "SMS vendors' delivery receipts (public, signed by the vendor)")
    )
)]
struct ApiDoc;

/// Adds the `api_key` bearer scheme (`Authorization: Bearer <key>`).
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key from VERIFYD_API_KEYS (or the one generated on first start)",
                    ))
                    .build(),
            ),
        );
    }
}

/// The routes and their OpenAPI description, before state and middleware.
fn api(state: &AppState) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let protected = OpenApiRouter::new()
        .routes(routes!(mfa::send_code))
        .routes(routes!(mfa::verify_code))
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&state.auth),
            auth::authenticate,
        ));
    // The operator's routes: the API key only, never a user token.
    let mut operator = OpenApiRouter::new();
    if state.outbox.is_some() {
        operator = operator.routes(routes!(dev::outbox));
    }
    if state.metrics_on_main {
        operator = operator.routes(routes!(metrics::render));
    }
    if state.outbox.is_some() || state.metrics_on_main {
        operator = operator.route_layer(middleware::from_fn_with_state(
            Arc::clone(&state.auth),
            auth::require_api_key,
        ));
    }
    // The fraud guard's status and unblock (`verifyd guard`): the API key only.
    let guard = OpenApiRouter::new()
        .routes(routes!(guard::guard_status))
        .routes(routes!(guard::guard_unblock))
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&state.auth),
            auth::require_api_key,
        ));
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(protected)
        .merge(operator)
        .merge(guard)
        .routes(routes!(callbacks::receive_receipt))
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .split_for_parts()
}

/// The OpenAPI document as served at `/openapi.json`.
pub fn openapi(state: &AppState) -> utoipa::openapi::OpenApi {
    api(state).1
}

/// The application's routes and middleware.
pub fn router(state: AppState) -> Router {
    let (routes, openapi) = api(&state);
    routes
        .merge(crate::twilio_api::router(&state))
        .merge(crate::console::router())
        .merge(SwaggerUi::new("/docs").url("/openapi.json", openapi))
        .fallback(|| async { ApiError::RouteNotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(extract::MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(state.clone(), log_request))
        .with_state(state)
}

/// The separate metrics listener's routes (public: bind it to a private address).
pub fn metrics_router() -> Router {
    Router::new().route("/metrics", axum::routing::get(metrics::render))
}

/// One log line per request (status, latency, outcome) inside the request's span, which carries
/// the request id (taken from `x-request-id` when sane, or generated, and echoed back), the
/// method and route, and, recorded by the handler once it knows them, the masked number and
/// the client key. The cause of a 5xx, attached by [`ApiError`], is logged here with its chain,
/// never sent. A request that takes longer than the configured timeout is answered 503
/// `unavailable` (and logged as such). One middleware does both: each layer costs a boxed
/// future and a clone of the routes per request.
async fn log_request(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let _in_flight = state.load.enter();
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
    // A fixed label set: matched route templates, or "unmatched" (never a raw path).
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("unmatched", |p| {
        if p.as_str().starts_with("/docs") {
            "/docs"
        } else {
            p.as_str()
        }
    });
    let method = req.method().clone();
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0);
    let forwarded = peer.and_then(|_| {
        let values: Vec<HeaderValue> = req
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .cloned()
            .collect();
        (!values.is_empty()).then_some(values)
    });
    let span = tracing::info_span!(
        "request",
        id = %request_id,
        %method,
        route = %route,
        phone = tracing::field::Empty,
        client = tracing::field::Empty,
        locale = tracing::field::Empty,
        encoding = tracing::field::Empty,
        segments = tracing::field::Empty,
    );
    let started = Instant::now();
    let mut response = match tokio::time::timeout(
        state.request_timeout,
        next.run(req).instrument(span.clone()),
    )
    .await
    {
        Ok(response) => response,
        Err(_) => ApiError::Unavailable("request timed out".into()).into_response(),
    };
    let elapsed = started.elapsed();
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    let status = response.status();
    state
        .request_metrics
        .record(route, status.as_u16(), elapsed);
    let outcome = response
        .extensions()
        .get::<error::ErrorCode>()
        .map_or("ok", |c| c.as_str());
    // A refusal is logged line by line until its client has had its share in this window;
    // then it is only counted, and summarised when the window ends (see `refusals`).
    let logged = !status.is_client_error()
        || !tracing::enabled!(tracing::Level::INFO)
        || peer.is_none_or(|peer| {
            let values = forwarded.as_deref().unwrap_or_default();
            let ip = state
                .trusted_proxies
                .resolve(peer.ip(), values.iter().filter_map(|v| v.to_str().ok()));
            let outcome = if outcome == "ok" {
                status.canonical_reason().unwrap_or("refused")
            } else {
                outcome
            };
            state
                .refusals
                .admit(outcome, crate::policy::ClientKey::from_ip(ip).as_str())
        });
    span.in_scope(|| {
        if let Some(detail) = response.extensions().get::<error::ErrorDetail>() {
            tracing::error!(status = status.as_u16(), latency_ms, outcome, error = %Chain(&*detail.0), "request failed");
        } else if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(status = status.as_u16(), latency_ms, outcome, "request failed");
        } else if logged {
            tracing::info!(status = status.as_u16(), latency_ms, outcome, "request");
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
