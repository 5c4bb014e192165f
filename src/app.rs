//! Startup: turn a [`Config`] into running parts (store, keys, limiter, sender, provider,
//! verifier), bind the listener, serve until a shutdown signal, and stop background work.
//! The CLI's `send`, `check`, `cancel` and `rekey` use the same [`Components`] without the
//! listener. The keys are opened against the store's key-check records (see
//! [`crate::rotation`]): a database whose data the configured secrets cannot open stops the
//! start (exit 64) instead of looking empty.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::attempt_log::AttemptLog;
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, Database, Profile, ProviderKind, SqliteLocation};
use crate::crypto::{Keys, ServerSecret, ServerSecrets, api_key_digest};
use crate::domain::Lifecycle;
use crate::error::{BoxError, Chain, Context};
use crate::http::auth::Authenticator;
use crate::http::jwt::JwtVerifier;
use crate::http::serve::ConnectionLimits;
use crate::http::{self, ApiKeys, AppState};
use crate::limiter::{Limiter, MemoryLimiter, RedisLimiter, RedisSettings};
use crate::policy::{Policy, TestNumbers, TrustedProxies};
use crate::provider::{LocalProvider, Provider, TwilioVerifyProvider};
use crate::rotation::{self, RotationError};
use crate::service::Verifier;
use crate::sms::{NullSender, Outbox, SmsSender};
use crate::store::safelist::CachedSafeList;
use crate::store::services::CachedServices;
use crate::store::{
    AttemptStore, ConsoleStore, KeyCheck, PostgresSettings, PostgresStore, RateLimitStore,
    SafeListStore, ServiceStore, SqliteStore, Store, StoreError,
};
use crate::twilio_api::TwilioApi;

/// How long verifications are kept after their expiry before the purge deletes them.
const RETENTION: Duration = Duration::from_secs(24 * 3600);
/// How often the purge runs.
const PURGE_EVERY: Duration = Duration::from_secs(300);

/// Why the service could not start. The binary exits 64 for configuration problems and 69
/// (`EX_UNAVAILABLE`) for unreachable dependencies. Causes are kept as errors; `main` writes
/// the chain ([`crate::error::Chain`]).
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// A setting cannot be used: what is wrong, as the error that says so.
    #[error(transparent)]
    Config(BoxError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The configured secrets do not open the database's data (see [`crate::rotation`]). The
    /// text names key ids, never a secret.
    #[error("VERIFYD_SECRET=<redacted> is not valid: {0}")]
    Secrets(RotationError),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{what}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

impl StartupError {
    /// The process exit code for this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            StartupError::Config(_) | StartupError::Secrets(_) => 64,
            StartupError::Store(_) | StartupError::Bind { .. } | StartupError::Io { .. } => 69,
        }
    }
}

/// The assembled service, ready to serve or to run one CLI command.
pub struct Components {
    pub verifier: Arc<Verifier>,
    pub keys: Arc<Keys>,
    pub store: Arc<dyn Store>,
    /// The same database's `/v2` records (services, identity values).
    pub services: Arc<dyn ServiceStore>,
    /// The same database's attempt log.
    pub attempts: Arc<dyn AttemptStore>,
    /// The same database's safe list.
    pub safe_list: Arc<dyn SafeListStore>,
    /// The same database's RateLimits and Buckets.
    pub rate_limits: Arc<dyn RateLimitStore>,
    /// The same database's console reads (hourly counters, filtered log).
    pub console: Arc<dyn ConsoleStore>,
    pub outbox: Option<Arc<Outbox>>,
    pub clock: Arc<dyn Clock>,
    /// The newest secret's key-check record, re-added by the purge loop.
    pub key_check: KeyCheck,
}

impl From<RotationError> for StartupError {
    fn from(e: RotationError) -> Self {
        match e {
            RotationError::Store(e) => StartupError::Store(e),
            other => StartupError::Secrets(other),
        }
    }
}

