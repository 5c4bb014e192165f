//! The `/v2` face's stores on every backend (SQLite and PostgreSQL): services and identity
//! values, and the attempt log (filters, conversion, summary, purge by age). Each case runs as
//! `v2_store::<case>::sqlite` and `::postgres`.

use std::sync::Arc;
use std::time::Duration;

use verifyd::config::{SqliteLocation, SqliteSync};
use verifyd::domain::{MessageFacts, Timestamp};
use verifyd::store::{
    AttemptFilter, AttemptKind, AttemptRecord, AttemptStore, BucketChange, BucketRecord,
    PostgresSettings, PostgresStore, RateLimitRecord, RateLimitStore, SafeListRecord,
    SafeListStore, ServiceRecord, ServiceStore, SqliteStore,
};

use crate::shared::TestDb;

const T0: Timestamp = Timestamp::from_millis(1_800_000_000_000);

/// Both traits of one backend, and what keeps it alive.
pub struct Backend {
    services: Arc<dyn ServiceStore>,
    attempts: Arc<dyn AttemptStore>,
    safe_list: Arc<dyn SafeListStore>,
    rate_limits: Arc<dyn RateLimitStore>,
    _keep: (Option<tempfile::TempDir>, Option<TestDb>),
}

async fn sqlite() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let location = SqliteLocation::File(dir.path().join("v2.db"));
    let store = SqliteStore::connect(&location, SqliteSync::Normal, Duration::from_secs(2))
        .await
        .unwrap();
    Backend {
        services: Arc::new(store.clone()),
        attempts: Arc::new(store.clone()),
        safe_list: Arc::new(store.clone()),
        rate_limits: Arc::new(store),
        _keep: (Some(dir), None),
    }
}

async fn postgres() -> Option<Backend> {
    let db = crate::helpers::postgres_or_skip().await?;
    let store = Arc::new(
        PostgresStore::connect(
            &db.url(),
            PostgresSettings {
                pool_size: 4,
                acquire_timeout: Duration::from_secs(10),
                statement_timeout: Duration::from_secs(5),
            },
        )
        .await
        .unwrap(),
    );
    Some(Backend {
        services: store.clone(),
        attempts: store.clone(),
        safe_list: store.clone(),
        rate_limits: store,
        _keep: (None, Some(db)),
    })
}

macro_rules! backends {
    ($($case:ident),* $(,)?) => {
        $(
            mod $case {
                #[tokio::test]
                async fn sqlite() {
                    super::$case(super::sqlite().await).await;
                }

                #[tokio::test]
                async fn postgres() {
                    if let Some(backend) = super::postgres().await {
                        super::$case(backend).await;
                    }
                }
            }
        )*
    };
}

backends!(
    services_are_inserted_once_updated_listed_in_order_and_deleted,
    identity_values_are_generated_once,
    attempts_are_filtered_converted_summarized_and_purged_by_age,
    the_safe_list_keeps_one_entry_per_number_under_any_of_its_digests,
    buckets_keep_twilios_rules_atomically,
);

async fn the_safe_list_keeps_one_entry_per_number_under_any_of_its_digests(b: Backend) {
    let s = &b.safe_list;
    let entry = |sid: u8, lookup: u8| SafeListRecord {
        sid: format!("GN{sid:032x}"),
        phone_lookup: vec![lookup; 32],
        phone_sealed: vec![9; 40],
        created: T0,
    };
    let first = s.add_safe_number(&entry(1, 1)).await.unwrap();
    assert_eq!(first, entry(1, 1));
    assert_eq!(
        s.add_safe_number(&entry(2, 1)).await.unwrap(),
        entry(1, 1),
        "listed once"
    );
    s.add_safe_number(&entry(3, 3)).await.unwrap();
    // Found under any of a number's digests (one per secret during a rotation).
    assert_eq!(
        s.safe_number(&[[7; 32], [1; 32]]).await.unwrap(),
        Some(entry(1, 1))
    );
    assert_eq!(s.safe_number(&[[7; 32]]).await.unwrap(), None);
    let listed: Vec<String> = s
        .safe_numbers(None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.sid)
        .collect();
    assert_eq!(listed, [entry(1, 1).sid, entry(3, 3).sid]);
    assert!(s.remove_safe_number(&[[7; 32], [1; 32]]).await.unwrap());
    assert!(!s.remove_safe_number(&[[1; 32]]).await.unwrap());
    assert_eq!(s.safe_number(&[[1; 32]]).await.unwrap(), None);
}

