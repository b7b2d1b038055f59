#!/usr/bin/env bash
# Benchmarks an authenticated `GET /api/v1/servers` listing 100 servers on a
# real Panel (`cap up`: SQLite, bundled plugins) against a bare axum handler
# answering the very same JSON (`examples/bare_servers.rs`, given the Panel's
# own answer), with wrk, in the same
# run on the same machine. Needs wrk (Debian: apt-get install wrk).
#
# Usage: [BUILD=0] [CAP_DATABASE_URL=…] bench/api.sh [seconds per run, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk"; exit 1; }
# BUILD=0 runs the binaries already in target/release.
if [ "${BUILD:-1}" != 0 ]; then
  cargo build --release --locked -p cap-cli -p cap-panel --bin cap --example bare_servers
fi
work=$(mktemp -d)
trap 'kill ${panel:-} ${bare:-} 2>/dev/null || true; rm -rf "$work"' EXIT

wait_for() { # file pattern
  for _ in $(seq 1 1200); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.25; done
  echo "timed out waiting for $2 in $1"; cat "$1"; return 1
}

export CAP_ADMIN_PASSWORD="bench-$(date +%s)-Aa1!" CAP_LOG=warn
target/release/cap up --listen 127.0.0.1:0 --data "$work/data" >"$work/panel.out" 2>"$work/panel.err" &
panel=$!
wait_for "$work/panel.out" '^Ctrl-Alt-Play is up\|^Panel listening on'
url=$(grep -o 'http://[0-9.:]*' "$work/panel.out" | head -1)
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
token=$(curl -sf -X POST "$url/api/v1/auth/login" -H 'content-type: application/json' \
  -d "{\"username\":\"admin\",\"password\":\"$CAP_ADMIN_PASSWORD\"}" | json '["access_token"]')
auth="authorization: Bearer $token"
node=$(curl -sf -X POST "$url/api/v1/nodes" -H "$auth" -H 'content-type: application/json' \
  -d '{"name":"bench","address":"127.0.0.1","memory_mb":1000000,"disk_mb":1000000,"cpu_percent":100000}' | json '["id"]')
curl -sf -X POST "$url/api/v1/nodes/$node/allocations" -H "$auth" -H 'content-type: application/json' \
  -d '{"ip":"127.0.0.1","ports":["20000-20099"]}' >/dev/null
for i in $(seq -w 0 99); do
  curl -sf -X POST "$url/api/v1/servers" -H "$auth" -H 'content-type: application/json' \
    -d "{\"name\":\"server-$i\",\"node_id\":\"$node\",\"game\":{\"plugin\":\"test-game\"},\"variables\":{\"MAX_PLAYERS\":\"20\"},\"limits\":{\"memory_mb\":64,\"disk_mb\":100,\"cpu_percent\":10}}" >/dev/null
done
curl -sf "$url/api/v1/servers?limit=100" -H "$auth" >"$work/page.json"
count=$(json '["items"].__len__()' <"$work/page.json")
echo "the page is $(wc -c <"$work/page.json") bytes of JSON"
# The baseline answers exactly this page.
target/release/examples/bare_servers "$work/page.json" >"$work/bare.out" &
bare=$!
wait_for "$work/bare.out" '^listening on'
bare_url=$(grep -o 'http://[0-9.:]*' "$work/bare.out" | head -1)
cmp <(curl -sf "$bare_url/api/v1/servers") "$work/page.json" && echo "the baseline answers the same bytes"

echo "Panel at $url lists $count servers; baseline at $bare_url"

run() { # name url [header]
  echo "== $1"
  if [ $# -ge 3 ]; then wrk -t2 -c32 -d"${secs}s" -H "$3" "$2"; else wrk -t2 -c32 -d"${secs}s" "$2"; fi
}
run "bare axum handler (baseline)" "$bare_url/api/v1/servers"
run "Panel: authenticated GET /api/v1/servers?limit=100" "$url/api/v1/servers?limit=100" "$auth"
if [ -n "${PROFILE:-}" ]; then
  perf record -F 999 -g -p "$panel" -o "$PROFILE" -- sleep "$secs" &
  recorder=$!
  run "Panel (profiled)" "$url/api/v1/servers?limit=100" "$auth"
  # Only the recorder: a bare `wait` would wait for the Panel too.
  wait "$recorder"
fi
