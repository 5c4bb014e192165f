//! Micro-benchmarks (criterion) of the pieces every send-code and verify pays for: phone parsing
//! plus the policy checks, code generation plus its HMAC and encryption, one limiter decision,
//! and one store insert (`start_or_resend`) and one check (`find_pending`, the domain's
//! judgement, `record_check`) on a temporary SQLite file. Run with `cargo bench --bench micro`; `cargo test` never runs them, `.ci/run` only
//! builds them. The load benchmarks are `bench/run` (see BENCHMARKS.md).

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use verifyd::config::{Config, SqliteLocation, SqliteSync};
use verifyd::crypto::{Keys, ServerSecret};
use verifyd::domain::{
    AttemptSid, Channel, CheckVerdict, CodeLength, Lifecycle, OtpCode, PhoneNumber, SendAttempt,
    Timestamp, VerificationSid,
};
use verifyd::limiter::{Limiter, MemoryLimiter};
use verifyd::policy::{BucketName, BucketRequest, ClientKey, Policy, Scope};
use verifyd::store::{CheckRecord, NewVerification, SendOutcome, SqliteStore, VerificationStore};

/// Polls a future that never waits (the in-memory limiter) to completion without a runtime.
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("the in-memory limiter never waits"),
    }
}

fn keys() -> Arc<Keys> {
    Arc::new(Keys::derive(&ServerSecret::generate()))
}

/// The default settings (every bucket on, cooldown 30 s).
fn default_policy(keys: Arc<Keys>) -> Policy {
    let config = Config::from_lookup(|_| None).expect("the defaults are valid");
    Policy::new(&config.limits, keys)
}

fn phone_and_policy(c: &mut Criterion) {
    let policy = default_policy(keys());
    let client = ClientKey::from_ip("198.18.3.4".parse().expect("IP"));
    let mut group = c.benchmark_group("phone");
    group.bench_function("parse", |b| {
        b.iter(|| PhoneNumber::parse(black_box("+12122001234")).expect("valid"));
    });
    group.bench_function(
        "parse+policy (channel, country, type, default send buckets)",
        |b| {
            b.iter(|| {
                let phone = PhoneNumber::parse(black_box("+12122001234")).expect("valid");
                policy.check_channel(Channel::Sms).expect("sms");
                policy.check_number(&phone).expect("allowed");
                let to = verifyd::domain::Recipient::from(phone);
                policy.send_buckets(&to, Some(&client), None)
            });
        },
    );
    group.finish();
}

fn code_and_hmac(c: &mut Criterion) {
    let keys = keys();
    let sid = VerificationSid::generate();
    let mut group = c.benchmark_group("code");
    group.bench_function("generate (6 digits)", |b| {
        b.iter(|| OtpCode::generate(CodeLength::default()));
    });
    group.bench_function("generate+digest (HMAC-SHA256)", |b| {
        b.iter(|| {
            let code = OtpCode::generate(CodeLength::default());
            keys.code_digest(sid.as_str(), code.expose())
        });
    });
    group.bench_function("send crypto (code, digest, phone lookup, 2 seals)", |b| {
        b.iter(|| {
            let code = OtpCode::generate(CodeLength::default());
            let e164 = black_box("+12122001234");
            (
                keys.code_digest(sid.as_str(), code.expose()),
                keys.phone_lookup(e164),
                keys.seal(e164.as_bytes(), b"verifyd/phone"),
                keys.seal(code.expose().as_bytes(), sid.as_str().as_bytes()),
            )
        });
    });
    group.finish();
}

