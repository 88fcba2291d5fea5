#!/usr/bin/env python3
"""Stampede's `metrics` workload against pgbench, same PostgreSQL, one run.

For each row (connections x rows per statement) both tools insert devops
CPU rows (time, hostname, region, datacenter and ten usage columns) into the
same table of one local PostgreSQL server for the same time:

- pgbench runs a script with one multi-row INSERT of that many rows, in
  prepared mode (`-M prepared`; see `pgbench_script` for why its values are
  computed by the server rather than bound);
- Stampede runs the `metrics` workload with `method: insert` (one multi-row
  INSERT with every value bound) and then `method: copy` (COPY FROM STDIN).

It prints rows/s for each and the ratios (Stampede / pgbench). Target: the
INSERT ratio at least 1.0, the COPY ratio well above it. The table is
truncated before each measurement, so every one starts from the same state,
and the three tools take turns for `--rounds` rounds; the figures are the
medians (server and load generators share two cores here, so one
measurement alone varies by a third or more).

Usage: deploy/bench/metrics_vs_pgbench.py [--seconds N] [--rounds R]
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile

from benchlib import RELEASE_BINARY, ROOT, Postgres, postgres_bin

TABLE = "bench_cpu"
USAGE = ["usage_user", "usage_system", "usage_idle", "usage_nice", "usage_iowait", "usage_irq", "usage_softirq",
         "usage_steal", "usage_guest", "usage_guest_nice"]
REGIONS = ["us-east-1", "us-west-2", "eu-central-1", "ap-southeast-1"]


def create_table(server):
    usage = ", ".join(f"{c} DOUBLE PRECISION" for c in USAGE)
    server.psql(f"CREATE TABLE IF NOT EXISTS {TABLE} (time TIMESTAMPTZ NOT NULL, hostname TEXT NOT NULL, "
                f"region TEXT NOT NULL, datacenter TEXT NOT NULL, {usage})")
    # The index the driver's setup creates; made here so that pgbench pays
    # for it from its first measurement too.
    server.psql(f"CREATE INDEX IF NOT EXISTS {TABLE}_host_time ON {TABLE} (hostname, time DESC)")


def pgbench_script(rows):
    """One INSERT of `rows` rows. pgbench allows at most 255 bound variables
    per statement, too few for a multi-row INSERT with bound values, so the
    usage values come from the server's random() and the statement, prepared
    once, is sent without parameters: less for pgbench to send than for
    Stampede, which binds every value. Hostnames spread over 1000 hosts, as
    Stampede's do, so that both touch the index alike."""
    values = []
    for k in range(rows):
        usage = ", ".join("random() * 100" for _ in USAGE)
        region = REGIONS[k % len(REGIONS)]
        values.append(f"(now() - interval '{k * 10} seconds', 'host_' || floor(random() * 1000)::int, '{region}', "
                      f"'{region}{chr(97 + k % 3)}', {usage})")
    columns = "time, hostname, region, datacenter, " + ", ".join(USAGE)
    return f"INSERT INTO {TABLE} ({columns}) VALUES {', '.join(values)};\n"


def pgbench(server, connections, rows, seconds, workdir):
    script = os.path.join(workdir, f"insert-{rows}.sql")
    with open(script, "w") as f:
        f.write(pgbench_script(rows))
    out = subprocess.run(
        [postgres_bin("pgbench"), "-h", "127.0.0.1", "-p", str(server.port), "-U", "postgres", "-n",
         "-M", "prepared", "-c", str(connections), "-j", str(min(connections, 2)), "-T", str(seconds),
         "-f", script, "postgres"], check=True, capture_output=True, text=True).stdout
    tps = re.search(r"tps = ([0-9.]+)", out)
    if tps is None:
        raise SystemExit(f"pgbench printed no tps:\n{out}")
    inserted = int(server.psql(f"SELECT count(*) FROM {TABLE}"))
    return float(tps.group(1)) * rows, inserted


def stampede(binary, server, connections, rows, method, seconds, workdir):
    scenario = os.path.join(workdir, f"{method}-{connections}-{rows}.yaml")
    report = os.path.join(workdir, f"{method}-{connections}-{rows}.json")
    with open(scenario, "w") as f:
        f.write(f"""name: bench-metrics-{method}
duration: {seconds}s
warmup: 1s
agents: 1
target:
  kind: postgres
  endpoints: ["{server.url}"]
load:
  connections: {connections}
workload:
  kind: metrics
  table: {TABLE}
  hosts: 1000
  batch_size: {rows}
  method: {method}
  keep: true
""")
    subprocess.run([binary, "run", scenario, "--json", report, "-q"], check=True, capture_output=True)
    with open(report) as f:
        r = json.load(f)
    inserted = int(server.psql(f"SELECT count(*) FROM {TABLE}"))
    if inserted != r["counters"]["rows"]:
        raise SystemExit(f"the report says {r['counters']['rows']} rows, the table holds {inserted}")
    return r["counter_rates"]["rows"], inserted


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=8, help="measured seconds per tool and row (default 8)")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per tool and row, median shown (default 3)")
    parser.add_argument("--binary", default=RELEASE_BINARY)
    args = parser.parse_args()
    if not os.path.exists(args.binary):
        print("building the release binary (cargo build --release -p stampede)", flush=True)
        subprocess.run(["cargo", "build", "--release", "-p", "stampede"], cwd=ROOT, check=True)
    server = Postgres()
    workdir = tempfile.mkdtemp(prefix="stampede-bench-")
    try:
        create_table(server)
        print(f"{'conns':>5} {'rows/stmt':>9} | {'pgbench rows/s':>14} | {'insert rows/s':>13} {'ratio':>6} | "
              f"{'copy rows/s':>11} {'ratio':>6}")
        for connections, rows in ((4, 100), (4, 1000), (16, 100)):
            rates = {"pgbench": [], "insert": [], "copy": []}
            for _ in range(args.rounds):
                server.psql(f"TRUNCATE {TABLE}")
                rates["pgbench"].append(pgbench(server, connections, rows, args.seconds, workdir)[0])
                for method in ("insert", "copy"):
                    server.psql(f"TRUNCATE {TABLE}")
                    rates[method].append(stampede(args.binary, server, connections, rows, method, args.seconds, workdir)[0])
            pg, ins, cp = (statistics.median(rates[k]) for k in ("pgbench", "insert", "copy"))
            print(f"{connections:>5} {rows:>9} | {pg:>14.0f} | {ins:>13.0f} {ins / pg:>6.2f} | {cp:>11.0f} {cp / pg:>6.2f}",
                  flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        server.stop()


if __name__ == "__main__":
    main()
