//! The verifications concern on SQLite. A send is one `INSERT OR IGNORE` on the partial unique
//! index of pending verifications per (number, owner) when the number has none (the common
//! case), else the resend/close rules in the same transaction; a check
//! ([`VerificationStore::check_pending`]) is one job that finds the number's pending
//! verification, has the engine judge it and counts it with a conditional `UPDATE … RETURNING`.
//! Send attempts live inline, in the row's `attempts` column.

use async_trait::async_trait;
use rusqlite::{Connection, Row, params};

use super::worker::Access;
use super::{SqliteStore, corrupt, db_error, execute};
use crate::domain::{
    AttemptSid, Channel, Lifecycle, LiveState, SendAttempt, Timestamp, VerificationSid,
    VerificationStatus,
};
use crate::store::{
    CheckRecord, Judge, NewVerification, PendingCheck, RekeyOutcome, SealedVerification,
    SendOutcome, StoreError, StoredVerification, VerificationStore,
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
