//! The fraud guard: SMS pumping stopped by this deployment's own conversions, before a code
//! costs anything. Every guarded send belongs to three destinations (its country, a short
//! prefix such as +1 NPA, a long one such as +1 NPA-NXX); each remembers its settled attempts
//! and conversions over a rolling window and its unsettled codes. The service asks
//! [`FraudGuard::check_send`] before any bucket is charged, gives a reservation back with
//! [`FraudGuard::release`] when the code does not go out, and reports approvals with
//! [`FraudGuard::converted`]. The mechanism is argued in `docs/fraud-guard.md`; the arithmetic
//! is [`state`], the same for both backends ([`memory`] on one node, [`redis`] shared).
//!
//! What it does not do: exempt anyone (the service skips it for safe-listed and test numbers),
//! or charge buckets (the limiter does).

pub mod memory;
pub mod redis;
pub mod state;

use crate::flood::{FloodTally, Summary};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::config::{FraudGuardSettings, GuardMode};
use crate::crypto::Keys;
use crate::domain::{PhoneNumber, Region, Timestamp};
use crate::error::BoxError;

pub use memory::MemoryGuard;
pub use redis::RedisGuard;
pub use state::{Level, Reason, Refusal};

use state::{Att, Dest, Figures, Rules};

/// The guard's state could not be read or written. Callers fail closed (503).
#[derive(Debug, thiserror::Error)]
#[error("fraud guard unavailable")]
pub struct GuardError(#[source] BoxError);

impl GuardError {
    pub fn new(cause: impl Into<BoxError>) -> Self {
        Self(cause.into())
    }
}

/// A transaction's body: the destination records asked for (absent ones as new) and the
/// number's unsettled-code record.
pub type Txn<'a> = &'a mut (dyn FnMut(&mut [Dest], &mut Option<Att>) + Send);

/// Where the guard keeps its records.
#[async_trait]
pub trait GuardBackend: Send + Sync {
    /// Runs `f` once on the records `dests` and `att` as one atomic transaction and stores
    /// what it leaves (a `None` att is deleted).
    ///
    /// # Errors
    /// [`GuardError`] when the records cannot be read or written.
    async fn update(
        &self,
        dests: &[String],
        att: Option<&str>,
        rules: &Rules,
        now: i64,
        f: Txn<'_>,
    ) -> Result<(), GuardError>;

    /// The destination records `keys` (absent: `None`).
    ///
    /// # Errors
    /// [`GuardError`].
    async fn read(&self, keys: &[String], now: i64) -> Result<Vec<Option<Dest>>, GuardError>;

    /// Every destination blocked or closed at `now`, by key.
    ///
    /// # Errors
    /// [`GuardError`].
    async fn blocked(&self, now: i64) -> Result<Vec<(String, Dest)>, GuardError>;

    /// `memory` or `redis`.
    fn name(&self) -> &'static str;
}

/// A number's three destinations, as storage keys, and whether its country is only monitored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destinations {
    pub keys: [String; 3],
    pub monitored: bool,
}

/// What the guard said about one send.
#[derive(Debug, Default)]
pub struct Admission {
    /// Why it is against the send; with `enforced`, the send must be refused.
    pub refusal: Option<Refusal>,
    pub enforced: bool,
    /// What to give back if the code does not go out.
    pub reservation: Option<Reservation>,
}

/// A send counted as unsettled, to give back with [`FraudGuard::release`].
#[derive(Debug)]
pub struct Reservation {
    dests: [String; 3],
    att: String,
    sent: i64,
}

/// One blocked or closed destination, for `verifyd guard status`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BlockStatus {
    pub level: &'static str,
    /// `US`, `+1415` or `+1415555`.
    pub destination: String,
    /// RFC 3339.
    pub until: String,
    /// `blocked` (every send) or `closed` (sends to its destinations that have not converted).
    pub effect: &'static str,
    pub unsettled: u32,
}

/// One country's figures, for `verifyd guard status`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CountryStatus {
    pub country: String,
    /// Sent to only to learn (`VERIFYD_MONITOR_COUNTRY_CODES`): never refused.
    pub monitored: bool,
    pub settled: f64,
    pub converted: f64,
    pub conversion: Option<f64>,
    pub unsettled: u32,
    pub proven: bool,
}

/// What `verifyd guard status` prints.
#[derive(Clone, Debug, serde::Serialize)]
pub struct GuardStatus {
    pub mode: &'static str,
    pub backend: &'static str,
    pub blocks: Vec<BlockStatus>,
    pub countries: Vec<CountryStatus>,
}