impl Components {
    /// Builds every part from the settings.
    ///
    /// # Errors
    /// [`StartupError`] naming the part that could not be built.
    pub async fn build(config: &Config, clock: Arc<dyn Clock>) -> Result<Self, StartupError> {
        crate::domain::phone::warm_metadata();
        let Stores {
            store,
            services,
            attempts,
            safe_list,
            rate_limits,
            console,
        } = build_stores(config).await?;
        let secrets = resolve_secret(config)?;
        let opened = rotation::open_keys(store.as_ref(), &secrets, clock.now()).await?;
        let keys = Arc::new(opened.keys);

        let test_numbers = Arc::new(TestNumbers::new(&config.codes.test_numbers));
        // The local engine: the provider in `local` mode, and in every mode the engine of test
        // numbers (which never send, so in `twilio-verify` mode it needs no real sender).
        let (sender, outbox): (Arc<dyn SmsSender>, Option<Arc<Outbox>>) = match config
            .delivery
            .provider
        {
            ProviderKind::TwilioVerify => (Arc::new(NullSender), None),
            ProviderKind::Local => {
                let (sender, outbox) =
                    crate::sms::from_settings(&config.delivery, &config.twilio, Arc::clone(&clock))
                        .map_err(|e| StartupError::Config(e.into()))?;
                let sender = crate::sms::with_channels(sender, &config.channels, &config.twilio)
                    .map_err(|e| StartupError::Config(e.into()))?;
                (sender, outbox)
            }
        };
        // Production refuses the console sender; and whatever the sender, no dev outbox there.
        let outbox = outbox.filter(|_| config.profile != Profile::Production);
        let local = Arc::new(
            LocalProvider::new(
                store.clone(),
                sender,
                Arc::clone(&keys),
                Lifecycle::with_ttl(config.codes.ttl),
                config.codes.length,
            )
            .with_services(Arc::clone(&services))
            .with_messages(Arc::new(crate::messages::Messages {
                default_locale: config.messages.default_locale,
                overrides: config.messages.overrides.clone(),
                webotp: config.messages.webotp_domain.clone(),
                default_service_name: config.server.service_name.clone(),
            }))
            .with_fallback(config.channels.fallback.clone()),
        );
        let provider: Arc<dyn Provider> = match config.delivery.provider {
            // Twilio chooses, delivers and checks the code: no sender, no outbox.
            ProviderKind::TwilioVerify => Arc::new(
                TwilioVerifyProvider::from_config(config)
                    .map_err(|e| StartupError::Config(e.into()))?,
            ),
            ProviderKind::Local => local.clone(),
        };
        let limiter = build_limiter(config)?;
        let verifier = Arc::new(Verifier::new(
            Policy::new(&config.limits, Arc::clone(&keys))
                .also_sending_to(&config.fraud_guard.monitor_countries),
            limiter,
            provider,
            test_numbers,
            local,
            Arc::clone(&clock),
        ));
        verifier.set_safe_list(Arc::clone(&safe_list), Arc::clone(&keys));
        verifier.set_fraud_guard(
            build_fraud_guard(config, &keys)?,
            config.fraud_guard.test_numbers_bypass_limits,
        );
        Ok(Self {
            verifier,
            keys,
            store,
            services,
            attempts,
            safe_list,
            rate_limits,
            console,
            outbox,
            clock,
            key_check: opened.newest_check,
        })
    }
}

/// The store the URL names. SQLite opens (and migrates) now, so a bad file fails startup.
/// PostgreSQL connects lazily: a database that is down at startup does not stop the process,
/// which starts not ready (`/readyz` 503, requests 503 `unavailable`) and recovers by itself
/// once the database answers; only a database that answers but cannot be migrated fails
/// startup (exit 69).
pub async fn build_store(config: &Config) -> Result<Arc<dyn Store>, StartupError> {
    Ok(build_stores(config).await?.store)
}

/// One database behind each of its store traits.
pub struct Stores {
    pub store: Arc<dyn Store>,
    pub services: Arc<dyn ServiceStore>,
    pub attempts: Arc<dyn AttemptStore>,
    pub safe_list: Arc<dyn SafeListStore>,
    pub rate_limits: Arc<dyn RateLimitStore>,
    /// The console's reads.
    pub console: Arc<dyn ConsoleStore>,
}

impl Stores {
    fn of<S>(store: Arc<S>) -> Self
    where
        S: Store
            + ServiceStore
            + AttemptStore
            + SafeListStore
            + RateLimitStore
            + ConsoleStore
            + 'static,
    {
        Self {
            store: store.clone(),
            services: store.clone(),
            attempts: store.clone(),
            safe_list: store.clone(),
            rate_limits: store.clone(),
            console: store,
        }
    }
}

