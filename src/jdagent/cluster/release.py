"""The chart on a cluster: namespaces and Secrets, `helm upgrade --install` (recovering a release an
interrupted run left pending), helm test, controller restart, and the agent pods the plugin leaves."""

from __future__ import annotations

import base64
import contextlib
import json
import re
import threading
import time
from collections.abc import Iterator

from jdagent.chart.render import render
from jdagent.cluster import capacity
from jdagent.cluster.provider import Cluster, log
from jdagent.cluster.registry import REGISTRY
from jdagent.paths import CHART_DIR, REPO_ROOT

E2E_VALUES = REPO_ROOT / "tests" / "e2e" / "kind-values.yaml"
RELEASE, NAMESPACE, AGENT_NAMESPACE = "ci", "ci", "ci-agents"
PUSH_NAMESPACE = f"{AGENT_NAMESPACE}-push"  # the chart's default for agent.registry.pushNamespace
FULLNAME = f"{RELEASE}-jenkins-dind-agent"
TEST_POD = f"{FULLNAME}-dind-build-test"
INSTALL_TIMEOUT_S = 900


@contextlib.contextmanager
def watching(cluster: Cluster, namespaces: tuple[str, ...], every: float = 30) -> Iterator[None]:
    """Log the pods of `namespaces` every `every` seconds while the block runs (long helm --wait)."""
    done = threading.Event()

    def report() -> None:
        while not done.wait(every):
            for ns in namespaces:
                out = cluster.kubectl("-n", ns, "get", "pods", "--no-headers", check=False, timeout=60).stdout
                for line in (out or "").splitlines():
                    log(f"  {ns}: {' '.join(line.split()[:4])}")

    thread = threading.Thread(target=report, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=every + 5)


def recover_release(cluster: Cluster) -> str | None:
    """A release an interrupted run left in pending-* blocks every later install: roll it back (upgrade,
    rollback) or uninstall it (first install). Returns what was done, or None."""
    proc = cluster.helm("status", RELEASE, "-n", NAMESPACE, "-o", "json", check=False)
    if proc.returncode != 0:
        return None
    status = json.loads(proc.stdout).get("info", {}).get("status", "")
    if status == "pending-install":
        cluster.helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait", "--timeout", "5m", timeout=360)
        action = f"release {RELEASE} was pending-install: uninstalled it"
    elif status in ("pending-upgrade", "pending-rollback"):
        cluster.helm("rollback", RELEASE, "-n", NAMESPACE, "--wait", "--timeout", "10m", timeout=660)
        action = f"release {RELEASE} was {status}: rolled it back"
    else:
        return None
    log(action)
    return action


def _apply(cluster: Cluster, manifest: str) -> None:
    cluster.kubectl("apply", "-f", "-", input_text=manifest)


def install_chart(cluster: Cluster, password: str = "jda-e2e-admin", wait: bool = True) -> None:
    """helm upgrade --install the chart with the e2e values, the admin Secret and a push Secret (in the
    push namespace, where only the push template's pods run)."""
    for ns in (NAMESPACE, AGENT_NAMESPACE, PUSH_NAMESPACE):
        _apply(cluster, cluster.kubectl("create", "namespace", ns, "--dry-run=client", "-o", "yaml").stdout)
    for ns in (AGENT_NAMESPACE, PUSH_NAMESPACE):
        cluster.kubectl("label", "namespace", ns, "--overwrite", "pod-security.kubernetes.io/enforce=privileged")
    _apply(cluster, cluster.kubectl("-n", NAMESPACE, "create", "secret", "generic", "jenkins-admin",
                                    "--from-literal=jenkins-admin-user=admin",
                                    f"--from-literal=jenkins-admin-password={password}",
                                    "--dry-run=client", "-o", "yaml").stdout)
    auth = {"auths": {REGISTRY: {"auth": base64.b64encode(b"unused:unused").decode()}}}
    _apply(cluster, cluster.kubectl("-n", PUSH_NAMESPACE, "create", "secret", "generic", "registry-push",
                                    "--type=kubernetes.io/dockerconfigjson",
                                    f"--from-literal=.dockerconfigjson={json.dumps(auth)}",
                                    "--dry-run=client", "-o", "yaml").stdout)
    recover_release(cluster)
    # too small a cluster fails here in seconds (a --wait install would sit 15 minutes on Pending pods)
    problem = capacity.check(cluster, render(values=E2E_VALUES, release=RELEASE, namespace=NAMESPACE),
                             ignore_namespaces=(NAMESPACE, AGENT_NAMESPACE, PUSH_NAMESPACE))
    if problem and wait:
        raise RuntimeError(problem)
    if problem:
        log(f"warning: {problem}")
    install = ["upgrade", "--install", RELEASE, str(CHART_DIR), "-n", NAMESPACE, "-f", str(E2E_VALUES)]
    if not wait:
        cluster.helm(*install, stream=True)
        return
    log("helm upgrade --install --wait (the controller downloads its plugins at start; progress every 30 s)")
    with watching(cluster, (NAMESPACE, AGENT_NAMESPACE, PUSH_NAMESPACE)):
        cluster.helm(*install, "--wait", "--timeout", f"{INSTALL_TIMEOUT_S}s", stream=True,
                     timeout=INSTALL_TIMEOUT_S + 120)