fn limiter(c: &mut Criterion) {
    let mut group = c.benchmark_group("limiter");
    let size = verifyd::config::BucketConfig {
        max: 4,
        interval: Duration::from_secs(60),
    };
    // One IP bucket; time moves 15 s per decision, so every decision is an allowed charge.
    let memory = MemoryLimiter::new(1_000_000);
    let bucket = [BucketRequest::new(
        Scope::Send,
        BucketName::Ip,
        "198.18.3.4",
        size,
    )];
    let mut now = 0i64;
    group.bench_function("one decision (ip bucket)", |b| {
        b.iter(|| {
            now += 15_000;
            ready(memory.acquire(&bucket, Timestamp::from_millis(now))).expect("decided")
        });
    });
    // The default send-code bucket set (ip, phone x2, prefix, global, cooldown), a day apart.
    let policy = default_policy(keys());
    let phone =
        verifyd::domain::Recipient::from(PhoneNumber::parse("+12122001234").expect("valid"));
    let client = ClientKey::from_ip("198.18.3.4".parse().expect("IP"));
    let buckets = policy.send_buckets(&phone, Some(&client), None);
    let memory = MemoryLimiter::new(1_000_000);
    let mut now = 0i64;
    group.bench_function("one decision (default send buckets)", |b| {
        b.iter(|| {
            now += 86_400_000;
            ready(memory.acquire(&buckets, Timestamp::from_millis(now))).expect("decided")
        });
    });
    group.finish();
}

fn new_verification(n: u64, keys: &Keys, now: Timestamp) -> NewVerification {
    let sid = VerificationSid::generate();
    let e164 = format!("+1212{:07}", 2_000_000 + n % 8_000_000);
    NewVerification {
        owner: None,
        phone_lookup: keys.phone_lookup(&e164),
        phone_sealed: keys.seal(e164.as_bytes(), b"verifyd/phone"),
        channel: Channel::Sms,
        code_digest: keys.code_digest(sid.as_str(), "123456"),
        code_sealed: keys.seal(b"123456", sid.as_str().as_bytes()),
        attempt: SendAttempt {
            sid: AttemptSid::generate(),
            channel: Channel::Sms,
            time: now,
        },
        expires_at: now.plus(Duration::from_secs(600)),
        sid,
        journal: Default::default(),
    }
}

fn store(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let keys = keys();
    let life = Lifecycle::with_ttl(Duration::from_secs(600));
    let dir = tempfile::tempdir().expect("temp dir");
    let mut group = c.benchmark_group("sqlite");
    for (label, sync) in [("normal", SqliteSync::Normal), ("full", SqliteSync::Full)] {
        let location = SqliteLocation::File(dir.path().join(format!("{label}.db")));
        let store = runtime
            .block_on(SqliteStore::connect(
                &location,
                sync,
                Duration::from_secs(2),
            ))
            .expect("store");
        let now = Timestamp::from_millis(1_800_000_000_000);
        let mut n = 0u64;
        group.bench_function(
            format!("start_or_resend (new number, synchronous={label})"),
            |b| {
                b.iter_batched(
                    || {
                        n += 1;
                        new_verification(n, &keys, now)
                    },
                    |new| match runtime.block_on(store.start_or_resend(new, now, life)) {
                        Ok(SendOutcome::Created(_)) => {}
                        other => panic!("not created: {other:?}"),
                    },
                    BatchSize::SmallInput,
                );
            },
        );
        group.bench_function(
            format!("check (find_pending + judge + record_check, right code, synchronous={label})"),
            |b| {
                b.iter_batched(
                    || {
                        n += 1;
                        let new = new_verification(n, &keys, now);
                        let lookup = new.phone_lookup;
                        match runtime.block_on(store.start_or_resend(new, now, life)) {
                            Ok(SendOutcome::Created(_)) => lookup,
                            other => panic!("not created: {other:?}"),
                        }
                    },
                    |lookup| {
                        runtime.block_on(async {
                            let found = store
                                .find_pending(&[lookup], None)
                                .await
                                .expect("read")
                                .expect("pending");
                            let verdict = life.judge_check(found.counters(), now, || {
                                keys.code_matches(&found.code_digest, found.sid.as_str(), "123456")
                            });
                            let CheckVerdict::Count(update) = verdict else {
                                panic!("not counted: {verdict:?}")
                            };
                            let record = store.record_check(&found.sid, &update).await;
                            assert_eq!(record.expect("checked"), CheckRecord::Counted);
                        })
                    },
                    BatchSize::SmallInput,
                );
            },
        );
    }
    group.finish();
}

criterion_group! {
    name = micro;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = phone_and_policy, code_and_hmac, limiter, store
}
criterion_main!(micro);
