//! The shared limiter: GCRA buckets in Redis, so every replica charges the same buckets. One
//! decision is one Lua script, run atomically by Redis: it reads every bucket of the request,
//! and only if all of them have room writes all their new TATs (all or nothing, exactly like
//! [`super::MemoryLimiter`], with the arithmetic of [`super::gcra`]). Each key expires
//! (`PX`) at the moment its bucket is back at full allowance, so Redis holds only buckets in
//! use and needs nothing on disk; a Redis that restarts without persistence starts every
//! bucket full again (the README says so and recommends AOF).
//!
//! Time is the caller's `now` (tests move a manual clock), never Redis's own clock. The
//! connection is a [`ConnectionManager`] that reconnects by itself; every call is bounded by
//! short connect/response timeouts and an overall deadline, so an outage turns into a
//! [`LimiterError`] (503) within about the store timeout, and the next call after Redis is back
//! succeeds. This module does not choose buckets: the policy does.

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{Decision, Limiter, LimiterError};
use crate::domain::Timestamp;
use crate::error::Context;
use crate::policy::BucketRequest;

/// All-or-nothing GCRA over `#KEYS` buckets.
///
/// `KEYS[i]`: bucket i's Redis key. `ARGV[1]`: now, in µs. `ARGV[2i]`, `ARGV[2i+1]`: bucket i's
/// `max` (≥ 1) and `interval` (µs). Returns `{0, 0}` when every bucket had room and was charged,
/// else `{i, wait_us}` for the refusing bucket with the longest wait (the first on a tie), with
/// nothing written. Numbers stay below 2^53, so Lua's doubles hold them exactly; TATs are
/// written with `%.0f` because `tostring` would round them to 14 digits.
const GCRA_SCRIPT: &str = r"
local now = tonumber(ARGV[1])
local new_tats = {}
local refused, longest = 0, -1
for i = 1, #KEYS do
  local max = tonumber(ARGV[2 * i])
  local interval = tonumber(ARGV[2 * i + 1])
  local emission = math.max(math.floor(interval / max), 1)
  local stored = redis.call('GET', KEYS[i])
  local tat = now
  if stored then
    tat = math.max(tonumber(stored), now)
  end
  local new_tat = tat + emission
  local allow_at = new_tat - interval
  if allow_at > now then
    if allow_at - now > longest then
      refused, longest = i, allow_at - now
    end
  else
    new_tats[i] = new_tat
  end
end
if refused > 0 then
  return {refused, longest}
end
for i = 1, #KEYS do
  local ttl_ms = math.ceil((new_tats[i] - now) / 1000)
  redis.call('SET', KEYS[i], string.format('%.0f', new_tats[i]), 'PX', ttl_ms)
end
return {0, 0}
";

/// Gives one request back to each of `#KEYS` buckets, atomically (see [`super::gcra::refund`]).
///
/// `KEYS[i]`, `ARGV[1]`, `ARGV[2i]`, `ARGV[2i+1]`: as in [`GCRA_SCRIPT`]. A bucket whose TAT
/// falls to `now` or before is back at full allowance and is deleted.
const REFUND_SCRIPT: &str = r"
local now = tonumber(ARGV[1])
for i = 1, #KEYS do
  local stored = redis.call('GET', KEYS[i])
  if stored then
    local max = tonumber(ARGV[2 * i])
    local interval = tonumber(ARGV[2 * i + 1])
    local emission = math.max(math.floor(interval / max), 1)
    local new_tat = tonumber(stored) - emission
    if new_tat > now then
      local ttl_ms = math.ceil((new_tat - now) / 1000)
      redis.call('SET', KEYS[i], string.format('%.0f', new_tat), 'PX', ttl_ms)
    else
      redis.call('DEL', KEYS[i])
    end
  end
end
return 0
";

/// How to reach Redis.
#[derive(Clone, Debug)]
pub struct RedisSettings {
    /// Prepended to every key (`verifyd:` by default).
    pub prefix: String,
    /// Bound on connecting, on each reply, and on one whole decision.
    pub timeout: Duration,
}

/// GCRA buckets in Redis, shared by every replica that uses the same Redis and prefix.
pub struct RedisLimiter {
    connection: ConnectionManager,
    script: redis::Script,
    refund_script: redis::Script,
    prefix: String,
    timeout: Duration,
}

