//! The `verifyd` command line: `serve` (the default), `send` and `check` (the same engine and
//! policy, in-process, against the configured store), `cancel` (a pending verification),
//! `twilio sync` (the Twilio-side IP bucket), `events list|replay` (the signed events' outbox), `config` (effective settings, secrets redacted;
//! exit 64 naming every bad variable), `doctor` (the settings against reality), `rekey` (move
//! stored data to the newest secret), `healthcheck` (for container health checks), and
//! `services` and `safelist` (the `/v2` face's services and safe list, in [`admin`]), and
//! `guard` (the fraud guard's status and unblock, asking the running server).

mod admin;
mod events;
mod guard;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::app::{Application, Components};
use crate::clock::SystemClock;
use crate::config::Config;
use crate::domain::{Channel, OtpCode, Recipient, VerificationSid};
use crate::error::Chain;
use crate::http::ApiError;
use crate::http::mfa::{Envelope, VerificationData};
use crate::service::Caller;

/// Exit code for bad usage or configuration (`EX_USAGE`).
pub const EXIT_USAGE: i32 = 64;
/// Exit code when a dependency (Twilio) cannot be used (`EX_UNAVAILABLE`).
pub const EXIT_UNAVAILABLE: i32 = 69;

#[derive(Debug, Parser)]
#[command(
    name = "verifyd",
    version,
    about = "Self-hosted SMS one-time-code (2FA) service"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API on VERIFYD_ADDR (the default command).
    Serve,
    /// Send a code to a number (policy applies; no client IP, so no IP bucket).
    Send {
        /// The number in international format, e.g. +14155552671.
        number: String,
        /// The channel (must be enabled in VERIFYD_CHANNELS).
        #[arg(long, default_value = "sms")]
        channel: String,
    },
    /// Check a code for a number.
    Check {
        /// The number in international format.
        number: String,
        /// The code the user received.
        code: String,
    },
    /// Cancel a pending verification by its sid (VE…).
    Cancel {
        /// The verification's sid, as send-code answered it.
        sid: String,
    },
    /// Twilio Verify maintenance.
    Twilio {
        #[command(subcommand)]
        command: TwilioCommand,
    },
    /// Print the effective settings (secrets redacted) and exit 64 if any is invalid.
    Config {
        /// Print instead the settings table of docs/configuration.md (every setting, its
        /// default and what it does), generated from the table in src/config/settings.rs.
        #[arg(long)]
        markdown_table: bool,
    },
    /// Check the settings against reality (store, secrets, limiter, clock, Twilio) and print a
    /// checklist with a fix per failure; exit 1 if any check fails. Changes nothing.
    Doctor,
    /// Re-encrypt and re-key every stored row under the newest secret in VERIFYD_SECRET (the
    /// first), so older secrets can be dropped. Safe while verifyd serves; safe to repeat.
    Rekey,
    /// Verify services of the /v2 face (Twilio's API), in the store.
    Services {
        #[command(subcommand)]
        command: admin::ServicesCommand,
    },
    /// The safe list: numbers exempt from the country and number-type rules and the shared
    /// buckets (never from the per-number and per-IP limits).
    Safelist {
        #[command(subcommand)]
        command: admin::SafelistCommand,
    },
    /// The fraud guard of the running server: `status` (blocks, closures, country figures) or
    /// `unblock <destination>`. Asks VERIFYD_ADDR (or --addr) with an API key.
    Guard {
        #[command(subcommand)]
        command: guard::GuardCommand,
        /// The server to ask (host:port; default VERIFYD_ADDR, 0.0.0.0 as loopback).
        #[arg(long, global = true)]
        addr: Option<SocketAddr>,
        /// An API key (default: the first of VERIFYD_API_KEYS).
        #[arg(long, global = true)]
        api_key: Option<String>,
    },
    /// Signed events: list the outbox, replay dead or chosen events.
    Events {
        #[command(subcommand)]
        command: events::EventsCommand,
    },
    /// GET /healthz on VERIFYD_ADDR (0.0.0.0 and :: become loopback); exit 0 when it answers
    /// 200, else 1. For container HEALTHCHECKs: the image has no curl.
    Healthcheck {
        /// Another address to probe (host:port).
        #[arg(long)]
        addr: Option<SocketAddr>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TwilioCommand {
    /// Make the Verify service's `end_user_ip_address` RateLimit hold one bucket equal to the
    /// IP bucket (create or update; other RateLimits untouched). Runs even when
    /// VERIFYD_TWILIO_SYNC_RATE_LIMITS=false; exit 69 when Twilio fails.
    Sync,
}

/// Runs the command line and returns the process exit code.
pub async fn run(cli: Cli) -> i32 {
    if let Some(Command::Config {
        markdown_table: true,
    }) = cli.command
    {
        print!("{}", crate::config::markdown_table());
        return 0;
    }
    let config = match Config::load() {
        Ok(c) => c,
        Err(e) => {
            if matches!(cli.command, Some(Command::Doctor)) {
                for p in &e.problems {
                    println!("✘ settings: {p}");
                }
                println!(
                    "    fix: correct the variable(s) above (`verifyd config` shows every effective value)"
                );
            }
            eprintln!("verifyd: {e}");
            return EXIT_USAGE;
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Config { .. } => {
            print!("{}", config.describe());
            for w in &config.warnings {
                println!("warning: {w}");
            }
            0
        }
        Command::Doctor => {
            let report = crate::doctor::run(&config).await;
            print!("{}", report.render());
            i32::from(report.failures() > 0)
        }
        Command::Rekey => {
            let _log = crate::telemetry::init(
                config.telemetry.log_format,
                &config.telemetry.log_filter,
                crate::telemetry::Writer::Direct,
            );
            let parts = match Components::build(&config, Arc::new(SystemClock)).await {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("verifyd: {}", Chain(&e));
                    return e.exit_code();
                }
            };
            let now = parts.clock.now();
            match crate::rotation::rekey(parts.store.as_ref(), &parts.keys, now).await {
                Ok(report) => {
                    println!(
                        "verifyd rekey: {report}; everything is under key id {}",
                        parts.keys.newest_key_id()
                    );
                    0
                }
                Err(e) => {
                    eprintln!("verifyd rekey: {}", Chain(&e));
                    1
                }
            }
        }
        Command::Events { command } => {
            let _log = crate::telemetry::init(
                config.telemetry.log_format,
                &config.telemetry.log_filter,
                crate::telemetry::Writer::Direct,
            );
            events::events(&config, command).await
        }
        Command::Healthcheck { addr } => healthcheck(addr.unwrap_or(config.server.addr)).await,
        Command::Services { command } => {
            let _log = crate::telemetry::init(
                config.telemetry.log_format,
                &config.telemetry.log_filter,
                crate::telemetry::Writer::Direct,
            );
            admin::services(&config, command).await
        }
        Command::Safelist { command } => {
            let _log = crate::telemetry::init(
                config.telemetry.log_format,
                &config.telemetry.log_filter,
                crate::telemetry::Writer::Direct,
            );
            admin::safe_list(&config, command).await
        }
        Command::Guard {
            command,
            addr,
            api_key,
        } => guard::run(&config, command, addr, api_key).await,
        Command::Serve => {
            let _log = crate::telemetry::init(
                config.telemetry.log_format,
                &config.telemetry.log_filter,
                crate::telemetry::Writer::Background,
            );
            let app = match Application::build(config).await {
                Ok(app) => app,
                Err(e) => {
                    tracing::error!("cannot start: {}", Chain(&e));
                    eprintln!("verifyd: cannot start: {}", Chain(&e));
                    return e.exit_code();
                }
            };
            match app.run_until_stopped().await {
                Ok(()) => 0,
                Err(e) => {
                    tracing::error!(error = %e, "server failed");
                    1
                }
            }
        }
        Command::Send { number, channel } => {
            one_shot(
                config,
                |parts| async move {
                    let named = channel.parse::<Channel>();
                    let phone =
                        Recipient::for_channel(&number, *named.as_ref().unwrap_or(&Channel::Sms))?;
                    let channel = named.map_err(|_| ApiError::ChannelNotAllowed)?;
                    Ok(parts
                        .verifier
                        .send_code(phone, channel, Caller::default())
                        .await?)
                },
                "Verification code sent!",
            )
            .await
        }
        Command::Twilio {
            command: TwilioCommand::Sync,
        } => {
            let _log = crate::telemetry::init(
                config.telemetry.log_format,
                &config.telemetry.log_filter,
                crate::telemetry::Writer::Direct,
            );
            match crate::provider::twilio_sync::sync_from_config(&config).await {
                Ok(outcome) => {
                    println!("{outcome}");
                    0
                }
                Err(e @ crate::provider::twilio_sync::SyncError::NotConfigured(_)) => {
                    eprintln!("verifyd: {e}");
                    EXIT_USAGE
                }
                Err(e) => {
                    eprintln!("verifyd: {e}");
                    EXIT_UNAVAILABLE
                }
            }
        }
        Command::Cancel { sid } => {
            let Some(sid) = VerificationSid::parse(sid.trim()) else {
                eprintln!("verifyd: `{sid}` is not a verification sid (VE + 32 hex digits)");
                return EXIT_USAGE;
            };
            one_shot(
                config,
                |parts| async move {
                    let now = parts.clock.now();
                    Ok(parts.verifier.provider().cancel(&sid, now).await?)
                },
                "Verification canceled",
            )
            .await
        }
        Command::Check { number, code } => {
            let length = config.codes.length;
            one_shot(
                config,
                |parts| async move {
                    let phone = Recipient::parse(&number)?;
                    let code = OtpCode::parse(&code, length)?;
                    Ok(parts
                        .verifier
                        .verify_code(phone, code, Caller::default())
                        .await?)
                },
                "Verification code is correct!",
            )
            .await
        }
    }
}

/// `GET /healthz` on `addr`, with an unspecified address replaced by loopback.
async fn healthcheck(addr: SocketAddr) -> i32 {
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        });
    }
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("verifyd healthcheck: {e}");
            return 1;
        }
    };
    match client.get(format!("http://{addr}/healthz")).send().await {
        Ok(r) if r.status().is_success() => 0,
        Ok(r) => {
            eprintln!(
                "verifyd healthcheck: http://{addr}/healthz answered {}",
                r.status()
            );
            1
        }
        Err(e) => {
            eprintln!("verifyd healthcheck: http://{addr}/healthz: {e}");
            1
        }
    }
}

