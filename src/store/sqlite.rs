//! The embedded store: one SQLite file in WAL mode, schema from embedded migrations. Writers
//! that read first take the write lock up front (`BEGIN IMMEDIATE`), so a send never races
//! another send for the same number; checks are a single conditional `UPDATE … RETURNING`.
//!
//! SQLite has one writer at a time. Writers of this process queue for that turn in an async
//! FIFO gate before they touch a connection, instead of colliding inside SQLite, whose busy
//! handler sleeps 1, 2, 5 … 100 ms between retries (under load that sleeping, not the writes,
//! was the cost: see BENCHMARKS.md). Readers never wait for the gate.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Connection, Row, SqliteConnection, SqlitePool};

use super::{
    CheckRecord, IdempotencyBegin, KeyCheck, NewVerification, RekeyOutcome, SealedAnswer,
    SealedVerification, SendOutcome, Store, StoreError, StoredVerification,
};
use crate::config::SqliteSync;
use crate::domain::{
    AttemptSid, Channel, Lifecycle, LiveState, SendAttempt, Timestamp, VerificationSid,
    VerificationStatus,
};

const SELECT_PENDING: &str = "SELECT sid, phone_sealed, channel, status, code_digest, code_sealed, check_count, \
     created_at, updated_at, expires_at FROM verifications WHERE phone_lookup = ?1 AND status = 'pending' AND owner IS ?2";

/// The common send in one round trip to the connection's worker thread (instead of five:
/// begin, select, insert, insert, commit, each a wake-up of that thread while the single writer
/// turn is held): a new verification and its first attempt, inserted only when the number has no
/// pending verification of this owner (the partial unique index on (number, owner) decides,
/// through `OR IGNORE`), the attempt only when the
/// verification row went in (`changes() = 1`). The attempt's `RETURNING` row says it happened;
/// otherwise the full transaction of [`SqliteStore::start_or_resend`] runs.
const INSERT_NEW: &str = "BEGIN IMMEDIATE; \
     INSERT OR IGNORE INTO verifications (sid, phone_lookup, phone_sealed, channel, status, \
     code_digest, code_sealed, check_count, send_count, created_at, updated_at, expires_at, owner) \
     VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?6, 0, 1, ?7, ?7, ?8, ?12); \
     INSERT INTO send_attempts (sid, verification_sid, channel, sent_at) \
     SELECT ?9, ?1, ?10, ?11 WHERE changes() = 1 RETURNING sid; \
     COMMIT";

/// Connections in the pool. SQLite has one writer at a time; readers run in parallel in WAL.
const MAX_CONNECTIONS: u32 = 8;

/// The schema, embedded in the binary.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// What `verifyd doctor` finds of the schema, without changing anything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SchemaStatus {
    /// Embedded migrations the database has.
    pub applied: usize,
    /// Embedded migrations it lacks (`verifyd serve` applies them at start).
    pub pending: Vec<String>,
    /// Versions the database has that this binary does not know (a newer binary migrated it).
    pub unknown: Vec<i64>,
}

/// A SQLite-backed [`Store`].
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// The writer's turn (see the module docs); held from before a write starts until it has
    /// committed.
    writer: Arc<tokio::sync::Mutex<()>>,
    /// How long a writer waits for its turn before the store answers unavailable.
    timeout: Duration,
}

