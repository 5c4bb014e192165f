//! The `email` channel through the real server: a code emailed through a tiny SMTP sink of our
//! own on 127.0.0.1 (enough of SMTP for lettre: EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT) and
//! checked; the console sender and the dev outbox showing email; every bad recipient refused in
//! each face's format with nothing sent and nothing charged; the address sealed in SQLite and
//! PostgreSQL; email attempts masked in `/v2/Attempts` and the console; and a fallback that
//! never crosses between an address and a number.

use std::sync::{Arc, Mutex};

use base64::Engine;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::helpers::*;
use crate::v2::{SERVICE, assert_twilio_error, v2, v2_settings};

const FROM: &str = "Acme <no-reply@acme.example>";
const ADDRESS: &str = "Jane.Doe@Example.COM";
/// The address as stored and sent to: the domain lowercased.
const SENT_TO: &str = "Jane.Doe@example.com";
const MASKED: &str = "J***@e***.com";

/// One message the sink accepted.
#[derive(Clone, Debug)]
struct Mail {
    from: String,
    to: Vec<String>,
    data: String,
}

#[derive(Default)]
struct SinkState {
    mails: Vec<Mail>,
    refuse_rcpt: bool,
}

/// A local SMTP server that keeps what it is given.
struct SmtpSink {
    url: String,
    state: Arc<Mutex<SinkState>>,
}

impl SmtpSink {
    async fn start(refuse_rcpt: bool) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("smtp://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(SinkState {
            refuse_rcpt,
            ..SinkState::default()
        }));
        let shared = Arc::clone(&state);
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(session(socket, Arc::clone(&shared)));
            }
        });
        Self { url, state }
    }

    fn mails(&self) -> Vec<Mail> {
        self.state.lock().unwrap().mails.clone()
    }
}

/// One SMTP session (RFC 5321's minimum, one reply line per command).
async fn session(socket: tokio::net::TcpStream, state: Arc<Mutex<SinkState>>) {
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read);
    let _ = write.write_all(b"220 sink.test ESMTP\r\n").await;
    let (mut from, mut to) = (String::new(), Vec::new());
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let command = line.trim_end().to_owned();
        let upper = command.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            b"250 sink.test\r\n"
        } else if let Some(rest) = upper.strip_prefix("MAIL FROM:") {
            from = angle(&command[command.len() - rest.len()..]);
            to.clear();
            b"250 OK\r\n"
        } else if let Some(rest) = upper.strip_prefix("RCPT TO:") {
            if state.lock().unwrap().refuse_rcpt {
                b"550 5.1.1 no such mailbox\r\n"
            } else {
                to.push(angle(&command[command.len() - rest.len()..]));
                b"250 OK\r\n"
            }
        } else if upper == "DATA" {
            let _ = write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await;
            let mut data = String::new();
            loop {
                line.clear();
                if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                    return;
                }
                if line == ".\r\n" {
                    break;
                }
                data.push_str(line.strip_prefix('.').unwrap_or(&line));
            }
            state.lock().unwrap().mails.push(Mail {
                from: from.clone(),
                to: to.clone(),
                data,
            });
            b"250 2.0.0 queued\r\n"
        } else if upper == "RSET" || upper == "NOOP" {
            b"250 OK\r\n"
        } else if upper == "QUIT" {
            let _ = write.write_all(b"221 bye\r\n").await;
            return;
        } else {
            b"502 5.5.2 not implemented\r\n"
        };
        if write.write_all(reply).await.is_err() {
            return;
        }
    }
}

/// `<a@b>` (with optional parameters after it) → `a@b`.
fn angle(s: &str) -> String {
    let s = s.trim();
    s.strip_prefix('<')
        .and_then(|r| r.split_once('>'))
        .map_or(s, |(a, _)| a)
        .to_owned()
}

/// The six-digit code in a message (the expiry sentence has a number too).
fn code_of(body: &str) -> String {
    body.split(|c: char| !c.is_ascii_digit())
        .find(|run| run.len() == 6)
        .unwrap_or_else(|| panic!("no 6-digit code in {body}"))
        .to_owned()
}

/// A message's headers (unfolded) and its decoded text and HTML parts.
struct Parsed {
    headers: Vec<(String, String)>,
    text: String,
    html: String,
}

impl Parsed {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map_or("", |(_, v)| v.as_str())
    }
}

