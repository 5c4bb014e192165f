//! The SQLite schema: the embedded migrations of `migrations/sqlite`, applied in order, each with
//! its bookkeeping row in one transaction. The bookkeeping table is sqlx's `_sqlx_migrations`
//! (same columns, same SHA-384 checksums), so databases created by earlier verifyd builds, which
//! migrated through sqlx, carry on unchanged.

use rusqlite::{Connection, OptionalExtension, params};

use super::db_error;
use crate::error::Context;
use crate::store::{SchemaStatus, StoreError};

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
        return Err(StoreError::internal(format!(
            "SQLite migration {version} failed half-way earlier: restore a backup"
        )));
    }
    for (version, _, checksum) in &applied {
        match MIGRATOR.iter().find(|m| m.version == *version) {
            None => {
                return Err(StoreError::internal(format!(
                    "the database has migration {version}, which this verifyd does not know \
                     (a newer verifyd migrated it)"
                )));
            }
            Some(m) if m.checksum.as_ref() != checksum.as_slice() => {
                return Err(StoreError::internal(format!(
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
            StoreError::internal(Context::new(
                format!("SQLite migration {} failed", migration.version),
                e,
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
    Ok(SchemaStatus::of(&MIGRATOR, &applied))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Chain;

    const ATTEMPTS_INLINE: i64 = 20_261_126_000_005;

    /// A database as verifyd left it before migration 5: migrations 1 to 4, recorded.
    fn before_inline_attempts() -> Connection {
        before(ATTEMPTS_INLINE)
    }

    /// A database with the migrations before `version` applied and recorded.
    fn before(version: i64) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(TABLE).unwrap();
        for m in MIGRATOR.iter().filter(|m| m.version < version) {
            conn.execute_batch(m.sql.as_str()).unwrap();
            conn.execute(
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                 VALUES (?1, ?2, TRUE, ?3, 1)",
                params![m.version, m.description.as_ref(), m.checksum.as_ref()],
            )
            .unwrap();
        }
        conn
    }

    #[test]
    fn send_attempts_move_into_their_verification_in_order() {
        let conn = before_inline_attempts();
        let pending = status(&conn).unwrap();
        let later = MIGRATOR
            .iter()
            .filter(|m| m.version >= ATTEMPTS_INLINE)
            .count();
        assert_eq!(pending.pending.len(), later, "{pending:?}");
        conn.execute_batch(
            "INSERT INTO verifications (sid, phone_lookup, phone_sealed, channel, status, code_digest, \
               code_sealed, created_at, updated_at, expires_at) VALUES \
               ('VE1', x'01', x'02', 'sms', 'pending', x'03', x'04', 1, 1, 9), \
               ('VE2', x'05', x'06', 'sms', 'approved', x'07', x'08', 1, 1, 9); \
             INSERT INTO send_attempts (sid, verification_sid, channel, sent_at) VALUES \
               ('VLb', 'VE1', 'whatsapp', 2000), ('VLa', 'VE1', 'sms', 1000), ('VLc', 'VE1', 'sms', 3000);",
        )
        .unwrap();
        run(&conn).unwrap();
        let attempts = |sid: &str| -> String {
            conn.query_row(
                "SELECT attempts FROM verifications WHERE sid = ?1",
                [sid],
                |r| r.get(0),
            )
            .unwrap()
        };
        assert_eq!(
            attempts("VE1"),
            "VLa sms 1000,VLb whatsapp 2000,VLc sms 3000"
        );
        assert_eq!(attempts("VE2"), "");
        let left: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'send_attempts'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(left, 0);
        let now = status(&conn).unwrap();
        assert!(now.pending.is_empty() && now.unknown.is_empty(), "{now:?}");
        assert_eq!(now.applied, MIGRATOR.iter().count());
        // Running again changes nothing.
        run(&conn).unwrap();
    }

    #[test]
    fn the_lean_outbox_keeps_older_rows_their_ids_and_their_order() {
        let conn = before(20_261_207_260_001);
        // Two pending events of one verification (the second waits for the first), one of
        // another, one delivered; ids stored as verifyd wrote them then.
        conn.execute_batch(
            "INSERT INTO event_outbox (id, endpoint, type, subject, payload, created_at, next_at, \
               subject_created, state) VALUES \
               ('msg_a', 'default', 'verification.pending', 'VE1', '{}', 1, 1, 1, 'pending'), \
               ('msg_b', 'default', 'verification.approved', 'VE1', '{}', 2, 2, 1, 'pending'), \
               ('msg_c', 'default', 'verification.pending', 'VE2', '{}', 3, 3, 3, 'pending'), \
               ('msg_d', 'default', 'verification.pending', 'VE3', '{}', 4, 4, 4, 'delivered');",
        )
        .unwrap();
        run(&conn).unwrap();
        let rows: Vec<(String, i64)> = conn
            .prepare("SELECT id, lease_until FROM event_outbox ORDER BY seq")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            rows,
            [
                ("msg_a".to_owned(), 0),
                ("msg_b".to_owned(), -1),
                ("msg_c".to_owned(), 0),
                ("msg_d".to_owned(), 0)
            ],
            "ids kept; the second event of VE1 waits (held) for the first"
        );
        // A new row stores no id, and enters only the pending index.
        conn.execute(
            "INSERT INTO event_outbox (endpoint, type, subject, payload, created_at, next_at) \
             VALUES ('default', 'verification.pending', 'VE4', '{}', 5, 5)",
            [],
        )
        .unwrap();
        let mut indexes: Vec<String> = conn
            .prepare(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'event_outbox'",
            )
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        indexes.sort();
        assert_eq!(
            indexes,
            [
                "event_outbox_held",
                "event_outbox_legacy_id",
                "event_outbox_pending"
            ]
        );
    }

    #[test]
    fn the_purge_finds_expired_rows_through_an_index_and_checks_move_no_index_entry() {
        let conn = Connection::open_in_memory().unwrap();
        run(&conn).unwrap();
        let plan: Vec<String> = conn
            .prepare("EXPLAIN QUERY PLAN DELETE FROM verifications WHERE expires_at < 1")
            .unwrap()
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter().any(
                |step| step.contains("USING COVERING INDEX verifications_by_expiry")
                    || step.contains("USING INDEX verifications_by_expiry")
            ),
            "{plan:?}"
        );
        // The columns a check or a resend rewrites are in no index.
        let indexed: Vec<String> = conn
            .prepare(
                "SELECT ii.name FROM sqlite_master m, pragma_index_info(m.name) ii \
                 WHERE m.type = 'index' AND m.tbl_name = 'verifications'",
            )
            .unwrap()
            .query_map([], |r| r.get::<_, Option<String>>(0))
            .unwrap()
            .filter_map(|name| name.unwrap()) // None: an expression (COALESCE(owner, ''))
            .collect();
        for column in ["updated_at", "check_count", "send_count", "attempts"] {
            assert!(
                !indexed.iter().any(|c| c == column),
                "{column} in {indexed:?}"
            );
        }
    }

    #[test]
    fn a_database_from_a_newer_or_different_verifyd_is_refused() {
        let conn = Connection::open_in_memory().unwrap();
        run(&conn).unwrap();
        conn.execute(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (99999999999999, 'future', TRUE, x'00', 1)",
            [],
        )
        .unwrap();
        let refused = |conn: &Connection| Chain(&run(conn).unwrap_err()).to_string();
        assert!(refused(&conn).contains("does not know"));
        assert_eq!(status(&conn).unwrap().unknown, vec![99_999_999_999_999]);

        let conn = Connection::open_in_memory().unwrap();
        run(&conn).unwrap();
        conn.execute(
            "UPDATE _sqlx_migrations SET checksum = x'00' WHERE version = ?1",
            [ATTEMPTS_INLINE],
        )
        .unwrap();
        assert!(refused(&conn).contains("differs"));

        let conn = Connection::open_in_memory().unwrap();
        run(&conn).unwrap();
        conn.execute(
            "UPDATE _sqlx_migrations SET success = FALSE WHERE version = ?1",
            [ATTEMPTS_INLINE],
        )
        .unwrap();
        assert!(refused(&conn).contains("half-way"));
    }
}
