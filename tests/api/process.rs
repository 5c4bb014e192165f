//! The real binary as an operator runs it: restart durability (kill -9 included), the generated
//! secret and API key, graceful shutdown, log hygiene, and the CLI commands.
//!
//! Longer than ~800 lines on purpose: these tests share the one process harness at the top
//! (spawn, capture, terminate), and every CLI command's test sits next to the others that run
//! the binary the same way.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

const BIN: &str = env!("CARGO_BIN_EXE_verifyd");

/// A `verifyd serve` child process with its output captured.
pub(crate) struct Server {
    child: Child,
    pub(crate) addr: SocketAddr,
    stdout: Arc<Mutex<String>>,
    pub(crate) stderr: Arc<Mutex<String>>,
    /// The threads collecting stdout and stderr: they end at their pipe's end of file.
    readers: Vec<std::thread::JoinHandle<()>>,
    pub(crate) http: reqwest::Client,
    key: String,
}

fn command(dir: &Path, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .env_clear()
        .env("VERIFYD_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "info");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn capture(
    pipe: impl Read + Send + 'static,
    sink: Arc<Mutex<String>>,
    found: Option<mpsc::Sender<String>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if let (Some(tx), Some(rest)) = (&found, line.split("listening on ").nth(1)) {
                let addr: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '[' | ']'))
                    .collect();
                let _ = tx.send(addr);
            }
            let mut s = sink.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    })
}