fn split_headers(raw: &str) -> (Vec<(String, String)>, &str) {
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw, ""));
    let mut headers: Vec<(String, String)> = Vec::new();
    for l in head.split("\r\n") {
        if l.starts_with([' ', '\t']) {
            if let Some(last) = headers.last_mut() {
                last.1.push_str(l.trim_start());
            }
        } else if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    (headers, body)
}

fn decode_body(encoding: &str, body: &str) -> String {
    match encoding.to_ascii_lowercase().as_str() {
        "base64" => String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(body.split_whitespace().collect::<String>())
                .unwrap(),
        )
        .unwrap(),
        "quoted-printable" => {
            let joined = body.replace("=\r\n", "");
            let bytes = joined.as_bytes();
            let mut out = Vec::new();
            let mut i = 0;
            while i < bytes.len() {
                if bytes[i] == b'=' && i + 2 < bytes.len() {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                    out.push(u8::from_str_radix(hex, 16).unwrap());
                    i += 3;
                } else {
                    out.push(bytes[i]);
                    i += 1;
                }
            }
            String::from_utf8(out).unwrap()
        }
        _ => body.to_owned(),
    }
}

/// RFC 2047 `=?utf-8?b?…?=` words (as lettre writes non-ASCII subjects) decoded.
fn decode_words(value: &str) -> String {
    value
        .split_whitespace()
        .map(|w| {
            let lower = w.to_ascii_lowercase();
            match lower
                .strip_prefix("=?utf-8?b?")
                .and_then(|r| r.strip_suffix("?="))
            {
                Some(_) => String::from_utf8(
                    base64::engine::general_purpose::STANDARD
                        .decode(&w[10..w.len() - 2])
                        .unwrap(),
                )
                .unwrap(),
                None => format!(" {w} "),
            }
        })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn parse(mail: &Mail) -> Parsed {
    let (headers, body) = split_headers(&mail.data);
    let content_type = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Content-Type"))
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    assert!(
        content_type.starts_with("multipart/alternative"),
        "{content_type}"
    );
    let boundary = content_type
        .split("boundary=")
        .nth(1)
        .unwrap()
        .trim_matches('"')
        .to_owned();
    let (mut text, mut html) = (String::new(), String::new());
    for part in body.split(&format!("--{boundary}")).skip(1) {
        let part = part.trim_start_matches("\r\n");
        if part.starts_with("--") {
            break;
        }
        let (h, b) = split_headers(part);
        let get = |n: &str| {
            h.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map_or("", |(_, v)| v.as_str())
                .to_owned()
        };
        let decoded = decode_body(&get("Content-Transfer-Encoding"), b.trim_end());
        if get("Content-Type").starts_with("text/plain") {
            text = decoded;
        } else if get("Content-Type").starts_with("text/html") {
            html = decoded;
        }
    }
    Parsed {
        headers,
        text,
        html,
    }
}

fn email_settings<'a>(sink: &'a SmtpSink, more: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut s = vec![
        ("VERIFYD_CHANNELS", "sms,email"),
        ("VERIFYD_SMTP_URL", sink.url.as_str()),
        ("VERIFYD_EMAIL_FROM", FROM),
    ];
    s.extend_from_slice(more);
    s
}

async fn send_email(app: &TestApp, address: &str, locale: Option<&str>) -> reqwest::Response {
    let mut body = json!({ "recipient": address, "channel": "email" });
    if let Some(l) = locale {
        body["locale"] = json!(l);
    }
    app.post("/mfa/send-code", &body).await
}

