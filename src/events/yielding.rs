//! The runtime the dispatcher's deliveries run on: one thread of its own at the lowest CPU
//! priority the kernel gives a thread without privileges (Linux nice 19, and the same for any
//! thread its runtime starts), so that signing and posting events yields the CPU to the request
//! path whenever both want it.
//!
//! Why a thread of its own rather than the request path's runtime: a delivery costs about as
//! much CPU as the send it reports (sign, connect, post, read the answer). On the request path's
//! workers, a saturated server paid for its events in requests per second. Here, under
//! saturation, the deliveries get the scheduler's smallest share (nice 19 weighs 15 against a
//! normal thread's 1,024), so events queue in the outbox (durably: they were written with the
//! change they report) and are delivered as soon as the request path leaves CPU free, which a
//! server that is not saturated always does. They are never starved: the smallest share is not
//! nothing.
//!
//! The dispatcher's loop and its posts run here; its store calls (leases, results) are sent back
//! to the server's runtime, so that a pooled database connection is never bound to this
//! thread's reactor (a request waiting on it would then wait on the lowest-priority thread).
//!
//! `unsafe` is allowed here for the libc calls `gettid` and `setpriority`/`getpriority` on the
//! calling thread: no pointer, no memory, only the thread's own nice value.
#![allow(unsafe_code)]

use std::sync::mpsc;

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

/// The nice value of the delivery thread (19 is the lowest priority on Linux).
const NICENESS: i32 = 19;

/// A current-thread runtime on a low-priority thread; it stops when this is dropped (tasks
/// still on it are cancelled).
pub struct Yielding {
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
}

impl Yielding {
    /// Starts the thread and its runtime.
    ///
    /// # Errors
    /// The thread or the runtime could not be started.
    pub fn start(name: &str) -> std::io::Result<Self> {
        let (ready, started) = mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                lower_priority();
                // `on_thread_start` covers the blocking pool (a host name's lookup).
                let runtime = Builder::new_current_thread()
                    .enable_all()
                    .on_thread_start(lower_priority)
                    .build();
                match runtime {
                    Ok(runtime) => {
                        let _ = ready.send(Ok(runtime.handle().clone()));
                        runtime.block_on(async {
                            let _ = stopped.await;
                        });
                    }
                    Err(e) => {
                        let _ = ready.send(Err(e));
                    }
                }
            })?;
        let handle = started
            .recv()
            .map_err(|_| std::io::Error::other("the delivery thread ended at start"))??;
        Ok(Self {
            handle,
            stop: Some(stop),
        })
    }

    /// Where to spawn deliveries.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }
}

impl Drop for Yielding {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Lowers the calling thread's CPU priority (Linux: nice values are per thread). Raising the
/// nice value needs no privilege; a failure leaves the thread at its priority, which only costs
/// speed, so it is logged and ignored.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `gettid` has no preconditions; `setpriority` on the calling thread's id only
        // changes that thread's nice value.
        let result = unsafe {
            let tid = libc::gettid();
            libc::setpriority(
                libc::PRIO_PROCESS,
                libc::id_t::try_from(tid).unwrap_or(0),
                NICENESS,
            )
        };
        if result != 0 {
            tracing::debug!(
                error = %std::io::Error::last_os_error(),
                "could not lower the event deliveries' thread priority"
            );
        }
    }
}

/// The nice value of the calling thread (tests).
#[cfg(all(test, target_os = "linux"))]
fn current_niceness() -> i32 {
    // SAFETY: as above; `getpriority` reads the calling thread's nice value.
    unsafe {
        let tid = libc::gettid();
        libc::getpriority(libc::PRIO_PROCESS, libc::id_t::try_from(tid).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn deliveries_run_on_a_thread_at_the_lowest_priority() {
        let yielding = Yielding::start("test-deliveries").unwrap();
        let there = yielding.handle().spawn(async { current_niceness() });
        assert_eq!(there.await.unwrap(), NICENESS);
        // A blocking task of that runtime runs on a thread of its own, lowered too.
        let blocking = yielding
            .handle()
            .spawn_blocking(current_niceness)
            .await
            .unwrap();
        assert_eq!(blocking, NICENESS);
    }

    #[tokio::test]
    async fn dropping_it_cancels_what_is_still_running() {
        let yielding = Yielding::start("test-deliveries").unwrap();
        let task = yielding.handle().spawn(std::future::pending::<()>());
        drop(yielding);
        assert!(task.await.unwrap_err().is_cancelled());
    }
}
