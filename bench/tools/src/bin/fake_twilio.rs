//! A fake Twilio Verify that answers at once, for the `twilio-overhead` scenario: every
//! `POST /v2/Services/{VA…}/Verifications` gets the same 201 Verification JSON (built once),
//! every `POST …/VerificationCheck` the same approved check. No state, no auth check: it exists
//! so that verifyd's own cost in `twilio-verify` mode can be measured as verifyd's latency minus
//! this fake's latency under the same load.
//!
//! Usage: `fake-twilio 127.0.0.1:PORT` (loopback only).

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;
use serde_json::json;

const SERVICE: &str = "VA0123456789abcdef0123456789abcdef";
const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const VERIFICATION: &str = "VE0123456789abcdef0123456789abcdef";

fn verification(status: &str, with_attempts: bool) -> Bytes {
    let mut body = json!({
        "sid": VERIFICATION,
        "service_sid": SERVICE,
        "account_sid": ACCOUNT,
        "to": "+12122000000",
        "channel": "sms",
        "status": status,
        "valid": status == "approved",
        "date_created": "2026-11-26T12:00:00Z",
        "date_updated": "2026-11-26T12:00:00Z",
        "amount": null,
        "payee": null,
    });
    if with_attempts {
        body["lookup"] = json!({});
        body["send_code_attempts"] = json!([{
            "attempt_sid": "VL0123456789abcdef0123456789abcdef",
            "channel": "SMS",
            "time": "2026-11-26T12:00:00Z",
        }]);
        body["url"] = json!(format!(
            "https://verify.twilio.com/v2/Services/{SERVICE}/Verifications/{VERIFICATION}"
        ));
    }
    Bytes::from(body.to_string())
}

fn answer(status: StatusCode, body: Bytes) -> impl IntoResponse {
    (status, [(header::CONTENT_TYPE, "application/json")], body)
}

#[tokio::main]
async fn main() {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18090".to_owned())
        .parse()
        .expect("usage: fake-twilio 127.0.0.1:PORT");
    assert!(addr.ip().is_loopback(), "the fake listens on loopback only");
    let created = verification("pending", true);
    let approved = verification("approved", false);
    let app = Router::new()
        .route(
            "/v2/Services/{service}/Verifications",
            post(move |_form: Bytes| {
                let body = created.clone();
                async move { answer(StatusCode::CREATED, body) }
            }),
        )
        .route(
            "/v2/Services/{service}/VerificationCheck",
            post(move |_form: Bytes| {
                let body = approved.clone();
                async move { answer(StatusCode::OK, body) }
            }),
        );
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
    eprintln!("fake Twilio listening on {addr}");
    axum::serve(listener, app).await.expect("serve");
}
