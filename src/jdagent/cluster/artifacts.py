"""Evidence of a failed setup or test: events, describe, pod YAML, every container's log, helm status and
history, extra texts (the Jenkins console), and the provider's node logs."""

from __future__ import annotations

from pathlib import Path

from jdagent.cluster.provider import Cluster, Provider
from jdagent.cluster.release import AGENT_NAMESPACE, NAMESPACE, PUSH_NAMESPACE, RELEASE


def collect_artifacts(cluster: Cluster, folder: Path, extra: dict[str, str] | None = None,
                      provider: Provider | None = None,
                      namespaces: tuple[str, ...] = (NAMESPACE, AGENT_NAMESPACE, PUSH_NAMESPACE, "registry"),
                      ) -> Path:
    """Events, describe, pod YAML, all container logs, helm status/history, extra texts (e.g. the Jenkins
    console) and, given a provider, its node logs in folder/<provider.label>/."""
    folder.mkdir(parents=True, exist_ok=True)
    for ns in namespaces:
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
    if provider is not None:
        provider.export_logs(cluster, folder / provider.label)
    return folder
