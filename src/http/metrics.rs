//! Prometheus metrics. The recorder is process-wide (installed once); `GET /metrics` renders
//! it. Label values come from fixed sets only: route templates, status codes, bucket names,
//! provider and channel names, ISO region codes, outcomes — never a number, an IP or error text.
//!
//! Conversion rate (approved / sent):
//! `sum(rate(verifyd_verifications_total{result="approved"}[1h])) / sum(rate(verifyd_sms_sent_total{outcome="sent"}[1h]))`

use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};
use std::time::Duration;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Latency buckets in seconds (0.5 ms to 10 s).
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Buckets of `verifyd_sqlite_batch_size`: writes committed together.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// The process's metrics handle, installing the recorder on first use.
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("_duration_seconds".to_owned()),
                    LATENCY_BUCKETS,
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("verifyd_sqlite_batch_size".to_owned()),
                        BATCH_BUCKETS,
                    )
                })
                .expect("static, non-empty buckets");
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (an embedding program): then ours only
            // renders what it records, which is nothing; the service keeps working.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// `GET /metrics`: Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "Prometheus text exposition format", content_type = "text/plain", body = String),
        (status = 401, description = "`unauthorized` (on the main listener the API key is required; a user token is refused)", body = super::error::ErrorBody),
    ),
    security((), ("api_key" = []))
)]
pub async fn render() -> Response {
    let mut response = handle().render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// The per-request counter and latency histogram of each route and status, registered once per
/// server: registering a labelled metric hashes and copies its labels on every call, which a
/// flood of refusals pays per request. Routes are templates and statuses a small set, so this
/// stays small.
#[derive(Default)]
pub struct RequestMetrics {
    by_route: RwLock<HashMap<Box<str>, ByStatus>>,
}

/// One route's handles: per status, its request counter and the route's latency histogram.
type ByStatus = HashMap<u16, (Counter, Histogram)>;

impl RequestMetrics {
    /// Counts one request of `route` answered `status` after `elapsed`.
    pub fn record(&self, route: &str, status: u16, elapsed: Duration) {
        let cached = self
            .by_route
            .read()
            .ok()
            .and_then(|m| m.get(route).and_then(|s| s.get(&status)).cloned());
        let (requests, duration) = cached.unwrap_or_else(|| self.register(route, status));
        requests.increment(1);
        duration.record(elapsed.as_secs_f64());
    }

    fn register(&self, route: &str, status: u16) -> (Counter, Histogram) {
        let handles = (
            metrics::counter!("verifyd_http_requests_total", "route" => route.to_owned(), "status" => status.to_string()),
            metrics::histogram!("verifyd_http_request_duration_seconds", "route" => route.to_owned()),
        );
        if let Ok(mut m) = self.by_route.write() {
            m.entry(route.into())
                .or_default()
                .insert(status, handles.clone());
        }
        handles
    }
}
