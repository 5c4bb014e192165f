//! The embedded store: one SQLite file in WAL mode, owned by one thread that commits the writes
//! of many requests together (`worker`: group commit). Every store call is a job on that
//! thread; a write job runs inside its batch's `BEGIN IMMEDIATE` transaction and is answered
//! after the commit, so each call is still one atomic step with respect to every other, and
//! nothing is answered before it is durable to the configured `synchronous` level. WAL
//! checkpoints run on a thread of their own (`checkpoint`).
//!
//! This file opens the database and holds what every concern shares; each concern's queries
//! are in a file of their own (`verifications`, `idempotency`, `keys`).

mod attempts;
mod checkpoint;
mod console;
mod events;
mod file_sync;
mod idempotency;
mod keys;
mod migrate;
mod rate_limits;
mod receipts;
mod safelist;
mod services;
mod verifications;
mod worker;

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags};

use super::{SchemaStatus, Store, StoreError, corrupt};
use crate::config::SqliteSync;
use crate::error::Context;
use checkpoint::Checkpointer;
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

/// Statements kept prepared on the connection (more than this store has).
const STATEMENT_CACHE: usize = 64;

/// A SQLite-backed [`Store`].
#[derive(Clone)]
pub struct SqliteStore {
    worker: Worker,
}

/// Where the database is: parsed once, from `VERIFYD_DATABASE_URL`, by the config.
use crate::config::SqliteLocation as Target;

impl SqliteStore {
    /// Opens (creating if missing) and migrates the database at `target`.
    ///
    /// # Errors
    /// [`StoreError`] when the file cannot be opened or migrated.
    pub async fn connect(
        target: &Target,
        sync: SqliteSync,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        let target = target.clone();
        let (conn, checkpointer) = tokio::task::spawn_blocking(move || {
            let conn = open(&target, sync, timeout)?;
            let checkpointer = match &target {
                Target::File(path) => Some(Checkpointer::spawn(path)?),
                Target::Memory => None,
            };
            Ok::<_, StoreError>((conn, checkpointer))
        })
        .await
        .map_err(|e| StoreError::internal(Context::new("the SQLite open task failed", e)))??;
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
            .map_err(cannot_open)?;
            conn.busy_timeout(timeout).map_err(db_error)?;
            Ok::<_, StoreError>(conn)
        })
        .await
        .map_err(|e| StoreError::internal(Context::new("the SQLite open task failed", e)))??;
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
            return Err(StoreError::internal(format!(
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

/// The database file cannot be opened: unavailable (503).
fn cannot_open(e: rusqlite::Error) -> StoreError {
    StoreError::unavailable(Context::new("cannot open the SQLite database", e))
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
            StoreError::unavailable(e)
        }
        _ => StoreError::internal(e),
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
