-- wrk: POST the image named by BENCH_IMAGE to the path given on the command line.
wrk.method = "POST"
local file = assert(io.open(os.getenv("BENCH_IMAGE"), "rb"))
wrk.body = file:read("*all")
file:close()
wrk.headers["Content-Type"] = "image/png"

done = function(summary, latency, requests)
  io.write(string.format("RESULT requests=%d errors=%d non2xx=%d rps=%.2f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f\n",
    summary.requests, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000))
end
