"""Disk: a build that writes past `agent.dind.dataSizeLimit` (the sizeLimit of the emptyDir at
/var/lib/docker) gets its agent pod evicted by the kubelet, and the test reads that as an eviction
from the pod's status and events. The kubelet measures emptyDir usage periodically, not on every
write (every volumeStatsAggPeriod, jittered up to twice that: 10 s on this node, jdagent.cluster.local.config,
where the kubelet's default is 1m), so the build gets past the limit first; the test samples the volume's
size from the node and reports how far it got."""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid
from pathlib import Path

import yaml

from jdagent.chart.render import render
from jdagent.cluster.local.config import Layout
from jdagent.paths import CHART_DIR
from tests.cluster.kube import (
    BASE_IMAGE,
    agent_namespace,
    delete_namespace,
    find_json,
    get_json,
    helm,
    namespace,
    standin_values,
    values_file,
    wait_for,
)

# the release namespace enforces restricted; the agents run in the chart's the chart's default agent namespace
RELEASE_NS, RELEASE = "disk", "disk"
NS = agent_namespace(RELEASE_NS, RELEASE)
LIMIT_MI = 512
WRITE_MI_PER_S = 32


def folder_mib(path: Path) -> float:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total / 2**20


def test_a_build_writing_past_the_data_size_limit_gets_the_pod_evicted(cluster, standins, in_cluster_registry,
                                                                     tmp_path):
    namespace(cluster, RELEASE_NS, level="restricted")
    values = values_file(tmp_path, standin_values(standins, agent={"dind": {"dataSizeLimit": f"{LIMIT_MI}Mi"}}))
    try:
        helm(cluster, "4", "install", RELEASE, str(CHART_DIR), "-n", RELEASE_NS, "-f", str(values))
        pod = render(values=[values], namespace=RELEASE_NS, release=RELEASE, kube_version="1.36.3").agent_pod(None)
        data = next(v for v in pod["spec"]["volumes"] if v["name"] == "agent-dind-datasizelimit")
        assert data["emptyDir"]["sizeLimit"] == f"{LIMIT_MI}Mi"
        name = f"disk-{uuid.uuid4().hex[:5]}"
        pod["metadata"] = {**pod.get("metadata", {}), "name": name, "namespace": NS}
        cluster.kubectl("apply", "-f", "-", input_text=yaml.safe_dump(pod))
        cluster.kubectl_wait(300, "-n", NS, "wait", "--for=condition=Ready", f"pod/{name}")
        uid = get_json(cluster, "-n", NS, "get", "pod", name)["metadata"]["uid"]
        volumes = Layout(cluster.name).kubelet_root / "pods" / uid / "volumes"
        volume = volumes / "kubernetes.io~empty-dir" / "agent-dind-datasizelimit"
        assert volume.is_dir(), volume

        samples: list[tuple[float, float]] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                samples.append((time.monotonic(), folder_mib(volume) if volume.exists() else 0.0))
                stop.wait(2)

        sampler = threading.Thread(target=sample, daemon=True)
        started = time.monotonic()
        sampler.start()
        # a build step that writes steadily, far past the limit (4x), inside a container dind runs
        cluster.kubectl("-n", NS, "exec", name, "-c", "jnlp", "--", "docker", "run", "-d", "--name", "writer",
                        BASE_IMAGE, "sh", "-c", f"i=0; while [ $i -lt {LIMIT_MI * 4 // WRITE_MI_PER_S} ]; do "
                        f"dd if=/dev/zero of=/f$i bs=1M count={WRITE_MI_PER_S} 2>/dev/null; i=$((i+1)); sleep 1; done; "
                        "sleep 600")

        def evicted() -> dict | None:
            found = find_json(cluster, "-n", NS, "get", "pod", name)
            return found if found and found["status"].get("reason") == "Evicted" else None

        status = wait_for("the kubelet to evict the pod", evicted, timeout=300, every=2)["status"]
        stop.set()
        sampler.join(10)
        seconds = time.monotonic() - started
        events = get_json(cluster, "-n", NS, "get", "events", "--field-selector",
                          f"involvedObject.name={name}")["items"]
        eviction = [e for e in events if e["reason"] == "Evicted"]
        peak = max(size for _, size in samples)
        crossed = next((t for t, size in samples if size > LIMIT_MI), None)
        print(f"\n{name}: dataSizeLimit {LIMIT_MI}Mi, writing {WRITE_MI_PER_S} MiB/s: evicted {seconds:.0f} s after "
              f"the writes began, {'%.0f s' % (time.monotonic() - crossed) if crossed else '?'} after usage passed "
              f"the limit; the volume peaked at {peak:.0f} MiB ({peak / LIMIT_MI:.1f}x the limit); the kubelet: "
              f"{status.get('message', '')!r}")
        assert status["phase"] == "Failed", status
        assert eviction and eviction[0]["source"].get("component", "kubelet") == "kubelet", events
        # the kubelet's own message names the volume, and the volume's name names the value to raise
        # (the Kubernetes plugin prints this message into the build's console)
        assert status.get("message", "").startswith(
            f'Usage of EmptyDir volume "agent-dind-datasizelimit" exceeds the limit "{LIMIT_MI}Mi"'), status
        assert peak > LIMIT_MI, "the volume never passed the limit before the eviction"
    finally:
        helm(cluster, "4", "uninstall", RELEASE, "-n", RELEASE_NS, check=False)
        delete_namespace(cluster, NS)
        delete_namespace(cluster, RELEASE_NS)