async fn one_shot<F, Fut>(config: Config, act: F, message: &'static str) -> i32
where
    F: FnOnce(Components) -> Fut,
    Fut: std::future::Future<Output = Result<crate::domain::Verification, ApiError>>,
{
    let _log = crate::telemetry::init(
        config.telemetry.log_format,
        &config.telemetry.log_filter,
        crate::telemetry::Writer::Direct,
    );
    let parts = match Components::build(&config, Arc::new(SystemClock)).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("verifyd: {}", Chain(&e));
            return e.exit_code();
        }
    };
    // Like the server: each change writes its attempt-log row and its events in its own
    // transaction (a serving replica's dispatcher delivers them).
    match crate::twilio_api::default_service_sid(&config, parts.services.as_ref()).await {
        Ok(service) => {
            let emitter = crate::events::Emitter::new(&config.events, service.clone());
            if let Some(e) = &emitter {
                parts
                    .verifier
                    .set_events(Arc::clone(e), parts.store.clone());
            }
            parts
                .verifier
                .local_engine()
                .set_journaling(service, emitter, parts.store.clone());
        }
        Err(e) => {
            eprintln!("verifyd: {}", Chain(&e));
            return 1;
        }
    }
    match act(parts).await {
        Ok(v) => {
            let body = Envelope {
                status_code: 200,
                message,
                data: VerificationData::from(v),
            };
            println!(
                "{}",
                serde_json::to_string_pretty(&body).unwrap_or_default()
            );
            0
        }
        Err(e) => {
            let (status, code) = e.status_and_code();
            eprintln!("verifyd: {} {}: {e}", status.as_u16(), code.as_str());
            1
        }
    }
}
