#!/usr/bin/env python3
"""How many bytes each results store keeps per agent-second, and what that
means for a long soak.

One run per store, the same scenario each time: two agent processes drive
a `stampede kv-server` with the five operations of the `mixed` workload for
`--seconds` (open model, 2,000/s). The stores:

- file: the data directory (`intervals.jsonl`, one JSON line per report);
- etcd: the interval keys of the run (measured every second while the run
  lasts, since they are deleted once the report is stored);
- postgres: `stampede_intervals` rows (protobuf); "with indexes" is the
  growth of `pg_total_relation_size` (heap, index, TOAST) per row added
  during the second half of the run, so the fixed size of an almost empty
  table does not count.

It prints bytes per agent-second (one interval report per agent and
second) and the projections that decide which store fits which use: 100
agents for 24 h against this machine's free disk, and how long etcd's
default 2 GB quota lasts with 3 and 30 agents.

Usage: deploy/bench/store_size.py [--seconds 60] [--binary target/release/stampede]
"""

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from benchlib import RELEASE_BINARY, ROOT, Postgres, free_port

AGENTS = 2
ETCD_QUOTA = 2 * 1024**3


def scenario(endpoint, seconds):
    return f"""name: store-size
duration: {seconds}s
agents: {AGENTS}
target:
  kind: kv
  endpoints: ["{endpoint}"]
load:
  model: open
  rate: 2000/s
  connections: 8
workload:
  kind: mixed
  weights: {{set: 30, get: 50, incr: 10, lpush: 5, hset: 5}}
  keys: 10000
  value_size: 256B
"""


