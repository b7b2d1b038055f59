#!/usr/bin/env bash
# Benchmarks the Agent end to end with real processes: a Panel (`cap up
# --no-agent`), an Agent in its own process (`cap agent`), the
# cap-standin-game servers it runs, and a browser stand-in reading the
# console WebSockets (`examples/console_watch.rs`).
#
# 1. Console throughput: FLOODERS servers each print LINES lines as fast as
#    they can; the Agent forwards up to RATE lines/s per server (the rest are
#    dropped and counted). Reports lines/s arriving at the browser, lines the
#    Agent read in total, and the Agent's CPU (utime+stime from /proc) and
#    resident memory while it lasts.
# 2. Scale: SERVERS servers started on the one Agent; reports its resident
#    memory once all run, and per server.
#
# Usage: [BUILD=0] bench/agent.sh [FLOODERS=50] [LINES=1000000] [RATE=200] [SERVERS=200] [SECONDS=20]
set -euo pipefail
cd "$(dirname "$0")/.."
flooders=${1:-50}; lines=${2:-1000000}; rate=${3:-200}; servers=${4:-200}; secs=${5:-20}
# BUILD=0 runs the binaries already in target/release (on a shared machine,
# without waiting for cargo's lock or rebuilding someone's work in progress).
if [ "${BUILD:-1}" != 0 ]; then
  cargo build --release --locked -p cap-cli -p cap-panel --bin cap --example console_watch
  cargo build --release --locked -p cap-standin-game
