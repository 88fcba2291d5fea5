#!/usr/bin/env bash
# The HTML report of a day-long run against a one-minute run's, in one
# headless chromium: page size and time until drawn, and their ratios.
# Targets: under 10 MB and 2 s for 24 h. HOURS (default 24) changes the
# long run. Needs chromium (deploy/test.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo run --release --quiet -p stampede-coordinator --example report_page -- "${1:-24}"
