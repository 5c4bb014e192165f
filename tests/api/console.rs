//! The operator console through the real server: every page's status with and without a
//! session, login and logout, the cookie's flags, CSRF refusals, forged and expired cookies,
//! bad input (unknown sid, filters out of range), masked numbers, no code on any page but the
//! dev outbox, and the overview's figures (SQLite and PostgreSQL).

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::json;

use verifyd::clock::Clock;

use crate::helpers::{API_KEY, TestApp, spawn_app_with, wrong};

/// The send buckets that would stop a test's traffic from one address turned off.
const OPEN: &[(&str, &str)] = &[
    ("VERIFYD_RATE_LIMIT_IP_MAX", "0"),
    ("VERIFYD_RATE_LIMIT_PREFIX_MAX", "0"),
];

async fn spawn_app() -> TestApp {
    spawn_app_with(OPEN).await
}

/// [`spawn_app`] with more settings.
async fn spawn_open(more: &[(&str, &str)]) -> TestApp {
    let all: Vec<(&str, &str)> = OPEN.iter().chain(more).copied().collect();
    spawn_app_with(&all).await
}

/// A client that shows redirects instead of following them.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// What a login answered: the status, the raw `Set-Cookie` and the cookie pair to send back.
struct Login {
    status: StatusCode,
    set_cookie: String,
    cookie: String,
    location: String,
}

async fn login_with(app: &TestApp, key: &str) -> Login {
    let response = browser()
        .post(app.url("/console/login"))
        .form(&[("key", key)])
        .send()
        .await
        .expect("login");
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let set_cookie = header(SET_COOKIE);
    let location = header(LOCATION);
    Login {
        status: response.status(),
        cookie: set_cookie.split(';').next().unwrap_or("").to_owned(),
        set_cookie,
        location,
    }
}

/// Logs in with the test key and returns the cookie pair.
pub(crate) async fn session(app: &TestApp) -> String {
    let login = login_with(app, API_KEY).await;
    assert_eq!(login.status, StatusCode::SEE_OTHER, "login answers 303");
    assert_eq!(login.location, "/console");
    login.cookie
}

/// GET `path` with `cookie` (none: no session): status and body.
pub(crate) async fn page(app: &TestApp, path: &str, cookie: Option<&str>) -> (StatusCode, String) {
    let mut request = browser().get(app.url(path));
    if let Some(c) = cookie {
        request = request.header(COOKIE, c);
    }
    let response = request.send().await.expect("page");
    let status = response.status();
    (status, response.text().await.expect("body"))
}

/// POST a form to `path` with `cookie`.
pub(crate) async fn post_form(
    app: &TestApp,
    path: &str,
    cookie: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    browser()
        .post(app.url(path))
        .header(COOKIE, cookie)
        .form(fields)
        .send()
        .await
        .expect("form post")
}

/// The CSRF token in a page's forms.
pub(crate) fn csrf_in(body: &str) -> String {
    let at = body.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    body[at..at + 64].to_owned()
}

/// The text of the element with `id`.
pub(crate) fn figure(body: &str, id: &str) -> String {
    let start = body
        .find(&format!("id=\"{id}\">"))
        .unwrap_or_else(|| panic!("no #{id} in the page"))
        + id.len()
        + 6;
    body[start..].split('<').next().unwrap_or("").to_owned()
}

/// Sends to three numbers, approves one, and makes one refusal (a country off the allowlist).
async fn traffic(app: &TestApp) -> (String, Vec<String>) {
    let numbers = ["+14155552671", "+14155552672", "+12125550143"];
    let mut codes = Vec::new();
    for n in numbers {
        codes.push(app.send_and_read_code(n).await);
    }
    let wrong_answer = app.verify(numbers[0], &wrong(&codes[0])).await;
    assert_eq!(wrong_answer.status(), StatusCode::BAD_REQUEST);
    let approved = app.verify(numbers[0], &codes[0]).await;
    assert_eq!(approved.status(), StatusCode::OK);
    let body: serde_json::Value = approved.json().await.expect("json");
    let sid = body["data"]["sid"].as_str().expect("sid").to_owned();
    let refused = app.send_code("+447911123456").await;
    assert_eq!(
        refused.status(),
        StatusCode::FORBIDDEN,
        "GG is off the allowlist"
    );
    (sid, codes)
}

