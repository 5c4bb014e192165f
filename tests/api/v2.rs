//! The `/v2` face (Twilio Verify's API) through the real server: Basic auth, form bodies,
//! Twilio's errors, the default service and more services, verifications through the same
//! engine and policy as `/mfa/*`. Every answer is checked against Twilio's description
//! ([`crate::v2_spec`]); every bad parameter is shown to change nothing.

use reqwest::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::v2_spec::assert_valid;

pub const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
pub const SERVICE: &str = "VA0123456789abcdef0123456789abcdef";

/// The settings of a test app with a known account and default service.
pub fn v2_settings<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut s = vec![
        ("VERIFYD_ACCOUNT_SID", ACCOUNT),
        ("VERIFYD_SERVICE_SID", SERVICE),
    ];
    s.extend_from_slice(extra);
    s
}

/// One `/v2` answer.
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

/// A `/v2` request with Basic auth (`account`:`key`) and a form body (or query, for GET and
/// DELETE); the answer is checked against Twilio's description.
pub async fn v2_as(
    app: &TestApp,
    auth: Option<(&str, &str)>,
    method: &str,
    path: &str,
    params: &[(&str, &str)],
) -> Answer {
    let form = serde_urlencoded::to_string(params).unwrap();
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = if method == reqwest::Method::GET || method == reqwest::Method::DELETE {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = if form.is_empty() {
            app.url(path)
        } else {
            format!("{}{sep}{form}", app.url(path))
        };
        app.client.request(method.clone(), url)
    } else {
        app.client
            .request(method.clone(), app.url(path))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form)
    };
    if let Some((user, key)) = auth {
        req = req.basic_auth(user, Some(key));
    }
    let response = req.send().await.expect("request sent");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let bare = path.split('?').next().unwrap();
    assert_valid(method.as_str(), bare, status, &text);
    Answer {
        status,
        body: if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        },
        headers,
    }
}

pub async fn v2(app: &TestApp, method: &str, path: &str, params: &[(&str, &str)]) -> Answer {
    v2_as(app, Some((ACCOUNT, API_KEY)), method, path, params).await
}

fn verifications(service: &str) -> String {
    format!("/v2/Services/{service}/Verifications")
}

fn check_path(service: &str) -> String {
    format!("/v2/Services/{service}/VerificationCheck")
}

/// Asserts a Twilio error answer.
pub fn assert_twilio_error(a: &Answer, status: u16, code: u64, case: &str) {
    assert_eq!(
        (a.status, a.body["code"].as_u64()),
        (status, Some(code)),
        "{case}: {}",
        a.body
    );
}

/// The code of the latest message to `number`, after "code is: ".
async fn code_for(app: &TestApp, number: &str) -> String {
    let messages = app.outbox().await;
    let body = messages
        .iter()
        .rev()
        .find(|m| m["to"] == number)
        .unwrap_or_else(|| panic!("no message to {number}"))["body"]
        .as_str()
        .unwrap()
        .to_owned();
    body.split("code is: ")
        .nth(1)
        .unwrap()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect()
}

async fn create_service(app: &TestApp, params: &[(&str, &str)]) -> String {
    let a = v2(app, "POST", "/v2/Services", params).await;
    assert_eq!(a.status, 201, "{}", a.body);
    a.body["sid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn v2_create_resend_check_fetch_and_update_use_the_same_engine() {
    let app = spawn_app_with(&v2_settings(&[])).await;
    let path = verifications(SERVICE);
    let to = [("To", US_NUMBER), ("Channel", "sms")];

    let first = v2(&app, "POST", &path, &to).await;
    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(first.body["status"], "pending");
    assert_eq!(first.body["service_sid"], SERVICE);
    assert_eq!(first.body["account_sid"], ACCOUNT);
    let sid = first.body["sid"].as_str().unwrap().to_owned();
    assert_eq!(first.body["url"], app.url(&format!("{path}/{sid}")));
    let code = code_for(&app, US_NUMBER).await;

    // A resend in the window: the same verification, the same code, one more attempt.
    let again = v2(&app, "POST", &path, &to).await;
    assert_eq!(again.status, 201);
    assert_eq!(again.body["sid"], sid.as_str());
    assert_eq!(
        again.body["send_code_attempts"].as_array().unwrap().len(),
        2
    );
    assert_eq!(code_for(&app, US_NUMBER).await, code);

    // Wrong: 200 pending, valid false (counted).
    let wrong_check = v2(
        &app,
        "POST",
        &check_path(SERVICE),
        &[("To", US_NUMBER), ("Code", &wrong(&code))],
    )
    .await;
    assert_eq!(wrong_check.status, 200, "{}", wrong_check.body);
    assert_eq!(wrong_check.body["status"], "pending");
    assert_eq!(wrong_check.body["valid"], false);

    let fetched = v2(&app, "GET", &format!("{path}/{sid}"), &[]).await;
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.body["status"], "pending");

    // Right, by VerificationSid: approved; then it is gone.
    let right = v2(
        &app,
        "POST",
        &check_path(SERVICE),
        &[("VerificationSid", &sid), ("Code", &code)],
    )
    .await;
    assert_eq!(right.status, 200, "{}", right.body);
    assert_eq!(right.body["status"], "approved");
    assert_eq!(right.body["valid"], true);
    let gone = v2(&app, "GET", &format!("{path}/{sid}"), &[]).await;
    assert_twilio_error(&gone, 404, 20404, "fetch after approval");
    let again = v2(
        &app,
        "POST",
        &check_path(SERVICE),
        &[("To", US_NUMBER), ("Code", &code)],
    )
    .await;
    assert_twilio_error(&again, 404, 20404, "check after approval");

    // Cancel, then approve by update.
    for (status, expect) in [("canceled", "canceled"), ("approved", "approved")] {
        let created = v2(&app, "POST", &path, &to).await;
        let sid = created.body["sid"].as_str().unwrap().to_owned();
        let updated = v2(
            &app,
            "POST",
            &format!("{path}/{sid}"),
            &[("Status", status)],
        )
        .await;
        assert_eq!(updated.status, 200, "{}", updated.body);
        assert_eq!(updated.body["status"], expect);
        let code = code_for(&app, US_NUMBER).await;
        let after = v2(
            &app,
            "POST",
            &check_path(SERVICE),
            &[("To", US_NUMBER), ("Code", &code)],
        )
        .await;
        assert_twilio_error(&after, 404, 20404, status);
        let twice = v2(
            &app,
            "POST",
            &format!("{path}/{sid}"),
            &[("Status", status)],
        )
        .await;
        assert_twilio_error(&twice, 404, 20404, status);
    }
}

