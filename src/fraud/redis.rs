//! The fraud guard's state in Redis, shared by every replica (so a block started on one is in
//! force on all at once). A transaction reads its records (`MGET`), runs the same arithmetic as
//! the memory guard ([`super::state`]) in this process, and writes the results with one Lua
//! script that first checks that no record changed since it was read (each value carries a
//! version): compare-and-set, retried on a conflict. Records expire (`PX`) once nothing in them
//! matters. Blocks are also indexed in one sorted set (score: the block's end) for
//! `verifyd guard status`. Every call is bounded by the store timeout; an error or a run of
//! conflicts is a [`GuardError`] and the send is refused 503 (fail closed).

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::state::{Att, Dest, Rules};
use super::{GuardBackend, GuardError, Txn};
use crate::error::Context;

/// Compare-and-set of `n = ARGV[1]` records.
///
/// `KEYS[1..n]`: the records; `KEYS[n+1]`: the block index. `ARGV[1+i]`: record i's version
/// as read (`0`: absent); `ARGV[1+n+i]`: its new value (`version:json`, or empty to delete);
/// `ARGV[1+2n+i]`: its time to live in ms; `ARGV[1+3n+i]`: its block end in ms for the index
/// (`0` takes it out, `-` leaves the index alone). Returns 1 when written, 0 on a conflict
/// (nothing written).
const CAS_SCRIPT: &str = r"
local n = tonumber(ARGV[1])
for i = 1, n do
  local cur = redis.call('GET', KEYS[i])
  local v = '0'
  if cur then
    v = string.match(cur, '^(%d+):') or '0'
  end
  if v ~= ARGV[1 + i] then
    return 0
  end
end
for i = 1, n do
  local value = ARGV[1 + n + i]
  if value == '' then
    redis.call('DEL', KEYS[i])
  else
    redis.call('SET', KEYS[i], value, 'PX', math.max(tonumber(ARGV[1 + 2 * n + i]), 1))
  end
  local until_ms = ARGV[1 + 3 * n + i]
  if until_ms == '0' then
    redis.call('ZREM', KEYS[n + 1], KEYS[i])
  elseif until_ms ~= '-' then
    redis.call('ZADD', KEYS[n + 1], tonumber(until_ms), KEYS[i])
  end
end
return 1
";

/// How many times a transaction is retried after a conflict before the send is refused.
const ATTEMPTS: usize = 64;

/// Guard records in Redis.
pub struct RedisGuard {
    connection: ConnectionManager,
    script: redis::Script,
    prefix: String,
    timeout: Duration,
}

impl RedisGuard {
    /// A guard on `url` under `prefix` (the limiter's, plus `fg:`), connected on first use.
    ///
    /// # Errors
    /// [`GuardError`] when the URL cannot be parsed.
    pub fn new(url: &str, prefix: &str, timeout: Duration) -> Result<Self, GuardError> {
        let client = redis::Client::open(url)
            .map_err(|_| GuardError::new("the Redis URL cannot be parsed"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(200));
        let connection = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| GuardError::new(Context::new("cannot set up the Redis connection", e)))?;
        Ok(Self {
            connection,
            script: redis::Script::new(CAS_SCRIPT),
            prefix: format!("{prefix}fg:"),
            timeout,
        })
    }

    fn key(&self, k: &str) -> String {
        format!("{}{k}", self.prefix)
    }

    async fn bounded<T>(
        &self,
        what: &str,
        op: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, GuardError> {
        match tokio::time::timeout(self.timeout, op).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(GuardError::new(Context::new(
                format!("Redis {what} failed"),
                e,
            ))),
            Err(_) => Err(GuardError::new(format!("Redis {what} timed out"))),
        }
    }

    async fn mget(&self, keys: &[String]) -> Result<Vec<Option<String>>, GuardError> {
        let mut connection = self.connection.clone();
        let mut cmd = redis::cmd("MGET");
        for k in keys {
            cmd.arg(k);
        }
        self.bounded(
            "MGET",
            cmd.query_async::<Vec<Option<String>>>(&mut connection),
        )
        .await
    }
}

/// `version:json` → (version, json).
fn split(value: Option<&str>) -> (u64, Option<&str>) {
    value
        .and_then(|v| v.split_once(':'))
        .and_then(|(ver, json)| ver.parse().ok().map(|ver| (ver, Some(json))))
        .unwrap_or((0, None))
}