/// Why an unblock did not happen.
#[derive(Debug, thiserror::Error)]
pub enum UnblockError {
    #[error(
        "not a destination: give a region (US), a short prefix of {short} digits or a long one of {long} (with or without +)"
    )]
    NotADestination { short: usize, long: usize },
    #[error(transparent)]
    Guard(#[from] GuardError),
}

/// The guard.
pub struct FraudGuard {
    settings: FraudGuardSettings,
    rules: Rules,
    backend: Arc<dyn GuardBackend>,
    keys: Arc<Keys>,
    /// Countries shown by status: the allowlist and the monitored ones.
    countries: BTreeSet<Region>,
    /// The per-decision log lines, summarised under a flood as refusals are (`http::refusals`):
    /// per (destination, decision) the first few of each window line by line, then a count.
    decision_log: FloodTally<&'static str>,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

impl FraudGuard {
    /// A guard with `settings` over `backend`; `keys` turns numbers into opaque record keys;
    /// `countries` are the allowlisted regions (shown by status).
    pub fn new(
        settings: FraudGuardSettings,
        backend: Arc<dyn GuardBackend>,
        keys: Arc<Keys>,
        countries: &BTreeSet<Region>,
    ) -> Self {
        let rules = Rules {
            window_ms: millis(settings.window).max(1),
            settle_ms: millis(settings.settle),
            block_ms: millis(settings.block),
            min_sends: settings.min_sends,
            min_conversion: settings.min_conversion,
            unproven_max: settings.unproven_max,
        };
        let mut all = countries.clone();
        all.extend(settings.monitor_countries.iter().copied());
        Self {
            settings,
            rules,
            backend,
            keys,
            countries: all,
            decision_log: FloodTally::new(
                Arc::new(crate::clock::SystemClock),
                crate::http::refusals::LOGGED_PER_KEY,
                crate::http::refusals::WINDOW,
                crate::http::refusals::MAX_CLIENTS,
            ),
        }
    }

    /// Logs the decisions summary of the current window if it has ended (or now, with
    /// `force`: on shutdown).
    pub fn summarise(&self, force: bool) {
        report_decisions(&self.decision_log.flush(force));
    }

    pub fn mode(&self) -> GuardMode {
        self.settings.mode
    }

    /// The backend's name, for logs.
    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    /// The countries sent to only to learn.
    pub fn monitor_countries(&self) -> &BTreeSet<Region> {
        &self.settings.monitor_countries
    }

    /// The number's destinations: `c:US`, `s:1415`, `l:1415555` (digits after `+`).
    pub fn destinations(&self, phone: &PhoneNumber) -> Destinations {
        let digits = &phone.e164()[1..];
        let long = &digits[..self.settings.prefix_digits.min(digits.len())];
        let short = &long[..long.len().saturating_sub(3).max(1)];
        let region = phone.region();
        let country = region.map_or_else(
            || format!("+{}", &digits[..digits.len().min(3)]),
            |r| r.as_str().to_owned(),
        );
        Destinations {
            keys: [
                format!("c:{country}"),
                format!("s:{short}"),
                format!("l:{long}"),
            ],
            monitored: region.is_some_and(|r| self.settings.monitor_countries.contains(&r)),
        }
    }

    /// What `refusal` refused for `phone`, as shown to people: the destination at its level
    /// (`US`, `+1415`, `+1415555`), and the number's long prefix.
    pub fn refused_destination(&self, phone: &PhoneNumber, refusal: &Refusal) -> (String, String) {
        let dest = self.destinations(phone);
        (
            shown(&dest.keys[level_index(refusal.level)]),
            shown(&dest.keys[level_index(Level::Long)]),
        )
    }

    fn att_key(&self, phone: &PhoneNumber) -> String {
        format!("a:{}", self.keys.bucket_key("fraud", phone.e164()))
    }

