//! The shared store: PostgreSQL, for several replicas behind a load balancer. Same schema and
//! the same atomic steps as the SQLite store: a send is one transaction that locks the number's
//! pending row (`SELECT … FOR UPDATE`), and a check is one conditional `UPDATE … RETURNING`, so
//! any number of replicas cannot double-approve, over-count or lose an attempt.
//!
//! It never blocks startup: the pool connects lazily and the embedded migrations
//! (`migrations/postgres`) run on first use, so a replica started while the database is down
//! serves `/readyz` 503 and answers 503 `unavailable` until the database answers, then recovers
//! by itself. Every operation is bounded (pool acquire and connect by the store timeout,
//! statements by a per-connection `statement_timeout`, the whole call by both), so an outage
//! answers within seconds. It does not decide anything: business rules stay in the engine.
//!
//! A new number's first send, the common case under load, is inserted together with the other
//! sends waiting at that moment, by one statement (`batch`).

mod attempts;
mod batch;
mod rate_limits;
mod safelist;
mod services;

use std::future::Future;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{PgConnection, PgPool, Row};

use super::{
    CheckRecord, IdempotencyBegin, KeyCheck, NewVerification, RekeyOutcome, SealedAnswer,
    SealedVerification, SendOutcome, Store, StoreError, StoredVerification,
};
use crate::domain::{
    AttemptSid, Channel, Lifecycle, LiveState, SendAttempt, Timestamp, VerificationSid,
    VerificationStatus,
};

