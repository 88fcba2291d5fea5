#!/usr/bin/env python3
"""The seed's value-format comparison: one `stampede run` per format against
one real redis-server, with `codec_in_path: true` (every SET encodes its
value, every GET that hits decodes it), and a table of throughput, SET and
GET p99, encode and decode time, the value's bytes on the wire and the
transfer rate, each beside `raw` (the peer in the same run) as a ratio.

  python3 deploy/bench/value_formats.py [--seconds 5] [--value-size 512]
                                        [--connections 8] [--compress]

Needs redis-server (apt-get install redis-server) and the release binary
(built when missing).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from benchlib import RELEASE_BINARY, free_port, require_tools_and_binary

FORMATS = ["raw", "json", "protobuf", "bitcode", "msgpack", "rkyv", "flatbuffers"]


def redis_cli(port, *args):
    return subprocess.run(["redis-cli", "-p", str(port), *args], check=True, capture_output=True, text=True).stdout


def one(port, fmt, seconds, size, connections, compress, scratch):
    scenario = (
        f"name: format-{fmt}\nduration: {seconds}s\nwarmup: 1s\nagents: 1\n"
        f"target:\n  kind: redis\n  endpoints: [\"127.0.0.1:{port}\"]\n"
        f"load:\n  model: closed\n  connections: {connections}\n"
        f"workload:\n  kind: kv\n  keys: 10000\n  read_ratio: 0.5\n  value_size: {size}B\n"
        f"  value_format: {fmt}\n  compress: {'zstd' if compress else 'none'}\n"
        f"  key_prefix: \"{fmt}:\"\n  preload: true\n  codec_in_path: true\n"
    )
    path = os.path.join(scratch, f"{fmt}.yaml")
    report_path = os.path.join(scratch, f"{fmt}.json")
    with open(path, "w") as out:
        out.write(scenario)
    run = subprocess.run([RELEASE_BINARY, "run", path, "-q", "--json", report_path], capture_output=True, text=True)
    if run.returncode not in (0, 1):
        sys.exit(f"stampede run ({fmt}) exited {run.returncode}: {run.stderr[-2000:]}")
    with open(report_path) as report_file:
        report = json.load(report_file)
    if report["totals"]["errors"]:
        sys.exit(f"{fmt}: {report['totals']['errors']} errors: {report['operations']}")
    ops = report["operations"]
    timings = report.get("timings", {})
    return {
        "format": fmt,
        "ops_s": report["totals"]["throughput"],
        "set_p99": ops["set"]["latency_us"]["p99"],
        "get_p99": ops["get"]["latency_us"]["p99"],
        "encode_p50": timings.get("encode", {}).get("ns", {}).get("p50", 0),
        "decode_p50": timings.get("decode", {}).get("ns", {}).get("p50", 0),
        "set_bytes": ops["set"]["transfer"]["sent_per_op"],
        "mb_s": report["totals"]["transfer"]["sent_mb_per_s"] + report["totals"]["transfer"]["received_mb_per_s"],
        "cpu": report["agents"][0]["generator"]["cpu_percent_mean"],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--value-size", type=int, default=512)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--compress", action="store_true", help="zstd-compress every value")
    args = parser.parse_args()
    require_tools_and_binary(RELEASE_BINARY)
    port = free_port()
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no"], stdout=subprocess.DEVNULL)  # fmt: skip
    try:
        for _ in range(100):
            try:
                if redis_cli(port, "PING").strip() == "PONG":
                    break
            except subprocess.CalledProcessError:
                pass
            time.sleep(0.05)
        rows = []
        with tempfile.TemporaryDirectory() as scratch:
            for fmt in FORMATS:
                print(f"running {fmt} for {args.seconds}s ...", file=sys.stderr)
                rows.append(one(port, fmt, args.seconds, args.value_size, args.connections, args.compress, scratch))
    finally:
        server.terminate()
        server.wait(timeout=30)
    raw = rows[0]
    print(f"value formats against redis-server, {args.value_size} B body, {args.connections} connections, "
          f"GET/SET 50/50, codec in the path{', zstd' if args.compress else ''}; ratios against raw")
    header = (f"{'format':<12} {'ops/s':>9} {'x raw':>6} {'set p99':>8} {'get p99':>8} {'encode':>8} "
              f"{'decode':>8} {'SET B':>7} {'x raw':>6} {'MB/s':>7} {'agent cpu':>9}")
    print(header)
    for r in rows:
        print(f"{r['format']:<12} {r['ops_s']:>9.0f} {r['ops_s'] / raw['ops_s']:>6.2f} {r['set_p99']:>6}us "
              f"{r['get_p99']:>6}us {r['encode_p50']:>6}ns {r['decode_p50']:>6}ns {r['set_bytes']:>7.0f} "
              f"{r['set_bytes'] / raw['set_bytes']:>6.2f} {r['mb_s']:>7.2f} {r['cpu']:>8.0f}%")


if __name__ == "__main__":
    main()
