#!/usr/bin/env python3
"""Stampede's KV server against redis-server, driven by redis-benchmark.

The servers run on this machine in the same run: redis-server, the KV
server with its defaults, and the KV server with `--busy-poll` (unless
`--busy-poll 0s`). redis-benchmark drives each with 50 connections, SET and
GET, pipeline 1 and 16, a 100k key space and 100-byte values. For every row
it prints each server's requests per second, the ratios (KV server / Redis;
target >= 1.0), each server's CPU seconds per million requests (user +
system, from /proc/<pid>/stat) and redis-benchmark's own CPU use (100 means
the client is the limit). Each figure is the median of --repeat
measurements per server, taken in rotating order, because the load
generator and the servers share the machine's cores.

Usage: deploy/bench/kv_vs_redis.py [--requests N] [--repeat N] [--busy-poll 50us]
"""

import argparse
import os
import resource
import socket
import subprocess
import sys
import time

from benchlib import RELEASE_BINARY, free_port, require_tools_and_binary

TICKS = os.sysconf("SC_CLK_TCK")



def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def wait_ready(port):
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"server on port {port} did not start")


def client_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def benchmark(port, pid, test, pipeline, requests):
    """(ops/s, server CPU s per million requests, redis-benchmark's CPU use
    in percent of one core: near 100 means the client is the limit)."""
    before = cpu_seconds(pid)
    client_before, wall_before = client_cpu(), time.monotonic()
    out = subprocess.run([
        "redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-c", "50", "-P", str(pipeline),
        "-t", test, "-n", str(requests), "-r", "100000", "-d", "100", "--csv",
    ], check=True, capture_output=True, text=True).stdout
    cpu = cpu_seconds(pid) - before
    client = 100 * (client_cpu() - client_before) / (time.monotonic() - wall_before)
    row = [line for line in out.splitlines() if line.startswith(f'"{test.upper()}"')][-1]
    return float(row.split(",")[1].strip('"')), cpu / (requests / 1e6), client


def median(measurements):
    """The median of each figure over repeated measurements."""
    return tuple(sorted(m[i] for m in measurements)[len(measurements) // 2] for i in range(3))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=0, help="requests per row (default: 500k at P1, 4M at P16)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="measurements per row and server, rotating which server goes first; "
                             "the median is printed (default 3)")
    parser.add_argument("--busy-poll", default="50us",
                        help="window of the third server's --busy-poll; 0s leaves that server out (default 50us)")
    parser.add_argument("--binary", default=RELEASE_BINARY)
    args = parser.parse_args()
    require_tools_and_binary(args.binary)

    servers = []  # (name, port, process)
    try:
        port = free_port()
        servers.append(("redis", port, subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL)))
        port = free_port()
        servers.append(("kv", port, subprocess.Popen(
            [args.binary, "kv-server", "--listen", f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL)))
        if args.busy_poll.strip("0") not in ("s", "us", "ms", ""):
            port = free_port()
            servers.append(("kv+poll", port, subprocess.Popen(
                [args.binary, "kv-server", "--listen", f"127.0.0.1:{port}", "--busy-poll", args.busy_poll],
                stdout=subprocess.DEVNULL)))
        for name, port, process in servers:
            wait_ready(port)
            if process.poll() is not None:
                sys.exit(f"{name} exited at start with {process.returncode}")
        names = [name for name, _, _ in servers]
        if "kv+poll" in names:
            print(f"kv+poll is the KV server with --busy-poll {args.busy_poll}")
        header = f"{'test':<5} {'P':>3} | {'redis ops/s':>11}"
        for name in names[1:]:
            header += f" {name + ' ops/s':>13} {'ratio':>5}"
        header += " | cpu s/M " + "/".join(names) + " | client cpu % " + "/".join(names)
        print(header)
        for pipeline in (1, 16):
            for test in ("set", "get"):
                requests = args.requests or (500_000 if pipeline == 1 else 4_000_000)
                runs = {name: [] for name in names}
                for attempt in range(args.repeat):
                    shift = attempt % len(servers)
                    for name, port, process in servers[shift:] + servers[:shift]:
                        runs[name].append(benchmark(port, process.pid, test, pipeline, requests))
                medians = {name: median(runs[name]) for name in names}
                redis_ops = medians["redis"][0]
                line = f"{test:<5} {pipeline:>3} | {redis_ops:>11.0f}"
                for name in names[1:]:
                    line += f" {medians[name][0]:>13.0f} {medians[name][0] / redis_ops:>5.2f}"
                line += " | " + "/".join(f"{medians[name][1]:.2f}" for name in names)
                line += " | " + "/".join(f"{medians[name][2]:.0f}" for name in names)
                print(line, flush=True)
    finally:
        for _, _, process in servers:
            process.terminate()
            process.wait()


if __name__ == "__main__":
    main()
