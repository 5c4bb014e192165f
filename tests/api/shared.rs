//! Shared-mode test fixtures: a PostgreSQL database of the test's own (created on
//! 127.0.0.1:5432, dropped when the fixture drops), a Redis key prefix of its own, a private
//! `redis-server` the test can kill and restart, and a TCP proxy it can close and reopen to
//! take PostgreSQL away and bring it back. Everything listens on 127.0.0.1 only.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::RngCore;
use sqlx::Connection;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The machine's PostgreSQL (trust auth).
pub const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// The machine's Redis.
pub const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// A short random lowercase hex tag.
pub fn tag() -> String {
    let mut bytes = [0u8; 6];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// A Redis key prefix no other test uses.
pub fn redis_prefix() -> String {
    format!("verifyd_test_{}:", tag())
}

/// A database of this test's own; dropped (connections forced out) when this drops.
pub struct TestDb {
    pub name: String,
}

impl TestDb {
    pub async fn create() -> TestDb {
        let name = format!("verifyd_test_{}", tag());
        let mut admin = sqlx::PgConnection::connect(PG_ADMIN_URL)
            .await
            .expect("PostgreSQL on 127.0.0.1:5432 (scripts/test starts it)");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create the test database");
        let _ = admin.close().await;
        TestDb { name }
    }

    /// The URL of this database on the machine's PostgreSQL.
    pub fn url(&self) -> String {
        self.url_via("127.0.0.1:5432".parse().expect("address"))
    }

    /// The URL of this database through `addr` (a [`TcpProxy`]).
    pub fn url_via(&self, addr: SocketAddr) -> String {
        format!("postgres://postgres@{addr}/{}", self.name)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside any async context we can borrow: a short-lived runtime on its own
        // thread does the one statement.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(mut admin) = sqlx::PgConnection::connect(PG_ADMIN_URL).await {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut admin)
                    .await;
                    let _ = admin.close().await;
                }
            });
        })
        .join();
    }
}

/// A free TCP port on 127.0.0.1 (free when asked; the caller binds it right away).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Polls `ready` every 20 ms until it is true, for at most `limit`.
pub async fn wait_until<F, Fut>(limit: Duration, what: &str, mut ready: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !ready().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} did not happen within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A `redis-server` of the test's own on 127.0.0.1, killed when this drops.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    extra: Vec<String>,
}

impl RedisServer {
    /// Starts one with nothing on disk (`--save "" --appendonly no`), like the machine's.
    pub async fn start() -> RedisServer {
        Self::start_with(free_port(), &[]).await
    }

    /// Starts one on `port` with extra arguments (for example AOF in a directory).
    pub async fn start_with(port: u16, extra: &[&str]) -> RedisServer {
        let mut server = RedisServer {
            port,
            child: None,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
        };
        server.restart().await;
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// (Re)starts the server on the same port and waits until it answers PING.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.child = Some(cmd.spawn().expect("redis-server is installed"));
        let url = self.url();
        wait_until(Duration::from_secs(10), "redis-server answering", || {
            let url = url.clone();
            async move { redis_answers(&url).await }
        })
        .await;
    }

    /// SIGKILL: the server vanishes without saving anything.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether a Redis answers PING at `url` within a second.
pub async fn redis_answers(url: &str) -> bool {
    let Ok(client) = redis::Client::open(url) else {
        return false;
    };
    let attempt = async {
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .ok()
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), attempt).await,
        Ok(Some(_))
    )
}

/// A TCP proxy on 127.0.0.1 in front of `upstream`. `close()` stops listening and cuts every
/// open connection (the database "goes away"); `open()` listens again on the same port.
pub struct TcpProxy {
    pub addr: SocketAddr,
    upstream: SocketAddr,
    state: Arc<Mutex<Option<ProxyTasks>>>,
}

struct ProxyTasks {
    accept: JoinHandle<()>,
    pipes: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl TcpProxy {
    pub async fn start(upstream: SocketAddr) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let proxy = TcpProxy {
            addr,
            upstream,
            state: Arc::new(Mutex::new(None)),
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: TcpListener) {
        let upstream = self.upstream;
        let pipes: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let pipes_for_accept = Arc::clone(&pipes);
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let pipe = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                pipes_for_accept.lock().unwrap().push(pipe);
            }
        });
        *self.state.lock().unwrap() = Some(ProxyTasks { accept, pipes });
    }

    /// Stops accepting and drops every proxied connection.
    pub fn close(&self) {
        if let Some(tasks) = self.state.lock().unwrap().take() {
            tasks.accept.abort();
            for pipe in tasks.pipes.lock().unwrap().drain(..) {
                pipe.abort();
            }
        }
    }

    /// Listens again on the same port.
    pub async fn open(&self) {
        // The aborted accept task releases the socket when it is dropped; retry briefly.
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) => {
                    tries += 1;
                    assert!(tries < 100, "cannot rebind {}: {e}", self.addr);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        self.serve(listener);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.close();
    }
}
