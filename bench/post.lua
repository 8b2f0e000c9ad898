-- wrk script of bench/side_by_side.py: POSTs one JSON body (the file named by BENCH_BODY) with
-- "Authorization: Bearer $BENCH_TOKEN" when that is set, counts answers that carry GraphQL
-- errors (served with status 200, so wrk's own counts miss them) and prints the figures as one
-- line of JSON, "BENCH_JSON {...}", latencies in microseconds.
--
--   BENCH_BODY=q1.json BENCH_TOKEN=… wrk -t2 -c16 -d10s -s bench/post.lua http://127.0.0.1:8000/graphql

local body_file = assert(os.getenv("BENCH_BODY"), "set BENCH_BODY to the request body's file")
local f = assert(io.open(body_file, "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
local token = os.getenv("BENCH_TOKEN")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  graphql_errors = 0
end

function response(status, headers, body)
  -- An answer of a GraphQL server with errors has them under "errors" (the floor never has).
  if string.find(body, '"errors"', 1, true) then
    graphql_errors = graphql_errors + 1
  end
end

function done(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do
    bad = bad + (thread:get("graphql_errors") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "connect_errors": %d, ' ..
    '"read_errors": %d, "write_errors": %d, "status_errors": %d, "timeouts": %d, ' ..
    '"graphql_errors": %d, "p50_us": %.1f, "p90_us": %.1f, "p99_us": %.1f, ' ..
    '"mean_us": %.1f, "max_us": %.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, bad, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max))
end
