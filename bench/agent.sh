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
# With `--runtime container` (as root, with Podman and runc), step 1 runs
# twice in the one run: first on a native Agent (the baseline), then on a
# second Agent with `--runtime container` against a private `podman system
# service` (its own storage under the run's directory, so the tests' image
# store is never touched), the stand-in running in the test image built
# here from the same release stand-in. It also reports the CPU of the
# Podman service and of the containers' conmon processes, which carry the
# console between the container and the Agent. Step 2 is left to
# bench/containers_rss.py.
#
# Usage: [BUILD=0] bench/agent.sh [--runtime native|container] [FLOODERS=50] [LINES=1000000] [RATE=200] [SERVERS=200] [SECONDS=20]
set -euo pipefail
cd "$(dirname "$0")/.."
runtime=native
if [ "${1:-}" = --runtime ]; then runtime=${2:-}; shift 2; fi
case "$runtime" in native | container) ;; *) echo "usage: $0 [--runtime native|container] ..." >&2; exit 2 ;; esac
flooders=${1:-50}; lines=${2:-1000000}; rate=${3:-200}; servers=${4:-200}; secs=${5:-20}
# BUILD=0 runs the binaries already in target/release (on a shared machine,
# without waiting for cargo's lock or rebuilding someone's work in progress).
if [ "${BUILD:-1}" != 0 ]; then
  cargo build --release --locked -p cap-cli -p cap-panel --bin cap --example console_watch
  cargo build --release --locked -p cap-standin-game
