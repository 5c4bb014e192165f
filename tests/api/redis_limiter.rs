//! The Redis limiter against the Redis of `VERIFYD_TEST_REDIS_URL` (each test with its own key
//! prefix; skipped without one): the same decisions as the in-memory limiter, all or nothing,
//! prefixed keys that expire at full allowance, and a quick error when Redis is not there.

use std::time::Duration;

use verifyd::config::BucketConfig;
use verifyd::domain::Timestamp;
use verifyd::limiter::{Decision, Limiter, MemoryLimiter, RedisLimiter, RedisSettings};
use verifyd::policy::{BucketName, BucketRequest, Scope};

use crate::helpers::redis_or_skip;
use crate::shared::{free_port, redis_prefix};

const T0: Timestamp = Timestamp::from_millis(1_800_000_000_000);

fn limiter(url: &str, prefix: &str) -> RedisLimiter {
    RedisLimiter::new(
        url,
        RedisSettings {
            prefix: prefix.to_owned(),
            timeout: Duration::from_secs(2),
        },
    )
    .expect("limiter")
}

fn bucket(name: BucketName, key: &str, max: u32, secs: u64) -> BucketRequest {
    BucketRequest::new(
        Scope::Send,
        name,
        key,
        BucketConfig {
            max,
            interval: Duration::from_secs(secs),
        },
    )
}

#[tokio::test]
async fn redis_decides_exactly_like_the_memory_limiter() {
    let Some(url) = redis_or_skip().await else {
        return;
    };
    let redis = limiter(&url, &redis_prefix());
    let memory = MemoryLimiter::new(10_000);
    let ip = bucket(BucketName::Ip, "127.0.0.1", 4, 60);
    let phone = bucket(BucketName::Phone, "+14155552671", 3, 600);
    let global = bucket(BucketName::Global, "all", 1000, 1);
    let steps: &[(u64, &[&BucketRequest])] = &[
        (0, &[&ip]),
        (0, &[&ip, &phone]),
        (1_000, &[&ip, &phone, &global]),
        (1_500, &[&ip, &phone]),
        (2_000, &[&ip, &phone]),
        (2_000, &[&phone]),
        (14_999, &[&ip]),
        (15_000, &[&ip]),
        (15_000, &[&ip, &phone]),
        (200_000, &[&phone]),
        (200_000, &[&ip, &phone, &global]),
        (260_000, &[&ip, &ip]),
    ];
    let mut limited = 0;
    for (i, (at_ms, buckets)) in steps.iter().enumerate() {
        let now = T0.plus(Duration::from_millis(*at_ms));
        let request: Vec<BucketRequest> = buckets.iter().map(|b| (*b).clone()).collect();
        let want = memory.acquire(&request, now).await.unwrap();
        let got = redis.acquire(&request, now).await.unwrap();
        assert_eq!(got, want, "step {i} at +{at_ms} ms");
        limited += usize::from(matches!(want, Decision::Limited { .. }));
    }
    assert!(limited >= 3, "the sequence exercises refusals ({limited})");
}

#[tokio::test]
async fn a_refused_request_charges_no_bucket_in_redis() {
    let Some(url) = redis_or_skip().await else {
        return;
    };
    let redis = limiter(&url, &redis_prefix());
    let roomy = bucket(BucketName::Ip, "a", 10, 60);
    let tight = bucket(BucketName::Phone, "p", 1, 60);
    assert_eq!(
        redis
            .acquire(&[roomy.clone(), tight.clone()], T0)
            .await
            .unwrap(),
        Decision::Allowed
    );
    let refused = redis.acquire(&[roomy.clone(), tight], T0).await.unwrap();
    assert!(
        matches!(
            refused,
            Decision::Limited {
                bucket: BucketName::Phone,
                retry_after
            } if retry_after == Duration::from_secs(60)
        ),
        "{refused:?}"
    );
    for n in 0..9 {
        assert_eq!(
            redis
                .acquire(std::slice::from_ref(&roomy), T0)
                .await
                .unwrap(),
            Decision::Allowed,
            "charge {n}: the refused request charged nothing"
        );
    }
    assert!(matches!(
        redis.acquire(&[roomy], T0).await.unwrap(),
        Decision::Limited {
            bucket: BucketName::Ip,
            ..
        }
    ));
}

#[tokio::test]
async fn keys_carry_the_prefix_and_expire_when_the_bucket_is_full_again() {
    let Some(url) = redis_or_skip().await else {
        return;
    };
    let prefix = redis_prefix();
    let redis = limiter(&url, &prefix);
    let ip = bucket(BucketName::Ip, "198.51.100.7", 4, 60);
    redis.acquire(std::slice::from_ref(&ip), T0).await.unwrap();
    redis.acquire(std::slice::from_ref(&ip), T0).await.unwrap();

    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys, vec![format!("{prefix}send:ip:60:198.51.100.7")]);
    // Two of four used: full again after two emission intervals (2 × 15 s).
    let ttl_ms: i64 = redis::cmd("PTTL")
        .arg(&keys[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!((29_000..=30_000).contains(&ttl_ms), "PTTL {ttl_ms}");
}

#[tokio::test]
async fn an_unreachable_redis_is_an_error_within_the_timeout() {
    let redis = limiter(&format!("redis://127.0.0.1:{}", free_port()), "x:");
    // A deadline, not a measurement: both calls must give up by themselves (2 s timeout).
    let answered = tokio::time::timeout(Duration::from_secs(5), async {
        (
            redis
                .acquire(&[bucket(BucketName::Ip, "a", 4, 60)], T0)
                .await,
            redis.ping().await,
        )
    })
    .await;
    let (acquired, pinged) = answered.expect("an answer within 5 s");
    assert!(acquired.is_err(), "{acquired:?}");
    assert!(pinged.is_err());
}

#[tokio::test]
async fn a_refund_in_redis_gives_back_one_request_and_deletes_a_full_bucket() {
    let Some(url) = redis_or_skip().await else {
        return;
    };
    let prefix = redis_prefix();
    let redis = limiter(&url, &prefix);
    let now = Timestamp::from_millis(1_000_000);
    let two = [bucket(BucketName::Phone, "p", 2, 60)];
    for _ in 0..2 {
        assert_eq!(redis.acquire(&two, now).await.unwrap(), Decision::Allowed);
    }
    assert!(matches!(
        redis.acquire(&two, now).await.unwrap(),
        Decision::Limited { .. }
    ));
    redis.refund(&two, now).await.unwrap();
    assert_eq!(redis.acquire(&two, now).await.unwrap(), Decision::Allowed);
    assert!(matches!(
        redis.acquire(&two, now).await.unwrap(),
        Decision::Limited { .. }
    ));
    // Refunding both (and one more than was charged) leaves no key behind.
    for _ in 0..3 {
        redis.refund(&two, now).await.unwrap();
    }
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(keys.is_empty(), "{keys:?}");
}
