//! The one thread that talks to the SQLite file, and group commit.
//!
//! Every store call is a job sent to this thread. The thread takes every job that is waiting
//! (up to [`MAX_BATCH`]), runs the reads together in one read transaction and answers them, then
//! runs the writes together in one write transaction (`BEGIN IMMEDIATE`) and answers them only
//! after its `COMMIT` returned: many sends and checks share one commit (and, with
//! `synchronous=FULL`, one fsync), and no answer ever reports a write that is not committed.
//! When one write of a batch fails, the batch is rolled back and each of its writes runs again
//! in a transaction of its own, so a failure is reported to that job only.
//!
//! One thread, one connection: jobs of this process never wait for each other inside SQLite
//! (no busy retries), and statements are prepared once (the connection's statement cache).
//! Other processes on the same file (`verifyd rekey`, the CLI) are serialised by SQLite's own
//! locks and the busy timeout.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::db_error;
use crate::error::Context;
use crate::store::StoreError;

/// The most jobs one transaction takes. Larger batches commit less often but make the first
/// job of the batch wait for the last.
const MAX_BATCH: usize = 512;

/// Jobs that may wait for the thread; beyond this, callers wait (within their timeout) to queue.
const QUEUE: usize = 16_384;

/// Whether a job changes the database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Access {
    Read,
    Write,
}

/// A store call waiting for the thread.
trait Job: Send {
    fn access(&self) -> Access;
    /// Runs the call (again, after a rolled-back batch); false when it failed (its batch must
    /// be rolled back).
    fn run(&mut self, conn: &Connection) -> bool;
    /// Answers the caller: the call's own result if `committed`, else that error.
    fn answer(self: Box<Self>, committed: Result<(), StoreError>);
}

/// A call and its work, in one allocation (the job's box).
struct Call<T, F> {
    access: Access,
    work: F,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for Call<T, F>
where
    T: Send,
    F: FnMut(&Connection) -> Result<T, StoreError> + Send,
{
    fn access(&self) -> Access {
        self.access
    }

    fn run(&mut self, conn: &Connection) -> bool {
        // The caller stopped waiting (its timeout answered 503): a refused request changes
        // nothing, so neither does its call.
        if self.reply.is_closed() {
            self.result = Some(Err(StoreError::unavailable("the caller stopped waiting")));
            return true;
        }
        // A panicking call (a bug) fails alone instead of taking the thread, and with it the
        // store, down: its batch is rolled back like for any failed write.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (self.work)(conn)))
            .unwrap_or_else(|_| {
                tracing::error!("a SQLite store call panicked; it was rolled back");
                Err(StoreError::internal("a store call panicked"))
            });
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn answer(self: Box<Self>, committed: Result<(), StoreError>) {
        let result = match committed {
            Ok(()) => self
                .result
                .unwrap_or_else(|| Err(StoreError::internal("a store job never ran"))),
            Err(e) => Err(e),
        };
        // The caller may have stopped waiting (timeout): nobody to tell.
        let _ = self.reply.send(result);
    }
}

/// The sending side: cheap to clone, one per store handle.
#[derive(Clone)]
pub(super) struct Worker {
    jobs: mpsc::Sender<Box<dyn Job>>,
    timeout: Duration,
    /// Write transactions committed so far (read by the tests).
    #[cfg_attr(not(test), allow(dead_code))]
    commits: Arc<AtomicU64>,
}

impl Worker {
    /// Starts the thread that owns `conn` (and `companion`, told after every write batch and
    /// dropped when the thread ends). It stops (closing the connection) once every [`Worker`]
    /// is dropped.
    pub fn spawn<C: AfterWrites>(
        conn: Connection,
        timeout: Duration,
        companion: C,
    ) -> Result<Self, StoreError> {
        let (jobs, queue) = mpsc::channel(QUEUE);
        let commits = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&commits);
        std::thread::Builder::new()
            .name("verifyd-sqlite".to_owned())
            .spawn(move || {
                serve(&conn, queue, &counted, &companion);
                drop(conn);
                drop(companion);
            })
            .map_err(|e| StoreError::internal(Context::new("cannot start the SQLite thread", e)))?;
        Ok(Self {
            jobs,
            timeout,
            commits,
        })
    }

    /// Write transactions committed so far.
    #[cfg(test)]
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Jobs waiting for the thread.
    #[cfg(test)]
    pub fn queued(&self) -> usize {
        self.jobs.max_capacity() - self.jobs.capacity()
    }

    /// Runs `work` on the thread: with the other reads of its batch, or inside its batch's
    /// write transaction (then answered after the commit). Unavailable when the answer takes
    /// longer than the store timeout.
    pub async fn call<T, F>(&self, access: Access, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(Call {
            access,
            work,
            result: None,
            reply,
        });
        let stopped = || StoreError::unavailable("the SQLite thread has stopped");
        let round_trip = async {
            self.jobs.send(job).await.map_err(|_| stopped())?;
            answer.await.map_err(|_| stopped())?
        };
        tokio::time::timeout(self.timeout, round_trip)
            .await
            .map_err(|_| StoreError::unavailable("timed out waiting for SQLite"))?
    }
}

/// Told by the store's thread after each batch of writes (the WAL checkpointer).
pub(super) trait AfterWrites: Send + 'static {
    /// Called on the store's thread: must not block.
    fn after_writes(&self);
}