class Processes:
    def __init__(self):
        self.started = []

    def start(self, args, **kwargs):
        process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, **kwargs)
        self.started.append(process)
        return process

    def stop(self):
        for process in reversed(self.started):
            process.terminate()
        for process in self.started:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def address_of(process, needle="listening on "):
    """The address a stampede server prints ("... listening on ADDR")."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if needle in line:
            return line.split(needle, 1)[1].split()[0].rstrip(",")
    sys.exit(f"no '{needle}' from {process.args}")


def etcd_server(processes, directory):
    program = shutil.which("etcd")
    if program is None:
        sys.exit("etcd is not installed: apt-get install etcd-server etcd-client")
    client, peer = free_port(), free_port()
    url = f"http://127.0.0.1:{client}"
    processes.start([program, "--name", "bench", "--data-dir", os.path.join(directory, "etcd"),
                     "--listen-client-urls", url, "--advertise-client-urls", url,
                     "--listen-peer-urls", f"http://127.0.0.1:{peer}",
                     "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
                     "--initial-cluster", f"bench=http://127.0.0.1:{peer}"])
    deadline = time.monotonic() + 30
    while etcdctl(url, "endpoint", "health").returncode:
        if time.monotonic() > deadline:
            sys.exit("etcd did not become healthy within 30 s")
        time.sleep(0.2)
    return url


def etcdctl(url, *args):
    return subprocess.run(["etcdctl", "--endpoints", url, *args], capture_output=True, text=True,
                          env={**os.environ, "ETCDCTL_API": "3"})


def etcd_interval_bytes(url, prefix):
    """(reports, bytes) of the values under `prefix`."""
    out = etcdctl(url, "get", "--prefix", prefix, "-w", "json")
    if out.returncode:
        return 0, 0
    kvs = json.loads(out.stdout).get("kvs", [])
    return len(kvs), sum(len(base64.b64decode(kv.get("value", ""))) for kv in kvs)


def measure(binary, store, workdir, kv, seconds, etcd_url, postgres):
    processes = Processes()
    data = os.path.join(workdir, f"data-{store}")
    args = [binary, "coordinator", "--listen", "127.0.0.1:0", "--data-dir", data]
    prefix = f"/store-size-{store}"
    if store == "etcd":
        args += ["--etcd", etcd_url, "--etcd-prefix", prefix]
    if store == "postgres":
        args += ["--results", postgres.url]
    try:
        coordinator = processes.start(args)
        url = "http://" + address_of(coordinator)
        for i in range(AGENTS):
            processes.start([binary, "agent", "--coordinator", url, "--id", f"agent-{i}"])
        path = os.path.join(workdir, "scenario.yaml")
        with open(path, "w") as f:
            f.write(scenario(kv, seconds))
        deadline = time.monotonic() + 30
        while True:
            submitted = subprocess.run([binary, "submit", path, "--coordinator", url], capture_output=True, text=True)
            if submitted.returncode == 0:
                break
            if time.monotonic() > deadline:
                sys.exit(f"submit failed: {submitted.stdout}{submitted.stderr}")
            time.sleep(0.5)
        run_id = next(w for w in submitted.stdout.split() if w.startswith("r-"))
        peak = (0, 0)
        # (rows, total relation size) of the PostgreSQL table, sampled.
        samples = []
        while True:
            if store == "etcd":
                counted = etcd_interval_bytes(etcd_url, f"{prefix}/runs/{run_id}/intervals/")
                peak = max(peak, counted)
            if store == "postgres":
                row = postgres.psql("SELECT count(*), pg_total_relation_size('stampede_intervals') "
                                    "FROM stampede_intervals").strip().split("|")
                if len(row) == 2 and row[0]:
                    samples.append((int(row[0]), int(row[1])))
            report = subprocess.run([binary, "report", run_id, "--json", "--coordinator", url],
                                    capture_output=True, text=True)
            if report.returncode == 0:
                break
            time.sleep(1)
        if store == "file":
            intervals = os.path.join(data, "runs", run_id, "intervals.jsonl")
            with open(intervals, "rb") as f:
                reports = sum(1 for _ in f)
            return reports, os.path.getsize(intervals), None
        if store == "etcd":
            return peak[0], peak[1], None
        row = postgres.psql(f"SELECT count(*), sum(pg_column_size(i.*)) FROM stampede_intervals i "
                            f"WHERE run_id = '{run_id}'").strip().split("|")
        reports = int(row[0])
        middle = next((s for s in samples if s[0] >= reports // 2), samples[0])
        last = samples[-1]
        marginal = (last[1] - middle[1]) / max(last[0] - middle[0], 1)
        return reports, int(row[1]), marginal * reports
    finally:
        processes.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--binary", default=RELEASE_BINARY)
    options = parser.parse_args()
    if not os.path.exists(options.binary):
        print("building the release binary (cargo build --release -p stampede)", file=sys.stderr)
        subprocess.run(["cargo", "build", "--release", "-p", "stampede"], cwd=ROOT, check=True)
    workdir = tempfile.mkdtemp(prefix="stampede-store-size-")
    servers = Processes()
    postgres = Postgres()
    try:
        etcd_url = etcd_server(servers, workdir)
        kv = address_of(servers.start([options.binary, "kv-server", "--listen", "127.0.0.1:0"]))
        rows = []
        for store in ("file", "etcd", "postgres"):
            reports, data_bytes, total = measure(options.binary, store, workdir, kv, options.seconds, etcd_url,
                                                 postgres)
            rows.append((store, reports, data_bytes, total))
    finally:
        servers.stop()
        postgres.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    free = shutil.disk_usage(ROOT).free
    print(f"{AGENTS} agents x {options.seconds} s, mixed workload (5 operations), one report per agent and second")
    print(f"free disk here: {free / 1e9:.1f} GB")
    print()
    print("store     reports  bytes/agent-s  with indexes  100 agents x 24 h  fits the free disk")
    for store, reports, data_bytes, total in rows:
        per = data_bytes / max(reports, 1)
        with_indexes = (total / max(reports, 1)) if total else per
        day = with_indexes * 100 * 86400
        print(f"{store:<9} {reports:>7}  {per:>13.0f}  {with_indexes:>12.0f}  {day / 1e9:>14.1f} GB  "
              f"{'yes' if day < free else 'no'}")
    etcd_per = next(data_bytes / max(reports, 1) for store, reports, data_bytes, _ in rows if store == "etcd")
    print()
    # A run's interval keys go once its report is stored, so with etcd alone
    # the quota bounds one run, not the history.
    for agents in (3, 30, 1000):
        hours = ETCD_QUOTA / (etcd_per * agents) / 3600
        print(f"etcd alone, 2 GB quota: one run of {agents:>4} agents fills it after {hours:6.1f} h")


if __name__ == "__main__":
    main()
