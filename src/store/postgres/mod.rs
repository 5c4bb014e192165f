//! The shared store: PostgreSQL, for several replicas behind a load balancer. Same schema and
//! the same atomic steps as the SQLite store: a send is one transaction that locks the number's
//! pending row (`SELECT … FOR UPDATE`), and a check is one conditional `UPDATE … RETURNING`, so
//! any number of replicas cannot double-approve, over-count or lose an attempt.
//!
//! It never blocks startup: the pool connects lazily and the embedded migrations
//! (`migrations/postgres`) run on first use (never for [`PostgresStore::without_migrating`],
//! which `verifyd doctor` uses), so a replica started while the database is down
//! serves `/readyz` 503 and answers 503 `unavailable` until the database answers, then recovers
//! by itself. Every operation is bounded (pool acquire and connect by the store timeout,
//! statements by a per-connection `statement_timeout`, the whole call by both), so an outage
//! answers within seconds. It does not decide anything: business rules stay in the engine.
//!
//! A new number's first send, the common case under load, is inserted together with the other
//! sends waiting at that moment, by one statement (`batch`). This file connects and holds what
//! every concern shares; each concern's queries are in a file of their own (`verifications`,
//! `idempotency`, `keys`).

mod attempts;
mod batch;
mod console;
mod events;
mod idempotency;
mod keys;
mod rate_limits;
mod receipts;
mod safelist;
mod services;
mod verifications;

use std::future::Future;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::{SchemaStatus, Store, StoreError, corrupt};
use crate::error::{BoxError, Context};

/// The schema, embedded in the binary.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// How the pool talks to PostgreSQL.
#[derive(Clone, Copy, Debug)]
pub struct PostgresSettings {
    /// Connections in the pool.
    pub pool_size: u32,
    /// Longest wait for a pooled connection, including opening a new one.
    pub acquire_timeout: Duration,
    /// Server-side `statement_timeout` of every connection.
    pub statement_timeout: Duration,
}

/// A PostgreSQL-backed [`Store`].
pub struct PostgresStore {
    pool: PgPool,
    /// Set once the migrations have run against this database.
    migrated: AtomicBool,
    /// One migration attempt at a time in this process (PostgreSQL's advisory lock, taken by
    /// the migrator, serialises replicas).
    migrating: tokio::sync::Mutex<()>,
    /// Client-side bound on one whole operation: a stalled network cannot hold a request
    /// longer than this, whatever the server does.
    deadline: Duration,
    /// The group inserter of new verifications, started on first use (it needs the runtime).
    inserter: std::sync::OnceLock<batch::Inserter>,
}

impl PostgresStore {
    /// A store for `url` that has not connected yet: it connects (and migrates) on first use.
    ///
    /// # Errors
    /// [`StoreError::Internal`] when the URL cannot be parsed.
    pub fn new(url: &str, settings: PostgresSettings) -> Result<Self, StoreError> {
        Self::with_migrations(url, settings, true)
    }

    /// A store for `url` that never migrates: it reads and writes the schema as it finds it
    /// (for `verifyd doctor`, which changes nothing; see [`Self::schema_status`]).
    ///
    /// # Errors
    /// [`StoreError::Internal`] when the URL cannot be parsed.
    pub fn without_migrating(url: &str, settings: PostgresSettings) -> Result<Self, StoreError> {
        Self::with_migrations(url, settings, false)
    }

