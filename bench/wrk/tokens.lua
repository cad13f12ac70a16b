-- tokens.lua: GETs carrying "Authorization: Bearer <token>", tokens read from
-- a file (one per line). Used by the jwt-reuse and jwt-fresh workloads.
--
-- Script arguments (after wrk's "--"):
--   1 FILE     token file, one token per line
--   2 MODE     "reuse": every thread cycles through its share of the tokens
--                       (clients reuse a token for its lifetime);
--              "fresh": every request should carry a never-seen token; when a
--                       thread runs out it wraps around and the wrap is
--                       counted (reported as extra.wraps: a non-zero value
--                       means the file was too small and the run is invalid).
--   3 THREADS  number of wrk threads (-t), so threads take disjoint shares
--   4 START    (optional, default 1) first line to use, so interleaved rounds
--              of a "fresh" run can each start on unused tokens
--
-- Manual use:
--   wrk -t1 -c64 -d10s --latency -s bench/wrk/tokens.lua URL -- tokens.txt reuse 1
-- Requests are formatted once in init, so the per-request cost in wrk is a
-- table lookup (wrk shares a CPU with the sample upstream).

local threads = {}
local next_id = 0

setup = function(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local reqs = {}
local pos = 1
wraps = 0

init = function(args)
  local file, mode = args[1], args[2]
  local nthreads = tonumber(args[3] or "1")
  local start = tonumber(args[4] or "1")
  if file == nil or (mode ~= "reuse" and mode ~= "fresh") then
    error("usage: -- FILE reuse|fresh THREADS [START]")
  end
  local f = assert(io.open(file, "r"))
  local line_no = 0
  for line in f:lines() do
    line_no = line_no + 1
    if line_no >= start and line ~= "" and (line_no - start) % nthreads == id then
      reqs[#reqs + 1] = wrk.format(nil, nil, {
        ["Host"] = wrk.host,
        ["Authorization"] = "Bearer " .. line,
      })
    end
  end
  f:close()
  if #reqs == 0 then
    error("no tokens for thread " .. id .. " in " .. file)
  end
end

request = function()
  local r = reqs[pos]
  pos = pos + 1
  if pos > #reqs then
    pos = 1
    wraps = wraps + 1
  end
  return r
end

bench_extra = function()
  local w = 0
  for _, t in ipairs(threads) do
    w = w + (t:get("wraps") or 0)
  end
  return string.format('{"wraps":%d}', w)
end
