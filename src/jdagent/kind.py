"""kind cluster + in-cluster registry + the chart: shared by tests/e2e and scripts/kind-up.

Needs kind, a Docker engine and internet (kind pulls kindest/node, the cluster pulls Jenkins,
docker:dind, the registry image and plugins). `missing_prerequisites()` says which of those is
absent, without touching the network unless kind and Docker are both present.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from jdagent.paths import ARTIFACTS_DIR, CHART_DIR, REPO_ROOT
from jdagent.tools import find_helm, find_kubectl

E2E_DIR = REPO_ROOT / "tests" / "e2e"
KIND_CONFIG = E2E_DIR / "kind-config.yaml"
KIND_VALUES = E2E_DIR / "kind-values.yaml"
REGISTRY_MANIFEST = E2E_DIR / "registry.yaml"
CLUSTER = os.environ.get("KIND_CLUSTER_NAME", "jda-e2e")
RELEASE, NAMESPACE, AGENT_NAMESPACE = "ci", "ci", "ci-agents"
REGISTRY = "registry.registry.svc.cluster.local:5000"
ONLINE_PROBE = ("registry-1.docker.io", 443)


def log(message: str) -> None:
    print(f"[kind] {message}", file=sys.stderr, flush=True)


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


def missing_prerequisites(which: Callable[[str], str | None] = shutil.which,
                          docker_ok: Callable[[], bool] = _docker_ok,
                          online: Callable[[], bool] = _online) -> str | None:
    """None when kind, Docker and internet are all there; else a reason naming the first missing part.
    The internet probe runs only when kind and Docker exist (JDA_ONLINE=0/1 overrides it)."""
    if which("kind") is None:
        return "kind is not installed (no `kind` on PATH); the e2e tier needs kind, Docker and internet"
    if which("docker") is None or not docker_ok():
        return "no Docker engine reachable (`docker info` fails); kind runs its nodes on Docker"
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


def run(cmd: list[str], check: bool = True, capture: bool = True, timeout: int = 900,
        input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=capture, text=True, timeout=timeout, input=input_text)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{(proc.stderr or '')[-4000:]}")
    return proc


@dataclass
class Cluster:
    name: str
    kubeconfig: Path

    def kubectl(self, *args: str, check: bool = True, timeout: int = 600,
                input_text: str | None = None) -> subprocess.CompletedProcess[str]:
        return run([str(find_kubectl()), "--kubeconfig", str(self.kubeconfig), *args], check=check,
                   timeout=timeout, input_text=input_text)

    def helm(self, *args: str, check: bool = True, timeout: int = 1200) -> subprocess.CompletedProcess[str]:
        return run([str(find_helm("4")), "--kubeconfig", str(self.kubeconfig), *args], check=check, timeout=timeout)


def cluster_up(name: str = CLUSTER) -> tuple[Cluster, bool]:
    """Reuse the kind cluster `name` if it exists, else create it. Returns (cluster, created)."""
    existing = run(["kind", "get", "clusters"]).stdout.split()
    created = name not in existing
    if created:
        log(f"creating kind cluster {name} ({KIND_CONFIG.name}); this pulls kindest/node")
        run(["kind", "create", "cluster", "--name", name, "--config", str(KIND_CONFIG), "--wait", "180s"],
            capture=False)
    else:
        log(f"reusing kind cluster {name}")
    kubeconfig = ARTIFACTS_DIR / f"kubeconfig-{name}"
    kubeconfig.parent.mkdir(parents=True, exist_ok=True)
    kubeconfig.write_text(run(["kind", "get", "kubeconfig", "--name", name]).stdout)
    return Cluster(name, kubeconfig), created


def cluster_down(name: str = CLUSTER) -> None:
    log(f"deleting kind cluster {name}")
    run(["kind", "delete", "cluster", "--name", name], check=False)


def install_registry(cluster: Cluster) -> None:
    """An in-cluster registry (Service registry.registry:5000) that agents push to over plain HTTP."""
    cluster.kubectl("apply", "-f", str(REGISTRY_MANIFEST))
    cluster.kubectl("-n", "registry", "rollout", "status", "deployment/registry", "--timeout=300s")


def install_chart(cluster: Cluster, password: str = "jda-e2e-admin") -> None:
    """helm install (or upgrade) the chart with the kind values, the admin Secret and a push Secret."""
    for ns in (NAMESPACE, AGENT_NAMESPACE):
        manifest = cluster.kubectl("create", "namespace", ns, "--dry-run=client", "-o", "yaml").stdout
        cluster.kubectl("apply", "-f", "-", input_text=manifest)
    cluster.kubectl("label", "namespace", AGENT_NAMESPACE, "--overwrite",
                    "pod-security.kubernetes.io/enforce=privileged")
    admin = cluster.kubectl("-n", NAMESPACE, "create", "secret", "generic", "jenkins-admin",
                            "--from-literal=jenkins-admin-user=admin",
                            f"--from-literal=jenkins-admin-password={password}",
                            "--dry-run=client", "-o", "yaml").stdout
    cluster.kubectl("apply", "-f", "-", input_text=admin)
    auth = {"auths": {REGISTRY: {"auth": base64.b64encode(b"unused:unused").decode()}}}
    push = cluster.kubectl("-n", AGENT_NAMESPACE, "create", "secret", "generic", "registry-push",
                           "--type=kubernetes.io/dockerconfigjson",
                           f"--from-literal=.dockerconfigjson={json.dumps(auth)}",
                           "--dry-run=client", "-o", "yaml").stdout
    cluster.kubectl("apply", "-f", "-", input_text=push)
    log("helm upgrade --install (waits for the controller, plugins are downloaded at start)")
    cluster.helm("upgrade", "--install", RELEASE, str(CHART_DIR), "-n", NAMESPACE, "-f", str(KIND_VALUES),
                 "--wait", "--timeout", "15m")


def admin_password(cluster: Cluster) -> str:
    data = cluster.kubectl("-n", NAMESPACE, "get", "secret", "jenkins-admin", "-o",
                           "jsonpath={.data.jenkins-admin-password}").stdout
    return base64.b64decode(data).decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def port_forward(cluster: Cluster, namespace: str, target: str, remote: int) -> Iterator[int]:
    """kubectl port-forward on 127.0.0.1; yields the local port."""
    local = free_port()
    proc = subprocess.Popen(
        [str(find_kubectl()), "--kubeconfig", str(cluster.kubeconfig), "-n", namespace, "port-forward",
         "--address", "127.0.0.1", target, f"{local}:{remote}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", local), timeout=1):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"port-forward {target} failed: {proc.stdout.read() if proc.stdout else ''}")
            time.sleep(0.3)
        yield local
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)


def collect_artifacts(cluster: Cluster, folder: Path, extra: dict[str, str] | None = None) -> Path:
    """Events, describe, all container logs, extra texts (e.g. the Jenkins console) and kind export logs."""
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
    cluster, _ = cluster_up(args.name)
    install_registry(cluster)
    install_chart(cluster)
    print(f"""
Jenkins is up in kind cluster {cluster.name}.
  export KUBECONFIG={cluster.kubeconfig}
  kubectl -n {NAMESPACE} port-forward svc/{RELEASE}-jenkins-dind-agent 8080:8080
  open http://127.0.0.1:8080/   user: admin   password: {admin_password(cluster)}
  helm test {RELEASE} -n {NAMESPACE} --logs --kubeconfig {cluster.kubeconfig}
  remove with: scripts/kind-up down
""")
    return 0


if __name__ == "__main__":
    sys.exit(main())