/// The columns [`from_row`] reads, in its order (a macro so queries stay `&'static str`).
macro_rules! columns {
    () => {
        "sid, phone_sealed, channel, status, code_digest, code_sealed, check_count, \
         created_at, updated_at, expires_at"
    };
}

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
        let options = PgConnectOptions::from_str(url)
            .map_err(|_| StoreError::Internal("the PostgreSQL URL cannot be parsed".to_owned()))?
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
            migrated: AtomicBool::new(false),
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
        sqlx::migrate!("./migrations/postgres")
            .run(&self.pool)
            .await
            .map_err(|e| match e {
                sqlx::migrate::MigrateError::Execute(e)
                | sqlx::migrate::MigrateError::ExecuteMigration(e, _) => match db_error(e) {
                    StoreError::Unavailable(d) => StoreError::Unavailable(d),
                    StoreError::Internal(d) => {
                        StoreError::Internal(format!("PostgreSQL migration failed: {d}"))
                    }
                },
                other => StoreError::Internal(format!("PostgreSQL migration failed: {other}")),
            })?;
        self.migrated.store(true, Ordering::Release);
        tracing::info!("PostgreSQL store ready (migrations applied)");
        Ok(())
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
            .map_err(|_| StoreError::Unavailable("PostgreSQL did not answer in time".to_owned()))?
    }

    async fn attempts_of(
        conn: &mut PgConnection,
        sid: &str,
    ) -> Result<Vec<SendAttempt>, StoreError> {
        let rows = sqlx::query(
            "SELECT sid, channel, sent_at FROM send_attempts WHERE verification_sid = $1 ORDER BY sent_at, seq",
        )
        .bind(sid)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_error)?;
        rows.iter()
            .map(|r| {
                Ok(SendAttempt {
                    sid: AttemptSid::parse(&r.try_get::<String, _>(0).map_err(db_error)?)
                        .ok_or_else(|| corrupt("attempt sid"))?,
                    channel: r
                        .try_get::<String, _>(1)
                        .map_err(db_error)?
                        .parse::<Channel>()
                        .map_err(|_| corrupt("attempt channel"))?,
                    time: Timestamp::from_millis(r.try_get(2).map_err(db_error)?),
                })
            })
            .collect()
    }

    async fn full(conn: &mut PgConnection, row: &PgRow) -> Result<StoredVerification, StoreError> {
        let mut v = from_row(row)?;
        v.send_attempts = Self::attempts_of(conn, v.sid.as_str()).await?;
        Ok(v)
    }

    /// The common send: the verification and its first attempt, inserted (with the other new
    /// sends waiting, in one statement) only when the number has no pending verification of
    /// this owner (the partial unique index decides, through `ON CONFLICT DO NOTHING`). False
    /// when nothing was inserted; then [`Self::try_start_or_resend`] applies the resend rules.
    async fn insert_new(&self, new: &NewVerification, now: Timestamp) -> Result<bool, StoreError> {
        self.inserter
            .get_or_init(|| batch::Inserter::spawn(self.pool.clone()))
            .insert(new, now)
            .await
    }

    /// One try at the send transaction. `Ok(None)`: another replica inserted a pending
    /// verification for this number between our look and our insert (unique violation on the
    /// one-pending index); the caller tries again and then finds it.
    async fn try_start_or_resend(
        &self,
        new: &NewVerification,
        now: Timestamp,
        life: Lifecycle,
    ) -> Result<Option<SendOutcome>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let row = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM verifications WHERE phone_lookup = $1 AND status = 'pending' \
             AND owner IS NOT DISTINCT FROM $2 FOR UPDATE"
        ))
        .bind(&new.phone_lookup[..])
        .bind(new.owner.as_deref())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        if let Some(row) = row {
            let existing = Self::full(&mut tx, &row).await?;
            match life.state(existing.counters(), now) {
                LiveState::Open { sends_left: 0, .. } => {
                    tx.rollback().await.map_err(db_error)?;
                    return Ok(Some(SendOutcome::MaxSendAttempts));
                }
                LiveState::Open { .. } => {
                    sqlx::query(
                        "UPDATE verifications SET send_count = send_count + 1, channel = $1, updated_at = $2 WHERE sid = $3",
                    )
                    .bind(new.attempt.channel.as_str())
                    .bind(now.as_millis())
                    .bind(existing.sid.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
                    insert_attempt(&mut tx, &existing.sid, &new.attempt).await?;
                    tx.commit().await.map_err(db_error)?;
                    let mut resent = existing;
                    resent.channel = new.attempt.channel;
                    resent.updated = now;
                    resent.send_attempts.push(new.attempt.clone());
                    return Ok(Some(SendOutcome::Resent(resent)));
                }
                state => {
                    let closed = if state == LiveState::Locked {
                        VerificationStatus::MaxAttemptsReached
                    } else {
                        VerificationStatus::Expired
                    };
                    sqlx::query(
                        "UPDATE verifications SET status = $1, updated_at = $2 WHERE sid = $3",
                    )
                    .bind(closed.as_str())
                    .bind(now.as_millis())
                    .bind(existing.sid.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
                }
            }
        }
        let inserted = sqlx::query(
            "INSERT INTO verifications (sid, phone_lookup, phone_sealed, channel, status, code_digest, code_sealed, \
             check_count, send_count, created_at, updated_at, expires_at, owner) \
             VALUES ($1, $2, $3, $4, 'pending', $5, $6, 0, 1, $7, $7, $8, $9)",
        )
        .bind(new.sid.as_str())
        .bind(&new.phone_lookup[..])
        .bind(&new.phone_sealed)
        .bind(new.channel.as_str())
        .bind(&new.code_digest[..])
        .bind(&new.code_sealed)
        .bind(now.as_millis())
        .bind(new.expires_at.as_millis())
        .bind(new.owner.as_deref())
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                tx.rollback().await.map_err(db_error)?;
                return Ok(None);
            }
            Err(e) => return Err(db_error(e)),
        }
        insert_attempt(&mut tx, &new.sid, &new.attempt).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(Some(SendOutcome::Created(StoredVerification::created(
            new, now,
        ))))
    }

    async fn get_inner(
        &self,
        sid: &VerificationSid,
    ) -> Result<Option<StoredVerification>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        let row = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM verifications WHERE sid = $1"
        ))
        .bind(sid.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_error)?;
        match row {
            Some(row) => Ok(Some(Self::full(&mut conn, &row).await?)),
            None => Ok(None),
        }
    }
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Internal(format!("corrupt {what} in the verifications table"))
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
        StoreError::Unavailable(e.to_string())
    } else {
        StoreError::Internal(e.to_string())
    }
}

fn from_row(row: &PgRow) -> Result<StoredVerification, StoreError> {
    let get_i64 = |i: usize| row.try_get::<i64, _>(i).map_err(db_error);
    Ok(StoredVerification {
        sid: VerificationSid::parse(&row.try_get::<String, _>(0).map_err(db_error)?)
            .ok_or_else(|| corrupt("sid"))?,
        phone_sealed: row.try_get(1).map_err(db_error)?,
        channel: row
            .try_get::<String, _>(2)
            .map_err(db_error)?
            .parse()
            .map_err(|_| corrupt("channel"))?,
        status: VerificationStatus::parse(&row.try_get::<String, _>(3).map_err(db_error)?)
            .ok_or_else(|| corrupt("status"))?,
        code_digest: row.try_get(4).map_err(db_error)?,
        code_sealed: row.try_get(5).map_err(db_error)?,
        check_attempts: u32::try_from(get_i64(6)?).map_err(|_| corrupt("check count"))?,
        send_attempts: Vec::new(),
        created: Timestamp::from_millis(get_i64(7)?),
        updated: Timestamp::from_millis(get_i64(8)?),
        expires_at: Timestamp::from_millis(get_i64(9)?),
    })
}

