//! The local engine: codes from a CSPRNG, kept only as an HMAC (for comparison) and a
//! ciphertext (so a resend within the TTL delivers the same code), delivered by an
//! [`SmsSender`], with Twilio Verify's rules: one pending verification per number, a TTL,
//! 5 checks and 5 sends per verification, single use under any concurrency.
//!
//! A check reads the number's pending verification, has the domain judge it
//! ([`Lifecycle::judge_check`]) and, when the check counts, has the store apply the domain's
//! compare-and-set; when another check changed the verification first, it judges it again as
//! it is now. Test numbers are the service's decision: it calls [`LocalProvider::start_test`]
//! with their fixed code (nothing is delivered) and checks them like any number.
//!
//! During a secret rotation (several secrets configured) a number's pending verification may
//! have been written under an older secret: a check looks under every secret's digest (oldest
//! first, so a concurrent `verifyd rekey` moving the row cannot hide it), and a send first moves
//! such a verification to the newest secret, so the number still has exactly one pending
//! verification and a resend re-delivers its code.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;

use super::{
    CheckRequest, InvalidParameter, MessageOptions, Provider, ProviderError, SendOptions,
    StartRequest,
};
use crate::attempt_log::{AttemptEntry, seal};
use crate::crypto::Keys;
use crate::domain::MessageFacts;
use crate::domain::{
    AttemptSid, Channel, CheckOutcome, CheckRefusal, CheckVerdict, CodeLength, Lifecycle,
    LiveState, OtpCode, Recipient, SendAttempt, Timestamp, Verification, VerificationSid,
    VerificationStatus,
};
use crate::events::{Emitter, EventType};
use crate::messages::{self, Messages};
use crate::rotation::{PHONE_CONTEXT, RekeyReport, RotationError, move_verification};
use crate::sms::{OutgoingMessage, SmsError, SmsSender};
use crate::store::{
    AttemptKind, CheckRecord, Journal, NewVerification, SealedVerification, SendJournal,
    SendOutcome, ServiceStore, StoredVerification, VerificationStore,
};

/// What the code's HMAC is computed over: the code, plus the PSD2 binding when there is one.
fn bound(code: &str, binding: Option<&str>) -> String {
    match binding {
        Some(b) => format!("{code}\n{b}"),
        None => code.to_owned(),
    }
}

/// Our own code engine.
pub struct LocalProvider {
    store: Arc<dyn VerificationStore>,
    sender: Arc<dyn SmsSender>,
    keys: Arc<Keys>,
    life: Lifecycle,
    code_length: CodeLength,
    /// Tells whose a verification is (for fetching and ending one by sid); without it, those
    /// answer not found.
    services: Option<Arc<dyn ServiceStore>>,
    /// What messages say (built-in wording, the operator's templates, autofill lines).
    messages: Arc<Messages>,
    /// `VERIFYD_CHANNEL_FALLBACK`: when delivery on one of these fails, the same code goes out
    /// on the next ones, in order.
    fallback: Vec<Channel>,
    /// What each change writes beside itself in its transaction (set once the server starts;
    /// unset, changes write nothing else).
    journaling: OnceLock<Journaling>,
}

/// The engine's journals: its changes' attempt-log rows, and their events when events are on.
struct Journaling {
    /// The `/v2` service of a verification without a scope (for the attempt log).
    default_service: String,
    events: Option<Arc<Emitter>>,
    /// To correct a send row whose delivery then failed, and to record what a delivery learned.
    store: Arc<dyn crate::store::Store>,
}

impl LocalProvider {
    pub fn new(
        store: Arc<dyn VerificationStore>,
        sender: Arc<dyn SmsSender>,
        keys: Arc<Keys>,
        life: Lifecycle,
        code_length: CodeLength,
    ) -> Self {
        Self {
            store,
            sender,
            keys,
            life,
            code_length,
            services: None,
            messages: Arc::new(Messages::default()),
            fallback: Vec::new(),
            journaling: OnceLock::new(),
        }
    }

