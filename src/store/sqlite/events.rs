//! The events concern on SQLite: the outbox rows a change's [`Journal`] carries are inserted by
//! [`write_journal`] inside that change's write job (so inside its batch's transaction), and the
//! dispatcher's leases are one write job ([`lease`]). One process owns the file, so no row-level
//! locking is needed: the store's thread runs one job at a time.
//!
//! A request pays for the outbox row and one index entry (`event_outbox_pending`, the rows to
//! deliver in `seq` order), nothing more: the row's id is its own number ([`row_id`]), and a
//! subject's order is kept with an index of the rows the dispatcher has touched, which only the
//! dispatcher writes (see [`lease`]).

use async_trait::async_trait;
use rusqlite::{Connection, Row, params};

use super::attempts::insert_attempt;
use super::worker::Access;
use super::{SqliteStore, db_error, execute};
use crate::domain::Timestamp;
use crate::store::events::{
    DeliveryResult, EventState, EventStore, ExpiredVerification, Journal, OutboxEvent, Replay,
    StoredEvent, parse_row_id, row_id,
};
use crate::store::verifications::parse_attempts;
use crate::store::{StoreError, corrupt};

/// The name of the expiry sweeper's watermark row.
const EXPIRY: &str = "expiry";

/// Inserts `events`, each a new row (its id is its number: see [`row_id`]).
pub(super) fn insert_events(c: &Connection, events: &[OutboxEvent]) -> Result<(), StoreError> {
    for e in events {
        execute(
            c,
            "INSERT INTO event_outbox (endpoint, type, subject, subject_created, payload, \
             created_at, next_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
            params![
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
    let seq = r.get(0).map_err(db_error)?;
    let created = Timestamp::from_millis(r.get(6).map_err(db_error)?);
    Ok(StoredEvent {
        seq,
        id: r
            .get::<_, Option<String>>(1)
            .map_err(db_error)?
            .unwrap_or_else(|| row_id(created, seq)),
        event: OutboxEvent {
            endpoint: r.get(2).map_err(db_error)?,
            kind: r.get(3).map_err(db_error)?,
            subject: r.get(4).map_err(db_error)?,
            payload: r.get(5).map_err(db_error)?,
            created,
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

/// Leases up to `limit` due rows of `endpoints` after `after` until `lease_until`, as `owner`
/// (see `EventStore::lease_events`), walking the pending rows in `seq` order.
///
/// A subject's order, without an index that every request would pay for: a row is leased only
/// if it is the first of its subject and endpoint that this walk meets, and no earlier row of
/// theirs is *held*. Held rows are in `event_outbox_held` (pending, and leased, tried, or
/// waiting: `lease_until` -1). Only the dispatcher makes a row held, so a request's insert never
/// touches that index. A row this walk passes over (a later one of a subject, or not due) is
/// marked waiting, so that a later walk that starts after it (`after`) still sees it: every
/// pending row before a walk's start has been walked before, and so is leased, tried, waiting,
/// or delivered.
fn lease(
    c: &Connection,
    endpoints: &[String],
    now: Timestamp,
    lease_until: Timestamp,
    owner: &str,
    limit: usize,
    after: i64,
) -> Result<Vec<StoredEvent>, StoreError> {
    let now_ms = now.as_millis();
    let mut take = Vec::new();
    let mut wait = Vec::new();
    {
        let mut walk = c
            .prepare_cached(
                "SELECT seq, subject, endpoint, tries, next_at, lease_until \
                 FROM event_outbox INDEXED BY event_outbox_pending \
                 WHERE state = 'pending' AND seq > ?1 ORDER BY seq",
            )
            .map_err(db_error)?;
        let mut held = c
            .prepare_cached(
                "SELECT 1 FROM event_outbox INDEXED BY event_outbox_held \
                 WHERE subject = ?1 AND endpoint = ?2 AND seq < ?3 \
                 AND state = 'pending' AND (tries > 0 OR lease_until <> 0) LIMIT 1",
            )
            .map_err(db_error)?;
        let mut met = std::collections::HashSet::new();
        let mut rows = walk.query([after]).map_err(db_error)?;
        while take.len() < limit
            && let Some(r) = rows.next().map_err(db_error)?
        {
            let endpoint: String = r.get(2).map_err(db_error)?;
            if !endpoints.contains(&endpoint) {
                continue;
            }
            let seq: i64 = r.get(0).map_err(db_error)?;
            let subject: String = r.get(1).map_err(db_error)?;
            let tries: i64 = r.get(3).map_err(db_error)?;
            let next_at: i64 = r.get(4).map_err(db_error)?;
            let leased: i64 = r.get(5).map_err(db_error)?;
            let first = met.insert((subject.clone(), endpoint.clone()));
            let due = next_at <= now_ms && leased <= now_ms;
            if first
                && due
                && !held
                    .exists(params![subject, endpoint, seq])
                    .map_err(db_error)?
            {
                take.push(seq);
            } else if tries == 0 && leased == 0 {
                wait.push(seq);
            }
        }
    }
    for seq in wait {
        execute(
            c,
            "UPDATE event_outbox SET lease_until = -1 WHERE seq = ?1 AND lease_until = 0",
            [seq],
        )?;
    }
    let mut leased = Vec::with_capacity(take.len());
    for seq in take {
        leased.extend(events(
            c,
            &format!(
                "UPDATE event_outbox SET lease_until = ?1, leased_by = ?2 WHERE seq = ?3 \
                 RETURNING {EVENT_COLUMNS}"
            ),
            params![lease_until.as_millis(), owner, seq],
        )?);
    }
    Ok(leased)
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
        let endpoints = endpoints.to_vec();
        let owner = owner.to_owned();
        self.worker
            .call(Access::Write, move |c| {
                lease(
                    c,
                    &endpoints,
                    now,
                    lease_until,
                    &owner,
                    limit as usize,
                    after,
                )
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
                // A replayed row is held (`lease_until` -1, see `lease`): a later event of its
                // subject waits for it, as for any earlier row.
                Replay::Id(id) => match parse_row_id(id) {
                    Some((created, seq)) => execute(
                        c,
                        "UPDATE event_outbox SET state = 'pending', tries = 0, next_at = ?1, \
                         lease_until = -1, leased_by = NULL, delivered_at = NULL \
                         WHERE seq = ?2 AND created_at = ?3 AND id IS NULL",
                        params![now.as_millis(), seq, created.as_millis()],
                    ),
                    None => execute(
                        c,
                        "UPDATE event_outbox INDEXED BY event_outbox_legacy_id SET state = 'pending', \
                         tries = 0, next_at = ?1, lease_until = -1, leased_by = NULL, \
                         delivered_at = NULL WHERE id = ?2 AND id IS NOT NULL",
                        params![now.as_millis(), id],
                    ),
                },
                Replay::AllDead => execute(
                    c,
                    "UPDATE event_outbox SET state = 'pending', tries = 0, next_at = ?1, \
                     lease_until = -1, leased_by = NULL WHERE state = 'dead'",
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
                // the walk costs about what is deleted). The newest row always stays: SQLite
                // numbers a new row after the highest one left, and a number used again would
                // fall behind the dispatcher's cursor (see `lease`) and repeat an old id.
                execute(
                    c,
                    "DELETE FROM event_outbox WHERE seq < COALESCE(\
                     (SELECT seq FROM event_outbox WHERE created_at >= ?1 ORDER BY seq LIMIT 1), \
                     (SELECT max(seq) FROM event_outbox), 0) \
                     AND state IN ('delivered', 'dead')",
                    [before.as_millis()],
                )
            })
            .await
    }
}
