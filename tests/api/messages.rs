//! Messages through the real server: the request's locale (`locale` on `/mfa`, `Locale` on
//! `/v2`) and the default one, the operator's templates, the autofill lines, the attempt log's
//! record of each message's encoding and segments, and the refusals of a bad locale or app hash
//! (each its own 400, nothing sent, nothing charged).

use serde_json::{Value, json};

use crate::helpers::*;
use crate::v2::{SERVICE, v2, v2_settings};

/// The body of the latest message to `number` in the dev outbox.
async fn last_body(app: &TestApp, number: &str) -> String {
    app.outbox()
        .await
        .iter()
        .rev()
        .find(|m| m["to"] == number)
        .unwrap_or_else(|| panic!("no message to {number}"))["body"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The first run of digits in `body` (the code; an autofill line repeats it later).
fn first_code(body: &str) -> String {
    body.chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(char::is_ascii_digit)
        .collect()
}

#[tokio::test]
async fn mfa_send_code_writes_in_the_requested_locale_or_its_language() {
    // Five sends of one verification (its most), from one client address.
    let app = spawn_app_with(&[("VERIFYD_RATE_LIMIT_IP_MAX", "0")]).await;
    let cases = [
        ("pt-BR", "Seu código de verificação é: "),
        ("pt", "O seu código de verificação é: "),
        ("de-AT", "Ihr Bestätigungscode lautet: "),
        ("ZH-tw", "您的驗證碼是："),
        ("ru", "Ваш код подтверждения: "),
    ];
    for (locale, start) in cases {
        let sent = app
            .post(
                "/mfa/send-code",
                &json!({"recipient": US_NUMBER, "locale": locale}),
            )
            .await;
        assert_ok(sent, "Verification code sent!").await;
        let body = last_body(&app, US_NUMBER).await;
        assert!(body.starts_with(start), "{locale}: {body}");
    }
    // Every message of that verification re-delivered the same code, in each locale.
    let codes: Vec<String> = app
        .outbox()
        .await
        .iter()
        .map(|m| first_code(m["body"].as_str().unwrap()))
        .collect();
    assert!(codes.windows(2).all(|w| w[0] == w[1]), "{codes:?}");
    assert_ok(
        app.verify(US_NUMBER, &codes[0]).await,
        "Verification code is correct!",
    )
    .await;
}

#[tokio::test]
async fn the_default_locale_applies_when_the_request_names_none() {
    let app = spawn_app_with(&[("VERIFYD_DEFAULT_LOCALE", "es")]).await;
    assert_ok(app.send_code(US_NUMBER).await, "Verification code sent!").await;
    let body = last_body(&app, US_NUMBER).await;
    assert!(body.starts_with("Tu código de verificación es: "), "{body}");
    let sent = app
        .post(
            "/mfa/send-code",
            &json!({"recipient": US_NUMBER, "locale": "en"}),
        )
        .await;
    assert_ok(sent, "Verification code sent!").await;
    assert!(
        last_body(&app, US_NUMBER)
            .await
            .starts_with("Your verification code is: ")
    );
}

#[tokio::test]
async fn a_bad_locale_or_app_hash_is_its_own_400_and_sends_and_charges_nothing() {
    // One send per IP: a refused request that charged the bucket would starve the last one.
    let app = spawn_app_with(&[("VERIFYD_RATE_LIMIT_IP_MAX", "1")]).await;
    let cases: [(&str, Value, &str); 7] = [
        (
            "unknown language",
            json!({"locale": "xx"}),
            "invalid_locale",
        ),
        (
            "unknown language with region",
            json!({"locale": "xx-US"}),
            "invalid_locale",
        ),
        (
            "not a tag",
            json!({"locale": "english please"}),
            "invalid_locale",
        ),
        ("empty locale", json!({"locale": ""}), "invalid_locale"),
        ("locale not a string", json!({"locale": 7}), "invalid_body"),
        (
            "short app hash",
            json!({"appHash": "FA+9qCX9VS"}),
            "invalid_app_hash",
        ),
        (
            "app hash with a bad character",
            json!({"appHash": "FA-9qCX9VSu"}),
            "invalid_app_hash",
        ),
    ];
    for (name, extra, code) in cases {
        let mut body = json!({"recipient": US_NUMBER});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let answer = assert_error(app.post("/mfa/send-code", &body).await, 400, code).await;
        assert!(
            !answer["message"].as_str().unwrap().is_empty(),
            "{name}: a message for a person"
        );
    }
    assert!(app.outbox().await.is_empty(), "nothing was sent");
    assert_ok(app.send_code(US_NUMBER).await, "Verification code sent!").await;
}

#[tokio::test]
async fn app_hash_and_webotp_lines_let_phones_fill_the_code_in() {
    let app = spawn_app_with(&[("VERIFYD_WEBOTP_DOMAIN", "Login.Example.com")]).await;
    let sent = app
        .post(
            "/mfa/send-code",
            &json!({"recipient": US_NUMBER, "appHash": "FA+9qCX9VSu"}),
        )
        .await;
    assert_ok(sent, "Verification code sent!").await;
    let body = last_body(&app, US_NUMBER).await;
    let code = first_code(&body);
    assert_eq!(
        body,
        format!("Your verification code is: {code}\n\nFA+9qCX9VSu\n\n@login.example.com #{code}")
    );
    assert_ok(
        app.verify(US_NUMBER, &code).await,
        "Verification code is correct!",
    )
    .await;
}

#[tokio::test]
async fn a_bad_webotp_domain_or_default_locale_stops_startup() {
    let dir = tempfile::tempdir().unwrap();
    for (name, value) in [
        ("VERIFYD_WEBOTP_DOMAIN", "https://example.com/"),
        ("VERIFYD_DEFAULT_LOCALE", "xx"),
        ("VERIFYD_TEMPLATES", "/nonexistent/templates.toml"),
    ] {
        let err = load_config(&dir, &[(name, value)]).expect_err(name);
        assert!(err.to_string().contains(name), "{name}: {err}");
    }
}

#[tokio::test]
async fn operator_templates_replace_the_wording_per_service_and_locale() {
    let files = tempfile::tempdir().unwrap();
    let path = files.path().join("templates.toml");
    let other = "VA00000000000000000000000000000001";
    std::fs::write(
        &path,
        format!(
            "[default]\nen = \"{{code}} is your {{service}} code. It expires in {{ttl}} minutes.\"\n\
             [{other}]\nfr = \"{{service}} : {{code}}\"\n"
        ),
    )
    .unwrap();
    let path = path.to_str().unwrap();
    let app = spawn_app_with(&v2_settings(&[
        ("VERIFYD_TEMPLATES", path),
        ("VERIFYD_SERVICE_NAME", "Linker"),
        ("VERIFYD_CODE_TTL", "300"),
    ]))
    .await;
    assert_ok(app.send_code(US_NUMBER).await, "Verification code sent!").await;
    let body = last_body(&app, US_NUMBER).await;
    let code = first_code(&body);
    assert_eq!(
        body,
        format!("{code} is your Linker code. It expires in 5 minutes.")
    );

    let created = v2(&app, "POST", "/v2/Services", &[("FriendlyName", "Acme")]).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let service = created.body["sid"].as_str().unwrap().to_owned();
    // Not the file's service: the built-in French sentence.
    let sent = v2(
        &app,
        "POST",
        &format!("/v2/Services/{service}/Verifications"),
        &[("To", "+14155550101"), ("Channel", "sms"), ("Locale", "fr")],
    )
    .await;
    assert_eq!(sent.status, 201, "{}", sent.body);
    assert!(
        last_body(&app, "+14155550101")
            .await
            .starts_with("Votre code de vérification Acme est : "),
    );
    // A bad file names the section and locale of each problem.
    std::fs::write(
        files.path().join("bad.toml"),
        "[default]\nen = \"no code\"\nxx = \"{code}\"\n",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bad = files.path().join("bad.toml");
    let err = load_config(&dir, &[("VERIFYD_TEMPLATES", bad.to_str().unwrap())])
        .expect_err("a bad templates file");
    let text = err.to_string();
    assert!(
        text.contains("[default] en") && text.contains("[default] xx"),
        "{text}"
    );
    let _ = SERVICE;
}

#[tokio::test]
async fn v2_locale_writes_the_message_and_the_attempt_log_keeps_encoding_and_segments() {
    let app = spawn_app_with(&v2_settings(&[])).await;
    let sent = v2(
        &app,
        "POST",
        &format!("/v2/Services/{SERVICE}/Verifications"),
        &[("To", US_NUMBER), ("Channel", "sms"), ("Locale", "hi")],
    )
    .await;
    assert_eq!(sent.status, 201, "{}", sent.body);
    let body = last_body(&app, US_NUMBER).await;
    assert!(body.starts_with("आपका verifyd सत्यापन कोड है: "), "{body}");
    let de = v2(
        &app,
        "POST",
        &format!("/v2/Services/{SERVICE}/Verifications"),
        &[
            ("To", "+14155550101"),
            ("Channel", "sms"),
            ("Locale", "de-CH"),
        ],
    )
    .await;
    assert_eq!(
        de.status, 201,
        "a known language with another region: {}",
        de.body
    );
    assert!(
        last_body(&app, "+14155550101")
            .await
            .starts_with("Ihr verifyd-Bestätigungscode")
    );

    let listed = v2(&app, "GET", "/v2/Attempts", &[]).await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    let attempts = listed.body["attempts"].as_array().unwrap();
    let data: Vec<(Value, Value, Value)> = attempts
        .iter()
        .map(|a| {
            let d = &a["channel_data"];
            (
                d["locale"].clone(),
                d["encoding"].clone(),
                d["segments"].clone(),
            )
        })
        .collect();
    assert_eq!(
        data,
        vec![
            (json!("hi"), json!("ucs2"), json!(1)),
            (json!("de"), json!("gsm7"), json!(1)),
        ]
    );
}
