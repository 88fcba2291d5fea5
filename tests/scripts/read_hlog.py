"""Reads a Stampede interval log and JSON report with HdrHistogram's Python
library (hdrhistogram on PyPI), not with Stampede's code, and prints per
operation the merged buckets of the log's measured intervals (all nodes)
and of the report's `histograms` key, as [[value, count], ...].

    python3 read_hlog.py latency.hlog report.json
"""
import json
import sys

from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader

HIGHEST_US = 3600 * 1000 * 1000


def buckets(histogram):
    return [[item.value_iterated_to, item.count_at_value_iterated_to]
            for item in histogram.get_recorded_iterator()]


def main(log_path, report_path):
    report = json.load(open(report_path, encoding="utf-8"))
    merged = {}
    reader = HistogramLogReader(log_path, HdrHistogram(1, HIGHEST_US, 3))
    intervals = 0
    while True:
        # Relative to the log's StartTime: the warm-up's intervals are left out.
        interval = reader.get_next_interval_histogram(range_start_time_sec=report["warmup_s"])
        if interval is None:
            break
        intervals += 1
        operation, _, rest = interval.get_tag().partition("@")
        kind = "service" if rest.endswith("#service") else "latency"
        merged.setdefault(operation, {}).setdefault(kind, HdrHistogram(1, HIGHEST_US, 3)).add(interval)
    from_log = {op: {kind: buckets(h) for kind, h in kinds.items()} for op, kinds in merged.items()}
    from_report = {
        op: {kind: buckets(HdrHistogram.decode(encoded)) for kind, encoded in histograms.items()}
        for op, histograms in report["histograms"]["operations"].items()
    }
    print(json.dumps({"intervals": intervals, "log": from_log, "report": from_report}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
