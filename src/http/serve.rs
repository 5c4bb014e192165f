//! Serving connections: the main and the metrics listener run hyper's HTTP/1 server here
//! rather than through `axum::serve`, which has no timers (a client that sends half its
//! headers would hold its connection forever). Each connection gets:
//!
//! - a **header deadline**: a request's head (request line and headers) must arrive in full
//!   within `VERIFYD_HEADER_TIMEOUT`, counted from the accept for a new connection and from the
//!   request's first byte on a keep-alive one; past it the connection is closed (slowloris);
//! - an **idle deadline**: a keep-alive connection with no request in progress is closed after
//!   `VERIFYD_IDLE_TIMEOUT` (gracefully: a request arriving that very moment is still answered);
//! - a **slot**: at most `VERIFYD_MAX_CONNECTIONS` connections are open at once. The slot is
//!   taken before `accept`, so past the cap the listener simply stops accepting and new
//!   connections wait in the kernel's backlog until one closes; nothing fails or crashes.
//!
//! A request in progress has no deadline here: `VERIFYD_REQUEST_TIMEOUT` bounds its handler,
//! body included. Graceful shutdown stops accepting, lets every connection finish its request
//! and closes it (the caller bounds the whole drain with the shutdown grace).
//!
//! hyper's own `header_read_timeout` is not used: it also runs while a keep-alive connection
//! waits for its next request, so idle connections would be closed after the header timeout,
//! before a load balancer's idle timeout (commonly 60 s): the race that answers 502s.
//!
//! Cost: per connection one small allocation and one timer entry (it wakes at most once per
//! the shorter timeout); per request two relaxed atomic stores and two clock reads.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;
use tower_service::Service;

/// The per-connection limits (`VERIFYD_HEADER_TIMEOUT`, `VERIFYD_IDLE_TIMEOUT`,
/// `VERIFYD_MAX_CONNECTIONS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// How long a request's head may take to arrive in full.
    pub header_timeout: Duration,
    /// How long a keep-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// How many connections may be open at once.
    pub max_connections: usize,
}

/// How often the "connection cap reached" warning may be logged.
const CAP_WARNING_EVERY: Duration = Duration::from_secs(60);

/// Serves `router` on `listener` until `stop` completes, then stops accepting, lets every
/// connection finish the request it is serving, and returns once all are closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    stop: impl Future<Output = ()> + Send,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stopping_tx, stopping_rx) = watch::channel(false);
    let mut stop = pin!(stop);
    let mut cap_warned: Option<Instant> = None;
    loop {
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                if cap_warned.is_none_or(|at| at.elapsed() >= CAP_WARNING_EVERY) {
                    cap_warned = Some(Instant::now());
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        "connection cap reached (VERIFYD_MAX_CONNECTIONS): not accepting until a connection closes"
                    );
                }
                tokio::select! {
                    biased;
                    () = &mut stop => break,
                    slot = Arc::clone(&slots).acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break,
                    },
                }
            }
        };
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
        };
        tokio::spawn(connection(
            stream,
            peer,
            router.clone(),
            limits,
            stopping_rx.clone(),
            slot,
        ));
    }
    // No new connections; ask the open ones to finish, and wait until every slot is back.
    drop(listener);
    let _ = stopping_tx.send(true);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
}

/// A failed `accept`: a connection that died before it was accepted is skipped; anything else
/// (out of file descriptors, out of memory) is logged and retried a second later, so the
/// process keeps serving the connections it has.
async fn accept_failed(e: io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// What a connection is doing, for its deadlines.
const PHASE_HEAD: u8 = 0;
const PHASE_BUSY: u8 = 1;
const PHASE_IDLE: u8 = 2;

/// A connection's phase and when it began; written by the connection's reads and its service,
/// read by its watchdog (all in the connection's one task, so relaxed ordering suffices).
struct Activity {
    accepted: Instant,
    phase: AtomicU8,
    /// Milliseconds from `accepted` to the start of the phase.
    since_ms: AtomicU64,
}

impl Activity {
    /// A new connection, waiting for its first request's head.
    fn new() -> Self {
        Self {
            accepted: Instant::now(),
            phase: AtomicU8::new(PHASE_HEAD),
            since_ms: AtomicU64::new(0),
        }
    }

    fn phase(&self) -> u8 {
        self.phase.load(Ordering::Relaxed)
    }

    fn enter(&self, phase: u8) {
        let ms = u64::try_from(self.accepted.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.since_ms.store(ms, Ordering::Relaxed);
        self.phase.store(phase, Ordering::Relaxed);
    }

    /// The phase and when its deadline falls (`None` while a request is being served).
    fn deadline(&self, limits: &ConnectionLimits) -> (u8, Option<Instant>) {
        let phase = self.phase();
        let since = self.accepted + Duration::from_millis(self.since_ms.load(Ordering::Relaxed));
        let deadline = match phase {
            PHASE_HEAD => Some(since + limits.header_timeout),
            PHASE_IDLE => Some(since + limits.idle_timeout),
            _ => None,
        };
        (phase, deadline)
    }
}

/// The socket, noting when the first bytes of a request arrive on an idle connection.
struct Tracked {
    io: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if buf.filled().len() > before && this.activity.phase() == PHASE_IDLE {
            this.activity.enter(PHASE_HEAD);
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Serves one connection until it closes, its deadline passes, or shutdown has let it finish.
/// The slot is given back when this returns.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: ConnectionLimits,
    mut stopping: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Tracked {
        io: stream,
        activity: Arc::clone(&activity),
    });
    let service = {
        let activity = Arc::clone(&activity);
        hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            activity.enter(PHASE_BUSY);
            let mut req = req.map(Body::new);
            req.extensions_mut().insert(ConnectInfo(peer));
            // A Router is always ready (its `poll_ready` is `Ready`): call it directly.
            let answer = router.clone().call(req);
            let activity = Arc::clone(&activity);
            async move {
                let response = answer.await;
                activity.enter(PHASE_IDLE);
                Ok::<_, Infallible>(response.unwrap_or_else(|never| match never {}))
            }
        })
    };
    let mut conn = pin!(hyper::server::conn::http1::Builder::new().serve_connection(io, service));
    // The watchdog looks at least this often, so a phase that starts between two looks is
    // never held past its own deadline.
    let every = limits.header_timeout.min(limits.idle_timeout);
    let watchdog = tokio::time::sleep(every);
    let mut watchdog = pin!(watchdog);
    let mut draining = false;
    let mut idle_closing = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            _ = stopping.wait_for(|stop| *stop), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
            () = watchdog.as_mut() => {
                let now = Instant::now();
                match activity.deadline(&limits) {
                    (PHASE_HEAD, Some(deadline)) if deadline <= now => {
                        ::metrics::counter!("verifyd_http_connections_timed_out_total", "phase" => "header").increment(1);
                        tracing::debug!(%peer, "closing a connection: its request head did not arrive in time");
                        return;
                    }
                    (_, Some(deadline)) if deadline <= now => {
                        if idle_closing {
                            return;
                        }
                        ::metrics::counter!("verifyd_http_connections_timed_out_total", "phase" => "idle").increment(1);
                        idle_closing = true;
                        conn.as_mut().graceful_shutdown();
                        watchdog.as_mut().reset(now + every);
                    }
                    (_, deadline) => {
                        let next = now + every;
                        watchdog.as_mut().reset(deadline.map_or(next, |d| d.min(next)));
                    }
                }
            }
        }
    }
}
