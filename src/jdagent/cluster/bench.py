"""Cluster figures for `tox -e bench` (printed, and written to .artifacts/bench/cluster.json), measured
on a local cluster of its own that it stops afterwards:

- each pinned binary's build time (as recorded when it was built) and the time to find it cached;
- cluster start until the node is Ready (and CoreDNS answers);
- an agent pod's start-up from the kubelet's pod status: created, dind started, dind ready (its
  startupProbe passed), jnlp started, Ready, first build done, for vfs and overlay2, cold and
  prewarmed, and the same build on the host engine as the floor (jdagent.cluster.firstbuild);
- 1, 4 and 8 agent pods at once: p50/p95 time to Ready, idle working set per pod, and how often the
  mirror fetched each blob from its upstream (jdagent.cluster.fanin).

Where the local cluster cannot run (not Linux, not root, no Go...), it says why and exits 0.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import docker
import yaml

from jdagent import gobuild, tools
from jdagent.chart.render import deep_merge, render
from jdagent.cluster import fanin, firstbuild
from jdagent.cluster.local import addons, pins
from jdagent.cluster.local import images as local_images
from jdagent.cluster.local.config import Layout
from jdagent.cluster.local.node import LocalProvider, Node
from jdagent.cluster.portforward import loopback_without_proxy, port_forward
from jdagent.cluster.provider import log
from jdagent.engine import agentpod, images, registry
from jdagent.paths import ARTIFACTS_DIR, CHART_DIR

NAME = "jda-bench"
NS = "bench"
COUNTS = (1, 4, 8)


def builds() -> list[dict]:
    rows = []
    for program in pins.PROGRAMS + pins.TOOLS:
        began = time.monotonic()
        folder = gobuild.build(program)
        rows.append({"program": program.name, "version": program.version,
                     "built_s": gobuild.built_seconds(folder), "cached_s": round(time.monotonic() - began, 2)})
    return rows


def main() -> int:
    provider = LocalProvider()
    reason = provider.missing()
    if reason:
        print(f"cluster bench skipped: {reason}")
        return 0
    loopback_without_proxy()
    built = builds()
    cluster, _ = provider.up(NAME)
    try:
        ready_s = Node(Layout(NAME)).state.get("ready_seconds")
        client = docker.from_env(version="auto", timeout=600)
        standins = images.ensure_all(client)
        for image in standins.values():
            provider.load_image(cluster, image)
        mirror_image = local_images.ensure_mirror_registry()
        provider.load_image(cluster, mirror_image)
        base = addons.seeded_registry(cluster, standins["registry"], standins["busybox"])
        cluster.kubectl("create", "namespace", NS)
        cluster.kubectl("label", "namespace", NS, "pod-security.kubernetes.io/enforce=restricted")
        values = deep_merge(agentpod.standin_overrides(standins), {
            "agent": {**fanin.SMALL_REQUESTS, "dind": {**fanin.SMALL_REQUESTS["dind"],
                                                       "insecureRegistries": [addons.REGISTRY]}},
            "exampleJob": {"baseImage": base},
            **agentpod.mirror_values(standins, f"http://{addons.REGISTRY}", registry_image=mirror_image,
                                     persistence={"size": "1Gi"})})
        path = ARTIFACTS_DIR / "bench" / "cluster-values.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(values))
        helm = str(tools.find_helm("4"))
        subprocess.run([helm, "--kubeconfig", str(cluster.kubeconfig), "install", NS, str(CHART_DIR), "-n", NS,
                        "-f", str(path)], check=True, capture_output=True, text=True, timeout=600)
        cluster.kubectl_wait(300, "-n", NS, "rollout", "status", f"deployment/{NS}-jenkins-dind-agent-mirror")
        manifest = render(values=[path], namespace=NS, release=NS, kube_version=pins.KUBERNETES.lstrip("v"))
        pod = manifest.agent_pod(None)

        push, upstream_log = fanin.in_cluster_upstream(cluster, client)

        rounds, rerun = fanin.run_rounds(cluster, pod, manifest.kubernetes_cloud()["namespace"], COUNTS, push,
                                         upstream_log)

        def push_base(image: str, repository: str) -> str:
            with port_forward(cluster, "registry", "svc/registry", 5000) as port:
                registry.push_to_loopback(client, image, port, repository, "1")
            return f"{addons.REGISTRY}/{repository}:1"

        first = firstbuild.measure(cluster, lambda image: provider.load_image(cluster, image), client, standins,
                                   values, NS, NS, push_base, pins.KUBERNETES.lstrip("v"))
    finally:
        provider.delete(NAME)
    single = rounds[0].startups[0]
    breakdown = {"dind_started_s": single.dind_started - single.created,
                 "dind_ready_s": single.dind_ready - single.created,
                 "jnlp_started_s": single.jnlp_started - single.created, "ready_s": single.to_ready}
    print("\n## Cluster: binaries\n\n| program | version | built in | found cached in |\n|---|---|---:|---:|")
    for row in built:
        print(f"| {row['program']} | {row['version']} | {row['built_s']} s | {row['cached_s']} s |")
    print(f"\nCluster start until the node is Ready (CoreDNS included): {ready_s} s")
    print("\n## One agent pod, from the kubelet's status (1 s resolution), to its first build\n")
    print(firstbuild.table(first))
    print("\n## Agent pods started together, pulling one image through the mirror\n")
    print(fanin.table(rounds))
    print(f"\nA later agent pulling the first image again cost the upstream {sum(rerun.warm.values())} blob GETs; "
          f"the same image from another repository {sum(rerun.other_repository.values())} blob GETs "
          f"({rerun.other_repository_manifests} manifest GET).")
    out = ARTIFACTS_DIR / "bench" / "cluster.json"
    out.write_text(json.dumps({"builds": built, "ready_seconds": ready_s, "agent_pod": breakdown, "first_build": first,
                               "fanin": [r.summary() for r in rounds], "warm_pull_blob_gets": rerun.warm,
                               "other_repository_blob_gets": rerun.other_repository}, indent=2) + "\n")
    log(f"figures written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