impl SqliteStore {
    /// Opens (creating if missing) and migrates the database at `url`.
    ///
    /// # Errors
    /// [`StoreError`] when the file cannot be opened or migrated.
    pub async fn connect(
        url: &str,
        sync: SqliteSync,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Internal(format!("bad SQLite URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match sync {
                SqliteSync::Full => SqliteSynchronous::Full,
                SqliteSync::Normal => SqliteSynchronous::Normal,
            })
            .foreign_keys(true)
            .busy_timeout(timeout);
        let in_memory = url.contains(":memory:");
        if !in_memory {
            // Create the file, switch it to WAL (persistent, needs an exclusive lock) and migrate
            // on one connection first, so the pool's connections never race for that lock.
            let mut first = SqliteConnection::connect_with(&options)
                .await
                .map_err(|e| {
                    StoreError::Unavailable(format!("cannot open SQLite database: {e}"))
                })?;
            MIGRATOR
                .run(&mut first)
                .await
                .map_err(|e| StoreError::Internal(format!("SQLite migration failed: {e}")))?;
            first.close().await.map_err(db_error)?;
        }
        let pool = SqlitePoolOptions::new()
            // An in-memory database exists per connection: keep exactly one.
            .max_connections(if in_memory { 1 } else { MAX_CONNECTIONS })
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(timeout)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot open SQLite database: {e}")))?;
        if in_memory {
            MIGRATOR
                .run(&pool)
                .await
                .map_err(|e| StoreError::Internal(format!("SQLite migration failed: {e}")))?;
        }
        Ok(Self {
            pool,
            writer: Arc::new(tokio::sync::Mutex::new(())),
            timeout,
        })
    }

    /// Waits (at most the store timeout) for this process's single writer turn.
    async fn write_turn(&self) -> Result<tokio::sync::MutexGuard<'_, ()>, StoreError> {
        if let Ok(turn) = self.writer.try_lock() {
            return Ok(turn);
        }
        tokio::time::timeout(self.timeout, self.writer.lock())
            .await
            .map_err(|_| StoreError::Unavailable("timed out waiting to write to SQLite".to_owned()))
    }

    /// Opens an existing database file without creating, migrating or changing it (for
    /// `verifyd doctor`); `Ok(None)` when the file does not exist.
    ///
    /// # Errors
    /// [`StoreError`] when the file exists but cannot be opened.
    pub async fn open_existing(
        path: &std::path::Path,
        timeout: Duration,
    ) -> Result<Option<Self>, StoreError> {
        if !path.exists() {
            return Ok(None);
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(false)
            .busy_timeout(timeout);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(timeout)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot open SQLite database: {e}")))?;
        Ok(Some(Self {
            pool,
            writer: Arc::new(tokio::sync::Mutex::new(())),
            timeout,
        }))
    }

    /// Which embedded migrations the database has and lacks.
    ///
    /// # Errors
    /// [`StoreError`] when the database cannot be read.
    pub async fn schema_status(&self) -> Result<SchemaStatus, StoreError> {
        let has_table: Option<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        let applied: Vec<i64> = if has_table.is_some() {
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success = 1")
                .fetch_all(&self.pool)
                .await
                .map_err(db_error)?
        } else {
            Vec::new()
        };
        let known: Vec<i64> = MIGRATOR.iter().map(|m| m.version).collect();
        Ok(SchemaStatus {
            applied: known.iter().filter(|v| applied.contains(v)).count(),
            pending: MIGRATOR
                .iter()
                .filter(|m| !applied.contains(&m.version))
                .map(|m| format!("{} {}", m.version, m.description))
                .collect(),
            unknown: applied.into_iter().filter(|v| !known.contains(v)).collect(),
        })
    }

    async fn attempts_of(
        conn: &mut sqlx::SqliteConnection,
        sid: &str,
    ) -> Result<Vec<SendAttempt>, StoreError> {
        let rows = sqlx::query(
            "SELECT sid, channel, sent_at FROM send_attempts WHERE verification_sid = ?1 ORDER BY sent_at, rowid",
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

    /// [`INSERT_NEW`]: true when `new` was inserted, false when the number has a pending
    /// verification (nothing changed). The caller holds the writer turn.
    async fn insert_new(&self, new: &NewVerification, now: Timestamp) -> Result<bool, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        let rows = sqlx::query(INSERT_NEW)
            .bind(new.sid.as_str())
            .bind(&new.phone_lookup[..])
            .bind(&new.phone_sealed)
            .bind(new.channel.as_str())
            .bind(&new.code_digest[..])
            .bind(&new.code_sealed)
            .bind(now.as_millis())
            .bind(new.expires_at.as_millis())
            .bind(new.attempt.sid.as_str())
            .bind(new.attempt.channel.as_str())
            .bind(new.attempt.time.as_millis())
            .bind(new.owner.as_deref())
            .fetch_all(&mut *conn)
            .await;
        match rows {
            Ok(rows) => Ok(!rows.is_empty()),
            Err(e) => {
                // The batch may have stopped inside its transaction: never hand this connection
                // back to the pool (closing it rolls the transaction back).
                conn.close_on_drop();
                Err(db_error(e))
            }
        }
    }

    async fn full(
        conn: &mut sqlx::SqliteConnection,
        row: &SqliteRow,
    ) -> Result<StoredVerification, StoreError> {
        let mut v = from_row(row)?;
        v.send_attempts = Self::attempts_of(conn, v.sid.as_str()).await?;
        Ok(v)
    }
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Internal(format!("corrupt {what} in the verifications table"))
}

/// Timeouts, busy locks and I/O mean "unavailable" (503); everything else is internal.
fn db_error(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            StoreError::Unavailable(e.to_string())
        }
        sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("5" | "6" | "517")) => {
            // SQLITE_BUSY, SQLITE_LOCKED, SQLITE_BUSY_SNAPSHOT
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Internal(e.to_string()),
    }
}

