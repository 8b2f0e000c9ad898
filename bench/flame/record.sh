#!/bin/bash
# Flame graphs of one gridmap worker under load (py-spy, the `bench` extra), as kept in this
# folder: q3 (500 households with members) through the resolvers and compiled, q1 compiled.
#
#   bench/flame/record.sh      # after `make bench` (wrk, py-spy, the bench database gridmap_bench)
#
# Serves the side-by-side database gridmap_bench as the grid center, 4 clients for 12 s.
set -euo pipefail
cd "$(dirname "$0")/../.."
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
body() {
  .venv/bin/python -c "import json,sys; print(json.dumps({'query': open('bench/queries/gridmap/$1.graphql').read(), 'variables': json.load(open('bench/queries/variables/$1.json'))}))"
}
record() {  # name query compiled
  GRIDMAP_COMPILED_QUERIES=$3 .venv/bin/python -m uvicorn api.app:create_app --factory \
    --port 8799 --no-access-log --log-level warning &
  local server=$!
  sleep 3
  body "$2" > "/tmp/gridmap-flame-$2.json"
  BENCH_BODY="/tmp/gridmap-flame-$2.json" BENCH_TOKEN="$TOKEN" \
    wrk -t1 -c4 -d12s -s bench/post.lua http://127.0.0.1:8799/graphql > /dev/null &
  sleep 2
  .venv/bin/py-spy record --pid "$server" --duration 8 --rate 250 --nonblocking \
    --output "bench/flame/$1.svg" > /dev/null
  wait %2 2>/dev/null || true
  kill "$server"; wait "$server" 2>/dev/null || true
}
record q3-resolvers q3 false
record q3-compiled q3 true
record q1-compiled q1 true
echo "bench/flame/*.svg written"
