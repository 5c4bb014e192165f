//! `verifyd doctor` (the real binary) against the fake Twilio and real stores: a checklist with
//! a fix per failure, exit 0 only when every check passes, nothing changed, no secret printed.

use std::process::Stdio;
use std::time::Duration;

use crate::fake_twilio::*;
use crate::helpers::*;

/// Runs `verifyd doctor` in `dir` with `env` (nothing else), bounded in time.
async fn doctor(dir: &std::path::Path, env: &[(String, String)]) -> (i32, String, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_verifyd"));
    cmd.current_dir(dir)
        .env_clear()
        .arg("doctor")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("doctor finishes")
        .expect("verifyd runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    for secret in [AUTH_TOKEN, SECRET, API_KEY, "0000000000000000"] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "doctor printed a secret:\n{stdout}{stderr}"
        );
    }
    // Shown with --nocapture, and on failure.
    println!("$ verifyd doctor  (exit {:?})\n{stdout}", out.status.code());
    (out.status.code().unwrap_or(-1), stdout, stderr)
}

/// twilio-verify against the fake, with explicit secret and keys.
fn verify_env(fake: &FakeTwilio, overrides: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut base = verify_settings(&fake.url());
    base.push(("VERIFYD_SECRET".to_owned(), SECRET.to_owned()));
    base.push(("VERIFYD_API_KEYS".to_owned(), API_KEY.to_owned()));
    with(&base, overrides)
}

/// The line of check `title`, which must be there.
fn line<'a>(stdout: &'a str, title: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l[l.find(' ').map_or(0, |i| i + 1)..].starts_with(&format!("{title}:")))
        .unwrap_or_else(|| panic!("no `{title}` line in:\n{stdout}"))
}

#[tokio::test]
async fn doctor_passes_with_good_credentials_a_service_and_a_matching_bucket() {
    let fake = FakeTwilio::start().await;
    fake.seed_rate_limit("end_user_ip_address", &[(4, 60)]);
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = doctor(dir.path(), &verify_env(&fake, &[])).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    for (title, words) in [
        ("settings", "provider twilio-verify"),
        ("store", "does not exist yet"),
        ("secrets", "1 secret(s) from VERIFYD_SECRET"),
        ("limiter", "memory"),
        ("clock", "after this binary's build"),
        ("twilio credentials", ACCOUNT_SID),
        ("twilio verify service", SERVICE_SID),
        ("twilio code length", "6 digits"),
        ("twilio channels", "sms, call"),
        ("twilio ip bucket", "one bucket of 4 per 60 s"),
        ("twilio clock", "of Twilio's Date header"),
    ] {
        let l = line(&stdout, title);
        assert!(l.starts_with('✔') && l.contains(words), "{l}\n{stdout}");
    }
    assert!(stdout.ends_with("all checks passed\n"), "{stdout}");
    assert!(
        fake.writes().is_empty(),
        "doctor only reads: {:#?}",
        fake.writes()
    );
    assert!(
        !dir.path().join("verifyd.db").exists(),
        "doctor creates no database"
    );
    fake.assert_no_violations();
}

#[tokio::test]
async fn doctor_reports_bad_credentials_20003_with_the_fix() {
    let fake = FakeTwilio::start().await;
    let dir = tempfile::tempdir().unwrap();
    let env = verify_env(
        &fake,
        &[("TWILIO_AUTH_TOKEN", "0000000000000000000000000000000a")],
    );
    let (code, stdout, stderr) = doctor(dir.path(), &env).await;
    assert_eq!(code, 1, "{stdout}{stderr}");
    let l = line(&stdout, "twilio credentials");
    assert!(l.starts_with('✘') && l.contains("20003"), "{stdout}");
    assert!(
        stdout.contains("fix: check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"),
        "{stdout}"
    );
    assert!(stdout.contains("1 check(s) failed"), "{stdout}");
}

