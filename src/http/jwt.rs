//! User tokens: JWT bearer authentication against the issuer's JWKS (Auth0 and any OpenID
//! provider). Only asymmetric algorithms from the configured list are verified (never `none`,
//! never HS*, so a public key can never be abused as an HMAC secret); `iss`, `aud`, `exp`, `nbf`
//! (with a small leeway) and a non-empty `sub` are required.
//!
//! The JWKS is fetched at start, re-fetched periodically, and re-fetched when a token names an
//! unknown `kid` — at most once a minute, so a flood of junk `kid`s cannot hammer the issuer.
//! When the issuer is down the keys already loaded keep working (`/readyz` says `stale`); only
//! "no key ever loaded" makes the service not ready.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;

use crate::clock::Clock;
use crate::config::JwtConfig;
use crate::domain::Timestamp;

/// Least time between two JWKS fetches caused by unknown `kid`s.
const MIN_REFETCH: Duration = Duration::from_secs(60);
/// How long one JWKS fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a token was refused. Logged, never sent to the client (which sees `invalid_token`).
#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("algorithm {0} is not accepted")]
    Algorithm(String),
    #[error("the token header has no kid")]
    NoKid,
    #[error("no key with this kid in the JWKS")]
    UnknownKid,
    #[error("token rejected: {0}")]
    Invalid(String),
    #[error("JWKS fetch failed: {0}")]
    Fetch(String),
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
}

#[derive(Default)]
struct FetchState {
    loaded_once: bool,
    stale: bool,
    last_attempt: Option<Timestamp>,
}

/// Verifies user tokens with cached JWKS keys.
pub struct JwtVerifier {
    config: JwtConfig,
    client: reqwest::Client,
    keys: RwLock<HashMap<String, DecodingKey>>,
    state: Mutex<FetchState>,
    fetching: tokio::sync::Mutex<()>,
    clock: Arc<dyn Clock>,
}

impl JwtVerifier {
    /// A verifier that has tried its first JWKS fetch (a failure is logged, not fatal: the
    /// service starts and reports not ready until keys load).
    pub async fn start(config: JwtConfig, clock: Arc<dyn Clock>) -> Arc<Self> {
        let verifier = Arc::new(Self {
            config,
            client: reqwest::Client::builder()
                .timeout(FETCH_TIMEOUT)
                .build()
                .unwrap_or_default(),
            keys: RwLock::new(HashMap::new()),
            state: Mutex::new(FetchState::default()),
            fetching: tokio::sync::Mutex::new(()),
            clock,
        });
        if let Err(e) = verifier.refresh().await {
            tracing::warn!(error = %e, "JWKS not loaded at start; user tokens are refused until it loads");
        }
        verifier
    }

    /// Re-fetches the JWKS every `VERIFYD_JWT_JWKS_REFRESH` until the task is aborted.
    pub fn spawn_refresher(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(me.config.refresh);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = me.refresh().await {
                    tracing::warn!(error = %e, "periodic JWKS refresh failed; keeping the cached keys");
                }
            }
        })
    }

    /// Fetches the JWKS and replaces the cached keys.
    ///
    /// # Errors
    /// [`JwtError::Fetch`] when the JWKS cannot be fetched or holds no usable key; the cached
    /// keys stay.
    pub async fn refresh(&self) -> Result<(), JwtError> {
        let _one_at_a_time = self.fetching.lock().await;
        if let Ok(mut s) = self.state.lock() {
            s.last_attempt = Some(self.clock.now());
        }
        let result = self.fetch().await;
        if let Ok(mut s) = self.state.lock() {
            match &result {
                Ok(_) => {
                    s.loaded_once = true;
                    s.stale = false;
                }
                Err(_) => s.stale = true,
            }
        }
        let keys = result?;
        tracing::debug!(keys = keys.len(), "JWKS loaded");
        if let Ok(mut cached) = self.keys.write() {
            *cached = keys;
        }
        Ok(())
    }

    async fn fetch(&self) -> Result<HashMap<String, DecodingKey>, JwtError> {
        let set: JwkSet = self
            .client
            .get(&self.config.jwks_url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| JwtError::Fetch(e.without_url().to_string()))?
            .json()
            .await
            .map_err(|e| JwtError::Fetch(format!("not a JWKS: {}", e.without_url())))?;
        let keys: HashMap<String, DecodingKey> = set
            .keys
            .iter()
            .filter_map(|jwk| {
                let kid = jwk.common.key_id.clone()?;
                DecodingKey::from_jwk(jwk).ok().map(|k| (kid, k))
            })
            .collect();
        if keys.is_empty() {
            return Err(JwtError::Fetch(
                "the JWKS has no usable key with a kid".to_owned(),
            ));
        }
        Ok(keys)
    }

    fn key(&self, kid: &str) -> Option<DecodingKey> {
        self.keys.read().ok()?.get(kid).cloned()
    }

    /// Whether an unknown `kid` may trigger a fetch now (at most once a minute).
    fn may_refetch(&self) -> bool {
        let now = self.clock.now();
        self.state
            .lock()
            .map(|s| s.last_attempt.is_none_or(|at| now.since(at) >= MIN_REFETCH))
            .unwrap_or(false)
    }

    /// Verifies `token` and returns its `sub`.
    ///
    /// # Errors
    /// [`JwtError`] saying why the token is refused.
    pub async fn verify(&self, token: &str) -> Result<String, JwtError> {
        let header = decode_header(token).map_err(|e| JwtError::Malformed(e.to_string()))?;
        if !self.config.algorithms.contains(&header.alg) {
            return Err(JwtError::Algorithm(format!("{:?}", header.alg)));
        }
        let kid = header.kid.ok_or(JwtError::NoKid)?;
        let key = match self.key(&kid) {
            Some(key) => key,
            None => {
                if self.may_refetch()
                    && let Err(e) = self.refresh().await
                {
                    tracing::warn!(error = %e, "JWKS refetch for an unknown kid failed");
                }
                self.key(&kid).ok_or(JwtError::UnknownKid)?
            }
        };
        let mut validation = Validation::new(header.alg);
        validation.algorithms = vec![header.alg];
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.leeway = self.config.leeway.as_secs();
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = decode::<Claims>(token, &key, &validation)
            .map_err(|e| JwtError::Invalid(e.to_string()))?;
        if data.claims.sub.trim().is_empty() {
            return Err(JwtError::Invalid("empty sub".to_owned()));
        }
        Ok(data.claims.sub)
    }

    /// `ok`, `stale` (keys cached, last fetch failed) or `down` (no key ever loaded).
    pub fn health(&self) -> &'static str {
        match self.state.lock() {
            Ok(s) if !s.loaded_once => "down",
            Ok(s) if s.stale => "stale",
            Ok(_) => "ok",
            Err(_) => "down",
        }
    }
}
