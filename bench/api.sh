#!/usr/bin/env bash
# Benchmarks an authenticated `GET /api/v1/servers` listing 100 servers on a
# real Panel (`cap up`: SQLite, bundled plugins) against a bare axum handler
# answering the very same JSON (`examples/bare_servers.rs`, given the Panel's
# own answer), with wrk, in the same
# run on the same machine. Needs wrk (Debian: apt-get install wrk).
#
# Usage: [BUILD=0] [CAP_BIN=…] [BARE_BIN=…] [CAP_DATABASE_URL=…] bench/api.sh [seconds per run, default 10]
# CAP_BIN and BARE_BIN name other builds' binaries (they imply BUILD=0).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk"; exit 1; }
# BUILD=0 runs the binaries already in target/release.
if [ -n "${CAP_BIN:-}${BARE_BIN:-}" ]; then BUILD=0; fi
cap=${CAP_BIN:-target/release/cap}
bare_bin=${BARE_BIN:-target/release/examples/bare_servers}
if [ "${BUILD:-1}" != 0 ]; then
  cargo build --release --locked -p cap-cli -p cap-panel --bin cap --example bare_servers
fi
work=$(mktemp -d)
trap 'kill ${panel:-} ${bare:-} 2>/dev/null || true; rm -rf "$work"' EXIT

# shellcheck source=bench/common.sh
. bench/common.sh

export CAP_ADMIN_PASSWORD="bench-$(date +%s)-Aa1!" CAP_LOG=warn
"$cap" up --listen 127.0.0.1:0 --data "$work/data" >"$work/panel.out" 2>"$work/panel.err" &
panel=$!
wait_for "$work/panel.out" '^Ctrl-Alt-Play is up\|^Panel listening on'
url=$(grep -o 'http://[0-9.:]*' "$work/panel.out" | head -1)
token=$(login "$url")
auth="authorization: Bearer $token"
create_servers "$url" "$auth" "$work/page.json"
count=$(json '["items"].__len__()' <"$work/page.json")
echo "the page is $(wc -c <"$work/page.json") bytes of JSON"
# The baseline answers exactly this page.
"$bare_bin" "$work/page.json" >"$work/bare.out" &
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
