-- token-call.lua: "get a token, call a protected route". Each connection's
-- requests alternate between a client-credentials POST to the token endpoint
-- and a GET of a jwt route carrying a token just issued; every token is used
-- for exactly one call, so each call also pays for one uncached verification.
--
-- wrk hands responses to one Lua state per thread without saying which
-- request they answer, so the thread keeps a queue: a token response adds its
-- access_token, and the next request takes a token from the queue if there
-- is one (a call) or asks for a new one (a token POST).
--
-- Script arguments (after wrk's "--"):
--   1 TOKEN_PATH     e.g. /oauth2/token
--   2 BODY           token request form body (grant_type=client_credentials&...)
--   3 AUTHORIZATION  client authentication header value ("Basic ...")
--   4 CALL_PATH      the protected route, e.g. /token-call/hello
--
-- extra: {"tokens": N, "calls": M} — token responses seen and protected
-- calls answered 2xx; M / duration is the rate the workload reports.

local token_req
local call_path
local queue = {}
local head, tail = 1, 0
local threads = {}
tokens = 0
calls = 0

setup = function(thread)
  table.insert(threads, thread)
end

init = function(args)
  if args[4] == nil then
    error("usage: -- TOKEN_PATH BODY AUTHORIZATION CALL_PATH")
  end
  token_req = wrk.format("POST", args[1], {
    ["Host"] = wrk.host,
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Authorization"] = args[3],
  }, args[2])
  call_path = args[4]
end

request = function()
  if head <= tail then
    local tok = queue[head]
    queue[head] = nil
    head = head + 1
    return wrk.format("GET", call_path, {["Host"] = wrk.host, ["Authorization"] = "Bearer " .. tok}, nil)
  end
  return token_req
end

response = function(status, headers, body)
  local tok = string.match(body, '"access_token":"([^"]+)"')
  if tok ~= nil then
    tokens = tokens + 1
    tail = tail + 1
    queue[tail] = tok
  elseif status >= 200 and status < 300 then
    calls = calls + 1
  end
end

bench_extra = function()
  local t, c = 0, 0
  for _, th in ipairs(threads) do
    t = t + (th:get("tokens") or 0)
    c = c + (th:get("calls") or 0)
  end
  return string.format('{"tokens":%d,"calls":%d}', t, c)
end