def admin_password(cluster: Cluster) -> str:
    data = cluster.kubectl("-n", NAMESPACE, "get", "secret", "jenkins-admin", "-o",
                           "jsonpath={.data.jenkins-admin-password}").stdout
    return base64.b64decode(data).decode()


def recent_events(cluster: Cluster, namespace: str, last: int = 15) -> str:
    """The namespace's newest events, one line each (FailedScheduling, pull errors...), for error reports."""
    out = cluster.kubectl("-n", namespace, "get", "events", "-o", "json", check=False, timeout=60).stdout or "{}"
    try:
        items = json.loads(out).get("items", [])
    except ValueError:
        return "(events not readable)"
    items.sort(key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
    lines = [f"{e.get('type')} {e.get('reason')} {e.get('involvedObject', {}).get('kind')}/"
             f"{e.get('involvedObject', {}).get('name')}: {e.get('message', '').strip()}" for e in items[-last:]]
    return "\n".join(lines) or "(no events)"


def helm_test(cluster: Cluster) -> str:
    """Run `helm test` and return the test pod's own log. The pod runs in the agent namespace, where
    `helm test --logs` (which looks in the release namespace) cannot find it."""
    proc = cluster.helm("test", RELEASE, "-n", NAMESPACE, "--timeout", "10m", check=False, timeout=720)
    logs = cluster.kubectl("-n", AGENT_NAMESPACE, "logs", f"pod/{TEST_POD}", "-c", "jnlp", check=False).stdout
    if proc.returncode != 0:
        raise RuntimeError(f"helm test failed (exit {proc.returncode}): {proc.stderr[-2000:]}\ntest pod log:\n{logs}")
    return logs


def restart_controller(cluster: Cluster, deadline_s: float = 300) -> None:
    """Delete the controller pod and wait for its replacement (a new UID) to be Ready. `rollout status`
    right after a delete can report the old, still-ready pod."""
    pod = f"{FULLNAME}-0"
    old = cluster.kubectl("-n", NAMESPACE, "get", "pod", pod, "-o", "jsonpath={.metadata.uid}").stdout
    cluster.kubectl("-n", NAMESPACE, "delete", "pod", pod, "--wait=false")
    deadline = time.monotonic() + deadline_s
    while True:
        uid = cluster.kubectl("-n", NAMESPACE, "get", "pod", pod, "-o", "jsonpath={.metadata.uid}",
                              check=False).stdout
        if uid and uid != old:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"{pod} was not replaced within {deadline_s:.0f} s")
        time.sleep(2)
    cluster.kubectl_wait(600, "-n", NAMESPACE, "wait", "--for=condition=Ready", f"pod/{pod}")


def pods_left(cluster: Cluster, deadline_s: float = 120) -> list[str]:
    """Agent pods still present after polling up to `deadline_s` (the plugin deletes them asynchronously)."""
    deadline = time.monotonic() + deadline_s
    while True:
        names = cluster.kubectl("-n", AGENT_NAMESPACE, "get", "pods", "-l", "app.kubernetes.io/component=agent",
                                "-o", "name").stdout.split()
        left = [p for p in names if TEST_POD not in p]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(3)


PULL_FAILED = re.compile(r'Failed to pull image "([^"]+)"')


def images_not_pulled(cluster: Cluster, namespaces: tuple[str, ...], deadline_s: float = 120,
                      every: float = 5) -> list[str]:
    """Images the kubelet reported it cannot pull (its Failed events), polled until every pod of
    `namespaces` is Ready or has such a report, or `deadline_s` passes. Empty: everything pulled."""
    deadline = time.monotonic() + deadline_s
    while True:
        failed: dict[str, set[str]] = {}
        waiting: set[str] = set()
        total = 0
        for ns in namespaces:
            events = cluster.kubectl("-n", ns, "get", "events", "-o", "json", check=False).stdout or "{}"
            for event in json.loads(events).get("items", []):
                found = PULL_FAILED.search(event.get("message", ""))
                if found and event.get("reason") == "Failed":
                    pod = f"{ns}/{event.get('involvedObject', {}).get('name')}"
                    failed.setdefault(pod, set()).add(found.group(1))
            pods = json.loads(cluster.kubectl("-n", ns, "get", "pods", "-o", "json", check=False).stdout or "{}")
            for pod in pods.get("items", []):
                total += 1
                conditions = {c["type"]: c["status"] for c in pod.get("status", {}).get("conditions", [])}
                if conditions.get("Ready") != "True":
                    waiting.add(f"{ns}/{pod['metadata']['name']}")
        if (total and waiting <= set(failed)) or time.monotonic() > deadline:
            return sorted({image for pod in waiting & set(failed) for image in failed[pod]})
        time.sleep(every)
