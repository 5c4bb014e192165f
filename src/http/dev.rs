//! `GET /dev/outbox`: the console sender's messages, oldest first. The route exists only when
//! the console sender is in use, and sits behind the API key like everything else.

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use super::AppState;
use crate::sms::OutboxMessage;

#[derive(Serialize)]
pub struct OutboxBody {
    pub messages: Vec<OutboxMessage>,
}

/// The kept messages.
pub async fn outbox(State(state): State<AppState>) -> Json<OutboxBody> {
    let messages = state
        .outbox
        .as_ref()
        .map(|o| o.messages())
        .unwrap_or_default();
    Json(OutboxBody { messages })
}
