# Shared by bench/api.sh and bench/api_instructions.sh (sourced): the
# helpers and the setup both measure, so both measure the same page.

# Waits until `file` has a line matching `pattern` (up to 10 minutes).
wait_for() { # file pattern
  for _ in $(seq 1 2400); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.25; done
  echo "timed out waiting for $2 in $1"; cat "$1"; return 1
}

# `$1` of the JSON on standard input, e.g. json '["id"]'.
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

# An access token of `admin` (password $CAP_ADMIN_PASSWORD) at Panel `url`.
login() { # url
  curl -sf -X POST "$1/api/v1/auth/login" -H 'content-type: application/json' \
    -d "{\"username\":\"admin\",\"password\":\"$CAP_ADMIN_PASSWORD\"}" | json '["access_token"]'
}

# The page both benchmarks measure: a node with 100 addresses and 100
# test-game servers on it, created through the API of Panel `url` with
# the `authorization` header `auth`; writes `GET /servers?limit=100` to
# `page`.
create_servers() { # url auth page
  local url=$1 auth=$2 page=$3 node i
  node=$(curl -sf -X POST "$url/api/v1/nodes" -H "$auth" -H 'content-type: application/json' \
    -d '{"name":"bench","address":"127.0.0.1","memory_mb":1000000,"disk_mb":1000000,"cpu_percent":100000}' | json '["id"]')
  curl -sf -X POST "$url/api/v1/nodes/$node/allocations" -H "$auth" -H 'content-type: application/json' \
    -d '{"ip":"127.0.0.1","ports":["20000-20099"]}' >/dev/null
  for i in $(seq -w 0 99); do
    curl -sf -X POST "$url/api/v1/servers" -H "$auth" -H 'content-type: application/json' \
      -d "{\"name\":\"server-$i\",\"node_id\":\"$node\",\"game\":{\"plugin\":\"test-game\"},\"variables\":{\"MAX_PLAYERS\":\"20\"},\"limits\":{\"memory_mb\":64,\"disk_mb\":100,\"cpu_percent\":10}}" >/dev/null
  done
  curl -sf "$url/api/v1/servers?limit=100" -H "$auth" >"$page"
}