impl AfterWrites for () {
    fn after_writes(&self) {}
}

impl<T: AfterWrites> AfterWrites for Option<T> {
    fn after_writes(&self) {
        if let Some(t) = self {
            t.after_writes();
        }
    }
}

/// The thread's loop: batches until every sender is gone.
fn serve(
    conn: &Connection,
    mut queue: mpsc::Receiver<Box<dyn Job>>,
    commits: &AtomicU64,
    companion: &impl AfterWrites,
) {
    let mut reads = Vec::with_capacity(MAX_BATCH);
    let mut writes = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = queue.blocking_recv() {
        let mut next = Some(first);
        let mut taken = 0;
        while let Some(job) = next {
            taken += 1;
            match job.access() {
                Access::Read => reads.push(job),
                Access::Write => writes.push(job),
            }
            next = if taken < MAX_BATCH {
                queue.try_recv().ok()
            } else {
                None
            };
        }
        if !reads.is_empty() {
            run_reads(conn, &mut reads);
        }
        if !writes.is_empty() {
            run_writes(conn, &mut writes, commits);
            companion.after_writes();
        }
    }
}

/// Reads see one snapshot: one deferred transaction for all of them.
fn run_reads(conn: &Connection, reads: &mut Vec<Box<dyn Job>>) {
    let began = conn.execute_batch("BEGIN").map_err(db_error);
    if let Err(e) = began {
        for job in reads.drain(..) {
            job.answer(Err(e.clone()));
        }
        return;
    }
    for job in reads.iter_mut() {
        job.run(conn);
    }
    finish(conn, "COMMIT");
    for job in reads.drain(..) {
        job.answer(Ok(()));
    }
}

/// Group commit: every write in one transaction, answered after the commit.
fn run_writes(conn: &Connection, writes: &mut Vec<Box<dyn Job>>, commits: &AtomicU64) {
    let started = Instant::now();
    let batch = writes.len();
    let outcome = transaction(conn, writes.iter_mut(), commits);
    match outcome {
        Ok(()) => {
            for job in writes.drain(..) {
                job.answer(Ok(()));
            }
        }
        Err(Failure::Begin(e) | Failure::Commit(e)) => {
            for job in writes.drain(..) {
                job.answer(Err(e.clone()));
            }
        }
        Err(Failure::Job) => {
            // One of them failed: roll back (done) and give each its own transaction.
            for mut job in writes.drain(..) {
                let alone = transaction(conn, std::iter::once(&mut job), commits);
                job.answer(match alone {
                    Ok(()) | Err(Failure::Job) => Ok(()),
                    Err(Failure::Begin(e) | Failure::Commit(e)) => Err(e),
                });
            }
        }
    }
    metrics::histogram!("verifyd_sqlite_batch_size").record(batch as f64);
    metrics::histogram!("verifyd_sqlite_batch_duration_seconds")
        .record(started.elapsed().as_secs_f64());
}

enum Failure {
    Begin(StoreError),
    /// A job failed; the transaction was rolled back.
    Job,
    Commit(StoreError),
}

