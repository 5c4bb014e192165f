//! Doctor's Twilio checks: the account reachable with the credentials, the clocks in step,
//! the Verify service and its channels and IP bucket, or the Messaging sender and its numbers.
//! Twilio is only read (GET).

use serde::Deserialize;

use crate::clock::{Clock, SystemClock};
use crate::config::{BucketConfig, Config, MessagingFrom};
use crate::domain::{Channel, Timestamp};
use crate::provider::twilio_sync::read_ip_buckets;
use crate::twilio::{TwilioClient, TwilioError};

use super::{CLOCK_TOLERANCE, Report};

/// Our clock against Twilio's `Date` header.
fn twilio_clock(report: &mut Report, date: Option<Timestamp>) {
    let Some(theirs) = date else {
        report.info(
            "twilio clock",
            "Twilio's answer had no Date header to compare with",
        );
        return;
    };
    let ours = SystemClock.now();
    let skew = if ours > theirs {
        ours.since(theirs)
    } else {
        theirs.since(ours)
    };
    if skew <= CLOCK_TOLERANCE {
        report.pass(
            "twilio clock",
            format!("within {} s of Twilio's Date header", skew.as_secs()),
        );
    } else {
        report.fail(
            "twilio clock",
            format!(
                "{} s away from Twilio's Date header (tolerance {} s)",
                skew.as_secs(),
                CLOCK_TOLERANCE.as_secs()
            ),
            "sync the system clock (NTP: chrony or systemd-timesyncd)",
        );
    }
}

/// The fields of Twilio's Verify Service resource doctor reads.
#[derive(Deserialize)]
struct VerifyService {
    friendly_name: Option<String>,
    code_length: Option<u64>,
    #[serde(default)]
    lookup_enabled: bool,
    #[serde(default)]
    skip_sms_to_landlines: bool,
    #[serde(default)]
    psd2_enabled: bool,
    #[serde(default)]
    custom_code_enabled: bool,
    whatsapp: Option<serde_json::Value>,
}

/// A failed Twilio read as a checklist line. Returns whether the credentials were the cause.
fn twilio_failure(
    report: &mut Report,
    title: &'static str,
    what: &str,
    error: &TwilioError,
    missing_fix: &str,
) -> bool {
    match error {
        TwilioError::Api(f) if f.is_bad_credentials() => {
            report.fail(
                "twilio credentials",
                format!(
                    "Twilio rejected them (HTTP {}, error {})",
                    f.status,
                    f.code.map_or_else(|| "none".to_owned(), |c| c.to_string())
                ),
                "check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN (Twilio console > Account > API keys & tokens)",
            );
            true
        }
        TwilioError::Api(f) if f.status == 404 => {
            report.pass(
                "twilio credentials",
                "accepted (Twilio answered 404, not 401)",
            );
            report.fail(title, format!("{what} does not exist ({f})"), missing_fix);
            false
        }
        other => {
            report.fail(
                title,
                format!("{what} could not be read: {other}"),
                "check that this host can reach Twilio over HTTPS, and the TWILIO_*_BASE_URL settings",
            );
            false
        }
    }
}

pub(super) async fn twilio_verify(report: &mut Report, config: &Config) {
    let Some(credentials) = &config.twilio.credentials else {
        return;
    };
    let api = match TwilioClient::new(
        &config.twilio.verify_base_url,
        &credentials.account_sid,
        credentials.auth_token.clone(),
        config.twilio.timeout,
    ) {
        Ok(api) => api,
        Err(e) => {
            report.fail("twilio", e.to_string(), "see the error");
            return;
        }
    };
    let service_sid = &credentials.service_sid;
    let what = format!("Verify service TWILIO_SERVICE_SID={service_sid}");
    let (service, date) = match api
        .get_dated::<VerifyService>(&format!("/v2/Services/{service_sid}"))
        .await
    {
        Ok(found) => found,
        Err(e) => {
            twilio_failure(
                report,
                "twilio verify service",
                &what,
                &e,
                &format!(
                    "create a Verify service (Twilio console > Verify > Services) and set TWILIO_SERVICE_SID to its VA… SID; \
                     it must belong to account {}",
                    credentials.account_sid
                ),
            );
            return;
        }
    };
    report.pass(
        "twilio credentials",
        format!("accepted for account {}", credentials.account_sid),
    );
    report.pass(
        "twilio verify service",
        format!(
            "{service_sid} \"{}\" exists",
            service.friendly_name.as_deref().unwrap_or("")
        ),
    );
    match service.code_length {
        Some(n) if n != config.codes.length.get() as u64 => report.fail(
            "twilio code length",
            format!(
                "the service sends {n}-digit codes, VERIFYD_CODE_LENGTH is {}: every right code would be refused as invalid_code",
                config.codes.length.get()
            ),
            format!("set VERIFYD_CODE_LENGTH={n} (or change the service's code length)"),
        ),
        Some(n) => report.pass("twilio code length", format!("{n} digits, as VERIFYD_CODE_LENGTH")),
        None => report.info("twilio code length", "the service did not say"),
    }
    verify_channels(report, config, &service);
    report.info(
        "twilio service settings",
        format!(
            "lookup_enabled={}, skip_sms_to_landlines={}, psd2_enabled={}, custom_code_enabled={}",
            service.lookup_enabled,
            service.skip_sms_to_landlines,
            service.psd2_enabled,
            service.custom_code_enabled
        ),
    );
    ip_bucket(report, config, &api, service_sid).await;
    twilio_clock(report, date);
}

