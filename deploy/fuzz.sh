#!/usr/bin/env bash
# Fuzzes the KV server's whole request path (RESP parser, then every parsed
# request executed against a real store) for a bounded time.
#
#   deploy/fuzz.sh [SECONDS]      default 60
#
# Installs cargo-fuzz when missing. cargo fuzz passes nightly-only flags to
# rustc; RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them. A crash
# leaves its input in fuzz/artifacts/resp_request/ and exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
corpus=fuzz/corpus/resp_request
mkdir -p "$corpus"
cp -n fuzz/seeds/resp_request/* "$corpus"/
RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir fuzz resp_request "$corpus" -- -max_total_time="$seconds"