    /// From now on, every change writes its attempt-log row, and its events when `events` is
    /// set, in its own transaction (once; later calls are ignored).
    pub fn set_journaling(
        &self,
        default_service: String,
        events: Option<Arc<Emitter>>,
        store: Arc<dyn crate::store::Store>,
    ) {
        let _ = self.journaling.set(Journaling {
            default_service,
            events,
            store,
        });
    }

    /// Whether changes write their attempt-log rows themselves (then the service must not).
    pub fn journals(&self) -> bool {
        self.journaling.get().is_some()
    }

    /// The attempt-log row of an entry, sealed; none when not journaling.
    fn log_row(&self, entry: AttemptEntry) -> Option<crate::store::AttemptRecord> {
        let j = self.journaling.get()?;
        Some(seal(entry, &self.keys, &j.default_service))
    }

    /// A verification event's rows; none when events are off or no endpoint takes `kind`.
    fn event_rows(
        &self,
        kind: EventType,
        v: &Verification,
        scope: Option<&str>,
        now: Timestamp,
    ) -> Vec<crate::store::OutboxEvent> {
        match self.journaling.get().and_then(|j| j.events.as_ref()) {
            Some(e) => e.verification(kind, v, scope, now),
            None => Vec::new(),
        }
    }

    /// Wakes the dispatcher after a change wrote events.
    fn events_written(&self, journal: &Journal) {
        if !journal.events.is_empty()
            && let Some(e) = self.journaling.get().and_then(|j| j.events.as_ref())
        {
            e.written();
        }
    }

    /// A send row whose delivery failed after it was written becomes a failed send.
    async fn unsend(&self, attempt: &AttemptSid) {
        if let Some(j) = self.journaling.get()
            && let Err(e) = j.store.fail_attempt(attempt.as_str()).await
        {
            tracing::warn!(error = %crate::error::Chain(&e), "could not mark a failed send in the attempt log");
        }
    }

    /// Records on send row `attempt` what its delivery learned (vendor, message id, failovers,
    /// status): one small `UPDATE`; a failure is logged, never the send's.
    async fn record_delivery(&self, attempt: &AttemptSid, delivery: &crate::sms::Delivery) {
        if let Some(j) = self.journaling.get() {
            let update = crate::store::DeliveryUpdate {
                vendor: delivery.vendor.to_owned(),
                message_id: delivery.message_id.clone(),
                failovers: delivery.failovers,
                status: delivery.status,
            };
            if let Err(e) = j.store.record_delivery(attempt.as_str(), &update).await {
                tracing::warn!(error = %crate::error::Chain(&e), "could not record a delivery in the attempt log");
            }
        }
    }

    /// The journal of a counted check: its attempt-log row, and `approved` or
    /// `max_attempts_reached` when it approves or uses the last check.
    fn check_journal(
        &self,
        found: &StoredVerification,
        update: &crate::domain::CheckUpdate,
        phone: &Recipient,
        scope: Option<&str>,
        now: Timestamp,
    ) -> Journal {
        if !self.journals() {
            return Journal::default();
        }
        let mut entry = AttemptEntry::new(AttemptKind::Check, now, scope.map(str::to_owned), phone);
        entry.status = Some(if update.approves() {
            "approved"
        } else {
            "incorrect"
        });
        entry.verification_sid = Some(found.sid.as_str().to_owned());
        entry.channel = Some(found.channel);
        let kind = if update.approves() {
            Some(EventType::VerificationApproved)
        } else if self.life.checks_left(*update) == 0 {
            Some(EventType::VerificationMaxAttemptsReached)
        } else {
            None
        };
        let events = match kind {
            Some(kind) => {
                let mut view = self.view(found.clone().with_check(update), phone);
                if kind == EventType::VerificationMaxAttemptsReached {
                    view.status = VerificationStatus::MaxAttemptsReached;
                }
                self.event_rows(kind, &view, scope, now)
            }
            None => Vec::new(),
        };
        Journal {
            events,
            attempt: self.log_row(entry),
        }
    }

