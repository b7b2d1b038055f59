#!/usr/bin/env bash
# Counts the instructions the Panel and the bare baseline of `bench/api.sh`
# execute per authenticated `GET /api/v1/servers?limit=100` (100 servers,
# SQLite), with callgrind: a count that does not depend on the load of the
# machine, so two builds can be compared where wrk on 2 cores cannot tell
# them apart.
#
# 1. A Panel is set up natively as `bench/api.sh` does (admin, node, 100
#    servers), then stopped.
# 2. It starts again on the same data under callgrind with instrumentation
#    off, logs in and answers warm-up requests (the read caches fill).
# 3. Instrumentation goes on; N requests on one keep-alive connection are
#    counted, then an idle period as long as they took (background tasks),
#    each in a dump of its own.
# 4. The baseline (`bare_servers`, given the Panel's page) is counted the
#    same way.
#
# Prints Ir per request (requests minus idle, divided by N) for both and
# leaves the callgrind dumps in $OUT for callgrind_annotate.
#
# Usage: [CAP_BIN=…] [BARE_BIN=…] [OUT=dir] bench/api_instructions.sh [N, default 500]
# (the binaries default to target/release/cap and
# target/release/examples/bare_servers; build them as bench/api.sh does).
#
# Valgrind cannot reserve the address space of the plugin runtime's pooling
# allocator, so the Panel runs under callgrind with CAP_BENCH_UNPOOLED set:
# the runtime then allocates instances on demand with bounds-checked
# memories. Cached `GET /servers` answers call no plugin, so the requests
# counted run the same code either way.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-500}
cap=$(realpath "${CAP_BIN:-target/release/cap}")
bare=$(realpath "${BARE_BIN:-target/release/examples/bare_servers}")
command -v valgrind >/dev/null || { echo "valgrind is missing: apt-get install valgrind"; exit 1; }
work=$(mktemp -d)
out=$(realpath -m "${OUT:-$work/out}")
mkdir -p "$out"
trap 'kill ${panel:-} ${bare_pid:-} 2>/dev/null || true; rm -rf "$work"' EXIT

# shellcheck source=bench/common.sh
. bench/common.sh
# GETs `url` n times on one keep-alive connection; fails on any answer but
# 200 or a body of another length than the first; prints the seconds taken.
requests() { # url n [bearer token]
  python3 - "$@" <<'EOF'
import http.client, sys, time, urllib.parse
url, n = urllib.parse.urlsplit(sys.argv[1]), int(sys.argv[2])
headers = {"authorization": "Bearer " + sys.argv[3]} if len(sys.argv) > 3 else {}
conn = http.client.HTTPConnection(url.hostname, url.port)
target = url.path + ("?" + url.query if url.query else "")
size = None
start = time.monotonic()
for _ in range(n):
    conn.request("GET", target, headers=headers)
    answer = conn.getresponse()
    body = answer.read()
    if answer.status != 200 or (size is not None and len(body) != size):
        sys.exit(f"answer {answer.status}, {len(body)} bytes")
    size = len(body)
print(f"{time.monotonic() - start:.3f}")
EOF
}
# The instructions of callgrind dump `file`.
ir() { grep -m1 -E '^(summary|totals):' "$1" | awk '{print $2}'; }
# Counts `n` requests to `url` in process `pid`, then an idle period as
# long; prints "requests idle" instructions.
count() { # name pid url [bearer token]
  local name=$1 pid=$2; shift 2
  requests "$1" 50 "${@:2}" >/dev/null
  callgrind_control -i on "$pid" >/dev/null 2>&1
  callgrind_control -z "$pid" >/dev/null 2>&1
  local secs
  secs=$(requests "$1" "$n" "${@:2}")
  callgrind_control -d "$name-requests" "$pid" >/dev/null 2>&1
  sleep "$secs"
  callgrind_control -d "$name-idle" "$pid" >/dev/null 2>&1
  local req idle
  req=$(ir "$(grep -l "^desc: Trigger: dump $name-requests" "$out"/"$name".cg*)")
  idle=$(ir "$(grep -l "^desc: Trigger: dump $name-idle" "$out"/"$name".cg*)")
  echo "$name: $n requests in ${secs}s under callgrind: $req Ir; the same time idle: $idle Ir"
  echo "$name: $(( (req - idle) / n )) Ir per request"
}

export CAP_ADMIN_PASSWORD="bench-$(date +%s)-Aa1!" CAP_LOG=warn
"$cap" up --listen 127.0.0.1:0 --data "$work/data" >"$work/setup.out" 2>"$work/setup.err" &
panel=$!
wait_for "$work/setup.out" '^Ctrl-Alt-Play is up\|^Panel listening on'
url=$(grep -o 'http://[0-9.:]*' "$work/setup.out" | head -1)
auth="authorization: Bearer $(login "$url")"
create_servers "$url" "$auth" "$work/page.json"
echo "the page lists $(json '["items"].__len__()' <"$work/page.json") servers in $(wc -c <"$work/page.json") bytes of JSON"
kill "$panel"
wait "$panel" || true

CAP_BENCH_UNPOOLED=1 valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out/panel.cg" \
  "$cap" up --listen 127.0.0.1:0 --data "$work/data" >"$work/panel.out" 2>"$work/panel.err" &
panel=$!
wait_for "$work/panel.out" '^Ctrl-Alt-Play is up\|^Panel listening on'
url=$(grep -o 'http://[0-9.:]*' "$work/panel.out" | head -1)
count panel "$panel" "$url/api/v1/servers?limit=100" "$(login "$url")"

valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out/bare.cg" \
  "$bare" "$work/page.json" >"$work/bare.out" 2>"$work/bare.err" &
bare_pid=$!
wait_for "$work/bare.out" '^listening on'
count bare "$bare_pid" "$(grep -o 'http://[0-9.:]*' "$work/bare.out" | head -1)/api/v1/servers"
echo "callgrind dumps in $out"
