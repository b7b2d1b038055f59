#!/usr/bin/env python3
"""Start to `running`: the Agent's container runtime against `podman run`.

Starts its own `podman system service`, a `cap up --runtime container`
Panel (release build, SQLite) and the locally built test image
(`cargo run -p cap-e2e --example test_image`), then, in one run and
alternating:

- **Agent**: `POST /api/v1/servers/{id}/power {"action":"start"}` on a
  bundled `test-game` server until the Panel reports `running` (the
  stand-in printed READY, the Agent classified it and told the Panel);
- **podman run**: `podman run --rm -i` of the same image and command until
  the stand-in prints READY on its stdout.

Usage: bench/containers.py [ROUNDS, default 10] (as root, with Podman and
runc; `cargo build --release -p cap-cli` first).
"""

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CAP = os.path.join(ROOT, "target", "release", "cap")
IMAGE = "localhost/cap-test-game:latest"
PODMAN = ["podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs"]
PASSWORD = "Bench-containers-42"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(url, method="GET", body=None, token=None):
    request = urllib.request.Request(url, method=method)
    request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", f"Bearer {token}")
    data = json.dumps(body).encode() if body is not None else None
    try:
        with urllib.request.urlopen(request, data) as response:
            text = response.read()
            return json.loads(text) if text else None
    except urllib.error.HTTPError as error:
        raise SystemExit(f"{method} {url}: {error.code} {error.read().decode()}")


def wait_for_line(stream, prefix, timeout=600):
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = stream.readline()
        if not line:
            break
        if line.startswith(prefix):
            return line
    raise SystemExit(f"no line starting with {prefix!r}")


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    work = tempfile.mkdtemp()
    os.chmod(work, 0o700)
    socket_path = os.path.join(work, "podman.sock")
    service = subprocess.Popen(
        PODMAN + ["system", "service", "--time=0", f"unix://{socket_path}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    panel = None
    try:
        while not os.path.exists(socket_path):
            time.sleep(0.05)
        env = dict(os.environ, CAP_ADMIN_PASSWORD=PASSWORD, CAP_LOG="warn")
        panel = subprocess.Popen(
            [CAP, "up", "--listen", "127.0.0.1:0", "--runtime", "container",
             "--container-host", f"unix://{socket_path}", "--data", os.path.join(work, "data")],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        url = wait_for_line(panel.stdout, "Panel listening on ").split()[-1]
        wait_for_line(panel.stdout, "  Agent:")
        token = call(f"{url}/api/v1/auth/login", "POST",
                     {"username": "admin", "password": PASSWORD})["access_token"]
        node = next(n for n in call(f"{url}/api/v1/nodes", token=token)["items"]
                    if n["name"] == "local")
        agent_ms, podman_ms = [], []
        for _ in range(rounds):
            port = free_port()
            call(f"{url}/api/v1/nodes/{node['id']}/allocations", "POST",
                 {"ip": "127.0.0.1", "ports": [str(port)]}, token)
            server = call(f"{url}/api/v1/servers", "POST", {
                "name": f"bench-{port}", "node_id": node["id"], "game": {"plugin": "test-game"},
                "allocation": {"ip": "127.0.0.1", "port": port},
                "variables": {"READY_DELAY_MS": "0"},
                "limits": {"memory_mb": 64, "disk_mb": 10, "cpu_percent": 10}}, token)
            started = time.perf_counter()
            call(f"{url}/api/v1/servers/{server['id']}/power", "POST", {"action": "start"}, token)
            while call(f"{url}/api/v1/servers/{server['id']}", token=token)["state"] != "running":
                time.sleep(0.005)
            agent_ms.append((time.perf_counter() - started) * 1000)
            call(f"{url}/api/v1/servers/{server['id']}/power", "POST", {"action": "kill"}, token)

            port = free_port()
            started = time.perf_counter()
            run = subprocess.Popen(
                PODMAN + ["run", "--rm", "-i", "--ulimit", "nofile=1024:1024",
                          "--ulimit", "nproc=512:512", "-p", f"127.0.0.1:{port}:{port}",
                          IMAGE, "cap-standin-game", "--port", str(port),
                          "--ready-delay-ms", "0", "--max-players", "4"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                text=True)
            wait_for_line(run.stdout, "READY", 120)
            podman_ms.append((time.perf_counter() - started) * 1000)
            run.stdin.write("stop\n")
            run.stdin.flush()
            run.wait(timeout=30)
        for name, values in (("Agent (API start to running)", agent_ms),
                             ("podman run (to READY)", podman_ms)):
            print(f"{name}: median {statistics.median(values):.0f} ms, "
                  f"min {min(values):.0f}, max {max(values):.0f} ({len(values)} runs)")
        print(f"ratio of medians: {statistics.median(agent_ms) / statistics.median(podman_ms):.2f}")
    finally:
        if panel:
            panel.terminate()
            panel.wait(timeout=30)
        service.terminate()
        subprocess.run(PODMAN + ["ps", "-a", "-q", "--filter", "label=org.ctrl-alt-play.server"],
                       stdout=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