    /// The journal of a send: a new verification's row and `verification.pending`; a resend's
    /// row (the store fills in the verification).
    fn send_journal(
        &self,
        new: &NewVerification,
        phone: &Recipient,
        scope: Option<&str>,
        test_number: bool,
        message: Option<MessageFacts>,
        now: Timestamp,
    ) -> SendJournal {
        if !self.journals() {
            return SendJournal::default();
        }
        let entry = |verification: Option<&VerificationSid>| {
            let mut e = AttemptEntry::new(AttemptKind::Send, now, scope.map(str::to_owned), phone);
            e.verification_sid = verification.map(|v| v.as_str().to_owned());
            e.attempt_sid = Some(new.attempt.sid.to_string());
            e.channel = Some(new.attempt.channel);
            e.vendor = Some(if test_number { "test-number" } else { "local" });
            e.status = Some("sent");
            e.message = message;
            e
        };
        let view = Verification {
            sid: new.sid.clone(),
            to: phone.clone(),
            channel: new.channel,
            status: VerificationStatus::Pending,
            send_attempts: vec![new.attempt.clone()],
            created: now,
            updated: now,
            message: None,
            vendor: None,
        };
        SendJournal {
            created: Journal {
                events: self.event_rows(EventType::VerificationPending, &view, scope, now),
                attempt: self.log_row(entry(Some(&new.sid))),
            },
            resent: Journal {
                events: Vec::new(),
                attempt: self.log_row(entry(None)),
            },
        }
    }

    /// The same engine, moving a failed delivery to the next channel of `order`.
    #[must_use]
    pub fn with_fallback(mut self, order: Vec<Channel>) -> Self {
        self.fallback = order;
        self
    }

    /// The channels after `channel` in the fallback order (none when it is not in it).
    fn fallbacks(&self, channel: Channel) -> &[Channel] {
        self.fallback
            .iter()
            .position(|c| *c == channel)
            .map_or(&[], |i| &self.fallback[i + 1..])
    }

    /// The same engine, writing messages with `messages` (the settings' locale, templates and
    /// WebOTP domain) instead of the built-in defaults.
    #[must_use]
    pub fn with_messages(mut self, messages: Arc<Messages>) -> Self {
        self.messages = messages;
        self
    }

    /// Starts (or re-sends) a test number's verification: its code is `code` and nothing is
    /// delivered; everything else (lifecycle, counts) is as for any number.
    ///
    /// # Errors
    /// As [`Provider::start`].
    pub async fn start_test(
        &self,
        request: StartRequest,
        code: OtpCode,
    ) -> Result<Verification, ProviderError> {
        self.start_with(request, Some(code)).await
    }

    /// The same engine, able to fetch and end verifications by sid (the `/v2` face).
    #[must_use]
    pub fn with_services(mut self, services: Arc<dyn ServiceStore>) -> Self {
        self.services = Some(services);
        self
    }

    /// The stored owner of a verification: a keyed digest of the user's `sub`, else of the
    /// service scope (`/v2` services other than the default), else none.
    fn owner(&self, user: Option<&str>, scope: Option<&str>) -> Option<String> {
        match (user, scope) {
            (Some(sub), _) => Some(hex::encode(self.keys.lookup_digest("owner", sub))),
            (None, Some(scope)) => Some(hex::encode(
                self.keys
                    .lookup_digest("owner", &format!("service:{scope}")),
            )),
            (None, None) => None,
        }
    }

