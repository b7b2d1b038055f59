#!/usr/bin/env bash
# Benchmarks a server's files end to end (issue 17) with real processes: a
# Panel (`cap up --no-agent`, SQLite), one `cap agent` in its own process
# serving transfers (--files-listen) and SFTP (--sftp-listen), and two
# servers of the bundled `test-game` type on the native runtime (as
# bench/agent.sh makes them), installed but never started: nothing here
# needs the stand-in running (as root, the Agent gets `--run-as nobody` so
# that it does not create its `cap-game` user). Each figure
# is measured beside a plain tool doing the same work on the same files,
# in the same run:
#
# 1. HTTP, a FILE_MIB (1024) MiB file of random bytes, with curl:
#    - download: `POST /files/download` signs a URL on the Agent, curl GETs
#      it to /dev/null; beside busybox httpd and nginx (sendfile on)
#      serving the same file (a hard link to it) on loopback;
#    - upload: `POST /files/upload` (with `size`) signs a URL, curl PUTs
#      the whole file (the simplest form the API takes); beside nginx's
#      WebDAV PUT into a directory on the same disk. nginx, like the
#      Agent, writes the body to a temporary file and renames it into
#      place; the Agent also fsyncs it, so the baseline's time includes
#      `sync FILE` after curl ends. No `Expect: 100-continue` on either.
#    - upload in 8 MiB chunks as the web UI sends files over 8 MiB
#      (transfer.js: `HEAD`, then `PATCH` with `Upload-Offset`, the last
#      with `Upload-Complete: ?1`), one curl on one kept-alive connection;
#      against the same nginx PUT (nginx has no chunked form);
#    - the same chunked upload again once the tree of 3. is written, into
#      the server that holds it: each chunk checks the disk limit, which
#      is where a walk of the server's files per check would show.
#    The signed-URL requests themselves (a few ms) are outside the timings.
# 2. SFTP, the same file, with OpenSSH's `sftp` client (default 32 KiB
#    requests, 64 in flight) signing in with an Ed25519 key: the Agent (as
#    `admin.<server id>`, the key stored with `POST /account/ssh-keys`)
#    against OpenSSH's own sftp-server behind a private sshd on loopback
#    (its own config, host key and authorized_keys in the run's directory).
#    Both with the cipher CIPHER, checked with `sftp -v` before measuring:
#    default aes256-gcm@openssh.com, the one AES-GCM cipher in russh's
#    default list (it has no aes128-gcm there); left alone, OpenSSH's
#    client and both servers would agree on chacha20-poly1305@openssh.com,
#    which CIPHER= measures too. The times include connecting and signing
#    in (for the Agent, the Panel's decision over its link). Files go to
#    and from the run's directory on disk on both sides.
# 3. Backup of a TREE_MIB (2048) MiB world-like tree (bench/files_tree.py:
#    SMALL_FILES (20,000) files of 1-64 KiB and region-like files of
#    200-400 MiB, semi-compressible, the same bytes every run) with
#    `POST /servers/{id}/backups` (after `PUT /backup-limit` as admin),
#    polled every 0.1 s until `done`; against `tar -c --sort=name | zstd -3
#    -T1` of the same directory to a file, then `sync` of that file (the
#    Agent fsyncs its archive; it also hashes it with SHA-256, which the
#    baseline does not). The Agent does walk, tar, zstd (level 3, one
#    thread) and hash in one blocking thread; `zstd -T1` compresses in one
#    worker thread beside its main (I/O) thread, and tar is its own
#    process, so the baseline also runs `zstd --single-thread` as a second
#    line. The Agent's RSS is sampled every 0.1 s while it backs up (VmRSS;
#    VmHWM, a high-water mark of the whole process, before and after).
#
# Every measure runs RUNS times (default 3), the baseline first, with a
# `sync` before each; the median is reported. All files are in the page
# cache (just written), on both sides alike. Prints a markdown table for
# BENCHMARKS.md at the end.
#
# Needs: curl, busybox, nginx (with the dav module, as Debian's), sshd and
# sftp-server, sftp and ssh-keygen, tar, zstd, python3. On Debian:
#   apt-get install curl busybox nginx openssh-server openssh-client zstd
# (openssh-server's and nginx's own services are not used; as root, the
# script creates /run/sshd, sshd's privilege-separation directory, when it
# is missing). About 3 × FILE_MIB + 2 × TREE_MIB of free disk under
# /var/tmp (TMPDIR_BENCH to choose another place). .ci never runs
# benchmarks.
#
# Usage: [BUILD=0] [CAP_BIN=…] [RUNS=3] [FILE_MIB=1024] [TREE_MIB=2048]
#        [SMALL_FILES=20000] [CIPHER=aes256-gcm@openssh.com] bench/files.sh
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-3}
file_mib=${FILE_MIB:-1024}
tree_mib=${TREE_MIB:-2048}
small_files=${SMALL_FILES:-20000}
cipher=${CIPHER:-aes256-gcm@openssh.com}
nginx_bin=${NGINX:-/usr/sbin/nginx}
sshd_bin=${SSHD:-/usr/sbin/sshd}
sftp_server=${SFTP_SERVER:-/usr/lib/openssh/sftp-server}
missing=()
for tool in curl busybox sftp ssh-keygen tar zstd python3 split cmp; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
for tool in "$nginx_bin" "$sshd_bin" "$sftp_server"; do [ -x "$tool" ] || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "missing: ${missing[*]}" >&2
  echo "Debian: apt-get install curl busybox nginx openssh-server openssh-client zstd" >&2
  exit 1
