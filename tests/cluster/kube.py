"""Small helpers the cluster tier's tests share: kubectl JSON, apply, namespaces, helm 3 or 4 against
the cluster, and the values that run the chart on the stand-in images."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import yaml

from jdagent import tools
from jdagent.chart.render import deep_merge, render
from jdagent.cluster.local import addons
from jdagent.cluster.provider import Cluster
from jdagent.engine import agentpod

REGISTRY = addons.REGISTRY  # a fixed ClusterIP: pods' dockerds reach the registry without cluster DNS
BASE_IMAGE = f"{REGISTRY}/busybox:stand-in"


def agent_namespace(release_namespace: str, release: str) -> str:
    """The agent namespace the chart's defaults give a release, as the chart itself renders it."""
    return render(release=release, namespace=release_namespace).kubernetes_cloud()["namespace"]


def wait_for(what: str, check, timeout: float = 180, every: float = 1.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def get_json(cluster: Cluster, *args: str) -> dict:
    return json.loads(cluster.kubectl(*args, "-o", "json").stdout)


def find_json(cluster: Cluster, *args: str) -> dict | None:
    """The object as JSON, or None while the API server answers NotFound."""
    proc = cluster.kubectl(*args, "-o", "json", check=False)
    if proc.returncode != 0:
        if "NotFound" in proc.stderr:
            return None
        raise AssertionError(f"kubectl {' '.join(args)}: {proc.stderr}")
    return json.loads(proc.stdout)


def apply(cluster: Cluster, docs: list[dict]) -> None:
    cluster.kubectl("apply", "-f", "-", input_text=yaml.safe_dump_all(docs))


def namespace(cluster: Cluster, name: str, privileged: bool = False, level: str = "") -> None:
    """Create namespace `name`, enforcing Pod Security `level` ("privileged" when `privileged`)."""
    level = "privileged" if privileged else level
    labels = {"pod-security.kubernetes.io/enforce": level, "pod-security.kubernetes.io/enforce-version": "latest"} \
        if level else {}
    apply(cluster, [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}])


def delete_namespace(cluster: Cluster, name: str) -> None:
    """Delete the namespace (and with it its claims), then put the volumes they held back into service.
    Its pods go first with a 1 s grace period: test pods (nc listeners, stand-in agents) ignore SIGTERM,
    and waiting out their 30 s each is time, not a check."""
    cluster.kubectl("-n", name, "delete", "pods", "--all", "--grace-period=1", "--wait=false", check=False)
    cluster.kubectl("delete", "namespace", name, "--ignore-not-found", "--wait=true", "--timeout=180s",
                    timeout=240)
    addons.recycle(cluster)


def kept_namespaces(cluster: Cluster, release_namespace: str) -> list[str]:
    """Namespaces that releases of `release_namespace` created and `helm uninstall` kept (the chart's
    agent namespace carries helm.sh/resource-policy: keep), as the API server lists them."""
    listed = json.loads(cluster.kubectl("get", "namespaces", "-o", "json").stdout)["items"]
    return [n["metadata"]["name"] for n in listed
            if (n["metadata"].get("annotations") or {}).get("meta.helm.sh/release-namespace") == release_namespace
            and (n["metadata"].get("annotations") or {}).get("helm.sh/resource-policy") == "keep"]


def listener(port: int) -> str:
    """A shell command for a busybox pod: a persistent server that answers every connection with "open"."""
    return f"busybox nc -ll -p {port} -e busybox echo open"


def service_account_kubeconfig(cluster: Cluster, namespace: str, account: str, path: Path,
                               duration: str = "15m") -> Path:
    """A kubeconfig at `path` that authenticates as ServiceAccount `account` with a token of its own
    (TokenRequest), the way the Kubernetes plugin calls the API server from the controller."""
    token = cluster.kubectl("-n", namespace, "create", "token", account, f"--duration={duration}").stdout.strip()
    return token_kubeconfig(cluster, token, path)


def token_kubeconfig(cluster: Cluster, token: str, path: Path) -> Path:
    """A kubeconfig at `path` that authenticates with bearer `token` against the cluster's API server."""
    server = yaml.safe_load(cluster.kubeconfig.read_text())["clusters"][0]["cluster"]
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "l", "cluster": server}], "users": [{"name": "u", "user": {"token": token}}],
        "contexts": [{"name": "c", "context": {"cluster": "l", "user": "u"}}]}))
    return path


def image_pull_failure(cluster: Cluster, namespace: str, image: str, timeout: float = 180) -> str | None:
    """Ask the kubelet for `image` with a pod of its own: None once a container of it starts, else the
    kubelet's reason and message for the failed pull."""
    name = "jda-pull-probe"
    apply(cluster, [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
                     "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                              "containers": [{"name": "probe", "image": image, "imagePullPolicy": "IfNotPresent",
                                              "command": ["sh", "-c", "exit 0"]}]}}])

    def answered() -> tuple[str | None] | None:
        pod = get_json(cluster, "-n", namespace, "get", "pod", name)
        for status in pod["status"].get("containerStatuses", []):
            state = status.get("state", {})
            if "running" in state or "terminated" in state:
                return (None,)
            waiting = state.get("waiting", {})
            if waiting.get("reason") in ("ErrImagePull", "ImagePullBackOff", "InvalidImageName"):
                return (f"{waiting['reason']}: {waiting.get('message', '')}",)
        return None

    try:
        return wait_for(f"the kubelet to pull {image} or fail", answered, timeout=timeout, every=2)[0]
    finally:
        cluster.kubectl("-n", namespace, "delete", "pod", name, "--grace-period=1", "--wait=false", check=False)


def standin_values(standins: dict[str, str], **extra) -> dict:
    """Values that run the chart's pods on the stand-in images, with the base image from the registry."""
    values = agentpod.standin_overrides(standins)
    values["exampleJob"] = {"baseImage": BASE_IMAGE}
    values["agent"]["dind"]["insecureRegistries"] = [REGISTRY]
    return deep_merge(values, extra)


def values_file(tmp: Path, values: dict) -> Path:
    path = tmp / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def helm(cluster: Cluster, version: str, *args: str, check: bool = True, timeout: float = 600):
    proc = subprocess.run([str(tools.find_helm(version)), "--kubeconfig", str(cluster.kubeconfig), *args],
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {version} {' '.join(args)} exited {proc.returncode}: {proc.stderr[-3000:]}")
    return proc
