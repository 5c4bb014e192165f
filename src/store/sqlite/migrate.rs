//! The SQLite schema: the embedded migrations of `migrations/sqlite`, applied in order, each with
//! its bookkeeping row in one transaction. The bookkeeping table is sqlx's `_sqlx_migrations`
//! (same columns, same SHA-384 checksums), so databases created by earlier verifyd builds, which
//! migrated through sqlx, carry on unchanged.

use rusqlite::{Connection, OptionalExtension, params};

use super::db_error;
use crate::store::StoreError;

/// The schema, embedded in the binary.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

const TABLE: &str = "CREATE TABLE IF NOT EXISTS _sqlx_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    success BOOLEAN NOT NULL,
    checksum BLOB NOT NULL,
    execution_time BIGINT NOT NULL
)";

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

/// The versions recorded in the database with their success flag and checksum; empty when the
/// bookkeeping table does not exist.
fn recorded(conn: &Connection) -> Result<Vec<(i64, bool, Vec<u8>)>, StoreError> {
    let exists: Option<String> = conn
        .query_row(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(db_error)?;
    if exists.is_none() {
        return Ok(Vec::new());
    }
    let mut statement = conn
        .prepare("SELECT version, success, checksum FROM _sqlx_migrations ORDER BY version")
        .map_err(db_error)?;
    let rows = statement
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .map_err(db_error)?;
    rows.collect::<Result<_, _>>().map_err(db_error)
}

/// Applies the migrations the database lacks. Refuses a database whose earlier migration failed
/// half-way, whose applied migration differs from the embedded one, or that has a version this
/// binary does not know (a newer verifyd migrated it).
pub fn run(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(TABLE).map_err(db_error)?;
    let applied = recorded(conn)?;
    if let Some((version, ..)) = applied.iter().find(|(_, success, _)| !success) {
        return Err(StoreError::Internal(format!(
            "SQLite migration {version} failed half-way earlier: restore a backup"
        )));
    }
    for (version, _, checksum) in &applied {
        match MIGRATOR.iter().find(|m| m.version == *version) {
            None => {
                return Err(StoreError::Internal(format!(
                    "the database has migration {version}, which this verifyd does not know \
                     (a newer verifyd migrated it)"
                )));
            }
            Some(m) if m.checksum.as_ref() != checksum.as_slice() => {
                return Err(StoreError::Internal(format!(
                    "migration {version} in the database differs from this verifyd's"
                )));
            }
            Some(_) => {}
        }
    }
    for migration in MIGRATOR.iter() {
        if applied.iter().any(|(v, ..)| *v == migration.version) {
            continue;
        }
        let started = std::time::Instant::now();
        let tx = conn.unchecked_transaction().map_err(db_error)?;
        tx.execute_batch(migration.sql.as_str()).map_err(|e| {
            StoreError::Internal(format!(
                "SQLite migration {} failed: {e}",
                migration.version
            ))
        })?;
        tx.execute(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (?1, ?2, TRUE, ?3, ?4)",
            params![
                migration.version,
                migration.description.as_ref(),
                migration.checksum.as_ref(),
                i64::try_from(started.elapsed().as_nanos()).unwrap_or(i64::MAX),
            ],
        )
        .map_err(db_error)?;
        tx.commit().map_err(db_error)?;
    }
    Ok(())
}

/// Which embedded migrations the database has and lacks.
pub fn status(conn: &Connection) -> Result<SchemaStatus, StoreError> {
    let applied: Vec<i64> = recorded(conn)?
        .into_iter()
        .filter(|(_, success, _)| *success)
        .map(|(v, ..)| v)
        .collect();
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
