#!/usr/bin/env python3
"""Runs deploy/docker-compose.yml for real, as the README tells users to.

  1. A Docker engine: the one `docker info` reaches (DOCKER_HOST or the
     default socket), else a private dockerd this script starts as root
     (Debian's docker.io is installed when missing) and stops at the end.
  2. Images: with `--images official` the compose file's own (pulled from
     their registries). With `--images standin` (the default, for machines
     that reach no image registry, such as where Stampede is built and
     tested) local stand-ins named stampede-standin/*: a Debian bookworm
     base made with debootstrap, this machine's Rust toolchain on it for the
     build stage, and Debian's etcd, haproxy 2.6, Redis 7.0, PostgreSQL 15 and NATS 2.9
     (deploy/compose/standin/*.Dockerfile). Either way the Dockerfile and the
     compose file run unchanged; only the image names come from variables.
  3. `compose up -d --build`: the image is built from deploy/Dockerfile with
     BuildKit, then etcd, the coordinator, three agents, three KV nodes,
     haproxy, Redis, PostgreSQL and NATS start.
  4. Checks: the image runs as uid 10001 with the one binary; the three
     agents connect (the coordinator's /metrics on the published port);
     `stampede submit --wait` in the coordinator container passes against
     haproxy (every KV node served requests), Redis, PostgreSQL and NATS (its
     monitoring port counts what the report says was published); haproxy's
     stats page answers; a restarted coordinator still lists the runs.
  5. `compose down -v`; the private dockerd stops, and the host's iptables
     rules, forwarding sysctls and bridges are put back as they were.

Usage: deploy/check_compose.py [--images standin|official] [--keep]
                               [--state-dir DIR] [--clean]
  --keep       leave the containers running (and a private dockerd with them)
  --state-dir  the private dockerd's data (images and build cache are kept
               there for the next run); default $TMPDIR/stampede-compose-check
  --clean      delete the state directory at the end
Exit 0 when every check passed, 1 otherwise; the failed checks are listed.
"""

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "deploy" / "docker-compose.yml"
STANDIN = ROOT / "deploy" / "compose" / "standin"
PROJECT = "stampede-check"
IMAGE = "stampede:0.1.0"
BASE = "stampede-standin/debian:bookworm"
DEBIAN_MIRROR = os.environ.get("STAMPEDE_DEBIAN_MIRROR", "http://deb.debian.org/debian")
TOKEN = secrets.token_hex(20)
KV_NODES = ["kv-0", "kv-1", "kv-2"]
# One run per target: the scenario (as the image ships it) and the endpoint it is pointed at.
RUNS = [
    ("kv-mixed", "haproxy:6379"),
    ("redis-mixed", "redis:6379"),
    ("postgres-metrics", "postgres://stampede:stampede@postgres:5432/stampede"),
    ("nats-pubsub", "nats:4222"),
]

failures = []


class Failure(Exception):
    """A step that the later steps cannot do without."""


def step(message):
    print(f"==> {message}", flush=True)


def check(condition, message):
    print(f"    {'ok  ' if condition else 'FAIL'} {message}", flush=True)
    if not condition:
        failures.append(message)
    return condition


def run(args, env=None, timeout=120, check_rc=True, log=None, input_bytes=None):
    """Runs a command; returns (rc, stdout+stderr). A log file gets the output instead."""
    try:
        if log is not None:
            with open(log, "ab") as out:
                proc = subprocess.run(args, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout)
            text = ""
        else:
            proc = subprocess.run(
                args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout, input=input_bytes
            )
            text = proc.stdout.decode(errors="replace")
    except subprocess.TimeoutExpired:
        raise Failure(f"`{' '.join(map(str, args))}` did not finish within {timeout} s")
    except FileNotFoundError:
        raise Failure(f"{args[0]} is not installed")
    if check_rc and proc.returncode != 0:
        tail = text.strip()[-3000:] if text else tail_of(log)
        raise Failure(f"`{' '.join(map(str, args))}` exited {proc.returncode}:\n{tail}")
    return proc.returncode, text


def tail_of(path, lines=60):
    if path is None or not Path(path).exists():
        return ""
    return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])