const PAGES: &[&str] = &[
    "/console",
    "/console/attempts",
    "/console/safe-list",
    "/console/events",
    "/console/settings",
    "/console/outbox",
];

#[tokio::test]
async fn every_page_answers_with_a_session_and_none_without() {
    let app = spawn_app().await;
    let (sid, _) = traffic(&app).await;
    let verification = format!("/console/verifications/{sid}");
    let cookie = session(&app).await;
    for path in PAGES.iter().copied().chain([verification.as_str()]) {
        let (status, body) = page(&app, path, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path} without a session");
        assert!(
            body.contains("action=\"/console/login\""),
            "{path}: the login page"
        );
        assert!(!body.contains("+1415"), "{path}: nothing of the data");
        let (status, body) = page(&app, path, Some(&cookie)).await;
        assert_eq!(status, StatusCode::OK, "{path} with a session: {body}");
        assert!(body.starts_with("<!DOCTYPE html>"), "{path}");
        assert!(body.len() < 100_000, "{path} is under 100 KB");
    }
    let (status, _) = page(&app, "/console/login", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, css) = page(&app, "/console/assets/console.css", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(css.contains("font"), "the embedded stylesheet");
    let (status, _) = page(&app, "/console/nothing-here", Some(&cookie)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_dev_outbox_page_exists_only_with_the_console_sender() {
    let app = spawn_open(&[("VERIFYD_SMS_SENDER", "null")]).await;
    let cookie = session(&app).await;
    let (status, body) = page(&app, "/console", Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!body.contains("/console/outbox"), "no menu entry");
    let (status, _) = page(&app, "/console/outbox", Some(&cookie)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_session_cookie_is_http_only_strict_scoped_and_lasts_twelve_hours() {
    let app = spawn_app().await;
    let login = login_with(&app, API_KEY).await;
    assert_eq!(login.status, StatusCode::SEE_OTHER);
    let flags: Vec<&str> = login.set_cookie.split("; ").collect();
    assert!(
        login.cookie.starts_with("verifyd_console=v1."),
        "{}",
        login.set_cookie
    );
    for flag in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/console",
        "Max-Age=43200",
    ] {
        assert!(flags.contains(&flag), "{flag} in {}", login.set_cookie);
    }
    assert!(
        !flags.contains(&"Secure"),
        "development over plain HTTP: no Secure ({})",
        login.set_cookie
    );

    let https = spawn_open(&[("VERIFYD_PUBLIC_URL", "https://verify.example.com")]).await;
    let login = login_with(&https, API_KEY).await;
    assert!(
        login.set_cookie.split("; ").any(|f| f == "Secure"),
        "served over https: Secure ({})",
        login.set_cookie
    );
}

#[tokio::test]
async fn logout_ends_the_session_in_the_browser_and_needs_the_csrf_token() {
    let app = spawn_app().await;
    let cookie = session(&app).await;
    let (_, body) = page(&app, "/console", Some(&cookie)).await;
    let csrf = csrf_in(&body);

    let refused = post_form(&app, "/console/logout", &cookie, &[]).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN, "no token: refused");
    assert!(
        refused.headers().get(SET_COOKIE).is_none(),
        "and the session stays"
    );

    let out = post_form(&app, "/console/logout", &cookie, &[("csrf", &csrf)]).await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(out.headers()[LOCATION], "/console/login");
    let cleared = out.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(cleared.starts_with("verifyd_console=;"), "{cleared}");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
}

#[tokio::test]
async fn a_wrong_key_gets_the_login_page_again_and_logins_are_limited_per_address() {
    let app = spawn_app().await;
    let login = login_with(&app, "not-the-key-0123456789").await;
    assert_eq!(login.status, StatusCode::UNAUTHORIZED);
    assert!(login.set_cookie.is_empty(), "no cookie for a wrong key");
    let (_, body) = {
        let r = browser()
            .post(app.url("/console/login"))
            .form(&[("key", "")])
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    };
    assert!(
        body.contains("That key is not accepted."),
        "a generic message"
    );

    // Ten attempts per five minutes per address (two made above).
    for _ in 0..8 {
        let l = login_with(&app, "still-not-the-key-0123").await;
        assert_eq!(l.status, StatusCode::UNAUTHORIZED);
    }
    let limited = browser()
        .post(app.url("/console/login"))
        .form(&[("key", API_KEY)])
        .send()
        .await
        .unwrap();
    assert_eq!(
        limited.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "even the right key"
    );
    assert!(limited.headers().get("retry-after").is_some());
    assert!(limited.headers().get(SET_COOKIE).is_none());
    let body = limited.text().await.unwrap();
    assert!(body.contains("Too many login attempts"), "{body}");

    app.clock.advance(Duration::from_secs(300));
    assert_eq!(
        login_with(&app, API_KEY).await.status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn a_login_posted_from_another_site_is_refused() {
    let app = spawn_app().await;
    let response = browser()
        .post(app.url("/console/login"))
        .header("origin", "https://evil.example")
        .form(&[("key", API_KEY)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(response.headers().get(SET_COOKIE).is_none());
}

#[tokio::test]
async fn forged_expired_and_revoked_cookies_get_the_login_page() {
    let app = spawn_app().await;
    let cookie = session(&app).await;
    let mut forged = cookie.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == '0' { '1' } else { '0' });
    for bad in [
        forged.as_str(),
        "verifyd_console=v1.99999999999999.00.00.00",
        "verifyd_console=",
    ] {
        let (status, body) = page(&app, "/console", Some(bad)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{bad}");
        assert!(body.contains("action=\"/console/login\""), "{bad}");
    }

    app.clock.advance(Duration::from_secs(12 * 3600));
    let (status, body) = page(&app, "/console/attempts", Some(&cookie)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "expired after 12 h");
    assert!(body.contains("Your session ended."), "{body}");

    // The same server secret, another key: the session of a key no longer accepted ends.
    let (dir, clock) = app.stop().await;
    let app = crate::helpers::spawn_app_in(
        dir,
        &[("VERIFYD_API_KEYS", "a-new-key-0123456789-abc")],
        clock,
    )
    .await;
    let fresh = login_with(&app, "a-new-key-0123456789-abc").await;
    assert_eq!(fresh.status, StatusCode::SEE_OTHER);
    app.clock.advance(Duration::from_secs(1));
    let (status, _) = page(&app, "/console", Some(&cookie)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "revoked key");
}

#[tokio::test]
async fn a_session_is_valid_on_another_replica_with_the_same_secret_and_database() {
    let app = spawn_app().await;
    let cookie = session(&app).await;
    let (dir, clock) = app.stop().await;
    let other = crate::helpers::spawn_app_in(dir, &[], clock).await;
    let (status, _) = page(&other, "/console/settings", Some(&cookie)).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a restarted (or other) process accepts it"
    );
}

#[tokio::test]
async fn safe_list_forms_change_nothing_without_the_csrf_token() {
    let app = spawn_app().await;
    let cookie = session(&app).await;
    let (_, body) = page(&app, "/console/safe-list", Some(&cookie)).await;
    let csrf = csrf_in(&body);

    for fields in [
        vec![("number", "+14155552671")],
        vec![("number", "+14155552671"), ("csrf", "0000")],
        vec![("number", "+14155552671"), ("csrf", &"a".repeat(64))],
    ] {
        let r = post_form(&app, "/console/safe-list", &cookie, &fields).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{fields:?}");
        assert!(r.text().await.unwrap().contains("Nothing was changed"));
    }
    let (_, body) = page(&app, "/console/safe-list", Some(&cookie)).await;
    assert!(body.contains("The safe list is empty."), "nothing added");

    // Another session's token is not this one's.
    let other = session(&app).await;
    let (_, other_page) = page(&app, "/console/safe-list", Some(&other)).await;
    let other_csrf = csrf_in(&other_page);
    assert_ne!(other_csrf, csrf);
    let r = post_form(
        &app,
        "/console/safe-list",
        &cookie,
        &[("number", "+14155552671"), ("csrf", &other_csrf)],
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // With the token: added, shown masked, then removed.
    let r = post_form(
        &app,
        "/console/safe-list",
        &cookie,
        &[("number", "+14155552671"), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (_, body) = page(&app, "/console/safe-list", Some(&cookie)).await;
    assert!(body.contains("+1415***2671"), "{body}");
    assert!(!body.contains("+14155552671"), "never the whole number");
    let at = body.find("name=\"sid\" value=\"").expect("a remove form") + 18;
    let sid = body[at..at + 34].to_owned();
    assert!(sid.starts_with("GN"), "{sid}");

    let r = post_form(&app, "/console/safe-list/remove", &cookie, &[("sid", &sid)]).await;
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "remove needs the token too"
    );
    let r = post_form(
        &app,
        "/console/safe-list/remove",
        &cookie,
        &[
            ("sid", "GN00000000000000000000000000000000"),
            ("csrf", &csrf),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "unknown entry");
    let r = post_form(
        &app,
        "/console/safe-list/remove",
        &cookie,
        &[("sid", &sid), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (_, body) = page(&app, "/console/safe-list", Some(&cookie)).await;
    assert!(body.contains("The safe list is empty."));

    let r = post_form(
        &app,
        "/console/safe-list",
        &cookie,
        &[("number", "not a number"), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("Nothing was changed"));
}

#[tokio::test]
async fn numbers_are_masked_and_no_code_shows_but_in_the_dev_outbox() {
    let app = spawn_app().await;
    let (sid, codes) = traffic(&app).await;
    let cookie = session(&app).await;
    let verification = format!("/console/verifications/{sid}");
    let full_numbers = [
        "+14155552671",
        "+14155552672",
        "+12125550143",
        "+447911123456",
    ];
    for path in PAGES
        .iter()
        .copied()
        .chain([verification.as_str(), "/console/attempts?status=approved"])
    {
        let (status, body) = page(&app, path, Some(&cookie)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        for n in full_numbers {
            assert!(!body.contains(n), "{path} shows {n}");
        }
        for code in &codes {
            let shown = body.contains(code.as_str());
            assert_eq!(shown, path == "/console/outbox", "{path}: code {code}");
        }
    }
    let (_, attempts) = page(&app, "/console/attempts", Some(&cookie)).await;
    for masked in [
        "+1415***2671",
        "+1415***2672",
        "+1212***0143",
        "+4479***3456",
    ] {
        assert!(attempts.contains(masked), "{masked} in the attempts page");
    }
    let (_, one) = page(&app, &verification, Some(&cookie)).await;
    assert!(one.contains("id=\"state\">approved<"), "{one}");
}

#[tokio::test]
async fn an_unknown_sid_and_filters_out_of_range_are_refused_with_a_message() {
    let app = spawn_app().await;
    let cookie = session(&app).await;
    for path in [
        "/console/verifications/VE00000000000000000000000000000000",
        "/console/verifications/not-a-sid",
    ] {
        let (status, body) = page(&app, path, Some(&cookie)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(body.contains("No verification with that sid"), "{path}");
    }
    let tomorrow = {
        let now = app.clock.now().as_millis() / 1000 + 2 * 86_400;
        let t = time::OffsetDateTime::from_unix_timestamp(now).unwrap();
        t.date().to_string()
    };
    for (query, says) in [
        ("from=1999-01-01", "out of range"),
        (&format!("to={tomorrow}"), "out of range"),
        ("from=2026-13-01", "must be a date"),
        ("from=2026-12-06&to=2026-12-01", "From is after To"),
        ("country=USA", "two-letter"),
        ("channel=pigeon", "Channel must be"),
        ("status=lost", "Status is not"),
        ("number=12345", "E.164"),
        ("before=-4", "cursor is out of range"),
        ("before=abc", "cursor is out of range"),
    ] {
        let (status, body) = page(&app, &format!("/console/attempts?{query}"), Some(&cookie)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert!(body.contains(says), "{query}: {says}");
        assert!(body.contains("No attempts match."), "{query}: no rows");
    }
}

#[tokio::test]
async fn attempts_filter_by_status_number_country_and_page() {
    let app = spawn_app().await;
    traffic(&app).await;
    let cookie = session(&app).await;
    let rows = |body: &str| body.matches("<td class=\"number\">").count();
    let (_, all) = page(&app, "/console/attempts", Some(&cookie)).await;
    // 3 sends, 2 checks, 1 refusal.
    assert_eq!(rows(&all), 6, "{all}");
    let (_, approved) = page(&app, "/console/attempts?status=approved", Some(&cookie)).await;
    assert_eq!(rows(&approved), 1);
    let (_, refused) = page(&app, "/console/attempts?status=refused", Some(&cookie)).await;
    assert_eq!(rows(&refused), 1);
    assert!(refused.contains("country"), "the reason");
    let (_, one) = page(
        &app,
        "/console/attempts?number=%2B14155552671",
        Some(&cookie),
    )
    .await;
    assert_eq!(rows(&one), 3, "send, wrong check, right check");
    let (_, gb) = page(&app, "/console/attempts?country=gg", Some(&cookie)).await;
    assert_eq!(rows(&gb), 1);
    let (today, yesterday) = days(&app);
    let (_, on_today) = page(
        &app,
        &format!("/console/attempts?from={today}&to={today}"),
        Some(&cookie),
    )
    .await;
    assert_eq!(rows(&on_today), 6, "today's rows");
    let (_, on_yesterday) = page(
        &app,
        &format!("/console/attempts?from={yesterday}&to={yesterday}"),
        Some(&cookie),
    )
    .await;
    assert_eq!(rows(&on_yesterday), 0, "nothing yesterday");
    let (_, until_yesterday) = page(
        &app,
        &format!("/console/attempts?to={yesterday}"),
        Some(&cookie),
    )
    .await;
    assert_eq!(rows(&until_yesterday), 0);

    for i in 0..55 {
        let n = format!("+1415555{:04}", 3000 + i);
        assert_eq!(app.send_code(&n).await.status(), StatusCode::OK);
    }
    let (_, first) = page(&app, "/console/attempts?status=sent", Some(&cookie)).await;
    assert_eq!(rows(&first), 50);
    let at = first.find("id=\"older\" href=\"").expect("an older link") + 17;
    let href = first[at..].split('"').next().unwrap().replace("&amp;", "&");
    let (status, second) = page(&app, &href, Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(rows(&second), 58 - 50, "the rest");
}

/// Today's and yesterday's dates (UTC) on the app's clock.
fn days(app: &TestApp) -> (String, String) {
    let now = app.clock.now().as_millis() / 1000;
    let day = |secs: i64| {
        time::OffsetDateTime::from_unix_timestamp(secs)
            .unwrap()
            .date()
            .to_string()
    };
    (day(now), day(now - 86_400))
}

/// The overview's figures after [`traffic`]: 3 sent, 1 converted, 1 refused.
async fn assert_overview(app: &TestApp) {
    let cookie = session(app).await;
    let (status, body) = page(app, "/console", Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK);
    for window in ["24h", "7d"] {
        assert_eq!(figure(&body, &format!("sends-{window}")), "3", "{window}");
        assert_eq!(figure(&body, &format!("conversions-{window}")), "1");
        assert_eq!(
            figure(&body, &format!("conversion-rate-{window}")),
            "33.3 %"
        );
        assert_eq!(figure(&body, &format!("refusals-{window}")), "1");
        assert_eq!(figure(&body, &format!("wrong-codes-{window}")), "1");
        assert_eq!(figure(&body, &format!("fraud-blocked-{window}")), "0");
    }
    assert!(body.contains("<td>country</td>"), "refusals by reason");
    assert!(body.contains("<td>+1415</td>"), "prefixes");
    assert!(body.contains("<td>US</td>"), "countries");
    assert!(body.contains("<svg"), "the chart");
}

#[tokio::test]
async fn the_overview_counts_sends_conversions_and_refusals() {
    let app = spawn_open(&[("VERIFYD_SMS_PRICE", "0.05")]).await;
    traffic(&app).await;
    assert_overview(&app).await;
    let cookie = session(&app).await;
    let (_, body) = page(&app, "/console", Some(&cookie)).await;
    assert_eq!(figure(&body, "spend-24h"), "0.15");

    // A day later the 24-hour window is empty and the week still counts.
    app.clock.advance(Duration::from_secs(25 * 3600));
    let cookie = session(&app).await;
    let (_, body) = page(&app, "/console", Some(&cookie)).await;
    assert_eq!(figure(&body, "sends-24h"), "0");
    assert_eq!(figure(&body, "sends-7d"), "3");
}

#[tokio::test]
async fn the_overview_reads_the_same_figures_from_postgresql() {
    let Some(db) = crate::helpers::postgres_or_skip().await else {
        return;
    };
    let url = db.url();
    let app = spawn_open(&[("VERIFYD_DATABASE_URL", url.as_str())]).await;
    traffic(&app).await;
    assert_overview(&app).await;
    let cookie = session(&app).await;
    let rows = |body: &str| body.matches("<td class=\"number\">").count();
    let (_, one) = page(
        &app,
        "/console/attempts?number=%2B14155552671",
        Some(&cookie),
    )
    .await;
    assert_eq!(rows(&one), 3);
    let (_, refused) = page(&app, "/console/attempts?status=refused", Some(&cookie)).await;
    assert_eq!(rows(&refused), 1);
    let (today, yesterday) = days(&app);
    let (_, on_today) = page(
        &app,
        &format!("/console/attempts?from={today}&to={today}"),
        Some(&cookie),
    )
    .await;
    assert_eq!(rows(&on_today), 6);
    let (_, on_yesterday) = page(
        &app,
        &format!("/console/attempts?from={yesterday}&to={yesterday}"),
        Some(&cookie),
    )
    .await;
    assert_eq!(rows(&on_yesterday), 0);
}

#[tokio::test]
async fn a_safe_listed_number_added_in_the_console_is_honoured_by_the_api() {
    let app = spawn_app().await;
    let cookie = session(&app).await;
    let (_, body) = page(&app, "/console/safe-list", Some(&cookie)).await;
    let csrf = csrf_in(&body);
    assert_eq!(
        app.send_code("+447911123456").await.status(),
        StatusCode::FORBIDDEN
    );
    let r = post_form(
        &app,
        "/console/safe-list",
        &cookie,
        &[("number", "+447911123456"), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let sent = app
        .post("/mfa/send-code", &json!({ "recipient": "+447911123456" }))
        .await;
    assert_eq!(
        sent.status(),
        StatusCode::OK,
        "safe-listed: the country rule is skipped"
    );
}

#[tokio::test]
async fn a_flood_of_refusals_is_summarised_in_the_log_and_counted_in_full() {
    // Two sends a client address may make, then 28 refusals from it (fresh numbers).
    let app = spawn_open(&[("VERIFYD_RATE_LIMIT_IP_MAX", "2")]).await;
    for i in 0..30 {
        let answer = app.send_code(&format!("+1650253{:04}", 2000 + i)).await;
        let expected = if i < 2 { 200 } else { 429 };
        assert_eq!(answer.status().as_u16(), expected, "send {i}");
    }
    // The window ends; the next refusal writes its summary row (and starts a new window).
    app.clock.advance(Duration::from_secs(11));
    let answer = app.send_code("+16502533000").await;
    assert_eq!(answer.status().as_u16(), 429);

    let cookie = session(&app).await;
    let (status, body) = page(&app, "/console", Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        figure(&body, "refusals-24h"),
        "29",
        "the overview counts every refusal, the summarised ones too"
    );
    let (status, body) = page(&app, "/console/attempts?status=refused", Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK);
    let detailed = body.matches("<td>rate_limited (ip)</td>").count();
    assert_eq!(
        detailed, 11,
        "ten of the first window and one of the next, row by row"
    );
    assert!(
        body.contains("<td>rate_limited (ip) × 18 more</td>"),
        "one summary row for the other 18: {body}"
    );
}

/// Traffic on two days: a day's range lists that day's rows only, whichever side it is on.
async fn assert_two_days(app: &TestApp) {
    traffic(app).await;
    let (yesterday, _) = days(app);
    app.clock.advance(Duration::from_secs(24 * 3600));
    let refused = app.send_code("+447911123457").await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.send_code("+14155552673").await.status(), StatusCode::OK);
    let (today, _) = days(app);
    let cookie = session(app).await;
    let rows = |body: &str| body.matches("<td class=\"number\">").count();
    for (query, want) in [
        (format!("from={yesterday}&to={yesterday}"), 6),
        (format!("from={today}&to={today}"), 2),
        (format!("from={yesterday}"), 8),
        (format!("to={yesterday}"), 6),
        (format!("from={yesterday}&to={yesterday}&status=refused"), 1),
        (format!("from={today}&status=refused"), 1),
        ("status=refused".to_owned(), 2),
        (format!("from={today}&status=approved"), 0),
    ] {
        let (status, body) = page(app, &format!("/console/attempts?{query}"), Some(&cookie)).await;
        assert_eq!(status, StatusCode::OK, "{query}");
        assert_eq!(rows(&body), want, "{query}");
    }
}

#[tokio::test]
async fn a_date_range_lists_its_days_rows_only() {
    let app = spawn_app().await;
    assert_two_days(&app).await;
}

#[tokio::test]
async fn a_date_range_lists_its_days_rows_only_on_postgresql() {
    let Some(db) = crate::helpers::postgres_or_skip().await else {
        return;
    };
    let url = db.url();
    let app = spawn_open(&[("VERIFYD_DATABASE_URL", url.as_str())]).await;
    assert_two_days(&app).await;
}