#[tokio::test]
async fn doctor_reports_a_missing_service_20404_with_the_fix() {
    let fake = FakeTwilio::start().await;
    let dir = tempfile::tempdir().unwrap();
    let missing = "VAffffffffffffffffffffffffffffffff";
    let env = verify_env(&fake, &[("TWILIO_SERVICE_SID", missing)]);
    let (code, stdout, stderr) = doctor(dir.path(), &env).await;
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        line(&stdout, "twilio credentials").starts_with('✔'),
        "{stdout}"
    );
    let l = line(&stdout, "twilio verify service");
    assert!(
        l.starts_with('✘') && l.contains(missing) && l.contains("20404"),
        "{stdout}"
    );
    assert!(
        stdout.contains("and set TWILIO_SERVICE_SID to its VA… SID"),
        "{stdout}"
    );
}

#[tokio::test]
async fn doctor_reports_a_twilio_bucket_that_differs_from_ours() {
    let fake = FakeTwilio::start().await;
    fake.seed_rate_limit("end_user_ip_address", &[(10, 3600)]);
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = doctor(dir.path(), &verify_env(&fake, &[])).await;
    assert_eq!(code, 1, "{stdout}{stderr}");
    let l = line(&stdout, "twilio ip bucket");
    assert!(
        l.starts_with('✘') && l.contains("10 per 3600 s") && l.contains("4 per 60 s"),
        "{stdout}"
    );
    assert!(
        stdout.contains("fix: run `verifyd twilio sync`"),
        "{stdout}"
    );
    assert!(fake.writes().is_empty(), "doctor never syncs by itself");

    // No RateLimit at all is a mismatch too; with our IP bucket off, nothing is expected.
    let fake = FakeTwilio::start().await;
    let (code, stdout, _) = doctor(dir.path(), &verify_env(&fake, &[])).await;
    assert_eq!(code, 1);
    assert!(
        line(&stdout, "twilio ip bucket").contains("no end_user_ip_address RateLimit"),
        "{stdout}"
    );
    let env = verify_env(&fake, &[("VERIFYD_RATE_LIMIT_IP_MAX", "0")]);
    let (code, stdout, _) = doctor(dir.path(), &env).await;
    assert_eq!(code, 0, "{stdout}");
}

#[tokio::test]
async fn doctor_reports_a_code_length_and_a_channel_the_service_cannot_serve() {
    let fake = FakeTwilio::start().await;
    fake.seed_rate_limit("end_user_ip_address", &[(4, 60)]);
    let dir = tempfile::tempdir().unwrap();
    let env = verify_env(
        &fake,
        &[
            ("VERIFYD_CODE_LENGTH", "8"),
            ("VERIFYD_CHANNELS", "sms,whatsapp"),
        ],
    );
    let (code, stdout, _) = doctor(dir.path(), &env).await;
    assert_eq!(code, 1);
    assert!(
        line(&stdout, "twilio code length").starts_with('✘'),
        "{stdout}"
    );
    assert!(
        stdout.contains("fix: set VERIFYD_CODE_LENGTH=6"),
        "{stdout}"
    );
    assert!(
        line(&stdout, "twilio channels").contains("whatsapp (the service has no WhatsApp sender)"),
        "{stdout}"
    );
    assert!(stdout.contains("2 check(s) failed"), "{stdout}");
}

#[tokio::test]
async fn doctor_checks_the_messaging_service_and_the_from_number() {
    let fake = FakeTwilio::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut base = messaging_settings(&fake.url());
    base.push(("TWILIO_MESSAGING_BASE_URL".to_owned(), fake.url()));
    base.push(("VERIFYD_SECRET".to_owned(), SECRET.to_owned()));
    base.push(("VERIFYD_API_KEYS".to_owned(), API_KEY.to_owned()));

    let (code, stdout, _) = doctor(dir.path(), &base).await;
    assert_eq!(code, 0, "{stdout}");
    assert!(
        line(&stdout, "twilio messaging service").contains(MESSAGING_SERVICE_SID),
        "{stdout}"
    );
    assert!(line(&stdout, "twilio clock").starts_with('✔'), "{stdout}");

    let missing = "MGffffffffffffffffffffffffffffffff";
    let env = with(&base, &[("TWILIO_MESSAGING_SERVICE_SID", missing)]);
    let (code, stdout, _) = doctor(dir.path(), &env).await;
    assert_eq!(code, 1, "{stdout}");
    let l = line(&stdout, "twilio messaging service");
    assert!(l.starts_with('✘') && l.contains("20404"), "{stdout}");
    assert!(
        stdout.contains("TWILIO_MESSAGING_SERVICE_SID to its MG… SID"),
        "{stdout}"
    );

    let from = |number: &str| {
        let mut env: Vec<(String, String)> = base
            .iter()
            .filter(|(k, _)| k != "TWILIO_MESSAGING_SERVICE_SID")
            .cloned()
            .collect();
        env.push(("TWILIO_FROM".to_owned(), number.to_owned()));
        env
    };
    let (code, stdout, _) = doctor(dir.path(), &from(OWNED_NUMBER)).await;
    assert_eq!(code, 0, "{stdout}");
    assert!(
        line(&stdout, "twilio from number").contains("SMS-capable number of the account"),
        "{stdout}"
    );
    let (code, stdout, _) = doctor(dir.path(), &from("+15005550001")).await;
    assert_eq!(code, 1, "{stdout}");
    assert!(
        line(&stdout, "twilio from number").contains("is not a number of account"),
        "{stdout}"
    );
    fake.assert_no_violations();
}

