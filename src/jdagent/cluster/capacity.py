"""Will the e2e install fit? The requests of what the chart runs (the controller, the mirror, one agent
pod, the helm test pod), counted as the scheduler counts a pod, against what the cluster's Ready nodes
have left. A cluster that is too small fails in seconds, naming both sides, instead of after a 20-minute
`helm --wait` with Pending pods.

A pod's effective request (the scheduler's rule for init containers): the larger of its app containers
plus its restartable (native sidecar) init containers, and, for each other init container, its own
request plus the sidecars started before it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from jdagent.chart.manifest import Manifest
from jdagent.cluster.provider import Cluster
from jdagent.engine.podrun import cpu_cores, quantity_bytes

GIB = 1024**3


@dataclass(frozen=True)
class Need:
    what: str
    cpu: float
    memory: int

    def __str__(self) -> str:
        return f"{self.what} {self.cpu:g} CPU / {self.memory / GIB:.2f} GiB"


def _requests(container: Mapping[str, Any]) -> tuple[float, int]:
    req = (container.get("resources") or {}).get("requests") or {}
    return (cpu_cores(req["cpu"]) if "cpu" in req else 0.0,
            quantity_bytes(req["memory"]) if "memory" in req else 0)


def pod_request(spec: Mapping[str, Any]) -> tuple[float, int]:
    """The effective (cpu cores, memory bytes) request of a pod spec."""
    sidecar_cpu, sidecar_mem = 0.0, 0
    peak_cpu, peak_mem = 0.0, 0
    for init in spec.get("initContainers") or []:
        cpu, mem = _requests(init)
        if init.get("restartPolicy") == "Always":
            sidecar_cpu, sidecar_mem = sidecar_cpu + cpu, sidecar_mem + mem
        else:
            peak_cpu, peak_mem = max(peak_cpu, cpu + sidecar_cpu), max(peak_mem, mem + sidecar_mem)
    app = [_requests(c) for c in spec.get("containers") or []]
    app_cpu = sum(c for c, _ in app) + sidecar_cpu
    app_mem = sum(m for _, m in app) + sidecar_mem
    return max(app_cpu, peak_cpu), max(app_mem, peak_mem)


def needs(manifest: Manifest) -> list[Need]:
    """What the rendered chart asks the scheduler for while the e2e tier runs: every workload's replicas,
    and the larger of the helm test pod and one agent pod (they run one after the other: the test pod has
    completed when the pipeline's builds start, and those run one at a time)."""
    out = []
    transient = [Need("an agent pod", *pod_request(manifest.agent_pod()["spec"]))]
    for obj in manifest:
        kind = obj.get("kind")
        if kind in ("StatefulSet", "Deployment"):
            cpu, mem = pod_request(obj["spec"]["template"]["spec"])
            replicas = int(obj["spec"].get("replicas", 1))
            out.append(Need(f"{kind.lower()}/{obj['metadata']['name']} x{replicas}", cpu * replicas, mem * replicas))
        elif kind == "Pod":
            transient.append(Need(f"pod/{obj['metadata']['name']}", *pod_request(obj["spec"])))
    names = " or ".join(t.what for t in transient)
    out.append(Need(f"{names} at a time", max(t.cpu for t in transient), max(t.memory for t in transient)))
    return out


def free(nodes: Mapping[str, Any], pods: Mapping[str, Any], ignore_namespaces: Iterable[str] = ()) -> Need:
    """Allocatable CPU and memory of the Ready, schedulable nodes minus what running pods request
    (`kubectl get nodes/pods -A -o json`); pods of `ignore_namespaces` (a reinstall's own) are not counted."""
    ready = set()
    cpu, mem = 0.0, 0
    for node in nodes.get("items", []):
        conditions = {c["type"]: c["status"] for c in node.get("status", {}).get("conditions", [])}
        if conditions.get("Ready") != "True" or node.get("spec", {}).get("unschedulable"):
            continue
        ready.add(node["metadata"]["name"])
        alloc = node["status"].get("allocatable", {})
        cpu += cpu_cores(alloc.get("cpu", "0"))
        mem += quantity_bytes(alloc.get("memory", "0"))
    skip = set(ignore_namespaces)
    for pod in pods.get("items", []):
        if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            continue
        if pod["metadata"].get("namespace") in skip or pod.get("spec", {}).get("nodeName") not in ready:
            continue
        c, m = pod_request(pod["spec"])
        cpu, mem = cpu - c, mem - m
    return Need(f"{len(ready)} Ready node(s) have free", cpu, mem)


def shortfall(available: Need, wanted: Iterable[Need]) -> str | None:
    """None when `wanted` fits into `available`; else a message naming both sides."""
    wanted = list(wanted)
    cpu = sum(w.cpu for w in wanted)
    mem = sum(w.memory for w in wanted)
    if cpu <= available.cpu and mem <= available.memory:
        return None
    return (f"the cluster is too small for the e2e install: it requests {cpu:g} CPU and {mem / GIB:.2f} GiB "
            f"({'; '.join(map(str, wanted))}), but {available}. Give the kind node (Docker Desktop, the VM) more "
            "CPUs and memory, or free the cluster")


def check(cluster: Cluster, manifest: Manifest, ignore_namespaces: Iterable[str] = ()) -> str | None:
    nodes = json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)
    pods = json.loads(cluster.kubectl("get", "pods", "-A", "-o", "json").stdout)
    return shortfall(free(nodes, pods, ignore_namespaces), needs(manifest))
