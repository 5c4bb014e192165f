//! Test harness: a real verifyd on port 0 with its own SQLite file, its own secret and key, and a
//! manual clock the test moves; plus helpers that speak the HTTP API like a client would.
//!
//! # Services beyond this process
//!
//! A few tests need something the machine may not have: PostgreSQL, Redis, the `redis-server`
//! binary or Stoplight Prism. Each gets it through one `…_or_skip` function here, used as
//!
//! ```ignore
//! let Some(db) = postgres_or_skip().await else { return };
//! ```
//!
//! Where to find each comes from the environment, defaulting to this machine's loopback:
//!
//! | variable | default |
//! |---|---|
//! | `VERIFYD_TEST_POSTGRES_URL` | `postgres://postgres@127.0.0.1:5432/postgres` (a role that may create databases) |
//! | `VERIFYD_TEST_REDIS_URL` | `redis://127.0.0.1:6379` |
//! | `VERIFYD_TEST_REDIS_SERVER` | `redis-server` (looked up in `PATH`) |
//! | `VERIFYD_TEST_PRISM` | `tools/prism/node_modules/.bin/prism` (needs `node` in `PATH`) |
//!
//! When one does not answer, the test prints `skipped: <test>: <why>` on stderr and passes, so
//! `cargo test` passes on a bare machine. With `VERIFYD_TEST_REQUIRE_ALL=1` (which
//! `scripts/test`, and so CI, sets) the same test fails instead: nothing is skipped silently.

use std::collections::HashMap;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;
use verifyd::app::Application;
use verifyd::clock::ManualClock;
use verifyd::config::{Config, Sources};

use crate::shared::{TestDb, redis_answers};

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

/// Turns a missing service into a failure instead of a skip when set to `1`.
pub const ENV_REQUIRE_ALL: &str = "VERIFYD_TEST_REQUIRE_ALL";
/// A PostgreSQL URL whose role may create and drop databases.
pub const ENV_POSTGRES_URL: &str = "VERIFYD_TEST_POSTGRES_URL";
/// A Redis the tests may write keys to (each test under a prefix of its own).
pub const ENV_REDIS_URL: &str = "VERIFYD_TEST_REDIS_URL";
/// The `redis-server` binary the outage tests start and kill.
pub const ENV_REDIS_SERVER: &str = "VERIFYD_TEST_REDIS_SERVER";
/// The Prism executable of the Twilio conformance tests.
pub const ENV_PRISM: &str = "VERIFYD_TEST_PRISM";

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// `name`'s value, or `default` when it is unset or empty.
fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// Whether missing services fail the tests that need them (`VERIFYD_TEST_REQUIRE_ALL=1`).
pub fn require_all() -> bool {
    matches!(
        std::env::var(ENV_REQUIRE_ALL).as_deref(),
        Ok("1" | "true" | "yes")
    )
}

/// The one rule for a service a test needs and cannot have: fail under
/// `VERIFYD_TEST_REQUIRE_ALL=1`, else say so and give `None`, on which the test returns.
///
/// The line goes straight to the process's stderr, not through `eprintln!`, which the test
/// harness captures and shows only for failing tests: a skip must be seen.
///
/// # Panics
/// When `VERIFYD_TEST_REQUIRE_ALL=1`.
pub fn skip<T>(service: &str, why: &str) -> Option<T> {
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    assert!(
        !require_all(),
        "{test} needs {service}: {why} ({ENV_REQUIRE_ALL}=1, so this fails instead of skipping)"
    );
    let _ = writeln!(std::io::stderr(), "skipped: {test}: needs {service}: {why}");
    None
}

/// A PostgreSQL database of the test's own on `VERIFYD_TEST_POSTGRES_URL`'s server (dropped
/// with the returned [`TestDb`]), or a skip when that server does not answer.
pub async fn postgres_or_skip() -> Option<TestDb> {
    let admin = env_or(ENV_POSTGRES_URL, DEFAULT_POSTGRES_URL);
    match TestDb::create_on(&admin).await {
        Ok(db) => Some(db),
        Err(why) => skip(
            &format!("PostgreSQL ({ENV_POSTGRES_URL}={})", redacted(&admin)),
            &why,
        ),
    }
}

/// `VERIFYD_TEST_REDIS_URL` once it answers PING, or a skip.
pub async fn redis_or_skip() -> Option<String> {
    let url = env_or(ENV_REDIS_URL, DEFAULT_REDIS_URL);
    if redis_answers(&url).await {
        Some(url)
    } else {
        skip(
            &format!("Redis ({ENV_REDIS_URL}={})", redacted(&url)),
            "no answer to PING within a second",
        )
    }
}

/// The `redis-server` binary (`VERIFYD_TEST_REDIS_SERVER`, else found in `PATH`), or a skip.
pub fn redis_server_or_skip() -> Option<PathBuf> {
    let name = env_or(ENV_REDIS_SERVER, "redis-server");
    match executable(&name) {
        Some(path) => Some(path),
        None => skip(
            &format!("the redis-server binary ({ENV_REDIS_SERVER}={name})"),
            "not installed",
        ),
    }
}

/// Prism (`VERIFYD_TEST_PRISM`, else the copy `scripts/test` installs in `tools/prism`) and the
/// `node` that runs it, or a skip.
pub fn prism_or_skip() -> Option<PathBuf> {
    let default = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tools/prism/node_modules/.bin/prism"
    );
    let name = env_or(ENV_PRISM, default);
    let Some(prism) = executable(&name) else {
        return skip(
            &format!("Stoplight Prism ({ENV_PRISM}={name})"),
            "not installed (scripts/test installs it: `npm ci --prefix tools/prism`)",
        );
    };
    if executable("node").is_none() {
        return skip(
            "Stoplight Prism",
            "`node` (Node.js >= 18.20) is not in PATH",
        );
    }
    Some(prism)
}

/// `name` as a path to an existing file, or looked up in `PATH` when it has no `/`.
fn executable(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let path = Path::new(name);
        return path.is_file().then(|| path.to_owned());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// A URL with its password (if any) replaced, for messages.
fn redacted(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("<redacted>"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}
