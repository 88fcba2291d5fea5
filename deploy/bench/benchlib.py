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