fn transaction<'a>(
    conn: &Connection,
    jobs: impl Iterator<Item = &'a mut Box<dyn Job>>,
    commits: &AtomicU64,
) -> Result<(), Failure> {
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(|e| Failure::Begin(db_error(e)))?;
    for job in jobs {
        if !job.run(conn) {
            finish(conn, "ROLLBACK");
            return Err(Failure::Job);
        }
    }
    if let Err(e) = conn.execute_batch("COMMIT") {
        finish(conn, "ROLLBACK");
        return Err(Failure::Commit(db_error(e)));
    }
    commits.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Ends a transaction if SQLite has not already ended it (some errors roll back by themselves).
fn finish(conn: &Connection, how: &str) {
    if !conn.is_autocommit()
        && let Err(e) = conn.execute_batch(how)
    {
        tracing::error!(error = %e, "SQLite could not end a transaction");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY)")
            .unwrap();
        conn
    }

    fn insert(k: i64) -> impl FnMut(&Connection) -> Result<(), StoreError> + Send + 'static {
        move |c| {
            c.execute("INSERT INTO t (k) VALUES (?1)", [k])
                .map(drop)
                .map_err(db_error)
        }
    }

    /// Occupies the thread with a write of key 0 until the returned sender is dropped; returns
    /// once the thread is inside it.
    async fn hold(worker: &Worker) -> (std::sync::mpsc::Sender<()>, tokio::task::JoinHandle<()>) {
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (inside, entered) = oneshot::channel::<()>();
        let mut inside = Some(inside);
        let w = worker.clone();
        let task = tokio::spawn(async move {
            w.call(Access::Write, move |c| {
                if let Some(tell) = inside.take() {
                    let _ = tell.send(());
                }
                let _ = held.recv();
                insert(0)(c)
            })
            .await
            .unwrap();
        });
        entered.await.unwrap();
        (release, task)
    }

    async fn queue_up(worker: &Worker, jobs: usize) {
        while worker.queued() < jobs {
            tokio::task::yield_now().await;
        }
    }

    fn count(worker: &Worker) -> impl std::future::Future<Output = Result<i64, StoreError>> + '_ {
        worker.call(Access::Read, |c| {
            c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
                .map_err(db_error)
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_that_wait_together_share_one_commit() {
        let worker = Worker::spawn(table(), Duration::from_secs(10), ()).unwrap();
        let (release, holder) = hold(&worker).await;
        let writes: Vec<_> = (1..=100)
            .map(|k| {
                let w = worker.clone();
                tokio::spawn(async move { w.call(Access::Write, insert(k)).await })
            })
            .collect();
        queue_up(&worker, 100).await;
        drop(release);
        holder.await.unwrap();
        for write in writes {
            write.await.unwrap().unwrap();
        }
        assert_eq!(
            worker.commits(),
            2,
            "the holder's commit, then one for all 100"
        );
        assert_eq!(count(&worker).await.unwrap(), 101);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_write_fails_alone_and_leaves_nothing_behind() {
        let worker = Worker::spawn(table(), Duration::from_secs(10), ()).unwrap();
        let (release, holder) = hold(&worker).await;
        let mut writes: Vec<_> = (1..=20)
            .map(|k| {
                let w = worker.clone();
                tokio::spawn(async move { w.call(Access::Write, insert(k)).await })
            })
            .collect();
        // Writes key 1000, then fails on key 0 (the holder's): neither may stay.
        let w = worker.clone();
        writes.push(tokio::spawn(async move {
            w.call(Access::Write, |c| {
                insert(1000)(c)?;
                insert(0)(c)
            })
            .await
        }));
        queue_up(&worker, 21).await;
        drop(release);
        holder.await.unwrap();
        let failing = writes.pop().unwrap().await.unwrap();
        assert!(
            matches!(failing, Err(StoreError::Internal(_))),
            "{failing:?}"
        );
        for write in writes {
            write.await.unwrap().unwrap();
        }
        assert_eq!(count(&worker).await.unwrap(), 21, "key 0 and keys 1 to 20");
        let stray: i64 = worker
            .call(Access::Read, |c| {
                c.query_row("SELECT count(*) FROM t WHERE k = 1000", [], |r| r.get(0))
                    .map_err(db_error)
            })
            .await
            .unwrap();
        assert_eq!(stray, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_call_fails_alone_and_the_store_goes_on() {
        let worker = Worker::spawn(table(), Duration::from_secs(10), ()).unwrap();
        let (release, holder) = hold(&worker).await;
        let good = {
            let w = worker.clone();
            tokio::spawn(async move { w.call(Access::Write, insert(1)).await })
        };
        let bad = {
            let w = worker.clone();
            tokio::spawn(async move {
                w.call(Access::Write, |c| {
                    insert(2)(c)?;
                    panic!("a bug in a store call")
                })
                .await
            })
        };
        queue_up(&worker, 2).await;
        drop(release);
        holder.await.unwrap();
        good.await.unwrap().unwrap();
        let bad: Result<(), StoreError> = bad.await.unwrap();
        assert!(matches!(bad, Err(StoreError::Internal(_))), "{bad:?}");
        assert_eq!(
            count(&worker).await.unwrap(),
            2,
            "keys 0 and 1; key 2 rolled back"
        );
        worker.call(Access::Write, insert(3)).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_call_the_thread_cannot_answer_in_time_is_unavailable_and_changes_nothing() {
        let worker = Worker::spawn(table(), Duration::from_millis(50), ()).unwrap();
        let (release, holder) = hold(&worker).await;
        let late = worker.call(Access::Write, insert(5)).await;
        assert!(matches!(late, Err(StoreError::Unavailable(_))), "{late:?}");
        drop(release);
        let _ = holder.await;
        let left: i64 = worker
            .call(Access::Read, |c| {
                c.query_row("SELECT count(*) FROM t WHERE k = 5", [], |r| r.get(0))
                    .map_err(db_error)
            })
            .await
            .unwrap();
        assert_eq!(left, 0, "the abandoned write never ran");
    }
}