/// [`build_store`], plus the same database behind the `/v2` face's stores (services, attempt
/// log, safe list, rate limits).
pub async fn build_stores(config: &Config) -> Result<Stores, StartupError> {
    match &config.store.database {
        Database::Postgres { url } => {
            let store = PostgresStore::new(
                url,
                PostgresSettings {
                    pool_size: config.store.pool_size,
                    acquire_timeout: config.store.timeout,
                    statement_timeout: config.store.statement_timeout,
                },
            )?;
            match store.ping().await {
                Ok(()) => {}
                Err(e @ StoreError::Unavailable(_)) => tracing::warn!(
                    error = %Chain(&e),
                    "PostgreSQL is not reachable yet: starting not ready (/readyz 503, requests 503) \
                     and retrying on every request"
                ),
                Err(e) => return Err(e.into()),
            }
            Ok(Stores::of(Arc::new(store)))
        }
        Database::Sqlite(location) => {
            let store = SqliteStore::connect(
                location,
                config.store.sqlite_synchronous,
                config.store.timeout,
            )
            .await?;
            let mut stores = Stores::of(Arc::new(store));
            // One node: sends ask an in-memory copy of the safe list (see CachedSafeList).
            stores.safe_list = CachedSafeList::start(stores.safe_list).await?;
            stores.services = CachedServices::start(stores.services).await?;
            Ok(stores)
        }
    }
}

/// Redis when `VERIFYD_REDIS_URL` is set (connected lazily, like PostgreSQL), else memory.
pub fn build_limiter(config: &Config) -> Result<Arc<dyn Limiter>, StartupError> {
    match &config.limits.redis_url {
        Some(url) => Ok(Arc::new(
            RedisLimiter::new(
                url.expose_secret(),
                RedisSettings {
                    prefix: config.limits.redis_prefix.clone(),
                    timeout: config.store.timeout,
                },
            )
            .map_err(|e| StartupError::Config(e.into()))?,
        )),
        None => Ok(Arc::new(MemoryLimiter::new(config.limits.limiter_max_keys))),
    }
}

/// The fraud guard, its state beside the limiter's: Redis when `VERIFYD_REDIS_URL` is set
/// (shared by every replica), else this process's memory.
pub fn build_fraud_guard(
    config: &Config,
    keys: &Arc<Keys>,
) -> Result<Arc<crate::fraud::FraudGuard>, StartupError> {
    let backend: Arc<dyn crate::fraud::GuardBackend> = match &config.limits.redis_url {
        Some(url) => Arc::new(
            crate::fraud::RedisGuard::new(
                url.expose_secret(),
                &config.limits.redis_prefix,
                config.store.timeout,
            )
            .map_err(|e| StartupError::Config(e.into()))?,
        ),
        None => Arc::new(crate::fraud::MemoryGuard::new(
            config.limits.limiter_max_keys,
        )),
    };
    Ok(Arc::new(crate::fraud::FraudGuard::new(
        config.fraud_guard.clone(),
        backend,
        Arc::clone(keys),
        &config.limits.valid_country_codes,
    )))
}

/// `VERIFYD_SECRET` (one or more, newest first), or the secret kept beside the SQLite file
/// (generated on first start).
///
/// # Errors
/// [`StartupError`] when the secret file cannot be read or created.
pub fn resolve_secret(config: &Config) -> Result<ServerSecrets, StartupError> {
    if let Some(secrets) = &config.store.secret {
        return Ok(secrets.clone());
    }
    match &config.store.database {
        Database::Sqlite(SqliteLocation::Memory) => {
            Ok(ServerSecrets::single(ServerSecret::generate()))
        }
        Database::Sqlite(SqliteLocation::File(path)) => {
            load_or_create_secret(&secret_path(path)).map(ServerSecrets::single)
        }
        // The config refuses this combination; never generate a per-replica secret.
        Database::Postgres { .. } => Err(StartupError::Config(
            "VERIFYD_SECRET must be set when the store is PostgreSQL".into(),
        )),
    }
}

/// `verifyd.db` → `verifyd.secret`, in the same directory.
pub fn secret_path(database: &Path) -> PathBuf {
    database.with_extension("secret")
}

