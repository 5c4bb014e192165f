//! The `/v2` face: Twilio Verify's API (TWILIO-COMPAT.md), so that backends written against
//! Twilio's official SDKs move to verifyd by changing their base URL. It only translates:
//! HTTP Basic auth, form parameters, Twilio's JSON and error codes, absolute URLs from
//! `VERIFYD_PUBLIC_URL`. Every rule (country and channel allowlists, number types, test
//! numbers, every bucket, the verification lifecycle) is the [`Verifier`](crate::service::Verifier)'s,
//! the same one `/mfa/*` calls, in the same order, with the same all-or-nothing charging.
//!
//! # Layout
//!
//! - [`attempts`]: `/v2/Attempts`, one attempt, and the summary.
//! - [`auth`]: Basic auth (account SID + an API key).
//! - [`form`]: the parameters of a request.
//! - [`error`]: Twilio's error body and the mapping from verifyd's outcomes.
//! - [`rate_limits`]: RateLimits and Buckets, and what `RateLimits` on a create charges.
//! - [`safelist`]: the safe list (`/v2/SafeList/Numbers`).
//! - [`services`]: `/v2/Services` (and the list paging every list uses).
//! - [`verifications`]: Verifications and VerificationCheck.
//! - [`sid`]: Twilio-style identifiers.

pub mod attempts;
pub mod auth;
pub mod error;
pub mod form;
pub mod rate_limits;
pub mod safelist;
pub mod services;
pub mod sid;
pub mod verifications;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::Uri;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};

use crate::app::Stores;
use crate::config::Config;
use crate::domain::{CodeLength, Timestamp};
use crate::http::{ApiKeys, AppState};
use crate::store::{
    AttemptStore, RateLimitStore, SafeListStore, ServiceRecord, ServiceStore, StoreError,
};
pub use error::TwilioError;

/// The store's names for the generated identity values.
const ACCOUNT_SID: &str = "account_sid";
const DEFAULT_SERVICE_SID: &str = "default_service_sid";

/// What the `/v2` face needs beyond the shared state.
pub struct TwilioApi {
    /// The `AC…` SID the SDKs authenticate as.
    pub account_sid: String,
    /// The default service (`VA…`): the one `/mfa/*` uses; it cannot be deleted.
    pub default_service: String,
    /// Where clients reach verifyd, without a trailing slash.
    pub public_url: String,
    /// The keys accepted as the Basic password (the `/mfa` API keys).
    pub keys: ApiKeys,
    pub services: Arc<dyn ServiceStore>,
    /// The attempt log, for `/v2/Attempts`.
    pub attempts: Arc<dyn AttemptStore>,
    pub safe_list: Arc<dyn SafeListStore>,
    pub rate_limits: Arc<dyn RateLimitStore>,
    /// `VERIFYD_CODE_LENGTH`: the default service's code length.
    pub default_code_length: CodeLength,
    /// How long a verification lives (bounds `Retry-After` of 60202/60203).
    pub ttl: Duration,
    /// False with the twilio-verify provider: Twilio keeps those verifications, so every
    /// `/v2` path answers 404/20404 (point the SDK at Twilio itself).
    pub served: bool,
}

impl TwilioApi {
    /// Resolves the account and default service SIDs (configured, else the ones kept in the
    /// store, generated on first start) and makes sure the default service exists, with
    /// `VERIFYD_CODE_LENGTH` as its code length.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be read or written.
    pub async fn start(
        config: &Config,
        stores: &Stores,
        keys: ApiKeys,
        public_url: String,
        now: Timestamp,
    ) -> Result<Self, StoreError> {
        let services = Arc::clone(&stores.services);
        let account_sid = match &config.server.account_sid {
            Some(sid) => sid.clone(),
            None => services.identity(ACCOUNT_SID, &sid::generate("AC")).await?,
        };
        let default_service = default_service_sid(config, services.as_ref()).await?;
        let code_length = u8::try_from(config.codes.length.get()).unwrap_or(6);
        let fresh = ServiceRecord {
            sid: default_service.clone(),
            friendly_name: config.server.service_name.clone(),
            code_length,
            lookup_enabled: false,
            skip_sms_to_landlines: false,
            psd2_enabled: false,
            do_not_share_warning_enabled: false,
            custom_code_enabled: false,
            default_template_sid: None,
            created: now,
            updated: now,
        };
        if !services.insert_service(&fresh).await?
            && let Some(mut stored) = services.service(&default_service).await?
            && stored.code_length != code_length
        {
            stored.code_length = code_length;
            stored.updated = now;
            services.update_service(&stored).await?;
        }
        Ok(Self {
            account_sid,
            default_service,
            public_url,
            keys,
            services,
            attempts: Arc::clone(&stores.attempts),
            safe_list: Arc::clone(&stores.safe_list),
            rate_limits: Arc::clone(&stores.rate_limits),
            default_code_length: config.codes.length,
            ttl: config.codes.ttl,
            served: true,
        })
    }

