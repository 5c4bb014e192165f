-- wrk script for the `verify` scenario: POST /mfa/verify against the pool of pending
-- verifications that bench/run seeded (test numbers 0..BENCH_VERIFY_POOL-1 with fixed codes).
-- Half the checks carry a wrong code (400 incorrect_code, counted), half the right one (200,
-- approves). Thread t uses pool numbers t, t+T, t+2T, ... (T threads); its j-th request checks
-- number m=(j-1)/2 with the right code when j is odd, and number m=j/2+LEAD with a wrong code
-- when j is even, so each number's wrong check is long answered before its right check comes.
-- A 404 means the pool was used up (bench/run reports it).
local common = dofile((os.getenv("BENCH_LUA_DIR") or "bench/lua") .. "/common.lua")

local LEAD = 1000
local j

function init(args)
  j = 0
end

function request()
  local m, code
  if j % 2 == 1 then
    m = (j - 1) / 2
  else
    m = j / 2 + LEAD
  end
  local k = m * common.threads + id
  if j % 2 == 1 then
    code = common.right_code(k)
  else
    code = common.wrong_code(k)
  end
  j = j + 1
  return wrk.format("POST", "/mfa/verify", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. common.key,
    ["X-Forwarded-For"] = common.client_ip(k),
  }, '{"recipient":"' .. common.number(k) .. '","code":"' .. code .. '"}')
end
