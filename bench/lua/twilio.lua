-- wrk script that loads the fake Twilio directly with what verifyd sends it in the
-- `twilio-overhead` scenario: POST /v2/Services/{VA…}/Verifications, form-encoded To and
-- Channel, HTTP Basic auth. Its latency is subtracted from verifyd's to get verifyd's own.
local common = dofile((os.getenv("BENCH_LUA_DIR") or "bench/lua") .. "/common.lua")

local SERVICE = "VA0123456789abcdef0123456789abcdef"
-- base64("AC0123456789abcdef0123456789abcdef:fedcba9876543210fedcba9876543210")
local AUTH = "Basic QUMwMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZjpmZWRjYmE5ODc2NTQzMjEwZmVkY2JhOTg3NjU0MzIxMA=="

local n
function init(args)
  n = id
end

function request()
  local k = common.offset + n
  n = n + common.threads
  local to = string.gsub(common.number(k), "%+", "%%2B")
  return wrk.format("POST", "/v2/Services/" .. SERVICE .. "/Verifications", {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Authorization"] = AUTH,
  }, "To=" .. to .. "&Channel=sms")
end
