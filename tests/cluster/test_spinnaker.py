"""Spinnaker's kustomize path and the images it deploys, on the real node:

- every object of charts/spinnaker-values/kustomize/<env> (built as in the unit tier, against the stand-in
  of the upstream tree written from the recorded facts) passes `kubectl apply --server-side
  --dry-run=server`: the API server's schemas with strict field validation, its defaulting and admission,
  and RBAC's escalation check on clouddriver's Roles, accept them;
- a pod pulls an image from the in-cluster registry by the name the agents push to
  (registry.registry.svc.cluster.local:5000/...), which the node resolves only through its containerd
  registry hosts entry (tests/e2e/containerd-certs.d); a name without such an entry fails.
"""

from __future__ import annotations

import json

import pytest
import yaml

from jdagent.chart import spinnaker, spinnakerbase
from jdagent.cluster import registry
from tests.cluster.kube import BASE_IMAGE, delete_namespace, image_pull_failure, namespace

SOURCE = spinnaker.load()
FIELD_MANAGER = "jda-spinnaker-test"


@pytest.fixture(scope="module")
def overlay_namespaces(cluster):
    """The overlay's namespaces, created for real (a dry run of namespaced objects needs them); the ones
    this module created are deleted afterwards."""
    listed = json.loads(cluster.kubectl("get", "namespaces", "-o", "json").stdout)["items"]
    before = {n["metadata"]["name"] for n in listed}
    wanted = [SOURCE.namespace, *SOURCE.kubernetes.namespaces]
    yield wanted
    for name in wanted:
        if name not in before:
            delete_namespace(cluster, name)


@pytest.mark.parametrize("env", list(SOURCE.environments))
def test_the_overlay_passes_a_server_side_dry_run(cluster, overlay_namespaces, env, tmp_path):
    docs = spinnakerbase.build_offline(env, tmp_path, SOURCE)
    created = [d for d in docs if d["kind"] == "Namespace"]
    assert sorted(d["metadata"]["name"] for d in created) == sorted(overlay_namespaces)
    cluster.kubectl("apply", "--server-side", f"--field-manager={FIELD_MANAGER}", "-f", "-",
                    input_text=yaml.safe_dump_all(created))
    rest = [d for d in docs if d["kind"] != "Namespace"]
    proc = cluster.kubectl("apply", "--server-side", "--dry-run=server", "--validate=strict",
                           f"--field-manager={FIELD_MANAGER}", "-o", "json", "-f", "-",
                           input_text=yaml.safe_dump_all(rest), check=False, timeout=300)
    assert proc.returncode == 0, f"the API server refused the {env} overlay:\n{proc.stderr[-4000:]}"
    answered = json.loads(proc.stdout)
    items = answered.get("items", [answered])
    assert sorted((o["kind"], o["metadata"]["name"]) for o in items) == \
        sorted((d["kind"], d["metadata"]["name"]) for d in rest)
    # what the API server kept of the wiring: the token from its Secret, RBAC in the account namespaces only
    by_name = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in items}
    igor = by_name[("Deployment", SOURCE.namespace, "igor")]["spec"]["template"]["spec"]["containers"][0]
    token = SOURCE.jenkins.token
    assert {"name": token.env, "valueFrom": {"secretKeyRef": {"name": token.secret, "key": token.key}}} in igor["env"]
    assert not [k for k in by_name if k[0] in ("ClusterRole", "ClusterRoleBinding")]
    assert {k[1] for k in by_name if k[0] in ("Role", "RoleBinding")} == set(SOURCE.kubernetes.namespaces)


def test_a_pod_pulls_the_pushed_image_by_the_name_the_agents_push_to(cluster, in_cluster_registry):
    """in_cluster_registry holds the base image, pushed through the registry's API as an agent's `docker
    push` does; the kubelet pulls it as registry.registry.svc.cluster.local:5000/<image>."""
    image = BASE_IMAGE.split("/", 1)[1]
    namespaces = {"jda-node-pull": f"{registry.REGISTRY}/{image}",
                  "jda-node-pull-unmapped": f"registry.registry.svc:5000/{image}"}
    try:
        failures = {}
        for ns, reference in namespaces.items():
            namespace(cluster, ns)
            failures[ns] = image_pull_failure(cluster, ns, reference, timeout=180)
        assert failures["jda-node-pull"] is None, \
            f"the node could not pull {namespaces['jda-node-pull']}: {failures['jda-node-pull']}"
        assert failures["jda-node-pull-unmapped"], "a name without a hosts entry must not resolve on the node"
    finally:
        for ns in namespaces:
            delete_namespace(cluster, ns)
