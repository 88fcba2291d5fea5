#!/usr/bin/env python3
"""Checks the Helm chart helm/stampede without a cluster.

For the default values and every option set in helm/stampede/ci/*-values.yaml:
  - the chart lints (strict) and renders with the embedded Helm SDK
    (PyPI helm-python-sdk);
  - every rendered manifest passes `kubernetes-validate --strict` for the
    Kubernetes version below;
  - what the option set promises is in the manifests (kinds, probes, flags).
Values that do not fit together are refused with a message naming them.
deploy/k8s/ must equal a fresh render (`--write` renders it again).

Usage: deploy/check_chart.py [--write] [--stampede PATH]
  --stampede PATH  also runs `PATH validate` on the scenario an option set
                   puts in a ConfigMap.
Needs: pip install helm-python-sdk==0.2.2 kubernetes-validate
"""

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "helm" / "stampede"
PLAIN = ROOT / "deploy" / "k8s"
KUBE_VERSION = "1.33.0"
RELEASE = "stampede"
NAMESPACE = "stampede"

# deploy/k8s: what users without Helm apply. The token is a Secret they make
# (a rendered random token would change with every render).
PLAIN_SETS = {
    "stampede.yaml": ({"auth": {"existingSecret": "stampede-token"}}, lambda path: "job.yaml" not in path),
    "submit-job.yaml": (
        {
            "auth": {"existingSecret": "stampede-token"},
            "job": {"enabled": True, "scenarioConfigMap": {"name": "stampede-scenario", "key": "scenario.yaml"}},
        },
        lambda path: "job.yaml" in path,
    ),
}

failures = []


def check(condition, message):
    if not condition:
        failures.append(message)
    return condition


def render(values):
    import helm_python

    chart = helm_python.Chart.load(str(CHART))
    return chart.render(values, name=RELEASE, namespace=NAMESPACE)


def manifests(rendered, keep=lambda path: True):
    """The rendered objects, in template order, without NOTES.txt."""
    docs = []
    for path in sorted(rendered):
        if path.endswith("NOTES.txt") or not keep(path):
            continue
        for doc in yaml.safe_load_all(rendered[path]):
            if doc:
                docs.append(doc)
    return docs


def text_of(docs):
    return "".join("---\n" + yaml.safe_dump(doc, sort_keys=False) for doc in docs)


def validate_with_kubernetes(name, docs):
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i, doc in enumerate(docs):
            path = Path(tmp) / f"{i:02d}-{doc['kind']}-{doc['metadata']['name']}.yaml"
            path.write_text(yaml.safe_dump(doc, sort_keys=False))
            files.append(str(path))
        result = subprocess.run(
            ["kubernetes-validate", "-k", KUBE_VERSION, "--strict", *files], capture_output=True, text=True
        )
        if not check(result.returncode == 0, f"{name}: kubernetes-validate --strict failed:\n{result.stdout}{result.stderr}"):
            return
        print(f"  kubernetes-validate --strict (k8s {KUBE_VERSION}): {len(files)} manifests valid")


def find(docs, kind, suffix=""):
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(suffix)]
    return found[0] if found else None


def container(workload):
    return workload["spec"]["template"]["spec"]["containers"][0]


def env_of(c):
    return {e["name"]: e.get("value") for e in c.get("env", [])}


def expect_secure(name, docs):
    for doc in docs:
        if doc["kind"] not in ("StatefulSet", "Deployment", "DaemonSet", "Job"):
            continue
        pod = doc["spec"]["template"]["spec"]
        label = f"{name}: {doc['kind']} {doc['metadata']['name']}"
        check(pod.get("securityContext", {}).get("runAsNonRoot") is True, f"{label} does not run as non-root")
        for c in pod["containers"]:
            sc = c.get("securityContext", {})
            check(sc.get("allowPrivilegeEscalation") is False, f"{label}: privilege escalation allowed")
            check(sc.get("readOnlyRootFilesystem") is True, f"{label}: root filesystem writable")
            check("resources" in c and c["resources"].get("requests"), f"{label}: no resource requests")


