//! The `limiter-1m` benchmark: feeds distinct client IPs (by default 1,000,000: half IPv4, half
//! IPv6 from rotating /64 networks) through verifyd's in-memory limiter exactly as a send-code
//! charges its IP bucket (the client key of `ClientKey::from_ip`, the seed's 4 per 60 s), then
//! the same IPs a second time, and reports decisions per second of each pass and the peak
//! resident set (`VmHWM`). The target is at most 100 MB with the default cap of 1,000,000 keys.
//!
//! Usage: `limiter-1m [IPS] [CAP]` (defaults 1000000 and 1000000, VERIFYD_LIMITER_MAX_KEYS's
//! default). Prints one `LIMITER …` line of key=value pairs for bench/run.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use verifyd::clock::{Clock, SystemClock};
use verifyd::config::BucketConfig;
use verifyd::limiter::{Decision, Limiter, MemoryLimiter};
use verifyd::policy::{BucketName, BucketRequest, ClientKey, Scope};
use verifyd_bench::proc_status_kb;

/// Client `i`: even → an IPv4 address, odd → an address in its own IPv6 /64.
fn client(i: u64) -> IpAddr {
    if i.is_multiple_of(2) {
        // 1.0.0.0 onwards: distinct public-looking IPv4 addresses (only used as keys).
        IpAddr::V4(Ipv4Addr::from(0x0100_0000u32.wrapping_add((i / 2) as u32)))
    } else {
        let n = i / 2;
        IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0x0db8,
            (n >> 16) as u16,
            (n & 0xffff) as u16,
            0xa,
            0xb,
            (n & 0xffff) as u16,
            1,
        ))
    }
}

struct Pass {
    allowed: u64,
    limited: u64,
    refused: u64,
    elapsed: Duration,
}

async fn pass(limiter: &MemoryLimiter, ips: u64) -> Pass {
    let size = BucketConfig {
        max: 4,
        interval: Duration::from_secs(60),
    };
    let now = SystemClock.now();
    let (mut allowed, mut limited, mut refused) = (0, 0, 0);
    let started = Instant::now();
    for i in 0..ips {
        let key = ClientKey::from_ip(client(i));
        let bucket = BucketRequest::new(Scope::Send, BucketName::Ip, key.as_str(), size);
        match limiter.acquire(std::slice::from_ref(&bucket), now).await {
            Ok(Decision::Allowed) => allowed += 1,
            Ok(Decision::Limited { .. }) => limited += 1,
            Err(_) => refused += 1,
        }
    }
    Pass {
        allowed,
        limited,
        refused,
        elapsed: started.elapsed(),
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let ips: u64 = args.next().map_or(1_000_000, |a| a.parse().expect("IPS"));
    let cap: usize = args.next().map_or(1_000_000, |a| a.parse().expect("CAP"));
    let base_kb = proc_status_kb("VmRSS").unwrap_or(0);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let limiter = MemoryLimiter::new(cap);
    let (first, second) = runtime.block_on(async {
        let first = pass(&limiter, ips).await;
        let second = pass(&limiter, ips).await;
        (first, second)
    });
    let hwm_kb = proc_status_kb("VmHWM").unwrap_or(0);
    let rate = |p: &Pass| ips as f64 / p.elapsed.as_secs_f64();
    println!(
        "LIMITER ips={ips} cap={cap} tracked={} new_per_s={:.0} repeat_per_s={:.0} \
         allowed={} limited={} refused={} base_rss_mb={:.1} peak_rss_mb={:.1}",
        limiter.tracked_keys(),
        rate(&first),
        rate(&second),
        first.allowed + second.allowed,
        first.limited + second.limited,
        first.refused + second.refused,
        base_kb as f64 / 1024.0,
        hwm_kb as f64 / 1024.0,
    );
}