#[tokio::test]
async fn doctor_checks_the_store_and_that_the_secrets_open_it() {
    // A database made by the service under SECRET; doctor runs in its directory.
    let app = spawn_app_in(
        tempfile::tempdir().unwrap(),
        &[],
        std::sync::Arc::new(verifyd::clock::ManualClock::starting_now()),
    )
    .await;
    app.send_and_read_code(US_NUMBER).await;
    let (dir, _) = app.stop().await;
    let env = |secret: &str| {
        vec![
            ("VERIFYD_SECRET".to_owned(), secret.to_owned()),
            ("VERIFYD_API_KEYS".to_owned(), API_KEY.to_owned()),
        ]
    };
    let (code, stdout, _) = doctor(dir.path(), &env(SECRET)).await;
    assert_eq!(code, 0, "{stdout}");
    assert!(
        line(&stdout, "store").contains("schema up to date"),
        "{stdout}"
    );
    assert!(
        line(&stdout, "secrets").contains("open the database's key-check record"),
        "{stdout}"
    );

    let other = "another-secret-0123456789-0123456789-xyz";
    let (code, stdout, _) = doctor(dir.path(), &env(other)).await;
    assert_eq!(code, 1, "{stdout}");
    let l = line(&stdout, "secrets");
    assert!(l.starts_with('✘') && l.contains("key id"), "{stdout}");
    assert!(stdout.contains("then run `verifyd rekey`"), "{stdout}");

    // Rotation in progress: both pass, and doctor says what is left to do.
    let (code, stdout, _) = doctor(dir.path(), &env(&format!("{other},{SECRET}"))).await;
    assert_eq!(code, 0, "{stdout}");
    assert!(
        line(&stdout, "rotation").contains("run `verifyd rekey`"),
        "{stdout}"
    );

    // Invalid settings: the checklist names them, and the exit is 64 like every command.
    let (code, stdout, _) = doctor(
        dir.path(),
        &[("VERIFYD_ENV".to_owned(), "production".to_owned())],
    )
    .await;
    assert_eq!(code, 64);
    assert!(
        stdout.contains("✘ settings: VERIFYD_SECRET=<unset>"),
        "{stdout}"
    );
}

/// The tables in `db`'s public schema, and the migrations it recorded.
async fn pg_schema(db: &crate::shared::TestDb) -> (i64, i64) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&db.url()).await.unwrap();
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let recorded: i64 = if tables > 0 {
        sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
            .fetch_one(&mut conn)
            .await
            .unwrap()
    } else {
        0
    };
    let _ = conn.close().await;
    (tables, recorded)
}

