//! WAL checkpoints off the request path. A commit only appends pages to the write-ahead log;
//! copying them back into the database file and syncing it (a checkpoint) is the slow part.
//! SQLite does it inside the commit that makes the log pass [`super::WAL_RESTART_FRAMES`]
//! pages, stalling every request of that batch: under steady writes only that checkpoint
//! reaches the end of the log (no commit can slip in while it runs), which lets the next
//! write start the log over. When writes pause, a pass of this thread reaches the end too.
//!
//! This thread does the bulk of the work on a connection of its own, so that the commit-time
//! checkpoint finds little to copy and little to sync. Soon after each batch of writes (at most
//! once every [`MIN_GAP`]) it copies the log into the file (`PASSIVE`: it never blocks the
//! store's thread), then syncs the file itself ([`sync_database_file`]). SQLite syncs the file
//! only when a checkpoint reaches the end of the log, which a background pass under steady
//! writes never does, so without that sync every page it copied waited, dirty, for the
//! commit-time checkpoint's `fsync`. Idle, the thread sleeps until the next write (or
//! [`IDLE`], for writes made by other processes).

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::file_sync::sync_database_file;
use super::worker::AfterWrites;
use crate::error::Context;
use crate::store::StoreError;

/// Shortest time between two checkpoints while writes keep coming. Measured (BENCHMARKS.md):
/// 100 ms left most of the copying to the commit-time checkpoint (p99 10–11 ms under load);
/// 2 ms brought p99 to about 8 ms and raised throughput by about 8 %.
const MIN_GAP: Duration = Duration::from_millis(2);
/// How often the thread looks at the log when this process writes nothing.
const IDLE: Duration = Duration::from_secs(1);

/// Keeps the checkpoint thread running; dropping it stops the thread.
pub(super) struct Checkpointer {
    wake: mpsc::SyncSender<()>,
}

impl Checkpointer {
    /// Starts the thread on its own connection to `path`.
    pub fn spawn(path: &Path) -> Result<Self, StoreError> {
        Self::spawn_with(path, IDLE)
    }

    /// As [`spawn`](Self::spawn), looking at the log every `idle` when nothing is written.
    fn spawn_with(path: &Path, idle: Duration) -> Result<Self, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(super::cannot_open)?;
        let (wake, woken) = mpsc::sync_channel::<()>(1);
        std::thread::Builder::new()
            .name("verifyd-sqlite-checkpoint".to_owned())
            .spawn(move || {
                let mut passes = Passes::default();
                // Ends when the sender is dropped (the store is gone).
                while let Ok(()) | Err(mpsc::RecvTimeoutError::Timeout) = woken.recv_timeout(idle) {
                    passes.run(&conn);
                    std::thread::sleep(MIN_GAP);
                }
            })
            .map_err(|e| {
                StoreError::internal(Context::new("cannot start the SQLite checkpoint thread", e))
            })?;
        Ok(Self { wake })
    }
}

/// Where a pass left the log: (frames in the log when the pass began, frames copied into the
/// file since the log last started over).
type Progress = (i64, i64);

/// The passes of one thread: what the last one copied, and whether syncing is failing.
#[derive(Default)]
struct Passes {
    last: Option<Progress>,
    sync_failing: bool,
}

impl Passes {
    /// One pass: copies what it can, then syncs the file when the pass copied frames that no
    /// earlier pass had (SQLite may have synced already, if it reached the end of the log; a
    /// second sync of a clean file is cheap). Busy (another checkpoint runs) or failed: the next
    /// pass or SQLite's own checkpoint at commit catches up. Returns whether it synced.
    fn run(&mut self, conn: &Connection) -> bool {
        let progress = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        });
        let (log, copied) = match progress {
            Ok(progress) => progress,
            Err(e) => {
                tracing::debug!(error = %e, "background WAL checkpoint skipped");
                return false;
            }
        };
        // Busy passes report -1; a log that started over reports fewer frames than before.
        let copied_new = copied > 0
            && self
                .last
                .is_none_or(|(last_log, last_copied)| copied != last_copied || log < last_log);
        self.last = Some((log, copied));
        if !copied_new {
            return false;
        }
        match sync_database_file(conn) {
            Ok(synced) => {
                if self.sync_failing {
                    tracing::info!("syncing the SQLite database file works again");
                }
                self.sync_failing = false;
                synced
            }
            Err(e) => {
                // A failing disk: said once, not every pass. The commit-time checkpoint syncs
                // the file itself before the log can start over.
                if !self.sync_failing {
                    tracing::error!(error = %e, "syncing the SQLite database file failed");
                }
                self.sync_failing = true;
                false
            }
        }
    }
}