impl Server {
    pub(crate) fn start(dir: &Path, env: &[(&str, &str)], key: &str) -> Server {
        let mut child = command(dir, env)
            .arg("serve")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("verifyd starts");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let stdout_reader = capture(child.stdout.take().unwrap(), Arc::clone(&stdout), None);
        let stderr_reader = capture(child.stderr.take().unwrap(), Arc::clone(&stderr), Some(tx));
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => a.parse().expect("address in the startup line"),
            Err(_) => {
                let _ = child.kill();
                panic!("verifyd did not start:\n{}", stderr.lock().unwrap());
            }
        };
        Server {
            child,
            addr,
            stdout,
            stderr,
            readers: vec![stdout_reader, stderr_reader],
            http: client(None),
            key: key.to_owned(),
        }
    }

    pub async fn post(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.http
            .post(format!("http://{}{}", self.addr, path))
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    pub async fn last_code(&self) -> String {
        let body: serde_json::Value = self
            .http
            .get(format!("http://{}/dev/outbox", self.addr))
            .bearer_auth(&self.key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        code_in(
            body["messages"].as_array().unwrap().last().unwrap()["body"]
                .as_str()
                .unwrap(),
        )
    }

    /// Starts the process from an async test without blocking its runtime (the process may
    /// call back into servers the test runs, such as the fake Twilio, while it starts).
    pub(crate) async fn start_async(dir: &Path, env: &[(&str, &str)], key: &str) -> Server {
        let dir = dir.to_owned();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let key = key.to_owned();
        tokio::task::spawn_blocking(move || {
            let env: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            Server::start(&dir, &env, &key)
        })
        .await
        .expect("verifyd starts")
    }

    /// Stops the process as an operator does (SIGTERM; SIGKILL if it is still running after
    /// 10 s), waits until everything it wrote has been read, and returns its exit status. Logs
    /// are written by a background thread, so only a finished process has written them all.
    pub(crate) async fn terminate(&mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let exit = loop {
            if let Some(exit) = self.child.try_wait().unwrap() {
                break exit;
            }
            if tokio::time::Instant::now() > deadline {
                let _ = self.child.kill();
                break self.child.wait().unwrap();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        // The readers end at their pipe's end of file, which the exit has just caused.
        let readers: Vec<_> = self.readers.drain(..).collect();
        tokio::task::spawn_blocking(move || {
            for reader in readers {
                let _ = reader.join();
            }
        })
        .await
        .expect("the output readers end");
        exit
    }

    /// Stops the process (as [`terminate`](Self::terminate)) and returns everything it wrote
    /// to stderr (its logs).
    pub(crate) async fn stop(mut self) -> String {
        self.terminate().await;
        self.stderr.lock().unwrap().clone()
    }

    pub(crate) fn kill_9(mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn env_with_keys() -> Vec<(&'static str, &'static str)> {
    vec![("VERIFYD_API_KEYS", API_KEY), ("VERIFYD_SECRET", SECRET)]
}

#[tokio::test]
async fn a_pending_verification_and_its_counts_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &env_with_keys(), API_KEY);
    assert_ok(
        server
            .post("/mfa/send-code", json!({ "recipient": US_NUMBER }))
            .await,
        "Verification code sent!",
    )
    .await;
    let code = server.last_code().await;
    for _ in 0..2 {
        server
            .post(
                "/mfa/verify",
                json!({ "recipient": US_NUMBER, "code": wrong(&code) }),
            )
            .await;
    }
    server.kill_9();

    let server = Server::start(dir.path(), &env_with_keys(), API_KEY);
    let body = assert_error(
        server
            .post(
                "/mfa/verify",
                json!({ "recipient": US_NUMBER, "code": wrong(&code) }),
            )
            .await,
        400,
        "incorrect_code",
    )
    .await;
    assert_eq!(
        body["attemptsRemaining"], 2,
        "the two checks before the crash still count"
    );
    assert_ok(
        server
            .post(
                "/mfa/verify",
                json!({ "recipient": US_NUMBER, "code": code }),
            )
            .await,
        "Verification code is correct!",
    )
    .await;
}

#[tokio::test]
async fn a_lock_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &env_with_keys(), API_KEY);
    server
        .post("/mfa/send-code", json!({ "recipient": US_NUMBER }))
        .await;
    let code = server.last_code().await;
    for _ in 0..5 {
        server
            .post(
                "/mfa/verify",
                json!({ "recipient": US_NUMBER, "code": wrong(&code) }),
            )
            .await;
    }
    server.kill_9();
    let server = Server::start(dir.path(), &env_with_keys(), API_KEY);
    assert_error(
        server
            .post(
                "/mfa/verify",
                json!({ "recipient": US_NUMBER, "code": code }),
            )
            .await,
        429,
        "max_check_attempts",
    )
    .await;
}

#[tokio::test]
async fn first_start_generates_a_secret_file_and_an_api_key_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    let first = Server::start(dir.path(), &[], "");
    // The key is printed to stdout right before the listener binds.
    let stdout = first.stdout.lock().unwrap().clone();
    let key = stdout
        .split_whitespace()
        .find(|w| w.starts_with("vfy_"))
        .unwrap_or_else(|| panic!("no key on stdout:\n{stdout}"))
        .to_owned();
    let stderr = first.stderr.lock().unwrap().clone();
    assert!(!stderr.contains(&key), "the key must not be in the logs");
    let secret = dir.path().join("verifyd.secret");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let secret_text = std::fs::read_to_string(&secret).unwrap();
    assert!(!stderr.contains(secret_text.trim()));
    let mut first = first;
    first.key = key.clone();
    assert_ok(
        first
            .post("/mfa/send-code", json!({ "recipient": US_NUMBER }))
            .await,
        "Verification code sent!",
    )
    .await;
    let code = first.last_code().await;
    first.kill_9();

    let second = Server::start(dir.path(), &[], &key);
    assert!(
        !second.stdout.lock().unwrap().contains("vfy_"),
        "printed only once"
    );
    assert_eq!(
        std::fs::read_to_string(&secret).unwrap(),
        secret_text,
        "the secret is reused"
    );
    assert_ok(
        second
            .post(
                "/mfa/verify",
                json!({ "recipient": US_NUMBER, "code": code }),
            )
            .await,
        "Verification code is correct!",
    )
    .await;
    let mut second = second;
    second.key = "vfy_not-the-key-000000".to_owned();
    assert_error(
        second
            .post("/mfa/send-code", json!({ "recipient": US_NUMBER }))
            .await,
        401,
        "unauthorized",
    )
    .await;
}