#[tokio::test]
async fn v2_five_wrong_checks_then_60202_with_retry_after() {
    let app = spawn_app_with(&v2_settings(&[])).await;
    v2(
        &app,
        "POST",
        &verifications(SERVICE),
        &[("To", US_NUMBER), ("Channel", "sms")],
    )
    .await;
    let code = code_for(&app, US_NUMBER).await;
    for i in 0..5 {
        let a = v2(
            &app,
            "POST",
            &check_path(SERVICE),
            &[("To", US_NUMBER), ("Code", &wrong(&code))],
        )
        .await;
        assert_eq!(
            (a.status, &a.body["status"]),
            (200, &json!("pending")),
            "{i}"
        );
    }
    let locked = v2(
        &app,
        "POST",
        &check_path(SERVICE),
        &[("To", US_NUMBER), ("Code", &code)],
    )
    .await;
    assert_twilio_error(&locked, 429, 60202, "sixth check");
    assert!(locked.headers.contains_key(RETRY_AFTER));
}

#[tokio::test]
async fn v2_needs_the_account_sid_and_an_api_key() {
    let app = spawn_app_with(&v2_settings(&[])).await;
    let path = format!("/v2/Services/{SERVICE}");
    for (case, auth) in [
        ("none", None),
        (
            "wrong account",
            Some(("AC0123456789abcdef0123456789abcdee", API_KEY)),
        ),
        ("wrong key", Some((ACCOUNT, "not-the-key-0123456789"))),
        ("empty", Some(("", ""))),
    ] {
        let a = v2_as(&app, auth, "GET", &path, &[]).await;
        assert_twilio_error(&a, 401, 20003, case);
        assert_eq!(
            a.headers[WWW_AUTHENTICATE], "Basic realm=\"verifyd\"",
            "{case}"
        );
        // Unknown paths too answer 401 first.
        let a = v2_as(&app, auth, "GET", "/v2/Services/x/Entities", &[]).await;
        assert_eq!(a.status, 401, "{case}");
    }
    let bearer = app
        .client
        .get(app.url(&path))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 401);
    let ok = v2(&app, "GET", &path, &[]).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body["friendly_name"], "verifyd");
    for unserved in [
        format!("/v2/Services/{SERVICE}/Entities"),
        format!("/v2/Services/{SERVICE}/Webhooks"),
        "/v2/Forms/form-push".to_owned(),
    ] {
        let a = v2_as(&app, Some((ACCOUNT, API_KEY)), "GET", &unserved, &[]).await;
        assert_twilio_error(&a, 404, 20404, &unserved);
    }
}

