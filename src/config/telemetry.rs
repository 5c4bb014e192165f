//! What verifyd tells its operator: the log format and filter, and the separate listener for
//! `/metrics`.

use std::net::SocketAddr;

use super::settings::{ENV_LOG_FORMAT, ENV_METRICS_ADDR, ENV_RUST_LOG};
use super::source::Reader;

component! {
    /// Logs and metrics.
    #[derive(Clone, Debug)]
    pub struct TelemetrySettings / TelemetryDraft {
        /// A separate, unauthenticated listener for `/metrics`.
        pub metrics_addr: Option<SocketAddr>,
        pub log_format: LogFormat,
        pub log_filter: String,
    }
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Reads the telemetry settings.
pub(super) fn read(r: &mut Reader<'_>) -> TelemetryDraft {
    TelemetryDraft {
        metrics_addr: r.parse(ENV_METRICS_ADDR, |t| {
            if t.is_empty() {
                return Ok(None);
            }
            t.parse::<SocketAddr>()
                .map(Some)
                .map_err(|_| "expected IP:port, for example 127.0.0.1:9090".to_owned())
        }),
        log_format: r.parse(ENV_LOG_FORMAT, |t| match t {
            "pretty" => Ok(LogFormat::Pretty),
            "json" => Ok(LogFormat::Json),
            _ => Err("expected `pretty` or `json`".to_owned()),
        }),
        log_filter: r.parse(ENV_RUST_LOG, |t| {
            tracing_subscriber::EnvFilter::try_new(t)
                .map(|_| t.to_owned())
                .map_err(|e| format!("not a log filter: {e}"))
        }),
    }
}