fn from_row(row: &SqliteRow) -> Result<StoredVerification, StoreError> {
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

#[async_trait]
impl Store for SqliteStore {
    async fn start_or_resend(
        &self,
        new: NewVerification,
        now: Timestamp,
        life: Lifecycle,
    ) -> Result<SendOutcome, StoreError> {
        let _turn = self.write_turn().await?;
        if self.insert_new(&new, now).await? {
            return Ok(SendOutcome::Created(created(new, now)));
        }
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_error)?;
        let row = sqlx::query(SELECT_PENDING)
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
                    return Ok(SendOutcome::MaxSendAttempts);
                }
                LiveState::Open { .. } => {
                    sqlx::query(
                        "UPDATE verifications SET send_count = send_count + 1, channel = ?1, updated_at = ?2 WHERE sid = ?3",
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
                    resent.send_attempts.push(new.attempt);
                    return Ok(SendOutcome::Resent(resent));
                }
                state => {
                    let closed = if state == LiveState::Locked {
                        VerificationStatus::MaxAttemptsReached
                    } else {
                        VerificationStatus::Expired
                    };
                    sqlx::query(
                        "UPDATE verifications SET status = ?1, updated_at = ?2 WHERE sid = ?3",
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
        sqlx::query(
            "INSERT INTO verifications (sid, phone_lookup, phone_sealed, channel, status, code_digest, code_sealed, \
             check_count, send_count, created_at, updated_at, expires_at, owner) \
             VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?6, 0, 1, ?7, ?7, ?8, ?9)",
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
        .await
        .map_err(db_error)?;
        insert_attempt(&mut tx, &new.sid, &new.attempt).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(SendOutcome::Created(created(new, now)))
    }

    async fn find_pending(
        &self,
        phone_lookup: &[u8; 32],
        owner: Option<&str>,
    ) -> Result<Option<StoredVerification>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        let row = sqlx::query(SELECT_PENDING)
            .bind(&phone_lookup[..])
            .bind(owner)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_error)?;
        match row {
            Some(row) => Ok(Some(Self::full(&mut conn, &row).await?)),
            None => Ok(None),
        }
    }

    async fn record_check(
        &self,
        sid: &VerificationSid,
        approve: bool,
        now: Timestamp,
        max_checks: u32,
    ) -> Result<CheckRecord, StoreError> {
        let turn = self.write_turn().await?;
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        let row = sqlx::query(
            "UPDATE verifications SET check_count = check_count + 1, \
             status = CASE WHEN ?1 THEN 'approved' ELSE status END, updated_at = ?2 \
             WHERE sid = ?3 AND status = 'pending' AND check_count < ?4 AND expires_at > ?2 \
             RETURNING sid, phone_sealed, channel, status, code_digest, code_sealed, check_count, created_at, updated_at, expires_at",
        )
        .bind(approve)
        .bind(now.as_millis())
        .bind(sid.as_str())
        .bind(i64::from(max_checks))
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_error)?;
        // The update committed on its own: reading the attempts needs no writer turn.
        drop(turn);
        match row {
            Some(row) => Ok(CheckRecord::Counted(Self::full(&mut conn, &row).await?)),
            None => Ok(CheckRecord::NotOpen),
        }
    }

    async fn close(
        &self,
        sid: &VerificationSid,
        status: VerificationStatus,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await?;
        let done = sqlx::query(
            "UPDATE verifications SET status = ?1, updated_at = ?2 WHERE sid = ?3 AND status = 'pending'",
        )
        .bind(status.as_str())
        .bind(now.as_millis())
        .bind(sid.as_str())
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn get(&self, sid: &VerificationSid) -> Result<Option<StoredVerification>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        let row = sqlx::query(
            "SELECT sid, phone_sealed, channel, status, code_digest, code_sealed, check_count, created_at, updated_at, expires_at \
             FROM verifications WHERE sid = ?1",
        )
        .bind(sid.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_error)?;
        match row {
            Some(row) => Ok(Some(Self::full(&mut conn, &row).await?)),
            None => Ok(None),
        }
    }

    async fn purge(&self, before: Timestamp) -> Result<u64, StoreError> {
        let _turn = self.write_turn().await?;
        sqlx::query("DELETE FROM idempotency_keys WHERE created_at < ?1")
            .bind(before.as_millis())
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        let done = sqlx::query(
            "DELETE FROM verifications WHERE (status <> 'pending' AND updated_at < ?1) OR expires_at < ?1",
        )
        .bind(before.as_millis())
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(done.rows_affected())
    }

    async fn api_key_digests(&self) -> Result<Vec<[u8; 32]>, StoreError> {
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
    }

    async fn add_api_key_digest(&self, digest: [u8; 32], now: Timestamp) -> Result<(), StoreError> {
        let _turn = self.write_turn().await?;
        sqlx::query("INSERT OR IGNORE INTO api_keys (digest, created_at) VALUES (?1, ?2)")
            .bind(&digest[..])
            .bind(now.as_millis())
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn idempotency_begin(
        &self,
        key: &[u8; 32],
        request: &[u8; 32],
        now: Timestamp,
        before: Timestamp,
        stale_before: Timestamp,
    ) -> Result<IdempotencyBegin, StoreError> {
        let _turn = self.write_turn().await?;
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_error)?;
        let row = sqlx::query(
            "SELECT request_digest, status, body_sealed, created_at FROM idempotency_keys WHERE key_digest = ?1",
        )
        .bind(&key[..])
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        if let Some(row) = row {
            let request_digest: Vec<u8> = row.try_get(0).map_err(db_error)?;
            let status: Option<i64> = row.try_get(1).map_err(db_error)?;
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
                        status: u16::try_from(status).map_err(|_| corrupt("idempotency status"))?,
                        body_sealed,
                    },
                    _ => IdempotencyBegin::InProgress,
                });
            }
            sqlx::query("DELETE FROM idempotency_keys WHERE key_digest = ?1")
                .bind(&key[..])
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        sqlx::query("INSERT INTO idempotency_keys (key_digest, request_digest, created_at) VALUES (?1, ?2, ?3)")
            .bind(&key[..])
            .bind(&request[..])
            .bind(now.as_millis())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(IdempotencyBegin::Started)
    }

    async fn idempotency_finish(
        &self,
        key: &[u8; 32],
        status: u16,
        body_sealed: &[u8],
    ) -> Result<(), StoreError> {
        let _turn = self.write_turn().await?;
        sqlx::query(
            "UPDATE idempotency_keys SET status = ?1, body_sealed = ?2 WHERE key_digest = ?3",
        )
        .bind(i64::from(status))
        .bind(body_sealed)
        .bind(&key[..])
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn idempotency_abandon(&self, key: &[u8; 32]) -> Result<(), StoreError> {
        let _turn = self.write_turn().await?;
        sqlx::query("DELETE FROM idempotency_keys WHERE key_digest = ?1 AND status IS NULL")
            .bind(&key[..])
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn key_checks(&self) -> Result<Vec<KeyCheck>, StoreError> {
        let rows = sqlx::query("SELECT key_id, sealed FROM key_checks ORDER BY created_at, key_id")
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
    }

    async fn add_key_check(&self, check: &KeyCheck, now: Timestamp) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO key_checks (key_id, sealed, created_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (key_id) DO NOTHING",
        )
        .bind(&check.key_id)
        .bind(&check.sealed)
        .bind(now.as_millis())
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn retire_key_checks(&self, keep: &[u8]) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM key_checks WHERE key_id <> ?1")
            .bind(keep)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected())
    }

    async fn sealed_verifications(
        &self,
        after: Option<&VerificationSid>,
        limit: u32,
    ) -> Result<Vec<SealedVerification>, StoreError> {
        let rows = sqlx::query(
            "SELECT sid, phone_lookup, phone_sealed, code_digest, code_sealed FROM verifications \
             WHERE sid > ?1 ORDER BY sid LIMIT ?2",
        )
        .bind(after.map_or("", VerificationSid::as_str))
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
    }

    async fn rekey_verification(
        &self,
        old: &SealedVerification,
        new: &SealedVerification,
    ) -> Result<RekeyOutcome, StoreError> {
        let done = sqlx::query(
            "UPDATE verifications SET phone_lookup = ?1, phone_sealed = ?2, code_digest = ?3, code_sealed = ?4 \
             WHERE sid = ?5 AND phone_sealed = ?6 AND code_sealed = ?7",
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
            // SQLITE_CONSTRAINT_UNIQUE: the one-pending-per-number index.
            Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("2067") => {
                Ok(RekeyOutcome::Conflict)
            }
            Err(e) => Err(db_error(e)),
        }
    }

    async fn sealed_answers(
        &self,
        after: Option<&[u8; 32]>,
        limit: u32,
    ) -> Result<Vec<SealedAnswer>, StoreError> {
        let rows = sqlx::query(
            "SELECT key_digest, body_sealed FROM idempotency_keys \
             WHERE body_sealed IS NOT NULL AND key_digest > ?1 ORDER BY key_digest LIMIT ?2",
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
    }

    async fn reseal_answer(
        &self,
        key: &[u8; 32],
        old: &[u8],
        new: &[u8],
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE idempotency_keys SET body_sealed = ?1 WHERE key_digest = ?2 AND body_sealed = ?3",
        )
        .bind(new)
        .bind(&key[..])
        .bind(old)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    fn name(&self) -> &'static str {
        "sqlite"
    }
}

/// The stored form of a verification just inserted from `new`.
fn created(new: NewVerification, now: Timestamp) -> StoredVerification {
    StoredVerification {
        sid: new.sid,
        phone_sealed: new.phone_sealed,
        channel: new.channel,
        status: VerificationStatus::Pending,
        code_digest: new.code_digest.to_vec(),
        code_sealed: new.code_sealed,
        check_attempts: 0,
        send_attempts: vec![new.attempt],
        created: now,
        updated: now,
        expires_at: new.expires_at,
    }
}

async fn insert_attempt(
    conn: &mut sqlx::SqliteConnection,
    verification: &VerificationSid,
    attempt: &SendAttempt,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO send_attempts (sid, verification_sid, channel, sent_at) VALUES (?1, ?2, ?3, ?4)")
        .bind(attempt.sid.as_str())
        .bind(verification.as_str())
        .bind(attempt.channel.as_str())
        .bind(attempt.time.as_millis())
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
    Ok(())
}