    /// The verification `sid` if it belongs to `scope`, with its number, as stored.
    async fn scoped(
        &self,
        sid: &VerificationSid,
        scope: Option<&str>,
    ) -> Result<(StoredVerification, Recipient), ProviderError> {
        let services = self.services.as_ref().ok_or(ProviderError::NotFound)?;
        let owner = services
            .verification_owner(sid)
            .await?
            .ok_or(ProviderError::NotFound)?;
        if owner != self.owner(None, scope) {
            return Err(ProviderError::NotFound);
        }
        let stored = self.store.get(sid).await?.ok_or(ProviderError::NotFound)?;
        let phone = self.stored_phone(&stored)?;
        Ok((stored, phone))
    }

    fn stored_phone(&self, stored: &StoredVerification) -> Result<Recipient, ProviderError> {
        let plain = self
            .keys
            .open(&stored.phone_sealed, PHONE_CONTEXT)
            .map_err(|e| ProviderError::Data(e.into()))?;
        String::from_utf8(plain)
            .ok()
            .and_then(|s| Recipient::parse_stored(&s))
            .ok_or_else(|| ProviderError::Data("stored recipient is unreadable".into()))
    }

    fn view(&self, stored: StoredVerification, to: &Recipient) -> Verification {
        Verification {
            sid: stored.sid,
            to: to.clone(),
            channel: stored.channel,
            status: stored.status,
            send_attempts: stored.send_attempts,
            created: stored.created,
            updated: stored.updated,
            message: None,
            vendor: None,
        }
    }

    fn stored_code(&self, stored: &StoredVerification) -> Result<OtpCode, ProviderError> {
        let plain = self
            .keys
            .open(&stored.code_sealed, stored.sid.as_str().as_bytes())
            .map_err(|e| ProviderError::Data(e.into()))?;
        String::from_utf8(plain)
            .ok()
            .and_then(OtpCode::from_stored)
            .ok_or_else(|| ProviderError::Data("stored code is not a run of digits".into()))
    }

    /// Before a send: a pending verification under an older secret is moved to the newest, so
    /// the send finds it (one pending verification per number).
    async fn adopt_older_pending(
        &self,
        phone: &Recipient,
        owner: Option<&str>,
        now: Timestamp,
    ) -> Result<(), ProviderError> {
        for lookup in self.keys.phone_lookups(&phone.key()).into_iter().skip(1) {
            if let Some(old) = self
                .store
                .find_pending(std::slice::from_ref(&lookup), owner)
                .await?
            {
                let row = SealedVerification {
                    sid: old.sid,
                    phone_lookup: lookup.to_vec(),
                    phone_sealed: old.phone_sealed,
                    code_digest: old.code_digest,
                    code_sealed: old.code_sealed,
                };
                move_verification(
                    self.store.as_ref(),
                    &self.keys,
                    &row,
                    now,
                    &mut RekeyReport::default(),
                )
                .await
                .map_err(|e| match e {
                    RotationError::Store(e) => ProviderError::Store(e),
                    other => ProviderError::Data(other.into()),
                })?;
            }
        }
        Ok(())
    }

    /// The message `deliver` would send for `code` on `channel`.
    fn render(
        &self,
        channel: Channel,
        code: &OtpCode,
        wording: &MessageOptions,
        scope: Option<&str>,
    ) -> messages::Rendered {
        self.messages.render(&messages::Request {
            code: code.expose(),
            channel,
            locale: wording.locale,
            scope,
            service_name: wording.service_name.as_deref(),
            do_not_share: wording.do_not_share_warning,
            app_hash: wording.app_hash.as_ref(),
            ttl: self.life.ttl,
        })
    }

