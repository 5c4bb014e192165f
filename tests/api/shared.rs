//! Shared-mode test fixtures: a PostgreSQL database of the test's own (created on the server of
//! `VERIFYD_TEST_POSTGRES_URL`, dropped when the fixture drops), a Redis key prefix of its own,
//! a private `redis-server` the test can kill and restart, and a TCP proxy it can close and
//! reopen to take PostgreSQL away and bring it back. Tests get the first and the third through
//! `helpers::postgres_or_skip` and `helpers::redis_server_or_skip`, which skip (or, under
//! `VERIFYD_TEST_REQUIRE_ALL=1`, fail) when the machine has no such thing. What this file
//! starts listens on 127.0.0.1 only.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::RngCore;
use sqlx::Connection;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

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
    /// The server's address (for a [`TcpProxy`] in front of it).
    pub server: SocketAddr,
    /// The URL the database was created through.
    admin_url: reqwest::Url,
}

impl TestDb {
    /// Creates a database on the server of `admin_url`. `Err` (why) when the server cannot
    /// be reached; a server that answers but refuses the database fails the test.
    pub async fn create_on(admin_url: &str) -> Result<TestDb, String> {
        let admin_url = reqwest::Url::parse(admin_url)
            .unwrap_or_else(|e| panic!("{admin_url} is not a PostgreSQL URL: {e}"));
        let host = admin_url.host_str().unwrap_or("127.0.0.1").to_owned();
        let port = admin_url.port().unwrap_or(5432);
        let server = tokio::net::lookup_host((host.as_str(), port))
            .await
            .ok()
            .and_then(|mut addrs| addrs.next())
            .ok_or_else(|| format!("{host}:{port} does not resolve"))?;
        let connect = sqlx::PgConnection::connect(admin_url.as_str());
        let mut admin = match tokio::time::timeout(Duration::from_secs(5), connect).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return Err(format!("cannot connect ({e})")),
            Err(_) => return Err("no answer within 5 s".to_owned()),
        };
        let name = format!("verifyd_test_{}", tag());
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create the test database");
        let _ = admin.close().await;
        Ok(TestDb {
            name,
            server,
            admin_url,
        })
    }

    /// The URL of this database on its server.
    pub fn url(&self) -> String {
        let mut url = self.admin_url.clone();
        url.set_path(&self.name);
        url.to_string()
    }

    /// The URL of this database through `addr` (a [`TcpProxy`]).
    pub fn url_via(&self, addr: SocketAddr) -> String {
        let mut url = self.admin_url.clone();
        url.set_path(&self.name);
        url.set_ip_host(addr.ip()).expect("a URL with a host");
        url.set_port(Some(addr.port())).expect("a URL with a host");
        url.to_string()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        let admin_url = self.admin_url.to_string();
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
                if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url).await {
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
    binary: PathBuf,
    child: Option<Child>,
    extra: Vec<String>,
}

impl RedisServer {
    /// Starts `binary` (from `helpers::redis_server_or_skip`) with nothing on disk
    /// (`--save "" --appendonly no`), like the machine's.
    pub async fn start(binary: &Path) -> RedisServer {
        Self::start_with(binary, free_port(), &[]).await
    }

    /// Starts one on `port` with extra arguments (for example AOF in a directory).
    pub async fn start_with(binary: &Path, port: u16, extra: &[&str]) -> RedisServer {
        let mut server = RedisServer {
            port,
            binary: binary.to_owned(),
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
        let mut cmd = Command::new(&self.binary);
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.child = Some(
            cmd.spawn()
                .unwrap_or_else(|e| panic!("{} starts: {e}", self.binary.display())),
        );
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
