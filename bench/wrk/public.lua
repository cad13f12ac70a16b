-- public.lua: plain GETs of the public benchmark route. wrk's default request
-- (GET of the URL path, keep-alive) is exactly what this workload needs, so
-- the script only names the workload; report.lua is appended by the harness.
--
-- Manual use: wrk -t1 -c64 -d10s --latency -s bench/wrk/public.lua http://127.0.0.1:PORT/public/hello
wrk.method = "GET"