    /// Hands the rendered message to the sender; answers
    /// what the message was (locale, encoding, segments), which is logged and metered here.
    async fn deliver(
        &self,
        stored: &StoredVerification,
        channel: Channel,
        to: &Recipient,
        code: &OtpCode,
        rendered: messages::Rendered,
    ) -> Result<(MessageFacts, crate::sms::Delivery), ProviderError> {
        let facts = facts_of(&rendered);
        // On the request's log line (the request span declares these fields).
        let span = tracing::Span::current();
        if !span.is_disabled() {
            span.record("locale", facts.locale);
            span.record("encoding", facts.encoding);
            span.record("segments", facts.segments);
        }
        metrics::counter!(
            "verifyd_message_segments_total",
            "channel" => channel.as_str(),
            "encoding" => facts.encoding,
        )
        .increment(u64::from(facts.segments));
        let message = OutgoingMessage {
            to: to.clone(),
            channel,
            body: rendered.text,
            code: secrecy::SecretString::from(code.expose().to_owned()),
            code_length: code.expose().len(),
            verification_sid: stored.sid.clone(),
            locale: rendered.locale,
            email: rendered.email,
        };
        let result = self.sender.deliver(&message).await;
        let country = to
            .region()
            .map_or_else(|| "none".to_owned(), |r| r.to_string());
        metrics::counter!(
            "verifyd_sms_sent_total",
            "provider" => "local",
            "channel" => channel.as_str(),
            "country" => country,
            "outcome" => if result.is_ok() { "sent" } else { "failed" },
        )
        .increment(1);
        result
            .map_err(|e| match e {
                // The vendor refused the number (or the SMTP server the mailbox) itself: the
                // caller's error (400 60200 To).
                SmsError::Refused(_) if to.email().is_some() => {
                    ProviderError::InvalidParameter(InvalidParameter::Email)
                }
                SmsError::Refused(_) => ProviderError::InvalidParameter(InvalidParameter::To),
                e => ProviderError::Delivery(e),
            })
            .map(|delivery| (facts, delivery))
    }

    /// A new verification (or, for the store, one more attempt of the live one) of `code` on
    /// `channel`.
    fn new_verification(
        &self,
        phone: &Recipient,
        owner: Option<String>,
        channel: Channel,
        code: &OtpCode,
        binding: Option<&str>,
        now: Timestamp,
    ) -> NewVerification {
        let sid = VerificationSid::generate();
        NewVerification {
            owner,
            phone_lookup: self.keys.phone_lookup(&phone.key()),
            phone_sealed: self.keys.seal(phone.as_str().as_bytes(), PHONE_CONTEXT),
            channel,
            code_digest: self
                .keys
                .code_digest(sid.as_str(), &bound(code.expose(), binding)),
            code_sealed: self
                .keys
                .seal(code.expose().as_bytes(), sid.as_str().as_bytes()),
            attempt: SendAttempt {
                sid: AttemptSid::generate(),
                channel,
                time: now,
            },
            expires_at: now.plus(self.life.ttl),
            sid,
            journal: SendJournal::default(),
        }
    }

