//! Probes. `GET /healthz`: the process is alive (200 even when a dependency is down, so an
//! orchestrator does not restart a process that would recover by itself). `GET /readyz`: the
//! store and the limiter answer now (503 naming the one that does not); the answer is cached
//! for at most [`READINESS_TTL`], so a flood of probes cannot hammer the dependencies. Both are
//! public and name no setting, host or version.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use crate::error::Chain;

#[derive(Serialize, ToSchema)]
pub struct Health {
    status: &'static str,
}

#[derive(Clone, Copy, Serialize, ToSchema)]
pub struct Checks {
    store: &'static str,
    limiter: &'static str,
    /// With JWT auth: `ok`, `stale` (cached keys in use, the issuer did not answer) or `down`
    /// (no key ever loaded: not ready).
    #[serde(skip_serializing_if = "Option::is_none")]
    jwks: Option<&'static str>,
}

#[derive(Clone, Copy, Serialize, ToSchema)]
pub struct Readiness {
    status: &'static str,
    checks: Checks,
}

/// Always 200 while the process serves.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health)), security(()))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// How long one readiness answer is reused.
pub const READINESS_TTL: Duration = Duration::from_secs(1);

/// The last readiness answer and when it was computed.
#[derive(Default)]
pub struct ReadinessCache {
    last: Mutex<Option<(Instant, Readiness)>>,
}

impl ReadinessCache {
    fn fresh(&self) -> Option<Readiness> {
        let last = self.last.lock().ok()?;
        last.filter(|(at, _)| at.elapsed() < READINESS_TTL)
            .map(|(_, r)| r)
    }

    fn keep(&self, readiness: Readiness) {
        if let Ok(mut last) = self.last.lock() {
            *last = Some((Instant::now(), readiness));
        }
    }
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
    let readiness = match state.readiness.fresh() {
        Some(r) => r,
        None => {
            let (store, limiter) =
                tokio::join!(state.store.ping(), state.verifier.limiter().ping());
            if let Err(e) = &store {
                tracing::warn!(error = %Chain(e), "readiness: store down");
            }
            if let Err(e) = &limiter {
                tracing::warn!(error = %Chain(e), "readiness: limiter down");
            }
            let word = |ok: bool| if ok { "ok" } else { "down" };
            let jwks = state.auth.jwt.as_ref().map(|j| j.health());
            let ready = store.is_ok() && limiter.is_ok() && jwks != Some("down");
            let readiness = Readiness {
                status: if ready { "ok" } else { "unavailable" },
                checks: Checks {
                    store: word(store.is_ok()),
                    limiter: word(limiter.is_ok()),
                    jwks,
                },
            };
            state.readiness.keep(readiness);
            readiness
        }
    };
    let status = if readiness.status == "ok" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(readiness))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_readiness_answer_is_reused_only_while_fresh() {
        let cache = ReadinessCache::default();
        assert!(cache.fresh().is_none());
        cache.keep(Readiness {
            status: "unavailable",
            checks: Checks {
                store: "down",
                limiter: "ok",
                jwks: None,
            },
        });
        assert_eq!(cache.fresh().map(|r| r.checks.store), Some("down"));
        if let Ok(mut last) = cache.last.lock()
            && let Some((at, _)) = last.as_mut()
            && let Some(earlier) = at.checked_sub(READINESS_TTL)
        {
            *at = earlier;
        }
        assert!(cache.fresh().is_none(), "older than the TTL: asked again");
    }
}
