//! Connections, through raw sockets against the real server: a request head that never
//! completes is cut at the header timeout (on a new and on a keep-alive connection) while
//! other clients are served, an idle keep-alive connection is closed at the idle timeout, and
//! past the connection cap a new connection waits until a slot frees, then is served.
//! These use real, short timeouts (1 s) and assert only "closed within the timeout plus a
//! generous margin", never a tight bound.

use std::time::Duration;

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

/// Far beyond any timeout these tests configure: a close must come well before it.
const MARGIN: Duration = Duration::from_secs(10);

/// Sends a complete keep-alive `GET /healthz` and reads its whole answer; returns the status.
async fn get_healthz(stream: &mut TcpStream) -> u16 {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed before the answer: {got:?}");
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            if got.len() >= end + 4 + length {
                return text[9..12].parse().unwrap();
            }
        }
    }
}

/// Waits (at most `limit`) for the server to close `stream`: end of file or a reset.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 1024];
    tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn a_half_sent_request_is_closed_within_the_header_timeout_while_others_are_served() {
    let app = spawn_app_with(&[
        ("VERIFYD_HEADER_TIMEOUT", "1"),
        ("VERIFYD_IDLE_TIMEOUT", "300"),
    ])
    .await;
    // A new connection that sends half a head and nothing more.
    let mut slow = TcpStream::connect(app.addr).await.unwrap();
    slow.write_all(b"POST /mfa/send-code HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // A keep-alive connection, served once, that then starts a head and stalls: held to the
    // header timeout (1 s), not to the idle timeout (300 s).
    let mut kept = TcpStream::connect(app.addr).await.unwrap();
    assert_eq!(get_healthz(&mut kept).await, 200);
    kept.write_all(b"POST /mfa/verify HTTP/1.1\r\nHo")
        .await
        .unwrap();
    // Other clients are served meanwhile.
    assert_ok(app.send_code(US_NUMBER).await, "Verification code sent!").await;
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);

    assert!(
        closed_within(&mut slow, MARGIN).await,
        "a half-sent head held its connection open"
    );
    assert!(
        closed_within(&mut kept, MARGIN).await,
        "a stalled head on a keep-alive connection held it open"
    );
    // And the server still serves.
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_at_the_idle_timeout() {
    let app = spawn_app_with(&[
        ("VERIFYD_HEADER_TIMEOUT", "30"),
        ("VERIFYD_IDLE_TIMEOUT", "1"),
    ])
    .await;
    let mut idle = TcpStream::connect(app.addr).await.unwrap();
    assert_eq!(get_healthz(&mut idle).await, 200);
    assert_eq!(get_healthz(&mut idle).await, 200, "kept alive");
    assert!(
        closed_within(&mut idle, MARGIN).await,
        "an idle keep-alive connection was never closed"
    );
}

#[tokio::test]
async fn past_the_connection_cap_a_new_connection_waits_and_is_served_once_one_closes() {
    let app = spawn_app_with(&[("VERIFYD_MAX_CONNECTIONS", "2")]).await;
    // Two keep-alive connections, each served once and then left idle: both slots taken.
    let mut first = TcpStream::connect(app.addr).await.unwrap();
    assert_eq!(get_healthz(&mut first).await, 200);
    let mut second = TcpStream::connect(app.addr).await.unwrap();
    assert_eq!(get_healthz(&mut second).await, 200);
    // A third client connects (the kernel queues it) but is not served while both are open.
    let third = {
        let http = client(None);
        let url = app.url("/healthz");
        tokio::spawn(async move { http.get(url).send().await.map(|r| r.status()) })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !third.is_finished(),
        "a third connection was served past the cap"
    );
    // One closes: the waiting client is served, and nothing failed on the way.
    drop(first);
    let status = tokio::time::timeout(MARGIN, third)
        .await
        .expect("the waiting connection is served once a slot frees")
        .unwrap()
        .expect("the waiting request succeeds");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        get_healthz(&mut second).await,
        200,
        "the other one still works"
    );
}
