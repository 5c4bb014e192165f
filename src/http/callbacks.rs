//! `POST /callbacks/{vendor}`: the SMS vendors' delivery receipts (DESIGN.md "Vendors and
//! delivery receipts"). Public (no API key): each receipt is accepted only with its vendor's
//! signature verified by that vendor's [`ReceiptVerifier`] (looked up by name, so every vendor
//! file plugs in its own), over the raw body and the URL the vendor called
//! (`VERIFYD_PUBLIC_URL` + path and query). A verified receipt moves its attempt's delivery
//! status forward only, and a final one (`delivered`, `undelivered`, `failed`) writes
//! `attempt.delivered` / `attempt.failed` in the same store transaction.
//!
//! Answers: 200 when verified (applied, already applied, or about a message verifyd does not
//! know: vendors retry anything else for days); 401 unsigned or forged; 403 a stale signed
//! timestamp (a replay); 400 malformed; 404 a vendor without receipts here; 413 a body over
//! 16 KiB; 503 the store is down (the vendor retries). Nothing changes on any refusal. This
//! module does not parse any vendor's body itself.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};

use super::AppState;
use super::error::ApiError;
use crate::crypto::Keys;
use crate::domain::{PhoneNumber, Timestamp};
use crate::events::{Emitter, EventType};
use crate::rotation::PHONE_CONTEXT;
use crate::sms::receipt::{self, Receipt, ReceiptError, ReceiptRequest, ReceiptVerifier};
use crate::store::{ReceiptChange, ReceiptTarget, Store};

/// How often a receipt re-reads its attempt after losing a race with another receipt.
const TRIES: usize = 3;

/// What the receipt route needs: the verifiers, the public URL vendors call, the events.
pub struct Receipts {
    verifiers: Vec<Arc<dyn ReceiptVerifier>>,
    /// Without a trailing slash.
    public_url: String,
    events: Option<Arc<Emitter>>,
}

impl Receipts {
    /// Receipts verified by `verifiers`, called at `public_url`; events through `events`.
    #[must_use]
    pub fn new(
        verifiers: Vec<Arc<dyn ReceiptVerifier>>,
        public_url: &str,
        events: Option<Arc<Emitter>>,
    ) -> Self {
        Self {
            verifiers,
            public_url: public_url.trim_end_matches('/').to_owned(),
            events,
        }
    }
}

impl From<ReceiptError> for ApiError {
    fn from(e: ReceiptError) -> Self {
        match e {
            ReceiptError::Unsigned | ReceiptError::BadSignature => ApiError::InvalidSignature,
            ReceiptError::Stale => ApiError::StaleReceipt,
            ReceiptError::Malformed(why) => ApiError::InvalidBody(why),
            ReceiptError::NotConfigured => ApiError::RouteNotFound,
        }
    }
}

/// A vendor's delivery receipt.
#[utoipa::path(
    post,
    path = "/callbacks/{vendor}",
    tag = "receipts",
    params(("vendor" = String, Path, description = "The vendor's name as in VERIFYD_SMS_ROUTES: `twilio-messaging`, `telnyx`, `vonage`, …")),
    request_body(description = "The vendor's receipt as it sends it (Twilio and Vonage: a form; Telnyx and Vonage: JSON), signed by its scheme", content(
        (String = "application/x-www-form-urlencoded"),
        (Object = "application/json"),
    )),
    responses(
        (status = 200, description = "Verified: applied, already applied (the status only moves forward), or about a message verifyd does not know (ignored)"),
        (status = 400, description = "`invalid_body`: signed, but not a receipt of this vendor", body = super::error::ErrorBody),
        (status = 401, description = "`invalid_signature`: unsigned, or the signature does not match", body = super::error::ErrorBody),
        (status = 403, description = "`stale_receipt`: the signed timestamp is more than 5 minutes from now (a replay)", body = super::error::ErrorBody),
        (status = 404, description = "`not_found`: no receipts from this vendor here (unknown, or what verifies it is not configured)", body = super::error::ErrorBody),
        (status = 413, description = "`payload_too_large`: over 16 KiB", body = super::error::ErrorBody),
        (status = 503, description = "`unavailable`: the store cannot be reached (the vendor retries)", body = super::error::ErrorBody,
            headers(("Retry-After" = u64, description = "Whole seconds"))),
    ),
)]
pub async fn receive_receipt(
    State(state): State<AppState>,
    Path(vendor): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let receipts = &state.receipts;
    let Some(verifier) = receipt::find(&receipts.verifiers, &vendor) else {
        return Err(ApiError::RouteNotFound);
    };
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::InvalidBody("the body could not be read".to_owned())
        }
    })?;
    let now = state.clock.now();
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let url = format!("{}{path}", receipts.public_url);
    let verified = verifier.verify(&ReceiptRequest {
        url: &url,
        headers: &headers,
        body: &body,
        now,
    });
    let receipt = match verified {
        Ok(r) => r,
        Err(e) => {
            metrics::counter!("verifyd_receipts_total", "vendor" => verifier.vendor(), "outcome" => "refused")
                .increment(1);
            // Counted; the request line logs the refusal (summarised per client under a flood).
            tracing::debug!(vendor = verifier.vendor(), reason = %e, "delivery receipt refused");
            return Err(e.into());
        }
    };
    let outcome = apply(
        state.store.as_ref(),
        &state.keys,
        receipts.events.as_deref(),
        verifier.vendor(),
        receipt,
        now,
    )
    .await?;
    metrics::counter!("verifyd_receipts_total", "vendor" => verifier.vendor(), "outcome" => outcome)
        .increment(1);
    Ok(StatusCode::OK)
}

