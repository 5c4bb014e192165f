//! The embedded store: one SQLite file in WAL mode, owned by one thread that commits the writes
//! of many requests together (`worker`: group commit). Every store call is a job on that
//! thread; a write job runs inside its batch's `BEGIN IMMEDIATE` transaction and is answered
//! after the commit, so each call is still one atomic step with respect to every other, and
//! nothing is answered before it is durable to the configured `synchronous` level.
//!
//! A send is one `INSERT OR IGNORE` on the partial unique index of pending verifications per
//! (number, owner) when the number has none (the common case), else the resend/close rules in
//! the same transaction; a check ([`Store::check_pending`]) is one job that finds the number's
//! pending verification, has the engine judge it and counts it with a conditional
//! `UPDATE … RETURNING`. WAL checkpoints run on a thread of their own (`checkpoint`).

mod attempts;
mod checkpoint;
mod file_sync;
mod migrate;
mod rate_limits;
mod safelist;
mod services;
mod worker;

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};

use super::{
    CheckRecord, IdempotencyBegin, Judge, KeyCheck, NewVerification, PendingCheck, RekeyOutcome,
    SealedAnswer, SealedVerification, SendOutcome, Store, StoreError, StoredVerification,
};
use crate::config::SqliteSync;
use crate::domain::{
    AttemptSid, Channel, Lifecycle, LiveState, SendAttempt, Timestamp, VerificationSid,
    VerificationStatus,
};
use checkpoint::Checkpointer;
pub use migrate::SchemaStatus;
use worker::{Access, Worker};

/// Pages the write-ahead log may hold before a commit checkpoints it (SQLite's default is
/// 1,000), so that the next write starts the log over. That checkpoint stalls the store's
/// thread: it syncs the log, copies what the background checkpoint has not, and syncs the
/// database file. With the background checkpoint syncing the file after each pass, the stall
/// hardly grows with the window, so a larger window means fewer stalls. Measured
/// (BENCHMARKS.md, fifth pass): from 1,000 to 16,000 pages, send +11–22 % requests/s and p99
/// from ~9.5 to ~6.5 ms. When writes pause, a background pass reaches the end of the log and
/// the log starts over sooner. With `synchronous=normal` the log is synced only by
/// checkpoints: normally a background pass every few milliseconds, but while a long reader
/// (a backup, the sqlite3 shell) pins the log, only this checkpoint, so a power loss could then
/// lose up to this many pages of commits (`normal` never promised to survive one).
const WAL_RESTART_FRAMES: u32 = 16_000;

/// Bytes the `-wal` file is cut back to when the log starts over: the window's size, so that a
/// log that grew past it while a long reader pinned it does not keep that size on disk.
const WAL_SIZE_LIMIT: u64 = 64 * 1024 * 1024;

/// The columns [`from_row`] reads, in its order.
macro_rules! columns {
    () => {
        "sid, phone_sealed, channel, status, code_digest, code_sealed, check_count, created_at, \
         updated_at, expires_at, attempts"
    };
}

const SELECT_PENDING: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM verifications WHERE phone_lookup = ?1 AND status = 'pending' AND owner IS ?2"
);

/// Counts one check (approving when ?1) of a verification that is still open.
const RECORD_CHECK: &str = concat!(
    "UPDATE verifications SET check_count = check_count + 1, \
     status = CASE WHEN ?1 THEN 'approved' ELSE status END, updated_at = ?2 \
     WHERE sid = ?3 AND status = 'pending' AND check_count < ?4 AND expires_at > ?2 RETURNING ",
    columns!()
);

/// A new verification with its first attempt, unless the number has a pending one of this owner
/// (the partial unique index decides).
const INSERT_NEW: &str = "INSERT OR IGNORE INTO verifications (sid, phone_lookup, phone_sealed, \
     channel, status, code_digest, code_sealed, check_count, send_count, created_at, updated_at, \
     expires_at, owner, attempts) VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?6, 0, 1, ?7, ?7, ?8, ?9, ?10)";

/// Statements kept prepared on the connection (more than this store has).
const STATEMENT_CACHE: usize = 64;