def expect_default(name, docs):
    coordinator = find(docs, "StatefulSet", "-coordinator")
    agents = find(docs, "Deployment", "-agent")
    if not (check(coordinator, f"{name}: no coordinator StatefulSet") and check(agents, f"{name}: no agent Deployment")):
        return
    c = container(coordinator)
    check(c["livenessProbe"].get("grpc", {}).get("service") == "stampede.live", f"{name}: liveness not on stampede.live")
    check("grpc" in c["readinessProbe"], f"{name}: readiness not on the gRPC health service")
    check(coordinator["spec"].get("volumeClaimTemplates"), f"{name}: coordinator data is not persistent")
    check(find(docs, "Secret", "-token"), f"{name}: no token Secret")
    check(agents["spec"]["replicas"] == 3, f"{name}: not 3 agents")
    affinity = agents["spec"]["template"]["spec"].get("affinity", {}).get("podAntiAffinity", {})
    check("preferredDuringSchedulingIgnoredDuringExecution" in affinity, f"{name}: agents lack soft anti-affinity")
    a = container(agents)
    check(any(arg.startswith("--coordinator=http://stampede-coordinator:7700") for arg in a["args"]), f"{name}: agent URL")
    check(env_of(a).get("STAMPEDE_TOKEN_FILE"), f"{name}: agents get no token")
    check(not find(docs, "Job"), f"{name}: a Job without job.enabled")


def expect_daemonset(name, docs):
    agents = find(docs, "DaemonSet", "-agent")
    if not check(agents, f"{name}: no agent DaemonSet"):
        return
    check(not find(docs, "Deployment"), f"{name}: a Deployment beside the DaemonSet")
    check("replicas" not in agents["spec"], f"{name}: a DaemonSet with replicas")
    a = container(agents)
    check(env_of(a).get("STAMPEDE_TLS_CA") == "/var/run/stampede/tls/ca.crt", f"{name}: agents lack the CA")
    check(any(arg.startswith("--coordinator=https://") for arg in a["args"]), f"{name}: agents do not use TLS")
    check("--label=zone=eu-1" in a["args"], f"{name}: agent label missing")
    check(env_of(a).get("OTEL_EXPORTER_OTLP_ENDPOINT"), f"{name}: no OTLP endpoint")
    c = container(find(docs, "StatefulSet", "-coordinator"))
    check(c["readinessProbe"].get("httpGet", {}).get("scheme") == "HTTPS", f"{name}: TLS coordinator probe not HTTPS")
    check("--tls-cert=/var/run/stampede/tls/tls.crt" in c["args"], f"{name}: coordinator without its certificate")


