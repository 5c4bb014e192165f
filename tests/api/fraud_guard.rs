//! The fraud guard through the real server: the SMS-pumping attack of issue 20 with the guard
//! off (buckets only) and enforcing, on a controlled clock; monitor mode; a block's life (refused
//! before any bucket, 403 `fraud_blocked` on `/mfa` and 60410 on `/v2`, lifted by time or by
//! `POST /guard/unblock`); the safe list; and two replicas (PostgreSQL + Redis) sharing a block.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::v2::{SERVICE, assert_twilio_error, v2, v2_settings};

/// A small deterministic generator (xorshift64*), so every run sends the same traffic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The attacked area codes, and the others where the legitimate users are.
const ATTACKED: [u32; 10] = [201, 202, 203, 205, 206, 207, 208, 209, 210, 212];
const LEGIT: [u32; 20] = [
    213, 214, 215, 216, 217, 218, 219, 224, 225, 228, 229, 231, 234, 239, 240, 248, 251, 252, 253,
    254,
];
/// Exchanges of the legitimate users in the attacked area codes (the attack's are 230 + 17 j).
const LEGIT_IN_ATTACKED: u32 = 622;
const LEGIT_EXCHANGES: [u32; 5] = [620, 634, 648, 662, 676];

/// One send of the plan.
#[derive(Clone, Debug)]
struct Planned {
    /// Seconds into the attack.
    at: u64,
    number: String,
    /// The client address (X-Forwarded-For from the trusted proxy, 127.0.0.1).
    ip: String,
    legit: bool,
    /// For legitimate users who type the code: after how many 10 s steps.
    verify_after: Option<u64>,
}

const STEP: u64 = 10;
const ATTACK_SECONDS: u64 = 30 * 60;

fn number(rng: &mut Rng, npa: u32, nxx: u32, taken: &mut HashSet<String>) -> String {
    loop {
        let n = format!("+1{npa}{nxx}{:04}", rng.below(10_000));
        if taken.insert(n.clone()) {
            return n;
        }
    }
}

/// Issue 20's traffic: 10,000 attack sends from 5,000 rotating IPv4 and IPv6 addresses into 200
/// NPA-NXX prefixes of 10 area codes, never verified; 1,000 legitimate sends into 20 other area
/// codes and 50 into the attacked area codes' other exchanges, 80 % verified within a minute.
fn plan(rng: &mut Rng, taken: &mut HashSet<String>) -> Vec<Planned> {
    let mut out = Vec::with_capacity(11_050);
    for i in 0..10_000u64 {
        let npa = ATTACKED[rng.below(10) as usize];
        let nxx = 230 + 17 * rng.below(20) as u32;
        let who = i % 5_000;
        let ip = if who % 2 == 0 {
            format!("198.18.{}.{}", who / 250, who % 250 + 1)
        } else {
            format!("2001:db8:{who:x}::1")
        };
        out.push(Planned {
            at: rng.below(ATTACK_SECONDS),
            number: number(rng, npa, nxx, taken),
            ip,
            legit: false,
            verify_after: None,
        });
    }
    for i in 0..1_050u64 {
        let (npa, nxx) = if i < 1_000 {
            (
                LEGIT[rng.below(20) as usize],
                LEGIT_EXCHANGES[rng.below(5) as usize],
            )
        } else {
            (ATTACKED[(i - 1_000) as usize % 10], LEGIT_IN_ATTACKED)
        };
        out.push(Planned {
            at: rng.below(ATTACK_SECONDS),
            number: number(rng, npa, nxx, taken),
            ip: format!("100.64.{}.{}", i / 250, i % 250 + 1),
            legit: true,
            verify_after: (rng.below(10) < 8).then(|| 1 + rng.below(6)),
        });
    }
    out.sort_by_key(|p| p.at);
    out
}

