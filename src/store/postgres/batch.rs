//! Group insert of new verifications. Under load most sends are a new number's first, each one
//! statement; but each statement is also a commit (a WAL flush) and, in sqlx 0.9, a ping of the
//! connection when it goes back to the pool. Sends that arrive together are inserted by one
//! statement instead: a few tasks take every send waiting (up to [`MAX_BATCH`]) and insert them
//! with `INSERT … SELECT FROM UNNEST(…) ON CONFLICT DO NOTHING`, the attempts in the same
//! statement, in the order of their numbers' digests (so two groups never deadlock). Each
//! caller learns whether its row went in; one that did not (the number already has a pending
//! verification, perhaps from the same batch) takes the transactional path as before. A
//! statement error that is not an outage (a refused row, a deadlock) re-runs each send of the
//! batch alone, so only the failing one sees it; an outage answers the whole batch at once.

use std::collections::HashSet;
use std::sync::Arc;

use sqlx::{PgPool, Row as _};
use tokio::sync::{Mutex, mpsc, oneshot};

use super::{db_error, is_outage};
use crate::domain::Timestamp;
use crate::store::{AttemptRecord, NewVerification, OutboxEvent, StoreError};

/// Most sends in one statement.
const MAX_BATCH: usize = 256;
/// Tasks inserting at once: while one statement runs, the next batch gathers.
const TASKS: usize = 2;
/// Sends waiting for a task.
const QUEUE: usize = 4096;

/// One new verification, its first attempt included, as bound to the statement.
struct NewRow {
    sid: String,
    phone_lookup: Vec<u8>,
    phone_sealed: Vec<u8>,
    channel: &'static str,
    code_digest: Vec<u8>,
    code_sealed: Vec<u8>,
    created_at: i64,
    expires_at: i64,
    owner: Option<String>,
    attempt_sid: String,
    attempt_channel: &'static str,
    sent_at: i64,
    /// What a new verification writes beside itself (its journal): inserted by the same
    /// statement, only for the rows that went in.
    events: Vec<OutboxEvent>,
    log: Option<AttemptRecord>,
}

impl NewRow {
    fn new(new: &NewVerification, now: Timestamp) -> Self {
        Self {
            sid: new.sid.as_str().to_owned(),
            phone_lookup: new.phone_lookup.to_vec(),
            phone_sealed: new.phone_sealed.clone(),
            channel: new.channel.as_str(),
            code_digest: new.code_digest.to_vec(),
            code_sealed: new.code_sealed.clone(),
            created_at: now.as_millis(),
            expires_at: new.expires_at.as_millis(),
            owner: new.owner.clone(),
            attempt_sid: new.attempt.sid.as_str().to_owned(),
            attempt_channel: new.attempt.channel.as_str(),
            sent_at: new.attempt.time.as_millis(),
            events: new.journal.created.events.clone(),
            log: new.journal.created.attempt.clone(),
        }
    }
}

struct Job {
    row: NewRow,
    /// Whether the row went in.
    reply: oneshot::Sender<Result<bool, StoreError>>,
}

/// The handle the store inserts through; the tasks end when it is dropped.
pub(super) struct Inserter {
    jobs: mpsc::Sender<Job>,
}