    /// Decides a send to `phone` at `now` (see the module docs). Off: always for it.
    ///
    /// # Errors
    /// [`GuardError`]: the send must be refused (503).
    pub async fn check_send(
        &self,
        phone: &PhoneNumber,
        now: Timestamp,
    ) -> Result<Admission, GuardError> {
        let mode = self.settings.mode;
        if mode == GuardMode::Off {
            return Ok(Admission::default());
        }
        let dest = self.destinations(phone);
        let att = self.att_key(phone);
        let enforced = mode == GuardMode::Enforce && !dest.monitored;
        let now_ms = now.as_millis();
        let rules = self.rules;
        let mut decision = state::SendDecision::default();
        self.backend
            .update(&dest.keys, Some(&att), &rules, now_ms, &mut |d, a| {
                if let Ok(d) = <&mut [Dest; 3]>::try_from(d) {
                    decision = state::send(d, a, now_ms, &rules, enforced);
                }
            })
            .await?;
        for level in &decision.new_blocks {
            let key = &dest.keys[level_index(*level)];
            metrics::counter!("verifyd_fraud_guard_blocks_total", "level" => level.as_str())
                .increment(1);
            tracing::warn!(
                level = level.as_str(),
                destination = %shown(key),
                phone = %phone.masked(),
                until = %Timestamp::from_millis(now_ms + rules.block_ms).to_rfc3339(),
                mode = mode.as_str(),
                "fraud guard: {} {} converts too little: {} for {} s",
                level.as_str(),
                shown(key),
                if *level == Level::Long { "blocked" } else { "closed to its unproven destinations" },
                rules.block_ms / 1000,
            );
        }
        let monitored = if dest.monitored { "true" } else { "false" };
        match decision.refusal {
            None => {
                metrics::counter!("verifyd_fraud_guard_decisions_total", "decision" => "allowed", "level" => "none", "reason" => "none", "monitored" => monitored).increment(1);
            }
            Some(r) => {
                let outcome = if enforced { "refused" } else { "would_refuse" };
                metrics::counter!("verifyd_fraud_guard_decisions_total", "decision" => outcome, "level" => r.level.as_str(), "reason" => r.reason.as_str(), "monitored" => monitored).increment(1);
                let destination = shown(&dest.keys[level_index(r.level)]);
                let (logged, ended) = self.decision_log.admit(&destination, outcome);
                report_decisions(&ended);
                if logged {
                    tracing::info!(
                        phone = %phone.masked(),
                        level = r.level.as_str(),
                        reason = r.reason.as_str(),
                        destination = %destination,
                        decision = outcome,
                        "fraud guard: {outcome} ({} {})",
                        r.level.as_str(),
                        r.reason.as_str(),
                    );
                }
            }
        }
        Ok(Admission {
            refusal: decision.refusal,
            enforced: enforced && decision.refusal.is_some(),
            reservation: decision.reserved.map(|sent| Reservation {
                dests: dest.keys.clone(),
                att,
                sent,
            }),
        })
    }

    /// Gives back a reservation whose code did not go out (a bucket refused it, or the
    /// provider failed).
    ///
    /// # Errors
    /// [`GuardError`] (the reservation then stands until it settles).
    pub async fn release(&self, reservation: Reservation) -> Result<(), GuardError> {
        let rules = self.rules;
        let sent = reservation.sent;
        self.backend
            .update(
                &reservation.dests,
                Some(&reservation.att),
                &rules,
                sent,
                &mut |d, a| {
                    if let Ok(d) = <&mut [Dest; 3]>::try_from(d) {
                        state::release(d, a, sent, &rules);
                    }
                },
            )
            .await
    }

    /// `phone`'s code was approved at `now`: a conversion of its destinations.
    ///
    /// # Errors
    /// [`GuardError`] (the conversion is then not counted).
    pub async fn converted(&self, phone: &PhoneNumber, now: Timestamp) -> Result<(), GuardError> {
        if self.settings.mode == GuardMode::Off {
            return Ok(());
        }
        let dest = self.destinations(phone);
        let att = self.att_key(phone);
        let now_ms = now.as_millis();
        let rules = self.rules;
        let mut counted = false;
        self.backend
            .update(&dest.keys, Some(&att), &rules, now_ms, &mut |d, a| {
                if a.is_none() {
                    return;
                }
                if let Ok(d) = <&mut [Dest; 3]>::try_from(d) {
                    counted = state::convert(d, a, now_ms, &rules);
                }
            })
            .await?;
        if counted {
            metrics::counter!("verifyd_fraud_guard_conversions_total").increment(1);
        }
        Ok(())
    }