/// Which of our enabled channels the service can deliver on, from the Service's fields.
fn verify_channels(report: &mut Report, config: &Config, service: &VerifyService) {
    let configured = |v: &Option<serde_json::Value>| {
        v.as_ref().is_some_and(|v| {
            v.as_object().is_some_and(|o| {
                o.values()
                    .any(|x| !x.is_null() && x != &serde_json::Value::Bool(false))
            })
        })
    };
    // Every Verify service delivers SMS and voice calls; WhatsApp needs a sender on the service.
    let mut offered = vec!["sms", "call"];
    if configured(&service.whatsapp) {
        offered.push("whatsapp");
    }
    let mut missing = Vec::new();
    let mut unknown = Vec::new();
    for channel in &config.limits.channels {
        match channel {
            Channel::Sms | Channel::Call => {}
            Channel::Whatsapp if configured(&service.whatsapp) => {}
            Channel::Whatsapp => missing.push("whatsapp (the service has no WhatsApp sender)"),
            Channel::Email | Channel::Sna => unknown.push(channel.as_str()),
        }
    }
    let enabled = config
        .limits
        .channels
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    if missing.is_empty() {
        report.pass(
            "twilio channels",
            format!(
                "the service offers {}; VERIFYD_CHANNELS={enabled}",
                offered.join(", ")
            ),
        );
    } else {
        report.fail(
            "twilio channels",
            format!(
                "VERIFYD_CHANNELS={enabled}, but the service cannot deliver: {}",
                missing.join("; ")
            ),
            "configure that channel on the Verify service (Twilio console), or remove it from VERIFYD_CHANNELS",
        );
    }
    if !unknown.is_empty() {
        report.info(
            "twilio channels",
            format!(
                "{} cannot be checked through the API: check the service's settings in the Twilio console",
                unknown.join(", ")
            ),
        );
    }
}

