//! The IP bucket's key: the socket peer, or behind a trusted proxy the right-most untrusted
//! `X-Forwarded-For` entry; never a value the client can forge; IPv6 by /64.

use crate::helpers::*;

fn numbers() -> impl Iterator<Item = String> {
    (0..).map(|i| format!("+1415555{:04}", 3000 + i))
}

/// Sends `n` codes to distinct numbers through `client` and `forwarded`, returning statuses.
async fn burst(app: &TestApp, client: &reqwest::Client, forwarded: &[&str]) -> Vec<u16> {
    let mut statuses = Vec::new();
    for (number, xff) in numbers().zip(forwarded) {
        let xff = (!xff.is_empty()).then_some(*xff);
        statuses.push(
            app.send_code_via(client, &number, xff)
                .await
                .status()
                .as_u16(),
        );
    }
    statuses
}

#[tokio::test]
async fn a_direct_client_cannot_escape_its_bucket_with_a_forged_header() {
    let app = spawn_app().await;
    let forged: Vec<String> = (0..8).map(|i| format!("198.51.100.{i}")).collect();
    let forged: Vec<&str> = forged.iter().map(String::as_str).collect();
    let statuses = burst(&app, &app.client, &forged).await;
    assert_eq!(statuses, [200, 200, 200, 200, 429, 429, 429, 429]);
}

#[tokio::test]
async fn direct_clients_on_different_addresses_have_their_own_buckets() {
    let app = spawn_app().await;
    let a = client(Some("127.0.0.2".parse().unwrap()));
    let b = client(Some("127.0.0.3".parse().unwrap()));
    assert_eq!(burst(&app, &a, &[""; 5]).await, [200, 200, 200, 200, 429]);
    let mut fresh = numbers().skip(100);
    for _ in 0..4 {
        let response = app.send_code_via(&b, &fresh.next().unwrap(), None).await;
        assert_eq!(response.status(), 200);
    }
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_right_most_untrusted_entry_is_the_client() {
    let app = spawn_app_with(&[("VERIFYD_TRUSTED_PROXIES", "127.0.0.1/32, 10.0.0.0/8")]).await;
    // "a, b": keyed on b, whatever a says.
    let statuses = burst(
        &app,
        &app.client,
        &[
            "1.1.1.1, 203.0.113.7",
            "2.2.2.2, 203.0.113.7",
            "3.3.3.3, 203.0.113.7, 10.0.0.5",
            "203.0.113.7",
            "4.4.4.4, 203.0.113.7",
        ],
    )
    .await;
    assert_eq!(statuses, [200, 200, 200, 200, 429]);
    // Another client behind the same proxy has its own bucket.
    let response = app
        .send_code_via(&app.client, "+14155559999", Some("1.1.1.1, 203.0.113.8"))
        .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_hundred_forged_left_most_values_share_one_bucket() {
    let app = spawn_app_with(&[("VERIFYD_TRUSTED_PROXIES", "127.0.0.1")]).await;
    let headers: Vec<String> = (0..100)
        .map(|i| format!("192.0.2.{i}, 203.0.113.50"))
        .collect();
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    let statuses = burst(&app, &app.client, &headers).await;
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 4);
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 96);
}

#[tokio::test]
async fn ipv6_clients_share_a_bucket_per_64() {
    let app = spawn_app_with(&[("VERIFYD_TRUSTED_PROXIES", "127.0.0.1")]).await;
    let same_64 = [
        "2001:db8:1:2::1",
        "2001:db8:1:2::2",
        "2001:db8:1:2:ffff::9",
        "2001:db8:1:2:abcd::1",
        "2001:db8:1:2::5",
    ];
    assert_eq!(
        burst(&app, &app.client, &same_64).await,
        [200, 200, 200, 200, 429]
    );
    let response = app
        .send_code_via(&app.client, "+14155559998", Some("2001:db8:1:3::1"))
        .await;
    assert_eq!(response.status(), 200, "another /64 is another client");
}

#[tokio::test]
async fn without_trusted_proxies_the_proxy_itself_is_the_client() {
    // The default trusts nobody: everything through one proxy shares the proxy's bucket.
    let app = spawn_app().await;
    let statuses = burst(
        &app,
        &app.client,
        &[
            "203.0.113.1",
            "203.0.113.2",
            "203.0.113.3",
            "203.0.113.4",
            "203.0.113.5",
        ],
    )
    .await;
    assert_eq!(statuses, [200, 200, 200, 200, 429]);
}
