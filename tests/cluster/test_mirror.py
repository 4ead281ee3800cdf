"""The pull-through mirror with several agents at once: 1, 4 and 8 agent pods start together (with small
requests, so that eight fit this 2-core node), each pulls the same image at the same moment through the
chart's mirror (dockerd's --registry-mirror, by the Service's DNS name), and the upstream's own access
log (a second local registry) says how often the mirror fetched each blob.

The mirror runs as the chart ships it: the nginx front (Debian's nginx standing in for the nginx image)
before Distribution at the chart's pin, built from its module. Distribution alone fetches a blob again
for every agent that asks while it is still fetching (3.1.1 with mirror.front.enabled=false, 8 agents,
an 8 MiB layer: 4 and 7 GETs for the two blobs; the 2.8 stand-in: 11 and 12); the front's cache lock is
what makes it one.

Each round pulls a repository the mirror has never seen, so every round starts with a cold miss.
Figures go to .artifacts/bench/cluster-fanin.json and into the printed table.
"""

from __future__ import annotations

import docker
import pytest

from jdagent.chart.render import render
from jdagent.cluster import fanin
from jdagent.engine.agentpod import mirror_values
from jdagent.paths import ARTIFACTS_DIR, CHART_DIR
from tests.cluster.kube import agent_namespace, delete_namespace, helm, namespace, standin_values, values_file

# the default layout: the mirror in the release namespace (restricted), the agents in their own
RELEASE_NS, RELEASE = "fanin", "fanin"
NS = agent_namespace(RELEASE_NS, RELEASE)
ROUNDS = (1, 4, 8)


@pytest.fixture(scope="module")
def rounds(cluster, standins, mirror_registry, in_cluster_registry,
           tmp_path_factory) -> tuple[list[fanin.Round], fanin.Rerun]:
    namespace(cluster, RELEASE_NS, level="restricted")
    values = standin_values(standins, agent=fanin.SMALL_REQUESTS, **mirror_values(
        standins, f"http://{in_cluster_registry}", registry_image=mirror_registry, persistence={"size": "1Gi"}))
    path = values_file(tmp_path_factory.mktemp("fanin"), values)
    helm(cluster, "4", "install", RELEASE, str(CHART_DIR), "-n", RELEASE_NS, "-f", str(path))
    cluster.kubectl_wait(300, "-n", RELEASE_NS, "rollout", "status", f"deployment/{RELEASE}-jenkins-dind-agent-mirror")
    pod = render(values=[path], namespace=RELEASE_NS, release=RELEASE, kube_version="1.36.3").agent_pod(None)
    client = docker.from_env(version="auto", timeout=600)

    push, upstream_log = fanin.in_cluster_upstream(cluster, client)

    try:
        done, rerun = fanin.run_rounds(cluster, pod, NS, ROUNDS, push, upstream_log)
    finally:
        helm(cluster, "4", "uninstall", RELEASE, "-n", RELEASE_NS, check=False)
        delete_namespace(cluster, NS)
        delete_namespace(cluster, RELEASE_NS)
    print("\n" + fanin.table(done))
    print(f"a new agent pulling round 1's image again: upstream blob GETs {rerun.warm}; the same image from "
          f"another repository: {rerun.other_repository} ({rerun.other_repository_manifests} manifest GETs)")
    fanin.write(done, ARTIFACTS_DIR / "bench" / "cluster-fanin.json")
    return done, rerun


def test_every_agent_pulls_through_the_mirror_and_a_warm_mirror_costs_the_upstream_nothing(rounds):
    done, rerun = rounds
    single = done[0]
    assert single.agents == 1
    assert single.upstream_blob_fetches, "the upstream never served a blob: the pull did not go through the mirror"
    # Distribution 3.x streams a missed blob to the client and into its storage at once (2.8 fetched twice)
    assert set(single.upstream_blob_fetches.values()) == {1}, single.upstream_blob_fetches
    for r in done:
        assert len(r.pull_seconds) == r.agents and len(r.startups) == r.agents
        assert r.upstream_manifest_fetches >= 1, r.summary()
    assert rerun.warm and set(rerun.warm.values()) == {0}, rerun.warm


def test_the_same_blobs_under_another_repository_cost_the_upstream_only_its_manifest(rounds):
    _, rerun = rounds
    # a second repository with the same layers needs no blob fetch: the front keys its cache by digest, and
    # Distribution 3.1.1 alone (measured with mirror.front.enabled=false) also serves a blob it has stored
    assert rerun.other_repository and set(rerun.other_repository.values()) == {0}, rerun.other_repository
    assert rerun.other_repository_manifests == 1


def test_agents_start_together_and_report_their_start_up_from_the_kubelet(rounds):
    for r in rounds[0]:
        for s in r.startups:
            # the kubelet's order: dind starts, its startupProbe passes, then jnlp starts, then Ready
            assert s.created <= s.dind_started <= s.dind_ready <= s.jnlp_started <= s.ready, s
        assert r.idle_memory_mib and all(m > 0 for m in r.idle_memory_mib), r.idle_memory_mib


def test_concurrent_misses_cost_the_upstream_one_fetch_per_blob(rounds):
    done, _ = rounds
    merged = {r.agents: r.upstream_blob_fetches for r in done}
    # every round's image is its own (one layer, one config): each blob fetched once however many agents
    assert all(len(f) == 2 and set(f.values()) == {1} for f in merged.values()), merged