/// A SQLite-backed [`Store`].
#[derive(Clone)]
pub struct SqliteStore {
    worker: Worker,
}

/// Where the database is.
enum Target {
    Memory,
    File(PathBuf),
}

impl Target {
    /// `sqlite::memory:`, `sqlite://<path>` or `sqlite:<path>` (a `?query` is ignored).
    fn parse(url: &str) -> Result<Self, StoreError> {
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(|| {
                StoreError::Internal("bad SQLite URL: expected sqlite://<path>".into())
            })?;
        let path = rest.split('?').next().unwrap_or_default();
        match path {
            "" => Err(StoreError::Internal("bad SQLite URL: no path".into())),
            ":memory:" => Ok(Self::Memory),
            path => Ok(Self::File(PathBuf::from(path))),
        }
    }
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
        let target = Target::parse(url)?;
        let (conn, checkpointer) = tokio::task::spawn_blocking(move || {
            let conn = open(&target, sync, timeout)?;
            let checkpointer = match &target {
                Target::File(path) => Some(Checkpointer::spawn(path)?),
                Target::Memory => None,
            };
            Ok::<_, StoreError>((conn, checkpointer))
        })
        .await
        .map_err(|e| StoreError::Internal(format!("SQLite open task failed: {e}")))??;
        Ok(Self {
            worker: Worker::spawn(conn, timeout, checkpointer)?,
        })
    }

    /// Opens an existing database file without creating, migrating or changing it (for
    /// `verifyd doctor`); `Ok(None)` when the file does not exist.
    ///
    /// # Errors
    /// [`StoreError`] when the file exists but cannot be opened.
    pub async fn open_existing(path: &Path, timeout: Duration) -> Result<Option<Self>, StoreError> {
        if !path.exists() {
            return Ok(None);
        }
        let path = path.to_owned();
        let conn = tokio::task::spawn_blocking(move || {
            let conn = Connection::open_with_flags(
                &path,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(|e| StoreError::Unavailable(format!("cannot open SQLite database: {e}")))?;
            conn.busy_timeout(timeout).map_err(db_error)?;
            Ok::<_, StoreError>(conn)
        })
        .await
        .map_err(|e| StoreError::Internal(format!("SQLite open task failed: {e}")))??;
        Ok(Some(Self {
            worker: Worker::spawn(conn, timeout, ())?,
        }))
    }

    /// Which embedded migrations the database has and lacks.
    ///
    /// # Errors
    /// [`StoreError`] when the database cannot be read.
    pub async fn schema_status(&self) -> Result<SchemaStatus, StoreError> {
        self.worker.call(Access::Read, migrate::status).await
    }
}

/// Opens, configures and migrates the connection the store's thread will own.
fn open(target: &Target, sync: SqliteSync, timeout: Duration) -> Result<Connection, StoreError> {
    let cannot_open =
        |e: rusqlite::Error| StoreError::Unavailable(format!("cannot open SQLite database: {e}"));
    let conn = match target {
        Target::Memory => Connection::open_in_memory().map_err(cannot_open)?,
        Target::File(path) => Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(cannot_open)?,
    };
    conn.busy_timeout(timeout).map_err(db_error)?;
    if let Target::File(_) = target {
        // Persistent: readers never block the writer and a commit appends to the log.
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(db_error)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Internal(format!(
                "SQLite refused WAL mode (journal_mode is {mode})"
            )));
        }
    }
    if let Target::File(_) = target {
        conn.execute_batch(&format!(
            "PRAGMA wal_autocheckpoint = {WAL_RESTART_FRAMES};
             PRAGMA journal_size_limit = {WAL_SIZE_LIMIT};"
        ))
        .map_err(db_error)?;
    }
    conn.execute_batch(match sync {
        SqliteSync::Full => "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
        SqliteSync::Normal => "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
    })
    .map_err(db_error)?;
    // SQLite's page cache stays at its default (2 MiB): every commit walks it, so a large one
    // cost more than the reads it saved (BENCHMARKS.md). No memory map either: an I/O error on
    // a mapped page is a SIGBUS, not an error the store can answer 503 to.
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    migrate::run(&conn)?;
    Ok(conn)
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Internal(format!("corrupt {what} in the verifications table"))
}