def apt_install(*packages):
    if os.geteuid() != 0:
        raise Failure(f"{', '.join(packages)} missing; install them (apt-get install {' '.join(packages)}) or run as root")
    step(f"installing {' '.join(packages)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(["apt-get", "update", "-qq"], env=env, timeout=300)
    run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages], env=env, timeout=900)


class HostNetwork:
    """What a private dockerd changes on the host, put back when it has stopped.

    dockerd adds iptables chains, sets the FORWARD policy to DROP, turns on
    IP forwarding and bridge netfilter, and makes the docker0 bridge. Left in
    place, the DROP policy would cut the traffic between the test suite's own
    network namespaces on their bridge.
    """

    SYSCTLS = ["/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/bridge/bridge-nf-call-iptables"]

    def __init__(self):
        self.tables = {}
        for save in ["iptables-save", "ip6tables-save"]:
            if shutil.which(save):
                rc, text = run([save], timeout=30, check_rc=False)
                if rc == 0:
                    self.tables[save.replace("-save", "-restore")] = text
        self.sysctls = {path: Path(path).read_text() for path in self.SYSCTLS if Path(path).exists()}
        self.had_docker0 = Path("/sys/class/net/docker0").exists()

    # A table that was empty when the state was saved (iptables-save prints
    # nothing for it, as on a host where docker.io has just brought
    # iptables) is put back as empty, with ACCEPT policies: iptables-restore
    # replaces only the tables its input names.
    EMPTY_TABLES = {
        "filter": ["INPUT", "FORWARD", "OUTPUT"],
        "nat": ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"],
    }

    @classmethod
    def with_empty_tables(cls, text):
        for table, chains in cls.EMPTY_TABLES.items():
            if f"*{table}\n" not in text:
                text += f"*{table}\n" + "".join(f":{chain} ACCEPT [0:0]\n" for chain in chains) + "COMMIT\n"
        return text

    def restore(self):
        for restore, text in self.tables.items():
            text = self.with_empty_tables(text)
            rc, output = run([restore], timeout=30, check_rc=False, input_bytes=text.encode())
            if rc != 0:
                print(f"    warning: {restore} could not put the host's rules back: {output.strip()}", flush=True)
        for path, value in self.sysctls.items():
            try:
                Path(path).write_text(value)
            except OSError as error:
                print(f"    warning: could not put back {path}: {error}", flush=True)
        if not self.had_docker0 and Path("/sys/class/net/docker0").exists():
            run(["ip", "link", "delete", "docker0"], timeout=30, check_rc=False)


