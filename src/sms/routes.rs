//! Routing SMS by country across vendors (`VERIFYD_SMS_ROUTES`), with failover and a circuit
//! breaker per vendor.
//!
//! A message goes to the first vendor of its country's list (the `*` list, else
//! `VERIFYD_SMS_SENDER`, for countries not listed). [`SmsError::Failed`] (connect error,
//! timeout, 5xx, 429, 401) moves on to the next vendor; [`SmsError::Refused`] (the vendor
//! refused this number or message) is answered at once: another vendor would refuse it too, and
//! the caller must fix the request. A vendor that fails [`FAILURES_TO_OPEN`] times in a row is
//! skipped for [`COOL_DOWN`] (a dead vendor costs no latency), then one message probes it
//! (half-open): success closes the breaker, failure opens it for another cool-down. Time comes
//! from the app's clock.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::{Delivery, OutgoingMessage, SenderWithOutbox, SmsError, SmsSender, one_sender};
use crate::clock::Clock;
use crate::config::{DeliverySettings, SenderKind, TwilioSettings};
use crate::domain::{Region, Timestamp};

/// Consecutive failures that open a vendor's breaker.
pub const FAILURES_TO_OPEN: u32 = 3;
/// How long an open breaker skips its vendor before one probe.
pub const COOL_DOWN: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
struct BreakerState {
    failures: u32,
    /// Set while open: the vendor is skipped until then.
    open_until: Option<Timestamp>,
    /// One probe is in flight (half-open): the others still skip the vendor.
    probing: bool,
}

/// One vendor's circuit breaker.
#[derive(Debug, Default)]
pub struct Breaker {
    state: Mutex<BreakerState>,
}

impl Breaker {
    fn lock(&self) -> std::sync::MutexGuard<'_, BreakerState> {
        // The state stays consistent whatever panicked while holding it.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether a message may go to the vendor at `now` (closed, or this is the half-open probe).
    pub fn allow(&self, now: Timestamp) -> bool {
        let mut s = self.lock();
        match s.open_until {
            None => true,
            Some(until) if now < until || s.probing => false,
            Some(_) => {
                s.probing = true;
                true
            }
        }
    }

    /// The vendor answered (delivered, or refused the message itself): closed again.
    pub fn succeeded(&self) {
        *self.lock() = BreakerState::default();
    }

    /// The vendor failed at `now`: opens after [`FAILURES_TO_OPEN`] in a row, or when the probe failed.
    pub fn failed(&self, now: Timestamp) {
        let mut s = self.lock();
        s.failures = s.failures.saturating_add(1);
        if s.probing || s.failures >= FAILURES_TO_OPEN {
            s.open_until = Some(now.plus(COOL_DOWN));
            s.probing = false;
        }
    }

    /// Whether the vendor is being skipped at `now`.
    pub fn is_open(&self, now: Timestamp) -> bool {
        self.lock().open_until.is_some_and(|until| now < until)
    }
}

/// A vendor and its breaker.
struct Vendor {
    sender: Arc<dyn SmsSender>,
    breaker: Breaker,
}

/// Sends each message through its country's vendors in order (see the module doc).
pub struct RoutedSender {
    vendors: Vec<Vendor>,
    /// Per country, indexes into `vendors`.
    countries: Vec<(Region, Vec<usize>)>,
    fallback: Vec<usize>,
    clock: Arc<dyn Clock>,
}

impl RoutedSender {
    /// A router over `vendors` (each named by its sender's `name()`); `countries` and
    /// `fallback` list vendor names in failover order.
    ///
    /// # Errors
    /// [`SmsError::Setup`] when a route names a vendor not in `vendors` or a list is empty.
    pub fn new(
        vendors: Vec<Arc<dyn SmsSender>>,
        countries: &[(Region, Vec<&str>)],
        fallback: &[&str],
        clock: Arc<dyn Clock>,
    ) -> Result<Self, SmsError> {
        let index = |names: &[&str]| -> Result<Vec<usize>, SmsError> {
            if names.is_empty() {
                return Err(SmsError::Setup("a route lists no vendor".to_owned()));
            }
            names
                .iter()
                .map(|n| {
                    vendors
                        .iter()
                        .position(|v| v.name() == *n)
                        .ok_or_else(|| SmsError::Setup(format!("no sender for vendor `{n}`")))
                })
                .collect()
        };
        let countries = countries
            .iter()
            .map(|(r, names)| Ok((*r, index(names)?)))
            .collect::<Result<Vec<_>, SmsError>>()?;
        let fallback = index(fallback)?;
        Ok(Self {
            vendors: vendors
                .into_iter()
                .map(|sender| Vendor {
                    sender,
                    breaker: Breaker::default(),
                })
                .collect(),
            countries,
            fallback,
            clock,
        })
    }