    /// The verification after its delivery on its attempt's channel: when that failed, the
    /// same code on each next channel of the fallback order, each as one more send attempt of
    /// the same verification (so within its 5 sends), until one delivers. The error is the last
    /// delivery's, with the verification's sid.
    #[allow(clippy::too_many_arguments)]
    async fn after_delivery(
        &self,
        delivered: Result<(MessageFacts, crate::sms::Delivery), ProviderError>,
        stored: StoredVerification,
        phone: &Recipient,
        code: &OtpCode,
        wording: &MessageOptions,
        scope: &Option<String>,
        owner: &Option<String>,
        binding: &Option<String>,
        now: Timestamp,
    ) -> Result<Verification, (VerificationSid, ProviderError)> {
        let first = stored
            .send_attempts
            .last()
            .map_or(stored.channel, |a| a.channel);
        let mut stored = stored;
        let mut result = delivered;
        // Never from a number to an address or back: only the channels of this recipient.
        for next in self.fallbacks(first).iter().filter(|c| phone.suits(**c)) {
            let Err(e) = &result else { break };
            if let Some(failed) = stored.send_attempts.last() {
                self.unsend(&failed.sid).await;
            }
            tracing::warn!(
                sid = %stored.sid,
                phone = %phone.masked(),
                channel = %next,
                error = %crate::error::Chain(e),
                "delivery failed; the same code goes out on the next channel"
            );
            metrics::counter!("verifyd_channel_fallbacks_total", "to" => next.as_str())
                .increment(1);
            let mut again =
                self.new_verification(phone, owner.clone(), *next, code, binding.as_deref(), now);
            let rendered = self.render(*next, code, wording, scope.as_deref());
            let facts = facts_of(&rendered);
            again.journal =
                self.send_journal(&again, phone, scope.as_deref(), false, Some(facts), now);
            stored = match self.store.start_or_resend(again, now, self.life).await {
                Ok(SendOutcome::Resent(s)) if s.sid == stored.sid => s,
                Ok(SendOutcome::MaxSendAttempts) => {
                    return Err((stored.sid, ProviderError::MaxSendAttempts));
                }
                // Anything else (the verification ended meanwhile): stop at the failure.
                Ok(_) => break,
                Err(e) => return Err((stored.sid, e.into())),
            };
            result = self.deliver(&stored, *next, phone, code, rendered).await;
        }
        match result {
            Ok((facts, delivery)) => {
                if let Some(sent) = stored.send_attempts.last() {
                    self.record_delivery(&sent.sid, &delivery).await;
                }
                let mut view = self.view(stored, phone);
                view.message = Some(facts);
                view.vendor = Some(delivery.vendor);
                Ok(view)
            }
            Err(e) => {
                if let Some(failed) = stored.send_attempts.last() {
                    self.unsend(&failed.sid).await;
                }
                Err((stored.sid, e))
            }
        }
    }

    /// A send; `test_code` is a test number's fixed code (then nothing is delivered).
    async fn start_with(
        &self,
        request: StartRequest,
        test_code: Option<OtpCode>,
    ) -> Result<Verification, ProviderError> {
        let StartRequest {
            phone,
            channel,
            now,
            user,
            options:
                SendOptions {
                    scope,
                    code_length,
                    custom_code,
                    binding,
                    message: wording,
                    ..
                },
            ..
        } = request;
        let owner = self.owner(user.as_deref(), scope.as_deref());
        let test_number = test_code.is_some();
        let code = test_code
            .or(custom_code)
            .unwrap_or_else(|| OtpCode::generate(code_length.unwrap_or(self.code_length)));
        let mut new = self.new_verification(
            &phone,
            owner.clone(),
            channel,
            &code,
            binding.as_deref(),
            now,
        );
        // The attempt-log row is written with the send, before delivery: what the message will be
        // (its locale, encoding and parts) is known from the code's length and the wording.
        // Rendered once: the same message is delivered below when the send creates.
        let rendered =
            (!test_number).then(|| self.render(channel, &code, &wording, scope.as_deref()));
        let facts = rendered.as_ref().filter(|_| self.journals()).map(facts_of);
        new.journal = self.send_journal(&new, &phone, scope.as_deref(), test_number, facts, now);
        let wrote_events = !new.journal.created.events.is_empty();
        self.adopt_older_pending(&phone, owner.as_deref(), now)
            .await?;
        let outcome = self.store.start_or_resend(new, now, self.life).await?;
        if wrote_events
            && matches!(outcome, SendOutcome::Created(_))
            && let Some(e) = self.journaling.get().and_then(|j| j.events.as_ref())
        {
            e.written();
        }
        match outcome {
            SendOutcome::Created(stored) if test_number => {
                tracing::info!(phone = %phone.masked(), sid = %stored.sid, "test number: code not sent");
                metrics::counter!("verifyd_test_number_uses_total", "op" => "send").increment(1);
                Ok(self.view(stored, &phone))
            }
            SendOutcome::Resent(stored) if test_number => {
                tracing::info!(phone = %phone.masked(), sid = %stored.sid, "test number: code not re-sent");
                metrics::counter!("verifyd_test_number_uses_total", "op" => "send").increment(1);
                Ok(self.view(stored, &phone))
            }
            SendOutcome::Created(stored) => {
                let rendered = rendered
                    .unwrap_or_else(|| self.render(channel, &code, &wording, scope.as_deref()));
                let delivered = self
                    .deliver(&stored, channel, &phone, &code, rendered)
                    .await;
                match self
                    .after_delivery(
                        delivered, stored, &phone, &code, &wording, &scope, &owner, &binding, now,
                    )
                    .await
                {
                    Ok(view) => Ok(view),
                    Err((sid, e)) => {
                        // Nobody holds this code: close the verification so a retry starts
                        // afresh.
                        let _ = self
                            .store
                            .close(&sid, VerificationStatus::Failed, now)
                            .await;
                        Err(e)
                    }
                }
            }
            SendOutcome::Resent(stored) => {
                let code = self.stored_code(&stored)?;
                // The live verification's own code: its message is rendered anew.
                let rendered = self.render(channel, &code, &wording, scope.as_deref());
                let delivered = self
                    .deliver(&stored, channel, &phone, &code, rendered)
                    .await;
                self.after_delivery(
                    delivered, stored, &phone, &code, &wording, &scope, &owner, &binding, now,
                )
                .await
                .map_err(|(_, e)| e)
            }
            SendOutcome::MaxSendAttempts => Err(ProviderError::MaxSendAttempts),
        }
    }
}

