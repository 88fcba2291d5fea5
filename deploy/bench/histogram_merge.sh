#!/usr/bin/env bash
# The coordinator's histogram merge: sparse (only the source's recorded
# buckets) against dense (hdrhistogram's add over all ~23,000 counts), per
# add, on agent-like interval histograms, and the coordinator's whole path
# for one series of a report (decode, add into 8 merged histograms) dense
# against sparse (histogram::decode_sparse); prints the ratios, measured in one
# run, and checks both give the same histogram. Release build.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo run --release --quiet -p stampede-common --example histogram_merge
