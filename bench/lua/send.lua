-- wrk script for the `send` scenario (and the floor it is compared with): POST /mfa/send-code,
-- every request to another number (distinct across threads) from another client IP
-- (X-Forwarded-For; verifyd trusts it from 127.0.0.1 when bench/run starts it).
local common = dofile((os.getenv("BENCH_LUA_DIR") or "bench/lua") .. "/common.lua")

local n
function init(args)
  n = id
end

function request()
  local k = common.offset + n
  n = n + common.threads
  return wrk.format("POST", "/mfa/send-code", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. common.key,
    ["X-Forwarded-For"] = common.client_ip(k),
  }, '{"recipient":"' .. common.number(k) .. '","channel":"sms"}')
end