#[tokio::test]
async fn doctor_never_migrates_postgresql_and_reports_a_database_that_is_not_migrated_or_behind() {
    let Some(db) = postgres_or_skip().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let env = vec![
        ("VERIFYD_DATABASE_URL".to_owned(), db.url()),
        ("VERIFYD_SECRET".to_owned(), SECRET.to_owned()),
        ("VERIFYD_API_KEYS".to_owned(), API_KEY.to_owned()),
    ];
    // A fresh, empty database: reported, and left empty.
    let (code, stdout, _) = doctor(dir.path(), &env).await;
    assert_eq!(code, 1, "{stdout}");
    let l = line(&stdout, "store");
    assert!(l.starts_with('✘') && l.contains("not migrated"), "{stdout}");
    assert!(
        stdout.contains("fix: start `verifyd serve` once (it migrates at start)"),
        "{stdout}"
    );
    assert_eq!(pg_schema(&db).await, (0, 0), "doctor created tables");

    // Migrated by the service (which also writes the key-check record): both pass.
    let app = spawn_app_with(&[("VERIFYD_DATABASE_URL", db.url().as_str())]).await;
    app.send_and_read_code(US_NUMBER).await;
    app.stop().await;
    let (tables, migrations) = pg_schema(&db).await;
    assert!(tables > 0 && migrations > 0);
    let (code, stdout, _) = doctor(dir.path(), &env).await;
    assert_eq!(code, 0, "{stdout}");
    assert!(
        line(&stdout, "store").contains("schema up to date"),
        "{stdout}"
    );
    assert!(
        line(&stdout, "secrets").contains("open the database's key-check record"),
        "{stdout}"
    );

    // Behind (the newest migration's record gone): reported, not applied.
    {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&db.url()).await.unwrap();
        sqlx::query(
            "DELETE FROM _sqlx_migrations WHERE version = (SELECT max(version) FROM _sqlx_migrations)",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        let _ = conn.close().await;
    }
    let (code, stdout, _) = doctor(dir.path(), &env).await;
    assert_eq!(code, 1, "{stdout}");
    let l = line(&stdout, "store");
    assert!(
        l.starts_with('✘') && l.contains("behind: 1 migration(s) missing"),
        "{stdout}"
    );
    assert_eq!(
        pg_schema(&db).await,
        (tables, migrations - 1),
        "doctor migrated"
    );
}

/// A fake Telnyx and Vonage balance endpoint: 200 with the right credentials, 401 otherwise.
async fn fake_balances() -> String {
    let app = axum::Router::new()
        .route(
            "/v2/balance",
            axum::routing::get(|headers: axum::http::HeaderMap| async move {
                let ok = headers.get("authorization").and_then(|v| v.to_str().ok())
                    == Some("Bearer KEYgood_telnyx_key");
                if ok {
                    axum::http::StatusCode::OK
                } else {
                    axum::http::StatusCode::UNAUTHORIZED
                }
            }),
        )
        .route(
            "/account/get-balance",
            axum::routing::get(|uri: axum::http::Uri| async move {
                let q = uri.query().unwrap_or("");
                if q.contains("api_key=abcd1234") && q.contains("api_secret=good-vonage-secret") {
                    axum::http::StatusCode::OK
                } else {
                    axum::http::StatusCode::UNAUTHORIZED
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

#[tokio::test]
async fn doctor_checks_each_routed_vendors_credentials() {
    let base = fake_balances().await;
    let dir = tempfile::tempdir().unwrap();
    let env = |vonage_secret: &str| -> Vec<(String, String)> {
        [
            ("VERIFYD_SECRET", SECRET),
            ("VERIFYD_API_KEYS", API_KEY),
            ("VERIFYD_SMS_SENDER", "telnyx"),
            ("VERIFYD_SMS_ROUTES", "GB=vonage,telnyx"),
            ("TELNYX_API_KEY", "KEYgood_telnyx_key"),
            ("TELNYX_FROM", "+18445550001"),
            ("TELNYX_BASE_URL", base.as_str()),
            ("VONAGE_API_KEY", "abcd1234"),
            ("VONAGE_API_SECRET", vonage_secret),
            ("VONAGE_FROM", "AcmeInc"),
            ("VONAGE_BASE_URL", base.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    };
    let (_, stdout, _) = doctor(dir.path(), &env("good-vonage-secret")).await;
    assert!(
        line(&stdout, "telnyx").contains("credentials accepted"),
        "{stdout}"
    );
    assert!(
        line(&stdout, "vonage").contains("credentials accepted"),
        "{stdout}"
    );
    let (code, stdout, stderr) = doctor(dir.path(), &env("wrong-vonage-secret")).await;
    assert_eq!(code, 1, "{stdout}");
    assert!(
        line(&stdout, "vonage").contains("credentials refused (HTTP 401)"),
        "{stdout}"
    );
    assert!(!stdout.contains("wrong-vonage-secret") && !stderr.contains("wrong-vonage-secret"));
}
