#!/usr/bin/env python3
"""A day in an hour: memory and CPU of every process over a long run.

Starts a KV server (`stampede kv-server`), a coordinator and --agents agent
processes on loopback, submits one open-model mixed run (GET/SET/DEL over a
key space, values of several sizes) lasting --minutes, and samples every
process's resident memory and CPU every --every seconds. At the end it
prints, per process, the RSS of the first and last quarter after the
warm-up (the first tenth of the run), the growth between them, the slope
of a least-squares line through the samples after warm-up, and what that
slope would add over 24 hours; and the report's operation counts beside the
KV server's own command counts (INFO commandstats; its SETs include the
preload).

    deploy/bench/soak.py --minutes 60
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from benchlib import RELEASE_BINARY, ROOT, free_port  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_bytes(pid):
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE


def start(name, args, ready):
    process = subprocess.Popen([RELEASE_BINARY] + args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True, env={**os.environ, "STAMPEDE_LOG": "warn"})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if ready in line:
            threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()
            return process
        if not line and process.poll() is not None:
            break
    process.kill()
    sys.exit(f"{name} did not start")


def resp(port, *command):
    """One RESP command on a fresh connection; the reply's text."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"*{len(command)}\r\n".encode() + b"".join(
            f"${len(c)}\r\n{c}\r\n".encode() for c in command))
        data = b""
        while True:
            chunk = s.recv(65536)
            data += chunk
            if not chunk:
                break
            if data.startswith(b"$"):
                head, _, rest = data.partition(b"\r\n")
                if len(rest) >= int(head[1:]) + 2:
                    return rest[:int(head[1:])].decode()
            elif data.endswith(b"\r\n"):
                return data.decode()


def commandstats(port):
    counts = {}
    for line in resp(port, "INFO", "commandstats").splitlines():
        if line.startswith("cmdstat_"):
            name, _, rest = line.partition(":")
            counts[name[len("cmdstat_"):]] = int(rest.split(",")[0].split("=")[1])
    return counts


def slope_per_s(points):
    n = len(points)
    if n < 2:
        return 0.0
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    return sum((t - mt) * (v - mv) for t, v in points) / var if var else 0.0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60, help="length of the run")
    parser.add_argument("--agents", type=int, default=3)
    parser.add_argument("--rate", type=int, default=3000, help="operations per second over all agents")
    parser.add_argument("--every", type=float, default=10, help="seconds between samples")
    args = parser.parse_args()
    if args.minutes <= 0 or args.minutes > 24 * 60:
        sys.exit("--minutes must be above 0 and at most a day")
    if not os.path.exists(RELEASE_BINARY):
        subprocess.run(["cargo", "build", "--release", "-p", "stampede"], cwd=ROOT, check=True)
    work = tempfile.mkdtemp(prefix="stampede-soak-")
    processes = {}
    try:
        kv_port, grpc = free_port(), free_port()
        processes["kv-server"] = start("kv-server", ["kv-server", "--listen", f"127.0.0.1:{kv_port}"], "listening")
        processes["coordinator"] = start(
            "coordinator", ["coordinator", "--listen", f"127.0.0.1:{grpc}", "--data-dir", os.path.join(work, "data")],
            "coordinator listening")
        for i in range(args.agents):
            processes[f"agent-{i}"] = start(
                f"agent-{i}", ["agent", "--coordinator", f"http://127.0.0.1:{grpc}", "--id", f"soak-{i}"],
                "connecting")
        seconds = int(args.minutes * 60)
        scenario = os.path.join(work, "soak.yaml")
        with open(scenario, "w") as f:
            f.write(f"""name: soak
duration: {seconds}s
warmup: 5s
agents: {args.agents}
target:
  kind: kv
  endpoints: ["127.0.0.1:{kv_port}"]
load:
  model: open
  rate: {args.rate}/s
  connections: {8 * args.agents}
workload:
  kind: kv
  read_ratio: 0.7
  keys: 200000
  value_size: 512B
""")
        report_path = os.path.join(work, "report.json")
        submit = subprocess.Popen(
            [RELEASE_BINARY, "submit", scenario, "--coordinator", f"http://127.0.0.1:{grpc}", "--wait", "--quiet",
             "--json", report_path], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        began = time.monotonic()
        samples = {name: [] for name in processes}
        print(f"soak of {args.minutes:g} min, {args.agents} agents, {args.rate}/s; a sample every {args.every:g} s",
              file=sys.stderr)
        next_at = began
        while submit.poll() is None:
            now = time.monotonic()
            for name, p in processes.items():
                try:
                    samples[name].append((now - began, rss_bytes(p.pid), cpu_seconds(p.pid)))
                except OSError:
                    sys.exit(f"{name} is gone (exit {p.poll()})")
            elapsed = now - began
            if len(samples["coordinator"]) % max(1, int(60 / args.every)) == 0:
                rss = ", ".join(f"{n} {samples[n][-1][1] / 2**20:.0f}" for n in processes)
                print(f"  {elapsed / 60:5.1f} min: RSS MiB {rss}", file=sys.stderr, flush=True)
            next_at += args.every
            time.sleep(max(0.0, next_at - time.monotonic()))
        if submit.returncode not in (0, 1):
            sys.exit(f"the run ended in error: {submit.stderr.read()[-2000:]}")
        with open(report_path) as f:
            report = json.load(f)
        served = commandstats(kv_port)
        ops = report["operations"]
        # The report's measured operations plus the warm-up's against the
        # server's own counts (the run's preload and cleanup are not in it).
        measured = {op: ops[op]["count"] for op in ops}
        print()
        print("| process | RSS MiB first quarter | last quarter | growth | slope MiB/h | 24 h projection MiB | CPU % of a core |")
        print("|---|---|---|---|---|---|---|")
        worst = 0.0
        for name, points in samples.items():
            after = [s for s in points if s[0] >= seconds / 10]
            if len(after) < 4:
                continue
            quarter = max(1, len(after) // 4)
            first = sum(s[1] for s in after[:quarter]) / quarter
            last = sum(s[1] for s in after[-quarter:]) / quarter
            growth = (last - first) / first
            slope = slope_per_s([(t, r) for t, r, _ in after])
            cpu = 100 * (after[-1][2] - after[0][2]) / (after[-1][0] - after[0][0])
            if name != "kv-server":
                worst = max(worst, growth)
            print(f"| {name} | {first / 2**20:.1f} | {last / 2**20:.1f} | {100 * growth:+.2f}% | "
                  f"{slope * 3600 / 2**20:+.2f} | {(last + slope * 86400) / 2**20:.1f} | {cpu:.1f} |")
        print()
        print(f"operations measured (report): {json.dumps(measured)}; warm-up {report['totals']['warmup_ops']}")
        print(f"commands the KV server counted: {json.dumps({k: served[k] for k in sorted(served)})}")
        print(f"largest growth of an agent or the coordinator after warm-up: {100 * worst:+.2f}% (goal: under 5%)")
    finally:
        for p in processes.values():
            p.terminate()
        for p in processes.values():
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
