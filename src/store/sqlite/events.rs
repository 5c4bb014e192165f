//! The events concern on SQLite: the outbox rows a change's [`Journal`] carries are inserted by
//! [`write_journal`] inside that change's write job (so inside its batch's transaction), and the
//! dispatcher's leases are one `UPDATE … RETURNING` write job. One process owns the file, so no
//! row-level locking is needed: the store's thread runs one job at a time.

use async_trait::async_trait;
use rusqlite::{Connection, Row, params};

use super::attempts::insert_attempt;
use super::worker::Access;
use super::{SqliteStore, db_error, execute};
use crate::domain::Timestamp;
use crate::store::events::{
    DeliveryResult, EventState, EventStore, ExpiredVerification, Journal, OutboxEvent, Replay,
    StoredEvent,
};
use crate::store::verifications::parse_attempts;
use crate::store::{StoreError, corrupt};

/// The name of the expiry sweeper's watermark row.
const EXPIRY: &str = "expiry";

/// Inserts `events` (a row already there, same id and endpoint, is left as it is).
pub(super) fn insert_events(c: &Connection, events: &[OutboxEvent]) -> Result<(), StoreError> {
    for e in events {
        execute(
            c,
            "INSERT INTO event_outbox (id, endpoint, type, subject, subject_created, payload, \
             created_at, next_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7) \
             ON CONFLICT (id, endpoint) DO NOTHING",
            params![
                e.id,
                e.endpoint,
                e.kind,
                e.subject,
                e.subject_created.as_millis(),
                e.payload,
                e.created.as_millis()
            ],
        )?;
    }
    Ok(())
}

/// Writes what `journal` carries, inside the caller's transaction.
pub(super) fn write_journal(c: &Connection, journal: &Journal) -> Result<(), StoreError> {
    insert_events(c, &journal.events)?;
    if let Some(row) = &journal.attempt
        && insert_attempt(c, row)?
    {
        super::console::add_hourly(c, vec![row])?;
    }
    Ok(())
}

/// The columns [`event_from_row`] reads, in its order.
const EVENT_COLUMNS: &str = "seq, id, endpoint, type, subject, payload, created_at, state, tries, \
     next_at, last_error, delivered_at, subject_created";

fn event_from_row(r: &Row<'_>) -> Result<StoredEvent, StoreError> {
    let state: String = r.get(7).map_err(db_error)?;
    Ok(StoredEvent {
        seq: r.get(0).map_err(db_error)?,
        event: OutboxEvent {
            id: r.get(1).map_err(db_error)?,
            endpoint: r.get(2).map_err(db_error)?,
            kind: r.get(3).map_err(db_error)?,
            subject: r.get(4).map_err(db_error)?,
            payload: r.get(5).map_err(db_error)?,
            created: Timestamp::from_millis(r.get(6).map_err(db_error)?),
            subject_created: Timestamp::from_millis(r.get(12).map_err(db_error)?),
        },
        state: EventState::parse(&state).ok_or_else(|| corrupt("event state"))?,
        tries: u32::try_from(r.get::<_, i64>(8).map_err(db_error)?)
            .map_err(|_| corrupt("event tries"))?,
        next_at: Timestamp::from_millis(r.get(9).map_err(db_error)?),
        last_error: r.get(10).map_err(db_error)?,
        delivered_at: r
            .get::<_, Option<i64>>(11)
            .map_err(db_error)?
            .map(Timestamp::from_millis),
    })
}