/// Busy locks, I/O and a full disk mean "unavailable" (503); everything else is internal.
fn db_error(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode as C;
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.code,
                C::DatabaseBusy
                    | C::DatabaseLocked
                    | C::SystemIoFailure
                    | C::CannotOpen
                    | C::DiskFull
                    | C::OutOfMemory
                    | C::PermissionDenied
                    | C::ReadOnly
            ) =>
        {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Internal(e.to_string()),
    }
}

/// A verification row in `columns!()` order.
fn from_row(row: &Row<'_>) -> Result<StoredVerification, StoreError> {
    let text = |i: usize| row.get::<_, String>(i).map_err(db_error);
    let int = |i: usize| row.get::<_, i64>(i).map_err(db_error);
    let blob = |i: usize| row.get::<_, Vec<u8>>(i).map_err(db_error);
    Ok(StoredVerification {
        sid: VerificationSid::parse(&text(0)?).ok_or_else(|| corrupt("sid"))?,
        phone_sealed: blob(1)?,
        channel: text(2)?.parse().map_err(|_| corrupt("channel"))?,
        status: VerificationStatus::parse(&text(3)?).ok_or_else(|| corrupt("status"))?,
        code_digest: blob(4)?,
        code_sealed: blob(5)?,
        check_attempts: u32::try_from(int(6)?).map_err(|_| corrupt("check count"))?,
        send_attempts: parse_attempts(&text(10)?)?,
        created: Timestamp::from_millis(int(7)?),
        updated: Timestamp::from_millis(int(8)?),
        expires_at: Timestamp::from_millis(int(9)?),
    })
}

/// One entry of the `attempts` column: `<attempt sid> <channel> <sent at, ms>`.
fn attempt_text(attempt: &SendAttempt) -> String {
    format!(
        "{} {} {}",
        attempt.sid.as_str(),
        attempt.channel.as_str(),
        attempt.time.as_millis()
    )
}

/// The `attempts` column: entries separated by commas, oldest first.
fn parse_attempts(text: &str) -> Result<Vec<SendAttempt>, StoreError> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(|entry| {
            let mut parts = entry.split(' ');
            let (Some(sid), Some(channel), Some(time), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(corrupt("send attempt"));
            };
            Ok(SendAttempt {
                sid: AttemptSid::parse(sid).ok_or_else(|| corrupt("attempt sid"))?,
                channel: channel
                    .parse::<Channel>()
                    .map_err(|_| corrupt("attempt channel"))?,
                time: Timestamp::from_millis(time.parse().map_err(|_| corrupt("attempt time"))?),
            })
        })
        .collect()
}

