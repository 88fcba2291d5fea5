#!/usr/bin/env bash
# The coordinator's histogram merge: sparse (only the source's recorded
# buckets) against dense (hdrhistogram's add over all ~23,000 counts), per
# add, on agent-like interval histograms; prints the ratio, measured in one
# run, and checks both give the same histogram. Release build.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo run --release --quiet -p stampede-common --example histogram_merge