impl AfterWrites for Checkpointer {
    /// Wakes the thread; a wake-up already pending covers this one too.
    fn after_writes(&self) {
        let _ = self.wake.try_send(());
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    /// A connection to a new WAL database at `path` with table `t`, which never checkpoints
    /// by itself.
    fn wal_writer(path: &Path) -> Connection {
        let writer = Connection::open(path).unwrap();
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
                 CREATE TABLE t (v BLOB NOT NULL);",
            )
            .unwrap();
        writer
    }

    /// `n` commits of one ~4 KB row each.
    fn insert_pages(writer: &Connection, n: usize) {
        for _ in 0..n {
            writer
                .execute("INSERT INTO t (v) VALUES (zeroblob(4000))", [])
                .unwrap();
        }
    }

    #[test]
    fn a_wake_up_copies_the_log_into_the_database_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal.db");
        let writer = wal_writer(&path);
        // No idle rounds within the test: only the wake-up can start a checkpoint.
        let checkpointer = Checkpointer::spawn_with(&path, Duration::from_secs(3600)).unwrap();
        insert_pages(&writer, 256);
        let file_len = || std::fs::metadata(&path).unwrap().len();
        assert!(file_len() < 64 * 1024, "the rows are still only in the log");
        checkpointer.after_writes();
        let deadline = Instant::now() + Duration::from_secs(10);
        while file_len() < 256 * 4000 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(file_len() >= 256 * 4000, "copied: {} bytes", file_len());
    }

    #[test]
    fn a_pass_syncs_when_it_copied_frames_no_earlier_pass_had() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("progress.db");
        let writer = wal_writer(&path);
        let insert = |n: usize| insert_pages(&writer, n);
        let checkpointer = Connection::open(&path).unwrap();
        let mut passes = Passes::default();
        insert(16);
        assert!(passes.run(&checkpointer), "new frames were copied: synced");
        let (log, copied) = passes.last.unwrap();
        assert!(log >= 16 && copied == log, "the whole log: {log}/{copied}");
        assert!(!passes.run(&checkpointer), "nothing new: no sync");

        // A reader pins a snapshot: the next pass copies only the frames before it, which
        // is the case under steady writes that SQLite does not sync by itself.
        insert(8);
        let reader = Connection::open(&path).unwrap();
        reader.execute_batch("BEGIN").unwrap();
        let seen: i64 = reader
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(seen, 24);
        insert(8);
        assert!(
            passes.run(&checkpointer),
            "frames up to the snapshot: synced"
        );
        let (log, copied) = passes.last.unwrap();
        assert!(
            copied < log,
            "stopped at the reader's snapshot: {copied}/{log}"
        );
        assert!(
            !passes.run(&checkpointer),
            "the reader still pins it: nothing new"
        );
        reader.execute_batch("COMMIT").unwrap();
        assert!(passes.run(&checkpointer), "the rest: synced");
        let (log, copied) = passes.last.unwrap();
        assert_eq!(copied, log);

        // The whole log was copied, so the next write starts it over; a pass after that
        // copies new frames even if the counts happen to be lower than before.
        insert(2);
        assert!(passes.run(&checkpointer), "a log started over: synced");
        let (restarted, _) = passes.last.unwrap();
        assert!(
            restarted < log,
            "started over: {restarted} frames after {log}"
        );
    }
}