fi
work=$(mktemp -d)
# Game servers outlive their Agent by design, and their command lines do not
# name $work: stop every process whose working directory is under it.
cleanup() {
  kill ${agent:-} ${panel:-} 2>/dev/null || true
  for proc in /proc/[0-9]*; do
    case "$(readlink "$proc/cwd" 2>/dev/null)" in "$work"/*) kill "${proc#/proc/}" 2>/dev/null || true ;; esac
  done
  rm -rf "$work"
}
trap cleanup EXIT

wait_for() { # file pattern
  for _ in $(seq 1 1200); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.25; done
  echo "timed out waiting for $2 in $1"; cat "$1"; return 1
}
json() { # the field path $1 of the JSON on stdin; shows the whole answer when it is missing
  python3 -c "
import json, sys
text = sys.stdin.read()
try:
    print(json.loads(text)$1)
except (ValueError, LookupError, TypeError):
    sys.exit(f'unexpected answer: {text}')"
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

export CAP_ADMIN_PASSWORD="bench-$(date +%s)-Aa1!" CAP_LOG=warn
target/release/cap up --no-agent --listen 127.0.0.1:0 --data "$work/data" >"$work/panel.out" 2>"$work/panel.err" &
panel=$!
wait_for "$work/panel.out" '^Panel listening on'
url=$(grep -o 'http://[0-9.:]*' "$work/panel.out" | head -1)
token=$(curl -sf -X POST "$url/api/v1/auth/login" -H 'content-type: application/json' \
  -d "{\"username\":\"admin\",\"password\":\"$CAP_ADMIN_PASSWORD\"}" | json '["access_token"]')
auth="authorization: Bearer $token"
post() { curl -sS --fail-with-body -X POST "$url$1" -H "$auth" -H 'content-type: application/json' -d "$2"; }
node=$(post /api/v1/nodes '{"name":"bench","address":"127.0.0.1","memory_mb":1000000,"disk_mb":1000000,"cpu_percent":100000}' | json '["id"]')
post "/api/v1/nodes/$node/allocations" '{"ip":"127.0.0.1","ports":["21000-21999"]}' >/dev/null
regtoken=$(post "/api/v1/nodes/$node/registration-tokens" '{}' | json '["token"]')
target/release/cap agent --panel "$url" --token "$regtoken" --data "$work/agent" \
  --health-listen 127.0.0.1:0 --program-dir "$PWD/target/release" \
  --console-lines-per-second "$rate" >"$work/agent.out" 2>"$work/agent.err" &
agent=$!
wait_for "$work/agent.out" '^Agent running'

# The Panel refuses unlimited limits and fits servers into what the Agent
# measured on this machine (its memory, disk and 100% per core). So each
# server gets 32 MiB of address space (the stand-in runs in 16; the bundled
# quota-guard plugin allows a user 8 GiB in all), 100 MB of disk and 1% of
# CPU, which is a reservation, not a cap, without cgroup v2.
create() { # name -> id
  post /api/v1/servers "{\"name\":\"$1\",\"node_id\":\"$node\",\"game\":{\"plugin\":\"test-game\"},\"variables\":{\"READY_DELAY_MS\":\"0\"},\"limits\":{\"memory_mb\":32,\"disk_mb\":100,\"cpu_percent\":1}}" | json '["id"]'
}
remove() { # id: deletes a server once it has stopped, freeing its share of the node
  for _ in $(seq 1 120); do
    curl -sf -X DELETE "$url/api/v1/servers/$1" -H "$auth" >/dev/null && return 0; sleep 0.5
  done
  curl -sS --fail-with-body -X DELETE "$url/api/v1/servers/$1" -H "$auth"
}
start_all() { for id in "$@"; do post "/api/v1/servers/$id/power" '{"action":"start"}' >/dev/null; done; }
running() { # servers in state running, over every page (a page holds at most 200)
  python3 - "$url" "$token" <<'EOF'
import json, sys, urllib.parse, urllib.request
url, token, cursor, count = sys.argv[1], sys.argv[2], None, 0
while True:
    query = "limit=200" + (f"&cursor={urllib.parse.quote(cursor)}" if cursor else "")
    request = urllib.request.Request(f"{url}/api/v1/servers?{query}",
                                     headers={"authorization": f"Bearer {token}"})
    page = json.load(urllib.request.urlopen(request))
    count += sum(1 for s in page["items"] if s["state"] == "running")
    cursor = page.get("next_cursor")
    if not cursor:
        break
print(count)
EOF
}
wait_running() { # count
  for _ in $(seq 1 600); do [ "$(running)" -ge "$1" ] && return 0; sleep 0.5; done
  echo "only $(running) of $1 servers running"; return 1
}

echo "== console flood: $flooders servers x $lines lines, forwarded at $rate lines/s per server"
ids=()
for i in $(seq 1 "$flooders"); do ids+=("$(create "flood-$i")"); done
start_all "${ids[@]}"
wait_running "$flooders"
idle_rss=$(rss_kib "$agent")
target/release/examples/console_watch "$url" "$token" "$secs" "${ids[@]}" >"$work/watch.out" &
watch=$!
wait_for "$work/watch.out" '^watching'
t0=$(cpu_ticks "$agent"); s0=$(date +%s.%N)
for id in "${ids[@]}"; do post "/api/v1/servers/$id/command" "{\"command\":\"flood $lines\"}" >/dev/null; done
peak=0
while kill -0 "$watch" 2>/dev/null; do r=$(rss_kib "$agent"); [ "$r" -gt "$peak" ] && peak=$r; sleep 0.5; done
t1=$(cpu_ticks "$agent"); s1=$(date +%s.%N)
hz=$(getconf CLK_TCK)
result=$(tail -1 "$work/watch.out")
echo "browser: $result"
python3 - "$t0" "$t1" "$s0" "$s1" "$hz" "$result" "$idle_rss" "$peak" <<'EOF'
import json, sys
t0, t1, s0, s1, hz = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
r = json.loads(sys.argv[6])
cpu = (t1 - t0) / hz / (s1 - s0) * 100
rate = r["linesPerSecond"]
# Lines the Agent read = forwarded + dropped (its throttle's counts, and any
# a lagging browser skipped, as the browser was told).
read = (r["lines"] + r["dropped"]) / r["seconds"]
print(f"Agent CPU {cpu:.1f}% of one core while forwarding {rate:,.0f} lines/s "
      f"({cpu / rate * 10000 if rate else 0:.1f}% per 10k lines/s) "
      f"and reading about {read:,.0f} lines/s ({cpu / read * 10000 if read else 0:.1f}% per 10k lines/s read); "
      f"RSS {int(sys.argv[7])/1024:.1f} MiB idle, {int(sys.argv[8])/1024:.1f} MiB peak")
EOF
for id in "${ids[@]}"; do post "/api/v1/servers/$id/power" '{"action":"kill"}' >/dev/null; done
for id in "${ids[@]}"; do remove "$id"; done

echo "== scale: $servers servers on one Agent"
more=()
for i in $(seq 1 "$servers"); do more+=("$(create "idle-$i")"); done
start_all "${more[@]}"
wait_running "$servers"
sleep 5
rss=$(rss_kib "$agent")
python3 -c "print(f'Agent RSS with $servers running servers: {$rss/1024:.1f} MiB ({$rss/$servers:.0f} KiB per server)')"
