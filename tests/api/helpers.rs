//! Test harness: a real verifyd on port 0 with its own SQLite file, its own secret and key, and a
//! manual clock the test moves; plus helpers that speak the HTTP API like a client would.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;
use verifyd::app::Application;
use verifyd::clock::ManualClock;
use verifyd::config::{Config, Sources};

pub const API_KEY: &str = "test-api-key-0123456789";
pub const SECRET: &str = "test-secret-0123456789-0123456789-abcdef";
/// A US number (the default allowlist) that libphonenumber accepts.
pub const US_NUMBER: &str = "+14155552671";

static TRACING: LazyLock<()> = LazyLock::new(|| {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = verifyd::telemetry::init(
            verifyd::config::LogFormat::Pretty,
            "debug",
            verifyd::telemetry::Writer::Direct,
        );
    }
});

/// A running verifyd and a client for it.
pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub clock: Arc<ManualClock>,
    pub dir: TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// The settings every test app starts from; `overrides` replace or add.
pub fn settings(dir: &TempDir, overrides: &[(&str, &str)]) -> HashMap<String, String> {
    let mut map: HashMap<String, String> = [
        ("VERIFYD_ADDR", "127.0.0.1:0".to_owned()),
        (
            "VERIFYD_DATABASE_URL",
            format!("sqlite://{}", dir.path().join("verifyd.db").display()),
        ),
        ("VERIFYD_SECRET", SECRET.to_owned()),
        ("VERIFYD_API_KEYS", API_KEY.to_owned()),
        // Tests send to one number many times; the tests of these two layers turn them on.
        ("VERIFYD_RESEND_COOLDOWN", "0".to_owned()),
        ("VERIFYD_RATE_LIMIT_PHONE_MAX", "0".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for (k, v) in overrides {
        map.insert((*k).to_owned(), (*v).to_owned());
    }
    map
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

pub async fn spawn_app_with(overrides: &[(&str, &str)]) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    spawn_app_in(dir, overrides, Arc::new(ManualClock::starting_now())).await
}

/// Starts an app whose directory holds a `verifyd.toml` with `toml` (read as the binary reads it).
pub async fn spawn_app_with_toml(toml: &str, overrides: &[(&str, &str)]) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("verifyd.toml"), toml).expect("write verifyd.toml");
    spawn_app_in(dir, overrides, Arc::new(ManualClock::starting_now())).await
}

/// The configuration a test app in `dir` gets (env map plus the directory's files).
pub fn load_config(
    dir: &TempDir,
    overrides: &[(&str, &str)],
) -> Result<Config, verifyd::config::ConfigError> {
    let map = settings(dir, overrides);
    let sources = Sources::load(dir.path(), move |k| map.get(k).cloned())?;
    Config::from_sources(&sources)
}

/// Starts an app on an existing directory (to restart on the same database) and clock.
pub async fn spawn_app_in(
    dir: TempDir,
    overrides: &[(&str, &str)],
    clock: Arc<ManualClock>,
) -> TestApp {
    LazyLock::force(&TRACING);
    let config = load_config(&dir, overrides).expect("valid test config");
    let app = Application::build_with_clock(config, clock.clone())
        .await
        .expect("app builds");
    let addr = app.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    TestApp {
        addr,
        client: client(None),
        clock,
        dir,
        stop: Some(stop),
        server: Some(server),
    }
}

/// A client, optionally bound to a local source address (127.0.0.x are all loopback).
pub fn client(source: Option<IpAddr>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(30));
    if let Some(ip) = source {
        builder = builder.local_address(ip);
    }
    builder.build().expect("client")
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Stops the server and waits for it, returning the directory (to restart on it).
    pub async fn stop(mut self) -> (TempDir, Arc<ManualClock>) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        let TestApp { dir, clock, .. } = self;
        (dir, clock)
    }

    pub async fn post(&self, path: &str, body: &Value) -> Response {
        self.post_with(&self.client, path, body, &[]).await
    }

    pub async fn post_with(
        &self,
        client: &reqwest::Client,
        path: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> Response {
        let mut req = client.post(self.url(path)).bearer_auth(API_KEY).json(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.expect("request sent")
    }

    pub async fn send_code(&self, recipient: &str) -> Response {
        self.post("/mfa/send-code", &json!({ "recipient": recipient }))
            .await
    }

    pub async fn send_code_via(
        &self,
        client: &reqwest::Client,
        recipient: &str,
        forwarded_for: Option<&str>,
    ) -> Response {
        let headers: Vec<(&str, &str)> = forwarded_for
            .map(|v| ("x-forwarded-for", v))
            .into_iter()
            .collect();
        self.post_with(
            client,
            "/mfa/send-code",
            &json!({ "recipient": recipient }),
            &headers,
        )
        .await
    }

    pub async fn verify(&self, recipient: &str, code: &str) -> Response {
        self.post(
            "/mfa/verify",
            &json!({ "recipient": recipient, "code": code }),
        )
        .await
    }

    /// The dev outbox's messages, oldest first.
    pub async fn outbox(&self) -> Vec<Value> {
        let response = self
            .client
            .get(self.url("/dev/outbox"))
            .bearer_auth(API_KEY)
            .send()
            .await
            .expect("outbox request");
        assert_eq!(response.status(), StatusCode::OK, "the outbox answers");
        let body: Value = response.json().await.expect("outbox json");
        body["messages"]
            .as_array()
            .cloned()
            .expect("messages array")
    }

    /// The code in the latest message to `number`.
    pub async fn last_code(&self, number: &str) -> String {
        let messages = self.outbox().await;
        let message = messages
            .iter()
            .rev()
            .find(|m| m["to"] == number)
            .unwrap_or_else(|| panic!("no message to {number} in {messages:?}"));
        code_in(message["body"].as_str().expect("body"))
    }

    /// Sends a code and returns it (asserting the send succeeded).
    pub async fn send_and_read_code(&self, number: &str) -> String {
        let response = self.send_code(number).await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{:?}",
            response.text().await
        );
        self.last_code(number).await
    }
}

/// The run of digits in a message body.
pub fn code_in(body: &str) -> String {
    body.chars().filter(char::is_ascii_digit).collect()
}

/// A wrong code of the same length as `code`.
pub fn wrong(code: &str) -> String {
    code.chars()
        .map(|c| {
            if c == '9' {
                '0'
            } else {
                char::from(c as u8 + 1)
            }
        })
        .collect()
}

/// Asserts the documented error envelope and returns the body.
pub async fn assert_error(response: Response, status: u16, code: &str) -> Value {
    let got = response.status().as_u16();
    let body: Value = response.json().await.expect("error body is JSON");
    assert_eq!(got, status, "status for {body}");
    assert_eq!(body["statusCode"], status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert!(
        body["error"].is_string() && body["message"].is_string(),
        "{body}"
    );
    let allowed = [
        "statusCode",
        "error",
        "message",
        "code",
        "bucket",
        "retryAfter",
        "attemptsRemaining",
    ];
    for key in body.as_object().expect("object").keys() {
        assert!(
            allowed.contains(&key.as_str()),
            "undocumented field {key} in {body}"
        );
    }
    body
}

/// Asserts a 200 envelope with the given message and returns `data`.
pub async fn assert_ok(response: Response, message: &str) -> Value {
    let status = response.status();
    let body: Value = response.json().await.expect("JSON body");
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["statusCode"], 200);
    assert_eq!(body["message"], message);
    body["data"].clone()
}
