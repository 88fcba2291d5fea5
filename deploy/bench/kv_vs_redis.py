#!/usr/bin/env python3
"""Stampede's KV server against redis-server, driven by redis-benchmark.

Both servers run on this machine in the same run; redis-benchmark drives
each with 50 connections, SET and GET, pipeline 1 and 16, a 100k key space
and 100-byte values. For every row it prints both servers' requests per
second, the ratio (KV server / Redis; target >= 1.0) and each server's CPU
seconds per million requests (user + system, from /proc/<pid>/stat). Each
row is the median of --repeat measurements per server, taken alternately,
because the load generator and both servers share the machine's cores.

Usage: deploy/bench/kv_vs_redis.py [--requests N]
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
                        help="measurements per row and server, alternating which server goes first; "
                             "the median is printed (default 3)")
    parser.add_argument("--binary", default=RELEASE_BINARY)
    args = parser.parse_args()
    require_tools_and_binary(args.binary)

    kv_port, redis_port = free_port(), free_port()
    kv = subprocess.Popen([args.binary, "kv-server", "--listen", f"127.0.0.1:{kv_port}"], stdout=subprocess.DEVNULL)
    redis = subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no"], stdout=subprocess.DEVNULL)
    try:
        wait_ready(kv_port)
        wait_ready(redis_port)
        print(f"{'test':<5} {'P':>3} | {'redis ops/s':>12} {'kv ops/s':>12} {'ratio':>6} | "
              f"{'redis cpu s/M':>13} {'kv cpu s/M':>11} | {'client cpu % (redis/kv)':>23}")
        for pipeline in (1, 16):
            for test in ("set", "get"):
                requests = args.requests or (500_000 if pipeline == 1 else 4_000_000)
                runs = {"redis": [], "kv": []}
                for attempt in range(args.repeat):
                    order = [("redis", redis_port, redis.pid), ("kv", kv_port, kv.pid)]
                    for name, port, pid in (order if attempt % 2 == 0 else order[::-1]):
                        runs[name].append(benchmark(port, pid, test, pipeline, requests))
                r_ops, r_cpu, r_client = median(runs["redis"])
                k_ops, k_cpu, k_client = median(runs["kv"])
                print(f"{test:<5} {pipeline:>3} | {r_ops:>12.0f} {k_ops:>12.0f} {k_ops / r_ops:>6.2f} | "
                      f"{r_cpu:>13.2f} {k_cpu:>11.2f} | {r_client:>11.0f}/{k_client:<11.0f}", flush=True)
    finally:
        for process in (kv, redis):
            process.terminate()
            process.wait()


if __name__ == "__main__":
    main()