def expect_etcd_ha(name, docs):
    etcd = find(docs, "StatefulSet", "-etcd")
    if not check(etcd, f"{name}: no etcd StatefulSet"):
        return
    check(etcd["spec"]["replicas"] == 3, f"{name}: etcd not 3 members")
    cluster = [a for a in container(etcd)["command"] if a.startswith("--initial-cluster=")][0]
    check(cluster.count("=http://") == 3, f"{name}: initial cluster is not 3 members: {cluster}")
    coordinator = find(docs, "StatefulSet", "-coordinator")
    check(coordinator["spec"]["replicas"] == 2, f"{name}: not 2 coordinators")
    c = container(coordinator)
    check(env_of(c).get("STAMPEDE_ETCD") == "http://stampede-etcd:2379", f"{name}: coordinators not wired to etcd")
    check(any(a.startswith("--advertise=http://$(POD_IP):") for a in c["args"]), f"{name}: no --advertise")
    agents = find(docs, "Deployment", "-agent")
    affinity = agents["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    check("requiredDuringSchedulingIgnoredDuringExecution" in affinity, f"{name}: agents lack hard anti-affinity")
    check(env_of(container(agents)).get("STAMPEDE_ETCD"), f"{name}: agents not wired to etcd")


def expect_external_etcd(name, docs):
    check(not find(docs, "StatefulSet", "-etcd"), f"{name}: an etcd StatefulSet with an external etcd")
    check(not find(docs, "Secret"), f"{name}: a token Secret although existingSecret is set")
    c = container(find(docs, "StatefulSet", "-coordinator"))
    check(env_of(c).get("STAMPEDE_ETCD_PREFIX") == "/benchmarks/stampede", f"{name}: etcd prefix")
    check(find(docs, "Service", "-coordinator")["spec"]["type"] == "LoadBalancer", f"{name}: Service type")
    results = [e for e in c["env"] if e["name"] == "STAMPEDE_RESULTS"]
    reference = results[0]["valueFrom"]["secretKeyRef"] if results else {}
    check(reference == {"name": "stampede-results-url", "key": "dsn"}, f"{name}: results URL not from the given Secret")


def expect_results_postgres(name, docs):
    secret = find(docs, "Secret", "-results")
    if not check(secret, f"{name}: no Secret for the results URL"):
        return
    url = base64.b64decode(secret["data"]["url"]).decode()
    check(url == "postgres://stampede:s3cret@postgres.db:5432/stampede", f"{name}: results Secret holds {url}")
    coordinator = find(docs, "StatefulSet", "-coordinator")
    c = container(coordinator)
    results = [e for e in c["env"] if e["name"] == "STAMPEDE_RESULTS"]
    reference = results[0]["valueFrom"]["secretKeyRef"] if results else {}
    check(reference == {"name": "stampede-results", "key": "url"}, f"{name}: coordinator does not read the results URL")
    check("--retention=30d" in c["args"], f"{name}: no --retention")
    check(env_of(c).get("STAMPEDE_ETCD") == "http://stampede-etcd:2379", f"{name}: coordinators not elected in etcd")
    check(not any(url in str(v) for v in env_of(c).values()), f"{name}: the results URL is in plain env")


def expect_job(name, docs, stampede):
    job = find(docs, "Job", "-submit")
    if not check(job, f"{name}: no Job"):
        return
    check(job["spec"]["backoffLimit"] == 0, f"{name}: a failed run would be retried")
    check("helm.sh/hook" in job["metadata"].get("annotations", {}), f"{name}: Job is not a hook")
    c = container(job)
    script = c["args"][0]
    expected = {
        "submit": 'stampede submit "$SCENARIO" --wait',
        "sweep": 'stampede sweep "$SCENARIO" --coordinator "$STAMPEDE_COORDINATOR"',
        "suite": 'stampede suite "$SCENARIO" --coordinator "$STAMPEDE_COORDINATOR"',
    }[SETS_MODE.get(name, "submit")]
    check(expected in script and 'exit "$code"' in script, f"{name}: verdict not passed on")
    check(script.count("stampede submit") + script.count("stampede sweep") + script.count("stampede suite") == 1, f"{name}: one command per mode")
    check("cat \"$report\"" in script, f"{name}: JSON report not printed to the log")
    return job, c


def expect_job_inline(name, docs, stampede):
    found = expect_job(name, docs, stampede)
    if not found:
        return
    _, c = found
    check("--agents=2" in c["args"] and "--endpoint=redis://redis-master.cache:6379" in c["args"], f"{name}: Job flags")
    config = find(docs, "ConfigMap", "-scenario")
    if check(config, f"{name}: no scenario ConfigMap") and stampede:
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
            f.write(config["data"]["scenario.yaml"])
            f.flush()
            result = subprocess.run([stampede, "validate", f.name], capture_output=True, text=True)
            check(result.returncode == 0, f"{name}: the scenario in the ConfigMap is invalid:\n{result.stdout}{result.stderr}")
            print("  stampede validate: the Job's scenario is valid")


def expect_job_suite(name, docs, stampede):
    found = expect_job(name, docs, stampede)
    if not found:
        return
    _, c = found
    script = c["args"][0]
    check(
        'stampede suite "$SCENARIO" --coordinator "$STAMPEDE_COORDINATOR" --out "$results" --quick --only \'smoke\' "$@"' in script,
        f"{name}: the suite's command and flags:\n{script}",
    )
    check('report="$results/summary.json"' in script, f"{name}: the summary is not the Job's JSON")
    check("--agents=1" in c["args"], f"{name}: Job flags")
    config = find(docs, "ConfigMap", "-scenario")
    if check(config, f"{name}: no suite ConfigMap") and stampede:
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "suite.yaml"
            path.write_text(config["data"]["scenario.yaml"])
            # The suite is read and validated before anything runs: a bad
            # entry exits 2 naming it; a good one gets as far as connecting.
            result = subprocess.run(
                [stampede, "suite", str(path), "--coordinator", "http://127.0.0.1:1", "--out", str(Path(d) / "out")],
                capture_output=True,
                text=True,
            )
            said = result.stdout + result.stderr
            valid = result.returncode == 2 and "cannot run" not in said and "127.0.0.1:1" in said
            check(valid, f"{name}: the suite in the ConfigMap is invalid:\n{said}")
            print("  stampede suite: the Job's suite is valid")


def expect_job_pvc(name, docs, stampede):
    found = expect_job(name, docs, stampede)
    if not found:
        return
    job, _ = found
    check(not find(docs, "ConfigMap"), f"{name}: a ConfigMap although the scenario is the user's")
    check(find(docs, "PersistentVolumeClaim", "-reports"), f"{name}: no report volume claim")
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    check(volumes["reports"].get("persistentVolumeClaim"), f"{name}: reports not on the claim")
    check(volumes["scenario"]["configMap"]["name"] == "nightly-scenario", f"{name}: scenario ConfigMap name")


def expect_job_baseline(name, docs, stampede):
    found = expect_job(name, docs, stampede)
    if not found:
        return
    job, c = found
    script = c["args"][0]
    gates = "--fail-on 'p99 > +10%' --fail-on 'get.p99.9 > +20%' --fail-on 'throughput < -5%'"
    check(f'stampede compare "$BASELINE" "$report" {gates}' in script, f"{name}: the baseline is not compared with its gates")
    check('[ "$code" -eq 0 ] && [ -n "${BASELINE:-}" ]' in script, f"{name}: compared although the run failed")
    check(env_of(c).get("BASELINE") == "/etc/stampede/baseline/last-release.json", f"{name}: BASELINE")
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    check(volumes.get("baseline", {}).get("configMap", {}).get("name") == "nightly-baseline", f"{name}: baseline volume")
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    check(mounts.get("baseline", {}).get("mountPath") == "/etc/stampede/baseline", f"{name}: baseline mount")


EXPECTATIONS = {
    "default": expect_default,
    "daemonset-values.yaml": expect_daemonset,
    "etcd-ha-values.yaml": expect_etcd_ha,
    "external-etcd-values.yaml": expect_external_etcd,
    "results-postgres-values.yaml": expect_results_postgres,
    "job-inline-values.yaml": expect_job_inline,
    "job-configmap-pvc-values.yaml": expect_job_pvc,
    "job-baseline-values.yaml": expect_job_baseline,
    "job-suite-values.yaml": expect_job_suite,
}

# The option sets whose Job is not `submit`.
SETS_MODE = {"job-suite-values.yaml": "suite"}

# Values that must be refused, with a part of the message that names why.
REFUSED = [
    ({"agents": {"mode": "statefulset"}}, "mode"),
    ({"coordinator": {"replicas": 2}}, "coordinator.replicas > 1 needs etcd"),
    ({"job": {"enabled": True}}, "job.enabled needs a scenario"),
    (
        {"job": {"enabled": True, "scenario": "name: x", "baseline": {"runId": "r-1", "configMap": {"name": "b"}}}},
        "not both",
    ),
    ({"job": {"enabled": True, "scenario": "name: x", "baseline": {"failOn": ["p99 > $(rm -rf /)"]}}}, "failOn"),
    ({"job": {"enabled": True, "scenario": "name: x", "mode": "suite", "baseline": {"runId": "r-1"}}}, "job.mode=submit"),
    ({"job": {"enabled": True, "scenario": "name: x", "mode": "suite", "endpoints": ["h:1"]}}, "per entry"),
    ({"job": {"enabled": True, "scenario": "name: x", "mode": "soak"}}, "mode"),
    ({"job": {"enabled": True, "scenario": "name: x", "mode": "suite", "suite": {"only": ["a'b"]}}}, "only"),
    ({"etcd": {"enabled": True, "external": "http://e:2379"}}, "not both"),
    ({"otlp": {"endpoint": "collector:4317"}}, "endpoint"),
    ({"coordinator": {"grpcPort": 70000}}, "grpcPort"),
    ({"agent": {"replicas": 2}}, "agent"),
    ({"results": {"postgres": {"url": "postgres://a@b/c", "existingSecret": "s"}}}, "results store once"),
    ({"results": {"postgres": {"url": "redis://cache:6379"}}}, "url"),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="render deploy/k8s/ again instead of comparing")
    parser.add_argument("--stampede", help="stampede binary, to validate the scenarios the chart carries")
    parser.add_argument(
        "--job-script",
        metavar="VALUES",
        help="print the submission Job's command (script, arguments, environment) rendered with VALUES as JSON, and stop",
    )
    args = parser.parse_args()
    if args.job_script:
        docs = manifests(render(yaml.safe_load(Path(args.job_script).read_text()) or {}))
        c = container(find(docs, "Job", "-submit"))
        print(json.dumps({"command": c["command"], "args": c["args"], "env": env_of(c)}))
        return
    try:
        import helm_python
    except ImportError:
        sys.exit("helm-python-sdk is not installed: pip install helm-python-sdk==0.2.2 kubernetes-validate")

    lint = helm_python.lint(str(CHART), strict=True, namespace=NAMESPACE)
    problems = [m for m in lint["messages"] if m["severity"] >= 2] + [{"error": e} for e in lint["errors"]]
    check(not problems, f"helm lint --strict: {problems}")
    print(f"helm lint --strict: {lint['total_charts_linted']} chart, {len(problems)} problems")

    sets = [("default", {})] + [
        (p.name, yaml.safe_load(p.read_text()) or {}) for p in sorted((CHART / "ci").glob("*-values.yaml"))
    ]
    for name, values in sets:
        print(f"option set {name}:")
        check(name in EXPECTATIONS, f"{name}: an option set without expectations in this script")
        lint = helm_python.lint(str(CHART), values, strict=True, namespace=NAMESPACE)
        check(not lint["errors"], f"{name}: helm lint: {lint['errors']}")
        docs = manifests(render(values))
        print(f"  rendered {len(docs)} objects: {', '.join(sorted({d['kind'] for d in docs}))}")
        validate_with_kubernetes(name, docs)
        expect_secure(name, docs)
        expectation = EXPECTATIONS.get(name)
        if expectation in (expect_job_inline, expect_job_pvc, expect_job_baseline, expect_job_suite):
            expectation(name, docs, args.stampede)
        elif expectation:
            expectation(name, docs)

    for values, needle in REFUSED:
        try:
            render(values)
            failures.append(f"values {values} were accepted; they must be refused")
        except helm_python.HelmError as error:
            check(needle in str(error), f"values {values} refused, but the message does not name `{needle}`: {error}")
            print(f"refused {values}: {str(error).splitlines()[-1][:150]}")

    for file, (values, keep) in PLAIN_SETS.items():
        docs = manifests(render(values), keep)
        text = f"# Rendered from helm/stampede by deploy/check_chart.py --write; do not edit.\n{text_of(docs)}"
        path = PLAIN / file
        if args.write:
            PLAIN.mkdir(exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
        else:
            check(path.exists() and path.read_text() == text, f"{path.relative_to(ROOT)} is not the chart's render; run deploy/check_chart.py --write")
        validate_with_kubernetes(file, docs)

    if failures:
        print("\nFAILED:", file=sys.stderr)
        for failure in failures:
            print(f"- {failure}", file=sys.stderr)
        sys.exit(1)
    print("chart checks passed")


if __name__ == "__main__":
    os.chdir(ROOT)
    main()
