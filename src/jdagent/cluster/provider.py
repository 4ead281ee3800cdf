"""What every cluster provider offers the e2e tests and scripts: a `Cluster` handle (kubectl and helm 4
against a private kubeconfig) and the `Provider` interface (create or reuse, kubeconfig, load an image,
delete, export node logs). kind is one provider (`jdagent.cluster.kind`)."""

from __future__ import annotations

import abc
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from jdagent import tools


def log(message: str) -> None:
    print(f"[cluster] {message}", file=sys.stderr, flush=True)


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


class Provider(abc.ABC):
    """A source of clusters. Implementations keep the kubeconfig private to this repository and never
    switch the user's current context."""

    #: short name, used for log folders (.artifacts/.../<label>/)
    label: str

    @abc.abstractmethod
    def missing(self) -> str | None:
        """None when this provider can run here; else a reason naming the first missing part."""

    @abc.abstractmethod
    def up(self, name: str) -> tuple[Cluster, bool]:
        """Reuse the cluster `name` if it exists, else create it. Returns (cluster, created)."""

    @abc.abstractmethod
    def kubeconfig(self, name: str) -> Path:
        """Where the private kubeconfig of cluster `name` is written."""

    @abc.abstractmethod
    def load_image(self, cluster: Cluster, image: str) -> None:
        """Make a local Docker image available to the cluster's nodes without a registry."""

    @abc.abstractmethod
    def delete(self, name: str) -> None:
        """Remove the cluster `name` (nothing happens when it does not exist)."""

    @abc.abstractmethod
    def export_logs(self, cluster: Cluster, folder: Path) -> None:
        """Write the nodes' own logs (kubelet, container runtime) into `folder`."""