async fn buckets_keep_twilios_rules_atomically(b: Backend) {
    let r = &b.rate_limits;
    let va = format!("VA{:032x}", 1);
    let limit = |n: u8, name: &str| RateLimitRecord {
        sid: format!("RK{n:032x}"),
        service_sid: va.clone(),
        unique_name: name.to_owned(),
        description: None,
        created: T0,
        updated: T0,
    };
    assert!(r.insert_rate_limit(&limit(1, "ip")).await.unwrap());
    assert!(
        !r.insert_rate_limit(&limit(2, "ip")).await.unwrap(),
        "one name per service"
    );
    let mut elsewhere = limit(3, "ip");
    elsewhere.service_sid = format!("VA{:032x}", 2);
    assert!(
        r.insert_rate_limit(&elsewhere).await.unwrap(),
        "the same name in another service"
    );
    let bucket = |n: u8, interval: u32| BucketRecord {
        sid: format!("BL{n:032x}"),
        rate_limit_sid: format!("RK{:032x}", 1),
        service_sid: va.clone(),
        max: 4,
        interval,
        created: T0,
        updated: T0,
    };
    for n in 1..=5 {
        let b = bucket(n, 60 * u32::from(n));
        assert_eq!(r.insert_bucket(&b).await.unwrap(), BucketChange::Done(b));
    }
    assert_eq!(
        r.insert_bucket(&bucket(6, 7)).await.unwrap(),
        BucketChange::TooMany
    );
    assert!(
        r.delete_bucket(&format!("RK{:032x}", 1), &format!("BL{:032x}", 5))
            .await
            .unwrap()
    );
    assert_eq!(
        r.insert_bucket(&bucket(6, 60)).await.unwrap(),
        BucketChange::SameInterval
    );
    assert_eq!(
        r.update_bucket(&bucket(2, 60)).await.unwrap(),
        BucketChange::SameInterval
    );
    let moved = bucket(2, 900);
    assert_eq!(
        r.update_bucket(&moved).await.unwrap(),
        BucketChange::Done(moved.clone())
    );
    let mut orphan = bucket(7, 5);
    orphan.rate_limit_sid = format!("RK{:032x}", 9);
    assert_eq!(
        r.insert_bucket(&orphan).await.unwrap(),
        BucketChange::NotFound
    );
    let found = r
        .buckets_by_name(&va, &["ip".to_owned(), "none".to_owned()])
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].0, "ip");
    assert_eq!(
        found[0].1.iter().map(|b| b.interval).collect::<Vec<_>>(),
        [60, 900, 180, 240]
    );
    assert!(
        r.delete_rate_limit(&va, &format!("RK{:032x}", 1))
            .await
            .unwrap()
    );
    assert!(
        r.buckets(&format!("RK{:032x}", 1), None, 10)
            .await
            .unwrap()
            .is_empty(),
        "cascade"
    );
    assert!(
        r.buckets_by_name(&va, &["ip".to_owned()])
            .await
            .unwrap()
            .is_empty()
    );
}

fn service(sid: &str, name: &str) -> ServiceRecord {
    ServiceRecord {
        sid: sid.to_owned(),
        friendly_name: name.to_owned(),
        code_length: 6,
        lookup_enabled: false,
        skip_sms_to_landlines: false,
        psd2_enabled: false,
        do_not_share_warning_enabled: false,
        custom_code_enabled: false,
        default_template_sid: None,
        created: T0,
        updated: T0,
    }
}

