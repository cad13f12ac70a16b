-- report.lua: appended by the harness to every workload script. It prints one
-- machine-readable line at the end of a wrk run so the harness does not have
-- to parse wrk's human-readable, unit-rounded text output. Latencies are in
-- microseconds, exactly as wrk recorded them.
--
-- A workload script may define bench_extra() returning a JSON object literal
-- (a string) with workload-specific counters; it is embedded as "extra".

done = function(summary, latency, requests)
  local e = summary.errors
  local extra = "null"
  if type(bench_extra) == "function" then
    extra = bench_extra()
  end
  io.write(string.format(
    'SEKISHO_WRK {"duration_us":%d,"requests":%d,"bytes":%d,' ..
    '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,' ..
    '"lat_mean_us":%.1f,"lat_stdev_us":%.1f,"lat_max_us":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"extra":%s}\n',
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    extra))
end