/// What one run saw.
#[derive(Debug, Default)]
struct Tally {
    attack_sms: usize,
    legit_total: usize,
    legit_sent: usize,
    legit_verified: usize,
    refused_by_guard: usize,
    rate_limited: usize,
    other: Vec<(u16, String)>,
    seconds: f64,
}

async fn send_from(app: &TestApp, number: &str, ip: &str) -> (StatusCode, Value) {
    let response = app.send_code_via(&app.client, number, Some(ip)).await;
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn verify_from(app: &TestApp, number: &str, code: &str, ip: &str) -> StatusCode {
    app.post_with(
        &app.client,
        "/mfa/verify",
        &json!({ "recipient": number, "code": code }),
        &[("x-forwarded-for", ip)],
    )
    .await
    .status()
}

/// The latest code sent to each of `numbers`, from one read of the outbox.
async fn codes(app: &TestApp, numbers: &[String]) -> Vec<Option<String>> {
    let messages = app.outbox().await;
    numbers
        .iter()
        .map(|n| {
            messages
                .iter()
                .rev()
                .find(|m| m["to"] == n.as_str())
                .map(|m| code_in(m["body"].as_str().unwrap_or("")))
        })
        .collect()
}

/// Before the attack: the legitimate exchanges have history (each sent to twice over ~2 hours,
/// its first code always typed, the second 80 % of the time), as they would on a deployment in
/// use. Returns how many of these sends were refused (none should be).
async fn history(app: &TestApp, rng: &mut Rng, taken: &mut HashSet<String>) -> usize {
    let mut exchanges: Vec<(u32, u32)> = LEGIT
        .iter()
        .flat_map(|npa| LEGIT_EXCHANGES.iter().map(move |nxx| (*npa, *nxx)))
        .collect();
    exchanges.extend(ATTACKED.iter().map(|npa| (*npa, LEGIT_IN_ATTACKED)));
    let mut refused = 0;
    for round in 0..2 {
        for (i, (npa, nxx)) in exchanges.iter().enumerate() {
            let n = number(rng, *npa, *nxx, taken);
            let ip = format!("100.127.{round}.{}", i + 1);
            let (status, _) = send_from(app, &n, &ip).await;
            app.clock.advance(Duration::from_secs(10));
            if status != StatusCode::OK {
                refused += 1;
            } else if round == 0 || rng.below(10) < 8 {
                let code = app.last_code(&n).await;
                assert_eq!(verify_from(app, &n, &code, &ip).await, StatusCode::OK);
            }
            app.clock.advance(Duration::from_secs(20));
        }
    }
    app.clock.advance(Duration::from_secs(300));
    refused
}

/// Runs the attack plan in 10 s steps of test time: each step's sends at once, then the codes
/// due to be typed, then the clock moves on.
async fn attack(app: &TestApp, plan: &[Planned]) -> Tally {
    let started = Instant::now();
    let mut tally = Tally::default();
    let steps = ATTACK_SECONDS / STEP;
    let mut due: Vec<Vec<(String, String)>> = vec![Vec::new(); (steps + 8) as usize];
    let mut next = 0;
    for step in 0..steps {
        let end = (step + 1) * STEP;
        let batch: Vec<&Planned> = plan[next..].iter().take_while(|p| p.at < end).collect();
        next += batch.len();
        let answers = join_all(batch.iter().map(|p| send_from(app, &p.number, &p.ip))).await;
        for (p, (status, body)) in batch.iter().zip(answers) {
            if p.legit {
                tally.legit_total += 1;
            }
            match status {
                StatusCode::OK if p.legit => {
                    tally.legit_sent += 1;
                    if let Some(after) = p.verify_after {
                        due[(step + after) as usize].push((p.number.clone(), p.ip.clone()));
                    }
                }
                StatusCode::OK => tally.attack_sms += 1,
                StatusCode::FORBIDDEN if body["code"] == "fraud_blocked" => {
                    tally.refused_by_guard += 1;
                }
                StatusCode::TOO_MANY_REQUESTS => tally.rate_limited += 1,
                other => tally.other.push((other.as_u16(), body.to_string())),
            }
        }
        let typing = std::mem::take(&mut due[step as usize]);
        if !typing.is_empty() {
            let numbers: Vec<String> = typing.iter().map(|(n, _)| n.clone()).collect();
            let found = codes(app, &numbers).await;
            let checks = typing.iter().zip(found).map(|((n, ip), code)| async move {
                match code {
                    Some(code) => verify_from(app, n, &code, ip).await == StatusCode::OK,
                    None => false,
                }
            });
            tally.legit_verified += join_all(checks).await.into_iter().filter(|ok| *ok).count();
        }
        app.clock.advance(Duration::from_secs(STEP));
    }
    tally.seconds = started.elapsed().as_secs_f64();
    tally
}

async fn run_attack(mode: &str) -> (usize, Tally) {
    let app = spawn_app_with(&[
        ("VERIFYD_FRAUD_GUARD", mode),
        ("VERIFYD_TRUSTED_PROXIES", "127.0.0.1/32"),
        // The defaults (the test harness turns these two off for other tests).
        ("VERIFYD_RESEND_COOLDOWN", "30"),
        ("VERIFYD_RATE_LIMIT_PHONE_MAX", "5"),
    ])
    .await;
    let mut rng = Rng(0x5EED_2026_1206);
    let mut taken = HashSet::new();
    let refused = history(&app, &mut rng, &mut taken).await;
    let plan = plan(&mut rng, &mut taken);
    let tally = attack(&app, &plan).await;
    app.stop().await;
    (refused, tally)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guard_stops_sms_pumping_over_many_prefixes_and_lets_real_users_through() {
    // The two runs (each its own server and clock) at once: half the wall time on two cores.
    let ((history_off, off), (history_on, on)) =
        tokio::join!(run_attack("off"), run_attack("enforce"));
    let rate = |t: &Tally| 100.0 * t.legit_sent as f64 / t.legit_total as f64;
    eprintln!(
        "fraud guard attack (issue 20): guard off: attack SMS {}, legitimate sends {}/{} ({:.1} %) \
         succeeded, {} verified, {} rate limited, run {:.1} s; guard enforcing: attack SMS {} \
         ({:.1} % of off), legitimate {}/{} ({:.1} %), {} verified, {} refused by the guard, {} rate \
         limited, run {:.1} s",
        off.attack_sms,
        off.legit_sent,
        off.legit_total,
        rate(&off),
        off.legit_verified,
        off.rate_limited,
        off.seconds,
        on.attack_sms,
        100.0 * on.attack_sms as f64 / off.attack_sms.max(1) as f64,
        on.legit_sent,
        on.legit_total,
        rate(&on),
        on.legit_verified,
        on.refused_by_guard,
        on.rate_limited,
        on.seconds,
    );
    assert_eq!(
        (history_off, history_on),
        (0, 0),
        "the history was all sent"
    );
    assert!(off.other.is_empty(), "unexpected answers: {:?}", off.other);
    assert!(on.other.is_empty(), "unexpected answers: {:?}", on.other);
    assert_eq!((off.legit_total, on.legit_total), (1_050, 1_050));
    assert!(
        off.attack_sms > 500,
        "without the guard the attack spends the global budget: {off:?}"
    );
    assert!(
        on.attack_sms * 10 <= off.attack_sms,
        "the guard lets at most 10 % of the attack through: {} vs {}",
        on.attack_sms,
        off.attack_sms
    );
    assert!(
        on.legit_sent * 100 >= on.legit_total * 99,
        "at least 99 % of legitimate sends succeed with the guard: {on:?}"
    );
    assert!(
        on.legit_verified * 100 >= on.legit_total * 75,
        "and their codes are typed: {on:?}"
    );
}

/// A guard that blocks fast: one unsettled code per unproven destination, a block after one
/// settled unconverted code.
fn quick(mode: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        ("VERIFYD_FRAUD_GUARD", mode),
        ("VERIFYD_FRAUD_GUARD_UNPROVEN_MAX", "1"),
        ("VERIFYD_FRAUD_GUARD_MIN_SENDS", "1"),
        ("VERIFYD_FRAUD_GUARD_SETTLE", "60"),
        ("VERIFYD_FRAUD_GUARD_BLOCK", "600"),
    ]
}

/// The counter `verifyd_fraud_guard_decisions_total` summed over the series whose labels
/// contain `label`.
async fn decisions(app: &TestApp, label: &str) -> f64 {
    let text = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with("verifyd_fraud_guard_decisions_total{") && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn guard_status(app: &TestApp) -> Value {
    let r = app
        .client
        .get(app.url("/guard"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

/// Asserts a 200 answer (`what` names the step in the failure).
async fn ok(response: reqwest::Response, what: &str) {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    assert_eq!(status, StatusCode::OK, "{what}: {body}");
}

/// A code sent to `number` and typed: its country, area code and exchange are proven.
async fn prove(app: &TestApp, number: &str) {
    let code = app.send_and_read_code(number).await;
    ok(app.verify(number, &code).await, "typed").await;
}

/// Sends to `first`, lets it settle unanswered, then sends to `second` (same long prefix): the
/// second send starts the block of the long prefix.
async fn block_prefix(app: &TestApp, first: &str, second: &str) -> reqwest::Response {
    ok(app.send_code(first).await, "first code into a new prefix").await;
    app.clock.advance(Duration::from_secs(90));
    app.send_code(second).await
}

#[tokio::test]
async fn monitor_sends_what_it_would_refuse_and_records_it() {
    let app = spawn_app_with(&quick("monitor")).await;
    let before = decisions(&app, "decision=\"would_refuse\"").await;
    ok(app.send_code("+12125550101").await, "first").await;
    // A second unsettled code into the same unproven prefix: enforce would refuse it.
    ok(app.send_code("+12125550102").await, "monitor sends anyway").await;
    assert!(decisions(&app, "decision=\"would_refuse\"").await >= before + 1.0);
    assert_eq!(app.outbox().await.len(), 2, "both codes went out");
    // Its blocks are recorded too (and shown), never enforced.
    let sent = block_prefix(&app, "+12125550103", "+12125550104").await;
    assert_eq!(sent.status(), StatusCode::OK);
    let status = guard_status(&app).await;
    assert_eq!(status["mode"], "monitor");
    let blocks = status["blocks"].as_array().unwrap();
    assert!(
        blocks.iter().any(|b| b["destination"] == "+1212555"),
        "{status}"
    );
}

#[tokio::test]
async fn a_block_refuses_on_both_faces_before_any_bucket_and_lifts_after_its_time() {
    let app = spawn_app_with(&v2_settings(&quick("enforce"))).await;
    prove(&app, "+14155550100").await;
    let refused = block_prefix(&app, "+12125550101", "+12125550102").await;
    let body = assert_error(refused, 403, "fraud_blocked").await;
    assert!(!body.to_string().contains("2125550102"), "{body}");
    // Twilio's face: 60410.
    let twilio = v2(
        &app,
        "POST",
        &format!("/v2/Services/{SERVICE}/Verifications"),
        &[("To", "+12125550103"), ("Channel", "sms")],
    )
    .await;
    assert_twilio_error(&twilio, 403, 60410, "blocked prefix on /v2");
    let status = guard_status(&app).await;
    let blocks = status["blocks"].as_array().unwrap();
    assert!(
        blocks
            .iter()
            .any(|b| b["destination"] == "+1212555" && b["effect"] == "blocked"),
        "{status}"
    );
    // A proven exchange elsewhere is not affected.
    ok(app.send_code("+14155552671").await, "elsewhere").await;
    // After the block's time, the prefix starts over.
    app.clock.advance(Duration::from_secs(601));
    ok(app.send_code("+12125550104").await, "after the block").await;
    // Both refusals are in the attempt log with their reason (listing the attempts flushes it).
    assert_eq!(v2(&app, "GET", "/v2/Attempts", &[]).await.status, 200);
    let (dir, _) = app.stop().await;
    let conn = rusqlite::Connection::open(dir.path().join("verifyd.db")).unwrap();
    let refusals: i64 = conn
        .query_row(
            "SELECT count(*) FROM verification_attempts WHERE kind = 'refusal' AND reason = 'fraud_blocked'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(refusals, 2);
}

#[tokio::test]
async fn a_refusal_charges_no_bucket() {
    let mut settings = quick("enforce");
    settings.push(("VERIFYD_RATE_LIMIT_GLOBAL_MAX", "3"));
    let app = spawn_app_with(&settings).await;
    prove(&app, "+14155550100").await;
    ok(app.send_code("+12125550101").await, "first").await;
    // Refused by the guard (unproven, one unsettled already) many times over...
    for i in 0..5 {
        let r = app.send_code(&format!("+1212555020{i}")).await;
        assert_error(r, 403, "fraud_blocked").await;
    }
    // ...and the global bucket (3) still has room for exactly one more send.
    ok(app.send_code("+14155552671").await, "global room left").await;
    let spent = assert_error(app.send_code("+14155552672").await, 429, "rate_limited").await;
    assert_eq!(spent["bucket"], "global", "{spent}");
}

#[tokio::test]
async fn the_operator_unblocks_a_prefix_at_once() {
    let app = spawn_app_with(&quick("enforce")).await;
    let refused = block_prefix(&app, "+12125550101", "+12125550102").await;
    assert_error(refused, 403, "fraud_blocked").await;
    let unblock = |destination: &'static str| {
        app.client
            .post(app.url("/guard/unblock"))
            .bearer_auth(API_KEY)
            .json(&json!({ "destination": destination }))
            .send()
    };
    let bad = unblock("12").await.unwrap();
    assert_error(bad, 400, "invalid_body").await;
    // The whole chain was unproven, so the area code and the country closed too.
    for d in ["+1212555", "+1212", "US"] {
        let r = unblock(d).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    ok(app.send_code("+12125550103").await, "unblocked").await;
    assert!(
        guard_status(&app).await["blocks"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_safe_listed_number_in_a_blocked_prefix_is_sent() {
    let app = spawn_app_with(&v2_settings(&quick("enforce"))).await;
    let refused = block_prefix(&app, "+12125550101", "+12125550102").await;
    assert_error(refused, 403, "fraud_blocked").await;
    let added = v2(
        &app,
        "POST",
        "/v2/SafeList/Numbers",
        &[("PhoneNumber", "+12125550199")],
    )
    .await;
    assert_eq!(added.status, 201);
    ok(app.send_code("+12125550199").await, "safe-listed").await;
    assert_error(app.send_code("+12125550198").await, 403, "fraud_blocked").await;
}

#[tokio::test]
async fn test_numbers_skip_the_guard_and_with_the_bypass_every_bucket() {
    let toml = "[[test_numbers]]\nnumber = \"+12125550100\"\ncode = \"123456\"\n";
    let mut settings = quick("enforce");
    settings.push(("VERIFYD_RATE_LIMIT_GLOBAL_MAX", "1"));
    settings.push(("VERIFYD_TEST_NUMBERS_BYPASS_LIMITS", "true"));
    let app = spawn_app_with_toml(toml, &settings).await;
    let refused = block_prefix(&app, "+12125550101", "+12125550102").await;
    // The global bucket (1) is spent by the first send; the guard refused the second.
    assert_error(refused, 403, "fraud_blocked").await;
    for _ in 0..3 {
        ok(app.send_code("+12125550100").await, "test number").await;
    }
}

#[tokio::test]
async fn a_conversion_proves_a_prefix() {
    let mut settings = quick("enforce");
    settings.push(("VERIFYD_RATE_LIMIT_IP_MAX", "0"));
    let app = spawn_app_with(&settings).await;
    let code = app.send_and_read_code("+12125550101").await;
    ok(app.verify("+12125550101", &code).await, "typed").await;
    for i in 0..5 {
        ok(
            app.send_code(&format!("+1212555011{i}")).await,
            "a proven prefix takes more",
        )
        .await;
    }
}

#[tokio::test]
async fn two_replicas_share_a_block() {
    let Some(db) = postgres_or_skip().await else {
        return;
    };
    let Some(redis) = redis_or_skip().await else {
        return;
    };
    let url = db.url();
    let prefix = crate::shared::redis_prefix();
    let mut settings = quick("enforce");
    settings.extend([
        ("VERIFYD_DATABASE_URL", url.as_str()),
        ("VERIFYD_REDIS_URL", redis.as_str()),
        ("VERIFYD_REDIS_PREFIX", prefix.as_str()),
    ]);
    let clock = std::sync::Arc::new(verifyd::clock::ManualClock::starting_now());
    let one = spawn_app_in(tempfile::tempdir().unwrap(), &settings, clock.clone()).await;
    let two = spawn_app_in(tempfile::tempdir().unwrap(), &settings, clock.clone()).await;
    ok(one.send_code("+12125550101").await, "first, on one").await;
    // The unsettled code sent by one counts on two.
    assert_error(two.send_code("+12125550102").await, 403, "fraud_blocked").await;
    clock.advance(Duration::from_secs(90));
    // Two starts the block; one refuses at once.
    assert_error(two.send_code("+12125550103").await, 403, "fraud_blocked").await;
    assert_error(one.send_code("+12125550104").await, 403, "fraud_blocked").await;
    let status = guard_status(&one).await;
    assert_eq!(status["backend"], "redis");
    assert!(
        status["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["destination"] == "+1212555"),
        "{status}"
    );
    // An unblock on one is in force on two.
    for d in ["+1212555", "+1212", "US"] {
        let r = two
            .client
            .post(two.url("/guard/unblock"))
            .bearer_auth(API_KEY)
            .json(&json!({ "destination": d }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    ok(one.send_code("+12125550105").await, "unblocked everywhere").await;
}

#[test]
fn verifyd_guard_status_and_unblock_ask_the_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("VERIFYD_API_KEYS", API_KEY),
        ("VERIFYD_SECRET", SECRET),
        ("VERIFYD_FRAUD_GUARD", "enforce"),
    ];
    let server = crate::process::Server::start(dir.path(), &env, API_KEY);
    let addr = server.addr.to_string();
    let cli = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--addr", addr.as_str()]);
        crate::process::run(dir.path(), &env, &all)
    };
    let (code, stdout, stderr) = cli(&["guard", "status"]);
    assert_eq!(code, 0, "{stderr}");
    let status: Value = serde_json::from_str(&stdout).expect("JSON status");
    assert_eq!(status["mode"], "enforce");
    assert_eq!(status["backend"], "memory");
    assert_eq!(status["countries"][0]["country"], "US", "{stdout}");
    // Nothing blocked: exit 1; not a destination: 64.
    let (code, _, stderr) = cli(&["guard", "unblock", "+1212555"]);
    assert_eq!(code, 1, "{stderr}");
    let (code, _, stderr) = cli(&["guard", "unblock", "12"]);
    assert_eq!(code, 64, "{stderr}");
    assert!(stderr.contains("not a destination"), "{stderr}");
    drop(server);
    // No server: 69.
    let (code, _, stderr) = cli(&["guard", "status"]);
    assert_eq!(code, 69, "{stderr}");
}
