"""kind cluster + in-cluster registry + the chart: shared by tests/e2e and scripts/kind-up.

Needs kind (>= KIND_VERSION), a Docker engine, helm 4, kubectl and internet (kind pulls kindest/node,
the cluster pulls Jenkins, docker:dind, the registry image and plugins). `missing_prerequisites()`
names the first missing part without touching the network unless everything else is there.

Side effects stay in this repository: the cluster's kubeconfig is a private file under .artifacts/
(your current kube context is never switched), and a release left pending by an interrupted run is
rolled back or removed before the next install.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from jdagent import tools
from jdagent.paths import ARTIFACTS_DIR, CHART_DIR, REPO_ROOT

E2E_DIR = REPO_ROOT / "tests" / "e2e"
KIND_CONFIG = E2E_DIR / "kind-config.yaml"
KIND_VALUES = E2E_DIR / "kind-values.yaml"
REGISTRY_MANIFEST = E2E_DIR / "registry.yaml"
KIND_VERSION = "0.32.0"  # the release whose default node image kind-config.yaml pins (by digest)
CLUSTER = os.environ.get("KIND_CLUSTER_NAME", "jda-e2e")
RELEASE, NAMESPACE, AGENT_NAMESPACE = "ci", "ci", "ci-agents"
FULLNAME = f"{RELEASE}-jenkins-dind-agent"
TEST_POD = f"{FULLNAME}-dind-build-test"
REGISTRY = "registry.registry.svc.cluster.local:5000"
ONLINE_PROBE = ("registry-1.docker.io", 443)
INSTALL_TIMEOUT_S = 900


def log(message: str) -> None:
    print(f"[kind] {message}", file=sys.stderr, flush=True)


# --- prerequisites ---------------------------------------------------------------------------------
def _docker_ok() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _online() -> bool:
    flag = os.environ.get("JDA_ONLINE")
    if flag in ("0", "1"):
        return flag == "1"
    try:
        with socket.create_connection(ONLINE_PROBE, timeout=3):
            return True
    except OSError:
        return False


def kind_version() -> str | None:
    """The version `kind version` prints ("kind v0.32.0 go1.24 linux/amd64"), or None."""
    try:
        out = subprocess.run(["kind", "version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.match(r"kind v(\d+\.\d+\.\d+)", out.strip())
    return match.group(1) if match else None


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def _helm4_ok() -> bool:
    try:
        tools.find_helm("4", download=False)
        return True
    except tools.ToolError:
        return tools.can_provision()


def _kubectl_ok() -> bool:
    return shutil.which("kubectl") is not None or tools.can_provision()


def missing_prerequisites(which: Callable[[str], str | None] = shutil.which,
                          docker_ok: Callable[[], bool] = _docker_ok,
                          online: Callable[[], bool] = _online,
                          kind_version: Callable[[], str | None] = kind_version,
                          helm4_ok: Callable[[], bool] = _helm4_ok,
                          kubectl_ok: Callable[[], bool] = _kubectl_ok) -> str | None:
    """None when everything the e2e tier needs is there; else a reason naming the first missing part.
    The internet probe runs last (JDA_ONLINE=0/1 overrides it)."""
    if which("kind") is None:
        return ("kind is not installed (no `kind` on PATH); the e2e tier needs kind, Docker, helm 4, kubectl "
                "and internet")
    found = kind_version()
    if found is None or _version_tuple(found) < _version_tuple(KIND_VERSION):
        return (f"kind {found or '(unknown version)'} is older than {KIND_VERSION}, the release whose node image "
                f"tests/e2e/kind-config.yaml pins; install kind v{KIND_VERSION} or newer")
    if which("docker") is None or not docker_ok():
        return "no Docker engine reachable (`docker info` fails); kind runs its nodes on Docker"
    if not helm4_ok() or not kubectl_ok():
        return (f"install helm 4 and kubectl: none found on PATH (or HELM4_BIN/HELM_BIN), and the pinned fallback "
                f"binaries are linux/amd64 only (this is {tools.this_platform()})")
    if not online():
        return ("no internet: kind must pull kindest/node and the cluster must pull Jenkins, docker:dind and "
                "plugins (set JDA_ONLINE=1 to skip this probe)")
    return None


def missing_online(which: Callable[[str], str | None] = shutil.which,
                   docker_ok: Callable[[], bool] = _docker_ok) -> str | None:
    """For tests that need internet but no cluster. Without kind and Docker (CI and the dev machines)
    nothing is probed: internet must be confirmed with JDA_ONLINE=1."""
    flag = os.environ.get("JDA_ONLINE")
    if flag == "1":
        return None
    if flag != "0" and which("kind") and which("docker") and docker_ok() and _online():
        return None
    return ("no internet confirmed: this test downloads the upstream Spinnaker chart; "
            "set JDA_ONLINE=1 on a machine with internet access")


def loopback_without_proxy() -> None:
    """Keep HTTP(S)_PROXY away from the port-forwards on 127.0.0.1 (requests and urllib read NO_PROXY)."""
    for var in ("NO_PROXY", "no_proxy"):
        entries = [e for e in os.environ.get(var, "").split(",") if e]
        for host in ("127.0.0.1", "localhost"):
            if host not in entries:
                entries.append(host)
        os.environ[var] = ",".join(entries)


# --- processes -------------------------------------------------------------------------------------
def run(cmd: list[str], check: bool = True, timeout: float = 900, input_text: str | None = None,
        stream: bool = False) -> subprocess.CompletedProcess[str]:
    """Run a command. stream=True shows its output live (long operations) instead of capturing it."""
    if stream:
        log(f"$ {' '.join(cmd)}")
    proc = subprocess.run(cmd, capture_output=not stream, text=True, timeout=timeout, input=input_text)
    if check and proc.returncode != 0:
        detail = "" if stream else f":\n{(proc.stderr or proc.stdout or '')[-4000:]}"
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}{detail}")
    return proc


@dataclass
class Cluster:
    name: str
    kubeconfig: Path

    def kubectl(self, *args: str, check: bool = True, timeout: float = 300,
                input_text: str | None = None) -> subprocess.CompletedProcess[str]:
        return run([str(tools.find_kubectl()), "--kubeconfig", str(self.kubeconfig), *args], check=check,
                   timeout=timeout, input_text=input_text)

    def kubectl_wait(self, seconds: int, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """A kubectl command that waits by itself: its --timeout, and a process timeout a minute longer."""
        return self.kubectl(*args, f"--timeout={seconds}s", check=check, timeout=seconds + 60)

    def helm(self, *args: str, check: bool = True, timeout: float = 300,
             stream: bool = False) -> subprocess.CompletedProcess[str]:
        return run([str(tools.find_helm("4")), "--kubeconfig", str(self.kubeconfig), *args], check=check,
                   timeout=timeout, stream=stream)


def kubeconfig_path(name: str) -> Path:
    return ARTIFACTS_DIR / "kind" / f"{name}.kubeconfig"


def cluster_up(name: str = CLUSTER) -> tuple[Cluster, bool]:
    """Reuse the kind cluster `name` if it exists, else create it. Returns (cluster, created). The
    kubeconfig is private to this repository; the user's own kubeconfig and context are not touched."""
    kubeconfig = kubeconfig_path(name)
    kubeconfig.parent.mkdir(parents=True, exist_ok=True)
    existing = run(["kind", "get", "clusters"]).stdout.split()
    created = name not in existing
    if created:
        log(f"creating kind cluster {name} ({KIND_CONFIG.name}); this pulls kindest/node")
        run(["kind", "create", "cluster", "--name", name, "--config", str(KIND_CONFIG), "--wait", "180s",
             "--kubeconfig", str(kubeconfig)], stream=True, timeout=900)
    else:
        log(f"reusing kind cluster {name}")
        kubeconfig.write_text(run(["kind", "get", "kubeconfig", "--name", name]).stdout)
    kubeconfig.chmod(0o600)
    return Cluster(name, kubeconfig), created


