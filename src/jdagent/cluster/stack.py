"""The whole e2e stack on one provider's cluster: the cluster, the in-cluster registry and the chart.
`python -m jdagent.cluster.stack` is scripts/kind-up.

A release left pending by an interrupted run is rolled back or removed before the next install; a
failed setup keeps the cluster and saves its state to .artifacts/e2e/setup/.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from jdagent import tools
from jdagent.cluster import kind
from jdagent.cluster.artifacts import collect_artifacts
from jdagent.cluster.provider import Cluster, Provider, log
from jdagent.cluster.registry import install_registry
from jdagent.cluster.release import (
    AGENT_NAMESPACE,
    FULLNAME,
    NAMESPACE,
    RELEASE,
    TEST_POD,
    admin_password,
    install_chart,
)
from jdagent.paths import ARTIFACTS_DIR


def bring_up(provider: Provider, name: str = kind.CLUSTER,
             collect: Callable[[Cluster, Path], Path] | None = None) -> tuple[Cluster, bool]:
    """provider.up + registry + chart. When the registry or the chart fails, the cluster state is saved
    to .artifacts/e2e/setup/ and the cluster is kept (also a freshly created one) for inspection."""
    cluster, created = provider.up(name)
    try:
        install_registry(cluster)
        install_chart(cluster)
    except BaseException:
        folder = ARTIFACTS_DIR / "e2e" / "setup"
        folder = collect(cluster, folder) if collect else collect_artifacts(cluster, folder, provider=provider)
        log(f"setup failed: cluster state and logs are in {folder}; the cluster {name} is kept "
            f"(KUBECONFIG={cluster.kubeconfig}); remove it with: scripts/kind-up down --name {name}")
        raise
    return cluster, created


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="kind cluster + registry + jenkins-dind-agent (scripts/kind-up)")
    parser.add_argument("action", choices=["up", "down"], nargs="?", default="up")
    parser.add_argument("--name", default=kind.CLUSTER, help="kind cluster name (default %(default)s)")
    args = parser.parse_args(argv)
    provider = kind.KindProvider()
    if args.action == "down":
        provider.delete(args.name)
        return 0
    missing = provider.missing()
    if missing:
        log(missing)
        return 2
    try:
        cluster, _ = bring_up(provider, args.name)
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
