//! One suite of store behaviour, run against every backend: SQLite (a temp file) and
//! PostgreSQL (a database of the test's own). Each case is a generic async fn over
//! `Arc<dyn Store>`; `store_suite!` turns it into one test per backend, named
//! `<case>::sqlite` and `<case>::postgres`. The PostgreSQL tests use the server of
//! `VERIFYD_TEST_POSTGRES_URL` and skip (or fail, under `VERIFYD_TEST_REQUIRE_ALL=1`) without it.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use verifyd::config::{SqliteLocation, SqliteSync};
use verifyd::domain::{
    AttemptSid, Channel, CheckUpdate, CheckVerdict, Lifecycle, SendAttempt, Timestamp,
    VerificationSid, VerificationStatus,
};
use verifyd::store::{
    CheckRecord, DeliveryResult, EventState, NewVerification, OutboxEvent, PostgresSettings,
    PostgresStore, Replay, SendOutcome, SqliteStore, Store, VerificationStore,
};

use crate::helpers::postgres_or_skip;
use crate::shared::TestDb;

const TTL: Duration = Duration::from_secs(600);
const T0: Timestamp = Timestamp::from_millis(1_800_000_000_000);

fn life() -> Lifecycle {
    Lifecycle::with_ttl(TTL)
}

/// Keeps whatever backs a store alive for the test's duration.
pub enum Backing {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres(#[allow(dead_code)] TestDb),
}

pub async fn sqlite_store() -> (Arc<dyn Store>, Backing) {
    let dir = tempfile::tempdir().expect("temp dir");
    let location = SqliteLocation::File(dir.path().join("suite.db"));
    let store = SqliteStore::connect(&location, SqliteSync::Normal, Duration::from_secs(2))
        .await
        .expect("SQLite store");
    (Arc::new(store), Backing::Sqlite(dir))
}

/// `None` (the test skips) when the machine has no PostgreSQL.
pub async fn postgres_store() -> Option<(Arc<dyn Store>, Backing)> {
    let db = postgres_or_skip().await?;
    let store = PostgresStore::connect(
        &db.url(),
        PostgresSettings {
            pool_size: 10,
            acquire_timeout: Duration::from_secs(10),
            statement_timeout: Duration::from_secs(5),
        },
    )
    .await
    .expect("PostgreSQL store");
    Some((Arc::new(store), Backing::Postgres(db)))
}

macro_rules! store_suite {
    ($($case:ident),* $(,)?) => {
        $(
            mod $case {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let (store, _backing) = super::sqlite_store().await;
                    super::cases::$case(store).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let Some((store, _backing)) = super::postgres_store().await else {
                        return;
                    };
                    super::cases::$case(store).await;
                }
            }
        )*
    };
}

store_suite!(
    a_first_send_creates_and_later_sends_resend_the_same_verification_up_to_five,
    concurrent_first_sends_to_one_number_create_exactly_one_verification,
    concurrent_sends_to_many_numbers_each_create_one_verification_with_every_attempt,
    a_counted_check_is_a_compare_and_set_on_the_count_and_the_status,
    concurrent_checks_judged_on_one_state_count_exactly_once,
    a_locked_verification_is_closed_by_the_next_send,
    an_expired_verification_is_closed_by_the_next_send_and_takes_no_check,
    close_moves_only_a_pending_verification,
    purge_deletes_the_verifications_that_expired_before_the_cutoff,
    api_key_digests_are_kept_once_each,
    ping_answers,
    find_pending_finds_the_owners_verification_under_the_first_lookup_that_has_one,
    concurrent_judged_checks_approve_once_and_count_at_most_the_budget,
    the_outbox_holds_a_subjects_next_event_until_its_previous_one_is_delivered,
    the_event_purge_deletes_finished_rows_written_before_the_cutoff,
    a_lease_after_a_cursor_still_keeps_a_subjects_order,
    an_event_row_is_replayed_by_its_id,
    an_event_row_written_after_a_purge_is_numbered_after_every_earlier_one,
);

/// An outbox row for the default endpoint, about `subject` (begun at `begun`), written at `at`,
/// whose payload is `label` (how the tests tell rows apart).
fn outbox_row(label: &str, subject: &str, begun: Timestamp, at: Timestamp) -> OutboxEvent {
    OutboxEvent {
        endpoint: "default".to_owned(),
        kind: "verification.pending".to_owned(),
        subject: subject.to_owned(),
        subject_created: begun,
        payload: label.to_owned(),
        created: at,
    }
}