/// A rendered message's locale, encoding and parts.
fn facts_of(rendered: &messages::Rendered) -> MessageFacts {
    MessageFacts {
        locale: rendered.locale.tag(),
        encoding: rendered.segments.encoding.as_str(),
        segments: u32::try_from(rendered.segments.count).unwrap_or(u32::MAX),
    }
}

#[async_trait]
impl Provider for LocalProvider {
    async fn start(&self, request: StartRequest) -> Result<Verification, ProviderError> {
        self.start_with(request, None).await
    }

    async fn check(&self, request: CheckRequest) -> Result<CheckOutcome, ProviderError> {
        let CheckRequest {
            phone,
            code,
            user,
            now,
            options,
        } = request;
        let owner = self.owner(user.as_deref(), options.scope.as_deref());
        let presented = bound(code.expose(), options.binding.as_deref());
        // Oldest secret first: a rekey only ever moves a row from an older secret's digest to
        // the newest's, so a row that exists throughout is found even if it moves meanwhile.
        let mut lookups = self.keys.phone_lookups(&phone.key());
        lookups.reverse();
        // Another user's pending verification is invisible: it answers exactly like none.
        let Some(mut found) = self.store.find_pending(&lookups, owner.as_deref()).await? else {
            return Ok(CheckOutcome::Refused(CheckRefusal::NotFound));
        };
        // A failed compare-and-set means another check was counted (or the verification closed)
        // meanwhile, so this loops at most `max_checks` + 1 times.
        loop {
            let verdict = self.life.judge_check(found.counters(), now, || {
                self.keys
                    .code_matches(&found.code_digest, found.sid.as_str(), &presented)
            });
            let update = match verdict {
                CheckVerdict::Count(update) => update,
                CheckVerdict::Expired => return Ok(CheckOutcome::Refused(CheckRefusal::Expired)),
                CheckVerdict::Locked => {
                    return Ok(CheckOutcome::Refused(CheckRefusal::MaxAttempts));
                }
                CheckVerdict::Gone => return Ok(CheckOutcome::Refused(CheckRefusal::NotFound)),
            };
            let journal =
                self.check_journal(&found, &update, &phone, options.scope.as_deref(), now);
            let wrote = journal.clone();
            let recorded = self
                .store
                .record_check_with(&found.sid, &update, journal)
                .await?;
            if recorded == CheckRecord::Counted {
                self.events_written(&wrote);
            }
            match recorded {
                CheckRecord::Counted if update.approves() => {
                    return Ok(CheckOutcome::Approved(
                        self.view(found.with_check(&update), &phone),
                    ));
                }
                CheckRecord::Counted => {
                    let attempts_remaining = Some(self.life.checks_left(update));
                    let pending = self.view(found.with_check(&update), &phone);
                    return Ok(CheckOutcome::Refused(CheckRefusal::Incorrect {
                        attempts_remaining,
                        pending: Some(Box::new(pending)),
                    }));
                }
                // Another check was counted first, or it was closed: judge it as it is now.
                CheckRecord::Changed => match self.store.get(&found.sid).await? {
                    Some(now_stored) => found = now_stored,
                    None => return Ok(CheckOutcome::Refused(CheckRefusal::NotFound)),
                },
            }
        }
    }

