//! The real binary as an operator runs it: restart durability (kill -9 included), the generated
//! secret and API key, graceful shutdown, log hygiene, and the CLI commands.

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
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    stdout: Arc<Mutex<String>>,
    pub stderr: Arc<Mutex<String>>,
    http: reqwest::Client,
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
) {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if let (Some(tx), Some(rest)) = (&found, line.split("listening on ").nth(1)) {
                let _ = tx.send(
                    rest.split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned(),
                );
            }
            let mut s = sink.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
}

impl Server {
    pub fn start(dir: &Path, env: &[(&str, &str)], key: &str) -> Server {
        let mut child = command(dir, env)
            .arg("serve")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("verifyd starts");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        capture(child.stdout.take().unwrap(), Arc::clone(&stdout), None);
        capture(child.stderr.take().unwrap(), Arc::clone(&stderr), Some(tx));
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

    fn kill_9(mut self) {
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
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = server.child.wait().unwrap();
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
    let logs = server.stderr.lock().unwrap().clone();
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
    assert!(server.stdout.lock().unwrap().contains(&code));
}

pub fn run(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> (i32, String, String) {
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