async fn insert_attempt(
    conn: &mut PgConnection,
    verification: &VerificationSid,
    attempt: &SendAttempt,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO send_attempts (sid, verification_sid, channel, sent_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(attempt.sid.as_str())
    .bind(verification.as_str())
    .bind(attempt.channel.as_str())
    .bind(attempt.time.as_millis())
    .execute(&mut *conn)
    .await
    .map_err(db_error)?;
    Ok(())
}

#[async_trait]
impl Store for PostgresStore {
    async fn start_or_resend(
        &self,
        new: NewVerification,
        now: Timestamp,
        life: Lifecycle,
    ) -> Result<SendOutcome, StoreError> {
        self.bounded(async {
            if self.insert_new(&new, now).await? {
                return Ok(SendOutcome::Created(StoredVerification::created(&new, now)));
            }
            if let Some(outcome) = self.try_start_or_resend(&new, now, life).await? {
                return Ok(outcome);
            }
            // Lost the race for the number's one pending row: the winner committed it, so this
            // try finds it and resends (or reports the send budget).
            match self.try_start_or_resend(&new, now, life).await? {
                Some(outcome) => Ok(outcome),
                None => Err(StoreError::Unavailable(
                    "concurrent sends to one number kept conflicting; retry".to_owned(),
                )),
            }
        })
        .await
    }

    async fn find_pending(
        &self,
        phone_lookup: &[u8; 32],
        owner: Option<&str>,
    ) -> Result<Option<StoredVerification>, StoreError> {
        self.bounded(async {
            let mut conn = self.pool.acquire().await.map_err(db_error)?;
            let row = sqlx::query(concat!(
                "SELECT ",
                columns!(),
                " FROM verifications WHERE phone_lookup = $1 AND status = 'pending' \
                 AND owner IS NOT DISTINCT FROM $2"
            ))
            .bind(&phone_lookup[..])
            .bind(owner)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_error)?;
            match row {
                Some(row) => Ok(Some(Self::full(&mut conn, &row).await?)),
                None => Ok(None),
            }
        })
        .await
    }

    async fn record_check(
        &self,
        sid: &VerificationSid,
        approve: bool,
        now: Timestamp,
        max_checks: u32,
    ) -> Result<CheckRecord, StoreError> {
        self.bounded(async {
            let mut conn = self.pool.acquire().await.map_err(db_error)?;
            let row = sqlx::query(concat!(
                "UPDATE verifications SET check_count = check_count + 1, \
                 status = CASE WHEN $1 THEN 'approved' ELSE status END, updated_at = $2 \
                 WHERE sid = $3 AND status = 'pending' AND check_count < $4 AND expires_at > $2 \
                 RETURNING ",
                columns!(),
                ""
            ))
            .bind(approve)
            .bind(now.as_millis())
            .bind(sid.as_str())
            .bind(i64::from(max_checks))
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_error)?;
            match row {
                Some(row) => Ok(CheckRecord::Counted(Self::full(&mut conn, &row).await?)),
                None => Ok(CheckRecord::NotOpen),
            }
        })
        .await
    }

    async fn close(
        &self,
        sid: &VerificationSid,
        status: VerificationStatus,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.bounded(async {
            let done = sqlx::query(
                "UPDATE verifications SET status = $1, updated_at = $2 WHERE sid = $3 AND status = 'pending'",
            )
            .bind(status.as_str())
            .bind(now.as_millis())
            .bind(sid.as_str())
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn get(&self, sid: &VerificationSid) -> Result<Option<StoredVerification>, StoreError> {
        self.bounded(self.get_inner(sid)).await
    }

    async fn idempotency_begin(
        &self,
        key: &[u8; 32],
        request: &[u8; 32],
        now: Timestamp,
        before: Timestamp,
        stale_before: Timestamp,
    ) -> Result<IdempotencyBegin, StoreError> {
        self.bounded(async {
            let mut tx = self.pool.begin().await.map_err(db_error)?;
            let row = sqlx::query(
                "SELECT request_digest, status, body_sealed, created_at FROM idempotency_keys \
                 WHERE key_digest = $1 FOR UPDATE",
            )
            .bind(&key[..])
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?;
            if let Some(row) = row {
                let request_digest: Vec<u8> = row.try_get(0).map_err(db_error)?;
                let status: Option<i32> = row.try_get(1).map_err(db_error)?;
                let body: Option<Vec<u8>> = row.try_get(2).map_err(db_error)?;
                let created = Timestamp::from_millis(row.try_get(3).map_err(db_error)?);
                let expired = created < before || (status.is_none() && created < stale_before);
                if !expired {
                    tx.rollback().await.map_err(db_error)?;
                    if request_digest.as_slice() != &request[..] {
                        return Ok(IdempotencyBegin::Mismatch);
                    }
                    return Ok(match (status, body) {
                        (Some(status), Some(body_sealed)) => IdempotencyBegin::Replay {
                            status: u16::try_from(status)
                                .map_err(|_| corrupt("idempotency status"))?,
                            body_sealed,
                        },
                        _ => IdempotencyBegin::InProgress,
                    });
                }
                sqlx::query("DELETE FROM idempotency_keys WHERE key_digest = $1")
                    .bind(&key[..])
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
            }
            let inserted = sqlx::query(
                "INSERT INTO idempotency_keys (key_digest, request_digest, created_at) \
                 VALUES ($1, $2, $3) ON CONFLICT (key_digest) DO NOTHING",
            )
            .bind(&key[..])
            .bind(&request[..])
            .bind(now.as_millis())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            tx.commit().await.map_err(db_error)?;
            // Another replica claimed the key between our read and our insert.
            if inserted.rows_affected() == 0 {
                return Ok(IdempotencyBegin::InProgress);
            }
            Ok(IdempotencyBegin::Started)
        })
        .await
    }

    async fn idempotency_finish(
        &self,
        key: &[u8; 32],
        status: u16,
        body_sealed: &[u8],
    ) -> Result<(), StoreError> {
        self.bounded(async {
            sqlx::query(
                "UPDATE idempotency_keys SET status = $1, body_sealed = $2 WHERE key_digest = $3",
            )
            .bind(i32::from(status))
            .bind(body_sealed)
            .bind(&key[..])
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
            Ok(())
        })
        .await
    }

    async fn idempotency_abandon(&self, key: &[u8; 32]) -> Result<(), StoreError> {
        self.bounded(async {
            sqlx::query("DELETE FROM idempotency_keys WHERE key_digest = $1 AND status IS NULL")
                .bind(&key[..])
                .execute(&self.pool)
                .await
                .map_err(db_error)?;
            Ok(())
        })
        .await
    }

    async fn key_checks(&self) -> Result<Vec<KeyCheck>, StoreError> {
        self.bounded(async {
            let rows =
                sqlx::query("SELECT key_id, sealed FROM key_checks ORDER BY created_at, key_id")
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_error)?;
            rows.iter()
                .map(|r| {
                    Ok(KeyCheck {
                        key_id: r.try_get(0).map_err(db_error)?,
                        sealed: r.try_get(1).map_err(db_error)?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn add_key_check(&self, check: &KeyCheck, now: Timestamp) -> Result<(), StoreError> {
        self.bounded(async {
            sqlx::query(
                "INSERT INTO key_checks (key_id, sealed, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (key_id) DO NOTHING",
            )
            .bind(&check.key_id)
            .bind(&check.sealed)
            .bind(now.as_millis())
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
            Ok(())
        })
        .await
    }

    async fn retire_key_checks(&self, keep: &[u8]) -> Result<u64, StoreError> {
        self.bounded(async {
            let done = sqlx::query("DELETE FROM key_checks WHERE key_id <> $1")
                .bind(keep)
                .execute(&self.pool)
                .await
                .map_err(db_error)?;
            Ok(done.rows_affected())
        })
        .await
    }

    async fn sealed_verifications(
        &self,
        after: Option<&VerificationSid>,
        limit: u32,
    ) -> Result<Vec<SealedVerification>, StoreError> {
        self.bounded(async {
            let rows = sqlx::query(
                "SELECT sid, phone_lookup, phone_sealed, code_digest, code_sealed FROM verifications \
                 WHERE sid COLLATE \"C\" > $1 ORDER BY sid COLLATE \"C\" LIMIT $2",
            )
            .bind(after.map_or("", |a| a.as_str()))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
            rows.iter()
                .map(|r| {
                    Ok(SealedVerification {
                        sid: VerificationSid::parse(&r.try_get::<String, _>(0).map_err(db_error)?)
                            .ok_or_else(|| corrupt("sid"))?,
                        phone_lookup: r.try_get(1).map_err(db_error)?,
                        phone_sealed: r.try_get(2).map_err(db_error)?,
                        code_digest: r.try_get(3).map_err(db_error)?,
                        code_sealed: r.try_get(4).map_err(db_error)?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn rekey_verification(
        &self,
        old: &SealedVerification,
        new: &SealedVerification,
    ) -> Result<RekeyOutcome, StoreError> {
        self.bounded(async {
            let done = sqlx::query(
                "UPDATE verifications SET phone_lookup = $1, phone_sealed = $2, code_digest = $3, \
                 code_sealed = $4 WHERE sid = $5 AND phone_sealed = $6 AND code_sealed = $7",
            )
            .bind(&new.phone_lookup)
            .bind(&new.phone_sealed)
            .bind(&new.code_digest)
            .bind(&new.code_sealed)
            .bind(old.sid.as_str())
            .bind(&old.phone_sealed)
            .bind(&old.code_sealed)
            .execute(&self.pool)
            .await;
            match done {
                Ok(d) if d.rows_affected() == 1 => Ok(RekeyOutcome::Rekeyed),
                Ok(_) => Ok(RekeyOutcome::Changed),
                // unique_violation: the one-pending-per-owner-and-number index.
                Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("23505") => {
                    Ok(RekeyOutcome::Conflict)
                }
                Err(e) => Err(db_error(e)),
            }
        })
        .await
    }

    async fn sealed_answers(
        &self,
        after: Option<&[u8; 32]>,
        limit: u32,
    ) -> Result<Vec<SealedAnswer>, StoreError> {
        self.bounded(async {
            let rows = sqlx::query(
                "SELECT key_digest, body_sealed FROM idempotency_keys \
                 WHERE body_sealed IS NOT NULL AND key_digest > $1 ORDER BY key_digest LIMIT $2",
            )
            .bind(after.map_or(&[][..], |a| &a[..]))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
            rows.iter()
                .map(|r| {
                    let key: Vec<u8> = r.try_get(0).map_err(db_error)?;
                    Ok(SealedAnswer {
                        key_digest: <[u8; 32]>::try_from(key.as_slice())
                            .map_err(|_| corrupt("idempotency key digest"))?,
                        body_sealed: r.try_get(1).map_err(db_error)?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn reseal_answer(
        &self,
        key: &[u8; 32],
        old: &[u8],
        new: &[u8],
    ) -> Result<bool, StoreError> {
        self.bounded(async {
            let done = sqlx::query(
                "UPDATE idempotency_keys SET body_sealed = $1 WHERE key_digest = $2 AND body_sealed = $3",
            )
            .bind(new)
            .bind(&key[..])
            .bind(old)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn purge(&self, before: Timestamp) -> Result<u64, StoreError> {
        self.bounded(async {
            sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
                .bind(before.as_millis())
                .execute(&self.pool)
                .await
                .map_err(db_error)?;
            let done = sqlx::query("DELETE FROM verifications WHERE expires_at < $1")
                .bind(before.as_millis())
                .execute(&self.pool)
                .await
                .map_err(db_error)?;
            Ok(done.rows_affected())
        })
        .await
    }

    async fn api_key_digests(&self) -> Result<Vec<[u8; 32]>, StoreError> {
        self.bounded(async {
            let rows = sqlx::query("SELECT digest FROM api_keys ORDER BY created_at")
                .fetch_all(&self.pool)
                .await
                .map_err(db_error)?;
            rows.iter()
                .map(|r| {
                    let bytes: Vec<u8> = r.try_get(0).map_err(db_error)?;
                    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| corrupt("api key digest"))
                })
                .collect()
        })
        .await
    }

    async fn add_api_key_digest(&self, digest: [u8; 32], now: Timestamp) -> Result<(), StoreError> {
        self.bounded(async {
            sqlx::query(
                "INSERT INTO api_keys (digest, created_at) VALUES ($1, $2) ON CONFLICT (digest) DO NOTHING",
            )
            .bind(&digest[..])
            .bind(now.as_millis())
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
            Ok(())
        })
        .await
    }

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
        assert!(!err.to_string().contains("secret-pass"));
    }
}