fi
"$nginx_bin" -V 2>&1 | grep -q -- --with-http_dav_module || {
  echo "$nginx_bin has no WebDAV module (Debian's nginx has it)" >&2
  exit 1
}
if [ ! -d /run/sshd ]; then
  if [ "$(id -u)" = 0 ]; then mkdir -m 0755 /run/sshd; else
    echo "sshd needs /run/sshd (as root: mkdir /run/sshd)" >&2
    exit 1
  fi
fi
# BUILD=0 runs the binary already in target/release (on a shared machine,
# without waiting for cargo's lock or rebuilding someone's work in progress).
[ -z "${CAP_BIN:-}" ] || BUILD=0
cap=${CAP_BIN:-target/release/cap}
if [ "${BUILD:-1}" != 0 ]; then
  cargo build --release --locked -p cap-cli --bin cap
fi
[ -x "$cap" ] || { echo "$cap is missing (build it, or leave BUILD=0 out)" >&2; exit 1; }

# On disk, not in a tmpfs /tmp: the run writes several GiB.
work=$(mktemp -d "${TMPDIR_BENCH:-/var/tmp}/cap-bench-files.XXXXXX")
pids=()
cleanup() {
  local pid proc
  for pid in ${sampler:-} ${agent:-} ${panel:-} "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in ${sampler:-} ${agent:-} ${panel:-} "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  # Anything else still working in the run's directory (game servers
  # outlive their Agent by design; none is started here, but an install
  # script could linger).
  for proc in /proc/[0-9]*; do
    case "$(readlink "$proc/cwd" 2>/dev/null)" in "$work" | "$work"/*) kill "${proc#/proc/}" 2>/dev/null || true ;; esac
  done
  rm -rf "$work"
}
trap cleanup EXIT

wait_for() { # file pattern
  for _ in $(seq 1 1200); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.25; done
  echo "timed out waiting for $2 in $1" >&2; cat "$1" >&2; return 1
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
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() { # port: until something accepts connections on it
  for _ in $(seq 1 200); do (: <"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done
  echo "nothing listens on 127.0.0.1:$1" >&2; return 1
}
now() { date +%s.%N; }
kib() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$agent/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

bytes=$((file_mib << 20))
results=$work/results.tsv # measure, run, bytes, seconds
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$results"; }
# Runs `command…` after a sync and records its wall-clock time as
# `measure` of run `run` moving `bytes`.
timed() { # measure run bytes command…
  local t0 t1
  sync
  t0=$(now)
  "${@:4}"
  t1=$(now)
  record "$1" "$2" "$3" "$(python3 -c "print($t1 - $t0)")"
}

echo "== setting up in $work"
mkdir -p "$work"/{src,static,client,ssh,sshd,nginx,chunks}
# The file: AES-CTR of zeros when openssl is there (GB/s, the same every
# run), else /dev/urandom; incompressible either way.
# (`head` ending the endless stream is no failure: no pipefail there.)
if command -v openssl >/dev/null; then
  (set +o pipefail; openssl enc -aes-128-ctr -nosalt -K 000102030405060708090a0b0c0d0e0f -iv 0 </dev/zero 2>/dev/null |
    head -c "$bytes" >"$work/src/big.bin")
else
  head -c "$bytes" /dev/urandom >"$work/src/big.bin"
fi
[ "$(stat -c %s "$work/src/big.bin")" = "$bytes" ] || { echo "could not write the test file" >&2; exit 1; }
src=$work/src/big.bin
ln "$src" "$work/static/big.bin"
split -b 8M -d -a 5 "$src" "$work/chunks/c."

CAP_ADMIN_PASSWORD="bench-$(date +%s)-Aa1!"
export CAP_ADMIN_PASSWORD
CAP_LOG=warn "$cap" up --no-agent --listen 127.0.0.1:0 --data "$work/data" >"$work/panel.out" 2>"$work/panel.err" &
panel=$!
wait_for "$work/panel.out" '^Panel listening on'
url=$(grep -o 'http://[0-9.:]*' "$work/panel.out" | head -1)
token=$(curl -sS --fail-with-body -X POST "$url/api/v1/auth/login" -H 'content-type: application/json' \
  -d "{\"username\":\"admin\",\"password\":\"$CAP_ADMIN_PASSWORD\"}" | json '["access_token"]')
auth="authorization: Bearer $token"
api() { # method path [json]: the answer; fails, showing it, unless 2xx
  curl -sS --fail-with-body -X "$1" "$url$2" -H "$auth" -H 'content-type: application/json' ${3:+-d "$3"}
}

node=$(api POST /api/v1/nodes '{"name":"bench","address":"127.0.0.1","memory_mb":1000000,"disk_mb":1000000,"cpu_percent":100000}' | json '["id"]')
api POST "/api/v1/nodes/$node/allocations" '{"ip":"127.0.0.1","ports":["23000-23009"]}' >/dev/null
regtoken=$(api POST "/api/v1/nodes/$node/registration-tokens" '{}' | json '["token"]')
sftp_port=$(free_port)
# As root the Agent would create the system user `cap-game` for its game
# servers; `nobody` does here (no server is started).
run_as=()
[ "$(id -u)" != 0 ] || run_as=(--run-as nobody)
# info: the Agent logs why an SFTP sign-in was refused at that level.
CAP_LOG=info "$cap" agent --panel "$url" --token "$regtoken" --data "$work/agent" \
  --health-listen 127.0.0.1:0 --files-listen 127.0.0.1:0 --sftp-listen "127.0.0.1:$sftp_port" \
  "${run_as[@]}" >"$work/agent.out" 2>"$work/agent.err" &
agent=$!
wait_for "$work/agent.out" '^Agent running'
for _ in $(seq 1 200); do
  [ "$(api GET "/api/v1/nodes/$node" | json '["online"]')" = True ] && break
  sleep 0.1
done
[ "$(api GET "/api/v1/nodes/$node" | json '["online"]')" = True ] || { echo "the Agent never came online" >&2; cat "$work/agent.err" >&2; exit 1; }

# Servers as bench/agent.sh makes them (test-game, native), with room for
# what each holds: the file, an upload, its staging copy and an SFTP upload;
# the tree.
create() { # name disk_mb -> id
  api POST /api/v1/servers "{\"name\":\"$1\",\"node_id\":\"$node\",\"game\":{\"plugin\":\"test-game\"},\"variables\":{\"READY_DELAY_MS\":\"0\"},\"limits\":{\"memory_mb\":32,\"disk_mb\":$2,\"cpu_percent\":1}}" | json '["id"]'
}
install() { # id: installs (creating the server's directory on the node) and waits
  local command state
  command=$(api POST "/api/v1/servers/$1/install" | json '["commandId"]')
  for _ in $(seq 1 600); do
    state=$(api GET "/api/v1/servers/$1/commands?limit=50" | python3 -c '
import json, sys
items = json.load(sys.stdin)["items"]
print(next((c["state"] + " " + str(c["detail"]) for c in items if c["id"] == sys.argv[1]), "missing"))' "$command")
    case "$state" in done*) return 0 ;; failed*) echo "install of $1 failed: $state" >&2; return 1 ;; esac
    sleep 0.1
  done
  echo "install of $1 never finished ($state)" >&2; return 1
}
files_server=$(create bench-files $((4 * file_mib + 1024)))
backup_server=$(create bench-backup $((tree_mib + 2 * file_mib + 1024)))
install "$files_server"
install "$backup_server"
files_dir=$work/agent/servers/$files_server
backup_dir=$work/agent/servers/$backup_server
if [ ! -d "$files_dir" ] || [ ! -d "$backup_dir" ]; then
  echo "the servers' directories are not in $work/agent/servers" >&2; ls -la "$work/agent/servers" >&2
  exit 1
fi
ln "$src" "$files_dir/big.bin"

# Baselines: busybox httpd (GET), nginx (GET with sendfile, WebDAV PUT).
busybox_port=$(free_port)
busybox httpd -f -p "127.0.0.1:$busybox_port" -h "$work/static" &
pids+=($!)
nginx_port=$(free_port)
nginx_user=
[ "$(id -u)" != 0 ] || nginx_user='user root;'
cat >"$work/nginx/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
$nginx_user
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  sendfile on;
  client_max_body_size 0;
  # The Agent writes uploads 64 KiB at a time.
  client_body_buffer_size 64k;
  client_body_temp_path $work/static/.body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  server {
    listen 127.0.0.1:$nginx_port;
    root $work/static;
    dav_methods PUT;
  }
}
EOF
"$nginx_bin" -p "$work/nginx" -e "$work/nginx/error.log" -c "$work/nginx/nginx.conf" &
pids+=($!)
# The private sshd: key sign-ins of this user only, the one cipher.
ssh-keygen -q -t ed25519 -N '' -C bench -f "$work/ssh/id"
ssh-keygen -q -t ed25519 -N '' -C bench-host -f "$work/sshd/host_key"
cp "$work/ssh/id.pub" "$work/sshd/authorized_keys"
sshd_port=$(free_port)
cat >"$work/sshd/sshd_config" <<EOF
ListenAddress 127.0.0.1:$sshd_port
HostKey $work/sshd/host_key
PidFile $work/sshd/sshd.pid
AuthorizedKeysFile $work/sshd/authorized_keys
StrictModes no
UsePAM no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowUsers $(id -un)
Ciphers $cipher
Subsystem sftp $sftp_server
LogLevel ERROR
EOF
"$sshd_bin" -D -e -f "$work/sshd/sshd_config" 2>"$work/sshd/log" &
pids+=($!)
for port in "$busybox_port" "$nginx_port" "$sshd_port" "$sftp_port"; do wait_port "$port"; done

# The admin's key, for the Agent's SFTP. The whole server id names the
# server: its first 8 hex digits are a UUIDv7's clock, shared by servers
# made in the same minute, which the Panel then refuses as ambiguous.
api POST /api/v1/account/ssh-keys "{\"name\":\"bench\",\"public_key\":\"$(cat "$work/ssh/id.pub")\"}" >/dev/null
agent_user=admin.$files_server
# (`-v` first wins over LogLevel=ERROR: ssh keeps an option's first value.)
sftp_run() { # port user [-v]: runs the batch on standard input (its echo to sftp.out)
  local port=$1 user=$2
  shift 2
  env -u SSH_AUTH_SOCK sftp "$@" -b - -P "$port" -F /dev/null -i "$work/ssh/id" -c "$cipher" \
    -o IdentitiesOnly=yes -o PasswordAuthentication=no -o KbdInteractiveAuthentication=no \
    -o PreferredAuthentications=publickey -o StrictHostKeyChecking=no \
    -o UserKnownHostsFile=/dev/null -o GlobalKnownHostsFile=/dev/null -o ConnectTimeout=20 \
    -o LogLevel=ERROR "$user@127.0.0.1" >>"$work/sftp.out"
}
for side in "$sshd_port $(id -un) sshd" "$sftp_port $agent_user Agent"; do
  read -r -a words <<<"$side"
  set -- "${words[@]}"
  if ! echo pwd | sftp_run "$1" "$2" -v >"$work/sftp-check.out" 2>&1; then
    echo "cannot sign in to the $3's SFTP as $2:" >&2
    cat "$work/sftp-check.out" "$work/agent.err" "$work/sshd/log" >&2
    exit 1
  fi
  grep -q "kex: client->server cipher: $cipher" "$work/sftp-check.out" || {
    echo "the $3's SFTP did not agree on $cipher:" >&2; grep 'kex:' "$work/sftp-check.out" >&2; exit 1
  }
done

# The transfer measures.
get_ok() { # url: GETs it to /dev/null; fails unless 200 with the whole file
  local out
  out=$(curl -sS -o /dev/null -w '%{http_code} %{size_download}' "$1")
  [ "$out" = "200 $bytes" ] || { echo "GET answered $out, wanted 200 $bytes" >&2; return 1; }
}
put_ok() { # url: PUTs the file; fails unless 200, 201 or 204
  local code
  code=$(curl -sS -o "$work/put.answer" -w '%{http_code}' -X PUT -T "$src" \
    -H 'Expect:' -H 'content-type: application/octet-stream' "$1")
  case "$code" in 200 | 201 | 204) ;; *) echo "PUT answered $code: $(cat "$work/put.answer")" >&2; return 1 ;; esac
}
put_synced() { put_ok "$1" && sync "$2"; } # url file: the upload, then the file on disk
chunks_ok() { # config: the browser's chunked upload; fails unless HEAD 204, PATCHes 204, the last 201
  local codes want
  codes=$(curl -sS -K "$1" | tr '\n' ' ')
  want="204 $(for _ in $(seq 2 "$(find "$work/chunks" -type f | wc -l)"); do printf '204 '; done)201 "
  [ "$codes" = "$want" ] || { echo "the chunked upload answered: $codes" >&2; return 1; }
}
chunk_config() { # url: a curl config for HEAD, then PATCH of every chunk at its offset
  local offset=0 chunk last
  last=$(find "$work/chunks" -type f | sort | tail -1)
  printf 'url = "%s"\nhead\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\n' "$1"
  for chunk in $(find "$work/chunks" -type f | sort); do
    printf 'next\nurl = "%s"\nrequest = "PATCH"\nupload-file = "%s"\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\n' "$1" "$chunk"
    printf 'header = "Expect:"\nheader = "content-type: application/octet-stream"\nheader = "Upload-Offset: %s"\n' "$offset"
    [ "$chunk" != "$last" ] || printf 'header = "Upload-Complete: ?1"\n'
    offset=$((offset + $(stat -c %s "$chunk")))
  done
}
same() { cmp "$src" "$1" || { echo "$1 differs from the file sent" >&2; return 1; }; }
delete_upload() { # path [server]: deletes it through the Panel
  api POST "/api/v1/servers/${2:-$files_server}/files/delete" "{\"paths\":[\"$1\"]}" >/dev/null
}

for run in $(seq 1 "$runs"); do
  echo "== transfers, run $run of $runs"
  timed get-busybox "$run" "$bytes" get_ok "http://127.0.0.1:$busybox_port/big.bin"
  timed get-nginx "$run" "$bytes" get_ok "http://127.0.0.1:$nginx_port/big.bin"
  signed=$(api POST "/api/v1/servers/$files_server/files/download" '{"path":"/big.bin"}' | json '["url"]')
  timed get-agent "$run" "$bytes" get_ok "$signed"

  timed put-nginx "$run" "$bytes" put_synced "http://127.0.0.1:$nginx_port/up.bin" "$work/static/up.bin"
  same "$work/static/up.bin"; rm "$work/static/up.bin"
  signed=$(api POST "/api/v1/servers/$files_server/files/upload" "{\"path\":\"/up.bin\",\"size\":$bytes}" | json '["url"]')
  timed put-agent "$run" "$bytes" put_ok "$signed"
  same "$files_dir/up.bin"; delete_upload /up.bin
  signed=$(api POST "/api/v1/servers/$files_server/files/upload" "{\"path\":\"/up.bin\",\"size\":$bytes}" | json '["url"]')
  chunk_config "$signed" >"$work/chunks.curl"
  timed put-agent-chunked "$run" "$bytes" chunks_ok "$work/chunks.curl"
  same "$files_dir/up.bin"; delete_upload /up.bin

  timed sftp-get-sshd "$run" "$bytes" sftp_run "$sshd_port" "$(id -un)" <<<"get $work/static/big.bin $work/client/got.bin"
  same "$work/client/got.bin"; rm "$work/client/got.bin"
  timed sftp-get-agent "$run" "$bytes" sftp_run "$sftp_port" "$agent_user" <<<"get /big.bin $work/client/got.bin"
  same "$work/client/got.bin"; rm "$work/client/got.bin"
  timed sftp-put-sshd "$run" "$bytes" sftp_run "$sshd_port" "$(id -un)" <<<"put $src $work/static/sftp-up.bin"
  same "$work/static/sftp-up.bin"; rm "$work/static/sftp-up.bin"
  timed sftp-put-agent "$run" "$bytes" sftp_run "$sftp_port" "$agent_user" <<<"put $src /sftp-up.bin"
  same "$files_dir/sftp-up.bin"; delete_upload /sftp-up.bin
done

echo "== writing the ${tree_mib} MiB tree ($small_files small files)"
python3 bench/files_tree.py "$backup_dir/world-data" "$tree_mib" "$small_files" | tee "$work/tree.out"
tree_bytes=$(du -sb --apparent-size "$backup_dir" | cut -f1)
sync
for run in $(seq 1 "$runs"); do
  echo "== a chunked upload into the tree's server, run $run of $runs"
  signed=$(api POST "/api/v1/servers/$backup_server/files/upload" "{\"path\":\"/up.bin\",\"size\":$bytes}" | json '["url"]')
  chunk_config "$signed" >"$work/chunks.curl"
  timed put-agent-chunked-tree "$run" "$bytes" chunks_ok "$work/chunks.curl"
  same "$backup_dir/up.bin"; delete_upload /up.bin "$backup_server"
done
rm -rf "$work/chunks"
api PUT "/api/v1/servers/$backup_server/backup-limit" "{\"limit\":$((runs + 1))}" >/dev/null
hwm_before=$(kib VmHWM)
rss_before=$(kib VmRSS)
rss_peaks=()
backup() { # run: one backup through the Panel, timed; samples the Agent's RSS meanwhile
  local id answer state t0 t1 c0 c1 peak
  (
    while :; do
      while read -r key value _; do [ "$key" = VmRSS: ] && echo "$value"; done <"/proc/$agent/status"
      sleep 0.1
    done
  ) >"$work/rss.$1" &
  sampler=$!
  c0=$(cpu_ticks "$agent")
  t0=$(now)
  id=$(api POST "/api/v1/servers/$backup_server/backups" "{\"name\":\"bench $1\"}" | json '["id"]')
  for _ in $(seq 1 36000); do
    answer=$(api GET "/api/v1/servers/$backup_server/backups/$id")
    state=$(json '["state"]' <<<"$answer")
    [ "$state" = pending ] || break
    sleep 0.1
  done
  t1=$(now)
  c1=$(cpu_ticks "$agent")
  kill "$sampler"; wait "$sampler" 2>/dev/null || true; sampler=
  [ "$state" = "done" ] || { echo "backup $id: $answer" >&2; return 1; }
  record backup-agent "$1" "$tree_bytes" "$(python3 -c "print($t1 - $t0)")"
  record backup-agent-archive "$1" "$(json '["bytes"]' <<<"$answer")" 0
  record backup-agent-cpu "$1" 0 "$(python3 -c "print(($c1 - $c0) / $(getconf CLK_TCK))")"
  python3 - "$answer" <<'EOF' >>"$work/panel-times"
import datetime, json, re, sys
b = json.loads(sys.argv[1])
# RFC 3339 with up to nanoseconds; fromisoformat takes microseconds.
f = lambda s: datetime.datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", s.replace("Z", "+00:00")))
print(f"{(f(b['completedAt']) - f(b['createdAt'])).total_seconds():.2f}")
EOF
  peak=$(sort -n "$work/rss.$1" | tail -1)
  rss_peaks+=("${peak:-$(kib VmRSS)}")
  api DELETE "/api/v1/servers/$backup_server/backups/$id" >/dev/null
}
tar_zstd() { # zstd flags…: the baseline archive of the same directory, synced
  tar -C "$backup_dir" --sort=name -cf - . | zstd -3 "$@" -q -o "$work/baseline.tar.zst"
  sync "$work/baseline.tar.zst"
}
for run in $(seq 1 "$runs"); do
  echo "== backups, run $run of $runs"
  rm -f "$work/baseline.tar.zst"
  timed backup-tar-zstd-T1 "$run" "$tree_bytes" tar_zstd -T1
  record backup-baseline-archive "$run" "$(stat -c %s "$work/baseline.tar.zst")" 0
  rm -f "$work/baseline.tar.zst"
  timed backup-tar-zstd-single "$run" "$tree_bytes" tar_zstd --single-thread
  rm -f "$work/baseline.tar.zst"
  sync
  backup "$run"
done
hwm_after=$(kib VmHWM)

# The report.
python3 - "$results" "$runs" "$file_mib" "$tree_bytes" "$(cat "$work/tree.out")" "$cipher" \
  "$hwm_before" "$hwm_after" "${rss_peaks[*]}" "$rss_before" "$(tr '\n' ' ' <"$work/panel-times")" \
  "$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . 2>/dev/null || echo +changes)" \
  "$("$nginx_bin" -v 2>&1 | sed 's/.*: //'); $(busybox 2>&1 | head -1 | cut -d' ' -f1-2); $(ssh -V 2>&1 | cut -d, -f1); $(zstd --version | grep -o 'v[0-9.]*' | sed 's/^/zstd /'); curl $(curl --version | head -1 | cut -d' ' -f2)" <<'EOF'
import collections, datetime, statistics, sys
path, runs, file_mib, tree_bytes, tree, cipher = sys.argv[1:7]
hwm_before, hwm_after, peaks, rss_before, panel_times, commit, versions = sys.argv[7:14]
rows = collections.defaultdict(list)
for line in open(path):
    measure, _, size, seconds = line.split("\t")
    rows[measure].append((int(size), float(seconds)))
def seconds(m): return statistics.median(s for _, s in rows[m])
def mibs(m): return statistics.median(b / s for b, s in rows[m]) / 2**20
def size(m): return statistics.median(b for b, _ in rows[m])
def speed(m): return f"{mibs(m):,.0f} MiB/s ({seconds(m):.2f} s)"
def ratio(agent, base): return f"**{mibs(agent) / mibs(base) * 100:.0f}%**"
mib = 2**20
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
peaks = [int(p) for p in peaks.split()]
print()
print(f"Measured {now}, `bench/files.sh` (commit {commit}), medians of {runs} runs; "
      f"{versions}; SFTP cipher {cipher}.")
print()
print("| Measure | Agent | Baseline beside it | Agent ÷ baseline (target ≥ 80%) |")
print("| --- | --- | --- | --- |")
print(f"| HTTP download of {file_mib} MiB (signed URL, curl) | {speed('get-agent')} | busybox httpd: {speed('get-busybox')} | {ratio('get-agent', 'get-busybox')} |")
print(f"| | | nginx (sendfile): {speed('get-nginx')} | {ratio('get-agent', 'get-nginx')} |")
print(f"| HTTP upload of {file_mib} MiB, one `PUT` | {speed('put-agent')} | nginx WebDAV `PUT` + `sync` of the file: {speed('put-nginx')} | {ratio('put-agent', 'put-nginx')} |")
print(f"| HTTP upload of {file_mib} MiB, 8 MiB `PATCH` chunks as the web UI | {speed('put-agent-chunked')} | the same nginx `PUT` | {ratio('put-agent-chunked', 'put-nginx')} |")
print(f"| The same chunked upload into the server holding the tree ({tree}) | {speed('put-agent-chunked-tree')} | the same nginx `PUT` | {ratio('put-agent-chunked-tree', 'put-nginx')} |")
print(f"| SFTP get of {file_mib} MiB | {speed('sftp-get-agent')} | OpenSSH sshd + sftp-server: {speed('sftp-get-sshd')} | {ratio('sftp-get-agent', 'sftp-get-sshd')} |")
print(f"| SFTP put of {file_mib} MiB | {speed('sftp-put-agent')} | OpenSSH sshd + sftp-server: {speed('sftp-put-sshd')} | {ratio('sftp-put-agent', 'sftp-put-sshd')} |")
print(f"| Backup of a {int(tree_bytes) / mib:,.0f} MiB tree ({tree}) | {speed('backup-agent')}, archive {size('backup-agent-archive') / mib:,.0f} MiB, Agent CPU {seconds('backup-agent-cpu'):.1f} s | `tar \\| zstd -3 -T1` + `sync`: {speed('backup-tar-zstd-T1')}, archive {size('backup-baseline-archive') / mib:,.0f} MiB | {ratio('backup-agent', 'backup-tar-zstd-T1')} |")
print(f"| | | `tar \\| zstd -3 --single-thread` + `sync`: {speed('backup-tar-zstd-single')} | {ratio('backup-agent', 'backup-tar-zstd-single')} |")
print(f"| Agent RSS while backing up | {int(rss_before) / 1024:.1f} MiB before, peak VmRSS (0.1 s samples) {max(peaks) / 1024:.1f} MiB (per run: {', '.join(f'{p / 1024:.1f}' for p in peaks)}); VmHWM {int(hwm_before) / 1024:.1f} → {int(hwm_after) / 1024:.1f} MiB | — | — |")
print()
print("Per run (MiB/s): " + "; ".join(
    f"{m} " + ", ".join(f"{b / s / mib:,.0f}" for b, s in rows[m])
    for m in rows if not m.endswith(("-archive", "-cpu"))) + ".")
print()
print(f"Backup times as the Panel recorded them (completedAt − createdAt, s): {panel_times.strip()}; "
      "the Agent's figure above is POST to `done` seen by 0.1 s polling.")
EOF
