#!/usr/bin/env python3
"""Ramps WebSocket connections to `stampede ws-server` (default 10,000 over
4 agents, mostly idle: an echo now and then) with `stampede run`, and prints
the connect time histogram, the echo latency, what the server counted and
the server's RSS per connection, beside the same run at a tenth of the
connections (the peer in the same run).

  python3 deploy/bench/ws_connections.py [--connections 10000] [--agents 4]
                                         [--rate 500] [--seconds 20]

Needs the release binary (built when missing) and an open-file limit above
the connections (each side holds one socket per connection).
"""

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time

from benchlib import RELEASE_BINARY, ROOT, free_port


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def one(connections, agents, rate, seconds):
    port = free_port()
    server = subprocess.Popen(
        [RELEASE_BINARY, "ws-server", "--listen", f"127.0.0.1:{port}", "--max-clients", str(connections * 2)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    server.stdout.readline()
    idle_rss = rss_kib(server.pid)
    scenario = (
        # No warm-up: the connect times are the ramp, at the start.
        f"name: ws-connections\nduration: {seconds}s\nwarmup: 0s\nagents: {agents}\n"
        f"target:\n  kind: websocket\n  endpoints: [\"127.0.0.1:{port}\"]\n"
        f"load:\n  model: open\n  rate: {rate}/s\n  connections: {connections}\n"
        f"workload:\n  kind: echo\n  message_size: 256B\n"
    )
    with tempfile.TemporaryDirectory() as scratch:
        path = os.path.join(scratch, "ws.yaml")
        report_path = os.path.join(scratch, "report.json")
        with open(path, "w") as out:
            out.write(scenario)
        peak = idle_rss
        run_peak = 0
        log_path = os.path.join(scratch, "run.log")
        with open(log_path, "w") as log:
            run = subprocess.Popen([RELEASE_BINARY, "run", path, "-q", "--json", report_path],
                                   stdout=subprocess.DEVNULL, stderr=log)  # fmt: skip
            while run.poll() is None:
                peak = max(peak, rss_kib(server.pid))
                run_peak = max(run_peak, rss_kib(run.pid))
                time.sleep(0.5)
        if run.returncode not in (0, 1):
            with open(log_path) as log:
                sys.exit(f"stampede run exited {run.returncode}: {log.read()[-2000:]}")
        with open(report_path) as report_file:
            report = json.load(report_file)
    server.send_signal(signal.SIGTERM)
    summary = server.stdout.read()
    server.wait(timeout=30)
    counts = dict(field.split("=") for field in summary.split("served: ")[1].split())
    opened = report["nodes"]["ws-0"]["opened"]
    return {
        "connections": connections,
        "opened": opened,
        "server_connections": int(counts["connections"]),
        "echo": report["operations"]["echo"],
        "connect": report["operations"]["connect"],
        "errors": report["totals"]["errors"],
        "server_rss_per_connection_kib": (peak - idle_rss) / max(connections, 1),
        "run_rss_mib": run_peak / 1024,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--seconds", type=int, default=20)
    args = parser.parse_args()
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < args.connections + 1000:
        sys.exit(f"the open-file limit is {soft}; raise it above {args.connections + 1000} (ulimit -n)")
    if not os.path.exists(RELEASE_BINARY):
        subprocess.run(["cargo", "build", "--release", "-p", "stampede"], cwd=ROOT, check=True)
    rows = [one(max(args.connections // 10, args.agents), args.agents, args.rate, args.seconds),
            one(args.connections, args.agents, args.rate, args.seconds)]  # fmt: skip
    print("| connections | connect times recorded | server's count | connect p50 | connect p99 | echo p50 | echo p99 | errors | server RSS per connection | `stampede run` peak RSS |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        echo, connect = row["echo"]["latency_us"], row["connect"]["latency_us"]
        print(f"| {row['connections']:,} | {row['connect']['count']:,} | {row['server_connections']:,} | "
              f"{connect['p50']} us | {connect['p99']} us | {echo['p50']} us | {echo['p99']} us | {row['errors']} | "
              f"{row['server_rss_per_connection_kib']:.1f} KiB | {row['run_rss_mib']:.0f} MiB |")  # fmt: skip
    small, large = rows
    ratio = large["echo"]["latency_us"]["p99"] / max(small["echo"]["latency_us"]["p99"], 1)
    print(f"echo p99 at {large['connections']:,} connections / at {small['connections']:,}: {ratio:.2f}")
    ok = all(
        r["opened"] == r["connect"]["count"] == r["server_connections"] == r["connections"] and r["errors"] == 0
        for r in rows
    )
    print("every connection opened and counted by the server: " + ("yes" if ok else "NO"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
