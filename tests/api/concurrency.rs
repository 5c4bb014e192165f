//! Single use and the check budget hold under concurrent requests.

use futures_util::future::join_all;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_right_code_checks_approve_exactly_once() {
    let app = spawn_app().await;
    let code = app.send_and_read_code(US_NUMBER).await;
    let responses = join_all((0..50).map(|_| app.verify(US_NUMBER, &code))).await;
    let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    let approved = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(approved, 1, "{statuses:?}");
    assert!(
        statuses.iter().all(|s| [200, 404, 429].contains(s)),
        "{statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_a_hundred_concurrent_wrong_checks_at_most_five_are_evaluated() {
    // The verify IP bucket (30 per minute) would refuse most of them first: turn it off so the
    // engine's own limit is what is tested.
    let app = spawn_app_with(&[("VERIFYD_VERIFY_RATE_LIMIT_IP_MAX", "0")]).await;
    let code = app.send_and_read_code(US_NUMBER).await;
    let bad = wrong(&code);
    let responses = join_all((0..100).map(|_| app.verify(US_NUMBER, &bad))).await;
    let mut incorrect = 0;
    let mut locked = 0;
    for r in responses {
        match r.status().as_u16() {
            400 => incorrect += 1,
            429 => locked += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(incorrect, 5, "exactly five checks were counted");
    assert_eq!(locked, 95);
    assert_error(
        app.verify(US_NUMBER, &code).await,
        429,
        "max_check_attempts",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_sends_to_one_number_make_one_verification() {
    let app = spawn_app_with(&[
        ("VERIFYD_RATE_LIMIT_IP_MAX", "0"),
        ("VERIFYD_RATE_LIMIT_PHONE_MAX", "0"),
        ("VERIFYD_RESEND_COOLDOWN", "0"),
    ])
    .await;
    let responses = join_all((0..5).map(|_| app.send_code(US_NUMBER))).await;
    let mut sids = Vec::new();
    for r in responses {
        let data = assert_ok(r, "Verification code sent!").await;
        sids.push(data["sid"].as_str().unwrap().to_owned());
    }
    sids.dedup();
    assert_eq!(sids.len(), 1, "{sids:?}");
    let codes: Vec<String> = app
        .outbox()
        .await
        .iter()
        .map(|m| code_in(m["body"].as_str().unwrap()))
        .collect();
    assert_eq!(codes.len(), 5);
    assert!(
        codes.windows(2).all(|w| w[0] == w[1]),
        "every delivery carries the one code"
    );
}
