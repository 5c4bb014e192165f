//! The events concern on PostgreSQL: the outbox rows a change's [`Journal`] carries are inserted
//! inside that change's transaction ([`write_journal`]; a new number's first send writes them in
//! the group insert's statement, see `batch`). Replicas lease due rows with
//! `FOR UPDATE SKIP LOCKED`, so two never lease one row at once, and a lease is a time
//! (`lease_until`): a replica killed mid-delivery holds its rows only until then.

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use super::{PostgresStore, db_error};
use crate::domain::Timestamp;
use crate::store::events::{
    DeliveryResult, EventState, EventStore, ExpiredVerification, Journal, OutboxEvent, Replay,
    StoredEvent, parse_row_id, row_id,
};
use crate::store::verifications::parse_attempts;
use crate::store::{AttemptRecord, StoreError, corrupt};

/// The name of the expiry sweeper's watermark row.
const EXPIRY: &str = "expiry";

/// The columns [`event_from_row`] reads, in its order.
macro_rules! event_columns {
    () => {
        "seq, id, endpoint, type, subject, payload, created_at, state, tries, next_at, \
         last_error, delivered_at, subject_created"
    };
}

/// Inserts `events`, each a new row (its id is its number: see [`row_id`]).
pub(super) async fn insert_events(
    conn: &mut PgConnection,
    events: &[OutboxEvent],
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let col = |f: fn(&OutboxEvent) -> &str| events.iter().map(f).collect::<Vec<&str>>();
    sqlx::query(
        "INSERT INTO event_outbox (endpoint, type, subject, payload, created_at, next_at, \
         subject_created) \
         SELECT endpoint, type, subject, payload, created_at, created_at, subject_created FROM \
         UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], \
         $6::bigint[]) AS t(endpoint, type, subject, payload, created_at, subject_created)",
    )
    .bind(col(|e| &e.endpoint))
    .bind(col(|e| &e.kind))
    .bind(col(|e| &e.subject))
    .bind(col(|e| &e.payload))
    .bind(
        events
            .iter()
            .map(|e| e.created.as_millis())
            .collect::<Vec<i64>>(),
    )
    .bind(
        events
            .iter()
            .map(|e| e.subject_created.as_millis())
            .collect::<Vec<i64>>(),
    )
    .execute(&mut *conn)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Appends one attempt-log row and counts it in its hour (a row whose `sid` is already there
/// is left as it is).
async fn insert_attempt(conn: &mut PgConnection, r: &AttemptRecord) -> Result<(), StoreError> {
    super::attempts::insert_query(std::slice::from_ref(r))
        .build()
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Writes what `journal` carries, inside the caller's transaction.
pub(super) async fn write_journal(
    conn: &mut PgConnection,
    journal: &Journal,
) -> Result<(), StoreError> {
    insert_events(conn, &journal.events).await?;
    if let Some(row) = &journal.attempt {
        insert_attempt(conn, row).await?;
    }
    Ok(())
}

fn event_from_row(r: &PgRow) -> Result<StoredEvent, StoreError> {
    let state: String = r.try_get(7).map_err(db_error)?;
    let seq = r.try_get(0).map_err(db_error)?;
    let created = Timestamp::from_millis(r.try_get(6).map_err(db_error)?);
    Ok(StoredEvent {
        seq,
        id: r
            .try_get::<Option<String>, _>(1)
            .map_err(db_error)?
            .unwrap_or_else(|| row_id(created, seq)),
        event: OutboxEvent {
            endpoint: r.try_get(2).map_err(db_error)?,
            kind: r.try_get(3).map_err(db_error)?,
            subject: r.try_get(4).map_err(db_error)?,
            payload: r.try_get(5).map_err(db_error)?,
            created,
            subject_created: Timestamp::from_millis(r.try_get(12).map_err(db_error)?),
        },
        state: EventState::parse(&state).ok_or_else(|| corrupt("event state"))?,
        tries: u32::try_from(r.try_get::<i32, _>(8).map_err(db_error)?)
            .map_err(|_| corrupt("event tries"))?,
        next_at: Timestamp::from_millis(r.try_get(9).map_err(db_error)?),
        last_error: r.try_get(10).map_err(db_error)?,
        delivered_at: r
            .try_get::<Option<i64>, _>(11)
            .map_err(db_error)?
            .map(Timestamp::from_millis),
    })
}

#[async_trait]
impl EventStore for PostgresStore {
    async fn write_events(&self, events: Vec<OutboxEvent>) -> Result<(), StoreError> {
        self.bounded(async {
            let mut conn = self.pool.acquire().await.map_err(db_error)?;
            insert_events(&mut conn, &events).await
        })
        .await
    }

    async fn lease_events(
        &self,
        endpoints: &[String],
        now: Timestamp,
        lease_until: Timestamp,
        owner: &str,
        limit: u32,
        after: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.bounded(async {
            let rows = sqlx::query(concat!(
                "WITH due AS (SELECT o.seq FROM event_outbox o WHERE o.state = 'pending' AND o.seq > $6 \
                 AND o.next_at <= $3 AND o.lease_until <= $3 AND o.endpoint = ANY($4) \
                 AND NOT EXISTS (SELECT 1 FROM event_outbox p WHERE p.subject_created = \
                 o.subject_created AND p.subject = o.subject AND p.endpoint = o.endpoint AND p.state = 'pending' AND p.seq < o.seq) \
                 ORDER BY o.seq LIMIT $5 FOR UPDATE SKIP LOCKED) \
                 UPDATE event_outbox SET lease_until = $1, leased_by = $2 FROM due \
                 WHERE event_outbox.seq = due.seq RETURNING ",
                "event_outbox.seq, id, endpoint, type, subject, payload, created_at, state, \
                 tries, next_at, last_error, delivered_at, event_outbox.subject_created"
            ))
            .bind(lease_until.as_millis())
            .bind(owner)
            .bind(now.as_millis())
            .bind(endpoints)
            .bind(i64::from(limit))
            .bind(after)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
            let mut leased = rows
                .iter()
                .map(event_from_row)
                .collect::<Result<Vec<_>, _>>()?;
            leased.sort_by_key(|e| e.seq);
            Ok(leased)
        })
        .await
    }

    async fn finish_events(
        &self,
        owner: &str,
        results: &[(i64, DeliveryResult)],
    ) -> Result<(), StoreError> {
        if results.is_empty() {
            return Ok(());
        }
        // One statement for the whole batch: `state` is the row's new state (`pending` for a
        // retry), `at` its delivery time or next try, `error` the try's error.
        let mut seqs = Vec::with_capacity(results.len());
        let mut states = Vec::with_capacity(results.len());
        let mut ats = Vec::with_capacity(results.len());
        let mut errors: Vec<Option<&str>> = Vec::with_capacity(results.len());
        for (seq, result) in results {
            seqs.push(*seq);
            match result {
                DeliveryResult::Delivered { at } => {
                    states.push("delivered");
                    ats.push(Some(at.as_millis()));
                    errors.push(None);
                }
                DeliveryResult::Retry { at, error } => {
                    states.push("pending");
                    ats.push(Some(at.as_millis()));
                    errors.push(Some(error.as_str()));
                }
                DeliveryResult::Dead { error } => {
                    states.push("dead");
                    ats.push(None);
                    errors.push(Some(error.as_str()));
                }
            }
        }
        self.bounded(async {
            sqlx::query(
                "UPDATE event_outbox o SET state = r.state, tries = o.tries + 1, \
                 delivered_at = CASE WHEN r.state = 'delivered' THEN r.at ELSE o.delivered_at END, \
                 next_at = CASE WHEN r.state = 'pending' THEN r.at ELSE o.next_at END, \
                 last_error = r.error, lease_until = 0, leased_by = NULL \
                 FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[]) \
                 AS r(seq, state, at, error) \
                 WHERE o.seq = r.seq AND o.leased_by = $5",
            )
            .bind(&seqs)
            .bind(&states)
            .bind(&ats)
            .bind(&errors)
            .bind(owner)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
            Ok(())
        })
        .await
    }

    async fn list_events(
        &self,
        state: Option<EventState>,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.bounded(async {
            let rows = sqlx::query(concat!(
                "SELECT ",
                event_columns!(),
                " FROM event_outbox WHERE ($1::text IS NULL OR state = $1) ORDER BY seq DESC LIMIT $2"
            ))
            .bind(state.map(EventState::as_str))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
            rows.iter().map(event_from_row).collect()
        })
        .await
    }

    async fn replay_events(&self, which: &Replay, now: Timestamp) -> Result<u64, StoreError> {
        self.bounded(async {
            let done = match which {
                Replay::Id(id) => match parse_row_id(id) {
                    Some((created, seq)) => sqlx::query(
                        "UPDATE event_outbox SET state = 'pending', tries = 0, next_at = $1, \
                         lease_until = 0, leased_by = NULL, delivered_at = NULL \
                         WHERE seq = $2 AND created_at = $3 AND id IS NULL",
                    )
                    .bind(now.as_millis())
                    .bind(seq)
                    .bind(created.as_millis()),
                    // An older row's stored id (every endpoint's row of its event).
                    None => sqlx::query(
                        "UPDATE event_outbox SET state = 'pending', tries = 0, next_at = $1, \
                         lease_until = 0, leased_by = NULL, delivered_at = NULL \
                         WHERE id = $2 AND id IS NOT NULL",
                    )
                    .bind(now.as_millis())
                    .bind(id),
                },
                Replay::AllDead => sqlx::query(
                    "UPDATE event_outbox SET state = 'pending', tries = 0, next_at = $1, \
                     lease_until = 0, leased_by = NULL WHERE state = 'dead'",
                )
                .bind(now.as_millis()),
            }
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
            Ok(done.rows_affected())
        })
        .await
    }

    async fn count_pending_events(&self) -> Result<u64, StoreError> {
        self.bounded(async {
            let n: i64 = sqlx::query("SELECT count(*) FROM event_outbox WHERE state = 'pending'")
                .fetch_one(&self.pool)
                .await
                .map_err(db_error)?
                .try_get(0)
                .map_err(db_error)?;
            Ok(n.max(0) as u64)
        })
        .await
    }

    async fn sweep_watermark(&self, now: Timestamp) -> Result<Timestamp, StoreError> {
        self.bounded(async {
            sqlx::query(
                "INSERT INTO event_sweeps (name, swept_until) VALUES ($1, $2) \
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(EXPIRY)
            .bind(now.as_millis())
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
            let at: i64 = sqlx::query("SELECT swept_until FROM event_sweeps WHERE name = $1")
                .bind(EXPIRY)
                .fetch_one(&self.pool)
                .await
                .map_err(db_error)?
                .try_get(0)
                .map_err(db_error)?;
            Ok(Timestamp::from_millis(at))
        })
        .await
    }

    async fn expired_between(
        &self,
        after: Timestamp,
        until: Timestamp,
        max_checks: u32,
        limit: u32,
    ) -> Result<Vec<ExpiredVerification>, StoreError> {
        self.bounded(async {
            let rows = sqlx::query(
                "SELECT v.sid, v.phone_sealed, v.channel, \
                 COALESCE((SELECT string_agg(a.sid || ' ' || a.channel || ' ' || a.sent_at, ',' \
                 ORDER BY a.sent_at, a.seq) FROM send_attempts a WHERE a.verification_sid = v.sid), ''), \
                 v.created_at, v.expires_at, (SELECT l.service_sid FROM verification_attempts l \
                 WHERE l.verification_sid = v.sid AND l.kind = 'send' ORDER BY l.seq LIMIT 1) \
                 FROM verifications v WHERE v.expires_at > $1 AND v.expires_at <= $2 \
                 AND v.status IN ('pending', 'expired') AND v.check_count < $3 \
                 ORDER BY v.expires_at LIMIT $4",
            )
            .bind(after.as_millis())
            .bind(until.as_millis())
            .bind(i64::from(max_checks))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
            rows.iter()
                .map(|r| {
                    Ok(ExpiredVerification {
                        sid: r.try_get(0).map_err(db_error)?,
                        phone_sealed: r.try_get(1).map_err(db_error)?,
                        channel: r.try_get(2).map_err(db_error)?,
                        send_attempts: parse_attempts(&r.try_get::<String, _>(3).map_err(db_error)?)?,
                        created: Timestamp::from_millis(r.try_get(4).map_err(db_error)?),
                        expires_at: Timestamp::from_millis(r.try_get(5).map_err(db_error)?),
                        service_sid: r.try_get(6).map_err(db_error)?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn advance_sweep(
        &self,
        from: Timestamp,
        to: Timestamp,
        events: Vec<OutboxEvent>,
    ) -> Result<bool, StoreError> {
        self.bounded(async {
            let mut tx = self.pool.begin().await.map_err(db_error)?;
            let moved = sqlx::query(
                "UPDATE event_sweeps SET swept_until = $1 WHERE name = $2 AND swept_until = $3",
            )
            .bind(to.as_millis())
            .bind(EXPIRY)
            .bind(from.as_millis())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected();
            if moved != 1 {
                tx.rollback().await.map_err(db_error)?;
                return Ok(false);
            }
            insert_events(&mut tx, &events).await?;
            tx.commit().await.map_err(db_error)?;
            Ok(true)
        })
        .await
    }

    async fn fail_attempt(&self, attempt_sid: &str) -> Result<(), StoreError> {
        self.bounded(async {
            sqlx::query(
                "UPDATE verification_attempts SET sid = NULL, verification_sid = NULL, \
                 status = 'failed' WHERE sid = $1",
            )
            .bind(attempt_sid)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
            Ok(())
        })
        .await
    }

    async fn purge_events(&self, before: Timestamp) -> Result<u64, StoreError> {
        self.bounded(async {
            let done = sqlx::query(
                // Rows are numbered in the order they are written (one sequence for every
                // replica): everything before the first row written at or after `before` is
                // older.
                "DELETE FROM event_outbox WHERE seq < COALESCE(\
                 (SELECT seq FROM event_outbox WHERE created_at >= $1 ORDER BY seq LIMIT 1), \
                 (SELECT max(seq) FROM event_outbox), 0) AND state IN ('delivered', 'dead')",
            )
            .bind(before.as_millis())
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
            Ok(done.rows_affected())
        })
        .await
    }
}
