//! `verifyd guard status` and `verifyd guard unblock <destination>`: the fraud guard from the
//! command line. They ask the running server (`GET /guard`, `POST /guard/unblock` on
//! VERIFYD_ADDR, or `--addr`) with an API key (`--api-key`, else the first of
//! VERIFYD_API_KEYS): the in-memory guard lives in the server's process, and with Redis any
//! replica answers for all. Output is the server's JSON, pretty-printed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use clap::Subcommand;
use secrecy::ExposeSecret;

use crate::config::Config;

#[derive(Debug, Subcommand)]
pub enum GuardCommand {
    /// Print the mode, every block and closure in force, and each country's figures.
    Status,
    /// Lift the block of a long prefix (+1415555), the closure of a short prefix (+1415) or
    /// of a country (US).
    Unblock {
        /// The destination, as `verifyd guard status` shows it.
        destination: String,
    },
}

/// Runs a `guard` command against the server at `addr` (default VERIFYD_ADDR).
pub async fn run(
    config: &Config,
    command: GuardCommand,
    addr: Option<SocketAddr>,
    api_key: Option<String>,
) -> i32 {
    let mut addr = addr.unwrap_or(config.server.addr);
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        });
    }
    let Some(key) = api_key.or_else(|| {
        config
            .auth
            .api_keys
            .first()
            .map(|k| k.expose_secret().to_owned())
    }) else {
        eprintln!("verifyd guard: give --api-key (VERIFYD_API_KEYS is unset)");
        return super::EXIT_USAGE;
    };
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("verifyd guard: {e}");
            return 1;
        }
    };
    let request = match &command {
        GuardCommand::Status => client.get(format!("http://{addr}/guard")),
        GuardCommand::Unblock { destination } => client
            .post(format!("http://{addr}/guard/unblock"))
            .json(&serde_json::json!({ "destination": destination })),
    };
    let response = match request.bearer_auth(key).send().await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("verifyd guard: http://{addr}: {e} (is verifyd serving there? --addr)");
            return super::EXIT_UNAVAILABLE;
        }
    };
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or(serde_json::Value::Null);
    if !status.is_success() {
        eprintln!(
            "verifyd guard: the server answered {status}: {}",
            body["message"].as_str().unwrap_or("")
        );
        return if status.is_client_error() {
            super::EXIT_USAGE
        } else {
            super::EXIT_UNAVAILABLE
        };
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&body).unwrap_or_default()
    );
    match command {
        GuardCommand::Unblock { .. } if body["unblocked"] != true => {
            eprintln!("verifyd guard: that destination was not blocked");
            1
        }
        _ => 0,
    }
}