fn events(
    c: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<StoredEvent>, StoreError> {
    let mut st = c.prepare_cached(sql).map_err(db_error)?;
    let mut rows = st.query(params).map_err(db_error)?;
    let mut found = Vec::new();
    while let Some(r) = rows.next().map_err(db_error)? {
        found.push(event_from_row(r)?);
    }
    Ok(found)
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn write_events(&self, events: Vec<OutboxEvent>) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        self.worker
            .call(Access::Write, move |c| insert_events(c, &events))
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
        let endpoints =
            serde_json::to_string(endpoints).map_err(|e| StoreError::internal(e.to_string()))?;
        let owner = owner.to_owned();
        self.worker
            .call(Access::Write, move |c| {
                let mut leased = events(
                    c,
                    &format!(
                        "UPDATE event_outbox SET lease_until = ?1, leased_by = ?2 WHERE seq IN (\
                         SELECT o.seq FROM event_outbox o INDEXED BY event_outbox_pending \
                         WHERE o.state = 'pending' AND o.seq > ?6 \
                         AND o.next_at <= ?3 AND o.lease_until <= ?3 \
                         AND o.endpoint IN (SELECT value FROM json_each(?4)) \
                         AND NOT EXISTS (SELECT 1 FROM event_outbox p \
                         WHERE p.subject_created = o.subject_created AND p.subject = o.subject \
                         AND p.endpoint = o.endpoint AND p.state = 'pending' AND p.seq < o.seq) \
                         ORDER BY o.seq LIMIT ?5) RETURNING {EVENT_COLUMNS}"
                    ),
                    params![
                        lease_until.as_millis(),
                        owner,
                        now.as_millis(),
                        endpoints,
                        i64::from(limit),
                        after
                    ],
                )?;
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
        let owner = owner.to_owned();
        let results = results.to_vec();
        self.worker
            .call(Access::Write, move |c| {
                for (seq, result) in &results {
                    match result {
                        DeliveryResult::Delivered { at } => execute(
                            c,
                            "UPDATE event_outbox SET state = 'delivered', tries = tries + 1, \
                             delivered_at = ?1, lease_until = 0, leased_by = NULL, \
                             last_error = NULL WHERE seq = ?2 AND leased_by = ?3",
                            params![at.as_millis(), seq, owner],
                        )?,
                        DeliveryResult::Retry { at, error } => execute(
                            c,
                            "UPDATE event_outbox SET tries = tries + 1, next_at = ?1, \
                             last_error = ?2, lease_until = 0, leased_by = NULL \
                             WHERE seq = ?3 AND leased_by = ?4",
                            params![at.as_millis(), error, seq, owner],
                        )?,
                        DeliveryResult::Dead { error } => execute(
                            c,
                            "UPDATE event_outbox SET state = 'dead', tries = tries + 1, \
                             last_error = ?1, lease_until = 0, leased_by = NULL \
                             WHERE seq = ?2 AND leased_by = ?3",
                            params![error, seq, owner],
                        )?,
                    };
                }
                Ok(())
            })
            .await
    }

    async fn list_events(
        &self,
        state: Option<EventState>,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.worker
            .call(Access::Read, move |c| {
                events(
                    c,
                    &format!(
                        "SELECT {EVENT_COLUMNS} FROM event_outbox WHERE (?1 IS NULL OR state = ?1) \
                         ORDER BY seq DESC LIMIT ?2"
                    ),
                    params![state.map(EventState::as_str), i64::from(limit)],
                )
            })
            .await
    }

    async fn replay_events(&self, which: &Replay, now: Timestamp) -> Result<u64, StoreError> {
        let which = which.clone();
        self.worker
            .call(Access::Write, move |c| match &which {
                Replay::Id(id) => execute(
                    c,
                    "UPDATE event_outbox SET state = 'pending', tries = 0, next_at = ?1, \
                     lease_until = 0, leased_by = NULL, delivered_at = NULL WHERE id = ?2",
                    params![now.as_millis(), id],
                ),
                Replay::AllDead => execute(
                    c,
                    "UPDATE event_outbox SET state = 'pending', tries = 0, next_at = ?1, \
                     lease_until = 0, leased_by = NULL WHERE state = 'dead'",
                    params![now.as_millis()],
                ),
            })
            .await
    }

    async fn count_pending_events(&self) -> Result<u64, StoreError> {
        self.worker
            .call(Access::Read, |c| {
                c.prepare_cached("SELECT count(*) FROM event_outbox WHERE state = 'pending'")
                    .and_then(|mut st| st.query_row([], |r| r.get::<_, i64>(0)))
                    .map(|n| n.max(0) as u64)
                    .map_err(db_error)
            })
            .await
    }

    async fn sweep_watermark(&self, now: Timestamp) -> Result<Timestamp, StoreError> {
        self.worker
            .call(Access::Write, move |c| {
                execute(
                    c,
                    "INSERT INTO event_sweeps (name, swept_until) VALUES (?1, ?2) \
                     ON CONFLICT (name) DO NOTHING",
                    params![EXPIRY, now.as_millis()],
                )?;
                // Cached: the sweeper asks every second.
                c.prepare_cached("SELECT swept_until FROM event_sweeps WHERE name = ?1")
                    .and_then(|mut st| st.query_row([EXPIRY], |r| r.get::<_, i64>(0)))
                    .map(Timestamp::from_millis)
                    .map_err(db_error)
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
        self.worker
            .call(Access::Read, move |c| {
                let mut st = c
                    .prepare_cached(
                        "SELECT v.sid, v.phone_sealed, v.channel, v.attempts, v.created_at, \
                         v.expires_at, (SELECT a.service_sid FROM verification_attempts a \
                         WHERE a.verification_sid = v.sid AND a.kind = 'send' ORDER BY a.seq LIMIT 1) \
                         FROM verifications v WHERE v.expires_at > ?1 AND v.expires_at <= ?2 \
                         AND v.status IN ('pending', 'expired') AND v.check_count < ?3 \
                         ORDER BY v.expires_at LIMIT ?4",
                    )
                    .map_err(db_error)?;
                let mut rows = st
                    .query(params![
                        after.as_millis(),
                        until.as_millis(),
                        i64::from(max_checks),
                        i64::from(limit)
                    ])
                    .map_err(db_error)?;
                let mut found = Vec::new();
                while let Some(r) = rows.next().map_err(db_error)? {
                    found.push(ExpiredVerification {
                        sid: r.get(0).map_err(db_error)?,
                        phone_sealed: r.get(1).map_err(db_error)?,
                        channel: r.get(2).map_err(db_error)?,
                        send_attempts: parse_attempts(&r.get::<_, String>(3).map_err(db_error)?)?,
                        created: Timestamp::from_millis(r.get(4).map_err(db_error)?),
                        expires_at: Timestamp::from_millis(r.get(5).map_err(db_error)?),
                        service_sid: r.get(6).map_err(db_error)?,
                    });
                }
                Ok(found)
            })
            .await
    }

    async fn advance_sweep(
        &self,
        from: Timestamp,
        to: Timestamp,
        events: Vec<OutboxEvent>,
    ) -> Result<bool, StoreError> {
        self.worker
            .call(Access::Write, move |c| {
                let moved = execute(
                    c,
                    "UPDATE event_sweeps SET swept_until = ?1 WHERE name = ?2 AND swept_until = ?3",
                    params![to.as_millis(), EXPIRY, from.as_millis()],
                )?;
                if moved == 1 {
                    insert_events(c, &events)?;
                }
                Ok(moved == 1)
            })
            .await
    }

    async fn fail_attempt(&self, attempt_sid: &str) -> Result<(), StoreError> {
        let sid = attempt_sid.to_owned();
        self.worker
            .call(Access::Write, move |c| {
                execute(
                    c,
                    "UPDATE verification_attempts SET sid = NULL, verification_sid = NULL, \
                     status = 'failed' WHERE sid = ?1",
                    [&sid],
                )
                .map(|_| ())
            })
            .await
    }

    async fn purge_events(&self, before: Timestamp) -> Result<u64, StoreError> {
        self.worker
            .call(Access::Write, move |c| {
                // Rows are numbered in the order they are written: everything before the first
                // row written at or after `before` is older (found walking from the oldest, so
                // the walk costs about what is deleted).
                execute(
                    c,
                    "DELETE FROM event_outbox WHERE seq < COALESCE(\
                     (SELECT seq FROM event_outbox WHERE created_at >= ?1 ORDER BY seq LIMIT 1), \
                     (SELECT max(seq) + 1 FROM event_outbox), 0) \
                     AND state IN ('delivered', 'dead')",
                    [before.as_millis()],
                )
            })
            .await
    }
}
