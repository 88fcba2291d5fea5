#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this).
# Installs what is missing (Debian packages) and then runs formatting,
# lints, unit tests and end-to-end tests with real processes and services,
# and last the compose file on a real Docker engine (deploy/check_compose.py).
set -euo pipefail
cd "$(dirname "$0")/.."

need_packages=()
command -v redis-server >/dev/null 2>&1 || need_packages+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need_packages+=(redis-tools)
# PostgreSQL 15 server and client (initdb, postgres, psql, pg_isready, pgbench)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_packages+=(postgresql-15)
command -v psql >/dev/null 2>&1 || need_packages+=(postgresql-client-15)
# haproxy and ip(8) for the load-balancer audits across network namespaces
command -v haproxy >/dev/null 2>&1 || need_packages+=(haproxy)
command -v ip >/dev/null 2>&1 || need_packages+=(iproute2)
# etcd for the coordinator failover test (leader election, runs kept in etcd)
command -v etcd >/dev/null 2>&1 || need_packages+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || need_packages+=(etcd-client)
# Prometheus and promtool for the /metrics test
command -v prometheus >/dev/null 2>&1 || need_packages+=(prometheus)
# A real browser (headless) for the HTML report's page tests
command -v chromium >/dev/null 2>&1 || need_packages+=(chromium)
# The terminal dashboard tests drive it in tmux.
command -v tmux >/dev/null 2>&1 || need_packages+=(tmux)
# NATS servers (core, JetStream, a three-server cluster) for the nats target
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || need_packages+=(nats-server)
# InfluxDB 1.x for the influx target
command -v influxd >/dev/null 2>&1 || need_packages+=(influxdb)
if [ ${#need_packages[@]} -gt 0 ]; then
  echo "==> installing ${need_packages[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
  else
    SUDO=
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${need_packages[@]}" >/dev/null
fi
if ! python3 -c "import redis" >/dev/null 2>&1; then
  echo "==> installing the Python redis package (for the KV server's client tests)"
  python3 -m pip install --quiet --disable-pip-version-check "redis==5.2.1"
fi
if ! python3 -c "import hdrh" >/dev/null 2>&1; then
  echo "==> installing HdrHistogram's Python library (it reads the interval logs in the report tests)"
  python3 -m pip install --quiet --disable-pip-version-check "hdrhistogram==0.10.8"
fi
if ! python3 -c "import helm_python, kubernetes_validate, yaml" >/dev/null 2>&1; then
  echo "==> installing the Helm SDK and kubernetes-validate (for the chart checks)"
  python3 -m pip install --quiet --disable-pip-version-check "helm-python-sdk==0.2.2" "kubernetes-validate==1.37.0" "PyYAML>=6"
fi
# In CI the network-namespace tests must run, not skip.
if [ -n "${CI:-}" ]; then
  export STAMPEDE_REQUIRE_NETNS=1
fi
# The Debian packages start no server here; the tests start their own on
# free loopback ports. Make sure none of ours is left from a previous run.

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "==> cargo build (the stampede binary the end-to-end tests run)"
cargo build --workspace --locked

echo "==> cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
# --no-fail-fast: a failing test binary must not leave the ones after it
# unrun; every failure is listed again below, before the closing line.
cargo test --workspace --locked --no-fail-fast -- --test-threads "${STAMPEDE_TEST_THREADS:-4}" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

# The compose file with a real Docker engine: builds the image from
# deploy/Dockerfile, starts the eleven services and runs scenarios through
# them (about ten minutes the first time; images are kept for the next run).
# STAMPEDE_COMPOSE_CHECK=0 leaves it out of a local run; CI always runs it.
compose_status=0
if [ -n "${CI:-}" ] || [ "${STAMPEDE_COMPOSE_CHECK:-1}" != 0 ]; then
  echo "==> deploy/check_compose.py (docker compose up --build, then runs through the containers)"
  set +e
  python3 deploy/check_compose.py
  compose_status=$?
  set -e
else
  echo "==> compose check left out (STAMPEDE_COMPOSE_CHECK=0)"
fi

# Every failed test and test binary, gathered from the whole log.
if grep -qE '^test .* FAILED$|^error: test failed|^error: [0-9]+ targets? failed' "$log"; then
  echo "==> failures"
  grep -E '^test .* FAILED$' "$log" | sed 's/^/  /' || true
  grep -E '^error: test failed|^error: [0-9]+ targets? failed|^    `-p ' "$log" | sed 's/^/  /' || true
fi
if [ "$compose_status" -ne 0 ]; then
  echo "  deploy/check_compose.py failed (exit $compose_status)"
fi

# One closing line over every test binary (cargo prints one per binary).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
if [ "$status" -ne 0 ]; then
  exit "$status"
fi
exit "$compose_status"
