//! The HTTP floor: the least an axum JSON service can do per request (read the body, parse it
//! as a JSON object, answer a small JSON envelope echoing it), on the same runtime settings as
//! verifyd. Every bench scenario runs this first under the same load, and reports verifyd as a
//! ratio to it.
//!
//! Usage: `floor 127.0.0.1:PORT` (loopback only).

use std::net::SocketAddr;

use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Map, Value, json};

async fn echo(Json(body): Json<Map<String, Value>>) -> (StatusCode, Json<Value>) {
    (
        StatusCode::OK,
        Json(json!({ "statusCode": 200, "message": "echo", "data": body })),
    )
}

#[tokio::main]
async fn main() {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18080".to_owned())
        .parse()
        .expect("usage: floor 127.0.0.1:PORT");
    assert!(
        addr.ip().is_loopback(),
        "the floor listens on loopback only"
    );
    let app = Router::new()
        .route("/mfa/send-code", post(echo))
        .route("/mfa/verify", post(echo));
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
    eprintln!("floor listening on {addr}");
    axum::serve(listener, app).await.expect("serve");
}