#[tokio::test]
async fn an_emailed_code_arrives_over_smtp_in_the_locale_and_verifies() {
    let sink = SmtpSink::start(false).await;
    let app = spawn_app_with(&email_settings(&sink, &[])).await;

    let sent = assert_ok(
        send_email(&app, ADDRESS, Some("de")).await,
        "Verification code sent!",
    )
    .await;
    assert_eq!(sent["to"], SENT_TO);
    assert_eq!(sent["channel"], "email");
    assert_eq!(sent["sendCodeAttempts"][0]["channel"], "email");

    let mails = sink.mails();
    assert_eq!(mails.len(), 1, "one email");
    assert_eq!(mails[0].from, "no-reply@acme.example");
    assert_eq!(mails[0].to, vec![SENT_TO.to_owned()]);
    println!(
        "captured SMTP envelope: MAIL FROM:<{}> RCPT TO:<{}>\n{}",
        mails[0].from, mails[0].to[0], mails[0].data
    );
    let mail = parse(&mails[0]);
    assert_eq!(decode_words(mail.header("Subject")), "Ihr Bestätigungscode");
    assert!(mail.header("From").contains("no-reply@acme.example"));
    assert!(
        mail.header("Message-ID").ends_with("@acme.example>"),
        "{}",
        mail.header("Message-ID")
    );
    let code = code_of(&mail.text);
    assert_eq!(code.len(), 6, "{}", mail.text);
    assert!(
        mail.text.contains("Minuten"),
        "the TTL sentence: {}",
        mail.text
    );
    assert!(mail.html.contains(&format!(">{code}</p>")), "{}", mail.html);
    assert!(mail.html.contains("lang=\"de\""), "{}", mail.html);
    for tracking in ["<img", "http://", "https://", "<a ", "src="] {
        assert!(!mail.html.contains(tracking), "{tracking} in {}", mail.html);
    }
    assert!(app.outbox().await.is_empty(), "email went to SMTP only");

    // The same recipient whatever the case of its address.
    let approved = assert_ok(
        app.verify("jane.doe@example.com", &code).await,
        "Verification code is correct!",
    )
    .await;
    assert_eq!(approved["status"], "approved");
    assert_error(
        app.verify(ADDRESS, &code).await,
        404,
        "verification_not_found",
    )
    .await;
}

#[tokio::test]
async fn without_smtp_the_console_sender_and_the_outbox_show_the_email() {
    let app = spawn_app_with(&[("VERIFYD_CHANNELS", "sms,email")]).await;
    assert_ok(
        send_email(&app, ADDRESS, None).await,
        "Verification code sent!",
    )
    .await;
    let outbox = app.outbox().await;
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0]["channel"], "email");
    assert_eq!(outbox[0]["to"], SENT_TO);
    assert_eq!(outbox[0]["subject"], "Your verification code");
    let body = outbox[0]["body"].as_str().unwrap();
    assert!(body.contains("It expires in 10 minutes."), "{body}");
    let code = code_of(body);
    assert_ok(
        app.verify(SENT_TO, &code).await,
        "Verification code is correct!",
    )
    .await;
}

#[tokio::test]
async fn a_recipient_of_the_wrong_kind_is_refused_and_nothing_is_sent_or_charged() {
    let sink = SmtpSink::start(false).await;
    // One send per address per minute: a charged bucket would refuse the good send below.
    let app = spawn_app_with(&email_settings(
        &sink,
        &[
            ("VERIFYD_CHANNELS", "sms,email,whatsapp,call"),
            ("VERIFYD_RATE_LIMIT_IP_MAX", "1"),
        ],
    ))
    .await;
    let long_local = format!("{}@example.org", "a".repeat(65));
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "a number for email",
            json!({"recipient": US_NUMBER, "channel": "email"}),
            "email_required",
        ),
        (
            "no @ for email",
            json!({"recipient": "jane", "channel": "email"}),
            "email_required",
        ),
        (
            "an address for sms (the default)",
            json!({"recipient": "ann@example.org"}),
            "phone_number_required",
        ),
        (
            "an address for sms",
            json!({"recipient": "ann@example.org", "channel": "sms"}),
            "phone_number_required",
        ),
        (
            "an address for whatsapp",
            json!({"recipient": "ann@example.org", "channel": "whatsapp"}),
            "phone_number_required",
        ),
        (
            "an address for call",
            json!({"recipient": "ann@example.org", "channel": "call"}),
            "phone_number_required",
        ),
        (
            "two @",
            json!({"recipient": "ann@@example.org", "channel": "email"}),
            "invalid_email",
        ),
        (
            "no dot in the domain",
            json!({"recipient": "ann@localhost", "channel": "email"}),
            "invalid_email",
        ),
        (
            "an IP literal",
            json!({"recipient": "ann@[127.0.0.1]", "channel": "email"}),
            "invalid_email",
        ),
        (
            "a header injection",
            json!({"recipient": "ann@example.org\r\nBcc: x@example.net", "channel": "email"}),
            "invalid_email",
        ),
        (
            "a local part over 64",
            json!({"recipient": long_local, "channel": "email"}),
            "invalid_email",
        ),
        (
            "a quoted local part",
            json!({"recipient": "\"ann\"@example.org", "channel": "email"}),
            "invalid_email",
        ),
    ];
    for (case, body, code) in &cases {
        let response = app.post("/mfa/send-code", body).await;
        let error = assert_error(response, 400, code).await;
        assert!(
            !error.to_string().contains("ann@"),
            "{case}: the address echoed: {error}"
        );
    }
    assert_error(
        app.post(
            "/mfa/verify",
            &json!({"recipient": "ann@", "code": "123456"}),
        )
        .await,
        400,
        "invalid_email",
    )
    .await;
    assert!(sink.mails().is_empty(), "no email sent");
    assert!(app.outbox().await.is_empty(), "no message sent");

    // Nothing was charged: the one send this address may make still goes out, then the next is
    // limited (the bucket is on).
    assert_ok(
        send_email(&app, ADDRESS, None).await,
        "Verification code sent!",
    )
    .await;
    assert_eq!(sink.mails().len(), 1);
    assert_error(
        send_email(&app, "x@example.org", None).await,
        429,
        "rate_limited",
    )
    .await;
}

