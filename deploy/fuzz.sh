#!/usr/bin/env bash
# Fuzzes, each for a bounded time:
#   resp_request  the KV server's whole request path (RESP parser, then
#                 every parsed request executed against a real store);
#   scenario      the scenario parser and validation, and the stored form
#                 with passwords hidden.
#
#   deploy/fuzz.sh [SECONDS [TARGET...]]      default 60 seconds, both targets
#
# Installs cargo-fuzz when missing. cargo fuzz passes nightly-only flags to
# rustc; RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them. A crash
# leaves its input in fuzz/artifacts/TARGET/ and exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(resp_request scenario)
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
for target in "${targets[@]}"; do
  corpus=fuzz/corpus/$target
  mkdir -p "$corpus"
  cp -n fuzz/seeds/"$target"/* "$corpus"/
  echo "==> fuzzing $target for ${seconds}s"
  RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir fuzz "$target" "$corpus" -- -max_total_time="$seconds"
done