    fn with_migrations(
        url: &str,
        settings: PostgresSettings,
        migrate: bool,
    ) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|_| StoreError::internal("the PostgreSQL URL cannot be parsed"))?
            .application_name("verifyd")
            .options([(
                "statement_timeout",
                format!("{}ms", settings.statement_timeout.as_millis()),
            )]);
        let pool = PgPoolOptions::new()
            .max_connections(settings.pool_size)
            .min_connections(0)
            // sqlx pings a connection when it goes back to the pool (and drops it if the ping
            // fails); pinging it again when it is taken out doubled the round trips of every
            // statement. A connection that died while idle fails its statement, which answers
            // 503 and drops it, like any other lost connection.
            .test_before_acquire(false)
            .acquire_timeout(settings.acquire_timeout)
            .idle_timeout(Some(Duration::from_secs(300)))
            .connect_lazy_with(options);
        Ok(Self {
            pool,
            // A store that must not migrate counts as migrated from the start.
            migrated: AtomicBool::new(!migrate),
            migrating: tokio::sync::Mutex::new(()),
            deadline: settings.acquire_timeout + settings.statement_timeout,
            inserter: std::sync::OnceLock::new(),
        })
    }

    /// [`PostgresStore::new`], then connects and migrates now.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the database cannot be reached in time,
    /// [`StoreError::Internal`] when the URL is bad or a migration fails.
    pub async fn connect(url: &str, settings: PostgresSettings) -> Result<Self, StoreError> {
        let store = Self::new(url, settings)?;
        store.ping().await?;
        Ok(store)
    }

    /// Runs the embedded migrations unless they already ran in this process.
    async fn ready(&self) -> Result<(), StoreError> {
        if self.migrated.load(Ordering::Acquire) {
            return Ok(());
        }
        let _guard = self.migrating.lock().await;
        if self.migrated.load(Ordering::Acquire) {
            return Ok(());
        }
        MIGRATOR.run(&self.pool).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(e)
            | sqlx::migrate::MigrateError::ExecuteMigration(e, _) => match db_error(e) {
                StoreError::Internal(d) => StoreError::internal(Context::new(
                    "PostgreSQL migration failed",
                    Box::new(d) as BoxError,
                )),
                unavailable => unavailable,
            },
            other => StoreError::internal(Context::new("PostgreSQL migration failed", other)),
        })?;
        self.migrated.store(true, Ordering::Release);
        tracing::info!("PostgreSQL store ready (migrations applied)");
        Ok(())
    }

    /// Which embedded migrations the database has and lacks, read without migrating (an empty
    /// database has none: its bookkeeping table does not exist yet).
    ///
    /// # Errors
    /// [`StoreError`] when the database cannot be read in time.
    pub async fn schema_status(&self) -> Result<SchemaStatus, StoreError> {
        let read = async {
            let exists: bool =
                sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db_error)?;
            let applied: Vec<i64> = if exists {
                sqlx::query_scalar(
                    "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version",
                )
                .fetch_all(&self.pool)
                .await
                .map_err(db_error)?
            } else {
                Vec::new()
            };
            Ok(SchemaStatus::of(&MIGRATOR, &applied))
        };
        tokio::time::timeout(self.deadline, read)
            .await
            .map_err(|_| StoreError::unavailable("PostgreSQL did not answer in time"))?
    }

    /// Runs `op` after the migrations, within the client-side deadline.
    async fn bounded<T>(
        &self,
        op: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let run = async {
            self.ready().await?;
            op.await
        };
        tokio::time::timeout(self.deadline, run)
            .await
            .map_err(|_| StoreError::unavailable("PostgreSQL did not answer in time"))?
    }
}

/// Whether a PostgreSQL SQLSTATE means the server cannot serve at all right now: connection
/// exceptions (08…), shutdowns and statement timeouts (57…), exhausted resources (53…).
fn outage_sqlstate(code: &str) -> bool {
    code.starts_with("08") || code.starts_with("53") || code.starts_with("57")
}

/// Whether a PostgreSQL SQLSTATE means "the database cannot serve now; retry later": an outage
/// ([`outage_sqlstate`]), or a statement that lost to another one: serialization failures and
/// deadlocks (40001, 40P01), lock waits given up (55P03).
fn transient_sqlstate(code: &str) -> bool {
    outage_sqlstate(code) || matches!(code, "40001" | "40P01" | "55P03")
}

/// Whether the database cannot be reached or cannot serve at all right now: pool, connection,
/// TLS, protocol and I/O failures, and the outage SQLSTATEs.
fn is_outage(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| outage_sqlstate(&c)),
        _ => false,
    }
}

/// Outages and transient SQLSTATEs mean "unavailable" (503); everything else is internal (an
/// opaque 500).
fn db_error(e: sqlx::Error) -> StoreError {
    let transient = is_outage(&e)
        || matches!(&e, sqlx::Error::Database(db) if db.code().is_some_and(|c| transient_sqlstate(&c)));
    if transient {
        StoreError::unavailable(e)
    } else {
        StoreError::internal(e)
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.bounded(async {
            sqlx::query("SELECT 1")
                .execute(&self.pool)
                .await
                .map_err(db_error)?;
            Ok(())
        })
        .await
    }

    fn name(&self) -> &'static str {
        "postgres"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Chain;

    #[test]
    fn connection_and_timeout_sqlstates_are_transient() {
        for code in [
            "08006", "08001", "57P01", "57014", "53300", "40001", "40P01", "55P03",
        ] {
            assert!(transient_sqlstate(code), "{code}");
        }
        for code in ["23505", "42P01", "22001"] {
            assert!(!transient_sqlstate(code), "{code}");
        }
    }

    #[test]
    fn a_bad_url_is_internal_and_does_not_echo_the_url() {
        let err = PostgresStore::new(
            "postgres://u:secret-pass@[bad",
            PostgresSettings {
                pool_size: 1,
                acquire_timeout: Duration::from_secs(1),
                statement_timeout: Duration::from_secs(1),
            },
        )
        .err()
        .expect("refused");
        assert!(matches!(err, StoreError::Internal(_)));
        assert!(!Chain(&err).to_string().contains("secret-pass"));
    }
}
