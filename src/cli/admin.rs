//! `verifyd services list|create` and `verifyd safelist add|remove|list`: the `/v2` face's
//! services and safe list from the command line, against the configured store. The same
//! functions as `POST /v2/Services` and `/v2/SafeList/Numbers` do the work (one path, one set
//! of rules); this module only turns arguments into their parameters and prints the result.

use std::sync::Arc;

use clap::Subcommand;

use crate::app::{Components, Stores};
use crate::clock::SystemClock;
use crate::config::Config;
use crate::http::ApiKeys;
use crate::twilio_api::form::Params;
use crate::twilio_api::services::{ServiceResource, new_service};
use crate::twilio_api::{TwilioApi, TwilioError, safelist};

#[derive(Debug, Subcommand)]
pub enum ServicesCommand {
    /// List every Verify service (sid, name, settings), oldest first.
    List,
    /// Create a Verify service (as `POST /v2/Services`) and print it.
    Create {
        /// Its friendly name (shown in its messages), 1 to 30 characters.
        friendly_name: String,
        /// Digits of its codes (4 to 10; default VERIFYD_CODE_LENGTH).
        #[arg(long)]
        code_length: Option<u8>,
        /// Require Amount and Payee, bound into the code (PSD2).
        #[arg(long)]
        psd2: bool,
        /// Accept CustomCode on create.
        #[arg(long)]
        custom_code: bool,
        /// Refuse landlines (60205).
        #[arg(long)]
        skip_sms_to_landlines: bool,
        /// Add "Don't share this code" to its messages.
        #[arg(long)]
        do_not_share_warning: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SafelistCommand {
    /// Add a number (E.164) to the safe list and print its entry.
    Add { number: String },
    /// Remove a number; exit 1 when it was not listed.
    Remove { number: String },
    /// List the safe-listed numbers (sid and number), oldest first.
    List,
}

/// The `/v2` face's state over the configured store (no listener).
async fn face(config: &Config) -> Result<(Components, TwilioApi), i32> {
    let parts = Components::build(config, Arc::new(SystemClock))
        .await
        .map_err(|e| {
            eprintln!("verifyd: {e}");
            e.exit_code()
        })?;
    let stores = Stores {
        store: Arc::clone(&parts.store),
        services: Arc::clone(&parts.services),
        attempts: Arc::clone(&parts.attempts),
        safe_list: Arc::clone(&parts.safe_list),
        rate_limits: Arc::clone(&parts.rate_limits),
        console: Arc::clone(&parts.console),
    };
    let public_url = config
        .server
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.server.addr));
    let api = TwilioApi::start(
        config,
        &stores,
        ApiKeys::default(),
        public_url,
        parts.clock.now(),
    )
    .await
    .map_err(|e| {
        eprintln!("verifyd: store: {e}");
        crate::cli::EXIT_UNAVAILABLE
    })?;
    Ok((parts, api))
}

fn failed(e: &TwilioError) -> i32 {
    eprintln!("verifyd: {} {}: {}", e.status.as_u16(), e.code, e.message);
    1
}

fn print_json(value: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

/// `verifyd services …`.
pub async fn services(config: &Config, command: ServicesCommand) -> i32 {
    let (parts, api) = match face(config).await {
        Ok(f) => f,
        Err(code) => return code,
    };
    match command {
        ServicesCommand::List => {
            println!(
                "account {}  (the /v2 Basic-auth user name, with an API key as the password)",
                api.account_sid
            );
            let mut after: Option<String> = None;
            loop {
                let page = match api.services.services(after.as_deref(), 500).await {
                    Ok(p) => p,
                    Err(e) => return failed(&TwilioError::from(e)),
                };
                let Some(last) = page.last() else {
                    return 0;
                };
                after = Some(last.sid.clone());
                for s in page {
                    println!(
                        "{}  {:<30}  code_length={} psd2_enabled={} custom_code_enabled={} \
                         skip_sms_to_landlines={} do_not_share_warning_enabled={}{}",
                        s.sid,
                        s.friendly_name,
                        s.code_length,
                        s.psd2_enabled,
                        s.custom_code_enabled,
                        s.skip_sms_to_landlines,
                        s.do_not_share_warning_enabled,
                        if s.sid == api.default_service {
                            "  (default)"
                        } else {
                            ""
                        }
                    );
                }
            }
        }
        ServicesCommand::Create {
            friendly_name,
            code_length,
            psd2,
            custom_code,
            skip_sms_to_landlines,
            do_not_share_warning,
        } => {
            let length = code_length.map(|n| n.to_string());
            let flag = |on: bool| if on { "true" } else { "false" };
            let mut pairs = vec![
                ("FriendlyName", friendly_name.as_str()),
                ("Psd2Enabled", flag(psd2)),
                ("CustomCodeEnabled", flag(custom_code)),
                ("SkipSmsToLandlines", flag(skip_sms_to_landlines)),
                ("DoNotShareWarningEnabled", flag(do_not_share_warning)),
            ];
            if let Some(l) = &length {
                pairs.push(("CodeLength", l));
            }
            match new_service(&api, &Params::from_pairs(&pairs), parts.clock.now()).await {
                Ok(s) => {
                    print_json(&ServiceResource::new(&api, s));
                    0
                }
                Err(e) => failed(&e),
            }
        }
    }
}

/// `verifyd safelist …`.
pub async fn safe_list(config: &Config, command: SafelistCommand) -> i32 {
    let (parts, api) = match face(config).await {
        Ok(f) => f,
        Err(code) => return code,
    };
    match command {
        SafelistCommand::Add { number } => {
            match safelist::add(&api, &parts.keys, &number, parts.clock.now()).await {
                Ok(entry) => {
                    print_json(&entry);
                    0
                }
                Err(e) => failed(&e),
            }
        }
        SafelistCommand::Remove { number } => {
            match safelist::remove(&api, &parts.keys, &number).await {
                Ok(true) => {
                    println!("removed {number} from the safe list");
                    0
                }
                Ok(false) => {
                    eprintln!("verifyd: {number} is not on the safe list");
                    1
                }
                Err(e) => failed(&e),
            }
        }
        SafelistCommand::List => match safelist::list(&api, &parts.keys).await {
            Ok(entries) => {
                for e in entries {
                    println!("{}  {}", e.sid, e.phone_number);
                }
                0
            }
            Err(e) => failed(&e),
        },
    }
}
