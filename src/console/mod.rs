//! The operator console (DESIGN.md "Operator console"): `/console`, server-rendered pages for
//! the operator in a browser: the overview (from hourly counters, never a scan of the log),
//! the attempt log with filters, one verification, the safe list, the effective settings and,
//! with the console sender, the dev outbox. No script, one embedded stylesheet.
//!
//! It holds no rule of its own and never writes to the store itself: a safe-list change goes
//! through the same function as `/v2/SafeList` and the CLI, an event replay through the same
//! function as `verifyd events replay`; everything else only reads.
//!
//! # Layout
//!
//! - [`session`]: the signed session cookie and the forms' CSRF tokens.
//! - [`handlers`]: the routes; sign-in, and what each page reads.
//! - [`events`]: the events' deliveries per endpoint, and the replay of dead ones.
//! - [`overview`]: the overview's figures from the counters.
//! - [`pages`]: the templates and the stylesheet.

pub mod events;
pub mod handlers;
pub mod overview;
pub mod pages;
pub mod session;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};

use crate::config::{Config, Profile};
use crate::http::AppState;
use crate::store::ConsoleStore;

/// Login attempts one client address may make per [`LOGIN_INTERVAL`].
pub const LOGIN_MAX: u32 = 10;
/// The window of [`LOGIN_MAX`].
pub const LOGIN_INTERVAL: Duration = Duration::from_secs(300);

/// What the console needs beyond the shared state.
pub struct Console {
    /// The counters and the log.
    pub store: Arc<dyn ConsoleStore>,
    /// Whether the session cookie is `Secure`: always, except in the development profile when
    /// verifyd is reached over plain HTTP.
    pub secure_cookies: bool,
    /// The effective configuration, redacted as `verifyd config` prints it:
    /// (name, value, where it came from).
    pub settings: Vec<(String, String, String)>,
    /// `VERIFYD_SMS_PRICE`: the price of one SMS segment, for the estimated spend.
    pub sms_price: Option<f64>,
    /// This process's event emitter (none: no endpoint configured), woken after a replay.
    pub events: Option<Arc<crate::events::Emitter>>,
}

impl Console {
    /// The console of `config`, reading `store`.
    pub fn new(config: &Config, store: Arc<dyn ConsoleStore>) -> Self {
        let plain_http = config
            .server
            .public_url
            .as_deref()
            .is_none_or(|u| u.starts_with("http://"));
        let settings = config
            .effective
            .iter()
            .map(|(name, value, origin)| {
                (
                    (*name).to_owned(),
                    value.clone(),
                    origin.as_str().to_owned(),
                )
            })
            .collect();
        Self {
            store,
            secure_cookies: !(config.profile == Profile::Development && plain_http),
            settings,
            sms_price: config.telemetry.sms_price,
            events: None,
        }
    }

    /// The same console, waking `emitter`'s dispatcher after a replay.
    #[must_use]
    pub fn with_events(mut self, emitter: Option<Arc<crate::events::Emitter>>) -> Self {
        self.events = emitter;
        self
    }
}

/// The console's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(handlers::overview))
        .route("/console/", get(handlers::overview))
        .route(
            "/console/login",
            get(handlers::login_page).post(handlers::login),
        )
        .route("/console/logout", post(handlers::logout))
        .route("/console/attempts", get(handlers::attempts))
        .route("/console/verifications/{sid}", get(handlers::verification))
        .route(
            "/console/safe-list",
            get(handlers::safe_list).post(handlers::add_safe_number),
        )
        .route(
            "/console/safe-list/remove",
            post(handlers::remove_safe_number),
        )
        .route("/console/events", get(events::page))
        .route("/console/events/replay", post(events::replay))
        .route("/console/settings", get(handlers::settings))
        .route("/console/outbox", get(handlers::outbox))
        .route("/console/assets/console.css", get(handlers::stylesheet))
        .route("/console/{*rest}", get(handlers::not_found))
}