impl Inserter {
    /// Starts the inserting tasks on the current runtime.
    pub fn spawn(pool: PgPool) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE);
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..TASKS {
            tokio::spawn(serve(pool.clone(), Arc::clone(&queue)));
        }
        Self { jobs }
    }

    /// Inserts `new` as a pending verification unless the number already has one (for the
    /// same owner): whether it went in.
    pub async fn insert(&self, new: &NewVerification, now: Timestamp) -> Result<bool, StoreError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || StoreError::unavailable("the PostgreSQL inserter has stopped");
        self.jobs
            .send(Job {
                row: NewRow::new(new, now),
                reply,
            })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn serve(pool: PgPool, queue: Arc<Mutex<mpsc::Receiver<Job>>>) {
    loop {
        let mut batch = {
            let mut queue = queue.lock().await;
            let Some(first) = queue.recv().await else {
                return;
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            batch
        };
        // A caller that gave up (its deadline passed) must not find its send done later.
        batch.retain(|job| !job.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        // Every group takes the numbers' index entries in one global order, so two groups
        // running at once wait for each other at most one way, never in a deadlock.
        batch.sort_by(|a, b| {
            (&a.row.phone_lookup, &a.row.owner).cmp(&(&b.row.phone_lookup, &b.row.owner))
        });
        let rows: Vec<&NewRow> = batch.iter().map(|job| &job.row).collect();
        match insert(&pool, &rows).await {
            Ok(inserted) => {
                for job in batch {
                    let went_in = inserted.contains(&job.row.sid);
                    let _ = job.reply.send(Ok(went_in));
                }
            }
            // An outage would only fail each send again, after its own wait.
            Err(e) if batch.len() == 1 || is_outage(&e) => {
                let e = db_error(e);
                for job in batch {
                    let _ = job.reply.send(Err(e.clone()));
                }
            }
            Err(_) => {
                for job in batch {
                    let alone = insert(&pool, &[&job.row])
                        .await
                        .map(|inserted| inserted.contains(&job.row.sid))
                        .map_err(db_error);
                    let _ = job.reply.send(alone);
                }
            }
        }
    }
}

/// One statement for every row: the sids that went in.
async fn insert(pool: &PgPool, rows: &[&NewRow]) -> Result<HashSet<String>, sqlx::Error> {
    fn column<'a, T>(rows: &[&'a NewRow], f: impl Fn(&'a NewRow) -> T) -> Vec<T> {
        rows.iter().map(|r| f(r)).collect()
    }
    // The journals: events (with their verification's sid) and attempt-log rows, inserted
    // only for the verifications that went in (joined on `v`).
    let events: Vec<(&str, &OutboxEvent)> = rows
        .iter()
        .flat_map(|r| r.events.iter().map(move |e| (r.sid.as_str(), e)))
        .collect();
    let logs: Vec<&AttemptRecord> = rows.iter().filter_map(|r| r.log.as_ref()).collect();
    let inserted = sqlx::query(
        "WITH input AS (SELECT * FROM UNNEST($1::text[], $2::bytea[], $3::bytea[], $4::text[], \
         $5::bytea[], $6::bytea[], $7::bigint[], $8::bigint[], $9::text[], $10::text[], \
         $11::text[], $12::bigint[]) WITH ORDINALITY AS t(sid, phone_lookup, phone_sealed, \
         channel, code_digest, code_sealed, created_at, expires_at, owner, attempt_sid, \
         attempt_channel, sent_at, ord)), \
         v AS (INSERT INTO verifications (sid, phone_lookup, phone_sealed, channel, status, \
         code_digest, code_sealed, check_count, send_count, created_at, updated_at, expires_at, \
         owner) SELECT sid, phone_lookup, phone_sealed, channel, 'pending', code_digest, \
         code_sealed, 0, 1, created_at, created_at, expires_at, owner FROM input ORDER BY ord \
         ON CONFLICT DO NOTHING RETURNING sid, created_at), \
         a AS (INSERT INTO send_attempts (sid, verification_sid, channel, sent_at) \
         SELECT input.attempt_sid, v.sid, input.attempt_channel, input.sent_at \
         FROM v JOIN input ON input.sid = v.sid RETURNING verification_sid), \
         e AS (INSERT INTO event_outbox (endpoint, type, subject, payload, created_at, next_at, \
         subject_created) SELECT ev.endpoint, ev.type, ev.subject, ev.payload, \
         ev.created_at, ev.created_at, v.created_at \
         FROM UNNEST($13::text[], $14::text[], $15::text[], $16::text[], \
         $17::bigint[], $18::text[]) AS ev(endpoint, type, subject, payload, created_at, vsid) \
         JOIN v ON v.sid = ev.vsid), \
         l AS (INSERT INTO verification_attempts (sid, kind, created_at, service_sid, \
         verification_sid, channel, country, prefix, phone_lookup, phone_sealed, vendor, status, \
         reason, bucket, locale, encoding, segments) SELECT la.sid, la.kind, la.created_at, \
         la.service_sid, la.vsid, la.channel, la.country, la.prefix, la.phone_lookup, \
         la.phone_sealed, la.vendor, la.status, la.reason, la.bucket, la.locale, la.encoding, \
         la.segments FROM UNNEST($19::text[], $20::text[], $21::bigint[], \
         $22::text[], $23::text[], $24::text[], $25::text[], $26::text[], $27::bytea[], \
         $28::bytea[], $29::text[], $30::text[], $31::text[], $32::text[], $33::text[], \
         $34::text[], $35::int[]) AS la(sid, kind, \
         created_at, service_sid, vsid, channel, country, prefix, phone_lookup, phone_sealed, \
         vendor, status, reason, bucket, locale, encoding, segments) JOIN v ON v.sid = la.vsid \
         ON CONFLICT (sid) DO NOTHING \
         RETURNING created_at, kind, status, reason, bucket, channel, country, prefix), \
         h AS (INSERT INTO attempt_hourly (hour, kind, outcome, bucket, channel, country, prefix, n) \
         SELECT created_at / 3600000, kind, \
         coalesce(CASE WHEN kind = 'refusal' THEN reason ELSE status END, ''), coalesce(bucket, ''), \
         coalesce(channel, ''), coalesce(country, ''), coalesce(prefix, ''), count(*) \
         FROM l GROUP BY 1, 2, 3, 4, 5, 6, 7 ORDER BY 1, 2, 3, 4, 5, 6, 7 \
         ON CONFLICT (hour, kind, outcome, bucket, channel, country, prefix) \
         DO UPDATE SET n = attempt_hourly.n + excluded.n) \
         SELECT verification_sid FROM a",
    )
    .bind(column(rows, |r| r.sid.as_str()))
    .bind(column(rows, |r| r.phone_lookup.as_slice()))
    .bind(column(rows, |r| r.phone_sealed.as_slice()))
    .bind(column(rows, |r| r.channel))
    .bind(column(rows, |r| r.code_digest.as_slice()))
    .bind(column(rows, |r| r.code_sealed.as_slice()))
    .bind(column(rows, |r| r.created_at))
    .bind(column(rows, |r| r.expires_at))
    .bind(column(rows, |r| r.owner.as_deref()))
    .bind(column(rows, |r| r.attempt_sid.as_str()))
    .bind(column(rows, |r| r.attempt_channel))
    .bind(column(rows, |r| r.sent_at))
    .bind(events.iter().map(|(_, e)| e.endpoint.as_str()).collect::<Vec<_>>())
    .bind(events.iter().map(|(_, e)| e.kind.as_str()).collect::<Vec<_>>())
    .bind(events.iter().map(|(_, e)| e.subject.as_str()).collect::<Vec<_>>())
    .bind(events.iter().map(|(_, e)| e.payload.as_str()).collect::<Vec<_>>())
    .bind(events.iter().map(|(_, e)| e.created.as_millis()).collect::<Vec<_>>())
    .bind(events.iter().map(|(v, _)| *v).collect::<Vec<_>>())
    .bind(logs.iter().map(|l| l.sid.as_deref()).collect::<Vec<_>>())
    .bind(logs.iter().map(|l| l.kind.as_str()).collect::<Vec<_>>())
    .bind(logs.iter().map(|l| l.time.as_millis()).collect::<Vec<_>>())
    .bind(logs.iter().map(|l| l.service_sid.as_str()).collect::<Vec<_>>())
    .bind(logs.iter().map(|l| l.verification_sid.as_deref()).collect::<Vec<_>>())
    .bind(logs.iter().map(|l| l.channel.as_deref()).collect::<Vec<_>>())
    .bind(logs.iter().map(|l| l.country.as_deref()).collect::<Vec<_>>())
    .bind(logs.iter().map(|l| l.prefix.as_deref()).collect::<Vec<_>>())
    .bind(logs.iter().map(|l| l.phone_lookup.as_deref()).collect::<Vec<_>>())
    .bind(logs.iter().map(|l| l.phone_sealed.as_deref()).collect::<Vec<_>>())
    .bind(logs.iter().map(|l| l.vendor.as_deref()).collect::<Vec<_>>())
    .bind(logs.iter().map(|l| l.status.as_deref()).collect::<Vec<_>>())
    .bind(logs.iter().map(|l| l.reason.as_deref()).collect::<Vec<_>>())
    .bind(logs.iter().map(|l| l.bucket.as_deref()).collect::<Vec<_>>())
    .bind(logs.iter().map(|l| l.message.map(|m| m.locale)).collect::<Vec<_>>())
    .bind(logs.iter().map(|l| l.message.map(|m| m.encoding)).collect::<Vec<_>>())
    .bind(
        logs.iter()
            .map(|l| l.message.map(|m| i32::try_from(m.segments).unwrap_or(i32::MAX)))
            .collect::<Vec<_>>(),
    )
    .fetch_all(pool)
    .await?;
    inserted
        .iter()
        .map(|row| row.try_get::<String, _>(0))
        .collect()
}
