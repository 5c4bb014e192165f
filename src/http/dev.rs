//! `GET /dev/outbox`: the console sender's messages, oldest first. The route exists only when
//! the console sender is in use, and takes the API key only (a user token is refused with 401:
//! the outbox holds every user's codes).

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use crate::sms::OutboxMessage;

#[derive(Serialize, ToSchema)]
pub struct OutboxBody {
    pub messages: Vec<OutboxMessage>,
}

/// The console sender's messages, oldest first (exists only with the console sender).
#[utoipa::path(
    get,
    path = "/dev/outbox",
    tag = "development",
    responses(
        (status = 200, description = "Messages the console sender delivered", body = OutboxBody),
        (status = 401, description = "`unauthorized` (the API key only; a user token is refused)", body = super::error::ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn outbox(State(state): State<AppState>) -> Json<OutboxBody> {
    let messages = state
        .outbox
        .as_ref()
        .map(|o| o.messages())
        .unwrap_or_default();
    Json(OutboxBody { messages })
}
