#!/usr/bin/env python3
"""How often `stampede compare` calls two runs of the same load different.

Runs the same open-model scenario against one `stampede kv-server` PAIRS
times twice (11 s each: 10 measured windows, the fewest a verdict needs)
and compares each pair; then once more with the server stopped (SIGSTOP)
for 30 ms of every 100 ms, which must be called worse. Prints the number
of pairs with any verdict other than "no significant change" (false
alarms), the gates that would have tripped, and whether the slowed run was
caught. The issue's target: at most 1 false alarm in 10.

    deploy/bench/compare_false_alarms.py [PAIRS]
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

from benchlib import RELEASE_BINARY, ROOT

GATES = ["p99 > +10%", "throughput < -5%"]


def main():
    pairs = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    if not os.path.exists(RELEASE_BINARY):
        subprocess.run(["cargo", "build", "--release", "-p", "stampede"], cwd=ROOT, check=True)
    work = tempfile.mkdtemp(prefix="stampede-compare-bench-")
    server = subprocess.Popen([RELEASE_BINARY, "kv-server", "--listen", "127.0.0.1:0", "--node-id", "kv-0"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        address = None
        for line in server.stdout:
            if "127.0.0.1:" in line:
                address = line[line.index("127.0.0.1:"):].split()[0].strip('",')
                break
        if address is None:
            sys.exit("the KV server did not say where it listens")
        threading.Thread(target=lambda: [None for _ in server.stdout], daemon=True).start()
        scenario = os.path.join(work, "same.yaml")
        with open(scenario, "w") as f:
            f.write(f"name: same\nduration: 11s\nwarmup: 1s\ntarget:\n  kind: kv\n  endpoints: [\"{address}\"]\n"
                    "load:\n  model: open\n  rate: 1000/s\n  connections: 8\nworkload:\n  kind: kv\n  keys: 1000\n")

        def run(name):
            report = os.path.join(work, f"{name}.json")
            subprocess.run([RELEASE_BINARY, "run", scenario, "--quiet", "--json", report],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            return report

        def compare(base, candidate):
            args = [RELEASE_BINARY, "compare", base, candidate, "--json"]
            for gate in GATES:
                args += ["--fail-on", gate]
            done = subprocess.run(args, capture_output=True, text=True)
            flagged = [f"{r['operation']} {r['figure']} {r['verdict']} ({r['change'] * 100:+.1f}%)"
                       for r in json.loads(done.stdout)["rows"]
                       if r["verdict"] in ("better", "worse") and r.get("node") is None]
            return flagged, done.returncode

        alarms = 0
        tripped = 0
        for i in range(pairs):
            flagged, code = compare(run(f"a{i}"), run(f"b{i}"))
            alarms += bool(flagged)
            tripped += code == 1
            print(f"pair {i + 1:>2}: {'; '.join(flagged) if flagged else 'no significant change'}"
                  f"{'  (a gate tripped)' if code == 1 else ''}", flush=True)
        base = run("base")
        stop = threading.Event()

        def bursts():
            while not stop.is_set():
                os.kill(server.pid, signal.SIGSTOP)
                time.sleep(0.03)
                os.kill(server.pid, signal.SIGCONT)
                time.sleep(0.07)
            os.kill(server.pid, signal.SIGCONT)

        thread = threading.Thread(target=bursts)
        thread.start()
        try:
            slowed = run("slowed")
        finally:
            stop.set()
            thread.join()
        flagged, code = compare(base, slowed)
        print(f"slowed   : {'; '.join(flagged) or 'nothing flagged'} (gates {'tripped' if code == 1 else 'held'})")
        print(f"false alarms: {alarms} of {pairs} pairs flagged something, gates {' and '.join(GATES)} "
              f"tripped on {tripped}; target at most {pairs // 10}")
    finally:
        server.kill()


if __name__ == "__main__":
    main()