impl RedisLimiter {
    /// A limiter for `url` that connects on first use (so a replica starts while Redis is down,
    /// reports not ready, and serves 503 until Redis answers).
    ///
    /// # Errors
    /// [`LimiterError`] when the URL cannot be parsed.
    pub fn new(url: &str, settings: RedisSettings) -> Result<Self, LimiterError> {
        let client = redis::Client::open(url)
            .map_err(|_| LimiterError::new("the Redis URL cannot be parsed"))?;
        // Short timeouts and a single quick retry: the caller answers 503 fast, and the
        // manager starts a fresh connection attempt on the next call after an I/O error.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.timeout))
            .set_response_timeout(Some(settings.timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(200));
        let connection = ConnectionManager::new_lazy_with_config(client, config).map_err(|e| {
            LimiterError::new(Context::new("cannot set up the Redis connection", e))
        })?;
        Ok(Self {
            connection,
            script: redis::Script::new(GCRA_SCRIPT),
            refund_script: redis::Script::new(REFUND_SCRIPT),
            prefix: settings.prefix,
            timeout: settings.timeout,
        })
    }

    /// Runs `op` within the deadline, mapping every failure to a [`LimiterError`].
    async fn bounded<T>(
        &self,
        what: &str,
        op: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, LimiterError> {
        match tokio::time::timeout(self.timeout, op).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(LimiterError::new(Context::new(
                format!("Redis {what} failed"),
                e,
            ))),
            Err(_) => Err(LimiterError::new(format!("Redis {what} timed out"))),
        }
    }
}

/// Microseconds as an integer Lua reads exactly (below 2^53).
fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros())
        .unwrap_or(i64::MAX)
        .min(1 << 52)
}

impl RedisLimiter {
    /// Adds the buckets' keys, `now` and their sizes to a script run, as both scripts read them.
    fn bucket_args(
        &self,
        invocation: &mut redis::ScriptInvocation<'_>,
        buckets: &[BucketRequest],
        now: Timestamp,
    ) {
        for bucket in buckets {
            invocation.key(format!("{}{}", self.prefix, bucket.storage_key()));
        }
        invocation.arg(now.as_millis().saturating_mul(1000));
        for bucket in buckets {
            invocation
                .arg(bucket.max.max(1))
                .arg(micros(bucket.interval).max(1));
        }
    }

    /// One script run: decides for every bucket; charges them all only when allowed.
    async fn decide(
        &self,
        buckets: &[BucketRequest],
        now: Timestamp,
    ) -> Result<Decision, LimiterError> {
        if buckets.is_empty() {
            return Ok(Decision::Allowed);
        }
        let mut invocation = self.script.prepare_invoke();
        self.bucket_args(&mut invocation, buckets, now);
        let mut connection = self.connection.clone();
        let (index, wait_us): (i64, i64) = self
            .bounded(
                "rate-limit script",
                invocation.invoke_async(&mut connection),
            )
            .await?;
        if index == 0 {
            return Ok(Decision::Allowed);
        }
        let bucket = usize::try_from(index - 1)
            .ok()
            .and_then(|i| buckets.get(i))
            .ok_or_else(|| LimiterError::new(format!("Redis script named bucket {index}")))?;
        Ok(Decision::Limited {
            bucket: bucket.name,
            retry_after: Duration::from_micros(u64::try_from(wait_us).unwrap_or(0)),
        })
    }
}

#[async_trait]
impl Limiter for RedisLimiter {
    async fn acquire(
        &self,
        buckets: &[BucketRequest],
        now: Timestamp,
    ) -> Result<Decision, LimiterError> {
        self.decide(buckets, now).await
    }

    async fn refund(&self, buckets: &[BucketRequest], now: Timestamp) -> Result<(), LimiterError> {
        if buckets.is_empty() {
            return Ok(());
        }
        let mut invocation = self.refund_script.prepare_invoke();
        self.bucket_args(&mut invocation, buckets, now);
        let mut connection = self.connection.clone();
        let _: i64 = self
            .bounded("refund script", invocation.invoke_async(&mut connection))
            .await?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), LimiterError> {
        let mut connection = self.connection.clone();
        let pong: String = self
            .bounded(
                "PING",
                redis::cmd("PING").query_async::<String>(&mut connection),
            )
            .await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(LimiterError::new("Redis answered PING oddly"))
        }
    }

    fn name(&self) -> &'static str {
        "redis"
    }
}
