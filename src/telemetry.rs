//! Logging setup: `tracing` to stderr (stdout is reserved for the console sender's messages and
//! CLI output), human-readable or JSON, filtered by `RUST_LOG`.
//!
//! The server writes through a background thread ([`Writer::Background`]): request threads hand
//! each formatted line to a bounded channel and go on, and the thread writes whatever has queued
//! up in one `write` (a buffered stderr flushed whenever the queue is empty) instead of one
//! system call per line. Nothing is dropped: a full queue (128 k lines) makes loggers wait. Lines
//! still queued when the process is killed outright are lost; the [`LogGuard`] flushes them on
//! every ordinary exit. One-shot commands write directly, so their lines and messages stay in
//! order.

use std::io::{BufWriter, IsTerminal};

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// How log lines reach stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Writer {
    /// One `write` per line, on the logging thread (CLI commands).
    Direct,
    /// Through the background writer (the server).
    Background,
}

/// Keeps the background writer running; dropping it writes out what is still queued.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard {
    _worker: Option<WorkerGuard>,
}

/// Bytes the background writer gathers before a `write` (it also writes whenever it has
/// nothing more queued).
const WRITE_BUFFER: usize = 64 * 1024;

/// Installs the global subscriber. Safe to call more than once (later calls do nothing and
/// return an inert guard).
pub fn init(format: LogFormat, filter: &str, writer: Writer) -> LogGuard {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal();
    let (make_writer, guard) = match writer {
        Writer::Direct => (
            tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stderr),
            None,
        ),
        Writer::Background => {
            let (non_blocking, guard) = NonBlockingBuilder::default()
                .lossy(false)
                .thread_name("verifyd-log")
                .finish(BufWriter::with_capacity(WRITE_BUFFER, std::io::stderr()));
            (
                tracing_subscriber::fmt::writer::BoxMakeWriter::new(non_blocking),
                Some(guard),
            )
        }
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(make_writer)
        .with_target(false)
        .with_ansi(ansi);
    let installed = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
    LogGuard {
        _worker: installed.ok().and(guard),
    }
}
