//! WAL checkpoints off the request path. A commit only appends pages to the write-ahead log;
//! copying them back into the database file and syncing it (a checkpoint) is the slow part, and
//! SQLite does it inside the commit that makes the log pass 1,000 pages, stalling every request
//! of that batch. This thread copies the log into the file on a connection of its own
//! (`PASSIVE`: it never blocks the store's thread) soon after each batch of writes, at most
//! once every [`MIN_GAP`], so the checkpoint SQLite still runs at the store's commit (it alone
//! can reset the log, since no commit can slip in while it runs) finds little left to copy and
//! little to sync. Idle, the thread sleeps until the next write (or [`IDLE`], for writes made by
//! other processes).

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::worker::AfterWrites;
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
        .map_err(|e| StoreError::Unavailable(format!("cannot open SQLite database: {e}")))?;
        let (wake, woken) = mpsc::sync_channel::<()>(1);
        std::thread::Builder::new()
            .name("verifyd-sqlite-checkpoint".to_owned())
            .spawn(move || {
                // Ends when the sender is dropped (the store is gone).
                while let Ok(()) | Err(mpsc::RecvTimeoutError::Timeout) = woken.recv_timeout(idle) {
                    // Busy (another checkpoint runs) or failed: the next round or SQLite's own
                    // checkpoint at commit catches up.
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::debug!(error = %e, "background WAL checkpoint skipped");
                    }
                    std::thread::sleep(MIN_GAP);
                }
            })
            .map_err(|e| {
                StoreError::Internal(format!("cannot start the SQLite checkpoint thread: {e}"))
            })?;
        Ok(Self { wake })
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

    #[test]
    fn a_wake_up_copies_the_log_into_the_database_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal.db");
        let writer = Connection::open(&path).unwrap();
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
                 CREATE TABLE t (v BLOB NOT NULL);",
            )
            .unwrap();
        // No idle rounds within the test: only the wake-up can start a checkpoint.
        let checkpointer = Checkpointer::spawn_with(&path, Duration::from_secs(3600)).unwrap();
        for _ in 0..256 {
            writer
                .execute("INSERT INTO t (v) VALUES (zeroblob(4000))", [])
                .unwrap();
        }
        let file_len = || std::fs::metadata(&path).unwrap().len();
        assert!(file_len() < 64 * 1024, "the rows are still only in the log");
        checkpointer.after_writes();
        let deadline = Instant::now() + Duration::from_secs(10);
        while file_len() < 256 * 4000 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(file_len() >= 256 * 4000, "copied: {} bytes", file_len());
    }
}
