//! Legitimate traffic at a fixed rate, for the `mixed` scenario (issue 24): `POST
//! /mfa/send-code` at RATE requests a second for SECONDS, each to a fresh number (the scheme of
//! `verifyd_bench::number`, from index OFFSET) and from its own client address
//! (`X-Forwarded-For`, 198.18.0.0/15 as in `bench/lua/common.lua`), whatever the server's pace
//! (open loop: a request's latency counts from when it was due, so a stalled server cannot hide
//! its queue). Prints one machine-readable line:
//!
//! `PACED requests=… p50_us=… p99_us=… max_us=… statuses=200:…,… errors=…`
//!
//! With `BENCH_FLOOD` set it sends instead what `bench/lua/flood.lua` sends (every request
//! refused): `429` all from one address, `401` with a wrong key, `invalid` malformed bodies; at
//! a fixed count, this is how an instruction count per refusal is taken (BENCHMARKS.md).
//!
//! Usage: `paced URL API_KEY RATE SECONDS OFFSET` (the URL must be on loopback).

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use verifyd_bench::number;

/// Client `k`'s address, as `common.client_ip` in the Lua scripts (IPv4 branch only).
fn client_ip(k: u64) -> String {
    let n = k % 131_072;
    format!("198.{}.{}.{}", 18 + n / 65_536, (n / 256) % 256, n % 256)
}

/// Request `k`'s API key, client address and body: a legitimate send, or the flood's.
fn request(flood: Option<&str>, key: &str, k: u64) -> (String, String, String) {
    const MALFORMED: [&str; 3] = [
        r#"{"recipient":"+1212"#,
        r#"["+12125550100","sms"]"#,
        r#"{"recipient":12125550100,"channel":"sms"}"#,
    ];
    let body = format!(r#"{{"recipient":"{}","channel":"sms"}}"#, number(k));
    let attacker = "203.0.113.7".to_owned();
    match flood {
        Some("429") => (key.to_owned(), attacker, body),
        Some("401") => (format!("not-the-key-{}", k % 1000), attacker, body),
        Some("invalid") => (
            key.to_owned(),
            attacker,
            MALFORMED[(k % 3) as usize].to_owned(),
        ),
        _ => (key.to_owned(), client_ip(k), body),
    }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, key, rate, seconds, offset] = args.as_slice() else {
        eprintln!("usage: paced URL API_KEY RATE SECONDS OFFSET");
        return ExitCode::from(64);
    };
    let (Ok(rate), Ok(seconds), Ok(offset)) = (
        rate.parse::<u64>(),
        seconds.parse::<u64>(),
        offset.parse::<u64>(),
    ) else {
        eprintln!("paced: RATE, SECONDS and OFFSET are whole numbers");
        return ExitCode::from(64);
    };
    if !(url.starts_with("http://127.0.0.1:") || url.starts_with("http://localhost:")) || rate == 0
    {
        eprintln!("paced: the URL must be http://127.0.0.1:PORT and RATE above 0");
        return ExitCode::from(64);
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("an HTTP client");
    let endpoint = format!("{url}/mfa/send-code");
    let flood = std::env::var("BENCH_FLOOD").ok();
    let total = rate * seconds;
    let gap = Duration::from_secs_f64(1.0 / rate as f64);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let start = Instant::now();
    for i in 0..total {
        let due = start + gap * u32::try_from(i).expect("a small run");
        tokio::time::sleep_until(due.into()).await;
        let (client, endpoint, tx) = (client.clone(), endpoint.clone(), tx.clone());
        let k = offset + i;
        let (key, ip, body) = request(flood.as_deref(), key, k);
        tokio::spawn(async move {
            let answer = client
                .post(&endpoint)
                .bearer_auth(&key)
                .header("X-Forwarded-For", ip)
                .header("Content-Type", "application/json")
                .body(body)
                .send()
                .await;
            let status = match answer {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let _ = response.bytes().await;
                    Some(status)
                }
                Err(_) => None,
            };
            let _ = tx.send((status, due.elapsed()));
        });
    }
    drop(tx);
    let mut latencies = Vec::with_capacity(total as usize);
    let mut statuses = BTreeMap::new();
    let mut errors = 0u64;
    while let Some((status, latency)) = rx.recv().await {
        latencies.push(latency.as_micros() as u64);
        match status {
            Some(s) => *statuses.entry(s).or_insert(0u64) += 1,
            None => errors += 1,
        }
    }
    latencies.sort_unstable();
    let statuses: Vec<String> = statuses.iter().map(|(s, n)| format!("{s}:{n}")).collect();
    println!(
        "PACED requests={} p50_us={} p99_us={} max_us={} statuses={} errors={errors}",
        latencies.len(),
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        latencies.last().copied().unwrap_or(0),
        statuses.join(","),
    );
    ExitCode::SUCCESS
}
