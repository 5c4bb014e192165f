//! Refused requests in the log, summarised under a flood (issue 24). A refusal (any 4xx answer)
//! is logged line by line as long as its client has had fewer than [`LOGGED_PER_KEY`] refusals
//! with the same outcome in the current window ([`WINDOW`]); beyond that it is only counted
//! ([`crate::flood::FloodTally`]), and when the window ends one line per (outcome, client) says
//! how many were refused in all and how many of them were not logged. So an operator still sees
//! who was refused, why and how often, and a flood of 429s costs a counter instead of a
//! formatted line each. The last window is reported every second once due, and on shutdown.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::flood::{FloodTally, Summary};

/// Refusals of one (outcome, client) logged line by line per window.
pub const LOGGED_PER_KEY: u64 = 10;
/// How long a window lasts.
pub const WINDOW: Duration = Duration::from_secs(10);
/// Distinct clients tallied per window; the rest count under `other`.
pub const MAX_CLIENTS: usize = 10_000;

/// The refusal tallies of this process.
pub struct RefusalLog(FloodTally<&'static str>);

impl RefusalLog {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self(FloodTally::new(clock, LOGGED_PER_KEY, WINDOW, MAX_CLIENTS))
    }

    /// Counts a refusal of `outcome` to `client`; true when it is to be logged line by line.
    /// A window that has ended is reported first.
    pub fn admit(&self, outcome: &'static str, client: &str) -> bool {
        let (logged, ended) = self.0.admit(client, outcome);
        report(&ended);
        logged
    }

    /// Reports the current window if it has ended (or now, with `force`: on shutdown).
    pub fn flush(&self, force: bool) {
        report(&self.0.flush(force));
    }

    /// Reports each window as it ends, until the task is aborted.
    pub async fn report_every_window(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            self.flush(false);
        }
    }
}

/// One line per (outcome, client) that was refused more often than logged.
fn report(summaries: &[Summary<&'static str>]) {
    for s in summaries {
        let not_logged = s.total - LOGGED_PER_KEY;
        let seconds = s.length.as_secs();
        tracing::info!(
            outcome = s.label,
            client = %s.client,
            refused = s.total,
            not_logged,
            window_secs = seconds,
            "refusals summarised: {} {} refusals to {} in {seconds} s, {not_logged} of them not logged line by line",
            s.total,
            s.label,
            s.client,
        );
    }
}