/// The first row of `sql` with `params` as a verification.
fn verification(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Option<StoredVerification>, StoreError> {
    let mut statement = conn.prepare_cached(sql).map_err(db_error)?;
    let mut rows = statement.query(params).map_err(db_error)?;
    rows.next().map_err(db_error)?.map(from_row).transpose()
}

/// Inserts `new` with its first attempt; false (nothing changed) when the number already has a
/// pending verification of this owner.
fn insert_new(
    conn: &Connection,
    new: &NewVerification,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let inserted = conn
        .prepare_cached(INSERT_NEW)
        .and_then(|mut s| {
            s.execute(params![
                new.sid.as_str(),
                &new.phone_lookup[..],
                &new.phone_sealed,
                new.channel.as_str(),
                &new.code_digest[..],
                &new.code_sealed,
                now.as_millis(),
                new.expires_at.as_millis(),
                new.owner.as_deref(),
                attempt_text(&new.attempt),
            ])
        })
        .map_err(db_error)?;
    Ok(inserted == 1)
}

/// The send rules, inside the batch's write transaction.
fn start_or_resend(
    conn: &Connection,
    new: &NewVerification,
    now: Timestamp,
    life: Lifecycle,
) -> Result<SendOutcome, StoreError> {
    if insert_new(conn, new, now)? {
        return Ok(SendOutcome::Created(StoredVerification::created(new, now)));
    }
    let existing = verification(
        conn,
        SELECT_PENDING,
        params![&new.phone_lookup[..], new.owner.as_deref()],
    )?
    .ok_or_else(|| {
        StoreError::Internal("a new verification was refused with none pending".into())
    })?;
    match life.state(existing.counters(), now) {
        LiveState::Open { sends_left: 0, .. } => Ok(SendOutcome::MaxSendAttempts),
        LiveState::Open { .. } => {
            execute(
                conn,
                "UPDATE verifications SET send_count = send_count + 1, channel = ?1, updated_at = ?2, \
                 attempts = attempts || ',' || ?4 WHERE sid = ?3",
                params![
                    new.attempt.channel.as_str(),
                    now.as_millis(),
                    existing.sid.as_str(),
                    attempt_text(&new.attempt),
                ],
            )?;
            let mut resent = existing;
            resent.channel = new.attempt.channel;
            resent.updated = now;
            resent.send_attempts.push(new.attempt.clone());
            Ok(SendOutcome::Resent(resent))
        }
        state => {
            let closed = if state == LiveState::Locked {
                VerificationStatus::MaxAttemptsReached
            } else {
                VerificationStatus::Expired
            };
            conn.prepare_cached(
                "UPDATE verifications SET status = ?1, updated_at = ?2 WHERE sid = ?3",
            )
            .and_then(|mut s| {
                s.execute(params![
                    closed.as_str(),
                    now.as_millis(),
                    existing.sid.as_str()
                ])
            })
            .map_err(db_error)?;
            if !insert_new(conn, new, now)? {
                return Err(StoreError::Internal(
                    "a closed verification still blocks a new one".into(),
                ));
            }
            Ok(SendOutcome::Created(StoredVerification::created(new, now)))
        }
    }
}

/// Executes one statement; how many rows it changed.
fn execute(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<u64, StoreError> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.execute(params))
        .map(|n| n as u64)
        .map_err(db_error)
}

fn digest(bytes: &[u8], what: &str) -> Result<[u8; 32], StoreError> {
    <[u8; 32]>::try_from(bytes).map_err(|_| corrupt(what))
}

#[async_trait]
impl Store for SqliteStore {
    async fn start_or_resend(
        &self,
        new: NewVerification,
        now: Timestamp,
        life: Lifecycle,
    ) -> Result<SendOutcome, StoreError> {
        self.worker
            .call(Access::Write, move |c| start_or_resend(c, &new, now, life))
            .await
    }