fi
work=$(mktemp -d)
# The private Podman of `--runtime container`: storage of its own.
podman_=(podman --runtime runc --cgroup-manager cgroupfs --root "$work/podman/storage" --runroot "$work/podman/run")
# Game servers outlive their Agent by design, and their command lines do not
# name $work: stop every process whose working directory is under it, and
# every container of the private Podman.
cleanup() {
  kill ${agent:-} ${panel:-} 2>/dev/null || true
  for proc in /proc/[0-9]*; do
    case "$(readlink "$proc/cwd" 2>/dev/null)" in "$work"/*) kill "${proc#/proc/}" 2>/dev/null || true ;; esac
  done
  if [ -n "${service:-}" ]; then
    "${podman_[@]}" rm --all --force --time 0 >/dev/null 2>&1 || true
    "${podman_[@]}" rmi --all --force >/dev/null 2>&1 || true
    kill "$service" 2>/dev/null || true
    wait "$service" 2>/dev/null || true
    umount "$work/podman/storage/overlay" 2>/dev/null || true
  fi
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
new_node() { # name first-port-last-port -> id
  local id
  id=$(post /api/v1/nodes "{\"name\":\"$1\",\"address\":\"127.0.0.1\",\"memory_mb\":1000000,\"disk_mb\":1000000,\"cpu_percent\":100000}" | json '["id"]')
  post "/api/v1/nodes/$id/allocations" "{\"ip\":\"127.0.0.1\",\"ports\":[\"$2\"]}" >/dev/null
  echo "$id"
}
start_agent() { # node data-dir [agent options...]: sets $agent
  local node=$1 data=$2 regtoken
  shift 2
  regtoken=$(post "/api/v1/nodes/$node/registration-tokens" '{}' | json '["token"]')
  target/release/cap agent --panel "$url" --token "$regtoken" --data "$data" \
    --health-listen 127.0.0.1:0 --program-dir "$PWD/target/release" \
    --console-lines-per-second "$rate" "$@" >"$data.out" 2>"$data.err" &
  agent=$!
  wait_for "$data.out" '^Agent running'
}
node=$(new_node bench 21000-21999)
start_agent "$node" "$work/agent"
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

flood() { # label: the console flood on $agent's node
  echo "== console flood ($1): $flooders servers x $lines lines, forwarded at $rate lines/s per server"
  ids=()
  for i in $(seq 1 "$flooders"); do ids+=("$(create "flood-$1-$i")"); done
  start_all "${ids[@]}"
  wait_running "$flooders"
  idle_rss=$(rss_kib "$agent")
  # The same CPU figures over 10 s before the flood: what stats polling and
  # idle servers cost.
  i0=$(cpu_ticks "$agent"); ie0=$(engine_ticks); is0=$(date +%s.%N)
  sleep 10
  i1=$(cpu_ticks "$agent"); ie1=$(engine_ticks); is1=$(date +%s.%N)
  target/release/examples/console_watch "$url" "$token" "$secs" "${ids[@]}" >"$work/watch.out" &
  watch=$!
  wait_for "$work/watch.out" '^watching'
  t0=$(cpu_ticks "$agent"); e0=$(engine_ticks); s0=$(date +%s.%N)
  for id in "${ids[@]}"; do post "/api/v1/servers/$id/command" "{\"command\":\"flood $lines\"}" >/dev/null; done
  peak=0
  while kill -0 "$watch" 2>/dev/null; do r=$(rss_kib "$agent"); [ "$r" -gt "$peak" ] && peak=$r; sleep 0.5; done
  t1=$(cpu_ticks "$agent"); e1=$(engine_ticks); s1=$(date +%s.%N)
  hz=$(getconf CLK_TCK)
  result=$(tail -1 "$work/watch.out")
  echo "browser: $result"
  python3 - "$t0" "$t1" "$s0" "$s1" "$hz" "$result" "$idle_rss" "$peak" "$e0" "$e1" \
    "$i0" "$i1" "$is0" "$is1" "$ie0" "$ie1" <<'EOF'
import json, sys
t0, t1, s0, s1, hz = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
i0, i1, is0, is1 = int(sys.argv[11]), int(sys.argv[12]), float(sys.argv[13]), float(sys.argv[14])
print(f"before the flood: Agent CPU {(i1 - i0) / hz / (is1 - is0) * 100:.1f}% of one core")
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
def engine(before, after, seconds, when):
    (service0, conmon0, _), (service1, conmon1, count) = (map(int, a.split()) for a in (before, after))
    span = hz * seconds / 100
    print(f"{when}: Podman service CPU {(service1 - service0) / span:.1f}% of one core, "
          f"{count} conmon processes {(conmon1 - conmon0) / span:.1f}% in all")
if sys.argv[9]:
    engine(sys.argv[15], sys.argv[16], is1 - is0, "before the flood")
    engine(sys.argv[9], sys.argv[10], s1 - s0, "during the flood")
EOF
  for id in "${ids[@]}"; do post "/api/v1/servers/$id/power" '{"action":"kill"}' >/dev/null; done
  for id in "${ids[@]}"; do remove "$id"; done
}

# CPU ticks of the Podman service and of the conmon processes of its
# containers (their command lines name the run's storage); nothing natively.
engine_ticks() {
  [ -n "${service:-}" ] || return 0
  local conmon=0 count=0 proc
  for proc in /proc/[0-9]*; do
    [ "$(cat "$proc/comm" 2>/dev/null)" = conmon ] || continue
    tr '\0' ' ' <"$proc/cmdline" 2>/dev/null | grep -q "$work/" || continue
    conmon=$((conmon + $(awk '{print $14 + $15}' "$proc/stat" 2>/dev/null || echo 0)))
    count=$((count + 1))
  done
  echo "$(cpu_ticks "$service") $conmon $count"
}

flood native

if [ "$runtime" = container ]; then
  kill "$agent"; wait "$agent" 2>/dev/null || true
  # The test image, as tests/src/podman.rs builds it for the tests, from
  # the release stand-in with the libraries it links and Debian's static
  # busybox.
  root="$work/image"
  mkdir -p "$root"/{bin,etc,tmp,home/container,mnt/server,mnt/install,usr/local/bin}
  cp "$(command -v busybox)" "$root/bin/busybox"
  cp target/release/cap-standin-game "$root/usr/local/bin/"
  for lib in $(ldd target/release/cap-standin-game | grep -o '/[^ ]*'); do
    mkdir -p "$root$(dirname "$lib")"; cp "$lib" "$root$lib"
  done
  for applet in sh sleep cat echo ls id; do ln -sf busybox "$root/bin/$applet"; done
  echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
  tar -C "$root" -cf "$work/image.tar" .
  mkdir -p "$work/podman"
  "${podman_[@]}" system service --time=0 "unix://$work/podman/podman.sock" >"$work/podman.log" 2>&1 &
  service=$!
  for _ in $(seq 1 600); do [ -S "$work/podman/podman.sock" ] && break; sleep 0.05; done
  "${podman_[@]}" import --change 'ENV PATH=/usr/local/bin:/bin' "$work/image.tar" \
    localhost/cap-test-game:latest >/dev/null 2>&1
  node=$(new_node bench-container 22000-22999)
  start_agent "$node" "$work/agent-container" \
    --runtime container --container-host "unix://$work/podman/podman.sock"
  flood container
  exit 0
fi

echo "== scale: $servers servers on one Agent"
more=()
for i in $(seq 1 "$servers"); do more+=("$(create "idle-$i")"); done
start_all "${more[@]}"
wait_running "$servers"
sleep 5
rss=$(rss_kib "$agent")
python3 -c "print(f'Agent RSS with $servers running servers: {$rss/1024:.1f} MiB ({$rss/$servers:.0f} KiB per server)')"