/// What a bad request sends: path, parameters, and the answer Twilio gives.
struct BadCase {
    what: &'static str,
    path: String,
    params: Vec<(&'static str, String)>,
    status: u16,
    code: u64,
    names: &'static str,
}

fn case(
    what: &'static str,
    path: &str,
    params: &[(&'static str, &str)],
    status: u16,
    code: u64,
    names: &'static str,
) -> BadCase {
    BadCase {
        what,
        path: path.to_owned(),
        params: params.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
        status,
        code,
        names,
    }
}

/// Every bad parameter: its Twilio code, the parameter named in the message, and proof that
/// nothing changed: no message in the dev outbox, no service created or changed, and no bucket
/// charged (the IP bucket of `DeviceIp` and the global bucket hold one send each, and that send
/// still succeeds after the whole table).
#[tokio::test]
async fn v2_bad_parameters_are_refused_with_twilios_code_and_change_nothing() {
    let app = spawn_app_with(&v2_settings(&[
        ("VERIFYD_RATE_LIMIT_IP_MAX", "1"),
        ("VERIFYD_RATE_LIMIT_GLOBAL_MAX", "1"),
    ]))
    .await;
    let create = verifications(SERVICE);
    let check = check_path(SERVICE);
    let service = format!("/v2/Services/{SERVICE}");
    let ve = "VE0123456789abcdef0123456789abcdef";
    let ip = ("DeviceIp", "203.0.113.7");
    let ok = [("To", US_NUMBER), ("Channel", "sms"), ip];
    let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&'static str, &'static str)> {
        let mut p: Vec<_> = ok
            .iter()
            .filter(|(k, _)| !extra.iter().any(|(e, _)| e == k))
            .copied()
            .collect();
        p.extend_from_slice(extra);
        p
    };
    let long_name = "x".repeat(31);
    let cases = vec![
        case(
            "To missing",
            &create,
            &[("Channel", "sms"), ip],
            400,
            60200,
            "To",
        ),
        case(
            "To not a number",
            &create,
            &with(&[("To", "12")]),
            400,
            60200,
            "To",
        ),
        case(
            "Channel missing",
            &create,
            &[("To", US_NUMBER), ip],
            400,
            60200,
            "Channel",
        ),
        case(
            "Channel unknown",
            &create,
            &with(&[("Channel", "pigeon")]),
            400,
            60200,
            "Channel",
        ),
        case(
            "Channel not enabled",
            &create,
            &with(&[("Channel", "call")]),
            400,
            60223,
            "",
        ),
        case(
            "country not allowed",
            &create,
            &with(&[("To", "+14165550123")]),
            403,
            60605,
            "",
        ),
        case(
            "premium rate number",
            &create,
            &with(&[("To", "+19005550100")]),
            403,
            60410,
            "",
        ),
        case(
            "Locale unknown",
            &create,
            &with(&[("Locale", "xx")]),
            400,
            60200,
            "Locale",
        ),
        case(
            "AppHash malformed",
            &create,
            &with(&[("AppHash", "short")]),
            400,
            60200,
            "AppHash",
        ),
        case(
            "CustomFriendlyName empty",
            &create,
            &with(&[("CustomFriendlyName", "")]),
            400,
            60200,
            "CustomFriendlyName",
        ),
        case(
            "CustomCode without custom_code_enabled",
            &create,
            &with(&[("CustomCode", "123456")]),
            403,
            60204,
            "CustomCode",
        ),
        case(
            "DeviceIp not an address",
            &create,
            &with(&[("DeviceIp", "not-an-ip")]),
            400,
            60200,
            "DeviceIp",
        ),
        case(
            "RateLimits names no rate limit",
            &create,
            &with(&[("RateLimits", r#"{"end_user_ip_address":"203.0.113.7"}"#)]),
            400,
            60200,
            "RateLimits",
        ),
        case(
            "RateLimits not JSON",
            &create,
            &with(&[("RateLimits", "nope")]),
            400,
            60200,
            "RateLimits",
        ),
        case(
            "TemplateSid malformed",
            &create,
            &with(&[("TemplateSid", "HJ1")]),
            400,
            60200,
            "TemplateSid",
        ),
        case(
            "RiskCheck unknown",
            &create,
            &with(&[("RiskCheck", "maybe")]),
            400,
            60200,
            "RiskCheck",
        ),
        case(
            "Tags not an object",
            &create,
            &with(&[("Tags", "[1]")]),
            400,
            60200,
            "Tags",
        ),
        case(
            "SendDigits not digits",
            &create,
            &with(&[("SendDigits", "abc")]),
            400,
            60200,
            "SendDigits",
        ),
        case(
            "EnableSnaClientToken not a boolean",
            &create,
            &with(&[("EnableSnaClientToken", "yes")]),
            400,
            60200,
            "EnableSnaClientToken",
        ),
        case(
            "unknown service",
            "/v2/Services/VA00000000000000000000000000000000/Verifications",
            &ok,
            404,
            20404,
            "VA00000000000000000000000000000000",
        ),
        case(
            "malformed service",
            "/v2/Services/nope/Verifications",
            &ok,
            404,
            20404,
            "nope",
        ),
        case(
            "check: Code missing",
            &check,
            &[("To", US_NUMBER)],
            400,
            60200,
            "Code",
        ),
        case(
            "check: Code not digits",
            &check,
            &[("To", US_NUMBER), ("Code", "12ab56")],
            400,
            60200,
            "Code",
        ),
        case(
            "check: Code too short",
            &check,
            &[("To", US_NUMBER), ("Code", "1234")],
            400,
            60200,
            "Code",
        ),
        case(
            "check: neither To nor VerificationSid",
            &check,
            &[("Code", "123456")],
            400,
            60200,
            "To",
        ),
        case(
            "check: VerificationSid malformed",
            &check,
            &[("VerificationSid", "VE1"), ("Code", "123456")],
            400,
            60200,
            "VerificationSid",
        ),
        case(
            "check: VerificationSid unknown",
            &check,
            &[("VerificationSid", ve), ("Code", "123456")],
            404,
            20404,
            ve,
        ),
        case(
            "update: Status missing",
            &format!("{create}/{ve}"),
            &[],
            400,
            60200,
            "Status",
        ),
        case(
            "update: Status not canceled/approved",
            &format!("{create}/{ve}"),
            &[("Status", "pending")],
            400,
            60200,
            "Status",
        ),
        case(
            "update: unknown verification",
            &format!("{create}/{ve}"),
            &[("Status", "canceled")],
            404,
            20404,
            ve,
        ),
        case(
            "service: FriendlyName missing",
            "/v2/Services",
            &[("CodeLength", "6")],
            400,
            60200,
            "FriendlyName",
        ),
        case(
            "service: FriendlyName too long",
            "/v2/Services",
            &[("FriendlyName", long_name.as_str())],
            400,
            60200,
            "FriendlyName",
        ),
        case(
            "service: CodeLength out of range",
            "/v2/Services",
            &[("FriendlyName", "Acme"), ("CodeLength", "3")],
            400,
            60200,
            "CodeLength",
        ),
        case(
            "service: Psd2Enabled not a boolean",
            "/v2/Services",
            &[("FriendlyName", "Acme"), ("Psd2Enabled", "yes")],
            400,
            60200,
            "Psd2Enabled",
        ),
        case(
            "service: DefaultTemplateSid malformed",
            "/v2/Services",
            &[("FriendlyName", "Acme"), ("DefaultTemplateSid", "HJ")],
            400,
            60200,
            "DefaultTemplateSid",
        ),
        case(
            "service: Push.ApnCredentialSid malformed",
            "/v2/Services",
            &[("FriendlyName", "Acme"), ("Push.ApnCredentialSid", "CR")],
            400,
            60200,
            "Push.ApnCredentialSid",
        ),
        case(
            "default service: CodeLength is VERIFYD_CODE_LENGTH",
            &service,
            &[("CodeLength", "8"), ("FriendlyName", "Changed")],
            400,
            60200,
            "CodeLength",
        ),
        case(
            "services: PageSize 0",
            "/v2/Services",
            &[],
            400,
            60200,
            "PageSize",
        ),
        case(
            "services: Page without PageToken",
            "/v2/Services",
            &[],
            400,
            60200,
            "PageToken",
        ),
    ];
    for c in &cases {
        let params: Vec<(&str, &str)> = c.params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (method, params) = match c.what {
            "services: PageSize 0" => ("GET", vec![("PageSize", "0")]),
            "services: Page without PageToken" => ("GET", vec![("Page", "1")]),
            _ => ("POST", params),
        };
        let a = v2(&app, method, &c.path, &params).await;
        assert_twilio_error(&a, c.status, c.code, c.what);
        assert!(
            a.body["message"].as_str().unwrap().contains(c.names),
            "{}: the message names {}: {}",
            c.what,
            c.names,
            a.body
        );
    }
    // Not a form, and too large.
    let json_body = app
        .client
        .post(app.url(&create))
        .basic_auth(ACCOUNT, Some(API_KEY))
        .json(&json!({"To": US_NUMBER, "Channel": "sms"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_body.status(), 400);
    let body: Value = json_body.json().await.unwrap();
    assert_eq!(body["code"], 60200);
    let huge = format!(
        "To=%2B14155552671&Channel=sms&Tags={}",
        "x".repeat(17 * 1024)
    );
    let too_large = app
        .client
        .post(app.url(&create))
        .basic_auth(ACCOUNT, Some(API_KEY))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(too_large.status(), 413);
    let body: Value = too_large.json().await.unwrap();
    assert_eq!(body["code"], 20413);

    // Nothing changed: no message, the default service as it was, no other service, and the
    // one-send IP and global buckets still have their send.
    assert!(
        app.outbox().await.is_empty(),
        "a refused request sent a message"
    );
    let services = v2(&app, "GET", "/v2/Services", &[]).await;
    assert_eq!(services.body["services"].as_array().unwrap().len(), 1);
    assert_eq!(services.body["services"][0]["friendly_name"], "verifyd");
    assert_eq!(services.body["services"][0]["code_length"], 6);
    let sent = v2(
        &app,
        "POST",
        &create,
        &[
            ("To", US_NUMBER),
            ("Channel", "sms"),
            ip,
            ("Foo", "ignored"),
        ],
    )
    .await;
    assert_eq!(sent.status, 201, "{}", sent.body);
    let refused = v2(
        &app,
        "POST",
        &create,
        &[("To", "+14155550100"), ("Channel", "sms"), ip],
    )
    .await;
    assert_twilio_error(&refused, 429, 20429, "the bucket's second send");
    assert!(refused.headers.contains_key(RETRY_AFTER));
}

#[tokio::test]
async fn v2_device_ip_keys_the_ip_bucket_and_the_backend_is_never_charged() {
    let app = spawn_app_with(&v2_settings(&[("VERIFYD_RATE_LIMIT_IP_MAX", "2")])).await;
    let create = verifications(SERVICE);
    let numbers = [
        "+14155550101",
        "+14155550102",
        "+14155550103",
        "+14155550104",
    ];
    // Without DeviceIp the IP bucket is not charged at all (the caller is the backend).
    for n in numbers {
        let a = v2(&app, "POST", &create, &[("To", n), ("Channel", "sms")]).await;
        assert_eq!(a.status, 201, "{n}: {}", a.body);
    }
    // With it, the end user's address is the key (IPv6 by /64).
    for (ip, other) in [
        ("203.0.113.7", "203.0.113.8"),
        ("2001:db8:1:2::1", "2001:db8:1:3::1"),
    ] {
        for (i, n) in numbers.iter().take(2).enumerate() {
            let a = v2(
                &app,
                "POST",
                &create,
                &[("To", n), ("Channel", "sms"), ("DeviceIp", ip)],
            )
            .await;
            assert_eq!(a.status, 201, "{ip} send {i}: {}", a.body);
        }
        let same = if ip.contains(':') {
            "2001:db8:1:2::ffff"
        } else {
            ip
        };
        let a = v2(
            &app,
            "POST",
            &create,
            &[("To", numbers[2]), ("Channel", "sms"), ("DeviceIp", same)],
        )
        .await;
        assert_twilio_error(&a, 429, 20429, ip);
        let a = v2(
            &app,
            "POST",
            &create,
            &[("To", numbers[2]), ("Channel", "sms"), ("DeviceIp", other)],
        )
        .await;
        assert_eq!(a.status, 201, "{other}: {}", a.body);
    }
}

#[tokio::test]
async fn v2_services_are_kept_listed_in_pages_and_keep_their_verifications_apart() {
    let app = spawn_app_with(&v2_settings(&[(
        "VERIFYD_PUBLIC_URL",
        "https://verifyd.example",
    )]))
    .await;
    let a = create_service(&app, &[("FriendlyName", "Acme"), ("CodeLength", "8")]).await;
    let b = create_service(&app, &[("FriendlyName", "Bolt")]).await;
    let c = create_service(&app, &[("FriendlyName", "Coil")]).await;

    let first = v2(&app, "GET", "/v2/Services", &[("PageSize", "2")]).await;
    let page: Vec<&str> = first.body["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["sid"].as_str().unwrap())
        .collect();
    assert_eq!(page, [SERVICE, a.as_str()]);
    let next = first.body["meta"]["next_page_url"].as_str().unwrap();
    assert!(
        next.starts_with("https://verifyd.example/v2/Services?"),
        "{next}"
    );
    assert_eq!(first.body["meta"]["key"], "services");
    let query = next.split_once('?').unwrap().1;
    let second = v2(&app, "GET", &format!("/v2/Services?{query}"), &[]).await;
    let page: Vec<&str> = second.body["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["sid"].as_str().unwrap())
        .collect();
    assert_eq!(page, [b.as_str(), c.as_str()]);
    assert!(second.body["meta"]["next_page_url"].is_null());
    assert_eq!(second.body["meta"]["page"], 1);

    // Update and delete.
    let updated = v2(
        &app,
        "POST",
        &format!("/v2/Services/{b}"),
        &[
            ("FriendlyName", "Bolt 2"),
            ("DoNotShareWarningEnabled", "true"),
        ],
    )
    .await;
    assert_eq!(updated.status, 200);
    assert_eq!(updated.body["friendly_name"], "Bolt 2");
    assert_eq!(updated.body["do_not_share_warning_enabled"], true);
    assert_eq!(
        updated.body["url"],
        format!("https://verifyd.example/v2/Services/{b}")
    );
    let deleted = v2(&app, "DELETE", &format!("/v2/Services/{c}"), &[]).await;
    assert_eq!(deleted.status, 204);
    let gone = v2(&app, "GET", &format!("/v2/Services/{c}"), &[]).await;
    assert_twilio_error(&gone, 404, 20404, "deleted service");
    let not_default = v2(&app, "DELETE", &format!("/v2/Services/{SERVICE}"), &[]).await;
    assert_twilio_error(&not_default, 400, 60200, "default service");

    // Service A: 8 digits, its name in the message; its verifications are its own.
    let sent = v2(
        &app,
        "POST",
        &verifications(&a),
        &[("To", US_NUMBER), ("Channel", "sms")],
    )
    .await;
    assert_eq!(sent.status, 201);
    let code = code_for(&app, US_NUMBER).await;
    assert_eq!(code.len(), 8);
    let message = app.outbox().await.last().unwrap()["body"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.starts_with("Your Acme verification code is: "),
        "{message}"
    );
    // Not the default service's, nor /mfa's.
    let elsewhere = v2(
        &app,
        "POST",
        &check_path(SERVICE),
        &[("To", US_NUMBER), ("Code", "123456")],
    )
    .await;
    assert_twilio_error(&elsewhere, 404, 20404, "default service");
    assert_error(
        app.verify(US_NUMBER, "123456").await,
        404,
        "verification_not_found",
    )
    .await;
    let other = v2(
        &app,
        "GET",
        &format!(
            "{}/{}",
            verifications(&b),
            sent.body["sid"].as_str().unwrap()
        ),
        &[],
    )
    .await;
    assert_twilio_error(&other, 404, 20404, "another service's verification");
    let ok = v2(
        &app,
        "POST",
        &check_path(&a),
        &[("To", US_NUMBER), ("Code", &code)],
    )
    .await;
    assert_eq!(ok.body["status"], "approved");
    // B's message carries the warning.
    v2(
        &app,
        "POST",
        &verifications(&b),
        &[("To", US_NUMBER), ("Channel", "sms")],
    )
    .await;
    let message = app.outbox().await.last().unwrap()["body"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.starts_with("Your Bolt 2 verification code is: "),
        "{message}"
    );
    assert!(message.contains("Don't share this code"), "{message}");
}

#[tokio::test]
async fn v2_and_mfa_share_the_default_service() {
    let app = spawn_app_with(&v2_settings(&[])).await;
    let sent = assert_ok(app.send_code(US_NUMBER).await, "Verification code sent!").await;
    let code = app.last_code(US_NUMBER).await;
    let fetched = v2(
        &app,
        "GET",
        &format!(
            "{}/{}",
            verifications(SERVICE),
            sent["sid"].as_str().unwrap()
        ),
        &[],
    )
    .await;
    assert_eq!(fetched.status, 200);
    let checked = v2(
        &app,
        "POST",
        &check_path(SERVICE),
        &[("To", US_NUMBER), ("Code", &code)],
    )
    .await;
    assert_eq!(checked.body["status"], "approved");
    assert_error(
        app.verify(US_NUMBER, &code).await,
        404,
        "verification_not_found",
    )
    .await;
}

#[tokio::test]
async fn v2_custom_codes_psd2_and_landlines_follow_the_service() {
    let app = spawn_app_with(&v2_settings(&[("VERIFYD_VALID_COUNTRY_CODES", "US,GB")])).await;
    let custom = create_service(
        &app,
        &[("FriendlyName", "Custom"), ("CustomCodeEnabled", "true")],
    )
    .await;
    let sent = v2(
        &app,
        "POST",
        &verifications(&custom),
        &[
            ("To", US_NUMBER),
            ("Channel", "sms"),
            ("CustomCode", "8675309"),
            ("CustomFriendlyName", "Shop"),
            ("AppHash", "FA+9qCX9VSu"),
        ],
    )
    .await;
    assert_eq!(sent.status, 201, "{}", sent.body);
    let message = app.outbox().await.last().unwrap()["body"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.starts_with("Your Shop verification code is: 8675309"),
        "{message}"
    );
    assert!(message.ends_with("\n\nFA+9qCX9VSu"), "{message}");
    let ok = v2(
        &app,
        "POST",
        &check_path(&custom),
        &[("To", US_NUMBER), ("Code", "8675309")],
    )
    .await;
    assert_eq!(ok.body["status"], "approved");

    let psd2 = create_service(&app, &[("FriendlyName", "Pay"), ("Psd2Enabled", "true")]).await;
    let missing = v2(
        &app,
        "POST",
        &verifications(&psd2),
        &[("To", US_NUMBER), ("Channel", "sms"), ("Amount", "€10")],
    )
    .await;
    assert_twilio_error(&missing, 400, 60206, "Payee missing");
    assert_eq!(app.outbox().await.len(), 1, "nothing sent");
    let sent = v2(
        &app,
        "POST",
        &verifications(&psd2),
        &[
            ("To", US_NUMBER),
            ("Channel", "sms"),
            ("Amount", "€10"),
            ("Payee", "Acme"),
        ],
    )
    .await;
    assert_eq!(sent.status, 201);
    assert_eq!(
        (&sent.body["amount"], &sent.body["payee"]),
        (&json!("€10"), &json!("Acme"))
    );
    let code = code_for(&app, US_NUMBER).await;
    let no_binding = v2(
        &app,
        "POST",
        &check_path(&psd2),
        &[("To", US_NUMBER), ("Code", &code)],
    )
    .await;
    assert_twilio_error(&no_binding, 400, 60206, "check without Amount");
    let other_amount = v2(
        &app,
        "POST",
        &check_path(&psd2),
        &[
            ("To", US_NUMBER),
            ("Code", &code),
            ("Amount", "€1000"),
            ("Payee", "Acme"),
        ],
    )
    .await;
    assert_eq!(
        other_amount.body["status"], "pending",
        "another amount is a wrong code"
    );
    let other_payee = v2(
        &app,
        "POST",
        &check_path(&psd2),
        &[
            ("To", US_NUMBER),
            ("Code", &code),
            ("Amount", "€10"),
            ("Payee", "Mallory"),
        ],
    )
    .await;
    assert_eq!(
        other_payee.body["status"], "pending",
        "another payee is a wrong code"
    );
    let right = v2(
        &app,
        "POST",
        &check_path(&psd2),
        &[
            ("To", US_NUMBER),
            ("Code", &code),
            ("Amount", "€10"),
            ("Payee", "Acme"),
        ],
    )
    .await;
    assert_eq!(right.body["status"], "approved");
    assert_eq!(right.body["amount"], "€10");

    let landlines = create_service(
        &app,
        &[("FriendlyName", "Land"), ("SkipSmsToLandlines", "true")],
    )
    .await;
    let refused = v2(
        &app,
        "POST",
        &verifications(&landlines),
        &[("To", "+442079460000"), ("Channel", "sms")],
    )
    .await;
    assert_twilio_error(&refused, 400, 60205, "a GB landline");
    let mobile = v2(
        &app,
        "POST",
        &verifications(&landlines),
        &[("To", "+447400123456"), ("Channel", "sms")],
    )
    .await;
    assert_eq!(mobile.status, 201);
}

#[tokio::test]
async fn v2_generated_account_and_service_sids_are_kept_across_restarts() {
    let app = spawn_app().await;
    let (dir, clock) = app.stop().await;
    let conn = rusqlite::Connection::open(dir.path().join("verifyd.db")).unwrap();
    let value = |name: &str| -> String {
        conn.query_row(
            "SELECT value FROM twilio_identity WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
        .unwrap()
    };
    let (account, service) = (value("account_sid"), value("default_service_sid"));
    drop(conn);
    assert!(
        account.starts_with("AC") && account.len() == 34,
        "{account}"
    );
    let app = spawn_app_in(dir, &[], clock).await;
    let a = v2_as(
        &app,
        Some((&account, API_KEY)),
        "GET",
        &format!("/v2/Services/{service}"),
        &[],
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["account_sid"], account.as_str());
}

#[tokio::test]
async fn v2_services_on_postgres_are_in_force_on_every_replica_at_once() {
    let Some(db) = postgres_or_skip().await else {
        return;
    };
    let url = db.url();
    let settings = v2_settings(&[("VERIFYD_DATABASE_URL", &url)]);
    let one = spawn_app_with(&settings).await;
    let two = spawn_app_with(&settings).await;
    let sid = create_service(
        &one,
        &[("FriendlyName", "Shared"), ("CustomCodeEnabled", "true")],
    )
    .await;
    let seen = v2(&two, "GET", &format!("/v2/Services/{sid}"), &[]).await;
    assert_eq!(seen.status, 200);
    let sent = v2(
        &two,
        "POST",
        &verifications(&sid),
        &[
            ("To", US_NUMBER),
            ("Channel", "sms"),
            ("CustomCode", "24680"),
        ],
    )
    .await;
    assert_eq!(sent.status, 201, "{}", sent.body);
    let ok = v2(
        &one,
        "POST",
        &check_path(&sid),
        &[("To", US_NUMBER), ("Code", "24680")],
    )
    .await;
    assert_eq!(ok.body["status"], "approved");
    let list = v2(&two, "GET", "/v2/Services", &[]).await;
    assert_eq!(list.body["services"].as_array().unwrap().len(), 2);
    // A safe-list entry added on one is in force on the other at once.
    let canada = "+14165550123";
    let refused = v2(
        &one,
        "POST",
        &verifications(SERVICE),
        &[("To", canada), ("Channel", "sms")],
    )
    .await;
    assert_twilio_error(&refused, 403, 60605, "before");
    let added = v2(
        &two,
        "POST",
        "/v2/SafeList/Numbers",
        &[("PhoneNumber", canada)],
    )
    .await;
    assert_eq!(added.status, 201);
    let sent = v2(
        &one,
        "POST",
        &verifications(SERVICE),
        &[("To", canada), ("Channel", "sms")],
    )
    .await;
    assert_eq!(sent.status, 201, "{}", sent.body);
    let removed = v2(
        &one,
        "DELETE",
        &format!("/v2/SafeList/Numbers/{canada}"),
        &[],
    )
    .await;
    assert_eq!(removed.status, 204);
    let refused = v2(
        &two,
        "POST",
        &verifications(SERVICE),
        &[("To", canada), ("Channel", "sms")],
    )
    .await;
    assert_twilio_error(&refused, 403, 60605, "after");
    // A rate limit and its bucket created on one are in force on the other at once.
    let limits = format!("/v2/Services/{SERVICE}/RateLimits");
    let rk = v2(
        &one,
        "POST",
        &limits,
        &[("UniqueName", "end_user_ip_address")],
    )
    .await
    .body["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let b = v2(
        &one,
        "POST",
        &format!("{limits}/{rk}/Buckets"),
        &[("Max", "1"), ("Interval", "60")],
    )
    .await;
    assert_eq!(b.status, 201);
    let user = r#"{"end_user_ip_address": "203.0.113.7"}"#;
    let first = v2(
        &two,
        "POST",
        &verifications(SERVICE),
        &[
            ("To", "+14155550101"),
            ("Channel", "sms"),
            ("RateLimits", user),
        ],
    )
    .await;
    assert_eq!(first.status, 201, "{}", first.body);
    let second = v2(
        &two,
        "POST",
        &verifications(SERVICE),
        &[
            ("To", "+14155550102"),
            ("Channel", "sms"),
            ("RateLimits", user),
        ],
    )
    .await;
    assert_twilio_error(&second, 429, 20429, "the bucket made on the other replica");
}

#[tokio::test]
async fn v2_attempts_list_every_send_of_every_face_with_conversion_filters_and_summary() {
    let app = spawn_app_with(&v2_settings(&[])).await;
    // /mfa, converted; a /v2 service, unconverted; two refusals, which are not attempts.
    let mfa = assert_ok(app.send_code(US_NUMBER).await, "Verification code sent!").await;
    let code = app.last_code(US_NUMBER).await;
    assert_ok(
        app.verify(US_NUMBER, &code).await,
        "Verification code is correct!",
    )
    .await;
    let other = create_service(&app, &[("FriendlyName", "Other")]).await;
    let sent = v2(
        &app,
        "POST",
        &verifications(&other),
        &[("To", "+14155550101"), ("Channel", "sms")],
    )
    .await;
    assert_eq!(sent.status, 201);
    let refused = v2(
        &app,
        "POST",
        &verifications(&other),
        &[("To", "+14165550123"), ("Channel", "sms")],
    )
    .await;
    assert_eq!(refused.status, 403);
    assert_error(
        app.send_code("+14165550123").await,
        403,
        "country_not_allowed",
    )
    .await;

    let all = v2(&app, "GET", "/v2/Attempts", &[]).await;
    assert_eq!(all.status, 200, "{}", all.body);
    let attempts = all.body["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{}", all.body);
    let first = &attempts[0];
    assert_eq!(first["verification_sid"], mfa["sid"]);
    assert_eq!(first["sid"], mfa["sendCodeAttempts"][0]["attempt_sid"]);
    assert_eq!(first["service_sid"], SERVICE);
    assert_eq!(first["conversion_status"], "converted");
    assert_eq!(first["channel_data"]["to"], US_NUMBER);
    assert_eq!(first["channel_data"]["country"], "US");
    assert_eq!(attempts[1]["service_sid"], other.as_str());
    assert_eq!(attempts[1]["conversion_status"], "unconverted");
    assert_eq!(attempts[1]["verification_sid"], sent.body["sid"]);

    let count = |a: &Answer| a.body["attempts"].as_array().unwrap().len();
    let tomorrow = "2099-01-01T00:00:00Z";
    for (filter, want) in [
        (vec![("VerifyServiceSid", other.as_str())], 1),
        (vec![("VerifyServiceSid", SERVICE)], 1),
        (vec![("Status", "converted")], 1),
        (vec![("Status", "unconverted")], 1),
        (vec![("ChannelData.To", US_NUMBER)], 1),
        (vec![("Country", "US")], 2),
        (vec![("Country", "CA")], 0),
        (vec![("Channel", "sms")], 2),
        (vec![("Channel", "call")], 0),
        (vec![("DateCreatedAfter", tomorrow)], 0),
        (vec![("DateCreatedBefore", tomorrow)], 2),
        (
            vec![("VerificationSid", sent.body["sid"].as_str().unwrap())],
            1,
        ),
    ] {
        let a = v2(&app, "GET", "/v2/Attempts", &filter).await;
        assert_eq!(count(&a), want, "{filter:?}: {}", a.body);
    }
    // Paging, one per page.
    let page = v2(&app, "GET", "/v2/Attempts", &[("PageSize", "1")]).await;
    assert_eq!(count(&page), 1);
    let next = page.body["meta"]["next_page_url"].as_str().unwrap();
    let rest = v2(
        &app,
        "GET",
        &format!("/v2/Attempts?{}", next.split_once('?').unwrap().1),
        &[],
    )
    .await;
    assert_eq!(rest.body["attempts"][0]["sid"], attempts[1]["sid"]);
    assert!(rest.body["meta"]["next_page_url"].is_null());

    let one = v2(
        &app,
        "GET",
        &format!("/v2/Attempts/{}", first["sid"].as_str().unwrap()),
        &[],
    )
    .await;
    assert_eq!(one.status, 200);
    assert_eq!(one.body["sid"], first["sid"]);
    let unknown = v2(
        &app,
        "GET",
        "/v2/Attempts/VL0123456789abcdef0123456789abcdef",
        &[],
    )
    .await;
    assert_twilio_error(&unknown, 404, 20404, "unknown attempt");

    let summary = v2(&app, "GET", "/v2/Attempts/Summary", &[]).await;
    assert_eq!(summary.status, 200, "{}", summary.body);
    assert_eq!(
        (
            &summary.body["total_attempts"],
            &summary.body["total_converted"],
            &summary.body["total_unconverted"],
            &summary.body["conversion_rate_percentage"]
        ),
        (&json!(2), &json!(1), &json!(1), &json!("50"))
    );
    for (filter, want) in [
        (vec![("DestinationPrefix", "+1")], 2),
        (vec![("DestinationPrefix", "+1415")], 2),
        (vec![("DestinationPrefix", "+44")], 0),
        (vec![("VerifyServiceSid", other.as_str())], 1),
    ] {
        let a = v2(&app, "GET", "/v2/Attempts/Summary", &filter).await;
        assert_eq!(a.body["total_attempts"], want, "{filter:?}");
    }
    for (path, param, value) in [
        ("/v2/Attempts", "Status", "bogus"),
        ("/v2/Attempts", "DateCreatedAfter", "yesterday"),
        ("/v2/Attempts", "Country", "USA"),
        ("/v2/Attempts", "Channel", "pigeon"),
        ("/v2/Attempts", "VerifyServiceSid", "VA1"),
        ("/v2/Attempts", "ChannelData.To", "12"),
        ("/v2/Attempts/Summary", "DestinationPrefix", "1"),
    ] {
        let a = v2(&app, "GET", path, &[(param, value)]).await;
        assert_twilio_error(&a, 400, 60200, param);
        assert!(
            a.body["message"].as_str().unwrap().contains(param),
            "{}",
            a.body
        );
    }
}

#[tokio::test]
async fn v2_the_attempt_log_keeps_numbers_only_as_digest_and_ciphertext() {
    let app = spawn_app_with(&v2_settings(&[])).await;
    assert_ok(app.send_code(US_NUMBER).await, "Verification code sent!").await;
    let listed = v2(&app, "GET", "/v2/Attempts", &[]).await;
    assert_eq!(listed.body["attempts"].as_array().unwrap().len(), 1);
    let (dir, _) = app.stop().await;
    let conn = rusqlite::Connection::open(dir.path().join("verifyd.db")).unwrap();
    type Row = (Option<Vec<u8>>, Option<Vec<u8>>, Option<String>);
    let rows: Vec<Row> = conn
        .prepare("SELECT phone_lookup, phone_sealed, prefix FROM verification_attempts")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len(), 1);
    let (lookup, sealed, prefix) = &rows[0];
    let digits = &US_NUMBER.as_bytes()[1..];
    for blob in [lookup.as_ref().unwrap(), sealed.as_ref().unwrap()] {
        assert!(
            !blob.windows(digits.len()).any(|w| w == digits),
            "the number in clear"
        );
    }
    assert_eq!(prefix.as_deref(), Some("+1415"));
}

#[tokio::test]
async fn v2_the_safe_list_exempts_from_geo_types_and_shared_buckets_but_not_per_number_limits() {
    let app = spawn_app_with(&v2_settings(&[
        ("VERIFYD_RATE_LIMIT_GLOBAL_MAX", "1"),
        ("VERIFYD_RATE_LIMIT_PHONE_MAX", "2"),
        ("VERIFYD_RATE_LIMIT_IP_MAX", "1"),
    ]))
    .await;
    let create = verifications(SERVICE);
    let canada = "+14165550123";
    let premium = "+19005550100";
    let refused = v2(&app, "POST", &create, &[("To", canada), ("Channel", "sms")]).await;
    assert_twilio_error(&refused, 403, 60605, "before the safe list");

    for (number, what) in [(canada, "country"), (premium, "number type")] {
        let added = v2(
            &app,
            "POST",
            "/v2/SafeList/Numbers",
            &[("PhoneNumber", number)],
        )
        .await;
        assert_eq!(added.status, 201, "{what}: {}", added.body);
        assert_eq!(added.body["phone_number"], number);
        assert!(added.body["sid"].as_str().unwrap().starts_with("GN"));
        let again = v2(
            &app,
            "POST",
            "/v2/SafeList/Numbers",
            &[("PhoneNumber", number)],
        )
        .await;
        assert_eq!(
            again.body["sid"], added.body["sid"],
            "adding twice keeps one entry"
        );
        let fetched = v2(&app, "GET", &format!("/v2/SafeList/Numbers/{number}"), &[]).await;
        assert_eq!(
            (fetched.status, &fetched.body["sid"]),
            (200, &added.body["sid"])
        );
    }
    // Exempt from the country and type rules and from the global bucket (max 1, used here by a
    // number that is not listed, so the next one is refused)...
    let plain = v2(
        &app,
        "POST",
        &create,
        &[("To", US_NUMBER), ("Channel", "sms")],
    )
    .await;
    assert_eq!(plain.status, 201);
    let full = v2(
        &app,
        "POST",
        &create,
        &[("To", "+14155550101"), ("Channel", "sms")],
    )
    .await;
    assert_twilio_error(&full, 429, 20429, "the global bucket");
    for number in [canada, premium] {
        let a = v2(&app, "POST", &create, &[("To", number), ("Channel", "sms")]).await;
        assert_eq!(a.status, 201, "{number}: {}", a.body);
    }
    // ... on /mfa too ...
    assert_ok(app.send_code(canada).await, "Verification code sent!").await;
    // ... but never from the per-number bucket (2 per window: both used) or the IP bucket.
    let third = v2(&app, "POST", &create, &[("To", canada), ("Channel", "sms")]).await;
    assert_twilio_error(&third, 429, 20429, "the per-number bucket");
    let ip = [("Channel", "sms"), ("DeviceIp", "203.0.113.9")];
    let first = v2(
        &app,
        "POST",
        &create,
        &[&[("To", premium)][..], &ip].concat(),
    )
    .await;
    assert_eq!(first.status, 201, "{}", first.body);
    let unlisted = v2(
        &app,
        "POST",
        "/v2/SafeList/Numbers",
        &[("PhoneNumber", "+14155550102")],
    )
    .await;
    assert_eq!(unlisted.status, 201);
    let second = v2(
        &app,
        "POST",
        &create,
        &[&[("To", "+14155550102")][..], &ip].concat(),
    )
    .await;
    assert_twilio_error(&second, 429, 20429, "the IP bucket");

    // Removed: the rules apply again.
    let removed = v2(
        &app,
        "DELETE",
        &format!("/v2/SafeList/Numbers/{canada}"),
        &[],
    )
    .await;
    assert_eq!(removed.status, 204);
    let gone = v2(&app, "GET", &format!("/v2/SafeList/Numbers/{canada}"), &[]).await;
    assert_twilio_error(&gone, 404, 20404, "removed");
    let twice = v2(
        &app,
        "DELETE",
        &format!("/v2/SafeList/Numbers/{canada}"),
        &[],
    )
    .await;
    assert_twilio_error(&twice, 404, 20404, "removed twice");
    assert_error(app.send_code(canada).await, 403, "country_not_allowed").await;

    for (params, what) in [
        (vec![], "PhoneNumber missing"),
        (vec![("PhoneNumber", "12")], "PhoneNumber not a number"),
    ] {
        let a = v2(&app, "POST", "/v2/SafeList/Numbers", &params).await;
        assert_twilio_error(&a, 400, 60200, what);
        assert!(a.body["message"].as_str().unwrap().contains("PhoneNumber"));
    }
    let bad = v2(&app, "GET", "/v2/SafeList/Numbers/not-a-number", &[]).await;
    assert_twilio_error(&bad, 404, 20404, "a malformed number");
}

#[tokio::test]
async fn v2_rate_limits_and_buckets_keep_twilios_rules() {
    let app = spawn_app_with(&v2_settings(&[])).await;
    let limits = format!("/v2/Services/{SERVICE}/RateLimits");
    let created = v2(
        &app,
        "POST",
        &limits,
        &[
            ("UniqueName", "end_user_ip_address"),
            ("Description", "per end user"),
        ],
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let rk = created.body["sid"].as_str().unwrap().to_owned();
    assert!(rk.starts_with("RK"));
    assert_eq!(
        created.body["links"]["buckets"],
        app.url(&format!("{limits}/{rk}/Buckets"))
    );
    let duplicate = v2(
        &app,
        "POST",
        &limits,
        &[("UniqueName", "end_user_ip_address")],
    )
    .await;
    assert_twilio_error(&duplicate, 409, 60208, "a duplicate unique name");
    for (name, what) in [("bad name!", "not [A-Za-z0-9_]"), ("", "empty")] {
        let a = v2(&app, "POST", &limits, &[("UniqueName", name)]).await;
        assert_twilio_error(&a, 400, 60200, what);
        assert!(a.body["message"].as_str().unwrap().contains("UniqueName"));
    }
    let other = v2(&app, "POST", &limits, &[("UniqueName", "phone_prefix")]).await;
    assert_eq!(other.status, 201);

    let buckets = format!("{limits}/{rk}/Buckets");
    let mut sids = Vec::new();
    for interval in ["60", "120", "300", "600", "3600"] {
        let b = v2(
            &app,
            "POST",
            &buckets,
            &[("Max", "4"), ("Interval", interval)],
        )
        .await;
        assert_eq!(b.status, 201, "{}", b.body);
        assert_eq!(b.body["rate_limit_sid"], rk.as_str());
        sids.push(b.body["sid"].as_str().unwrap().to_owned());
    }
    let sixth = v2(
        &app,
        "POST",
        &buckets,
        &[("Max", "4"), ("Interval", "7200")],
    )
    .await;
    assert_twilio_error(&sixth, 400, 60210, "a sixth bucket");
    let deleted = v2(&app, "DELETE", &format!("{buckets}/{}", sids[4]), &[]).await;
    assert_eq!(deleted.status, 204);
    let same = v2(&app, "POST", &buckets, &[("Max", "4"), ("Interval", "60")]).await;
    assert_twilio_error(&same, 400, 60211, "a second bucket with one interval");
    for (params, name) in [
        (vec![("Interval", "60")], "Max"),
        (vec![("Max", "0"), ("Interval", "60")], "Max"),
        (vec![("Max", "4"), ("Interval", "x")], "Interval"),
    ] {
        let a = v2(&app, "POST", &buckets, &params).await;
        assert_twilio_error(&a, 400, 60200, name);
    }
    // Update, fetch, paging.
    let updated = v2(
        &app,
        "POST",
        &format!("{buckets}/{}", sids[3]),
        &[("Max", "9")],
    )
    .await;
    assert_eq!(
        (
            updated.status,
            &updated.body["max"],
            &updated.body["interval"]
        ),
        (200, &json!(9), &json!(600))
    );
    let clash = v2(
        &app,
        "POST",
        &format!("{buckets}/{}", sids[3]),
        &[("Interval", "60")],
    )
    .await;
    assert_twilio_error(
        &clash,
        400,
        60211,
        "an update onto another bucket's interval",
    );
    let page = v2(&app, "GET", &buckets, &[("PageSize", "2")]).await;
    assert_eq!(page.body["buckets"].as_array().unwrap().len(), 2);
    assert_eq!(page.body["meta"]["key"], "buckets");
    let next = page.body["meta"]["next_page_url"].as_str().unwrap();
    let rest = v2(
        &app,
        "GET",
        &format!("{buckets}?{}", next.split_once('?').unwrap().1),
        &[],
    )
    .await;
    assert_eq!(rest.body["buckets"].as_array().unwrap().len(), 2);
    let listed = v2(&app, "GET", &limits, &[("PageSize", "1")]).await;
    assert_eq!(listed.body["rate_limits"][0]["sid"], rk.as_str());
    assert!(listed.body["meta"]["next_page_url"].is_string());
    let described = v2(
        &app,
        "POST",
        &format!("{limits}/{rk}"),
        &[("Description", "changed")],
    )
    .await;
    assert_eq!(described.body["description"], "changed");
    assert_eq!(described.body["unique_name"], "end_user_ip_address");

    // Another service does not see them; a deleted rate limit takes its buckets.
    let elsewhere = create_service(&app, &[("FriendlyName", "Elsewhere")]).await;
    let hidden = v2(
        &app,
        "GET",
        &format!("/v2/Services/{elsewhere}/RateLimits/{rk}"),
        &[],
    )
    .await;
    assert_twilio_error(&hidden, 404, 20404, "another service's rate limit");
    let gone = v2(&app, "DELETE", &format!("{limits}/{rk}"), &[]).await;
    assert_eq!(gone.status, 204);
    let no_buckets = v2(&app, "GET", &format!("{buckets}/{}", sids[0]), &[]).await;
    assert_twilio_error(&no_buckets, 404, 20404, "a bucket of a deleted rate limit");
}

/// The seed's setup, unchanged: a rate limit `end_user_ip_address` with one bucket of 4 per
/// 60 s, the client's address passed on every create. Charged with verifyd's own buckets, all or
/// nothing: a request the rate limit refuses charges no other bucket.
#[tokio::test]
async fn v2_the_rate_limits_parameter_charges_the_services_buckets_all_or_nothing() {
    let app = spawn_app_with(&v2_settings(&[("VERIFYD_RATE_LIMIT_GLOBAL_MAX", "6")])).await;
    let limits = format!("/v2/Services/{SERVICE}/RateLimits");
    let rk = v2(
        &app,
        "POST",
        &limits,
        &[("UniqueName", "end_user_ip_address")],
    )
    .await
    .body["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let b = v2(
        &app,
        "POST",
        &format!("{limits}/{rk}/Buckets"),
        &[("Max", "4"), ("Interval", "60")],
    )
    .await;
    assert_eq!(b.status, 201);
    let create = verifications(SERVICE);
    let from = |ip: &str| format!(r#"{{"end_user_ip_address": "{ip}"}}"#);
    let user = from("203.0.113.7");
    for i in 0..4 {
        let n = format!("+1415555010{i}");
        let a = v2(
            &app,
            "POST",
            &create,
            &[("To", &n), ("Channel", "sms"), ("RateLimits", &user)],
        )
        .await;
        assert_eq!(a.status, 201, "send {i}: {}", a.body);
    }
    let fifth = v2(
        &app,
        "POST",
        &create,
        &[
            ("To", "+14155550105"),
            ("Channel", "sms"),
            ("RateLimits", &user),
        ],
    )
    .await;
    assert_twilio_error(&fifth, 429, 20429, "the fifth send from one end user");
    assert!(fifth.headers.contains_key(RETRY_AFTER));
    assert_eq!(app.outbox().await.len(), 4);
    // The refused send charged nothing: the global bucket (6) still has two sends.
    let other = from("203.0.113.8");
    for n in ["+14155550106", "+14155550107"] {
        let a = v2(
            &app,
            "POST",
            &create,
            &[("To", n), ("Channel", "sms"), ("RateLimits", &other)],
        )
        .await;
        assert_eq!(a.status, 201, "{n}: {}", a.body);
    }
    let global = v2(
        &app,
        "POST",
        &create,
        &[
            ("To", "+14155550108"),
            ("Channel", "sms"),
            ("RateLimits", &from("203.0.113.9")),
        ],
    )
    .await;
    assert_twilio_error(&global, 429, 20429, "the global bucket");
    // A name the service has no rate limit by; another service's rate limits are its own.
    let unknown = v2(
        &app,
        "POST",
        &create,
        &[
            ("To", US_NUMBER),
            ("Channel", "sms"),
            ("RateLimits", r#"{"nope": "x"}"#),
        ],
    )
    .await;
    assert_twilio_error(&unknown, 400, 60200, "an unknown rate limit");
    let elsewhere = create_service(&app, &[("FriendlyName", "Elsewhere")]).await;
    let a = v2(
        &app,
        "POST",
        &verifications(&elsewhere),
        &[("To", US_NUMBER), ("Channel", "sms"), ("RateLimits", &user)],
    )
    .await;
    assert_twilio_error(&a, 400, 60200, "another service's rate limit");
}