/// The rows (seq, label) a lease at `now` takes (up to 10, from the first row).
async fn lease_ids(store: &dyn Store, now: Timestamp) -> Vec<(i64, String)> {
    lease_after(store, now, 0).await
}

/// The rows (seq, label) a lease at `now` of the rows after `after` takes (up to 10).
async fn lease_after(store: &dyn Store, now: Timestamp, after: i64) -> Vec<(i64, String)> {
    store
        .lease_events(
            &["default".to_owned()],
            now,
            now.plus(Duration::from_secs(15)),
            "suite",
            10,
            after,
        )
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.seq, e.event.payload))
        .collect()
}

/// A new verification for the number `lookup`, sent at `now`.
fn new_verification(lookup: u8, now: Timestamp) -> NewVerification {
    NewVerification {
        owner: None,
        sid: VerificationSid::generate(),
        phone_lookup: [lookup; 32],
        phone_sealed: vec![lookup, 1, 2, 3],
        channel: Channel::Sms,
        code_digest: [7; 32],
        code_sealed: vec![9, 9, 9],
        attempt: SendAttempt {
            sid: AttemptSid::generate(),
            channel: Channel::Sms,
            time: now,
        },
        expires_at: now.plus(TTL),
        journal: Default::default(),
    }
}

async fn create(store: &dyn Store, lookup: u8, now: Timestamp) -> VerificationSid {
    match store
        .start_or_resend(new_verification(lookup, now), now, life())
        .await
        .expect("send")
    {
        SendOutcome::Created(v) => v.sid,
        other => panic!("expected Created, got {other:?}"),
    }
}

async fn status_of(store: &dyn Store, sid: &VerificationSid) -> Option<VerificationStatus> {
    store.get(sid).await.expect("get").map(|v| v.status)
}

/// The counted check the domain computes for a verification judged with `counted` checks.
fn count(counted: u32, right: bool, at: Timestamp) -> CheckUpdate {
    CheckUpdate {
        expected_checks: counted,
        checks: counted + 1,
        status: if right {
            VerificationStatus::Approved
        } else {
            VerificationStatus::Pending
        },
        at,
    }
}

/// A check as the local engine makes it: read the pending verification, have the domain judge
/// it, apply its compare-and-set, and judge again when something else changed it first. True
/// when this check was counted.
async fn judged_check(store: &dyn Store, lookup: u8, right: bool, now: Timestamp) -> bool {
    let Some(mut found) = store.find_pending(&[[lookup; 32]], None).await.unwrap() else {
        return false;
    };
    loop {
        let CheckVerdict::Count(update) = life().judge_check(found.counters(), now, || right)
        else {
            return false;
        };
        match store.record_check(&found.sid, &update).await.unwrap() {
            CheckRecord::Counted => return true,
            CheckRecord::Changed => match store.get(&found.sid).await.unwrap() {
                Some(again) => found = again,
                None => return false,
            },
        }
    }
}

pub mod cases {
    use super::*;

    pub async fn a_first_send_creates_and_later_sends_resend_the_same_verification_up_to_five(
        store: Arc<dyn Store>,
    ) {
        let sid = create(store.as_ref(), 1, T0).await;
        for n in 2..=5u32 {
            let at = T0.plus(Duration::from_secs(u64::from(n)));
            match store
                .start_or_resend(new_verification(1, at), at, life())
                .await
                .unwrap()
            {
                SendOutcome::Resent(v) => {
                    assert_eq!(v.sid, sid, "send {n} resends the live verification");
                    assert_eq!(v.send_attempts.len() as u32, n);
                    assert_eq!(v.code_sealed, vec![9, 9, 9], "the stored code is kept");
                }
                other => panic!("send {n}: {other:?}"),
            }
        }
        let at = T0.plus(Duration::from_secs(10));
        assert!(matches!(
            store
                .start_or_resend(new_verification(1, at), at, life())
                .await
                .unwrap(),
            SendOutcome::MaxSendAttempts
        ));
        let stored = store.get(&sid).await.unwrap().expect("row");
        assert_eq!(
            stored.send_attempts.len(),
            5,
            "the refused send added nothing"
        );
        let times: Vec<i64> = stored
            .send_attempts
            .iter()
            .map(|a| a.time.as_millis())
            .collect();
        assert!(times.windows(2).all(|w| w[0] < w[1]), "in order: {times:?}");
        // Another number is independent.
        create(store.as_ref(), 2, T0).await;
        let pending = store
            .find_pending(&[[1; 32]], None)
            .await
            .unwrap()
            .expect("pending");
        assert_eq!(pending.sid, sid);
    }

