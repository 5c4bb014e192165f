//! `GET /guard` and `POST /guard/unblock`: the fraud guard's blocks and country figures, and
//! lifting a block. Operator routes (the API key only); `verifyd guard status|unblock` calls
//! them, so the in-memory guard of a single node is reachable too, and with Redis any replica
//! answers for all.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::extract::JsonObject;
use crate::fraud::UnblockError;
use crate::limiter::LimiterError;

/// The fraud guard's mode, blocks and closures in force, and each country's figures.
#[utoipa::path(
    get,
    path = "/guard",
    tag = "operations",
    responses(
        (status = 200, description = "`{mode, backend, blocks: [{level, destination, until, effect, unsettled}], countries: [{country, monitored, settled, converted, conversion, unsettled, proven}]}`", body = Object),
        (status = 401, description = "`unauthorized` (the API key only)", body = super::error::ErrorBody),
        (status = 503, description = "`unavailable`: the guard's state cannot be read", body = super::error::ErrorBody,
            headers(("Retry-After" = u64, description = "Whole seconds"))),
    ),
    security(("api_key" = []))
)]
pub async fn guard_status(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let Some(guard) = state.verifier.fraud_guard() else {
        return Ok(Json(
            json!({ "mode": "off", "blocks": [], "countries": [] }),
        ));
    };
    let status = guard
        .status(state.clock.now())
        .await
        .map_err(|e| ApiError::from(LimiterError::new(e)))?;
    Ok(Json(serde_json::to_value(status).unwrap_or(Value::Null)))
}

/// Lifts the block (or closure) of one destination: body `{"destination": "+1415555"}` (a
/// long or short prefix, or a region such as `US`). Answers whether one was in force.
#[utoipa::path(
    post,
    path = "/guard/unblock",
    tag = "operations",
    request_body(content = Object, description = "`{\"destination\": \"+1415555\"}`"),
    responses(
        (status = 200, description = "`{destination, unblocked}`", body = Object),
        (status = 400, description = "`invalid_body`: not a region or prefix of the configured length", body = super::error::ErrorBody),
        (status = 401, description = "`unauthorized` (the API key only)", body = super::error::ErrorBody),
        (status = 413, description = "`payload_too_large`", body = super::error::ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = super::error::ErrorBody),
        (status = 503, description = "`unavailable`", body = super::error::ErrorBody,
            headers(("Retry-After" = u64, description = "Whole seconds"))),
    ),
    security(("api_key" = []))
)]
pub async fn guard_unblock(
    State(state): State<AppState>,
    JsonObject(body): JsonObject,
) -> Result<Json<Value>, ApiError> {
    let Some(destination) = body.get("destination").and_then(Value::as_str) else {
        return Err(ApiError::InvalidBody(
            "`destination` (a string) is required".to_owned(),
        ));
    };
    let Some(guard) = state.verifier.fraud_guard() else {
        return Ok(Json(
            json!({ "destination": destination, "unblocked": false }),
        ));
    };
    match guard.unblock(destination, state.clock.now()).await {
        Ok(lifted) => Ok(Json(
            json!({ "destination": destination, "unblocked": lifted }),
        )),
        Err(e @ UnblockError::NotADestination { .. }) => Err(ApiError::InvalidBody(e.to_string())),
        Err(UnblockError::Guard(e)) => Err(ApiError::from(LimiterError::new(e))),
    }
}
