-- wrk script: POST /api/v1/groups/$GROUP/messages with the bearer token in $TOKEN.
wrk.method = "POST"
wrk.path = "/api/v1/groups/" .. os.getenv("GROUP") .. "/messages"
wrk.headers["content-type"] = "application/json"
wrk.headers["authorization"] = "Bearer " .. os.getenv("TOKEN")
wrk.body = '{"content":"a benchmark message of a typical chat length, about eighty characters."}'

done = function(summary, latency, requests)
  io.write(string.format("p50 %.3f ms  p99 %.3f ms  requests %d  errors %d\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.requests,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
