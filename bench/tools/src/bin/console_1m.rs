//! The `console-1m` benchmark: how fast the operator console's overview and attempts pages
//! answer with 1,000,000 attempt-log rows stored (DESIGN.md: under 100 ms each), against the
//! same pages on an empty log in the same run (the baseline).
//!
//! It starts a release verifyd in this process on the given store, logs in to the console,
//! times every page on the empty log, then writes the rows through the store's own batch write
//! (the path the attempt log takes, so the hourly counters are kept as in production: 7 days of
//! traffic, sends, checks and refusals over 15 prefixes in 6 countries, numbers sealed under the
//! server's keys), and times the pages again.
//!
//! Usage: `console-1m sqlite <dir>` or `console-1m postgres <url of an empty database>`
//! (`CONSOLE_ROWS`, default 1000000; `CONSOLE_SAMPLES`, default 30). Prints one
//! `CONSOLE …` line of key=value pairs per page for bench/run.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use verifyd::app::{Application, Components};
use verifyd::clock::{Clock, SystemClock};
use verifyd::config::Config;
use verifyd::domain::Timestamp;
use verifyd::rotation::PHONE_CONTEXT;
use verifyd::store::{AttemptKind, AttemptRecord};

const API_KEY: &str = "bench-key-0123456789abcdef";
const SECRET: &str = "bench-secret-0123456789abcdef0123456789abcdef0123456789";

/// (number stem, country): a number is the stem plus four digits.
const STEMS: &[(&str, &str)] = &[
    ("+1201555", "US"),
    ("+1212555", "US"),
    ("+1305555", "US"),
    ("+1312555", "US"),
    ("+1415555", "US"),
    ("+1503555", "US"),
    ("+1617555", "US"),
    ("+1702555", "US"),
    ("+1416555", "CA"),
    ("+1604555", "CA"),
    ("+4477009", "GB"),
    ("+4477008", "GB"),
    ("+3361234", "FR"),
    ("+4915112", "DE"),
    ("+5511987", "BR"),
];

fn config(store_url: &str) -> Config {
    let map: HashMap<&str, String> = [
        ("VERIFYD_ADDR", "127.0.0.1:0".to_owned()),
        ("VERIFYD_DATABASE_URL", store_url.to_owned()),
        ("VERIFYD_SECRET", SECRET.to_owned()),
        ("VERIFYD_API_KEYS", API_KEY.to_owned()),
        ("VERIFYD_SMS_SENDER", "null".to_owned()),
        ("VERIFYD_ATTEMPT_RETENTION", "30d".to_owned()),
        ("RUST_LOG", "warn".to_owned()),
    ]
    .into_iter()
    .collect();
    Config::from_lookup(move |k| map.get(k).cloned()).expect("a valid bench config")
}

/// Row `i` of `n`, spread evenly over the 7 days before `now`.
fn record(i: u64, n: u64, now: i64, keys: &verifyd::crypto::Keys) -> AttemptRecord {
    let week = 7 * 24 * 3_600_000_i64;
    let time = now - week + (i as i64) * week / (n as i64) - 1;
    let (stem, country) = STEMS[(i as usize / 10) % STEMS.len()];
    let number = format!("{stem}{:04}", (i / 10) % 10_000);
    let verification = format!("VE{:032x}", i / 10);
    let mut r = AttemptRecord {
        sid: None,
        kind: AttemptKind::Send,
        time: Timestamp::from_millis(time),
        service_sid: "VA0123456789abcdef0123456789abcdef".to_owned(),
        verification_sid: Some(verification),
        channel: Some("sms".to_owned()),
        country: Some(country.to_owned()),
        prefix: Some(number.chars().take(5).collect()),
        phone_lookup: Some(keys.phone_lookup(&number).to_vec()),
        phone_sealed: Some(keys.seal(number.as_bytes(), PHONE_CONTEXT)),
        vendor: None,
        status: None,
        reason: None,
        bucket: None,
        message: None,
        delivery: None,
        times: 1,
    };
    match i % 10 {
        0..=5 => {
            r.sid = Some(format!("VL{i:032x}"));
            r.vendor = Some("local".to_owned());
            r.status = Some(if i % 50 == 7 { "failed" } else { "sent" }.to_owned());
        }
        6 | 7 => r.kind_check("approved"),
        8 => r.kind_check("incorrect"),
        _ => {
            r.kind = AttemptKind::Refusal;
            r.verification_sid = None;
            let (reason, bucket) = match (i / 10) % 3 {
                0 => ("rate_limited", Some("ip")),
                1 => ("rate_limited", Some("phone")),
                _ => ("country", None),
            };
            r.reason = Some(reason.to_owned());
            r.bucket = bucket.map(str::to_owned);
        }
    }
    r
}