    /// Blocks and closures in force, and each country's figures.
    ///
    /// # Errors
    /// [`GuardError`].
    pub async fn status(&self, now: Timestamp) -> Result<GuardStatus, GuardError> {
        let now_ms = now.as_millis();
        let blocks = self
            .backend
            .blocked(now_ms)
            .await?
            .into_iter()
            .map(|(key, d)| {
                let level = level_of(&key);
                BlockStatus {
                    level: level.as_str(),
                    destination: shown(&key),
                    until: Timestamp::from_millis(d.until).to_rfc3339(),
                    effect: if level == Level::Long {
                        "blocked"
                    } else {
                        "closed"
                    },
                    unsettled: d.unsettled(),
                }
            })
            .collect();
        let keys: Vec<String> = self
            .countries
            .iter()
            .map(|c| format!("c:{}", c.as_str()))
            .collect();
        let records = self.backend.read(&keys, now_ms).await?;
        let countries = self
            .countries
            .iter()
            .zip(records)
            .map(|(c, d)| {
                let mut d = d.unwrap_or_default();
                d.advance(now_ms, &self.rules);
                let f: Figures = d.figures(now_ms, &self.rules);
                CountryStatus {
                    country: c.as_str().to_owned(),
                    monitored: self.settings.monitor_countries.contains(c),
                    settled: round2(f.settled),
                    converted: round2(f.converted),
                    conversion: f.conversion().map(round2),
                    unsettled: d.unsettled(),
                    proven: d.proven(now_ms, &self.rules),
                }
            })
            .collect();
        Ok(GuardStatus {
            mode: self.settings.mode.as_str(),
            backend: self.backend.name(),
            blocks,
            countries,
        })
    }

    /// Lifts the block or closure of `destination` (`US`, `+1415`, `+1415555`); whether one
    /// was in force.
    ///
    /// # Errors
    /// [`UnblockError`].
    pub async fn unblock(&self, destination: &str, now: Timestamp) -> Result<bool, UnblockError> {
        let key = self.parse_destination(destination)?;
        let now_ms = now.as_millis();
        let mut lifted = false;
        self.backend
            .update(
                std::slice::from_ref(&key),
                None,
                &self.rules,
                now_ms,
                &mut |d, _| {
                    if let Some(d) = d.first_mut()
                        && d.blocked(now_ms)
                    {
                        d.unblock();
                        lifted = true;
                    }
                },
            )
            .await?;
        if lifted {
            let level = level_of(&key);
            metrics::counter!("verifyd_fraud_guard_unblocks_total", "level" => level.as_str())
                .increment(1);
            tracing::warn!(
                level = level.as_str(),
                destination = %shown(&key),
                "fraud guard: {} unblocked by the operator",
                shown(&key)
            );
        }
        Ok(lifted)
    }

    fn parse_destination(&self, text: &str) -> Result<String, UnblockError> {
        let long = self.settings.prefix_digits;
        let wrong = || UnblockError::NotADestination {
            short: long - 3,
            long,
        };
        let t = text.trim();
        if t.len() == 2 && t.chars().all(|c| c.is_ascii_alphabetic()) {
            let region: Region = t.parse().map_err(|_| wrong())?;
            return Ok(format!("c:{}", region.as_str()));
        }
        let digits: String = t
            .strip_prefix('+')
            .unwrap_or(t)
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.'))
            .collect();
        if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
            return Err(wrong());
        }
        if digits.len() == long {
            Ok(format!("l:{digits}"))
        } else if digits.len() == long - 3 {
            Ok(format!("s:{digits}"))
        } else {
            Err(wrong())
        }
    }
}

fn round2(f: f64) -> f64 {
    (f * 100.0).round() / 100.0
}

const fn level_index(level: Level) -> usize {
    match level {
        Level::Country => 0,
        Level::Short => 1,
        Level::Long => 2,
    }
}

fn level_of(key: &str) -> Level {
    match key.split_once(':').map(|(t, _)| t) {
        Some("c") => Level::Country,
        Some("s") => Level::Short,
        _ => Level::Long,
    }
}

/// A destination key as people write it: `US`, `+1415`, `+1415555`.
/// One line per (destination, decision) that was decided more often than logged line by line.
fn report_decisions(summaries: &[Summary<&'static str>]) {
    for s in summaries {
        tracing::info!(
            destination = %s.client,
            decision = s.label,
            total = s.total,
            not_logged = s.total.saturating_sub(crate::http::refusals::LOGGED_PER_KEY),
            seconds = s.length.as_secs(),
            "fraud guard decisions summarised"
        );
    }
}

fn shown(key: &str) -> String {
    match key.split_once(':') {
        Some(("c", c)) => c.to_owned(),
        Some((_, digits)) => format!("+{digits}"),
        None => key.to_owned(),
    }
}