    /// Whether `/v2` is served (false with the twilio-verify provider).
    #[must_use]
    pub fn served(mut self, served: bool) -> Self {
        self.served = served;
        self
    }

    /// The absolute URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.public_url)
    }

    /// The scope a service's verifications are kept under: none for the default service
    /// (shared with `/mfa/*`), the service SID for any other.
    pub fn scope<'a>(&self, service: &'a str) -> Option<&'a str> {
        (service != self.default_service).then_some(service)
    }

    /// The service `sid`, or 404/20404 for `path`.
    ///
    /// # Errors
    /// [`TwilioError`]: not found, or the store failed.
    pub async fn service(&self, sid: &str, path: &str) -> Result<ServiceRecord, TwilioError> {
        if !sid::valid(sid, "VA") {
            return Err(TwilioError::not_found(path));
        }
        self.services
            .service(sid)
            .await?
            .ok_or_else(|| TwilioError::not_found(path))
    }
}

/// 404/20404 for every `/v2` path verifyd does not serve (Entities, Factors, Webhooks, …).
async fn not_served(uri: Uri) -> Response {
    TwilioError::not_found(uri.path()).into_response()
}

/// 405 on a served path with another method.
async fn method_not_allowed() -> Response {
    TwilioError::from_api(crate::http::ApiError::MethodNotAllowed, Duration::ZERO).into_response()
}

/// The `/v2` routes, all behind Basic auth (an unknown path answers 401 before 404).
pub fn router(state: &AppState) -> Router<AppState> {
    let served = if state.twilio.served {
        served_routes()
    } else {
        Router::new()
    };
    served
        .route("/v2", any(not_served))
        .route("/v2/{*rest}", any(not_served))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
}

fn served_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v2/Services",
            get(services::list_services)
                .post(services::create_service)
                .fallback(method_not_allowed),
        )
        .route(
            "/v2/Services/{sid}",
            get(services::fetch_service)
                .post(services::update_service)
                .delete(services::delete_service)
                .fallback(method_not_allowed),
        )
        .route(
            "/v2/Services/{service}/Verifications",
            post(verifications::create_verification).fallback(method_not_allowed),
        )
        .route(
            "/v2/Services/{service}/Verifications/{sid}",
            get(verifications::fetch_verification)
                .post(verifications::update_verification)
                .fallback(method_not_allowed),
        )
        .route(
            "/v2/Services/{service}/VerificationCheck",
            post(verifications::check_verification).fallback(method_not_allowed),
        )
        .route(
            "/v2/SafeList/Numbers",
            post(safelist::add_safe_number).fallback(method_not_allowed),
        )
        .route(
            "/v2/SafeList/Numbers/{number}",
            get(safelist::fetch_safe_number)
                .delete(safelist::remove_safe_number)
                .fallback(method_not_allowed),
        )
        .route(
            "/v2/Services/{service}/RateLimits",
            get(rate_limits::list_rate_limits)
                .post(rate_limits::create_rate_limit)
                .fallback(method_not_allowed),
        )
        .route(
            "/v2/Services/{service}/RateLimits/{sid}",
            get(rate_limits::fetch_rate_limit)
                .post(rate_limits::update_rate_limit)
                .delete(rate_limits::delete_rate_limit)
                .fallback(method_not_allowed),
        )
        .route(
            "/v2/Services/{service}/RateLimits/{limit}/Buckets",
            get(rate_limits::list_buckets)
                .post(rate_limits::create_bucket)
                .fallback(method_not_allowed),
        )
        .route(
            "/v2/Services/{service}/RateLimits/{limit}/Buckets/{sid}",
            get(rate_limits::fetch_bucket)
                .post(rate_limits::update_bucket)
                .delete(rate_limits::delete_bucket)
                .fallback(method_not_allowed),
        )
        .route(
            "/v2/Attempts",
            get(attempts::list_attempts).fallback(method_not_allowed),
        )
        .route(
            "/v2/Attempts/Summary",
            get(attempts::summarize_attempts).fallback(method_not_allowed),
        )
        .route(
            "/v2/Attempts/{sid}",
            get(attempts::fetch_attempt).fallback(method_not_allowed),
        )
}

/// The default service's sid: `VERIFYD_SERVICE_SID`, else the one generated once and kept in
/// the store (the same on every replica and every run).
///
/// # Errors
/// [`StoreError`] when the store cannot be read or written.
pub async fn default_service_sid(
    config: &Config,
    services: &dyn crate::store::ServiceStore,
) -> Result<String, StoreError> {
    match &config.server.service_sid {
        Some(sid) => Ok(sid.clone()),
        None => {
            services
                .identity(DEFAULT_SERVICE_SID, &sid::generate("VA"))
                .await
        }
    }
}