    pub async fn concurrent_first_sends_to_one_number_create_exactly_one_verification(
        store: Arc<dyn Store>,
    ) {
        let outcomes = join_all((0..5).map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                store
                    .start_or_resend(new_verification(3, T0), T0, life())
                    .await
            })
        }))
        .await;
        let mut created = 0;
        let mut sids = Vec::new();
        for outcome in outcomes {
            match outcome
                .expect("task")
                .expect("no store error, even on a race")
            {
                SendOutcome::Created(v) => {
                    created += 1;
                    sids.push(v.sid);
                }
                SendOutcome::Resent(v) => sids.push(v.sid),
                SendOutcome::MaxSendAttempts => panic!("only five sends"),
            }
        }
        assert_eq!(created, 1);
        sids.dedup();
        assert_eq!(sids.len(), 1, "{sids:?}");
        let stored = store.get(&sids[0]).await.unwrap().unwrap();
        assert_eq!(stored.send_attempts.len(), 5);
    }

    /// Many sends at once (PostgreSQL inserts those that wait together in one statement): each
    /// number gets exactly one verification holding every one of its attempts.
    pub async fn concurrent_sends_to_many_numbers_each_create_one_verification_with_every_attempt(
        store: Arc<dyn Store>,
    ) {
        let sends = (0..=199u8).flat_map(|lookup| (0..3).map(move |_| lookup));
        let outcomes = join_all(sends.map(|lookup| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let outcome = store
                    .start_or_resend(new_verification(lookup, T0), T0, life())
                    .await;
                (lookup, outcome)
            })
        }))
        .await;
        let mut by_number: std::collections::HashMap<u8, (u32, Vec<VerificationSid>)> =
            std::collections::HashMap::new();
        for outcome in outcomes {
            let (lookup, outcome) = outcome.expect("task");
            let entry = by_number.entry(lookup).or_default();
            match outcome.expect("no store error, even on a race") {
                SendOutcome::Created(v) => {
                    entry.0 += 1;
                    entry.1.push(v.sid);
                }
                SendOutcome::Resent(v) => entry.1.push(v.sid),
                SendOutcome::MaxSendAttempts => panic!("only three sends per number"),
            }
        }
        assert_eq!(by_number.len(), 200);
        for (lookup, (created, mut sids)) in by_number {
            assert_eq!(created, 1, "number {lookup}");
            sids.dedup();
            assert_eq!(sids.len(), 1, "number {lookup}: {sids:?}");
            let stored = store.get(&sids[0]).await.unwrap().unwrap();
            assert_eq!(stored.send_attempts.len(), 3, "number {lookup}");
            assert_eq!(stored.phone_sealed, vec![lookup, 1, 2, 3]);
        }
    }

    pub async fn a_counted_check_is_a_compare_and_set_on_the_count_and_the_status(
        store: Arc<dyn Store>,
    ) {
        let sid = create(store.as_ref(), 4, T0).await;
        for n in 0..5u32 {
            assert_eq!(
                store
                    .record_check(&sid, &count(n, false, T0))
                    .await
                    .unwrap(),
                CheckRecord::Counted,
                "check {n}"
            );
        }
        // Judged on a count that is no longer the stored one: nothing changes.
        assert_eq!(
            store.record_check(&sid, &count(3, true, T0)).await.unwrap(),
            CheckRecord::Changed
        );
        let stored = store.get(&sid).await.unwrap().unwrap();
        assert_eq!(stored.check_attempts, 5);
        assert_eq!(stored.status, VerificationStatus::Pending);
        // An approval sets the status and the time; then nothing else can be counted.
        let later = T0.plus(Duration::from_secs(1));
        assert_eq!(
            store
                .record_check(&sid, &count(5, true, later))
                .await
                .unwrap(),
            CheckRecord::Counted
        );
        let stored = store.get(&sid).await.unwrap().unwrap();
        assert_eq!(
            (stored.check_attempts, stored.status, stored.updated),
            (6, VerificationStatus::Approved, later)
        );
        assert_eq!(
            store
                .record_check(&sid, &count(6, true, later))
                .await
                .unwrap(),
            CheckRecord::Changed,
            "no longer pending"
        );
    }

    pub async fn concurrent_checks_judged_on_one_state_count_exactly_once(store: Arc<dyn Store>) {
        for (lookup, right) in [(5u8, true), (6, false)] {
            let sid = create(store.as_ref(), lookup, T0).await;
            let results = join_all((0..20).map(|_| {
                let store = Arc::clone(&store);
                let sid = sid.clone();
                tokio::spawn(async move { store.record_check(&sid, &count(0, right, T0)).await })
            }))
            .await;
            let counted = results
                .into_iter()
                .map(|r| r.expect("task").expect("no store error"))
                .filter(|r| *r == CheckRecord::Counted)
                .count();
            assert_eq!(counted, 1, "right: {right}");
            let stored = store.get(&sid).await.unwrap().unwrap();
            assert_eq!(stored.check_attempts, 1);
            assert_eq!(stored.status == VerificationStatus::Approved, right);
        }
        assert!(
            store
                .find_pending(&[[5; 32]], None)
                .await
                .unwrap()
                .is_none()
        );
    }

    pub async fn find_pending_finds_the_owners_verification_under_the_first_lookup_that_has_one(
        store: Arc<dyn Store>,
    ) {
        let sid = create(store.as_ref(), 20, T0).await;
        let lookups = [[21; 32], [20; 32]];
        assert!(
            store
                .find_pending(&[[22; 32]], None)
                .await
                .unwrap()
                .is_none()
        );
        // Another owner's verification is not found.
        assert!(
            store
                .find_pending(&lookups, Some("someone"))
                .await
                .unwrap()
                .is_none()
        );
        let found = store
            .find_pending(&lookups, None)
            .await
            .unwrap()
            .expect("found under the second lookup");
        assert_eq!((found.sid.clone(), found.check_attempts), (sid.clone(), 0));
        assert_eq!(found.send_attempts.len(), 1);
        // With a pending verification under each lookup, the first lookup's is found.
        let first = create(store.as_ref(), 21, T0).await;
        assert_eq!(
            store
                .find_pending(&lookups, None)
                .await
                .unwrap()
                .unwrap()
                .sid,
            first
        );
        assert_eq!(
            store.record_check(&sid, &count(0, true, T0)).await.unwrap(),
            CheckRecord::Counted
        );
        assert!(
            store
                .find_pending(&[[20; 32]], None)
                .await
                .unwrap()
                .is_none(),
            "approved: no longer pending"
        );
    }

    pub async fn concurrent_judged_checks_approve_once_and_count_at_most_the_budget(
        store: Arc<dyn Store>,
    ) {
        for (lookup, right) in [(24u8, true), (25, false)] {
            let sid = create(store.as_ref(), lookup, T0).await;
            let results = join_all((0..30).map(|_| {
                let store = Arc::clone(&store);
                tokio::spawn(async move { judged_check(store.as_ref(), lookup, right, T0).await })
            }))
            .await;
            let counted = results.into_iter().filter(|r| *r.as_ref().unwrap()).count();
            let stored = store.get(&sid).await.unwrap().unwrap();
            if right {
                assert_eq!(counted, 1, "exactly one approval");
                assert_eq!(stored.status, VerificationStatus::Approved);
            } else {
                assert_eq!(counted, 5, "the budget");
                assert_eq!(stored.check_attempts, 5);
                assert_eq!(stored.status, VerificationStatus::Pending);
            }
        }
    }

    pub async fn a_locked_verification_is_closed_by_the_next_send(store: Arc<dyn Store>) {
        let sid = create(store.as_ref(), 7, T0).await;
        for n in 0..5 {
            store
                .record_check(&sid, &count(n, false, T0))
                .await
                .unwrap();
        }
        let later = T0.plus(Duration::from_secs(30));
        let fresh = create(store.as_ref(), 7, later).await;
        assert_ne!(fresh, sid);
        assert_eq!(
            status_of(store.as_ref(), &sid).await,
            Some(VerificationStatus::MaxAttemptsReached)
        );
        let pending = store.find_pending(&[[7; 32]], None).await.unwrap().unwrap();
        assert_eq!(pending.sid, fresh);
        assert_eq!(pending.check_attempts, 0);
    }

    pub async fn an_expired_verification_is_closed_by_the_next_send_and_takes_no_check(
        store: Arc<dyn Store>,
    ) {
        let sid = create(store.as_ref(), 8, T0).await;
        let after_ttl = T0.plus(TTL);
        assert!(!judged_check(store.as_ref(), 8, true, after_ttl).await);
        let fresh = create(store.as_ref(), 8, after_ttl).await;
        assert_ne!(fresh, sid);
        assert_eq!(
            status_of(store.as_ref(), &sid).await,
            Some(VerificationStatus::Expired)
        );
        assert_eq!(store.get(&sid).await.unwrap().unwrap().check_attempts, 0);
    }

    pub async fn close_moves_only_a_pending_verification(store: Arc<dyn Store>) {
        let sid = create(store.as_ref(), 9, T0).await;
        assert!(
            store
                .close(&sid, VerificationStatus::Canceled, T0)
                .await
                .unwrap()
        );
        assert!(
            !store
                .close(&sid, VerificationStatus::Failed, T0)
                .await
                .unwrap()
        );
        assert_eq!(
            status_of(store.as_ref(), &sid).await,
            Some(VerificationStatus::Canceled)
        );
        assert!(
            store
                .find_pending(&[[9; 32]], None)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .get(&VerificationSid::generate())
                .await
                .unwrap()
                .is_none()
        );
    }

    pub async fn the_outbox_holds_a_subjects_next_event_until_its_previous_one_is_delivered(
        store: Arc<dyn Store>,
    ) {
        let s = store.as_ref();
        // Two events about one verification (begun at T0), one about another begun later.
        let begun = T0.minus(Duration::from_secs(60));
        s.write_events(vec![
            outbox_row("msg_a", "VE-one", begun, T0),
            outbox_row("msg_b", "VE-one", begun, T0.plus(Duration::from_millis(1))),
            outbox_row("msg_c", "VE-two", T0, T0.plus(Duration::from_millis(2))),
        ])
        .await
        .unwrap();
        let now = T0.plus(Duration::from_secs(1));
        let first = lease_ids(s, now).await;
        let ids: Vec<&str> = first.iter().map(|(_, id)| id.as_str()).collect();
        assert_eq!(
            ids,
            ["msg_a", "msg_c"],
            "a subject's second event waits for its first"
        );
        let seq = |id: &str| first.iter().find(|(_, i)| i == id).unwrap().0;
        // The first fails and waits a minute for its retry: the second still waits.
        s.finish_events(
            "suite",
            &[
                (
                    seq("msg_a"),
                    DeliveryResult::Retry {
                        at: now.plus(Duration::from_secs(60)),
                        error: "HTTP 500".to_owned(),
                    },
                ),
                (seq("msg_c"), DeliveryResult::Delivered { at: now }),
            ],
        )
        .await
        .unwrap();
        assert!(
            lease_ids(s, now.plus(Duration::from_secs(2)))
                .await
                .is_empty()
        );
        let retry_at = now.plus(Duration::from_secs(61));
        let again = lease_ids(s, retry_at).await;
        assert_eq!(again.len(), 1);
        assert_eq!(
            again[0].1, "msg_a",
            "the retry comes before the subject's next event"
        );
        s.finish_events(
            "suite",
            &[(seq("msg_a"), DeliveryResult::Delivered { at: retry_at })],
        )
        .await
        .unwrap();
        let last = lease_ids(s, retry_at).await;
        assert_eq!(last.len(), 1);
        assert_eq!(
            last[0].1, "msg_b",
            "delivered in order once its predecessor is"
        );
    }

    pub async fn a_lease_after_a_cursor_still_keeps_a_subjects_order(store: Arc<dyn Store>) {
        let s = store.as_ref();
        s.write_events(vec![outbox_row("first", "VE-one", T0, T0)])
            .await
            .unwrap();
        let now = T0.plus(Duration::from_secs(1));
        let first = lease_ids(s, now).await;
        assert_eq!(first.len(), 1);
        let cursor = first[0].0;
        // The subject's next event, and another subject's, written while the first is in flight.
        s.write_events(vec![
            outbox_row("second", "VE-one", T0, now),
            outbox_row("other", "VE-two", now, now),
        ])
        .await
        .unwrap();
        let labels = |rows: Vec<(i64, String)>| rows.into_iter().map(|r| r.1).collect::<Vec<_>>();
        let other = lease_after(s, now, cursor).await;
        assert_eq!(
            labels(other.clone()),
            ["other"],
            "the second waits for the first, in flight before the cursor"
        );
        s.finish_events(
            "suite",
            &[(other[0].0, DeliveryResult::Delivered { at: now })],
        )
        .await
        .unwrap();
        // The first fails: the second still waits, through its retry.
        s.finish_events(
            "suite",
            &[(
                cursor,
                DeliveryResult::Retry {
                    at: now.plus(Duration::from_secs(60)),
                    error: "HTTP 500".to_owned(),
                },
            )],
        )
        .await
        .unwrap();
        assert!(
            lease_after(s, now.plus(Duration::from_secs(2)), cursor)
                .await
                .is_empty()
        );
        assert!(
            lease_ids(s, now.plus(Duration::from_secs(2)))
                .await
                .is_empty()
        );
        let retry_at = now.plus(Duration::from_secs(61));
        assert_eq!(labels(lease_ids(s, retry_at).await), ["first"]);
        s.finish_events(
            "suite",
            &[(cursor, DeliveryResult::Delivered { at: retry_at })],
        )
        .await
        .unwrap();
        assert_eq!(labels(lease_ids(s, retry_at).await), ["second"]);
    }

    pub async fn an_event_row_is_replayed_by_its_id(store: Arc<dyn Store>) {
        let s = store.as_ref();
        s.write_events(vec![
            outbox_row("one", "VE-one", T0, T0),
            outbox_row("two", "VE-two", T0, T0.plus(Duration::from_millis(1))),
        ])
        .await
        .unwrap();
        let listed = s.list_events(None, 10).await.unwrap();
        assert_eq!(listed.len(), 2);
        for e in &listed {
            assert_eq!(e.id, verifyd::store::row_id(e.event.created, e.seq));
        }
        assert_ne!(listed[0].id, listed[1].id, "one id per row");
        let now = T0.plus(Duration::from_secs(1));
        let leased = lease_ids(s, now).await;
        let results: Vec<_> = leased
            .iter()
            .map(|(seq, _)| {
                (
                    *seq,
                    DeliveryResult::Dead {
                        error: "HTTP 500".to_owned(),
                    },
                )
            })
            .collect();
        s.finish_events("suite", &results).await.unwrap();
        let one = listed.iter().find(|e| e.event.payload == "one").unwrap();
        // The same number with another time is not that row's id.
        let forged = verifyd::store::row_id(T0.plus(Duration::from_secs(9)), one.seq);
        assert_eq!(s.replay_events(&Replay::Id(forged), now).await.unwrap(), 0);
        assert_eq!(
            s.replay_events(&Replay::Id("msg_unknown".to_owned()), now)
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            s.replay_events(&Replay::Id(one.id.clone()), now)
                .await
                .unwrap(),
            1
        );
        let again = lease_ids(s, now).await;
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].1, "one", "only the replayed row is pending again");
    }

    pub async fn the_event_purge_deletes_finished_rows_written_before_the_cutoff(
        store: Arc<dyn Store>,
    ) {
        let s = store.as_ref();
        let hour = Duration::from_secs(3600);
        s.write_events(vec![
            outbox_row("msg_old_delivered", "VE-1", T0, T0),
            outbox_row(
                "msg_old_dead",
                "VE-2",
                T0,
                T0.plus(Duration::from_millis(1)),
            ),
            outbox_row(
                "msg_old_pending",
                "VE-3",
                T0,
                T0.plus(Duration::from_millis(2)),
            ),
            outbox_row("msg_new_delivered", "VE-4", T0, T0.plus(hour * 2)),
        ])
        .await
        .unwrap();
        let now = T0.plus(hour * 3);
        let leased = lease_ids(s, now).await;
        assert_eq!(leased.len(), 4);
        let seq = |id: &str| leased.iter().find(|(_, i)| i == id).unwrap().0;
        s.finish_events(
            "suite",
            &[
                (
                    seq("msg_old_delivered"),
                    DeliveryResult::Delivered { at: now },
                ),
                (
                    seq("msg_old_dead"),
                    DeliveryResult::Dead {
                        error: "HTTP 500".to_owned(),
                    },
                ),
                (
                    seq("msg_old_pending"),
                    DeliveryResult::Retry {
                        at: now.plus(hour),
                        error: "HTTP 500".to_owned(),
                    },
                ),
                (
                    seq("msg_new_delivered"),
                    DeliveryResult::Delivered { at: now },
                ),
            ],
        )
        .await
        .unwrap();
        // The cutoff falls between the old rows and the new one.
        assert_eq!(s.purge_events(T0.plus(hour)).await.unwrap(), 2);
        let mut left: Vec<(String, EventState)> = s
            .list_events(None, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.event.payload, e.state))
            .collect();
        left.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            left,
            [
                ("msg_new_delivered".to_owned(), EventState::Delivered),
                ("msg_old_pending".to_owned(), EventState::Pending),
            ]
        );
        assert_eq!(
            s.purge_events(T0.plus(hour)).await.unwrap(),
            0,
            "nothing twice"
        );
        // A cutoff after every row: the finished rows go, but the newest row always stays (so
        // that SQLite never numbers a new row with a number it used: see the next case); the
        // pending one stays.
        assert_eq!(s.purge_events(now.plus(hour * 10)).await.unwrap(), 0);
        assert_eq!(s.list_events(None, 10).await.unwrap().len(), 2);
    }

    pub async fn an_event_row_written_after_a_purge_is_numbered_after_every_earlier_one(
        store: Arc<dyn Store>,
    ) {
        let s = store.as_ref();
        s.write_events(vec![
            outbox_row("a", "VE-1", T0, T0),
            outbox_row("b", "VE-2", T0, T0),
        ])
        .await
        .unwrap();
        let now = T0.plus(Duration::from_secs(1));
        let leased = lease_ids(s, now).await;
        let cursor = leased.iter().map(|r| r.0).max().unwrap();
        let done: Vec<_> = leased
            .iter()
            .map(|(seq, _)| (*seq, DeliveryResult::Delivered { at: now }))
            .collect();
        s.finish_events("suite", &done).await.unwrap();
        // A quiet day later every row is past the retention.
        let later = T0.plus(Duration::from_secs(86_400));
        s.purge_events(later).await.unwrap();
        // A subject's two events, written after the purge: a lease after the dispatcher's
        // cursor (it still has the old one) must find the first, and only the first.
        s.write_events(vec![
            outbox_row("first", "VE-3", later, later),
            outbox_row("second", "VE-3", later, later),
        ])
        .await
        .unwrap();
        let next = lease_after(s, later, cursor).await;
        assert_eq!(
            next.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(),
            ["first"],
            "{next:?}"
        );
        assert!(next[0].0 > cursor, "numbered after every earlier row");
    }

    pub async fn purge_deletes_the_verifications_that_expired_before_the_cutoff(
        store: Arc<dyn Store>,
    ) {
        let approved = create(store.as_ref(), 10, T0).await;
        store
            .record_check(&approved, &count(0, true, T0))
            .await
            .unwrap();
        let expired = create(store.as_ref(), 11, T0).await;
        let later = T0.plus(TTL).plus(Duration::from_secs(3600));
        let live = create(store.as_ref(), 12, later).await;
        // Approved before the cutoff, but expiring after it: kept until its expiry has passed.
        let approved_late = create(store.as_ref(), 13, later.minus(TTL)).await;
        store
            .record_check(&approved_late, &count(0, true, later.minus(TTL)))
            .await
            .unwrap();
        let cutoff = later.minus(Duration::from_secs(60));
        let deleted = store.purge(cutoff).await.unwrap();
        assert_eq!(deleted, 2);
        assert!(store.get(&approved).await.unwrap().is_none());
        assert!(store.get(&expired).await.unwrap().is_none());
        assert!(store.get(&live).await.unwrap().is_some());
        assert_eq!(
            status_of(store.as_ref(), &approved_late).await,
            Some(VerificationStatus::Approved)
        );
        assert_eq!(store.purge(T0).await.unwrap(), 0);
        assert_eq!(
            store
                .purge(later.plus(Duration::from_secs(1)))
                .await
                .unwrap(),
            1
        );
        assert!(store.get(&approved_late).await.unwrap().is_none());
    }

    pub async fn api_key_digests_are_kept_once_each(store: Arc<dyn Store>) {
        assert!(store.api_key_digests().await.unwrap().is_empty());
        store.add_api_key_digest([1; 32], T0).await.unwrap();
        store
            .add_api_key_digest([2; 32], T0.plus(Duration::from_secs(1)))
            .await
            .unwrap();
        store
            .add_api_key_digest([1; 32], T0.plus(Duration::from_secs(2)))
            .await
            .unwrap();
        assert_eq!(
            store.api_key_digests().await.unwrap(),
            vec![[1; 32], [2; 32]]
        );
    }

    pub async fn ping_answers(store: Arc<dyn Store>) {
        store.ping().await.expect("ping");
        assert!(["sqlite", "postgres"].contains(&store.name()));
    }
}

