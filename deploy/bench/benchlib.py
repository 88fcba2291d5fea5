"""What the benchmark scripts in this folder share: the project root, free
loopback ports, and the checks that redis tools and the release binary are
there."""

import os
import shutil
import socket
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
RELEASE_BINARY = os.path.join(ROOT, "target", "release", "stampede")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def require_tools_and_binary(binary):
    """Exits with what to install when redis tools are missing; builds the
    release binary when it is not there yet."""
    for tool in ("redis-server", "redis-benchmark"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed: apt-get install redis-server redis-tools")
    if not os.path.exists(binary):
        print("building the release binary (cargo build --release -p stampede)", file=sys.stderr)
        subprocess.run(["cargo", "build", "--release", "-p", "stampede"], cwd=ROOT, check=True)


def postgres_bin(program):
    """A PostgreSQL server program (initdb, postgres, pgbench, psql)."""
    found = shutil.which(program)
    if found:
        return found
    base = "/usr/lib/postgresql"
    versions = sorted(os.listdir(base), key=lambda v: int(v) if v.isdigit() else 0) if os.path.isdir(base) else []
    for version in reversed(versions):
        path = os.path.join(base, version, "bin", program)
        if os.path.exists(path):
            return path
    sys.exit(f"{program} is not installed: apt-get install postgresql-15 postgresql-client-15")


class Postgres:
    """A throwaway PostgreSQL server on a free loopback port (initdb as the
    user postgres when run as root), stopped by `stop()`."""

    def __init__(self):
        import tempfile
        import time
        self.dir = tempfile.mkdtemp(prefix="stampede-bench-pg-")
        as_postgres = []
        if os.geteuid() == 0:
            subprocess.run(["chown", "postgres:postgres", self.dir], check=True)
            as_postgres = ["runuser", "-u", "postgres", "--"]
        data = os.path.join(self.dir, "data")
        subprocess.run(as_postgres + [postgres_bin("initdb"), "-D", data, "-A", "trust", "-U", "postgres",
                                      "--no-sync", "-E", "UTF8"], check=True, capture_output=True)
        self.port = free_port()
        # The same settings for both tools; durability is off so that the
        # comparison measures the clients and the insert path, not the disk.
        self.process = subprocess.Popen(
            as_postgres + [postgres_bin("postgres"), "-D", data, "-p", str(self.port), "-k", self.dir,
                           "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
                           "-c", "full_page_writes=off", "-c", "max_connections=200"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while subprocess.run([postgres_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"]).returncode:
            if time.monotonic() > deadline:
                self.stop()
                sys.exit("PostgreSQL did not accept connections within 30 s")
            time.sleep(0.1)
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def psql(self, sql):
        return subprocess.run([postgres_bin("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                               "-d", "postgres", "-Atqc", sql], check=True, capture_output=True, text=True).stdout

    def stop(self):
        # runuser does not pass signals on: signal the postmaster itself
        # (first line of postmaster.pid); SIGINT is a fast shutdown.
        import time
        try:
            with open(os.path.join(self.dir, "data", "postmaster.pid")) as f:
                pid = int(f.readline())
            os.kill(pid, 2)
            deadline = time.monotonic() + 20
            while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
                time.sleep(0.05)
        except (OSError, ValueError):
            pass
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
