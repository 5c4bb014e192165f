//! Syncing a connection's database file through SQLite's own file handle: the crate's one
//! `unsafe` corner (two FFI calls, `sqlite3_file_control` and the VFS's `xSync`, both documented
//! SQLite interfaces, and the raw-pointer reads between them).
//!
//! The checkpoint thread needs it. A checkpoint copies pages from the write-ahead log into the
//! database file, but SQLite syncs that file only when the checkpoint reaches the end of the
//! log. Under a steady stream of writes the background checkpoint never does (a new batch is
//! always committed while it copies). So every page it copied stayed dirty in the OS page
//! cache until the store's own checkpoint, on the request path, had to flush them all in one
//! `fsync` (BENCHMARKS.md, fifth pass). Syncing after each background pass keeps that flush
//! small.
//!
//! Why not `std::fs::File::open(path)?.sync_data()`: closing any descriptor of a file drops
//! every POSIX lock the process holds on it, SQLite's included
//! (<https://sqlite.org/howtocorrupt.html>, section 2.2). Another process could then believe
//! it was the last user of the database and delete a log this process still writes.
//! `SQLITE_FCNTL_FILE_POINTER` hands out the connection's own open file, and its VFS `xSync`
//! is what SQLite itself calls: no second descriptor, nothing closed.

#![allow(unsafe_code)]

use std::ffi::{c_int, c_void};

use rusqlite::{Connection, ffi};

/// Syncs the `main` database file of `conn` to disk, as SQLite does at the end of a complete
/// checkpoint. `Ok(false)` when the connection has no open database file (an in-memory
/// database).
///
/// # Errors
/// The SQLite error of the file control or of the sync.
pub(super) fn sync_database_file(conn: &Connection) -> Result<bool, rusqlite::Error> {
    let mut file: *mut ffi::sqlite3_file = std::ptr::null_mut();
    // SAFETY: `conn.handle()` is the open connection that `conn` borrows for this whole call,
    // used only on this thread. For SQLITE_FCNTL_FILE_POINTER the fourth argument must point
    // to a `sqlite3_file*`, which SQLite overwrites with the pager's file (or leaves null); it
    // changes nothing else.
    let rc = unsafe {
        ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            ffi::SQLITE_FCNTL_FILE_POINTER,
            (&raw mut file).cast::<c_void>(),
        )
    };
    check(rc)?;
    // SAFETY: a non-null `file` is the connection's own `sqlite3_file`, alive while the
    // connection is; its `pMethods` is null when no file is open, else points to the VFS's
    // static method table.
    let sync = unsafe { file.as_ref().and_then(|f| f.pMethods.as_ref()) }.and_then(|m| m.xSync);
    let Some(sync) = sync else {
        return Ok(false);
    };
    // SAFETY: `xSync` of the file's own method table, called with that file and a documented
    // flag, on the thread that owns the connection. The file object is this connection's alone
    // (each connection opens its own; the store never enables shared-cache mode, where
    // connections on other threads would share it), so nothing else touches it meanwhile.
    let rc = unsafe { sync(file, ffi::SQLITE_SYNC_NORMAL as c_int) };
    check(rc)?;
    Ok(true)
}

fn check(rc: c_int) -> Result<(), rusqlite::Error> {
    if rc == ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(rusqlite::Error::SqliteFailure(ffi::Error::new(rc), None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_database_is_synced_through_its_own_handle() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sync.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; CREATE TABLE t (v BLOB NOT NULL);
             INSERT INTO t (v) VALUES (zeroblob(5000));",
        )
        .unwrap();
        assert!(sync_database_file(&conn).unwrap(), "a file was synced");
        // The connection is untouched: it still reads and writes.
        conn.execute("INSERT INTO t (v) VALUES (x'00')", [])
            .unwrap();
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 2);
    }

    #[test]
    fn an_in_memory_database_has_no_file_to_sync() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (v INTEGER)").unwrap();
        assert!(!sync_database_file(&conn).unwrap());
    }
}
