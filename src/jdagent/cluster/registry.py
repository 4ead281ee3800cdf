"""An in-cluster registry (Service registry.registry:5000) that agents push to over plain HTTP, from
tests/e2e/registry.yaml."""

from __future__ import annotations

from jdagent.cluster.provider import Cluster
from jdagent.paths import REPO_ROOT

REGISTRY_MANIFEST = REPO_ROOT / "tests" / "e2e" / "registry.yaml"
REGISTRY = "registry.registry.svc.cluster.local:5000"


def install_registry(cluster: Cluster, wait: bool = True) -> None:
    """Apply the registry and wait for its rollout."""
    cluster.kubectl("apply", "-f", str(REGISTRY_MANIFEST))
    if wait:
        cluster.kubectl_wait(300, "-n", "registry", "rollout", "status", "deployment/registry")
