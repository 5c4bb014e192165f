//! The console's events page (DESIGN.md "Events"; docs/console.md): the newest outbox rows,
//! one per event and endpoint, with their delivery state (pending, failed and retrying,
//! delivered, dead), tries, next try and last error, filtered by state; and the replay of dead
//! events, a CSRF-checked POST through [`crate::events::replay`], the function
//! `verifyd events replay` uses. It never shows a payload (which may carry a number) and an
//! event never holds a code.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use super::handlers::{
    csrf_refused, form, html, message, see_other, signed_in, store_failed, when,
};
use super::pages::{self, Frame};
use crate::http::AppState;
use crate::store::{EventState, Replay, StoredEvent};

/// Rows listed at most.
const LIMIT: u32 = 100;

/// The state filter, as the page offers it: (value, label).
pub const STATES: &[(&str, &str)] = &[
    ("pending", "pending (not tried yet)"),
    ("failed", "failed, will retry"),
    ("delivered", "delivered"),
    ("dead", "dead (every try failed)"),
];

/// One row as shown.
pub struct EventRow {
    pub created: String,
    pub id: String,
    pub endpoint: String,
    pub kind: String,
    /// A verification sid (linked), or what else the event is about (a refused prefix).
    pub subject: String,
    /// `pending`, `failed`, `delivered` or `dead`.
    pub state: &'static str,
    pub tries: u32,
    /// When the next try is due (pending and failed rows).
    pub next: String,
    /// When it was delivered, or the last try's error.
    pub outcome: String,
}

/// What a row's state is called on the page: a pending row already tried is `failed` (it
/// will be tried again on the schedule).
fn state_of(r: &StoredEvent) -> &'static str {
    match r.state {
        EventState::Pending if r.tries > 0 => "failed",
        s => s.as_str(),
    }
}

fn event_row(r: &StoredEvent) -> EventRow {
    let state = state_of(r);
    EventRow {
        created: when(r.event.created),
        id: r.id.clone(),
        endpoint: r.event.endpoint.clone(),
        kind: r.event.kind.clone(),
        subject: r.event.subject.clone(),
        state,
        tries: r.tries,
        next: if r.state == EventState::Pending {
            when(r.next_at)
        } else {
            String::new()
        },
        outcome: match (r.state, r.delivered_at, &r.last_error) {
            (EventState::Delivered, Some(at), _) => format!("delivered {}", when(at)),
            (_, _, Some(e)) => e.clone(),
            _ => String::new(),
        },
    }
}

#[derive(Deserialize, Default)]
struct EventQuery {
    status: Option<String>,
    done: Option<String>,
    n: Option<u64>,
}

/// `GET /console/events[?status=pending|failed|delivered|dead]`.
pub async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let (_, frame) = match signed_in(&state, &headers) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let q: EventQuery =
        serde_urlencoded::from_str(query.as_deref().unwrap_or("")).unwrap_or_default();
    let status = q.status.as_deref().map(str::trim).unwrap_or("").to_owned();
    let stored = match status.as_str() {
        "" => None,
        "pending" | "failed" => Some(EventState::Pending),
        "delivered" => Some(EventState::Delivered),
        "dead" => Some(EventState::Dead),
        _ => {
            return html(
                StatusCode::BAD_REQUEST,
                events_page(
                    &frame,
                    &status,
                    &[],
                    None,
                    Some("Status is not one of the listed ones."),
                    state.console.events.is_some(),
                ),
            );
        }
    };
    let listed = match state.store.list_events(stored, LIMIT).await {
        Ok(rows) => rows,
        Err(e) => return store_failed(&frame, &e),
    };
    let rows: Vec<EventRow> = listed
        .iter()
        .filter(|r| status.is_empty() || state_of(r) == status)
        .map(event_row)
        .collect();
    let notice = match (q.done.as_deref(), q.n) {
        (Some("replayed"), Some(n)) => Some(format!(
            "{n} event row(s) pending again: the dispatcher sends them within a second."
        )),
        _ => None,
    };
    html(
        StatusCode::OK,
        events_page(
            &frame,
            &status,
            &rows,
            notice.as_deref(),
            None,
            state.console.events.is_some(),
        ),
    )
}

