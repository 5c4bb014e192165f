//! WAL checkpoints off the request path. A commit only appends pages to the write-ahead log;
//! copying them back into the database file (a checkpoint) is the slow part, and SQLite does it
//! inside the commit that makes the log pass 1,000 pages, stalling every request of that batch.
//! This thread copies the log into the file every [`EVERY`] on a connection of its own
//! (`PASSIVE`: it never blocks the store's thread), so the checkpoint SQLite still runs at the
//! store's commit finds almost nothing left to copy and only resets the log.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::store::StoreError;

/// How often the log is copied back.
const EVERY: Duration = Duration::from_millis(100);

/// Keeps the checkpoint thread running; dropping it stops the thread.
pub(super) struct Checkpointer {
    _stop: mpsc::Sender<()>,
}

impl Checkpointer {
    /// Starts the thread on its own connection to `path`.
    pub fn spawn(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| StoreError::Unavailable(format!("cannot open SQLite database: {e}")))?;
        let (stop, stopped) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("verifyd-sqlite-checkpoint".to_owned())
            .spawn(move || {
                // Ends when the sender is dropped (the store is gone).
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(EVERY) {
                    // Busy (another checkpoint runs) or failed: the next round or SQLite's own
                    // checkpoint at commit catches up.
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::debug!(error = %e, "background WAL checkpoint skipped");
                    }
                }
            })
            .map_err(|e| {
                StoreError::Internal(format!("cannot start the SQLite checkpoint thread: {e}"))
            })?;
        Ok(Self { _stop: stop })
    }
}
