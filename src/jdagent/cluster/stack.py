"""The whole e2e stack on one provider's cluster: the cluster, the in-cluster registry and the chart.
`python -m jdagent.cluster.stack` is scripts/kind-up: kind where it is installed, else the local cluster
built from the upstream Go modules (Linux, root, Go). Without registry access the local cluster cannot
pull Jenkins and the other upstream images; the command then names the images the kubelet could not pull.

A release left pending by an interrupted run is rolled back or removed before the next install; a
failed setup saves the cluster's state to .artifacts/e2e/setup/, then deletes a cluster it created
(JDA_KEEP_CLUSTER=1 keeps it; a cluster that was reused is always kept).
"""

from __future__ import annotations

import argparse
import os
import shutil
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
    images_not_pulled,
    install_chart,
)
from jdagent.paths import ARTIFACTS_DIR


def bring_up(provider: Provider, name: str = kind.CLUSTER,
             collect: Callable[[Cluster, Path], Path] | None = None) -> tuple[Cluster, bool]:
    """provider.up + registry + chart. When the registry or the chart fails, the cluster state is saved
    to .artifacts/e2e/setup/; a cluster this call created is then deleted, so that the next run does not
    reuse a broken one, unless JDA_KEEP_CLUSTER=1 asks to keep it for inspection."""
    cluster, created = provider.up(name)
    try:
        install_registry(cluster)
        install_chart(cluster)
    except BaseException:
        folder = ARTIFACTS_DIR / "e2e" / "setup"
        folder = collect(cluster, folder) if collect else collect_artifacts(cluster, folder, provider=provider)
        if created and os.environ.get("JDA_KEEP_CLUSTER") != "1":
            log(f"setup failed: cluster state and logs are in {folder}; deleting the cluster {name} this run "
                f"created (JDA_KEEP_CLUSTER=1 keeps it)")
            provider.delete(name)
        else:
            log(f"setup failed: cluster state and logs are in {folder}; the cluster {name} is kept "
                f"(KUBECONFIG={cluster.kubeconfig}); remove it with: scripts/kind-up down --name {name}")
        raise
    return cluster, created


def choose_provider(choice: str = "auto", which: Callable[[str], str | None] = shutil.which) -> Provider:
    """kind when asked for, or (auto) when `kind` is on PATH; else the local cluster."""
    if choice == "kind" or (choice == "auto" and which("kind")):
        return kind.KindProvider()
    from jdagent.cluster.local.node import LocalProvider

    return LocalProvider()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="a cluster (kind, else local) + registry + jenkins-dind-agent "
                                                 "(scripts/kind-up)")
    parser.add_argument("action", choices=["up", "down"], nargs="?", default="up")
    parser.add_argument("--provider", choices=["auto", "kind", "local"], default="auto",
                        help="kind if installed, else local (default %(default)s)")
    parser.add_argument("--name", default=None, help="cluster name (default: jda-e2e for kind, jda-local for local)")
    args = parser.parse_args(argv)
    provider = choose_provider(args.provider)
    name = args.name or (kind.CLUSTER if provider.label == "kind" else "jda-local")
    if args.action == "down":
        provider.delete(name)
        return 0
    missing = provider.missing()
    if missing:
        log(missing)
        return 2
    try:
        if provider.label == "kind":
            cluster, _ = bring_up(provider, name)
        else:
            cluster, _ = provider.up(name)
            install_registry(cluster, wait=False)
            install_chart(cluster, wait=False)
            blocked = images_not_pulled(cluster, (NAMESPACE, AGENT_NAMESPACE, "registry"), deadline_s=600)
            if blocked:
                log(f"the chart is installed in cluster {name}, but its node cannot pull these images (no registry "
                    f"access from here): {', '.join(blocked)}; stop it with: scripts/kind-up down --provider local")
                return 3
    except (RuntimeError, subprocess.SubprocessError, tools.ToolError) as exc:
        log(f"error: {exc}")
        return 1
    print(f"""
Jenkins is up in {provider.label} cluster {cluster.name}.
  export KUBECONFIG={cluster.kubeconfig}
  kubectl -n {NAMESPACE} port-forward svc/{FULLNAME} 8080:8080
  open http://127.0.0.1:8080/   user: admin   password: {admin_password(cluster)}
  helm test {RELEASE} -n {NAMESPACE}     # then: kubectl -n {AGENT_NAMESPACE} logs {TEST_POD} -c jnlp
  remove with: scripts/kind-up down --provider {provider.label} --name {cluster.name}
""")
    return 0


if __name__ == "__main__":
    sys.exit(main())
