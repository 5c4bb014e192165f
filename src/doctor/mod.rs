//! `verifyd doctor`: checks the settings against reality and prints a checklist, one line per
//! check (✔ passed, ✘ failed with the fix, · for information), so a deploy pipeline can run it
//! before switching traffic (exit 1 on any ✘).
//!
//! It changes nothing: the SQLite file is opened without being created or migrated, a
//! PostgreSQL database is read without being migrated (a schema that lacks migrations is a
//! failure to fix, never fixed here), the secret file is read but never generated, and Twilio
//! is only read (GET). It prints no secret: Twilio
//! answers are reduced to their HTTP status and error code, and secrets to their key ids.

mod database;
mod twilio;
mod vendors;

use database::{secrets, store};
use twilio::{twilio_messaging, twilio_verify};

use std::fmt::Write as _;
use std::time::Duration;

use crate::app::build_limiter;
use crate::clock::{Clock, SystemClock};
use crate::config::{AuthMode, Config, ProviderKind, SenderKind};
use crate::domain::Timestamp;

/// How far our clock and Twilio's `Date` may drift apart before doctor complains.
const CLOCK_TOLERANCE: Duration = Duration::from_secs(30);

/// When this binary was built (see `build.rs`): a sane clock is later.
const BUILT_UNIX: &str = env!("VERIFYD_BUILD_UNIX");

/// The outcome of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    Pass,
    Fail,
    /// Information, or a check that does not apply.
    Info,
}

impl Mark {
    const fn symbol(self) -> &'static str {
        match self {
            Mark::Pass => "✔",
            Mark::Fail => "✘",
            Mark::Info => "·",
        }
    }
}

/// One line of the checklist.
#[derive(Clone, Debug)]
pub struct Check {
    pub mark: Mark,
    /// What was checked (`store`, `twilio verify service`, …).
    pub title: &'static str,
    /// What was found.
    pub detail: String,
    /// What to do about a failure.
    pub fix: Option<String>,
}

/// The checklist.
#[derive(Debug, Default)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    fn pass(&mut self, title: &'static str, detail: impl Into<String>) {
        self.push(Mark::Pass, title, detail.into(), None);
    }

    fn info(&mut self, title: &'static str, detail: impl Into<String>) {
        self.push(Mark::Info, title, detail.into(), None);
    }

    fn fail(&mut self, title: &'static str, detail: impl Into<String>, fix: impl Into<String>) {
        self.push(Mark::Fail, title, detail.into(), Some(fix.into()));
    }

    fn push(&mut self, mark: Mark, title: &'static str, detail: String, fix: Option<String>) {
        self.checks.push(Check {
            mark,
            title,
            detail,
            fix,
        });
    }

    /// How many checks failed.
    pub fn failures(&self) -> usize {
        self.checks.iter().filter(|c| c.mark == Mark::Fail).count()
    }

    /// The checklist as printed, ending with a summary line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            let _ = writeln!(out, "{} {}: {}", c.mark.symbol(), c.title, c.detail);
            if let Some(fix) = &c.fix {
                let _ = writeln!(out, "    fix: {fix}");
            }
        }
        let failed = self.failures();
        if failed == 0 {
            let _ = writeln!(out, "all checks passed");
        } else {
            let _ = writeln!(out, "{failed} check(s) failed");
        }
        out
    }
}