async fn ip_bucket(report: &mut Report, config: &Config, api: &TwilioClient, service_sid: &str) {
    let ours = config.limits.rate_limit_ip;
    if !ours.enabled() {
        report.pass(
            "twilio ip bucket",
            "VERIFYD_RATE_LIMIT_IP_MAX=0: verifyd sends no RateLimits, so no Twilio-side bucket is used",
        );
        return;
    }
    let want = (u64::from(ours.max), ours.interval.as_secs().max(1));
    let fix = if config.twilio.sync_rate_limits {
        "run `verifyd twilio sync` (`verifyd serve` also syncs it at start)"
    } else {
        "run `verifyd twilio sync` (VERIFYD_TWILIO_SYNC_RATE_LIMITS=false: serve does not sync it)"
    };
    match read_ip_buckets(api, service_sid).await {
        Ok(Some((_, buckets))) if buckets == [want] => report.pass(
            "twilio ip bucket",
            format!(
                "end_user_ip_address has one bucket of {} per {} s, as {}",
                want.0,
                want.1,
                describe_ours(ours)
            ),
        ),
        Ok(Some((_, buckets))) => report.fail(
            "twilio ip bucket",
            format!(
                "end_user_ip_address has {}, but verifyd's IP bucket is {} per {} s ({})",
                if buckets.is_empty() {
                    "no bucket".to_owned()
                } else {
                    buckets
                        .iter()
                        .map(|(m, i)| format!("{m} per {i} s"))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                want.0,
                want.1,
                describe_ours(ours)
            ),
            fix,
        ),
        Ok(None) => report.fail(
            "twilio ip bucket",
            "the service has no end_user_ip_address RateLimit: Twilio ignores the client IP verifyd sends",
            fix,
        ),
        Err(e) => {
            twilio_failure(
                report,
                "twilio ip bucket",
                "the service's RateLimits",
                &e,
                fix,
            );
        }
    }
}

fn describe_ours(b: BucketConfig) -> String {
    format!(
        "VERIFYD_RATE_LIMIT_IP_MAX={} per VERIFYD_RATE_LIMIT_IP_INTERVAL={}",
        b.max,
        b.interval.as_secs()
    )
}

#[derive(Deserialize)]
struct MessagingService {
    friendly_name: Option<String>,
}

#[derive(Deserialize)]
struct IncomingNumbers {
    #[serde(default)]
    incoming_phone_numbers: Vec<IncomingNumber>,
}

#[derive(Deserialize)]
struct IncomingNumber {
    phone_number: Option<String>,
    capabilities: Option<Capabilities>,
}

#[derive(Deserialize)]
struct Capabilities {
    #[serde(default)]
    sms: bool,
}

pub(super) async fn twilio_messaging(report: &mut Report, config: &Config) {
    let Some(settings) = &config.delivery.twilio_messaging else {
        return;
    };
    let client = |base: &str| {
        TwilioClient::new(
            base,
            &settings.account_sid,
            settings.auth_token.clone(),
            config.twilio.timeout,
        )
    };
    match &settings.from {
        MessagingFrom::Service(sid) => {
            let api = match client(&config.twilio.messaging_base_url) {
                Ok(api) => api,
                Err(e) => return report.fail("twilio", e.to_string(), "see the error"),
            };
            match api
                .get_dated::<MessagingService>(&format!("/v1/Services/{sid}"))
                .await
            {
                Ok((service, date)) => {
                    report.pass(
                        "twilio credentials",
                        format!("accepted for account {}", settings.account_sid),
                    );
                    report.pass(
                        "twilio messaging service",
                        format!(
                            "{sid} \"{}\" exists",
                            service.friendly_name.as_deref().unwrap_or("")
                        ),
                    );
                    twilio_clock(report, date);
                }
                Err(e) => {
                    twilio_failure(
                        report,
                        "twilio messaging service",
                        &format!("Messaging Service TWILIO_MESSAGING_SERVICE_SID={sid}"),
                        &e,
                        "create a Messaging Service (Twilio console > Messaging > Services) with a sender pool, \
                         and set TWILIO_MESSAGING_SERVICE_SID to its MG… SID",
                    );
                }
            }
        }
        MessagingFrom::Number(from) if from.starts_with('+') => {
            let api = match client(&config.twilio.api_base_url) {
                Ok(api) => api,
                Err(e) => return report.fail("twilio", e.to_string(), "see the error"),
            };
            let query = form_urlencode(from);
            let path = format!(
                "/2010-04-01/Accounts/{}/IncomingPhoneNumbers.json?PhoneNumber={query}",
                settings.account_sid
            );
            let fix = "set TWILIO_FROM to an SMS-capable number of this account (Twilio console > Phone Numbers), \
                       or use TWILIO_MESSAGING_SERVICE_SID";
            match api.get_dated::<IncomingNumbers>(&path).await {
                Ok((list, date)) => {
                    report.pass(
                        "twilio credentials",
                        format!("accepted for account {}", settings.account_sid),
                    );
                    let number = list
                        .incoming_phone_numbers
                        .iter()
                        .find(|n| n.phone_number.as_deref() == Some(from.as_str()));
                    match number {
                        Some(n) if n.capabilities.as_ref().is_none_or(|c| c.sms) => report.pass(
                            "twilio from number",
                            format!("TWILIO_FROM={from} is an SMS-capable number of the account"),
                        ),
                        Some(_) => report.fail(
                            "twilio from number",
                            format!("TWILIO_FROM={from} belongs to the account but cannot send SMS"),
                            fix,
                        ),
                        None => report.fail(
                            "twilio from number",
                            format!(
                                "TWILIO_FROM={from} is not a number of account {}",
                                settings.account_sid
                            ),
                            fix,
                        ),
                    }
                    twilio_clock(report, date);
                }
                Err(e) => {
                    twilio_failure(
                        report,
                        "twilio from number",
                        &format!("TWILIO_FROM={from}"),
                        &e,
                        fix,
                    );
                }
            }
        }
        MessagingFrom::Number(from) => report.info(
            "twilio from number",
            format!(
                "TWILIO_FROM={from} is a short code or alphanumeric sender ID: Twilio's API cannot confirm it"
            ),
        ),
    }
}

/// Percent-encodes a query value (`+` becomes `%2B`).
fn form_urlencode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(form_urlencode("+15005550006"), "%2B15005550006");
    }
}
