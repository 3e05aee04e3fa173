-- wrk script: synchronous Invoke of the function named by FUNCTION (default "echo") with a
-- small JSON event. Used by benches/gateway/load.sh.
local name = os.getenv("FUNCTION") or "echo"
wrk.method = "POST"
wrk.path = "/2015-03-31/functions/" .. name .. "/invocations"
wrk.body = '{"hello":"world"}'
wrk.headers["Content-Type"] = "application/json"

local failed = 0
response = function(status, headers, body)
  if status ~= 200 then
    failed = failed + 1
  end
end

done = function(summary, latency, requests)
  io.write(string.format(
    "RESULT requests=%d non200=%d errors=%d duration_s=%.2f rps=%.0f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f\n",
    summary.requests,
    summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.duration / 1e6,
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000,
    latency:percentile(90) / 1000,
    latency:percentile(99) / 1000))
end
