"""kind as a cluster provider: prerequisites, create or reuse, kubeconfig, `kind load docker-image`,
delete and `kind export logs`.

Needs kind (>= KIND_VERSION), a Docker engine, helm 4, kubectl and internet (kind pulls kindest/node,
the cluster pulls Jenkins, docker:dind, the registry image and plugins). `missing_prerequisites()`
names the first missing part without touching the network unless everything else is there. The
cluster's kubeconfig is a private file under .artifacts/ (your current kube context is never switched).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import yaml

from jdagent import tools
from jdagent.cluster.provider import Cluster, Provider, log, run
from jdagent.paths import ARTIFACTS_DIR, REPO_ROOT

KIND_CONFIG = REPO_ROOT / "tests" / "e2e" / "kind-config.yaml"
KIND_VERSION = "0.32.0"  # the release whose default node image kind-config.yaml pins (by digest)
CLUSTER = os.environ.get("KIND_CLUSTER_NAME", "jda-e2e")
ONLINE_PROBE = ("registry-1.docker.io", 443)


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


def kubeconfig_path(name: str) -> Path:
    return ARTIFACTS_DIR / "kind" / f"{name}.kubeconfig"


def resolved_config(name: str, source: Path = KIND_CONFIG) -> Path:
    """kind-config.yaml with every relative extraMounts hostPath made absolute against the repository root
    (kind resolves them against its own working directory), written beside the cluster's kubeconfig."""
    config = yaml.safe_load(source.read_text())
    for node in config.get("nodes", []):
        for mount in node.get("extraMounts", []):
            mount["hostPath"] = str((REPO_ROOT / mount["hostPath"]).resolve())
    path = ARTIFACTS_DIR / "kind" / f"{name}-config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


class KindProvider(Provider):
    """Clusters made by the `kind` binary from tests/e2e/kind-config.yaml."""

    label = "kind"

    def missing(self) -> str | None:
        return missing_prerequisites()

    def kubeconfig(self, name: str) -> Path:
        return kubeconfig_path(name)

    def up(self, name: str = CLUSTER) -> tuple[Cluster, bool]:
        """Reuse a healthy cluster of that name; replace one that is not (a `kind create` stopped half-way
        leaves a node whose API server or CNI never came up); else create one. A create that fails or is
        interrupted (Ctrl-C) deletes what it made."""
        kubeconfig = self.kubeconfig(name)
        kubeconfig.parent.mkdir(parents=True, exist_ok=True)
        existing = run(["kind", "get", "clusters"]).stdout.split()
        if name in existing:
            problem = self._unhealthy(name, kubeconfig)
            if problem is None:
                log(f"reusing kind cluster {name}")
                kubeconfig.chmod(0o600)
                return Cluster(name, kubeconfig), False
            log(f"kind cluster {name} exists but is not usable ({problem}): deleting it and creating it again")
            self.delete(name)
        log(f"creating kind cluster {name} ({KIND_CONFIG.name}); this pulls kindest/node")
        try:
            run(["kind", "create", "cluster", "--name", name, "--config", str(resolved_config(name)), "--wait", "180s",
                 "--kubeconfig", str(kubeconfig)], stream=True, timeout=900)
        except BaseException:
            log(f"kind create cluster {name} did not finish: deleting the half-built cluster")
            self.delete(name)
            raise
        kubeconfig.chmod(0o600)
        return Cluster(name, kubeconfig), True

    def _unhealthy(self, name: str, kubeconfig: Path) -> str | None:
        """None when the cluster's kubeconfig can be had and every node is Ready within a minute."""
        got = run(["kind", "get", "kubeconfig", "--name", name], check=False, timeout=60)
        if got.returncode != 0 or not got.stdout.strip():
            return f"`kind get kubeconfig` failed: {(got.stderr or '').strip()[-300:]}"
        kubeconfig.write_text(got.stdout)
        kubeconfig.chmod(0o600)
        ready = Cluster(name, kubeconfig).kubectl_wait(60, "wait", "--for=condition=Ready", "node", "--all",
                                                         check=False)
        if ready.returncode != 0:
            return f"its nodes are not Ready: {(ready.stderr or ready.stdout or '').strip()[-300:]}"
        return None

    def load_image(self, cluster: Cluster, image: str) -> None:
        log(f"loading {image} into the nodes of {cluster.name}")
        run(["kind", "load", "docker-image", "--name", cluster.name, image], timeout=900)

    def delete(self, name: str = CLUSTER) -> None:
        log(f"deleting kind cluster {name}")
        run(["kind", "delete", "cluster", "--name", name, "--kubeconfig", str(self.kubeconfig(name))], check=False)

    def export_logs(self, cluster: Cluster, folder: Path) -> None:
        run(["kind", "export", "logs", str(folder), "--name", cluster.name], check=False)