fn load_or_create_secret(path: &Path) -> Result<ServerSecret, StartupError> {
    let io = |what: &str, source: std::io::Error| StartupError::Io {
        what: format!("{what} {}", path.display()),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let secret = ServerSecret::new(secrecy::SecretString::from(text.trim().to_owned()))
                .map_err(|e| {
                    StartupError::Config(
                        Context::new(format!("the secret in {} is not valid", path.display()), e)
                            .into(),
                    )
                })?;
            tracing::info!(path = %path.display(), "using the server secret generated on first start");
            Ok(secret)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let secret = ServerSecret::generate();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(path).map_err(|e| io("cannot create", e))?;
            file.write_all(secret.expose().as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| io("cannot write", e))?;
            tracing::warn!(
                path = %path.display(),
                "VERIFYD_SECRET is unset: generated a server secret and saved it (mode 0600); \
                 back it up with the database, or set VERIFYD_SECRET"
            );
            Ok(secret)
        }
        Err(e) => Err(io("cannot read", e)),
    }
}

/// Configured keys, else the generated key(s) kept hashed in the store; on the very first start
/// one key is generated and printed once to stdout.
async fn resolve_api_keys(
    config: &Config,
    store: &dyn Store,
    clock: &dyn Clock,
) -> Result<ApiKeys, StartupError> {
    if !config.auth.api_keys.is_empty() {
        return Ok(ApiKeys::from_digests(
            config
                .auth
                .api_keys
                .iter()
                .map(|k| api_key_digest(k.expose_secret()))
                .collect(),
        ));
    }
    let stored = store.api_key_digests().await?;
    if !stored.is_empty() {
        tracing::info!("VERIFYD_API_KEYS is unset: accepting the API key generated on first start");
        return Ok(ApiKeys::from_digests(stored));
    }
    let key = {
        use rand::RngCore;
        let mut bytes = [0u8; 24];
        rand::rng().fill_bytes(&mut bytes);
        format!("vfy_{}", hex::encode(bytes))
    };
    store
        .add_api_key_digest(api_key_digest(&key), clock.now())
        .await?;
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "verifyd: generated an API key (shown only this once; only its hash is kept):\n\n    {key}\n\n\
             Send it as `Authorization: Bearer <key>`, or set VERIFYD_API_KEYS to choose your own."
        );
        let _ = out.flush();
    }
    tracing::warn!("VERIFYD_API_KEYS is unset: generated an API key and printed it once on stdout");
    Ok(ApiKeys::from_digests(vec![api_key_digest(&key)]))
}

/// A bound, ready-to-serve verifyd.
pub struct Application {
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    state: AppState,
    grace: Duration,
    /// Deadlines and cap of every connection (each listener counts its own).
    limits: ConnectionLimits,
    /// Background tasks stopped on shutdown (the purge, the JWKS refresher).
    tasks: Vec<JoinHandle<()>>,
}

