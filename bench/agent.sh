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
# Usage: bench/agent.sh [FLOODERS=50] [LINES=1000000] [RATE=200] [SERVERS=200] [SECONDS=20]
set -euo pipefail
cd "$(dirname "$0")/.."
flooders=${1:-50}; lines=${2:-1000000}; rate=${3:-200}; servers=${4:-200}; secs=${5:-20}
cargo build --release --locked -p cap-panel --bin cap --example console_watch
cargo build --release --locked -p cap-standin-game
work=$(mktemp -d)
trap 'kill ${agent:-} ${panel:-} 2>/dev/null || true; pkill -f "$work" 2>/dev/null || true; rm -rf "$work"' EXIT

wait_for() { # file pattern
  for _ in $(seq 1 1200); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.25; done
  echo "timed out waiting for $2 in $1"; cat "$1"; return 1
}
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
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
post() { curl -sf -X POST "$url$1" -H "$auth" -H 'content-type: application/json' -d "$2"; }
node=$(post /api/v1/nodes '{"name":"bench","address":"127.0.0.1","memory_mb":1000000,"disk_mb":1000000,"cpu_percent":100000}' | json '["id"]')
post "/api/v1/nodes/$node/allocations" '{"ip":"127.0.0.1","ports":["21000-21999"]}' >/dev/null
regtoken=$(post "/api/v1/nodes/$node/registration-tokens" '{}' | json '["token"]')
target/release/cap agent --panel "$url" --token "$regtoken" --data "$work/agent" \
  --health-listen 127.0.0.1:0 --program-dir "$PWD/target/release" \
  --console-lines-per-second "$rate" >"$work/agent.out" 2>"$work/agent.err" &
agent=$!
wait_for "$work/agent.out" '^Agent running'

create() { # name -> id
  post /api/v1/servers "{\"name\":\"$1\",\"node_id\":\"$node\",\"game\":{\"plugin\":\"test-game\"},\"variables\":{\"READY_DELAY_MS\":\"0\"},\"limits\":{\"memory_mb\":0,\"disk_mb\":100,\"cpu_percent\":0}}" | json '["id"]'
}
start_all() { for id in "$@"; do post "/api/v1/servers/$id/power" '{"action":"start"}' >/dev/null; done; }
running() { curl -sf "$url/api/v1/servers?limit=500" -H "$auth" | python3 -c "import json,sys; print(sum(1 for s in json.load(sys.stdin)['items'] if s['state']=='running'))"; }
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
print(f"Agent CPU {cpu:.1f}% of one core while forwarding {rate:,.0f} lines/s "
      f"({cpu / rate * 10000 if rate else 0:.1f}% per 10k lines/s); "
      f"RSS {int(sys.argv[7])/1024:.1f} MiB idle, {int(sys.argv[8])/1024:.1f} MiB peak")
EOF
for id in "${ids[@]}"; do post "/api/v1/servers/$id/power" '{"action":"kill"}' >/dev/null; done

echo "== scale: $servers servers on one Agent"
more=()
for i in $(seq 1 "$servers"); do more+=("$(create "idle-$i")"); done
start_all "${more[@]}"
wait_running "$servers"
sleep 5
rss=$(rss_kib "$agent")
python3 -c "print(f'Agent RSS with $servers running servers: {$rss/1024:.1f} MiB ({$rss/$servers:.0f} KiB per server)')"