#[async_trait]
impl GuardBackend for RedisGuard {
    async fn update(
        &self,
        dests: &[String],
        att: Option<&str>,
        rules: &Rules,
        now: i64,
        f: Txn<'_>,
    ) -> Result<(), GuardError> {
        let mut keys: Vec<String> = dests.iter().map(|k| self.key(k)).collect();
        if let Some(a) = att {
            keys.push(self.key(a));
        }
        let index = self.key("blocks");
        // One failed call is retried once: after Redis restarts, the first call on the old
        // connection fails and makes the manager reconnect (the limiter's own ping has already
        // found Redis back by then).
        let mut retried = false;
        for _ in 0..ATTEMPTS {
            let values = match self.mget(&keys).await {
                Ok(v) => v,
                Err(_) if !retried => {
                    retried = true;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let mut versions = Vec::with_capacity(keys.len());
            let mut records = Vec::with_capacity(dests.len());
            let mut was_blocked = Vec::with_capacity(dests.len());
            for v in &values[..dests.len()] {
                let (ver, json) = split(v.as_deref());
                versions.push(ver);
                let d: Dest = json
                    .and_then(|j| serde_json::from_str(j).ok())
                    .unwrap_or_default();
                was_blocked.push(d.until);
                records.push(d);
            }
            let mut a: Option<Att> = None;
            if att.is_some() {
                let (ver, json) = split(values.last().and_then(|v| v.as_deref()));
                versions.push(ver);
                a = json.and_then(|j| serde_json::from_str(j).ok());
            }
            f(&mut records, &mut a);
            let mut invocation = self.script.prepare_invoke();
            for k in &keys {
                invocation.key(k);
            }
            invocation.key(&index);
            let n = keys.len();
            invocation.arg(n);
            for v in &versions {
                invocation.arg(v.to_string());
            }
            let mut ttls = Vec::with_capacity(n);
            let mut untils = Vec::with_capacity(n);
            for (i, d) in records.iter().enumerate() {
                let json = serde_json::to_string(d)
                    .map_err(|e| GuardError::new(Context::new("cannot encode a record", e)))?;
                invocation.arg(format!("{}:{json}", versions[i] + 1));
                ttls.push((d.expires_at(rules) - now).max(1));
                untils.push(if d.until == was_blocked[i] {
                    "-".to_owned()
                } else if d.until > now {
                    d.until.to_string()
                } else {
                    "0".to_owned()
                });
            }
            if att.is_some() {
                match a {
                    Some(a) => {
                        let json = serde_json::to_string(&a).map_err(|e| {
                            GuardError::new(Context::new("cannot encode a record", e))
                        })?;
                        invocation.arg(format!("{}:{json}", versions[n - 1] + 1));
                        ttls.push((a.t + rules.window_ms - now).max(1));
                    }
                    None => {
                        invocation.arg("");
                        ttls.push(1);
                    }
                }
                untils.push("-".to_owned());
            }
            for t in ttls {
                invocation.arg(t);
            }
            for u in untils {
                invocation.arg(u);
            }
            let mut connection = self.connection.clone();
            let written: i64 = match self
                .bounded(
                    "fraud-guard script",
                    invocation.invoke_async(&mut connection),
                )
                .await
            {
                Ok(w) => w,
                Err(_) if !retried => {
                    retried = true;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if written == 1 {
                return Ok(());
            }
            tokio::task::yield_now().await;
        }
        metrics::counter!("verifyd_fraud_guard_conflicts_total").increment(1);
        Err(GuardError::new(
            "the fraud guard's records kept changing under this transaction (too much contention)",
        ))
    }

    async fn read(&self, keys: &[String], _now: i64) -> Result<Vec<Option<Dest>>, GuardError> {
        let keys: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
        let values = self.mget(&keys).await?;
        Ok(values
            .iter()
            .map(|v| {
                split(v.as_deref())
                    .1
                    .and_then(|j| serde_json::from_str(j).ok())
            })
            .collect())
    }

    async fn blocked(&self, now: i64) -> Result<Vec<(String, Dest)>, GuardError> {
        let mut connection = self.connection.clone();
        let index = self.key("blocks");
        // Blocks that ended leave the index here (nothing else reads it).
        let _: i64 = self
            .bounded(
                "ZREMRANGEBYSCORE",
                redis::cmd("ZREMRANGEBYSCORE")
                    .arg(&index)
                    .arg("-inf")
                    .arg(now)
                    .query_async::<i64>(&mut connection),
            )
            .await?;
        let members: Vec<String> = self
            .bounded(
                "ZRANGEBYSCORE",
                redis::cmd("ZRANGEBYSCORE")
                    .arg(&index)
                    .arg(format!("({now}"))
                    .arg("+inf")
                    .query_async::<Vec<String>>(&mut connection),
            )
            .await?;
        if members.is_empty() {
            return Ok(Vec::new());
        }
        let values = self.mget(&members).await?;
        let mut out: Vec<(String, Dest)> = members
            .iter()
            .zip(values)
            .filter_map(|(k, v)| {
                let d: Dest = split(v.as_deref())
                    .1
                    .and_then(|j| serde_json::from_str(j).ok())?;
                let short = k.strip_prefix(&self.prefix).unwrap_or(k).to_owned();
                d.blocked(now).then_some((short, d))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    fn name(&self) -> &'static str {
        "redis"
    }
}
