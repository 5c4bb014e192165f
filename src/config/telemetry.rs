//! What verifyd tells its operator: the log format and filter, and the separate listener for
//! `/metrics`.

use std::net::SocketAddr;

use super::settings::{ENV_LOG_FORMAT, ENV_METRICS_ADDR, ENV_RUST_LOG, ENV_SMS_PRICE};
use super::source::Reader;

component! {
    /// Logs and metrics.
    #[derive(Clone, Debug)]
    pub struct TelemetrySettings / TelemetryDraft {
        /// A separate, unauthenticated listener for `/metrics`.
        pub metrics_addr: Option<SocketAddr>,
        pub log_format: LogFormat,
        pub log_filter: String,
        /// The price of one SMS segment, for the console's estimated spend.
        pub sms_price: Option<f64>,
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
        sms_price: r.parse(ENV_SMS_PRICE, |t| {
            if t.is_empty() {
                return Ok(None);
            }
            match t.parse::<f64>() {
                Ok(p) if p.is_finite() && p >= 0.0 => Ok(Some(p)),
                _ => Err("expected a price of zero or more, for example 0.0079".to_owned()),
            }
        }),
    }
}
