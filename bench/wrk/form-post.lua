-- form-post.lua: application/x-www-form-urlencoded POSTs with a fixed body
-- and an optional Authorization header. Intended for the token-issue
-- (client-credentials grant at /oauth2/token) and introspect (RFC 7662)
-- workloads.
--
-- Script arguments (after wrk's "--"):
--   1 BODY           form body, already URL-encoded
--                    (e.g. grant_type=client_credentials&scope=read)
--   2 AUTHORIZATION  (optional) full header value, e.g. "Basic <base64>"
--
-- Manual use:
--   wrk -t1 -c64 -d10s --latency -s bench/wrk/form-post.lua URL -- 'grant_type=client_credentials' 'Basic ...'

local req

init = function(args)
  if args[1] == nil then
    error("usage: -- BODY [AUTHORIZATION]")
  end
  local headers = {
    ["Host"] = wrk.host,
    ["Content-Type"] = "application/x-www-form-urlencoded",
  }
  if args[2] ~= nil and args[2] ~= "" then
    headers["Authorization"] = args[2]
  end
  req = wrk.format("POST", nil, headers, args[1])
end

request = function()
  return req
end
