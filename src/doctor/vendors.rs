//! `verifyd doctor`'s checks of the SMS vendors beyond Twilio: each configured vendor's
//! credentials, by one read-only GET (Telnyx `GET /v2/balance`, Vonage `GET
//! /account/get-balance`, Plivo `GET /v1/Account/{id}/`, Sinch `GET /xms/v1/{plan}/batches`,
//! Infobip `GET /account/1/balance`, Bird `GET /v1/sms/messages`). Nothing is sent; answers are
//! reduced to their HTTP status.

use secrecy::ExposeSecret;

use super::Report;
use crate::config::Config;
use crate::sms::vendor_http::client;

/// What a balance request's answer says about the credentials.
fn judge(report: &mut Report, vendor: &'static str, settings: &str, answer: Result<u16, String>) {
    match answer {
        Ok(s) if (200..300).contains(&s) => report.pass(vendor, "credentials accepted"),
        Ok(s @ (401 | 403)) => report.fail(
            vendor,
            format!("credentials refused (HTTP {s})"),
            format!("check {settings}"),
        ),
        Ok(s) => report.fail(
            vendor,
            format!("the balance request answered HTTP {s}"),
            "check the vendor's status, and its base URL",
        ),
        Err(e) => report.fail(
            vendor,
            e,
            "check the network path to the vendor and its base URL",
        ),
    }
}

/// Checks every vendor the settings configure (as a sender or in a route).
pub(super) async fn check(report: &mut Report, config: &Config) {
    let http = match client() {
        Ok(c) => c,
        Err(e) => {
            report.fail("sms vendors", e.to_string(), "fix the TLS setup");
            return;
        }
    };
    let status = |r: Result<reqwest::Response, reqwest::Error>| {
        r.map(|a| a.status().as_u16())
            .map_err(|e| format!("no answer: {}", e.without_url()))
    };
    if let Some(t) = &config.delivery.telnyx {
        let answer = http
            .get(format!("{}/v2/balance", t.base_url.trim_end_matches('/')))
            .bearer_auth(t.api_key.expose_secret())
            .send()
            .await;
        judge(report, "telnyx", "TELNYX_API_KEY", status(answer));
    }
    if let Some(v) = &config.delivery.vonage {
        let query = serde_urlencoded::to_string([
            ("api_key", v.api_key.as_str()),
            ("api_secret", v.api_secret.expose_secret()),
        ])
        .unwrap_or_default();
        let answer = http
            .get(format!(
                "{}/account/get-balance?{query}",
                v.base_url.trim_end_matches('/')
            ))
            .send()
            .await;
        judge(
            report,
            "vonage",
            "VONAGE_API_KEY and VONAGE_API_SECRET",
            status(answer),
        );
    }
    let more = &config.delivery.more;
    if let Some(p) = &more.plivo {
        let answer = http
            .get(format!(
                "{}/v1/Account/{}/",
                p.base_url.trim_end_matches('/'),
                p.auth_id
            ))
            .basic_auth(&p.auth_id, Some(p.auth_token.expose_secret()))
            .send()
            .await;
        judge(
            report,
            "plivo",
            "PLIVO_AUTH_ID and PLIVO_AUTH_TOKEN",
            status(answer),
        );
    }
    if let Some(s) = &more.sinch {
        let answer = http
            .get(format!(
                "{}/xms/v1/{}/batches?page_size=1",
                s.base_url.trim_end_matches('/'),
                s.service_plan_id
            ))
            .bearer_auth(s.api_token.expose_secret())
            .send()
            .await;
        judge(
            report,
            "sinch",
            "SINCH_SERVICE_PLAN_ID, SINCH_API_TOKEN and SINCH_BASE_URL (its region)",
            status(answer),
        );
    }
    if let Some(i) = &more.infobip {
        let answer = http
            .get(format!(
                "{}/account/1/balance",
                i.base_url.trim_end_matches('/')
            ))
            .header(
                reqwest::header::AUTHORIZATION,
                format!("App {}", i.api_key.expose_secret()),
            )
            .send()
            .await;
        judge(
            report,
            "infobip",
            "INFOBIP_API_KEY and INFOBIP_BASE_URL",
            status(answer),
        );
    }
    if let Some(b) = &more.bird {
        let answer = http
            .get(format!(
                "{}/v1/sms/messages",
                b.base_url.trim_end_matches('/')
            ))
            .bearer_auth(b.api_key.expose_secret())
            .send()
            .await;
        judge(
            report,
            "bird",
            "BIRD_API_KEY (and its region)",
            status(answer),
        );
    }
}