/// Whether `id` is shaped like an event id (`msg_` and letters or digits).
fn event_id_shaped(id: &str) -> bool {
    id.strip_prefix("msg_").is_some_and(|rest| {
        !rest.is_empty() && rest.len() <= 64 && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

/// `POST /console/events/replay` with `id` (one row; an older event's stored id: every endpoint's
/// row) or `all=dead`, and the CSRF token: the rows are pending again, due now, tries reset.
pub async fn replay(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let (session, frame) = match signed_in(&state, &headers) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let fields = form(&body);
    if !session.csrf_matches(&state.keys, fields.csrf.as_deref().unwrap_or("")) {
        return csrf_refused(&frame);
    }
    let which = match (fields.id.as_deref().map(str::trim), fields.all.as_deref()) {
        (Some(id), None) if event_id_shaped(id) => Replay::Id(id.to_owned()),
        (None, Some("dead")) => Replay::AllDead,
        _ => {
            return message(
                StatusCode::BAD_REQUEST,
                &frame,
                "Nothing to replay",
                "Give one event id (msg_…) or every dead event. Nothing was changed.",
            );
        }
    };
    match crate::events::replay(
        state.store.as_ref(),
        &which,
        state.clock.now(),
        state.console.events.as_deref(),
    )
    .await
    {
        Ok(0) => message(
            StatusCode::NOT_FOUND,
            &frame,
            "Nothing to replay",
            "No such event in the outbox (delivered and dead rows are purged after a while). Nothing was changed.",
        ),
        Ok(n) => see_other(&format!("/console/events?done=replayed&n={n}"), None),
        Err(e) => store_failed(&frame, &e),
    }
}

/// The events page.
pub fn events_page(
    frame: &Frame,
    status: &str,
    rows: &[EventRow],
    notice: Option<&str>,
    error: Option<&str>,
    configured: bool,
) -> Markup {
    pages::page(
        "Events",
        "/console/events",
        frame,
        html! {
            p.muted { "The newest " (LIMIT) " outbox rows, one per event and endpoint, newest first. Payloads are not shown; events never carry a code. A dead event is sent again by Replay (as " code { "verifyd events replay" } ")." }
            @if !configured { p.notice { "No endpoint is configured on this replica (VERIFYD_EVENTS_URL): it writes no events; rows below come from elsewhere or from before." } }
            @if let Some(n) = notice { p.notice role="status" { (n) } }
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form.filters method="get" action="/console/events" {
                label { "Status"
                    select name="status" {
                        option value="" { "any" }
                        @for (v, l) in STATES { option value=(v) selected[status == *v] { (l) } }
                    }
                }
                button.primary type="submit" { "Filter" }
                a href="/console/events" { "Clear" }
            }
            @if rows.iter().any(|r| r.state == "dead") {
                form.filters method="post" action="/console/events/replay" {
                    input type="hidden" name="csrf" value=(frame.csrf);
                    input type="hidden" name="all" value="dead";
                    button type="submit" { "Replay every dead event" }
                }
            }
            div.scroll {
                table #events {
                    thead { tr { th { "Created (UTC)" } th { "Type" } th { "About" } th { "Endpoint" } th { "Status" } th.num { "Tries" } th { "Next try (UTC)" } th { "Last result" } th {} } }
                    tbody {
                        @for r in rows {
                            tr data-id=(r.id) {
                                td { (r.created) }
                                td { (r.kind) }
                                td {
                                    @if r.subject.starts_with("VE") {
                                        a href=(format!("/console/verifications/{}", r.subject)) { (r.subject) }
                                    } @else { (r.subject) }
                                }
                                td { (r.endpoint) }
                                td.state { (r.state) }
                                td.num { (r.tries) }
                                td { (r.next) }
                                td { (r.outcome) }
                                td {
                                    @if r.state == "dead" {
                                        form method="post" action="/console/events/replay" {
                                            input type="hidden" name="csrf" value=(frame.csrf);
                                            input type="hidden" name="id" value=(r.id);
                                            button.link type="submit" { "Replay" }
                                        }
                                    }
                                }
                            }
                        }
                        @if rows.is_empty() { tr { td.muted colspan="9" { "No events." } } }
                    }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_event_ids_are_replayed() {
        assert!(event_id_shaped("msg_0193a5b2c3d4e5f60718293a4b5c6d7e"));
        for bad in [
            "",
            "msg_",
            "0193a5",
            "msg_a b",
            "msg_x'--",
            &format!("msg_{}", "a".repeat(65)),
        ] {
            assert!(!event_id_shaped(bad), "{bad}");
        }
    }
}