class Engine:
    """The Docker engine the check talks to, and the dockerd it started, if any."""

    def __init__(self, state):
        self.state = state
        self.env = dict(os.environ)
        self.dockerd = None
        self.network = None

    def docker(self, *args, timeout=120, check_rc=True, log=None):
        return run(["docker", *args], env=self.env, timeout=timeout, check_rc=check_rc, log=log)

    def reachable(self):
        try:
            return self.docker("info", "--format", "{{.ServerVersion}}", timeout=30, check_rc=False)[0] == 0
        except Failure:
            return False

    def start(self):
        if shutil.which("docker") is None:
            apt_install("docker.io")
        if self.reachable():
            step(f"using the running Docker engine ({self.env.get('DOCKER_HOST', 'default socket')})")
            return
        if os.geteuid() != 0:
            raise Failure("no Docker engine answers `docker info`, and starting one needs root; start Docker or set DOCKER_HOST")
        if shutil.which("dockerd") is None:
            apt_install("docker.io")
        self.state.mkdir(parents=True, exist_ok=True)
        socket = self.state / "docker.sock"
        log = self.state / "dockerd.log"
        step(f"starting a private dockerd (data in {self.state}, log {log})")
        self.network = HostNetwork()
        with open(log, "ab") as out:
            self.dockerd = subprocess.Popen(
                [
                    "dockerd",
                    f"--data-root={self.state / 'root'}",
                    f"--exec-root={self.state / 'exec'}",
                    f"--pidfile={self.state / 'dockerd.pid'}",
                    f"--host=unix://{socket}",
                    "--storage-driver=overlay2",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.env["DOCKER_HOST"] = f"unix://{socket}"
        deadline = time.monotonic() + 60
        while not self.reachable():
            if self.dockerd.poll() is not None or time.monotonic() > deadline:
                raise Failure(f"dockerd did not start; its log:\n{tail_of(log)}")
            time.sleep(0.5)

    def stop(self):
        if self.dockerd is None:
            return
        step("stopping the private dockerd")
        self.dockerd.send_signal(signal.SIGTERM)
        try:
            self.dockerd.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.dockerd.kill()
            self.dockerd.wait()
        step("putting back the host's iptables rules, forwarding settings and bridges")
        self.network.restore()

    def image_exists(self, name):
        return self.docker("image", "inspect", name, timeout=30, check_rc=False)[0] == 0

    def builder(self):
        """A docker CLI that builds with BuildKit (the Dockerfile's cache mounts need it).

        Docker 23+ builds through the buildx plugin; a 20.10 client uses the
        engine's own BuildKit with DOCKER_BUILDKIT=1. Returns the CLI's path.
        """
        candidates = [shutil.which("docker", path=self.env.get("PATH")), "/usr/bin/docker"]
        for cli in dict.fromkeys(c for c in candidates if c and Path(c).exists()):
            if run([cli, "buildx", "version"], env=self.env, timeout=30, check_rc=False)[0] == 0:
                return cli
            _, version = run([cli, "version", "--format", "{{.Client.Version}}"], env=self.env, check_rc=False)
            match = re.match(r"(\d+)\.", version.strip())
            if match and int(match.group(1)) < 23:
                return cli
        raise Failure("no docker CLI here builds with BuildKit: install the buildx plugin (Debian: docker-buildx)")


def compose_command(engine, cli):
    """`docker compose` (v2) when the plugin is there, else docker-compose 1.29 building through `cli`."""
    if engine.docker("compose", "version", timeout=30, check_rc=False)[0] == 0:
        return ["docker", "compose"], dict(engine.env)
    if shutil.which("docker-compose") is None:
        apt_install("docker-compose")
    env = dict(engine.env, COMPOSE_DOCKER_CLI_BUILD="1", DOCKER_BUILDKIT="1")
    env["PATH"] = f"{Path(cli).parent}{os.pathsep}{env.get('PATH', '')}"
    return ["docker-compose"], env


def build_standins(engine, cli):
    """The stand-in images; returns the compose variables that name them."""
    env = dict(engine.env, DOCKER_BUILDKIT="1")
    engine.state.mkdir(parents=True, exist_ok=True)
    if not engine.image_exists(BASE):
        if shutil.which("debootstrap") is None:
            apt_install("debootstrap")
        step(f"making the Debian bookworm base with debootstrap from {DEBIAN_MIRROR} (about a minute)")
        with tempfile.TemporaryDirectory(dir=engine.state) as rootfs:
            run(["debootstrap", "--variant=minbase", "bookworm", rootfs, DEBIAN_MIRROR], timeout=900)
            for cache in Path(rootfs, "var/cache/apt/archives").glob("*.deb"):
                cache.unlink()
            tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
            imported = subprocess.run(["docker", "import", "-", BASE], env=env, stdin=tar.stdout, capture_output=True)
            tar.wait()
            if imported.returncode != 0 or tar.returncode != 0:
                raise Failure(f"docker import of the base failed: {imported.stderr.decode(errors='replace')}")
    images = {"STAMPEDE_RUNTIME_IMAGE": BASE}

    _, version = run(["rustc", "--version"], timeout=30)
    rust_version = version.split()[1]
    rust = f"stampede-standin/rust:{rust_version}"
    step(f"building the stand-in images (Rust {rust_version} from this machine, etcd, haproxy, Redis, PostgreSQL, NATS)")
    _, sysroot = run(["rustc", "--print", "sysroot"], timeout=30)
    sysroot = Path(sysroot.strip())
    ca = Path(os.environ.get("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt"))
    with tempfile.TemporaryDirectory(dir=engine.state) as context:
        for part in ["bin", "lib", "libexec"]:
            # Hard links when the toolchain is on the same file system, else a copy.
            if run(["cp", "-al", sysroot / part, context], check_rc=False)[0] != 0:
                run(["cp", "-a", sysroot / part, context], timeout=300)
        shutil.copy(ca, Path(context, "host-ca.crt"))
        shutil.copy(STANDIN / "rust.Dockerfile", Path(context, "Dockerfile"))
        run([cli, "build", "-q", "--build-arg", f"BASE={BASE}", "-t", rust, context], env=env, timeout=900)
    images["STAMPEDE_RUST_IMAGE"] = rust
    for name, tag, variable in [
        ("etcd", "3.4", "STAMPEDE_ETCD_IMAGE"),
        ("haproxy", "2.6", "STAMPEDE_HAPROXY_IMAGE"),
        ("redis", "7.0", "STAMPEDE_REDIS_IMAGE"),
        ("postgres", "15", "STAMPEDE_POSTGRES_IMAGE"),
        ("nats", "2.9", "STAMPEDE_NATS_IMAGE"),
    ]:
        image = f"stampede-standin/{name}:{tag}"
        dockerfile = STANDIN / f"{name}.Dockerfile"
        run([cli, "build", "-q", "--build-arg", f"BASE={BASE}", "-f", dockerfile, "-t", image, STANDIN], env=env, timeout=900)
        images[variable] = image
    return images


def metrics(port=9464):
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.read().decode()


def gauge(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def wait_for_agents(wanted, limit=180):
    deadline = time.monotonic() + limit
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            connected = gauge(metrics(), "stampede_agents_connected")
            last = f"stampede_agents_connected {connected}"
            if connected == wanted:
                return True
        except (urllib.error.URLError, OSError) as error:
            last = str(error)
        time.sleep(1)
    check(False, f"{wanted} agents connect to the coordinator within {limit} s (last: {last})")
    return False


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", choices=["standin", "official"], default="standin")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--clean", action="store_true")
    parser.add_argument(
        "--state-dir", type=Path, default=Path(tempfile.gettempdir()) / "stampede-compose-check", dest="state"
    )
    args = parser.parse_args()

    engine = Engine(args.state.resolve())
    compose = None
    env = None
    started = time.monotonic()
    try:
        engine.start()
        cli = engine.builder()
        program, env = compose_command(engine, cli)
        compose = [*program, "-p", PROJECT, "-f", str(COMPOSE_FILE)]
        images = build_standins(engine, cli) if args.images == "standin" else {}
        env.update(images, STAMPEDE_TOKEN=TOKEN)

        build_log = engine.state / "compose-build.log"
        engine.state.mkdir(parents=True, exist_ok=True)
        build_log.write_text("")
        step(f"{' '.join(program)} up -d --build (a release build in the image: several minutes; log {build_log})")
        try:
            run([*compose, "up", "-d", "--build"], env=env, timeout=3600, log=build_log)
        except Failure as failure:
            raise Failure(f"{failure}\n{tail_of(build_log)}")

        step("the image")
        _, user = engine.docker("image", "inspect", IMAGE, "--format", "{{.Config.User}} {{json .Config.Entrypoint}}")
        check(user.strip() == '10001:10001 ["stampede"]', f"runs `stampede` as 10001:10001 (got {user.strip()})")
        _, size = engine.docker("image", "inspect", IMAGE, "--format", "{{.Size}}")
        print(f"    image size {int(size) / 1e6:.0f} MB", flush=True)
        rc, version = engine.docker("run", "--rm", IMAGE, "--version", check_rc=False)
        check(rc == 0 and version.startswith("stampede "), f"`docker run {IMAGE} --version` (got {version.strip()!r})")

        step("three agents connect to the coordinator (its /metrics on the published port 9464)")
        wait_for_agents(3)

        reports = {}
        for scenario, endpoint in RUNS:
            step(f"stampede submit scenarios/{scenario}.yaml -e {endpoint} --agents 3 --wait (in the coordinator container)")
            report_path = f"/var/lib/stampede/check-{scenario}.json"
            rc, output = run(
                [*compose, "exec", "-T", "coordinator", "stampede", "submit",
                 f"/usr/share/stampede/scenarios/{scenario}.yaml", "-e", endpoint, "--agents", "3",
                 "--wait", "-q", "--json", report_path],
                env=env, timeout=300, check_rc=False,
            )  # fmt: skip
            verdict = next((line for line in output.splitlines() if line.startswith("run ")), output.strip()[-500:])
            if not check(rc == 0, f"{scenario}: exit {rc}, {verdict}"):
                print(output, flush=True)
                continue
            _, text = run([*compose, "exec", "-T", "coordinator", "cat", report_path], env=env)
            report = json.loads(text)
            reports[scenario] = report
            check(report["status"] == "passed", f"{scenario}: report status {report['status']}")
            check(len(report["agents"]) == 3, f"{scenario}: 3 agents took part ({[a['id'] for a in report['agents']]})")
            check(report["totals"]["ops"] > 0 and report["totals"]["errors"] == 0,
                  f"{scenario}: {report['totals']['ops']} ops, {report['totals']['errors']} errors")  # fmt: skip

        if "kv-mixed" in reports:
            nodes = reports["kv-mixed"]["nodes"]
            shares = {name: nodes.get(name, {}).get("ops", 0) for name in KV_NODES}
            check(all(ops > 0 for ops in shares.values()), f"haproxy spread the KV load over kv-0..kv-2: {shares}")
        if "postgres-metrics" in reports:
            notes = reports["postgres-metrics"]["notes"]
            check(any("dropped after the run" in n for n in notes), "postgres-metrics dropped its table after the run")

        if "nats-pubsub" in reports:
            report = reports["nats-pubsub"]
            try:
                with urllib.request.urlopen("http://127.0.0.1:8222/varz", timeout=5) as response:
                    varz = json.loads(response.read().decode())
                # The server also counted the warm-up, which the measured figures leave out.
                published = report["operations"]["publish"]["count"]
                delivered = report["operations"]["deliver"]["count"]
                check(published > 0 and varz["in_msgs"] >= published and varz["out_msgs"] >= delivered > 0,
                      f"nats: the server received {varz['in_msgs']} and sent {varz['out_msgs']} messages; the "
                      f"measured part published {published} and delivered {delivered}")  # fmt: skip
            except (urllib.error.URLError, OSError, KeyError, ValueError) as error:
                check(False, f"http://127.0.0.1:8222/varz: {error}")

        step("haproxy's stats page (published port 8404)")
        try:
            with urllib.request.urlopen("http://127.0.0.1:8404/stats", timeout=5) as response:
                check(response.status == 200, f"http://127.0.0.1:8404/stats answers {response.status}")
        except (urllib.error.URLError, OSError) as error:
            check(False, f"http://127.0.0.1:8404/stats: {error}")

        step("/metrics counts the runs; a restarted coordinator still lists them")
        passed = gauge(metrics(), 'stampede_runs{state="passed"}')
        check(passed == len(reports), f'stampede_runs{{state="passed"}} {passed}, {len(reports)} runs passed')
        run([*compose, "restart", "coordinator"], env=env, timeout=120)
        wait_for_agents(3)
        _, listing = run([*compose, "exec", "-T", "coordinator", "stampede", "runs"], env=env, check_rc=False)
        for scenario, report in reports.items():
            check(report["run_id"] in listing, f"after the restart `stampede runs` lists {report['run_id']} ({scenario})")
    except Failure as failure:
        failures.append(str(failure))
        print(f"    FAIL {failure}", flush=True)
        if compose is not None and env is not None and engine.reachable():
            _, logs = run([*compose, "logs", "--no-color", "--tail", "30"], env=env, check_rc=False)
            print(logs, flush=True)
    finally:
        if compose is not None and env is not None and not args.keep and engine.reachable():
            step("compose down -v")
            run([*compose, "down", "-v", "--remove-orphans"], env=env, timeout=300, check_rc=False)
        if not args.keep:
            engine.stop()
            if args.clean and engine.dockerd is not None:
                shutil.rmtree(engine.state, ignore_errors=True)
        elif engine.dockerd is not None:
            print(f"    the private dockerd keeps running: DOCKER_HOST={engine.env['DOCKER_HOST']}", flush=True)

    minutes = (time.monotonic() - started) / 60
    if failures:
        print(f"compose check: {len(failures)} failed ({minutes:.1f} min):", flush=True)
        for failure in failures:
            print(f"  - {failure.splitlines()[0]}")
        return 1
    print(f"compose check: passed ({minutes:.1f} min)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
