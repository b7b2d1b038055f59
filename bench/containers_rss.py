#!/usr/bin/env python3
"""The Agent's resident memory with 0, 50 and 200 container servers.

A Panel (`cap up --no-agent`, SQLite) and an Agent in its own process
(`cap agent --runtime container`) on a `podman system service` started
here, with the locally built test image; `test-game` servers (32 MiB,
1% CPU each) are started in batches and the Agent's RSS is read from
/proc once every server of the batch is `running`.

Usage: bench/containers_rss.py (as root, with Podman and runc; the release
`cap` and `cargo run -p cap-e2e --example test_image` first).
"""

import json
import os
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CAP = os.path.join(ROOT, "target", "release", "cap")
PODMAN = ["podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs"]
PASSWORD = "Bench-container-rss-42"


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


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main():
    work = tempfile.mkdtemp()
    os.chmod(work, 0o700)
    socket_path = os.path.join(work, "podman.sock")
    service = subprocess.Popen(
        PODMAN + ["system", "service", "--time=0", f"unix://{socket_path}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    panel = agent = None
    servers = []
    url = token = None
    try:
        while not os.path.exists(socket_path):
            time.sleep(0.05)
        env = dict(os.environ, CAP_ADMIN_PASSWORD=PASSWORD, CAP_LOG="warn")
        panel = subprocess.Popen(
            [CAP, "up", "--no-agent", "--listen", "127.0.0.1:0", "--data",
             os.path.join(work, "data")],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        url = wait_for_line(panel.stdout, "Panel listening on ").split()[-1]
        token = call(f"{url}/api/v1/auth/login", "POST",
                     {"username": "admin", "password": PASSWORD})["access_token"]
        node = call(f"{url}/api/v1/nodes", "POST",
                    {"name": "bench", "address": "127.0.0.1", "memory_mb": 1000000,
                     "disk_mb": 1000000, "cpu_percent": 100000}, token)["id"]
        call(f"{url}/api/v1/nodes/{node}/allocations", "POST",
             {"ip": "127.0.0.1", "ports": ["21000-21299"]}, token)
        registration = call(f"{url}/api/v1/nodes/{node}/registration-tokens", "POST", {},
                            token)["token"]
        agent = subprocess.Popen(
            [CAP, "agent", "--panel", url, "--token", registration, "--data",
             os.path.join(work, "agent"), "--health-listen", "127.0.0.1:0",
             "--runtime", "container", "--container-host", f"unix://{socket_path}"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        wait_for_line(agent.stdout, "Agent running")
        time.sleep(3)
        print(f"0 servers: Agent RSS {rss_mib(agent.pid):.1f} MiB")
        for target in (50, 200):
            while len(servers) < target:
                server = call(f"{url}/api/v1/servers", "POST", {
                    "name": f"s{len(servers)}", "node_id": node,
                    "game": {"plugin": "test-game"}, "variables": {"READY_DELAY_MS": "0"},
                    "limits": {"memory_mb": 32, "disk_mb": 50, "cpu_percent": 1}}, token)
                call(f"{url}/api/v1/servers/{server['id']}/power", "POST",
                     {"action": "start"}, token)
                servers.append(server["id"])
            deadline = time.time() + 900
            while time.time() < deadline:
                states = [call(f"{url}/api/v1/servers/{s}", token=token)["state"]
                          for s in servers]
                if all(state == "running" for state in states):
                    break
                time.sleep(2)
            running = sum(1 for s in states if s == "running")
            time.sleep(10)
            print(f"{target} servers ({running} running): Agent RSS {rss_mib(agent.pid):.1f} MiB")
    finally:
        for server in servers:
            try:
                call(f"{url}/api/v1/servers/{server}/power", "POST", {"action": "kill"}, token)
            except SystemExit:
                pass
        time.sleep(5)
        for process in (agent, panel):
            if process:
                process.terminate()
                process.wait(timeout=60)
        subprocess.run(
            "podman ps -aq --filter label=org.ctrl-alt-play.server | xargs -r podman rm -f",
            shell=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        service.terminate()


if __name__ == "__main__":
    main()