/// Applies a verified receipt; what came of it (`applied`, `unchanged`, `unknown`).
async fn apply(
    store: &dyn Store,
    keys: &Keys,
    events: Option<&Emitter>,
    vendor: &'static str,
    receipt: Receipt,
    now: Timestamp,
) -> Result<&'static str, ApiError> {
    for _ in 0..TRIES {
        let Some(target) = store.receipt_target(vendor, &receipt.message_id).await? else {
            // Vendors retry anything but a 2xx: a receipt about a message verifyd does not
            // know (sent by something else on the account, or purged) is taken and ignored.
            tracing::debug!(vendor, "delivery receipt for an unknown message: ignored");
            return Ok("unknown");
        };
        let forward = match target.status {
            None => true,
            Some(now) => !now.is_final() && receipt.status > now,
        };
        if !forward {
            return Ok("unchanged");
        }
        let rows = match (events, event_type(&receipt)) {
            (Some(e), Some(kind)) => {
                let data = event_data(e, keys, vendor, &target, &receipt);
                let subject = target
                    .verification_sid
                    .clone()
                    .or_else(|| target.attempt_sid.clone())
                    .unwrap_or_default();
                e.rows(kind, &subject, target.subject_created, &data, now)
            }
            _ => Vec::new(),
        };
        let wrote_events = !rows.is_empty();
        let change = ReceiptChange {
            vendor: vendor.to_owned(),
            message_id: receipt.message_id.clone(),
            from: target.status,
            to: receipt.status,
            error_code: receipt.error_code.clone(),
        };
        if store.apply_receipt(&change, rows).await? {
            if wrote_events && let Some(e) = events {
                e.written();
            }
            tracing::info!(
                vendor,
                attempt = target.attempt_sid.as_deref().unwrap_or(""),
                status = receipt.status.as_str(),
                "delivery receipt applied"
            );
            return Ok("applied");
        }
        // Another receipt moved it meanwhile: read it again.
    }
    Ok("unchanged")
}

/// The event a receipt's status emits: only final statuses have one.
fn event_type(receipt: &Receipt) -> Option<EventType> {
    use crate::sms::DeliveryStatus as S;
    match receipt.status {
        S::Delivered => Some(EventType::AttemptDelivered),
        S::Undelivered | S::Failed => Some(EventType::AttemptFailed),
        S::Queued | S::Sent => None,
    }
}

/// The `data` of `attempt.delivered` / `attempt.failed` (never a code; the number as the
/// verification events show it).
fn event_data(
    events: &Emitter,
    keys: &Keys,
    vendor: &str,
    target: &ReceiptTarget,
    receipt: &Receipt,
) -> serde_json::Value {
    let to = target
        .phone_sealed
        .as_deref()
        .and_then(|sealed| keys.open(sealed, PHONE_CONTEXT).ok())
        .and_then(|plain| String::from_utf8(plain).ok())
        .and_then(|e164| PhoneNumber::parse(&e164).ok())
        .map(|p| events.number(&p));
    serde_json::json!({
        "attempt_sid": target.attempt_sid,
        "verification_sid": target.verification_sid,
        "service_sid": target.service_sid,
        "channel": target.channel,
        "to": to,
        "country": target.country,
        "vendor": vendor,
        "vendor_message_id": receipt.message_id,
        "failovers": target.failovers,
        "status": receipt.status.as_str(),
        "error_code": receipt.error_code,
    })
}