    /// The vendor order for `message`'s number.
    fn route(&self, message: &OutgoingMessage) -> &[usize] {
        let region = message.to.region();
        self.countries
            .iter()
            .find(|(r, _)| Some(*r) == region)
            .map_or(&self.fallback, |(_, list)| list)
    }
}

#[async_trait]
impl SmsSender for RoutedSender {
    async fn send(&self, message: &OutgoingMessage) -> Result<(), SmsError> {
        self.deliver(message).await.map(|_| ())
    }

    async fn deliver(&self, message: &OutgoingMessage) -> Result<Delivery, SmsError> {
        let mut failures = Vec::new();
        for &i in self.route(message) {
            let vendor = &self.vendors[i];
            let name = vendor.sender.name();
            if !vendor.breaker.allow(self.clock.now()) {
                failures.push(format!("{name}: skipped (breaker open)"));
                continue;
            }
            match vendor.sender.deliver(message).await {
                Ok(mut delivery) => {
                    vendor.breaker.succeeded();
                    if !failures.is_empty() {
                        tracing::info!(
                            vendor = name,
                            failovers = failures.len(),
                            "delivered after failover"
                        );
                    }
                    delivery.failovers = u32::try_from(failures.len()).unwrap_or(u32::MAX);
                    return Ok(delivery);
                }
                Err(SmsError::Refused(why)) => {
                    // The vendor is up; the number or message is at fault.
                    vendor.breaker.succeeded();
                    return Err(SmsError::Refused(why));
                }
                Err(e) => {
                    vendor.breaker.failed(self.clock.now());
                    metrics::counter!("verifyd_sms_failovers_total", "vendor" => name).increment(1);
                    tracing::warn!(vendor = name, error = %e, "SMS vendor failed; trying the next");
                    failures.push(format!("{name}: {e}"));
                }
            }
        }
        Err(SmsError::Failed(format!(
            "every vendor of the route failed ({})",
            failures.join("; ")
        )))
    }

    fn name(&self) -> &'static str {
        "routes"
    }
}

