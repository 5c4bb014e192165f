//! Setup steps of the benchmark that are not themselves measured:
//!
//! - `check-numbers FROM COUNT`: proves that numbers `FROM..FROM+COUNT` of the scheme in
//!   `verifyd_bench::number` parse as valid US numbers of a type verifyd sends to by default, so
//!   the load scripts measure real sends and not `invalid_phone_number` answers.
//! - `toml POOL PATH`: writes a `verifyd.toml` whose `[[test_numbers]]` are pool numbers
//!   `0..POOL`, each with its fixed code (`verifyd_bench::right_code`).
//! - `send URL API_KEY POOL`: starts a verification for every pool number through
//!   `POST /mfa/send-code` (64 at a time, each from its own `X-Forwarded-For` address) and fails
//!   unless every answer is 200, so the verify scenario checks codes of pending verifications.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use verifyd::domain::{NumberType, PhoneNumber};
use verifyd_bench::{number, right_code};

fn check_numbers(from: u64, count: u64) -> ExitCode {
    let blocked = [
        NumberType::PremiumRate,
        NumberType::SharedCost,
        NumberType::Uan,
        NumberType::Voicemail,
        NumberType::Pager,
        NumberType::Unknown,
    ];
    let mut bad = Vec::new();
    for k in from..from + count {
        let n = number(k);
        match PhoneNumber::parse(&n) {
            Ok(p)
                if p.region().map(|r| r.to_string()).as_deref() == Some("US")
                    && !blocked.contains(&p.number_type()) => {}
            Ok(p) => bad.push(format!("{n}: {:?} {:?}", p.region(), p.number_type())),
            Err(e) => bad.push(format!("{n}: {e}")),
        }
    }
    if bad.is_empty() {
        println!(
            "numbers {} .. {} ({count}): all valid US numbers",
            number(from),
            number(from + count - 1)
        );
        ExitCode::SUCCESS
    } else {
        eprintln!("{} of {count} numbers are not usable, e.g.:", bad.len());
        for b in bad.iter().take(10) {
            eprintln!("  {b}");
        }
        ExitCode::FAILURE
    }
}

fn write_toml(pool: u64, path: &str) -> ExitCode {
    let mut out = String::from(
        "# Written by bench-seed for the verify benchmark: the pool of test numbers.\n",
    );
    for k in 0..pool {
        out.push_str(&format!(
            "[[test_numbers]]\nnumber = \"{}\"\ncode = \"{}\"\n",
            number(k),
            right_code(k)
        ));
    }
    match std::fs::write(path, out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cannot write {path}: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn send(url: String, key: String, pool: u64) -> ExitCode {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .expect("HTTP client");
    let next = Arc::new(AtomicU64::new(0));
    let ok = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (client, next, ok) = (client.clone(), Arc::clone(&next), Arc::clone(&ok));
        let (url, key) = (format!("{url}/mfa/send-code"), key.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= pool {
                    return None;
                }
                let answer = client
                    .post(&url)
                    .bearer_auth(&key)
                    .header(
                        "x-forwarded-for",
                        format!("198.18.{}.{}", (k >> 8) & 0xff, k & 0xff),
                    )
                    .json(&serde_json::json!({ "recipient": number(k) }))
                    .send()
                    .await;
                match answer {
                    Ok(r) if r.status().is_success() => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => {
                        let status = r.status();
                        let body = r.text().await.unwrap_or_default();
                        return Some(format!("{}: {status} {body}", number(k)));
                    }
                    Err(e) => return Some(format!("{}: {e}", number(k))),
                }
            }
        }));
    }
    let mut failure = None;
    for t in tasks {
        if let Ok(Some(f)) = t.await {
            failure.get_or_insert(f);
        }
    }
    let ok = ok.load(Ordering::Relaxed);
    if let Some(f) = failure {
        eprintln!("seeding failed after {ok} of {pool} sends: {f}");
        return ExitCode::FAILURE;
    }
    println!(
        "seeded {ok} pending verifications in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: bench-seed check-numbers FROM COUNT | toml POOL PATH | send URL API_KEY POOL"
    );
    ExitCode::from(64)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let int = |i: usize| args.get(i).and_then(|a| a.parse::<u64>().ok());
    match args.first().map(String::as_str) {
        Some("check-numbers") => match (int(1), int(2)) {
            (Some(from), Some(count)) if count > 0 => check_numbers(from, count),
            _ => usage(),
        },
        Some("toml") => match (int(1), args.get(2)) {
            (Some(pool), Some(path)) => write_toml(pool, path),
            _ => usage(),
        },
        Some("send") => match (args.get(1), args.get(2), int(3)) {
            (Some(url), Some(key), Some(pool)) => {
                assert!(
                    url.starts_with("http://127.0.0.1:"),
                    "seeding targets 127.0.0.1 only"
                );
                tokio::runtime::Runtime::new()
                    .expect("runtime")
                    .block_on(send(url.clone(), key.clone(), pool))
            }
            _ => usage(),
        },
        _ => usage(),
    }
}