    async fn find_pending(
        &self,
        phone_lookup: &[u8; 32],
        owner: Option<&str>,
    ) -> Result<Option<StoredVerification>, StoreError> {
        let lookup = *phone_lookup;
        let owner = owner.map(str::to_owned);
        self.worker
            .call(Access::Read, move |c| {
                verification(c, SELECT_PENDING, params![&lookup[..], owner.as_deref()])
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
        let sid = sid.clone();
        self.worker
            .call(Access::Write, move |c| {
                let counted = verification(
                    c,
                    RECORD_CHECK,
                    params![
                        approve,
                        now.as_millis(),
                        sid.as_str(),
                        i64::from(max_checks)
                    ],
                )?;
                Ok(counted.map_or(CheckRecord::NotOpen, CheckRecord::Counted))
            })
            .await
    }

    async fn check_pending(
        &self,
        lookups: &[[u8; 32]],
        owner: Option<&str>,
        judge: Judge,
        now: Timestamp,
        max_checks: u32,
    ) -> Result<PendingCheck, StoreError> {
        // One job in a write batch: the read, the judging and the count see one state.
        let lookups = lookups.to_vec();
        let owner = owner.map(str::to_owned);
        self.worker
            .call(Access::Write, move |c| {
                for lookup in &lookups {
                    let Some(found) =
                        verification(c, SELECT_PENDING, params![&lookup[..], owner.as_deref()])?
                    else {
                        continue;
                    };
                    let Some(approve) = judge(&found) else {
                        return Ok(PendingCheck::Uncounted(found));
                    };
                    let counted = verification(
                        c,
                        RECORD_CHECK,
                        params![
                            approve,
                            now.as_millis(),
                            found.sid.as_str(),
                            i64::from(max_checks)
                        ],
                    )?;
                    return Ok(counted.map_or(PendingCheck::NotOpen(found), PendingCheck::Counted));
                }
                Ok(PendingCheck::NotFound)
            })
            .await
    }

    async fn close(
        &self,
        sid: &VerificationSid,
        status: VerificationStatus,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let sid = sid.clone();
        self.worker
            .call(Access::Write, move |c| {
                let n = execute(
                    c,
                    "UPDATE verifications SET status = ?1, updated_at = ?2 WHERE sid = ?3 AND status = 'pending'",
                    params![status.as_str(), now.as_millis(), sid.as_str()],
                )?;
                Ok(n == 1)
            })
            .await
    }

    async fn get(&self, sid: &VerificationSid) -> Result<Option<StoredVerification>, StoreError> {
        let sid = sid.clone();
        self.worker
            .call(Access::Read, move |c| {
                verification(
                    c,
                    concat!("SELECT ", columns!(), " FROM verifications WHERE sid = ?1"),
                    [sid.as_str()],
                )
            })
            .await
    }

    async fn purge(&self, before: Timestamp) -> Result<u64, StoreError> {
        self.worker
            .call(Access::Write, move |c| {
                execute(
                    c,
                    "DELETE FROM idempotency_keys WHERE created_at < ?1",
                    [before.as_millis()],
                )?;
                execute(
                    c,
                    "DELETE FROM verifications WHERE expires_at < ?1",
                    [before.as_millis()],
                )
            })
            .await
    }

    async fn api_key_digests(&self) -> Result<Vec<[u8; 32]>, StoreError> {
        self.worker
            .call(Access::Read, |c| {
                let mut s = c
                    .prepare_cached("SELECT digest FROM api_keys ORDER BY created_at")
                    .map_err(db_error)?;
                let rows = s
                    .query_map([], |r| r.get::<_, Vec<u8>>(0))
                    .map_err(db_error)?;
                rows.map(|r| digest(&r.map_err(db_error)?, "api key digest"))
                    .collect()
            })
            .await
    }

    async fn add_api_key_digest(&self, digest: [u8; 32], now: Timestamp) -> Result<(), StoreError> {
        self.worker
            .call(Access::Write, move |c| {
                execute(
                    c,
                    "INSERT OR IGNORE INTO api_keys (digest, created_at) VALUES (?1, ?2)",
                    params![&digest[..], now.as_millis()],
                )
                .map(drop)
            })
            .await
    }

    async fn idempotency_begin(
        &self,
        key: &[u8; 32],
        request: &[u8; 32],
        now: Timestamp,
        before: Timestamp,
        stale_before: Timestamp,
    ) -> Result<IdempotencyBegin, StoreError> {
        let (key, request) = (*key, *request);
        self.worker
            .call(Access::Write, move |c| {
                let found = c
                    .prepare_cached(
                        "SELECT request_digest, status, body_sealed, created_at FROM idempotency_keys \
                         WHERE key_digest = ?1",
                    )
                    .and_then(|mut s| {
                        s.query_row([&key[..]], |r| {
                            Ok((
                                r.get::<_, Vec<u8>>(0)?,
                                r.get::<_, Option<i64>>(1)?,
                                r.get::<_, Option<Vec<u8>>>(2)?,
                                r.get::<_, i64>(3)?,
                            ))
                        })
                        .optional()
                    })
                    .map_err(db_error)?;
                if let Some((request_digest, status, body, created)) = found {
                    let created = Timestamp::from_millis(created);
                    let expired = created < before || (status.is_none() && created < stale_before);
                    if !expired {
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
                    execute(
                        c,
                        "DELETE FROM idempotency_keys WHERE key_digest = ?1",
                        [&key[..]],
                    )?;
                }
                execute(
                    c,
                    "INSERT INTO idempotency_keys (key_digest, request_digest, created_at) VALUES (?1, ?2, ?3)",
                    params![&key[..], &request[..], now.as_millis()],
                )?;
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
        let key = *key;
        let body = body_sealed.to_vec();
        self.worker
            .call(Access::Write, move |c| {
                execute(
                    c,
                    "UPDATE idempotency_keys SET status = ?1, body_sealed = ?2 WHERE key_digest = ?3",
                    params![i64::from(status), &body, &key[..]],
                )
                .map(drop)
            })
            .await
    }

    async fn idempotency_abandon(&self, key: &[u8; 32]) -> Result<(), StoreError> {
        let key = *key;
        self.worker
            .call(Access::Write, move |c| {
                execute(
                    c,
                    "DELETE FROM idempotency_keys WHERE key_digest = ?1 AND status IS NULL",
                    [&key[..]],
                )
                .map(drop)
            })
            .await
    }

    async fn key_checks(&self) -> Result<Vec<KeyCheck>, StoreError> {
        self.worker
            .call(Access::Read, |c| {
                let mut s = c
                    .prepare_cached(
                        "SELECT key_id, sealed FROM key_checks ORDER BY created_at, key_id",
                    )
                    .map_err(db_error)?;
                let rows = s
                    .query_map([], |r| {
                        Ok(KeyCheck {
                            key_id: r.get(0)?,
                            sealed: r.get(1)?,
                        })
                    })
                    .map_err(db_error)?;
                rows.collect::<Result<_, _>>().map_err(db_error)
            })
            .await
    }

    async fn add_key_check(&self, check: &KeyCheck, now: Timestamp) -> Result<(), StoreError> {
        let check = check.clone();
        self.worker
            .call(Access::Write, move |c| {
                execute(
                    c,
                    "INSERT INTO key_checks (key_id, sealed, created_at) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (key_id) DO NOTHING",
                    params![&check.key_id, &check.sealed, now.as_millis()],
                )
                .map(drop)
            })
            .await
    }

    async fn retire_key_checks(&self, keep: &[u8]) -> Result<u64, StoreError> {
        let keep = keep.to_vec();
        self.worker
            .call(Access::Write, move |c| {
                execute(c, "DELETE FROM key_checks WHERE key_id <> ?1", [&keep])
            })
            .await
    }

    async fn sealed_verifications(
        &self,
        after: Option<&VerificationSid>,
        limit: u32,
    ) -> Result<Vec<SealedVerification>, StoreError> {
        let after = after.map_or_else(String::new, |s| s.as_str().to_owned());
        self.worker
            .call(Access::Read, move |c| {
                let mut s = c
                    .prepare_cached(
                        "SELECT sid, phone_lookup, phone_sealed, code_digest, code_sealed FROM verifications \
                         WHERE sid > ?1 ORDER BY sid LIMIT ?2",
                    )
                    .map_err(db_error)?;
                let mut rows = s.query(params![&after, i64::from(limit)]).map_err(db_error)?;
                let mut found = Vec::new();
                while let Some(r) = rows.next().map_err(db_error)? {
                    found.push(SealedVerification {
                        sid: VerificationSid::parse(&r.get::<_, String>(0).map_err(db_error)?)
                            .ok_or_else(|| corrupt("sid"))?,
                        phone_lookup: r.get(1).map_err(db_error)?,
                        phone_sealed: r.get(2).map_err(db_error)?,
                        code_digest: r.get(3).map_err(db_error)?,
                        code_sealed: r.get(4).map_err(db_error)?,
                    });
                }
                Ok(found)
            })
            .await
    }

    async fn rekey_verification(
        &self,
        old: &SealedVerification,
        new: &SealedVerification,
    ) -> Result<RekeyOutcome, StoreError> {
        let (old, new) = (old.clone(), new.clone());
        self.worker
            .call(Access::Write, move |c| {
                let done = c
                    .prepare_cached(
                        "UPDATE verifications SET phone_lookup = ?1, phone_sealed = ?2, code_digest = ?3, \
                         code_sealed = ?4 WHERE sid = ?5 AND phone_sealed = ?6 AND code_sealed = ?7",
                    )
                    .and_then(|mut s| {
                        s.execute(params![
                            &new.phone_lookup,
                            &new.phone_sealed,
                            &new.code_digest,
                            &new.code_sealed,
                            old.sid.as_str(),
                            &old.phone_sealed,
                            &old.code_sealed,
                        ])
                    });
                match done {
                    Ok(1) => Ok(RekeyOutcome::Rekeyed),
                    Ok(_) => Ok(RekeyOutcome::Changed),
                    // SQLITE_CONSTRAINT_UNIQUE: the one-pending-per-number index. The failed
                    // statement changed nothing; the batch's transaction goes on.
                    Err(rusqlite::Error::SqliteFailure(f, _)) if f.extended_code == 2067 => {
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
        let after = after.map_or_else(Vec::new, |a| a.to_vec());
        self.worker
            .call(Access::Read, move |c| {
                let mut s = c
                    .prepare_cached(
                        "SELECT key_digest, body_sealed FROM idempotency_keys \
                         WHERE body_sealed IS NOT NULL AND key_digest > ?1 ORDER BY key_digest LIMIT ?2",
                    )
                    .map_err(db_error)?;
                let mut rows = s.query(params![&after, i64::from(limit)]).map_err(db_error)?;
                let mut found = Vec::new();
                while let Some(r) = rows.next().map_err(db_error)? {
                    found.push(SealedAnswer {
                        key_digest: digest(
                            &r.get::<_, Vec<u8>>(0).map_err(db_error)?,
                            "idempotency key digest",
                        )?,
                        body_sealed: r.get(1).map_err(db_error)?,
                    });
                }
                Ok(found)
            })
            .await
    }

    async fn reseal_answer(
        &self,
        key: &[u8; 32],
        old: &[u8],
        new: &[u8],
    ) -> Result<bool, StoreError> {
        let (key, old, new) = (*key, old.to_vec(), new.to_vec());
        self.worker
            .call(Access::Write, move |c| {
                let n = execute(
                    c,
                    "UPDATE idempotency_keys SET body_sealed = ?1 WHERE key_digest = ?2 AND body_sealed = ?3",
                    params![&new, &key[..], &old],
                )?;
                Ok(n == 1)
            })
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.worker
            .call(Access::Read, |c| {
                c.query_row("SELECT 1", [], |_| Ok(())).map_err(db_error)
            })
            .await
    }

    fn name(&self) -> &'static str {
        "sqlite"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pragma(conn: &Connection, name: &str) -> String {
        conn.query_row(&format!("PRAGMA {name}"), [], |r| {
            r.get::<_, rusqlite::types::Value>(0)
        })
        .map(|v| match v {
            rusqlite::types::Value::Integer(i) => i.to_string(),
            rusqlite::types::Value::Text(t) => t,
            other => format!("{other:?}"),
        })
        .unwrap()
    }

    #[test]
    fn a_database_file_gets_the_log_and_restart_window_the_store_was_measured_with() {
        let dir = tempfile::tempdir().unwrap();
        let file = Target::File(dir.path().join("opened.db"));
        let conn = open(&file, SqliteSync::Normal, Duration::from_secs(1)).unwrap();
        assert_eq!(pragma(&conn, "journal_mode"), "wal");
        assert_eq!(pragma(&conn, "synchronous"), "1", "NORMAL");
        assert_eq!(
            pragma(&conn, "wal_autocheckpoint"),
            WAL_RESTART_FRAMES.to_string()
        );
        let conn = open(&file, SqliteSync::Full, Duration::from_secs(1)).unwrap();
        assert_eq!(pragma(&conn, "synchronous"), "2", "FULL");
    }

    #[test]
    fn an_in_memory_database_keeps_sqlite_defaults_for_the_log() {
        let conn = open(&Target::Memory, SqliteSync::Full, Duration::from_secs(1)).unwrap();
        assert_eq!(pragma(&conn, "journal_mode"), "memory");
        assert_eq!(pragma(&conn, "wal_autocheckpoint"), "1000");
    }
}