def cluster_down(name: str = CLUSTER) -> None:
    log(f"deleting kind cluster {name}")
    run(["kind", "delete", "cluster", "--name", name, "--kubeconfig", str(kubeconfig_path(name))], check=False)


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


def install_registry(cluster: Cluster) -> None:
    """An in-cluster registry (Service registry.registry:5000) that agents push to over plain HTTP."""
    cluster.kubectl("apply", "-f", str(REGISTRY_MANIFEST))
    cluster.kubectl_wait(300, "-n", "registry", "rollout", "status", "deployment/registry")


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


def install_chart(cluster: Cluster, password: str = "jda-e2e-admin") -> None:
    """helm upgrade --install the chart with the kind values, the admin Secret and a push Secret."""
    for ns in (NAMESPACE, AGENT_NAMESPACE):
        _apply(cluster, cluster.kubectl("create", "namespace", ns, "--dry-run=client", "-o", "yaml").stdout)
    cluster.kubectl("label", "namespace", AGENT_NAMESPACE, "--overwrite",
                    "pod-security.kubernetes.io/enforce=privileged")
    _apply(cluster, cluster.kubectl("-n", NAMESPACE, "create", "secret", "generic", "jenkins-admin",
                                    "--from-literal=jenkins-admin-user=admin",
                                    f"--from-literal=jenkins-admin-password={password}",
                                    "--dry-run=client", "-o", "yaml").stdout)
    auth = {"auths": {REGISTRY: {"auth": base64.b64encode(b"unused:unused").decode()}}}
    _apply(cluster, cluster.kubectl("-n", AGENT_NAMESPACE, "create", "secret", "generic", "registry-push",
                                    "--type=kubernetes.io/dockerconfigjson",
                                    f"--from-literal=.dockerconfigjson={json.dumps(auth)}",
                                    "--dry-run=client", "-o", "yaml").stdout)
    recover_release(cluster)
    log("helm upgrade --install --wait (the controller downloads its plugins at start; progress every 30 s)")
    with watching(cluster, (NAMESPACE, AGENT_NAMESPACE)):
        cluster.helm("upgrade", "--install", RELEASE, str(CHART_DIR), "-n", NAMESPACE, "-f", str(KIND_VALUES),
                     "--wait", "--timeout", f"{INSTALL_TIMEOUT_S}s", stream=True, timeout=INSTALL_TIMEOUT_S + 120)