#[tokio::test]
async fn sigterm_stops_the_server_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &env_with_keys(), API_KEY);
    assert_ok(
        server
            .post("/mfa/send-code", json!({ "recipient": US_NUMBER }))
            .await,
        "Verification code sent!",
    )
    .await;
    let exit = server.terminate().await;
    assert_eq!(exit.code(), Some(0));
    assert!(server.stderr.lock().unwrap().contains("SIGTERM"));
}

#[tokio::test]
async fn trace_logs_of_a_full_flow_hold_no_code_and_no_full_number() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = env_with_keys();
    env.push(("RUST_LOG", "trace"));
    let server = Server::start(dir.path(), &env, API_KEY);
    assert_ok(
        server
            .post("/mfa/send-code", json!({ "recipient": US_NUMBER }))
            .await,
        "Verification code sent!",
    )
    .await;
    let code = server.last_code().await;
    server
        .post(
            "/mfa/verify",
            json!({ "recipient": US_NUMBER, "code": wrong(&code) }),
        )
        .await;
    assert_ok(
        server
            .post(
                "/mfa/verify",
                json!({ "recipient": US_NUMBER, "code": code }),
            )
            .await,
        "Verification code is correct!",
    )
    .await;
    let stdout = Arc::clone(&server.stdout);
    let logs = server.stop().await;
    assert!(logs.len() > 1000, "trace logging was on:\n{logs}");
    assert!(logs.contains("+1415***2671"), "numbers appear masked");
    for secret in [
        code.as_str(),
        wrong(&code).as_str(),
        "4155552671",
        SECRET,
        API_KEY,
    ] {
        assert!(!logs.contains(secret), "{secret} leaked into the logs");
    }
    // The code does go to stdout, where the console sender prints it.
    assert!(stdout.lock().unwrap().contains(&code));
}

