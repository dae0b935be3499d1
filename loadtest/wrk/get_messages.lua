-- wrk script: GET /api/v1/groups/$GROUP/messages?limit=50 with the bearer token in $TOKEN.
wrk.method = "GET"
wrk.path = "/api/v1/groups/" .. os.getenv("GROUP") .. "/messages?limit=50"
wrk.headers["authorization"] = "Bearer " .. os.getenv("TOKEN")

done = function(summary, latency, requests)
  io.write(string.format("p50 %.3f ms  p99 %.3f ms  requests %d  errors %d\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.requests,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
