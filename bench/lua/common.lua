-- Shared by the bench/ wrk scripts: thread numbering, the numbering scheme of
-- bench/tools/src/lib.rs (index k -> one distinct valid US number), distinct client IPs for
-- X-Forwarded-For, per-status counting, and the one machine-readable `BENCH` line that
-- bench/run reads. Settings come from the environment bench/run sets:
-- BENCH_THREADS (wrk -t), BENCH_API_KEY, BENCH_OFFSET (first number index of this run).

local common = {}

common.threads = tonumber(os.getenv("BENCH_THREADS") or "2")
common.offset = tonumber(os.getenv("BENCH_OFFSET") or "0")
common.key = os.getenv("BENCH_API_KEY") or "bench-key"

-- k -> "+1 212 EEE LLLL", exchange 200 + k / 10000, line k % 10000 (8 M numbers).
function common.number(k)
  k = k % 8000000
  return string.format("+1212%03d%04d", 200 + math.floor(k / 10000), k % 10000)
end

-- The fixed code of pool number k (its last six digits) and a wrong one (last digit + 1).
function common.right_code(k)
  return string.sub(common.number(k), -6)
end

function common.wrong_code(k)
  local right = common.right_code(k)
  local last = (tonumber(string.sub(right, -1)) + 1) % 10
  return string.sub(right, 1, 5) .. tostring(last)
end

-- Client k: three in four from 198.18.0.0/15 (RFC 2544's benchmarking range), one in four
-- from its own IPv6 /64 in 2001:db8::/32 (documentation). Only header text: no traffic goes
-- anywhere but 127.0.0.1.
function common.client_ip(k)
  if k % 4 == 3 then
    return string.format("2001:db8:%x:%x::1", math.floor(k / 65536) % 65536, k % 65536)
  end
  local n = k % 131072
  return string.format("198.%d.%d.%d", 18 + math.floor(n / 65536), math.floor(n / 256) % 256, n % 256)
end

-- wrk calls setup() once per thread in the main Lua state, before the threads start.
local all_threads = {}
function setup(thread)
  thread:set("id", #all_threads)
  table.insert(all_threads, thread)
end

-- Per thread: responses by status code.
statuses = {}
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local merged = {}
  for _, thread in ipairs(all_threads) do
    local counts = thread:get("statuses") or {}
    for status, n in pairs(counts) do
      merged[status] = (merged[status] or 0) + n
    end
  end
  local codes = {}
  for status, _ in pairs(merged) do
    table.insert(codes, status)
  end
  table.sort(codes)
  local parts = {}
  for _, status in ipairs(codes) do
    table.insert(parts, status .. ":" .. merged[status])
  end
  local e = summary.errors
  local seconds = summary.duration / 1e6
  io.write(string.format(
    "BENCH requests=%d seconds=%.2f rps=%.0f p50_us=%d p90_us=%d p99_us=%d max_us=%d " ..
    "socket_errors=%d statuses=%s\n",
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.connect + e.read + e.write + e.timeout, table.concat(parts, ",")))
end

return common