    async fn cancel(
        &self,
        sid: &VerificationSid,
        now: Timestamp,
    ) -> Result<Verification, ProviderError> {
        let stored = self.store.get(sid).await?.ok_or(ProviderError::NotFound)?;
        let phone = self.stored_phone(&stored)?;
        let mut view = self.view(stored, &phone);
        view.status = VerificationStatus::Canceled;
        view.updated = now;
        // The CLI's cancel: the event, no attempt-log row (it is not a check). Its service is
        // not known here: the default one.
        let journal = Journal {
            events: self.event_rows(EventType::VerificationCanceled, &view, None, now),
            attempt: None,
        };
        let wrote = journal.clone();
        if !self
            .store
            .close_with(sid, VerificationStatus::Canceled, now, journal)
            .await?
        {
            return Err(ProviderError::NotFound);
        }
        self.events_written(&wrote);
        Ok(view)
    }

    async fn fetch(
        &self,
        sid: &VerificationSid,
        scope: Option<&str>,
        now: Timestamp,
    ) -> Result<Verification, ProviderError> {
        let (stored, phone) = self.scoped(sid, scope).await?;
        let state = self.life.state(stored.counters(), now);
        let mut view = self.view(stored, &phone);
        match state {
            LiveState::Open { .. } => Ok(view),
            LiveState::Locked => {
                view.status = VerificationStatus::MaxAttemptsReached;
                Ok(view)
            }
            LiveState::Gone => Err(ProviderError::NotFound),
        }
    }

    async fn finish(
        &self,
        sid: &VerificationSid,
        scope: Option<&str>,
        status: VerificationStatus,
        now: Timestamp,
    ) -> Result<Verification, ProviderError> {
        let (stored, phone) = self.scoped(sid, scope).await?;
        match self.life.state(stored.counters(), now) {
            LiveState::Gone => return Err(ProviderError::NotFound),
            LiveState::Locked if status == VerificationStatus::Approved => {
                return Err(ProviderError::MaxCheckAttempts);
            }
            _ => {}
        }
        let channel = stored.channel;
        let mut view = self.view(stored, &phone);
        view.status = status;
        view.updated = now;
        // An approval by update converts the verification's attempts, like a right code.
        let mut entry =
            AttemptEntry::new(AttemptKind::Check, now, scope.map(str::to_owned), &phone);
        entry.status = Some(status.as_str());
        entry.verification_sid = Some(sid.as_str().to_owned());
        entry.channel = Some(channel);
        let kind = if status == VerificationStatus::Approved {
            EventType::VerificationApproved
        } else {
            EventType::VerificationCanceled
        };
        let journal = Journal {
            events: self.event_rows(kind, &view, scope, now),
            attempt: self.log_row(entry),
        };
        let wrote = journal.clone();
        if !self.store.close_with(sid, status, now, journal).await? {
            return Err(ProviderError::NotFound);
        }
        self.events_written(&wrote);
        Ok(view)
    }

    fn name(&self) -> &'static str {
        "local"
    }
}