pub(crate) fn run(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> (i32, String, String) {
    let out = command(dir, env).args(args).output().expect("verifyd runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cli_send_and_check_run_the_same_engine_against_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let env = env_with_keys();
    let (code, stdout, stderr) = run(dir.path(), &env, &["send", US_NUMBER]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("\"status\": \"pending\""), "{stdout}");
    let sms = stdout
        .lines()
        .find(|l| l.contains("[console sms]"))
        .expect("the console SMS");
    let otp: String = sms.rsplit(": ").next().unwrap().trim().to_owned();
    let (code, _, stderr) = run(dir.path(), &env, &["check", US_NUMBER, &wrong(&otp)]);
    assert_eq!(code, 1);
    assert!(stderr.contains("incorrect_code"), "{stderr}");
    let (code, stdout, _) = run(dir.path(), &env, &["check", US_NUMBER, &otp]);
    assert_eq!(code, 0);
    assert!(stdout.contains("\"status\": \"approved\""), "{stdout}");
    // Policy applies to the CLI too.
    let (code, _, stderr) = run(dir.path(), &env, &["send", "+14165550123"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("country_not_allowed"), "{stderr}");
}

#[test]
fn config_prints_effective_settings_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env.development"),
        "TWILIO_ACCOUNT_SID=AC0123456789abcdef0123456789abcdef\n\
         TWILIO_AUTH_TOKEN=fedcba9876543210fedcba9876543210\n\
         TWILIO_SERVICE_SID=VA0123456789abcdef0123456789abcdef\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("verifyd.toml"), "rate_limit_ip_max = 7\n").unwrap();
    let (code, stdout, stderr) = run(dir.path(), &[("VERIFYD_SECRET", SECRET)], &["config"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("TWILIO_ACCOUNT_SID") && stdout.contains("(.env.development)"),
        "{stdout}"
    );
    assert!(stdout.contains("twilio-verify"), "{stdout}");
    assert!(
        stdout.contains("VERIFYD_RATE_LIMIT_IP_MAX") && stdout.contains("= 7  (verifyd.toml)"),
        "{stdout}"
    );
    assert!(!stdout.contains("fedcba98"), "token redacted:\n{stdout}");
    assert!(!stdout.contains(SECRET), "secret redacted:\n{stdout}");
}

#[test]
fn config_redacts_query_string_secrets_and_userinfo_in_every_url() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("VERIFYD_SECRET", SECRET),
        (
            "VERIFYD_DATABASE_URL",
            "postgres://verifyd@127.0.0.1:5432/verifyd?password=pg-query-pass-1&sslmode=disable",
        ),
        (
            "VERIFYD_REDIS_URL",
            "redis://:redis-pass-2@127.0.0.1:6379/0",
        ),
        ("VERIFYD_SMS_SENDER", "webhook"),
        (
            "VERIFYD_SMS_WEBHOOK_URL",
            "https://gw-user:gw-pass-3@sms.example.com/hook?token=gw-token-4&region=us",
        ),
        ("VERIFYD_SMS_WEBHOOK_SECRET", "webhook-secret-0123456789"),
        ("VERIFYD_AUTH", "both"),
        ("VERIFYD_API_KEYS", API_KEY),
        (
            "VERIFYD_JWT_JWKS_URL",
            "https://tenant.example.com/.well-known/jwks.json?api_key=jwks-key-5&access_token=jwks-token-6",
        ),
        ("VERIFYD_JWT_ISSUER", "https://tenant.example.com/"),
        ("VERIFYD_JWT_AUDIENCE", "https://verifyd.example/api"),
    ];
    let leaks = [
        "pg-query-pass-1",
        "redis-pass-2",
        "gw-pass-3",
        "gw-token-4",
        "jwks-key-5",
        "jwks-token-6",
        SECRET,
        API_KEY,
    ];
    let (code, stdout, stderr) = run(dir.path(), &env, &["config"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    for leak in leaks {
        assert!(
            !stdout.contains(leak) && !stderr.contains(leak),
            "{leak} printed:\n{stdout}{stderr}"
        );
    }
    for shown in [
        "postgres://verifyd@127.0.0.1:5432/verifyd?password=<redacted>&sslmode=disable",
        "redis://:<redacted>@127.0.0.1:6379/0",
        "https://gw-user:<redacted>@sms.example.com/hook?token=<redacted>&region=us",
        "jwks.json?api_key=<redacted>&access_token=<redacted>",
    ] {
        assert!(stdout.contains(shown), "{shown} missing from:\n{stdout}");
    }
    // A bad value is named, still redacted.
    let mut bad = env.to_vec();
    bad.push(("VERIFYD_ENV", "production"));
    bad.retain(|(k, _)| *k != "VERIFYD_SMS_WEBHOOK_URL");
    bad.push((
        "VERIFYD_SMS_WEBHOOK_URL",
        "http://gw-user:gw-pass-3@sms.example.com/hook?token=gw-token-4",
    ));
    let (code, stdout, stderr) = run(dir.path(), &bad, &["config"]);
    assert_eq!(code, 64, "{stdout}{stderr}");
    assert!(
        stderr.contains(
            "VERIFYD_SMS_WEBHOOK_URL=\"http://gw-user:<redacted>@sms.example.com/hook?token=<redacted>\""
        ),
        "{stderr}"
    );
    for leak in leaks {
        assert!(
            !stdout.contains(leak) && !stderr.contains(leak),
            "{leak} printed:\n{stdout}{stderr}"
        );
    }
}

#[test]
fn bad_settings_exit_64_naming_every_variable() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("VERIFYD_VALID_COUNTRY_CODES", "US,XX"),
        ("VERIFYD_RATE_LIMIT_IP_INTERVAL", "soon"),
        ("VERIFYD_SECRET", "too-short"),
        ("TWILIO_SERVICE_SID", "MG123"),
    ];
    for cmd in ["config", "serve"] {
        let (code, _, stderr) = run(dir.path(), &env, &[cmd]);
        assert_eq!(code, 64, "{cmd}: {stderr}");
        for name in [
            "VERIFYD_VALID_COUNTRY_CODES",
            "VERIFYD_RATE_LIMIT_IP_INTERVAL",
            "VERIFYD_SECRET",
            "TWILIO_SERVICE_SID",
        ] {
            assert!(
                stderr.contains(name),
                "{cmd}: {name} not named in:\n{stderr}"
            );
        }
        assert!(
            !stderr.contains("too-short"),
            "secret value echoed:\n{stderr}"
        );
    }
}

async fn metrics_text(http: &reqwest::Client, url: &str, key: Option<&str>) -> (u16, String) {
    let mut req = http.get(url);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let response = req.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// The value of one sample line (`name{labels} value`), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn metrics_count_sends_checks_refusals_and_limits_with_fixed_labels() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &env_with_keys(), API_KEY);
    let post = |path: &'static str, body: serde_json::Value| server.post(path, body);
    assert_ok(
        post("/mfa/send-code", json!({ "recipient": US_NUMBER })).await,
        "Verification code sent!",
    )
    .await;
    let code = server.last_code().await;
    post(
        "/mfa/verify",
        json!({ "recipient": US_NUMBER, "code": wrong(&code) }),
    )
    .await;
    assert_ok(
        post(
            "/mfa/verify",
            json!({ "recipient": US_NUMBER, "code": code }),
        )
        .await,
        "Verification code is correct!",
    )
    .await;
    post("/mfa/send-code", json!({ "recipient": "+14165550123" })).await; // country
    post("/mfa/send-code", json!({ "recipient": "+14155552671" })).await; // cooldown
    let url = format!("http://{}/metrics", server.addr);
    let (status, _) = metrics_text(&server.http, &url, None).await;
    assert_eq!(status, 401, "on the main listener /metrics needs the key");
    let (status, text) = metrics_text(&server.http, &url, Some(API_KEY)).await;
    assert_eq!(status, 200);
    let expect = [
        (
            r#"verifyd_sms_sent_total{provider="local",channel="sms",country="US",outcome="sent"}"#,
            1.0,
        ),
        (r#"verifyd_verifications_total{result="approved"}"#, 1.0),
        (r#"verifyd_verifications_total{result="incorrect"}"#, 1.0),
        (r#"verifyd_policy_refused_total{reason="country"}"#, 1.0),
        (r#"verifyd_rate_limited_total{bucket="cooldown"}"#, 1.0),
        (
            r#"verifyd_http_requests_total{route="/mfa/send-code",status="200"}"#,
            1.0,
        ),
        (
            r#"verifyd_http_requests_total{route="/mfa/verify",status="400"}"#,
            1.0,
        ),
    ];
    for (series, value) in expect {
        assert_eq!(sample(&text, series), Some(value), "{series} in:\n{text}");
    }
    assert!(
        text.contains("verifyd_http_request_duration_seconds_bucket{route=\"/mfa/send-code\""),
        "{text}"
    );
    assert!(
        text.contains(
            "verifyd_provider_request_duration_seconds_bucket{provider=\"local\",op=\"start\""
        ),
        "{text}"
    );
    // The SQLite store's group commit: batches and their time.
    for series in [
        "verifyd_sqlite_batch_size_bucket{le=\"512\"}",
        "verifyd_sqlite_batch_duration_seconds_bucket{le=\"10\"}",
    ] {
        assert!(
            sample(&text, series).is_some_and(|n| n >= 1.0),
            "{series} in:\n{text}"
        );
    }
    for leaked in ["4155552671", "4165550123", "127.0.0.1", &code] {
        assert!(!text.contains(leaked), "{leaked} in a label:\n{text}");
    }
}

#[tokio::test]
async fn metrics_can_have_their_own_public_listener() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics_addr = format!("127.0.0.1:{port}");
    let mut env = env_with_keys();
    env.push(("VERIFYD_METRICS_ADDR", &metrics_addr));
    let server = Server::start(dir.path(), &env, API_KEY);
    let (status, text) = metrics_text(
        &server.http,
        &format!("http://{metrics_addr}/metrics"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(text.contains("verifyd_http_requests_total") || text.is_empty() || text.contains('#'));
    let (status, _) = metrics_text(
        &server.http,
        &format!("http://{}/metrics", server.addr),
        Some(API_KEY),
    )
    .await;
    assert_eq!(status, 404, "not on the main listener then");
}

#[tokio::test]
async fn json_logs_have_one_line_per_request_with_its_facts() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = env_with_keys();
    env.push(("VERIFYD_LOG_FORMAT", "json"));
    let server = Server::start(dir.path(), &env, API_KEY);
    server
        .http
        .post(format!("http://{}/mfa/send-code", server.addr))
        .bearer_auth(API_KEY)
        .header("x-request-id", "req-json-1")
        .json(&json!({ "recipient": US_NUMBER }))
        .send()
        .await
        .unwrap();
    let code = server.last_code().await;
    server
        .post(
            "/mfa/verify",
            json!({ "recipient": US_NUMBER, "code": wrong(&code) }),
        )
        .await;
    // The request line is written just after the answer goes out: wait for it (bounded).
    crate::shared::wait_until(
        Duration::from_secs(10),
        "the verify request's log line",
        || async { server.stderr.lock().unwrap().contains("incorrect_code") },
    )
    .await;
    let logs = server.stderr.lock().unwrap().clone();
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let requests: Vec<&serde_json::Value> =
        lines.iter().filter(|l| l["message"] == "request").collect();
    // Request id, route, masked number and client key are fields of the request span.
    let send = requests
        .iter()
        .find(|l| l["span"]["route"] == "/mfa/send-code")
        .expect("a send-code line");
    assert_eq!(send["span"]["id"], "req-json-1");
    assert_eq!(send["status"], 200);
    assert_eq!(send["span"]["phone"], "+1415***2671");
    assert_eq!(send["span"]["client"], "127.0.0.1");
    assert_eq!(send["outcome"], "ok");
    assert!(send["latency_ms"].as_f64().is_some());
    let verify = requests
        .iter()
        .find(|l| l["span"]["route"] == "/mfa/verify")
        .expect("a verify line");
    assert_eq!(verify["outcome"], "incorrect_code");
    assert!(!logs.contains(&code) && !logs.contains("4155552671"));
}

/// A webhook SMS gateway on 127.0.0.1 that answers only when released, recording what it got.
async fn slow_gateway() -> (
    SocketAddr,
    tokio::sync::mpsc::Receiver<String>,
    tokio::sync::oneshot::Sender<()>,
) {
    use axum::routing::post;
    let (got_tx, got_rx) = tokio::sync::mpsc::channel::<String>(4);
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    let release = Arc::new(tokio::sync::Mutex::new(Some(release_rx)));
    let app = axum::Router::new().route(
        "/sms",
        post(move |body: String| {
            let got = got_tx.clone();
            let release = Arc::clone(&release);
            async move {
                let _ = got.send(body).await;
                if let Some(rx) = release.lock().await.take() {
                    let _ = rx.await;
                }
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, got_rx, release_tx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_slow_send_lets_it_finish_and_persist() {
    let dir = tempfile::tempdir().unwrap();
    let (gateway, mut got, release) = slow_gateway().await;
    let url = format!("http://{gateway}/sms");
    let mut env = env_with_keys();
    env.extend([
        ("VERIFYD_SMS_SENDER", "webhook"),
        ("VERIFYD_SMS_WEBHOOK_URL", url.as_str()),
        (
            "VERIFYD_SMS_WEBHOOK_SECRET",
            "webhook-secret-0123456789-0123456789",
        ),
    ]);
    let mut server = Server::start(dir.path(), &env, API_KEY);
    let http = server.http.clone();
    let send_url = format!("http://{}/mfa/send-code", server.addr);
    let in_flight = tokio::spawn(async move {
        http.post(send_url)
            .bearer_auth(API_KEY)
            .json(&json!({ "recipient": US_NUMBER }))
            .send()
            .await
            .unwrap()
    });
    // The gateway has the message: the send is in flight. Now stop the server.
    let message = tokio::time::timeout(Duration::from_secs(20), got.recv())
        .await
        .unwrap()
        .unwrap();
    let code: String = serde_json::from_str::<serde_json::Value>(&message).unwrap()["body"]
        .as_str()
        .map(code_in)
        .unwrap();
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // New connections are refused once it is stopping; the in-flight one finishes.
    let _ = release.send(());
    let response = tokio::time::timeout(Duration::from_secs(20), in_flight)
        .await
        .unwrap()
        .unwrap();
    assert_ok(response, "Verification code sent!").await;
    let exit = tokio::task::spawn_blocking(move || {
        let exit = server.child.wait().unwrap();
        (exit, server)
    })
    .await
    .unwrap();
    assert_eq!(exit.0.code(), Some(0));
    drop(exit.1);

    let env: Vec<(&str, &str)> = env_with_keys();
    let server = Server::start(dir.path(), &env, API_KEY);
    assert_ok(
        server
            .post(
                "/mfa/verify",
                json!({ "recipient": US_NUMBER, "code": code }),
            )
            .await,
        "Verification code is correct!",
    )
    .await;
}

/// A flood of refusals from one client is summarised in the log (issue 24): its first refusals
/// of each outcome are logged line by line, the rest only counted, and one line per outcome and
/// client says how many there were in all (here on shutdown, which ends the window).
#[tokio::test]
async fn a_flood_of_refusals_is_summarised_in_the_log_not_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &env_with_keys(), API_KEY);
    for _ in 0..30 {
        let answer = server
            .http
            .post(format!("http://{}/mfa/send-code", server.addr))
            .bearer_auth("not-the-api-key-0123456789")
            .json(&json!({ "recipient": US_NUMBER }))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 401);
    }
    for _ in 0..3 {
        let answer = server
            .post("/mfa/send-code", json!({ "recipient": "+1 not a number" }))
            .await;
        assert_eq!(answer.status(), 400);
    }
    let logs = server.stop().await;
    let lines = |needle: &str| logs.lines().filter(|l| l.contains(needle)).count();
    let per_request = |outcome: &str| {
        logs.lines()
            .filter(|l| l.contains(" request ") || l.ends_with(" request"))
            .filter(|l| {
                l.contains(&format!("outcome=\"{outcome}\""))
                    || l.contains(&format!("outcome={outcome}"))
            })
            .count()
    };
    assert_eq!(per_request("unauthorized"), 10, "{logs}");
    assert_eq!(per_request("invalid_phone_number"), 3, "{logs}");
    assert_eq!(lines("refusals summarised"), 1, "{logs}");
    let summary = logs
        .lines()
        .find(|l| l.contains("refusals summarised"))
        .unwrap();
    assert!(
        summary.contains("refused=30") && summary.contains("not_logged=20"),
        "{summary}"
    );
    assert!(summary.contains("client=127.0.0.1"), "{summary}");
}

/// The fraud guard's decisions are summarised in the log under a flood too (issue 24): in
/// monitor mode, with an allowance of 2 unanswered codes per unproven destination, 30 sends to
/// one prefix make 28 "would refuse" decisions: 10 lines, then one summary (on shutdown).
#[tokio::test]
async fn a_flood_of_fraud_guard_decisions_is_summarised_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = env_with_keys();
    env.extend([
        ("VERIFYD_FRAUD_GUARD", "monitor"),
        ("VERIFYD_FRAUD_GUARD_UNPROVEN_MAX", "2"),
        ("VERIFYD_RATE_LIMIT_IP_MAX", "0"),
        ("VERIFYD_RATE_LIMIT_PREFIX_MAX", "0"),
        ("VERIFYD_RATE_LIMIT_COUNTRY_MAX", "0"),
        ("VERIFYD_RATE_LIMIT_GLOBAL_MAX", "0"),
    ]);
    let server = Server::start(dir.path(), &env, API_KEY);
    for i in 0..30 {
        let to = format!("+1650253{:04}", 4000 + i);
        assert_ok(
            server
                .post("/mfa/send-code", json!({ "recipient": to }))
                .await,
            "Verification code sent!",
        )
        .await;
    }
    let logs = server.stop().await;
    let decided = logs
        .lines()
        .filter(|l| l.contains("fraud guard: would_refuse"))
        .count();
    assert_eq!(decided, 10, "{logs}");
    let summaries: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("fraud guard decisions summarised"))
        .collect();
    assert_eq!(summaries.len(), 1, "{logs}");
    assert!(
        summaries[0].contains("total=28") && summaries[0].contains("not_logged=18"),
        "{}",
        summaries[0]
    );
}
