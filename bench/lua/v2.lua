-- wrk script for the `twilio-api` scenario: POST /v2/Services/{VA}/Verifications as Twilio's
-- SDKs send it (form body, HTTP Basic auth: the account SID and an API key), every request to
-- another number (distinct across threads) with the end user's address as DeviceIp (the same
-- addresses send.lua puts in X-Forwarded-For). bench/run sets BENCH_BASIC (base64 of
-- "AC…:key") and BENCH_SERVICE (the VA… sid).
local common = dofile((os.getenv("BENCH_LUA_DIR") or "bench/lua") .. "/common.lua")

local basic = os.getenv("BENCH_BASIC") or ""
local path = "/v2/Services/" .. (os.getenv("BENCH_SERVICE") or "") .. "/Verifications"

local function form_escape(s)
  return (string.gsub(s, "[^%w%.%-_]", function(c)
    return string.format("%%%02X", string.byte(c))
  end))
end

local n
function init(args)
  n = id
end

function request()
  local k = common.offset + n
  n = n + common.threads
  return wrk.format("POST", path, {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Authorization"] = "Basic " .. basic,
  }, "To=" .. form_escape(common.number(k)) .. "&Channel=sms&DeviceIp=" .. form_escape(common.client_ip(k)))
end
