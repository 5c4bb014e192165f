#!/usr/bin/env bash
# Measures send-code requests/s of one release-built node on SQLite + in-memory limiter and on
# PostgreSQL + Redis, in one run on this machine (wrk on 127.0.0.1, distinct numbers so every
# request creates a verification). Needs wrk (apt-get install -y wrk) and the machine's
# PostgreSQL and Redis (scripts/test starts them). Usage: scripts/bench-send-code.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
cargo build --release --quiet
BIN=target/release/verifyd
WORK=$(mktemp -d)
TAG=$(head -c4 /dev/urandom | od -An -tx1 | tr -d ' \n')
DB=verifyd_bench_$TAG
KEY=bench-api-key-0123456789
SECRET=bench-secret-0123456789-0123456789-abcdef
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# Each wrk thread walks its own area codes: up to 10 000 numbers per area code, each used once.
cat > "$WORK/send.lua" <<'LUA'
local counter = 0
local areas = {}
function setup(thread)
  local id = #areas
  table.insert(areas, id)
  thread:set("offset", id)
end
function request()
  local area = ({415, 650, 510, 408, 212, 646, 718, 917, 312, 773, 213, 310, 619, 858, 206, 503})[(offset * 8) + math.floor(counter / 10000) % 8 + 1]
  local number = string.format("+1%d555%04d", area, counter % 10000)
  counter = counter + 1
  return wrk.format("POST", "/mfa/send-code",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer bench-api-key-0123456789"},
    '{"recipient":"' .. number .. '"}')
end
LUA

# run NAME BUCKET_MAX ENV...: starts a node, loads it, prints wrk's summary.
run() {
    local name=$1 ip_max=$2
    shift 2
    env -i PATH="$PATH" VERIFYD_ADDR=127.0.0.1:0 RUST_LOG=warn,verifyd::app=info VERIFYD_API_KEYS=$KEY \
        VERIFYD_SECRET=$SECRET VERIFYD_RATE_LIMIT_IP_MAX="$ip_max" VERIFYD_RATE_LIMIT_IP_INTERVAL=1 \
        "$@" "$BIN" serve >/dev/null 2>"$WORK/$name.log" &
    PIDS+=($!)
    local addr=""
    for _ in $(seq 100); do
        addr=$(grep -o 'listening on [0-9.:]*' "$WORK/$name.log" | head -1 | cut -d' ' -f3 || true)
        [ -n "$addr" ] && break
        sleep 0.1
    done
    [ -n "$addr" ] || { cat "$WORK/$name.log"; exit 1; }
    echo "== $name (IP bucket max $ip_max per 1 s; 0 = off)"
    local before=$(grep -c 'request failed' "$WORK/$name.log" || true)
    wrk -t2 -c64 -d"${DURATION}s" -s "$WORK/send.lua" "http://$addr" | grep -E 'Requests/sec|Latency|Non-2xx|requests in'
    kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true
    grep -o 'status=[0-9]*.*error=.*' "$WORK/$name.log" | cut -c1-160 | sort | uniq -c | head -3 || true
}

psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $DB" >/dev/null
for ip_max in 0 1000000; do
    run "sqlite-memory-$ip_max" "$ip_max" VERIFYD_DATABASE_URL="sqlite://$WORK/bench-$ip_max.db"
    run "sqlite-normal-memory-$ip_max" "$ip_max" VERIFYD_DATABASE_URL="sqlite://$WORK/bench-normal-$ip_max.db" \
        VERIFYD_SQLITE_SYNCHRONOUS=normal
    run "postgres-redis-$ip_max" "$ip_max" VERIFYD_DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB" \
        VERIFYD_REDIS_URL=redis://127.0.0.1:6379 VERIFYD_REDIS_PREFIX="verifyd_bench_${TAG}_${ip_max}:"
    psql -h 127.0.0.1 -U postgres -d "$DB" -qc "SET client_min_messages = warning; TRUNCATE verifications CASCADE" >/dev/null
done