def bring_up(name: str = CLUSTER, collect: Callable[[Cluster, Path], Path] | None = None) -> tuple[Cluster, bool]:
    """cluster_up + registry + chart. When the registry or the chart fails, the cluster state is saved
    to .artifacts/e2e/setup/ and the cluster is kept (also a freshly created one) for inspection."""
    cluster, created = cluster_up(name)
    try:
        install_registry(cluster)
        install_chart(cluster)
    except BaseException:
        folder = (collect or collect_artifacts)(cluster, ARTIFACTS_DIR / "e2e" / "setup")
        log(f"setup failed: cluster state and logs are in {folder}; the cluster {name} is kept "
            f"(KUBECONFIG={cluster.kubeconfig}); remove it with: scripts/kind-up down --name {name}")
        raise
    return cluster, created


def admin_password(cluster: Cluster) -> str:
    data = cluster.kubectl("-n", NAMESPACE, "get", "secret", "jenkins-admin", "-o",
                           "jsonpath={.data.jenkins-admin-password}").stdout
    return base64.b64decode(data).decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def port_forward(cluster: Cluster, namespace: str, target: str, remote: int,
                 deadline_s: float = 30) -> Iterator[int]:
    """kubectl port-forward on 127.0.0.1; yields the local port. kubectl's output goes to a file, so a
    chatty or failing kubectl never blocks us; on failure its output is in the error."""
    local = free_port()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(
            [str(tools.find_kubectl()), "--kubeconfig", str(cluster.kubeconfig), "-n", namespace, "port-forward",
             "--address", "127.0.0.1", target, f"{local}:{remote}"],
            stdout=out, stderr=subprocess.STDOUT, text=True,
        )
        try:
            deadline = time.monotonic() + deadline_s
            while True:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", local), timeout=1):
                    break
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    proc.wait(timeout=10)
                    out.seek(0)
                    raise RuntimeError(f"port-forward {namespace}/{target} {local}:{remote} failed "
                                       f"(exit {proc.returncode}): {out.read()[-2000:]}")
                time.sleep(0.3)
            yield local
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()


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


def collect_artifacts(cluster: Cluster, folder: Path, extra: dict[str, str] | None = None) -> Path:
    """Events, describe, pod YAML, all container logs, helm status/history, extra texts (e.g. the Jenkins
    console) and `kind export logs`."""
    folder.mkdir(parents=True, exist_ok=True)
    for ns in (NAMESPACE, AGENT_NAMESPACE, "registry"):
        for name, args in {
            f"{ns}-events.txt": ["-n", ns, "get", "events", "--sort-by=.lastTimestamp"],
            f"{ns}-describe.txt": ["-n", ns, "describe", "all"],
            f"{ns}-pods.yaml": ["-n", ns, "get", "pods", "-o", "yaml"],
        }.items():
            (folder / name).write_text(cluster.kubectl(*args, check=False).stdout or "")
        pods = cluster.kubectl("-n", ns, "get", "pods", "-o", "name", check=False).stdout.split()
        for pod in pods:
            logs = cluster.kubectl("-n", ns, "logs", pod, "--all-containers", "--prefix", check=False)
            (folder / f"{ns}-{pod.split('/')[-1]}.log").write_text((logs.stdout or "") + (logs.stderr or ""))
    for name, args in {"helm-status.txt": ["status", RELEASE, "-n", NAMESPACE],
                       "helm-history.txt": ["history", RELEASE, "-n", NAMESPACE]}.items():
        proc = cluster.helm(*args, check=False)
        (folder / name).write_text((proc.stdout or "") + (proc.stderr or ""))
    for name, text in (extra or {}).items():
        (folder / name).write_text(text)
    run(["kind", "export", "logs", str(folder / "kind"), "--name", cluster.name], check=False)
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="kind cluster + registry + jenkins-dind-agent (scripts/kind-up)")
    parser.add_argument("action", choices=["up", "down"], nargs="?", default="up")
    parser.add_argument("--name", default=CLUSTER, help="kind cluster name (default %(default)s)")
    args = parser.parse_args(argv)
    if args.action == "down":
        cluster_down(args.name)
        return 0
    missing = missing_prerequisites()
    if missing:
        log(missing)
        return 2
    try:
        cluster, _ = bring_up(args.name)
    except (RuntimeError, subprocess.SubprocessError, tools.ToolError) as exc:
        log(f"error: {exc}")
        return 1
    print(f"""
Jenkins is up in kind cluster {cluster.name}.
  export KUBECONFIG={cluster.kubeconfig}
  kubectl -n {NAMESPACE} port-forward svc/{FULLNAME} 8080:8080
  open http://127.0.0.1:8080/   user: admin   password: {admin_password(cluster)}
  helm test {RELEASE} -n {NAMESPACE}     # then: kubectl -n {AGENT_NAMESPACE} logs {TEST_POD} -c jnlp
  remove with: scripts/kind-up down --name {cluster.name}
""")
    return 0


if __name__ == "__main__":
    sys.exit(main())