/// The router `delivery.routes` describes, over every vendor it (or `VERIFYD_SMS_SENDER`, for
/// countries without a route when there is no `*`) names; the console's outbox when one is used.
///
/// # Errors
/// [`SmsError::Setup`] when a vendor's sender cannot be built.
pub fn from_settings(
    delivery: &DeliverySettings,
    twilio: &TwilioSettings,
    clock: Arc<dyn Clock>,
) -> Result<SenderWithOutbox, SmsError> {
    let routes = &delivery.routes;
    let fallback: Vec<SenderKind> = routes
        .fallback
        .clone()
        .unwrap_or_else(|| vec![delivery.sender]);
    let mut kinds = routes.vendors();
    for kind in &fallback {
        if !kinds.contains(kind) {
            kinds.push(*kind);
        }
    }
    let mut vendors = Vec::new();
    let mut outbox = None;
    for kind in kinds {
        let (sender, its_outbox) = one_sender(kind, delivery, twilio, Arc::clone(&clock))?;
        outbox = outbox.or(its_outbox);
        vendors.push(sender);
    }
    let names = |list: &[SenderKind]| list.iter().map(|k| k.as_str()).collect::<Vec<_>>();
    let countries: Vec<(Region, Vec<&str>)> = routes
        .countries
        .iter()
        .map(|(r, list)| (*r, names(list)))
        .collect();
    let router = RoutedSender::new(vendors, &countries, &names(&fallback), clock)?;
    Ok((Arc::new(router), outbox))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use secrecy::SecretString;

    use super::*;
    use crate::clock::ManualClock;
    use crate::domain::{Channel, PhoneNumber, VerificationSid};

    /// A vendor that answers what it is told and counts its calls.
    struct Fake {
        name: &'static str,
        answer: Mutex<Result<(), &'static str>>,
        calls: AtomicUsize,
    }

    impl Fake {
        fn new(name: &'static str, answer: Result<(), &'static str>) -> Arc<Self> {
            Arc::new(Self {
                name,
                answer: Mutex::new(answer),
                calls: AtomicUsize::new(0),
            })
        }
        fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }
    }

    #[async_trait]
    impl SmsSender for Fake {
        async fn send(&self, _m: &OutgoingMessage) -> Result<(), SmsError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            match *self.answer.lock().unwrap() {
                Ok(()) => Ok(()),
                Err("refused") => Err(SmsError::Refused("400 invalid To".to_owned())),
                Err(e) => Err(SmsError::Failed(e.to_owned())),
            }
        }
        fn name(&self) -> &'static str {
            self.name
        }
    }

    fn message(to: &str) -> OutgoingMessage {
        OutgoingMessage {
            to: PhoneNumber::parse(to).unwrap().into(),
            channel: Channel::Sms,
            body: SecretString::from("Your code is 123456".to_owned()),
            code: SecretString::from("123456".to_owned()),
            code_length: 6,
            verification_sid: VerificationSid::generate(),
            locale: crate::messages::Locale::english(),
            email: None,
        }
    }

    fn router(a: &Arc<Fake>, b: &Arc<Fake>, clock: &Arc<ManualClock>) -> RoutedSender {
        let vendors: Vec<Arc<dyn SmsSender>> = vec![a.clone(), b.clone()];
        RoutedSender::new(
            vendors,
            &[("GB".parse().unwrap(), vec!["b"])],
            &["a", "b"],
            clock.clone(),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn a_failing_vendor_fails_over_to_the_next_and_a_refusal_does_not() {
        let clock = Arc::new(ManualClock::starting_now());
        let a = Fake::new("a", Err("HTTP 500"));
        let b = Fake::new("b", Ok(()));
        let r = router(&a, &b, &clock);
        let delivered = r.deliver(&message("+14155550100")).await.unwrap();
        assert_eq!((delivered.vendor, delivered.failovers), ("b", 1));
        assert_eq!((a.calls(), b.calls()), (1, 1));
        // GB routes to b alone.
        assert_eq!(
            r.deliver(&message("+447400123456")).await.unwrap().vendor,
            "b"
        );
        assert_eq!((a.calls(), b.calls()), (1, 2));
        *a.answer.lock().unwrap() = Err("refused");
        let err = r.deliver(&message("+14155550100")).await.unwrap_err();
        assert!(matches!(err, SmsError::Refused(_)), "{err}");
        assert_eq!((a.calls(), b.calls()), (2, 2), "no failover on a refusal");
    }

    #[tokio::test]
    async fn the_breaker_skips_a_dead_vendor_then_probes_it_after_the_cool_down() {
        let clock = Arc::new(ManualClock::starting_now());
        let a = Fake::new("a", Err("timeout"));
        let b = Fake::new("b", Ok(()));
        let r = router(&a, &b, &clock);
        for _ in 0..10 {
            assert_eq!(
                r.deliver(&message("+14155550100")).await.unwrap().vendor,
                "b"
            );
        }
        assert_eq!(a.calls() as u32, FAILURES_TO_OPEN, "skipped once open");
        assert!(r.vendors[0].breaker.is_open(clock.now()));
        clock.advance(COOL_DOWN - Duration::from_secs(1));
        r.send(&message("+14155550100")).await.unwrap();
        assert_eq!(a.calls() as u32, FAILURES_TO_OPEN, "still cooling down");
        // The probe fails: open for another cool-down.
        clock.advance(Duration::from_secs(1));
        r.send(&message("+14155550100")).await.unwrap();
        assert_eq!(a.calls() as u32, FAILURES_TO_OPEN + 1, "one probe");
        r.send(&message("+14155550100")).await.unwrap();
        assert_eq!(a.calls() as u32, FAILURES_TO_OPEN + 1, "open again");
        // The next probe succeeds: closed.
        clock.advance(COOL_DOWN);
        *a.answer.lock().unwrap() = Ok(());
        assert_eq!(
            r.deliver(&message("+14155550100")).await.unwrap().vendor,
            "a"
        );
        assert_eq!(
            r.deliver(&message("+14155550100")).await.unwrap().vendor,
            "a"
        );
        assert!(!r.vendors[0].breaker.is_open(clock.now()));
    }

    #[tokio::test]
    async fn when_every_vendor_fails_the_send_fails_naming_each() {
        let clock = Arc::new(ManualClock::starting_now());
        let a = Fake::new("a", Err("connection refused"));
        let b = Fake::new("b", Err("HTTP 503"));
        let r = router(&a, &b, &clock);
        let err = r
            .send(&message("+14155550100"))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("a: ") && err.contains("b: "), "{err}");
    }
}
