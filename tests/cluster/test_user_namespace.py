"""agent.hostUsers=false on the real node: the chart's agent pod starts in a user namespace of its own
(the kernel's uid_map of dind is not the identity), dockerd runs there as privileged-in-userns, and on a
cgroup v2 node a build container runs. On a cgroup v1 node the build fails with the kernel's permission
error on the v1 hierarchy (checked), and the test skips naming that; a node that cannot give a pod a
user namespace at all is reported with the kubelet's event."""

from __future__ import annotations

import pytest
import yaml

from jdagent.chart.render import render
from jdagent.paths import CHART_DIR
from tests.cluster.kube import (
    BASE_IMAGE,
    agent_namespace,
    delete_namespace,
    find_json,
    helm,
    namespace,
    standin_values,
    values_file,
    wait_for,
)

# the default layout: release namespace enforcing restricted, the agents in the chart's default agent namespace
RELEASE_NS, RELEASE = "userns", "ci"
NS = agent_namespace(RELEASE_NS, RELEASE)


def test_an_agent_pod_with_host_users_false_runs_dockerd_in_its_own_user_namespace(cluster, standins,
                                                                                    in_cluster_registry, tmp_path):
    namespace(cluster, RELEASE_NS, level="restricted")
    values = standin_values(standins, agent={"hostUsers": False})
    path = values_file(tmp_path, values)
    try:
        helm(cluster, "4", "install", RELEASE, str(CHART_DIR), "-n", RELEASE_NS, "-f", str(path))
        pod = render(values=[path], namespace=RELEASE_NS, release=RELEASE, kube_version="1.36.3").agent_pod(None)
        assert pod["spec"]["hostUsers"] is False
        pod["metadata"] = {**pod.get("metadata", {}), "name": "userns-agent", "namespace": NS}
        cluster.kubectl("apply", "-f", "-", input_text=yaml.safe_dump(pod))

        def state():
            live = find_json(cluster, "-n", NS, "get", "pod", "userns-agent") or {}
            if live.get("status", {}).get("phase") == "Running" and all(
                    c.get("ready") for c in live["status"].get("containerStatuses", [])):
                return "running"
            events = find_json(cluster, "-n", NS, "get", "events", "--field-selector",
                               "involvedObject.name=userns-agent") or {"items": []}
            failed = [e["message"] for e in events["items"] if e["type"] == "Warning"
                      and any(w in e["message"].lower() for w in ("user namespace", "idmap", "userns"))]
            return failed[0] if failed else None

        outcome = wait_for("the agent pod to run or the kubelet to refuse its user namespace", state, timeout=300,
                           every=3)
        if outcome != "running":
            pytest.skip(f"this node cannot give a pod a user namespace (the kubelet: {outcome[:200]})")
        uid_map = cluster.kubectl("-n", NS, "exec", "userns-agent", "-c", "dind", "--", "cat", "/proc/self/uid_map")
        inside, outside, count = uid_map.stdout.split()[:3]
        assert inside == "0" and outside != "0", uid_map.stdout
        fs = cluster.kubectl("-n", NS, "exec", "userns-agent", "-c", "dind", "--", "stat", "-fc", "%T",
                             "/sys/fs/cgroup").stdout.strip()
        built = cluster.kubectl("-n", NS, "exec", "userns-agent", "-c", "jnlp", "--", "docker", "run", "--rm",
                                BASE_IMAGE, "id", "-u", check=False)
        if fs != "cgroup2fs":
            # cgroup v1: the hierarchies belong to the node's root, which the pod's user namespace is not, so
            # dockerd cannot make its containers' cgroups; the kernel says so, and the chart README too
            assert built.returncode != 0 and "permission denied" in built.stderr, (built.stdout, built.stderr)
            assert "/sys/fs/cgroup/" in built.stderr, built.stderr
            pytest.skip(f"dind ran in a user namespace (uid_map 0 -> {outside}, {count} ids), but this node's "
                        f"cgroups are v1 ({fs} at /sys/fs/cgroup), where dockerd in a user namespace cannot create "
                        f"its containers' cgroups: {built.stderr.strip().splitlines()[-2][-120:]}; builds with "
                        "agent.hostUsers=false need a cgroup v2 node")
        assert built.returncode == 0 and built.stdout.strip() == "0", (built.stdout, built.stderr)
        print(f"\ndind's uid_map: 0 -> {outside} ({count} ids); a build container ran as uid 0 inside it")
    finally:
        helm(cluster, "4", "uninstall", RELEASE, "-n", RELEASE_NS, check=False)
        delete_namespace(cluster, NS)
        delete_namespace(cluster, RELEASE_NS)
