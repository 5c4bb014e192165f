-- wrk script for the flood scenarios (issue 24): what an attacker sends, each request refused.
-- BENCH_FLOOD selects the flood:
--   429      one client address (X-Forwarded-For) sending fresh numbers with a valid API key:
--            with verifyd's default limits every request after the IP bucket's few is a 429;
--   401      fresh numbers with a wrong API key: every request is a 401;
--   invalid  a valid API key and bodies that are refused as malformed: truncated JSON, a body
--            that is not an object, a recipient that is not a string (400 invalid_body).
-- The floor gets the same requests (it answers them all, the malformed ones with its own 4xx).
local common = dofile((os.getenv("BENCH_LUA_DIR") or "bench/lua") .. "/common.lua")

local flood = os.getenv("BENCH_FLOOD") or "429"
local attacker = "203.0.113.7" -- TEST-NET-3 (documentation): header text only
local malformed = {
  '{"recipient":"+1212',
  '["+12125550100","sms"]',
  '{"recipient":12125550100,"channel":"sms"}',
}

local n
function init(args)
  n = id
end

function request()
  local k = common.offset + n
  n = n + common.threads
  local key = common.key
  local body = '{"recipient":"' .. common.number(k) .. '","channel":"sms"}'
  if flood == "401" then
    key = "not-the-key-" .. (k % 1000)
  elseif flood == "invalid" then
    body = malformed[(k % #malformed) + 1]
  end
  return wrk.format("POST", "/mfa/send-code", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. key,
    ["X-Forwarded-For"] = attacker,
  }, body)
end
