#!/usr/bin/env python3
"""How one coordinator holds up under many agents.

For each fleet size N, starts a real coordinator process (a fresh data
directory each time) and `stampede-fleet`, which opens N real gRPC agent
sessions from one process (hello, clock pings, heartbeats, Ready, one
interval report per second of --series operation x node series with
V2-deflate histograms of --values values, acknowledgements awaited and
resends). While the reports flow it samples the coordinator's CPU (percent
of one core, from /proc) and resident memory every second, and prints per N:
CPU, RSS, the acknowledgement latency, how late WatchRun and /metrics showed
each second, and whether the report's totals (per operation and node, and
errors) equal what the simulated agents sent.

With --baseline BINARY the same fleets also run against that coordinator
(an older build, say), interleaved, so before and after are measured in one
run on the same machine.

    deploy/bench/coordinator_scale.py --agents 100,300,1000 --seconds 30
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from benchlib import ROOT, RELEASE_BINARY, free_port  # noqa: E402

FLEET_BINARY = os.path.join(ROOT, "target", "release", "stampede-fleet")
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_bytes(pid):
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE


def raise_open_files():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def start_coordinator(binary, data):
    port, http = free_port(), free_port()
    process = subprocess.Popen(
        [binary, "coordinator", "--listen", f"127.0.0.1:{port}", "--http-listen", f"127.0.0.1:{http}",
         "--data-dir", data],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, preexec_fn=raise_open_files,
        env={**os.environ, "STAMPEDE_LOG": "warn"})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if "coordinator listening" in line:
            threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()
            return process, port, http
        if not line and process.poll() is not None:
            break
    process.kill()
    sys.exit(f"{binary} coordinator did not start")


def one(binary, agents, args):
    data = tempfile.mkdtemp(prefix="stampede-scale-")
    coordinator, port, http = start_coordinator(binary, data)
    fleet = subprocess.Popen(
        [FLEET_BINARY, "--coordinator", f"http://127.0.0.1:{port}", "--agents", str(agents),
         "--series", str(args.series), "--values", str(args.values), "--seconds", str(args.seconds),
         "--http", f"127.0.0.1:{http}", "--connect-rate", str(args.connect_rate)],
        stdout=subprocess.PIPE, text=True, preexec_fn=raise_open_files)
    samples = []
    result = None
    submitted = None

    def sample():
        while fleet.poll() is None:
            try:
                samples.append((time.monotonic(), cpu_seconds(coordinator.pid), rss_bytes(coordinator.pid),
                                cpu_seconds(fleet.pid)))
            except OSError:
                return
            time.sleep(1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    for line in fleet.stdout:
        event = json.loads(line)
        if event["event"] == "submitted":
            submitted = time.monotonic()
        elif event["event"] == "result":
            result = event
    fleet.wait()
    sampler.join(timeout=5)
    coordinator.terminate()
    try:
        coordinator.wait(timeout=20)
    except subprocess.TimeoutExpired:
        coordinator.kill()
        coordinator.wait()
    shutil.rmtree(data, ignore_errors=True)
    if result is None or submitted is None:
        sys.exit(f"the fleet of {agents} did not finish (exit {fleet.returncode})")
    # The steady part: from 5 s after the submission (the run has started
    # and reports flow) to the planned end.
    steady = [s for s in samples if submitted + 5 <= s[0] <= submitted + 2 + args.seconds]
    if len(steady) >= 2:
        (t0, c0, _, f0), (t1, c1, _, f1) = steady[0], steady[-1]
        result["coordinator_cpu_percent"] = round(100 * (c1 - c0) / (t1 - t0), 1)
        result["fleet_cpu_percent"] = round(100 * (f1 - f0) / (t1 - t0), 1)
    else:
        result["coordinator_cpu_percent"] = result["fleet_cpu_percent"] = float("nan")
    result["coordinator_rss_mib_max"] = round(max(s[2] for s in samples) / 2**20, 1) if samples else 0
    return result


def row(label, r):
    return (f"| {label} | {r['agents']} | {r['series']} | {r['coordinator_cpu_percent']} | "
            f"{r['coordinator_rss_mib_max']} | {r['ack_ms']['p50']:.1f} / {r['ack_ms']['p99']:.1f} | "
            f"{r['watch_delay_ms']['p50']} / {r['watch_delay_ms']['p99']} | "
            f"{r['metrics_delay_ms']['p50']} / {r['metrics_delay_ms']['p99']} | "
            f"{r['reports_acked']}/{r['reports_sent']} | {r['resent']} | "
            f"{'yes' if r['totals_equal'] else 'NO'} | {r['fleet_cpu_percent']} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", default="100,300,1000", help="fleet sizes, comma-separated")
    parser.add_argument("--seconds", type=int, default=30, help="reporting seconds per fleet")
    parser.add_argument("--series", type=int, default=16, help="operation x node series per report")
    parser.add_argument("--values", type=int, default=2000, help="values per histogram")
    parser.add_argument("--connect-rate", type=int, default=200, help="sessions opened per second")
    parser.add_argument("--binary", default=RELEASE_BINARY, help="the coordinator measured")
    parser.add_argument("--baseline", help="another stampede binary measured the same way, interleaved")
    parser.add_argument("--json", action="store_true", help="also print each result as JSON")
    args = parser.parse_args()
    if not os.path.exists(args.binary) or not os.path.exists(FLEET_BINARY):
        print("building stampede and stampede-fleet (release)", file=sys.stderr)
        subprocess.run(["cargo", "build", "--release", "-p", "stampede", "-p", "stampede-tests",
                        "--bin", "stampede", "--bin", "stampede-fleet"], cwd=ROOT, check=True)
    if args.baseline and not os.path.exists(args.baseline):
        sys.exit(f"--baseline {args.baseline} does not exist")
    binaries = [("this", args.binary)] + ([("baseline", args.baseline)] if args.baseline else [])
    print("| coordinator | agents | series | CPU % of a core | RSS MiB (max) | ack ms p50 / p99 | "
          "WatchRun delay ms p50 / p99 | /metrics delay ms p50 / p99 | reports acked/sent | resent | "
          "totals equal | fleet CPU % |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    failed = False
    for agents in [int(n) for n in args.agents.split(",")]:
        for label, binary in binaries:
            result = one(binary, agents, args)
            print(row(label, result), flush=True)
            if args.json:
                print(json.dumps(result), flush=True)
            failed |= not result["totals_equal"] or bool(result["failures"])
            for failure in result["failures"][:5]:
                print(f"  {failure}", file=sys.stderr)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
