#!/bin/bash
# CPU time per request of one gridmap worker and of its PostgreSQL backends, for one of the
# side-by-side queries, one client: a figure that moves less than requests per second when the
# machine is busy (about ±10 % then: compare runs made one after the other). Serves the
# side-by-side database gridmap_bench as its grid center.
#
#   bench/cpu_per_request.sh q1 10       # query (bench/queries/gridmap/q1.graphql), seconds
set -euo pipefail
cd "$(dirname "$0")/.."
Q=${1:-q1}
SECS=${2:-10}
PORT=${PORT:-8798}
eval "$(.venv/bin/python - <<'PY'
from sqlalchemy.engine import make_url
from api.settings import Settings
s = Settings()
for key, url in (("DATABASE_URL", s.database_url), ("OWNER_DATABASE_URL", s.owner_database_url)):
    print(f"export GRIDMAP_{key}='{make_url(url).set(database='gridmap_bench').render_as_string(hide_password=False)}'")
PY
)"
export GRIDMAP_RATE_LIMIT_PER_SECOND=1000000000 GRIDMAP_RATE_LIMIT_BURST=1000000000
TOKEN=$(.venv/bin/python - <<'PY'
from sqlalchemy import create_engine
from api.auth import issue_token
from api.settings import Settings
from geo.workers import worker_by_code
s = Settings()
with create_engine(s.owner_database_url).connect() as c:
    print(issue_token(s, worker_by_code(connection=c, code="JA015-GC-0001")))
PY
)
BODY=$(mktemp)
.venv/bin/python -c "import json; print(json.dumps({'query': open('bench/queries/gridmap/$Q.graphql').read(), 'variables': json.load(open('bench/queries/variables/$Q.json'))}))" > "$BODY"
.venv/bin/python -m uvicorn api.app:create_app --factory --port "$PORT" --no-access-log \
  --log-level warning &
server=$!
trap 'kill $server 2>/dev/null; rm -f "$BODY"' EXIT
for _ in $(seq 60); do curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break; sleep 0.5; done
load() { BENCH_BODY="$BODY" BENCH_TOKEN="$TOKEN" wrk -t1 -c1 -d"$1"s -s bench/post.lua \
  "http://127.0.0.1:$PORT/graphql"; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
backends() { for p in $(pgrep -f "postgres: gridmap_app gridmap_bench" || true); do
  ticks "$p" 2>/dev/null || true; done | awk '{s += $1} END {print s + 0}'; }
load 3 > /dev/null  # warm-up: pooled connections, prepared statements
app=$(ticks $server); db=$(backends)
out=$(load "$SECS")
app=$(( $(ticks $server) - app )); db=$(( $(backends) - db ))
n=$(echo "$out" | awk '/requests in/ {print $1}')
hz=$(getconf CLK_TCK)
echo "$out" | grep -E "Latency|Requests/sec"
awk -v n="$n" -v a="$app" -v d="$db" -v hz="$hz" -v q="$Q" 'BEGIN {
  printf "%s: %d requests; CPU per request: gridmap %.2f ms, PostgreSQL %.2f ms\n",
         q, n, 1000 * a / hz / n, 1000 * d / hz / n }'