/// Runs every check that applies to `config`.
pub async fn run(config: &Config) -> Report {
    let mut report = Report::default();
    settings(&mut report, config);
    let store = store(&mut report, config).await;
    secrets(&mut report, config, store.as_deref()).await;
    limiter(&mut report, config).await;
    auth(&mut report, config);
    clock(&mut report);
    match config.delivery.provider {
        ProviderKind::TwilioVerify => twilio_verify(&mut report, config).await,
        ProviderKind::Local => match config.delivery.sender {
            SenderKind::TwilioMessaging => twilio_messaging(&mut report, config).await,
            // Checked below with the routed vendors.
            SenderKind::Telnyx
            | SenderKind::Vonage
            | SenderKind::Plivo
            | SenderKind::Sinch
            | SenderKind::Infobip
            | SenderKind::Bird => {}
            SenderKind::Webhook => report.info(
                "sms sender",
                "webhook: not contacted (a test message would be a real SMS)",
            ),
            SenderKind::Console | SenderKind::Null => report.info(
                "sms sender",
                format!(
                    "{}: delivers nothing to phones (development only)",
                    config.delivery.sender.as_str()
                ),
            ),
        },
    }
    if config.delivery.provider == ProviderKind::Local {
        vendors::check(&mut report, config).await;
    }
    report
}

fn settings(report: &mut Report, config: &Config) {
    let sender = match config.delivery.provider {
        ProviderKind::TwilioVerify => "none (Twilio delivers)",
        ProviderKind::Local => config.delivery.sender.as_str(),
    };
    report.pass(
        "settings",
        format!(
            "valid (profile {}, provider {} because {}, sender {sender}, auth {})",
            config.profile.as_str(),
            config.delivery.provider.as_str(),
            config.delivery.provider_reason,
            config.auth.mode.as_str()
        ),
    );
    for w in &config.warnings {
        report.info("warning", w.clone());
    }
}

async fn limiter(report: &mut Report, config: &Config) {
    match build_limiter(config) {
        Ok(limiter) => match limiter.ping().await {
            Ok(()) => report.pass("limiter", format!("{} reachable", limiter.name())),
            Err(e) => report.fail(
                "limiter",
                format!("{} does not answer: {e}", limiter.name()),
                "start it, or fix its URL",
            ),
        },
        Err(e) => report.fail("limiter", e.to_string(), "fix the limiter's settings"),
    }
}

fn auth(report: &mut Report, config: &Config) {
    if let Some(jwt) = &config.auth.jwt {
        report.pass(
            "auth",
            format!(
                "user tokens: issuer {}, audience {}",
                jwt.issuer, jwt.audience
            ),
        );
    }
    match config.auth.mode {
        AuthMode::Jwt => {}
        _ if config.auth.api_keys.is_empty() => report.pass(
            "auth",
            "API keys: VERIFYD_API_KEYS is unset, the key generated on first start is accepted (development only)",
        ),
        _ => report.pass(
            "auth",
            format!("API keys: {} configured", config.auth.api_keys.len()),
        ),
    }
}

fn clock(report: &mut Report) {
    let now = SystemClock.now();
    let built = BUILT_UNIX
        .parse::<i64>()
        .map(|s| Timestamp::from_millis(s.saturating_mul(1000)))
        .unwrap_or(Timestamp::from_millis(0));
    if now < built {
        report.fail(
            "clock",
            format!(
                "the system clock says {}, before this binary was built ({})",
                now.to_rfc3339(),
                built.to_rfc3339()
            ),
            "set the clock (enable NTP: chrony or systemd-timesyncd); codes expire and webhook signatures date by it",
        );
    } else {
        report.pass(
            "clock",
            format!(
                "{} (after this binary's build, {})",
                now.to_rfc3339(),
                built.to_rfc3339()
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_counts_failures_and_prints_fixes() {
        let mut r = Report::default();
        r.pass("store", "ok");
        r.fail("twilio", "bad", "do this");
        r.info("note", "fyi");
        assert_eq!(r.failures(), 1);
        let text = r.render();
        assert!(text.contains("✔ store: ok"), "{text}");
        assert!(text.contains("✘ twilio: bad\n    fix: do this"), "{text}");
        assert!(text.contains("1 check(s) failed"), "{text}");
    }

    #[test]
    fn the_build_time_is_recorded() {
        assert!(BUILT_UNIX.parse::<i64>().unwrap() > 1_700_000_000);
    }
}