impl Application {
    /// Builds everything on the system clock and binds `VERIFYD_ADDR`.
    ///
    /// # Errors
    /// [`StartupError`].
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    /// Builds with the given clock (tests pass a manual one) and binds `VERIFYD_ADDR`.
    ///
    /// # Errors
    /// [`StartupError`].
    pub async fn build_with_clock(
        config: Config,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartupError> {
        let parts = Components::build(&config, clock).await?;
        crate::provider::twilio_sync::sync_at_start(&config).await;
        let api_keys = if config.auth.mode.api_keys() {
            resolve_api_keys(&config, parts.store.as_ref(), parts.clock.as_ref()).await?
        } else {
            ApiKeys::default()
        };
        let jwt = match &config.auth.jwt {
            Some(jwt) => Some(JwtVerifier::start(jwt.clone(), Arc::clone(&parts.clock)).await),
            None => None,
        };
        let jwks_refresher = jwt.as_ref().map(JwtVerifier::spawn_refresher);
        // `/v2` takes Basic auth with an API key whatever VERIFYD_AUTH says: the configured
        // keys, or the generated one when API keys are in use.
        let v2_keys = if config.auth.mode.api_keys() {
            api_keys.clone()
        } else {
            ApiKeys::from_digests(
                config
                    .auth
                    .api_keys
                    .iter()
                    .map(|k| api_key_digest(k.expose_secret()))
                    .collect(),
            )
        };
        let auth = Authenticator {
            mode: config.auth.mode,
            api_keys,
            jwt,
        };
        let listener = TcpListener::bind(config.server.addr)
            .await
            .map_err(|source| StartupError::Bind {
                addr: config.server.addr,
                source,
            })?;
        let public_url = config.server.public_url.clone().unwrap_or_else(|| {
            listener.local_addr().map_or_else(
                |_| format!("http://{}", config.server.addr),
                |a| format!("http://{a}"),
            )
        });
        let twilio = TwilioApi::start(
            &config,
            &Stores {
                store: Arc::clone(&parts.store),
                services: Arc::clone(&parts.services),
                attempts: Arc::clone(&parts.attempts),
                safe_list: Arc::clone(&parts.safe_list),
                rate_limits: Arc::clone(&parts.rate_limits),
                console: Arc::clone(&parts.console),
            },
            v2_keys,
            public_url.clone(),
            parts.clock.now(),
        )
        .await?
        .served(config.delivery.provider == ProviderKind::Local);
        tracing::info!(
            account_sid = %twilio.account_sid,
            default_service = %twilio.default_service,
            public_url = %twilio.public_url,
            "Twilio Verify API (/v2): account {} (Basic auth: the account SID and an API key), default service {}",
            twilio.account_sid,
            twilio.default_service,
        );
        let (attempt_log, attempt_tasks) = AttemptLog::start(
            Arc::clone(&parts.attempts),
            Arc::clone(&parts.keys),
            twilio.default_service.clone(),
            config.store.attempt_retention,
            Arc::clone(&parts.clock),
        );
        parts.verifier.set_attempt_log(attempt_log);
        let refusals = Arc::new(http::refusals::RefusalLog::new(Arc::clone(&parts.clock)));
        let refusal_reports = tokio::spawn(Arc::clone(&refusals).report_every_window());
        // Signed events and the attempt log's own rows, written in each change's transaction.
        let emitter = crate::events::Emitter::new(&config.events, twilio.default_service.clone());
        let event_store: Arc<dyn crate::store::EventStore> = parts.store.clone();
        parts.verifier.local_engine().set_journaling(
            twilio.default_service.clone(),
            emitter.clone(),
            parts.store.clone(),
        );
        let verifiers = crate::sms::receipt_verifiers(&config.delivery)
            .map_err(|e| StartupError::Config(e.into()))?;
        let receipts = http::callbacks::Receipts::new(verifiers, &public_url, emitter.clone());
        if let Some(e) = &emitter {
            parts
                .verifier
                .set_events(Arc::clone(e), Arc::clone(&event_store));
        }
        let console_events = emitter.clone();
        let load = Arc::new(crate::load::RequestLoad::default());
        let event_tasks = match emitter {
            Some(emitter) => crate::events::dispatcher::start(
                event_store,
                &config.events,
                emitter,
                Arc::clone(&parts.keys),
                Lifecycle::with_ttl(config.codes.ttl),
                Arc::clone(&parts.clock),
                Arc::clone(&load),
            ),
            None => Vec::new(),
        };
        let state = AppState::new(http::Shared {
            load,
            request_metrics: http::metrics::RequestMetrics::default(),
            receipts: Arc::new(receipts),
            refusals,
            twilio: Arc::new(twilio),
            verifier: Arc::clone(&parts.verifier),
            store: Arc::clone(&parts.store),
            auth: Arc::new(auth),
            outbox: parts.outbox,
            trusted_proxies: Arc::new(TrustedProxies::new(config.server.trusted_proxies.clone())),
            code_length: config.codes.length,
            request_timeout: config.server.request_timeout,
            readiness: Arc::new(http::health::ReadinessCache::default()),
            keys: Arc::clone(&parts.keys),
            clock: Arc::clone(&parts.clock),
            metrics_on_main: config.telemetry.metrics_addr.is_none(),
            console: Arc::new(
                crate::console::Console::new(&config, Arc::clone(&parts.console))
                    .with_events(console_events),
            ),
        });
        // Install the metrics recorder before the first request records anything.
        let _ = http::metrics::handle();
        let metrics_listener = match config.telemetry.metrics_addr {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartupError::Bind { addr, source })?,
            ),
            None => None,
        };
        let purge = tokio::spawn(purge_loop(
            Arc::clone(&parts.store),
            Arc::clone(&parts.clock),
            parts.key_check.clone(),
        ));
        let addr = listener.local_addr().map_err(|source| StartupError::Io {
            what: "the listener has no address".to_owned(),
            source,
        })?;
        tracing::info!(
            %addr,
            profile = config.profile.as_str(),
            provider = parts.verifier.provider().name(),
            provider_reason = config.delivery.provider_reason,
            sender = match config.delivery.provider {
                ProviderKind::TwilioVerify => "none (Twilio delivers)",
                ProviderKind::Local => config.delivery.sender.as_str(),
            },
            store = parts.store.name(),
            limiter = parts.verifier.limiter().name(),
            fraud_guard = config.fraud_guard.mode.as_str(),
            auth = config.auth.mode.as_str(),
            secrets = config.store.secret.as_ref().map_or(1, ServerSecrets::len),
            key_id = %parts.keys.newest_key_id(),
            countries = %config.limits.valid_country_codes.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
            "verifyd listening on {addr}"
        );
        for warning in &config.warnings {
            tracing::warn!("{warning}");
        }
        if let Some(l) = &metrics_listener {
            let addr = l.local_addr().map_err(|source| StartupError::Io {
                what: "the metrics listener has no address".to_owned(),
                source,
            })?;
            tracing::info!(%addr, "metrics listening on {addr}");
        }
        Ok(Self {
            listener,
            metrics_listener,
            state,
            grace: config.server.shutdown_grace,
            limits: ConnectionLimits {
                header_timeout: config.server.header_timeout,
                idle_timeout: config.server.idle_timeout,
                max_connections: config.server.max_connections,
            },
            tasks: [purge, refusal_reports]
                .into_iter()
                .chain(jwks_refresher)
                .chain(attempt_tasks)
                .chain(event_tasks)
                .collect(),
        })
    }

    /// The separate metrics listener's address, when `VERIFYD_METRICS_ADDR` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// The bound address (the real port when the setting asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until SIGINT or SIGTERM, then lets in-flight requests finish within the grace.
    ///
    /// # Errors
    /// I/O errors of the listener.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `stop` completes, then drains for at most the shutdown grace.
    ///
    /// # Errors
    /// None today (a failed `accept` is logged and retried); kept for the callers' sake.
    pub async fn run_until(
        self,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Self {
            listener,
            metrics_listener,
            state,
            grace,
            limits,
            tasks,
        } = self;
        let refusals = Arc::clone(&state.refusals);
        let attempt_log = state.verifier.attempt_log().cloned();
        let fraud_guard = state.verifier.fraud_guard().cloned();
        let app = http::router(state);
        let metrics_task = metrics_listener.map(|l| {
            tokio::spawn(http::serve::serve(
                l,
                http::metrics_router(),
                limits,
                std::future::pending(),
            ))
        });
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(http::serve::serve(listener, app, limits, async move {
            stop.await;
            let _ = stopping_tx.send(());
        }));
        let drained = async {
            let _ = stopping_rx.await;
            tokio::time::sleep(grace).await;
        };
        let result = tokio::select! {
            result = server => result.map_err(std::io::Error::other),
            () = drained => {
                tracing::warn!(grace_secs = grace.as_secs(), "shutdown grace ran out; dropping unfinished requests");
                Ok(())
            }
        };
        // The attempt log's last summaries and queued rows, before its writer stops.
        if let Some(log) = &attempt_log {
            log.summarise(true);
            let _ = tokio::time::timeout(Duration::from_secs(2), log.flush()).await;
        }
        for task in tasks {
            task.abort();
        }
        if let Some(task) = metrics_task {
            task.abort();
        }
        refusals.flush(true);
        if let Some(guard) = &fraud_guard {
            guard.summarise(true);
        }
        tracing::info!("verifyd stopped");
        result
    }
}

async fn purge_loop(store: Arc<dyn Store>, clock: Arc<dyn Clock>, key_check: KeyCheck) {
    let mut tick = tokio::time::interval(PURGE_EVERY);
    loop {
        tick.tick().await;
        // This process seals under its newest secret: keep that secret's key-check record, so a
        // rekey run while this process still writes under it cannot retire it unnoticed.
        if let Err(e) = store.add_key_check(&key_check, clock.now()).await {
            tracing::warn!(error = %Chain(&e), "could not re-add the key-check record; will retry");
        }
        match store.purge(clock.now().minus(RETENTION)).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(deleted = n, "purged expired verifications"),
            Err(e) => tracing::warn!(error = %Chain(&e), "purge failed; will retry"),
        }
    }
}

/// Resolves on SIGINT or SIGTERM, logging which arrived.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
        "SIGTERM"
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<&str>();
    let which = tokio::select! { s = ctrl_c => s, s = term => s };
    tracing::info!(
        signal = which,
        "shutting down: finishing in-flight requests"
    );
}
