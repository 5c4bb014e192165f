//! `verifyd events list|replay`: the events' outbox from the command line, against the
//! configured store. `list` shows the newest rows (id, endpoint, type, state, tries, last
//! error; never a payload, which may carry a number); `replay` puts rows back to pending, due
//! now, with their tries reset: one event by id (its endpoint's row), or every dead one. A serving
//! replica's dispatcher sends them within a second.

use std::sync::Arc;

use clap::Subcommand;

use crate::app::build_store;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::error::Chain;
use crate::store::{EventState, EventStore, Replay};

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// The newest events, one line per endpoint, newest first.
    List {
        /// Only `pending`, `delivered` or `dead` events.
        #[arg(long)]
        state: Option<String>,
        /// How many lines at most.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Send events again: one by id (msg_…), or every dead one with --dead.
    Replay {
        /// The event's id (its webhook-id).
        id: Option<String>,
        /// Every dead event.
        #[arg(long)]
        dead: bool,
    },
}

/// Runs an `events` command; the process exit code.
pub async fn events(config: &Config, command: EventsCommand) -> i32 {
    let which = match &command {
        EventsCommand::Replay {
            id: Some(id),
            dead: false,
        } => Some(Replay::Id(id.clone())),
        EventsCommand::Replay {
            id: None,
            dead: true,
        } => Some(Replay::AllDead),
        EventsCommand::Replay { .. } => {
            eprintln!("verifyd events replay: give one event id, or --dead (not both)");
            return super::EXIT_USAGE;
        }
        EventsCommand::List { .. } => None,
    };
    let state = match &command {
        EventsCommand::List { state: Some(s), .. } => match EventState::parse(s) {
            Some(state) => Some(state),
            None => {
                eprintln!("verifyd events list: --state must be pending, delivered or dead");
                return super::EXIT_USAGE;
            }
        },
        _ => None,
    };
    let store: Arc<dyn EventStore> = match build_store(config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("verifyd: {}", Chain(&e));
            return e.exit_code();
        }
    };
    match (command, which) {
        (EventsCommand::List { limit, .. }, _) => match store.list_events(state, limit).await {
            Ok(rows) => {
                for r in rows {
                    println!(
                        "{}  {}  {}  {}  {}  tries={}  {}",
                        r.event.created.to_rfc3339(),
                        r.id,
                        r.event.endpoint,
                        r.event.kind,
                        r.state.as_str(),
                        r.tries,
                        match (r.state, r.delivered_at, &r.last_error) {
                            (EventState::Delivered, Some(at), _) =>
                                format!("delivered {}", at.to_rfc3339()),
                            (EventState::Pending, _, e) => format!(
                                "next {}{}",
                                r.next_at.to_rfc3339(),
                                e.as_ref()
                                    .map(|e| format!(" (last: {e})"))
                                    .unwrap_or_default()
                            ),
                            (_, _, Some(e)) => format!("last: {e}"),
                            _ => String::new(),
                        }
                    );
                }
                0
            }
            Err(e) => {
                eprintln!("verifyd events list: {}", Chain(&e));
                1
            }
        },
        (_, Some(which)) => {
            match crate::events::replay(store.as_ref(), &which, SystemClock.now(), None).await {
                Ok(0) => {
                    eprintln!("verifyd events replay: no such event");
                    1
                }
                Ok(n) => {
                    println!("verifyd events replay: {n} event row(s) pending again");
                    0
                }
                Err(e) => {
                    eprintln!("verifyd events replay: {}", Chain(&e));
                    1
                }
            }
        }
        (EventsCommand::Replay { .. }, None) => super::EXIT_USAGE,
    }
}
