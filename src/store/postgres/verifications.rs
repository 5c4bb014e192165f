//! The verifications concern on PostgreSQL: a send is one transaction that locks the number's
//! pending row (`SELECT … FOR UPDATE`), unless the group inserter (`batch`) inserted it. A
//! check is two statements: the number's pending verification (its attempts aggregated into
//! the same row) and, once the engine has judged it, a compare-and-set `UPDATE`. Send attempts
//! are rows of `send_attempts`.

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use super::events::write_journal;
use super::{PostgresStore, batch, db_error};
use crate::domain::{
    CheckUpdate, Lifecycle, LiveState, SendAttempt, Timestamp, VerificationSid, VerificationStatus,
};
use crate::store::verifications::parse_attempts;
use crate::store::{
    CheckRecord, Journal, NewVerification, RekeyOutcome, SealedVerification, SendOutcome,
    StoreError, StoredVerification, VerificationStore, corrupt,
};

/// The columns [`from_row`] reads, in its order (a macro so queries stay `&'static str`), for
/// queries on `verifications`: the last is the row's send attempts in their text form
/// ([`parse_attempts`]), so one statement reads a whole verification.
macro_rules! columns {
    () => {
        "sid, phone_sealed, channel, status, code_digest, code_sealed, check_count, \
         created_at, updated_at, expires_at, \
         COALESCE((SELECT string_agg(a.sid || ' ' || a.channel || ' ' || a.sent_at, ',' \
         ORDER BY a.sent_at, a.seq) FROM send_attempts a \
         WHERE a.verification_sid = verifications.sid), '')"
    };
}

impl PostgresStore {
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
            let existing = from_row(&row)?;
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
                    let mut journal = new.journal.resent.clone();
                    if let Some(row) = &mut journal.attempt {
                        row.verification_sid = Some(existing.sid.as_str().to_owned());
                    }
                    write_journal(&mut tx, &journal).await?;
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
        write_journal(&mut tx, &new.journal.created).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(Some(SendOutcome::Created(StoredVerification::created(
            new, now,
        ))))
    }

    async fn get_inner(
        &self,
        sid: &VerificationSid,
    ) -> Result<Option<StoredVerification>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM verifications WHERE sid = $1"
        ))
        .bind(sid.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.as_ref().map(from_row).transpose()
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
        send_attempts: parse_attempts(&row.try_get::<String, _>(10).map_err(db_error)?)?,
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
impl VerificationStore for PostgresStore {
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
                None => Err(StoreError::unavailable(
                    "concurrent sends to one number kept conflicting; retry",
                )),
            }
        })
        .await
    }

    async fn find_pending(
        &self,
        lookups: &[[u8; 32]],
        owner: Option<&str>,
    ) -> Result<Option<StoredVerification>, StoreError> {
        self.bounded(async {
            let lookups: Vec<&[u8]> = lookups.iter().map(|l| &l[..]).collect();
            let row = sqlx::query(concat!(
                "SELECT ",
                columns!(),
                " FROM verifications WHERE phone_lookup = ANY($1) AND status = 'pending' \
                 AND owner IS NOT DISTINCT FROM $2 ORDER BY array_position($1, phone_lookup) \
                 LIMIT 1"
            ))
            .bind(lookups)
            .bind(owner)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
            row.as_ref().map(from_row).transpose()
        })
        .await
    }

    async fn record_check_with(
        &self,
        sid: &VerificationSid,
        update: &CheckUpdate,
        journal: Journal,
    ) -> Result<CheckRecord, StoreError> {
        self.bounded(async {
            let statement = sqlx::query(
                "UPDATE verifications SET check_count = $1, status = $2, updated_at = $3 \
                 WHERE sid = $4 AND status = 'pending' AND check_count = $5",
            )
            .bind(i64::from(update.checks))
            .bind(update.status.as_str())
            .bind(update.at.as_millis())
            .bind(sid.as_str())
            .bind(i64::from(update.expected_checks));
            let counted = if journal.is_empty() {
                statement
                    .execute(&self.pool)
                    .await
                    .map_err(db_error)?
                    .rows_affected()
                    == 1
            } else {
                let mut tx = self.pool.begin().await.map_err(db_error)?;
                let counted = statement
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?
                    .rows_affected()
                    == 1;
                if counted {
                    write_journal(&mut tx, &journal).await?;
                }
                tx.commit().await.map_err(db_error)?;
                counted
            };
            Ok(if counted {
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
        self.bounded(async {
            let statement = sqlx::query(
                "UPDATE verifications SET status = $1, updated_at = $2 WHERE sid = $3 AND status = 'pending'",
            )
            .bind(status.as_str())
            .bind(now.as_millis())
            .bind(sid.as_str());
            let mut tx = self.pool.begin().await.map_err(db_error)?;
            let closed = statement.execute(&mut *tx).await.map_err(db_error)?.rows_affected() == 1;
            if closed {
                write_journal(&mut tx, &journal).await?;
            }
            tx.commit().await.map_err(db_error)?;
            Ok(closed)
        })
        .await
    }

    async fn get(&self, sid: &VerificationSid) -> Result<Option<StoredVerification>, StoreError> {
        self.bounded(self.get_inner(sid)).await
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

    async fn purge_verifications(&self, before: Timestamp) -> Result<u64, StoreError> {
        self.bounded(async {
            let done = sqlx::query("DELETE FROM verifications WHERE expires_at < $1")
                .bind(before.as_millis())
                .execute(&self.pool)
                .await
                .map_err(db_error)?;
            Ok(done.rows_affected())
        })
        .await
    }
}