/// PostgreSQL-only behaviour: the race on the one-pending-row index and the statement timeout.
mod postgres_only {
    use sqlx::{Connection, Executor};

    use super::*;

    async fn store_on(db: &TestDb, statement_timeout: Duration) -> PostgresStore {
        PostgresStore::connect(
            &db.url(),
            PostgresSettings {
                pool_size: 4,
                acquire_timeout: Duration::from_secs(10),
                statement_timeout,
            },
        )
        .await
        .expect("PostgreSQL store")
    }

    /// Backends of `db` waiting on a lock.
    async fn lock_waiters(admin: &mut sqlx::PgConnection, db: &TestDb) -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'",
        )
        .bind(&db.name)
        .fetch_one(admin)
        .await
        .expect("pg_stat_activity")
    }

    /// New sends are inserted in groups; one whose row the database refuses (here an attempt id
    /// that already exists) fails alone, and the sends that waited with it go in.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_send_the_database_refuses_fails_alone_among_those_inserted_with_it() {
        let Some(db) = postgres_or_skip().await else {
            return;
        };
        let store = Arc::new(store_on(&db, Duration::from_secs(5)).await);
        let first = new_verification(1, T0);
        let taken = first.attempt.sid.clone();
        create(store.as_ref(), 1, T0).await;
        store
            .start_or_resend(first, T0, life())
            .await
            .expect("a resend");
        let sends = (10..=60u8).map(|lookup| {
            let mut new = new_verification(lookup, T0);
            if lookup == 35 {
                new.attempt.sid = taken.clone();
            }
            let store = Arc::clone(&store);
            tokio::spawn(async move { (lookup, store.start_or_resend(new, T0, life()).await) })
        });
        for outcome in join_all(sends).await {
            match outcome.expect("task") {
                (35, Err(verifyd::store::StoreError::Internal(_))) => {}
                (35, other) => panic!("the refused send: {other:?}"),
                (lookup, Ok(SendOutcome::Created(v))) => {
                    let stored = store.get(&v.sid).await.unwrap().unwrap();
                    assert_eq!(stored.send_attempts.len(), 1, "number {lookup}");
                }
                (lookup, other) => panic!("number {lookup}: {other:?}"),
            }
        }
        let pending: i64 =
            sqlx::query_scalar("SELECT count(*) FROM verifications WHERE status = 'pending'")
                .fetch_one(&mut sqlx::PgConnection::connect(&db.url()).await.unwrap())
                .await
                .unwrap();
        assert_eq!(pending, 1 + 50, "number 35 left nothing behind");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_send_that_loses_the_race_for_the_pending_row_resends_instead_of_failing() {
        let Some(db) = postgres_or_skip().await else {
            return;
        };
        let store = Arc::new(store_on(&db, Duration::from_secs(5)).await);
        // Another replica's send, caught between its insert and its commit.
        let mut other = sqlx::PgConnection::connect(&db.url()).await.unwrap();
        other.execute("BEGIN").await.unwrap();
        let winner = VerificationSid::generate();
        sqlx::query(
            "INSERT INTO verifications (sid, phone_lookup, phone_sealed, channel, status, code_digest, \
             code_sealed, check_count, send_count, created_at, updated_at, expires_at) \
             VALUES ($1, $2, '\\x01', 'sms', 'pending', '\\x07', '\\x09', 0, 1, $3, $3, $4)",
        )
        .bind(winner.as_str())
        .bind(&[13u8; 32][..])
        .bind(T0.as_millis())
        .bind(T0.plus(TTL).as_millis())
        .execute(&mut other)
        .await
        .unwrap();

        // Our send sees no committed pending row, inserts, and waits on the unique index.
        let ours = {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                store
                    .start_or_resend(new_verification(13, T0), T0, life())
                    .await
            })
        };
        let mut admin = sqlx::PgConnection::connect(&db.url()).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while lock_waiters(&mut admin, &db).await < 1 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "our insert never waited on the index"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        other.execute("COMMIT").await.unwrap();

        match ours.await.unwrap().expect("a domain outcome, not an error") {
            SendOutcome::Resent(v) => assert_eq!(v.sid, winner),
            other => panic!("expected the winner's verification to be resent, got {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_statement_stuck_past_the_statement_timeout_is_unavailable() {
        let Some(db) = postgres_or_skip().await else {
            return;
        };
        let store = store_on(&db, Duration::from_secs(1)).await;
        let sid = create(&store, 14, T0).await;
        // Another session holds the row.
        let mut other = sqlx::PgConnection::connect(&db.url()).await.unwrap();
        other.execute("BEGIN").await.unwrap();
        sqlx::query("SELECT 1 FROM verifications WHERE sid = $1 FOR UPDATE")
            .bind(sid.as_str())
            .execute(&mut other)
            .await
            .unwrap();

        let err = store
            .record_check(&sid, &count(0, true, T0))
            .await
            .expect_err("the server cancels the statement");
        assert!(
            matches!(err, verifyd::store::StoreError::Unavailable(_)),
            "{err:?}"
        );
        other.execute("ROLLBACK").await.unwrap();
        assert_eq!(
            store.record_check(&sid, &count(0, true, T0)).await.unwrap(),
            CheckRecord::Counted
        );
    }
}
