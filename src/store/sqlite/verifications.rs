//! The verifications concern on SQLite. A send is one `INSERT OR IGNORE` on the partial unique
//! index of pending verifications per (number, owner) when the number has none (the common
//! case), else the resend/close rules in the same transaction. A check is a read of the
//! number's pending verification (with the other reads of its batch) and, once the engine has
//! judged it, a compare-and-set `UPDATE` (with the other writes of its batch). Send attempts
//! live inline, in the row's `attempts` column.

use async_trait::async_trait;
use rusqlite::{Connection, Row, params};

use super::events::write_journal;
use super::worker::Access;
use super::{SqliteStore, db_error, execute};
use crate::domain::{
    CheckUpdate, Lifecycle, LiveState, Timestamp, VerificationSid, VerificationStatus,
};
use crate::store::verifications::{attempt_text, parse_attempts};
use crate::store::{
    CheckRecord, Journal, NewVerification, RekeyOutcome, SealedVerification, SendOutcome,
    StoreError, StoredVerification, VerificationStore, corrupt,
};

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

/// A counted check, if the verification is still pending with the checks it was judged on.
const RECORD_CHECK: &str = "UPDATE verifications SET check_count = ?1, status = ?2, updated_at = ?3 \
     WHERE sid = ?4 AND status = 'pending' AND check_count = ?5";

/// A new verification with its first attempt, unless the number has a pending one of this owner
/// (the partial unique index decides).
const INSERT_NEW: &str = "INSERT OR IGNORE INTO verifications (sid, phone_lookup, phone_sealed, \
     channel, status, code_digest, code_sealed, check_count, send_count, created_at, updated_at, \
     expires_at, owner, attempts) VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?6, 0, 1, ?7, ?7, ?8, ?9, ?10)";

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
        write_journal(conn, &new.journal.created)?;
        return Ok(SendOutcome::Created(StoredVerification::created(new, now)));
    }
    let existing = verification(
        conn,
        SELECT_PENDING,
        params![&new.phone_lookup[..], new.owner.as_deref()],
    )?
    .ok_or_else(|| StoreError::internal("a new verification was refused with none pending"))?;
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
            let mut journal = new.journal.resent.clone();
            if let Some(row) = &mut journal.attempt {
                row.verification_sid = Some(existing.sid.as_str().to_owned());
            }
            write_journal(conn, &journal)?;
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
                return Err(StoreError::internal(
                    "a closed verification still blocks a new one",
                ));
            }
            write_journal(conn, &new.journal.created)?;
            Ok(SendOutcome::Created(StoredVerification::created(new, now)))
        }
    }
}

#[async_trait]
impl VerificationStore for SqliteStore {
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
        lookups: &[[u8; 32]],
        owner: Option<&str>,
    ) -> Result<Option<StoredVerification>, StoreError> {
        let lookups = lookups.to_vec();
        let owner = owner.map(str::to_owned);
        self.worker
            .call(Access::Read, move |c| {
                for lookup in &lookups {
                    let found =
                        verification(c, SELECT_PENDING, params![&lookup[..], owner.as_deref()])?;
                    if found.is_some() {
                        return Ok(found);
                    }
                }
                Ok(None)
            })
            .await
    }

    async fn record_check_with(
        &self,
        sid: &VerificationSid,
        update: &CheckUpdate,
        journal: Journal,
    ) -> Result<CheckRecord, StoreError> {
        let sid = sid.clone();
        let update = *update;
        self.worker
            .call(Access::Write, move |c| {
                let n = execute(
                    c,
                    RECORD_CHECK,
                    params![
                        i64::from(update.checks),
                        update.status.as_str(),
                        update.at.as_millis(),
                        sid.as_str(),
                        i64::from(update.expected_checks),
                    ],
                )?;
                if n == 1 {
                    write_journal(c, &journal)?;
                }
                Ok(if n == 1 {
                    CheckRecord::Counted
                } else {
                    CheckRecord::Changed
                })
            })
            .await
    }

    async fn close_with(
        &self,
        sid: &VerificationSid,
        status: VerificationStatus,
        now: Timestamp,
        journal: Journal,
    ) -> Result<bool, StoreError> {
        let sid = sid.clone();
        self.worker
            .call(Access::Write, move |c| {
                let n = execute(
                    c,
                    "UPDATE verifications SET status = ?1, updated_at = ?2 WHERE sid = ?3 AND status = 'pending'",
                    params![status.as_str(), now.as_millis(), sid.as_str()],
                )?;
                if n == 1 {
                    write_journal(c, &journal)?;
                }
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

    async fn purge_verifications(&self, before: Timestamp) -> Result<u64, StoreError> {
        self.worker
            .call(Access::Write, move |c| {
                execute(
                    c,
                    "DELETE FROM verifications WHERE expires_at < ?1",
                    [before.as_millis()],
                )
            })
            .await
    }
}
