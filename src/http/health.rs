//! Probes. `GET /healthz`: the process is alive. `GET /readyz`: the store and the limiter answer
//! now. Both are public and name no setting, host or version.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;

#[derive(Serialize, ToSchema)]
pub struct Health {
    status: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct Checks {
    store: &'static str,
    limiter: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct Readiness {
    status: &'static str,
    checks: Checks,
}

/// Always 200 while the process serves.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health)), security(()))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// 200 when every dependency answers, else 503 naming the one that does not.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "A dependency is down", body = Readiness),
    ),
    security(())
)]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let (store, limiter) = tokio::join!(state.store.ping(), state.verifier.limiter().ping());
    let word = |ok: bool| if ok { "ok" } else { "down" };
    let ready = store.is_ok() && limiter.is_ok();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Readiness {
            status: if ready { "ok" } else { "unavailable" },
            checks: Checks {
                store: word(store.is_ok()),
                limiter: word(limiter.is_ok()),
            },
        }),
    )
}
