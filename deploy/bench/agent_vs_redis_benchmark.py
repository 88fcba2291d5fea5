#!/usr/bin/env python3
"""Stampede's agent against redis-benchmark, same Redis, same load, one run.

Both tools drive one local redis-server with 50 connections, pipeline depth
1 and 16, SET and GET on a 100k key space with 100-byte values. For each row
it prints each tool's ops/s and CPU seconds per million operations, and the
ratios (agent / redis-benchmark). Target: throughput ratio >= 1.0 and CPU
ratio <= 1.0.

The agent side is `stampede run` with one in-process agent; its CPU figure
is the whole process (agent plus the in-process coordinator, which is idle
but for one report a second).

Usage: deploy/bench/agent_vs_redis_benchmark.py [--seconds N]
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import tempfile
import time

from benchlib import RELEASE_BINARY, free_port, require_tools_and_binary




def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd, **kwargs):
    """Runs a command to completion; returns (stdout, wall s, cpu s)."""
    cpu0, t0 = children_cpu(), time.monotonic()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, **kwargs).stdout
    return out, time.monotonic() - t0, children_cpu() - cpu0


def redis_benchmark(port, test, pipeline, requests):
    out, wall, cpu = timed([
        "redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-c", "50", "-P", str(pipeline),
        "-t", test, "-n", str(requests), "-r", "100000", "-d", "100", "--csv",
    ])
    rows = [line for line in out.splitlines() if line.startswith('"')]
    rps = float(rows[-1].split(",")[1].strip('"'))
    return rps, cpu / (requests / 1e6)


def stampede(binary, port, test, pipeline, seconds, workdir):
    scenario = os.path.join(workdir, f"{test}-{pipeline}.yaml")
    report = os.path.join(workdir, f"{test}-{pipeline}.json")
    with open(scenario, "w") as f:
        f.write(f"""name: bench-{test}-p{pipeline}
duration: {seconds + 1}s
warmup: 1s
agents: 1
target:
  kind: redis
  endpoints: ["127.0.0.1:{port}"]
load:
  model: closed
  connections: 50
  pipeline: {pipeline}
workload:
  kind: kv
  read_ratio: {1.0 if test == "get" else 0.0}
  keys: 100000
  value_size: 100B
""")
    _, _, cpu = timed([binary, "run", scenario, "--json", report, "-q"])
    with open(report) as f:
        r = json.load(f)
    all_ops = r["totals"]["ops"] + r["totals"]["warmup_ops"]
    return r["totals"]["throughput"], cpu / (all_ops / 1e6)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=5, help="measured seconds per agent row (default 5)")
    parser.add_argument("--binary", default=RELEASE_BINARY)
    args = parser.parse_args()
    require_tools_and_binary(args.binary)

    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        workdir = tempfile.mkdtemp(prefix="stampede-bench-")
        print(f"{'test':<5} {'P':>3} | {'redis-benchmark ops/s':>21} {'cpu s/M':>8} | {'stampede ops/s':>14} {'cpu s/M':>8} | {'ops ratio':>9} {'cpu ratio':>9}")
        for pipeline in (1, 16):
            for test in ("set", "get"):
                requests = 400_000 if pipeline == 1 else 4_000_000
                rb_ops, rb_cpu = redis_benchmark(port, test, pipeline, requests)
                st_ops, st_cpu = stampede(args.binary, port, test, pipeline, args.seconds, workdir)
                print(f"{test:<5} {pipeline:>3} | {rb_ops:>21.0f} {rb_cpu:>8.2f} | {st_ops:>14.0f} {st_cpu:>8.2f} | "
                      f"{st_ops / rb_ops:>9.2f} {st_cpu / rb_cpu:>9.2f}", flush=True)
        shutil.rmtree(workdir, ignore_errors=True)
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