async fn services_are_inserted_once_updated_listed_in_order_and_deleted(b: Backend) {
    let s = &b.services;
    let sids: Vec<String> = (1..=3).map(|i| format!("VA{i:032x}")).collect();
    for (i, sid) in sids.iter().enumerate().rev() {
        assert!(
            s.insert_service(&service(sid, &format!("s{i}")))
                .await
                .unwrap()
        );
    }
    assert!(!s.insert_service(&service(&sids[0], "again")).await.unwrap());
    assert_eq!(
        s.service(&sids[0]).await.unwrap().unwrap().friendly_name,
        "s0"
    );
    let mut changed = service(&sids[1], "renamed");
    changed.psd2_enabled = true;
    changed.code_length = 8;
    changed.default_template_sid = Some(format!("HJ{:032x}", 9));
    changed.updated = T0.plus(Duration::from_secs(5));
    assert!(s.update_service(&changed).await.unwrap());
    assert_eq!(s.service(&sids[1]).await.unwrap().unwrap(), changed);
    assert!(
        !s.update_service(&service(&format!("VA{:032x}", 99), "x"))
            .await
            .unwrap()
    );
    let page = |after: Option<String>, limit| {
        let s = Arc::clone(s);
        async move {
            s.services(after.as_deref(), limit)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.sid)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(page(None, 2).await, sids[..2]);
    assert_eq!(page(Some(sids[1].clone()), 2).await, sids[2..]);
    assert!(s.delete_service(&sids[2]).await.unwrap());
    assert!(!s.delete_service(&sids[2]).await.unwrap());
    assert!(s.service(&sids[2]).await.unwrap().is_none());
}

async fn identity_values_are_generated_once(b: Backend) {
    let first = b
        .services
        .identity("account_sid", "AC-first")
        .await
        .unwrap();
    let second = b
        .services
        .identity("account_sid", "AC-second")
        .await
        .unwrap();
    assert_eq!((first.as_str(), second.as_str()), ("AC-first", "AC-first"));
    assert_eq!(b.services.identity("other", "x").await.unwrap(), "x");
}

fn attempt(kind: AttemptKind, n: u64, at: Timestamp, service: &str, ve: &str) -> AttemptRecord {
    AttemptRecord {
        sid: (kind == AttemptKind::Send).then(|| format!("VL{n:032x}")),
        kind,
        time: at,
        service_sid: service.to_owned(),
        verification_sid: Some(ve.to_owned()),
        channel: Some("sms".to_owned()),
        country: Some(if n.is_multiple_of(2) { "US" } else { "GB" }.to_owned()),
        prefix: Some(
            if n.is_multiple_of(2) {
                "+1415"
            } else {
                "+4479"
            }
            .to_owned(),
        ),
        phone_lookup: Some(vec![u8::try_from(n).unwrap(); 32]),
        phone_sealed: Some(vec![7; 40]),
        vendor: Some("local".to_owned()),
        status: Some(
            if kind == AttemptKind::Check {
                "approved"
            } else {
                "sent"
            }
            .to_owned(),
        ),
        reason: None,
        bucket: None,
        // Send rows carry their message: Spanish in UCS-2, English in GSM-7 (by parity).
        message: (kind == AttemptKind::Send).then(|| MessageFacts {
            locale: if n.is_multiple_of(2) { "en" } else { "es" },
            encoding: if n.is_multiple_of(2) { "gsm7" } else { "ucs2" },
            segments: u32::try_from(n % 3 + 1).unwrap(),
        }),
        delivery: None,
        times: 1,
    }
}

async fn attempts_are_filtered_converted_summarized_and_purged_by_age(b: Backend) {
    let a = &b.attempts;
    let (va, vb) = (format!("VA{:032x}", 1), format!("VA{:032x}", 2));
    let ve = |n: u64| format!("VE{n:032x}");
    let hour = Duration::from_secs(3600);
    let mut refusal = attempt(AttemptKind::Refusal, 9, T0, &va, &ve(9));
    refusal.verification_sid = None;
    refusal.reason = Some("rate_limited".to_owned());
    a.record_attempts(vec![
        attempt(AttemptKind::Send, 1, T0, &va, &ve(1)),
        attempt(AttemptKind::Send, 2, T0.plus(hour), &va, &ve(2)),
        attempt(AttemptKind::Send, 3, T0.plus(hour * 2), &vb, &ve(3)),
        attempt(AttemptKind::Send, 4, T0.plus(hour * 2), &vb, &ve(2)),
        refusal,
    ])
    .await
    .unwrap();
    // Verification 2 (attempts 2 and 4) is approved later: both convert.
    a.record_attempts(vec![attempt(
        AttemptKind::Check,
        5,
        T0.plus(hour * 3),
        &va,
        &ve(2),
    )])
    .await
    .unwrap();
    // The same send recorded twice (a retried batch) stays one row.
    a.record_attempts(vec![attempt(AttemptKind::Send, 1, T0, &va, &ve(1))])
        .await
        .unwrap();

    let sids = |f: AttemptFilter| {
        let a = Arc::clone(a);
        async move {
            a.send_attempts(&f, None, 10)
                .await
                .unwrap()
                .into_iter()
                .map(|r| (r.record.sid.unwrap()[30..].to_owned(), r.converted))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        sids(AttemptFilter::default()).await,
        [
            ("0001".into(), false),
            ("0002".into(), true),
            ("0003".into(), false),
            ("0004".into(), true)
        ]
    );
    let only = |f: AttemptFilter| async move {
        sids(f)
            .await
            .into_iter()
            .map(|(s, _)| s)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        only(AttemptFilter {
            service_sid: Some(vb.clone()),
            ..Default::default()
        })
        .await,
        ["0003", "0004"]
    );
    assert_eq!(
        only(AttemptFilter {
            converted: Some(true),
            ..Default::default()
        })
        .await,
        ["0002", "0004"]
    );
    assert_eq!(
        only(AttemptFilter {
            converted: Some(false),
            ..Default::default()
        })
        .await,
        ["0001", "0003"]
    );
    assert_eq!(
        only(AttemptFilter {
            country: Some("GB".into()),
            ..Default::default()
        })
        .await,
        ["0001", "0003"]
    );
    assert_eq!(
        only(AttemptFilter {
            prefix: Some("+44".into()),
            ..Default::default()
        })
        .await,
        ["0001", "0003"]
    );
    assert_eq!(
        only(AttemptFilter {
            phone_lookup: Some(vec![2; 32]),
            ..Default::default()
        })
        .await,
        ["0002"]
    );
    assert_eq!(
        only(AttemptFilter {
            verification_sid: Some(ve(2)),
            ..Default::default()
        })
        .await,
        ["0002", "0004"]
    );
    assert_eq!(
        only(AttemptFilter {
            created_after: Some(T0.plus(hour)),
            created_before: Some(T0.plus(hour * 2)),
            ..Default::default()
        })
        .await,
        ["0002"]
    );
    assert_eq!(
        only(AttemptFilter {
            channel: Some("call".into()),
            ..Default::default()
        })
        .await,
        Vec::<String>::new()
    );
    let after = a
        .send_attempts(&AttemptFilter::default(), Some(&format!("VL{:032x}", 2)), 1)
        .await
        .unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(
        after[0].record.sid.as_deref(),
        Some(format!("VL{:032x}", 3).as_str())
    );
    let one = a
        .send_attempt(&format!("VL{:032x}", 4))
        .await
        .unwrap()
        .unwrap();
    assert!(one.converted);
    assert_eq!(one.record.phone_sealed.as_deref(), Some(&[7u8; 40][..]));
    assert_eq!(
        one.record.message,
        Some(MessageFacts {
            locale: "en",
            encoding: "gsm7",
            segments: 2
        }),
        "the message's locale, encoding and segments are kept"
    );
    assert!(
        a.send_attempt(&format!("VL{:032x}", 5))
            .await
            .unwrap()
            .is_none(),
        "a check is not an attempt"
    );

    assert_eq!(
        a.attempt_summary(&AttemptFilter::default()).await.unwrap(),
        (4, 2)
    );
    assert_eq!(
        a.attempt_summary(&AttemptFilter {
            service_sid: Some(va.clone()),
            ..Default::default()
        })
        .await
        .unwrap(),
        (2, 1)
    );

    // Purge: everything created before T0 + 2 h goes (sends 1 and 2, the refusal).
    assert_eq!(a.purge_attempts(T0.plus(hour * 2)).await.unwrap(), 3);
    assert_eq!(only(AttemptFilter::default()).await, ["0003", "0004"]);
}