trait CheckRow {
    fn kind_check(&mut self, status: &str);
}

impl CheckRow for AttemptRecord {
    fn kind_check(&mut self, status: &str) {
        self.kind = AttemptKind::Check;
        self.status = Some(status.to_owned());
    }
}

async fn seed(config: &Config, n: u64) -> Duration {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let parts = Components::build(config, Arc::clone(&clock))
        .await
        .expect("components");
    let now = clock.now().as_millis();
    let started = Instant::now();
    let batch = 2000;
    let mut i = 0;
    while i < n {
        let end = (i + batch).min(n);
        let rows: Vec<AttemptRecord> = (i..end).map(|j| record(j, n, now, &parts.keys)).collect();
        parts
            .attempts
            .record_attempts(rows)
            .await
            .expect("seed batch");
        i = end;
    }
    started.elapsed()
}

/// p50 and p95 of `samples` GETs of `path` (after 3 unmeasured ones), in ms, and the status.
async fn time_page(
    client: &reqwest::Client,
    base: &str,
    cookie: &str,
    path: &str,
    samples: usize,
) -> (f64, f64, u16) {
    let mut took = Vec::with_capacity(samples);
    let mut status = 0;
    for k in 0..samples + 3 {
        let started = Instant::now();
        let response = client
            .get(format!("{base}{path}"))
            .header("cookie", cookie)
            .send()
            .await
            .expect("page");
        status = response.status().as_u16();
        let _ = response.bytes().await.expect("body");
        if k >= 3 {
            took.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    took.sort_by(f64::total_cmp);
    let at = |q: f64| took[((took.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.95), status)
}

async fn login(client: &reqwest::Client, base: &str) -> String {
    let response = client
        .post(format!("{base}/console/login"))
        .form(&[("key", API_KEY)])
        .send()
        .await
        .expect("login");
    assert_eq!(response.status().as_u16(), 303, "login");
    response.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .split(';')
        .next()
        .expect("pair")
        .to_owned()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (backend, store_url) = match (args.get(1).map(String::as_str), args.get(2)) {
        (Some("sqlite"), Some(dir)) => ("sqlite", format!("sqlite://{dir}/console.db")),
        (Some("postgres"), Some(url)) => ("postgres", url.clone()),
        _ => {
            eprintln!("usage: console-1m sqlite <dir> | console-1m postgres <url>");
            std::process::exit(64);
        }
    };
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let rows = env("CONSOLE_ROWS", 1_000_000);
    let samples = env("CONSOLE_SAMPLES", 30) as usize;
    let config = config(&store_url);

    let app = Application::build(config.clone())
        .await
        .expect("verifyd builds");
    let base = format!("http://{}", app.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let cookie = login(&client, &base).await;

    let three_days_ago = {
        let secs = SystemClock.now().as_millis() / 1000 - 3 * 86_400;
        let days = secs.div_euclid(86_400);
        // Civil date of a day number (days since 1970-01-01), Howard Hinnant's algorithm.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + i64::from(m <= 2);
        format!("{y:04}-{m:02}-{d:02}")
    };
    let pages = [
        "/console".to_owned(),
        "/console/attempts".to_owned(),
        "/console/attempts?status=refused".to_owned(),
        "/console/attempts?status=approved".to_owned(),
        "/console/attempts?country=BR".to_owned(),
        "/console/attempts?channel=whatsapp".to_owned(),
        "/console/attempts?number=%2B14155550042".to_owned(),
        format!("/console/attempts?from={three_days_ago}&to={three_days_ago}"),
        format!("/console/attempts?before={}", rows / 2),
    ];
    let mut empty = Vec::new();
    for p in &pages {
        empty.push(time_page(&client, &base, &cookie, p, samples).await);
    }
    let seeded = seed(&config, rows).await;
    eprintln!(
        "console-1m: {backend}: wrote {rows} rows in {:.1} s",
        seeded.as_secs_f64()
    );
    for (p, base_times) in pages.iter().zip(&empty) {
        let (p50, p95, status) = time_page(&client, &base, &cookie, p, samples).await;
        println!(
            "CONSOLE backend={backend} rows={rows} page={p} status={status} empty_p50_ms={:.2} p50_ms={p50:.2} p95_ms={p95:.2} ratio={:.1}",
            base_times.0,
            p50 / base_times.0.max(0.01),
        );
    }
    let _ = stop.send(());
    let _ = server.await;
}