#[tokio::test]
async fn email_is_refused_until_the_allowlist_turns_it_on() {
    let sink = SmtpSink::start(false).await;
    let app = spawn_app_with(&[
        ("VERIFYD_SMTP_URL", sink.url.as_str()),
        ("VERIFYD_EMAIL_FROM", FROM),
    ])
    .await;
    assert_error(
        send_email(&app, ADDRESS, None).await,
        400,
        "channel_not_allowed",
    )
    .await;
    assert!(sink.mails().is_empty());
}

#[tokio::test]
async fn v2_takes_an_address_as_to_for_email_and_refuses_each_wrong_kind() {
    let sink = SmtpSink::start(false).await;
    let app = spawn_app_with(&v2_settings(&email_settings(&sink, &[]))).await;
    let path = format!("/v2/Services/{SERVICE}/Verifications");
    for (to, channel, says) in [
        (
            US_NUMBER,
            "email",
            "the email channel needs an email address",
        ),
        ("ann@example.org", "sms", "needs a phone number"),
        ("ann@@example.org", "email", "no single @"),
    ] {
        let a = v2(&app, "POST", &path, &[("To", to), ("Channel", channel)]).await;
        assert_twilio_error(&a, 400, 60200, to);
        let message = a.body["message"].as_str().unwrap();
        assert!(message.contains(says), "{to} on {channel}: {message}");
        assert!(!message.contains("ann@"), "{message}");
    }
    assert!(sink.mails().is_empty());

    let created = v2(
        &app,
        "POST",
        &path,
        &[("To", ADDRESS), ("Channel", "email")],
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["to"], SENT_TO);
    assert_eq!(created.body["channel"], "email");
    let mail = parse(&sink.mails()[0]);
    let code = code_of(&mail.text);
    let checked = v2(
        &app,
        "POST",
        &format!("/v2/Services/{SERVICE}/VerificationCheck"),
        &[("To", SENT_TO), ("Code", &code)],
    )
    .await;
    assert_eq!(checked.body["status"], "approved", "{}", checked.body);

    // The attempt log lists the email attempt with the address masked.
    let attempts = v2(&app, "GET", "/v2/Attempts", &[("Channel", "email")]).await;
    let listed = attempts.body["attempts"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{}", attempts.body);
    assert_eq!(listed[0]["channel"], "email");
    assert_eq!(listed[0]["channel_data"]["to"], MASKED);
    assert_eq!(listed[0]["conversion_status"], "converted");
    let by_address = v2(&app, "GET", "/v2/Attempts", &[("ChannelData.To", SENT_TO)]).await;
    assert_eq!(by_address.body["attempts"].as_array().unwrap().len(), 1);
    assert!(!attempts.body.to_string().contains("Jane.Doe"));
}

/// Logs in to the console and returns the attempts page.
async fn console_attempts(app: &TestApp) -> String {
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = browser
        .post(app.url("/console/login"))
        .form(&[("key", API_KEY)])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::SEE_OTHER);
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let page = browser
        .get(app.url("/console/attempts"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    page.text().await.unwrap()
}

#[tokio::test]
async fn the_console_shows_email_attempts_masked() {
    let sink = SmtpSink::start(false).await;
    let app = spawn_app_with(&email_settings(&sink, &[])).await;
    assert_ok(
        send_email(&app, ADDRESS, None).await,
        "Verification code sent!",
    )
    .await;
    let page = console_attempts(&app).await;
    assert!(page.contains(MASKED), "{page}");
    assert!(!page.contains("Jane.Doe"), "the address in clear");
    assert!(page.contains("email"), "the channel");
}

/// Every byte of the SQLite files (database and WAL).
fn sqlite_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut all = Vec::new();
    for name in ["verifyd.db", "verifyd.db-wal"] {
        if let Ok(b) = std::fs::read(dir.join(name)) {
            all.extend(b);
        }
    }
    all
}

fn holds(haystack: &[u8], needle: &str) -> bool {
    let needle = needle.to_ascii_lowercase();
    haystack
        .to_ascii_lowercase()
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn sqlite_keeps_the_address_only_as_digest_and_ciphertext() {
    let sink = SmtpSink::start(false).await;
    let app = spawn_app_with(&email_settings(&sink, &[])).await;
    assert_ok(
        send_email(&app, ADDRESS, None).await,
        "Verification code sent!",
    )
    .await;
    let code = code_of(&parse(&sink.mails()[0]).text);
    assert_ok(
        app.verify(SENT_TO, &code).await,
        "Verification code is correct!",
    )
    .await;
    let (dir, _) = app.stop().await;
    let conn = rusqlite::Connection::open(dir.path().join("verifyd.db")).unwrap();
    let sealed: Vec<Vec<u8>> = conn
        .prepare("SELECT phone_sealed FROM verifications")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(sealed.len(), 1, "the verification is stored");
    let logged: i64 = conn
        .query_row(
            "SELECT count(*) FROM verification_attempts WHERE channel = 'email' AND prefix IS NULL AND country IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        logged, 2,
        "the send and the check, with no prefix or country"
    );
    drop(conn);
    let bytes = sqlite_bytes(dir.path());
    for part in ["jane.doe", "example.com"] {
        assert!(!holds(&bytes, part), "{part} in clear in the SQLite files");
    }
}

#[tokio::test]
async fn postgres_keeps_the_address_only_as_digest_and_ciphertext() {
    let Some(db) = postgres_or_skip().await else {
        return;
    };
    let sink = SmtpSink::start(false).await;
    let url = db.url();
    let app = spawn_app_with(&email_settings(
        &sink,
        &[("VERIFYD_DATABASE_URL", url.as_str())],
    ))
    .await;
    assert_ok(
        send_email(&app, ADDRESS, None).await,
        "Verification code sent!",
    )
    .await;
    let code = code_of(&parse(&sink.mails()[0]).text);
    assert_ok(
        app.verify(SENT_TO, &code).await,
        "Verification code is correct!",
    )
    .await;
    app.stop().await;
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    for table in [
        "verifications",
        "verification_attempts",
        "send_attempts",
        "event_outbox",
    ] {
        let dump: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT string_agg(t::text, ' ') FROM {table} t"
        )))
        .fetch_one(&mut conn)
        .await
        .unwrap_or(None);
        let dump = dump.unwrap_or_default().to_ascii_lowercase();
        if table == "verifications" || table == "verification_attempts" {
            assert!(!dump.is_empty(), "{table} has rows");
        }
        for part in ["jane.doe", "example.com"] {
            assert!(!dump.contains(part), "{part} in clear in {table}");
            let hex = hex_of(part);
            assert!(!dump.contains(&hex), "{part} as bytea in {table}");
        }
    }
}

fn hex_of(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn a_failed_email_never_falls_back_to_a_number_channel() {
    // The server refuses the mailbox; sms is next in the fallback order, but an address has no
    // number to fall back to.
    let sink = SmtpSink::start(true).await;
    let app = spawn_app_with(&email_settings(
        &sink,
        &[("VERIFYD_CHANNEL_FALLBACK", "email,sms")],
    ))
    .await;
    let refused = assert_error(send_email(&app, ADDRESS, None).await, 400, "invalid_email").await;
    assert!(!refused.to_string().contains("Jane"), "{refused}");
    assert!(sink.mails().is_empty());
    assert!(app.outbox().await.is_empty(), "no SMS went anywhere");
}
