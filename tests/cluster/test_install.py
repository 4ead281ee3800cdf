"""Every ci/*-values.yaml installs through the real API server (helm 4; a subset with helm 3), which
runs admission (Pod Security on the agent namespace, RBAC escalation checks) and the CRDs' own
validation, CEL rules included, on what the chart renders. `helm upgrade` keeps the generated admin
password and reload token (the `lookup` path), and `helm uninstall` leaves only the controller's
JENKINS_HOME claim, as the chart README says."""

from __future__ import annotations

import base64
import json

import pytest
import yaml

from jdagent.chart.render import render
from jdagent.paths import CHART_DIR
from tests.cluster.kube import agent_namespace, delete_namespace, get_json, helm, kept_namespaces, namespace, wait_for

CASES = sorted((CHART_DIR / "ci").glob("*-values.yaml"))
HELM3_CASES = {"default-values.yaml", "minimal-values.yaml", "agent-namespace-values.yaml"}
RELEASE = "ci"
FULLNAME = f"{RELEASE}-jenkins-dind-agent"
# objects a namespace has without anyone installing anything
BUILTIN = {"serviceaccount/default", "configmap/kube-root-ca.crt"}
SKIP_KINDS = {"events", "events.events.k8s.io", "endpoints", "endpointslices.discovery.k8s.io",
              "controllerrevisions.apps", "leases.coordination.k8s.io"}


def namespaces_of(case, release_ns: str) -> tuple[str, ...]:
    """The release namespace, then those its agents run in (the agent namespace, the push namespace), as
    the chart renders them for this case."""
    clouds = render(values=[case], namespace=release_ns, release=RELEASE).kubernetes_clouds()
    return tuple(dict.fromkeys([release_ns, *(c["namespace"] for c in clouds)]))


def shares_namespace(values: dict) -> bool:
    return bool(((values.get("agent") or {}).get("namespace") or {}).get("sameAsController"))


def everything(cluster, ns: str) -> set[str]:
    kinds = cluster.kubectl("api-resources", "--verbs=list", "--namespaced", "-o", "name").stdout.split()
    wanted = ",".join(k for k in kinds if k not in SKIP_KINDS)
    names = cluster.kubectl("-n", ns, "get", wanted, "-o", "name", "--ignore-not-found", check=False).stdout.split()
    return {n.replace(".apps/", "/").replace(".rbac.authorization.k8s.io/", "/")
            .replace(".networking.k8s.io/", "/").replace(".policy/", "/") for n in names} - BUILTIN


def rendered(manifest: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(manifest) if d]


def creates_namespace(case) -> bool:
    values = yaml.safe_load(case.read_text()) or {}
    agent_ns = (values.get("agent") or {}).get("namespace") or {}
    return agent_ns.get("create", True) and not agent_ns.get("sameAsController")


def install_case(cluster, version: str, case) -> tuple[str, tuple[str, ...], list[dict]]:
    """Install `case` into a fresh release namespace that enforces Pod Security restricted, or privileged
    where the case keeps the agents beside the controller."""
    values = yaml.safe_load(case.read_text()) or {}
    ns = f"i{version}-{case.stem.removesuffix('-values')}"[:50]
    namespace(cluster, ns, level="privileged" if shares_namespace(values) else "restricted")
    helm(cluster, version, "install", RELEASE, str(CHART_DIR), "-n", ns, "-f", str(case), "--timeout", "2m")
    manifest = helm(cluster, version, "get", "manifest", RELEASE, "-n", ns).stdout
    return ns, namespaces_of(case, ns), rendered(manifest)


def assert_workload_pods_created(cluster, release_ns: str, objects: list[dict]) -> None:
    """Pod Security admitted the pods of every StatefulSet and Deployment of the release namespace: it
    admits workload objects with a warning and refuses their pods, which the controllers report as
    FailedCreate events. (A case may keep a pod from being created for another reason, such as a
    PriorityClass this cluster lacks: that is reported too, but only a Pod Security refusal fails.)"""
    workloads = [o for o in objects if o["kind"] in ("StatefulSet", "Deployment")
                 and o["metadata"].get("namespace", release_ns) == release_ns]
    expected = sum(int(o["spec"].get("replicas", 1)) for o in workloads)

    def failed_creates() -> list[str]:
        events = get_json(cluster, "-n", release_ns, "get", "events", "--field-selector", "reason=FailedCreate")
        return [e["message"] for e in events["items"]]

    def settled() -> bool:
        pods = get_json(cluster, "-n", release_ns, "get", "pods")["items"]
        return len(pods) >= expected or bool(failed_creates())

    wait_for(f"the pods of {[o['metadata']['name'] for o in workloads]} or the controllers' answer", settled,
             timeout=90, every=2)
    refused = [m for m in failed_creates() if "PodSecurity" in m]
    assert not refused, f"Pod Security refused pods in {release_ns}: {refused}"


def assert_admitted(cluster, release_ns: str, objects: list[dict]) -> None:
    """The API server holds every object helm rendered (kubectl resolves each one's scope itself)."""
    rows = cluster.kubectl("api-resources", "--namespaced=false", "--no-headers").stdout.splitlines()
    cluster_scoped = {row.split()[-1] for row in rows if row.strip()}
    for obj in objects:
        if obj["kind"] not in cluster_scoped:
            obj["metadata"].setdefault("namespace", release_ns)
    live = json.loads(cluster.kubectl("get", "-f", "-", "-o", "json", input_text=yaml.safe_dump_all(objects)).stdout)
    items = live["items"] if live.get("kind") == "List" else [live]
    assert [(o["kind"], o["metadata"]["name"]) for o in items] == \
        [(o["kind"], o["metadata"]["name"]) for o in objects]
    for obj in items:
        assert obj["metadata"]["uid"], obj["metadata"]
        assert obj["metadata"]["annotations"]["meta.helm.sh/release-name"] == RELEASE, obj["metadata"]


def release_status(cluster, version: str, ns: str) -> str:
    return json.loads(helm(cluster, version, "status", RELEASE, "-n", ns, "-o", "json").stdout)["info"]["status"]


def uninstall_and_check(cluster, version: str, release_ns: str, namespaces: tuple[str, ...],
                        created: bool = False) -> None:
    helm(cluster, version, "uninstall", RELEASE, "-n", release_ns, "--wait", "--timeout", "3m")
    if created:
        # the agent namespace the release created outlives it (helm.sh/resource-policy: keep): the
        # agents' claims and whatever else lives there are not removed by an uninstall
        assert kept_namespaces(cluster, release_ns) == list(namespaces[1:]), namespaces
    left = {ns: everything(cluster, ns) for ns in namespaces
            if cluster.kubectl("get", "namespace", ns, check=False).returncode == 0}
    allowed = {f"persistentvolumeclaim/jenkins-home-{FULLNAME}-0"}
    for ns, names in left.items():
        stray = {n for n in names if not n.startswith("pod/")} - allowed
        assert not stray, f"helm uninstall left {sorted(stray)} in {ns}"


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_every_ci_values_file_installs_and_uninstalls_with_helm_4(cluster, crds, case):
    ns, namespaces, objects = install_case(cluster, "4", case)
    try:
        assert release_status(cluster, "4", ns) == "deployed"
        assert_admitted(cluster, ns, objects)
        # the release namespace enforces restricted (unless the agents share it): its pods were admitted
        assert_workload_pods_created(cluster, ns, objects)
        for other in namespaces[1:]:
            labels = get_json(cluster, "get", "namespace", other)["metadata"]["labels"]
            assert labels.get("pod-security.kubernetes.io/enforce") == "privileged", labels
        uninstall_and_check(cluster, "4", ns, namespaces, creates_namespace(case))
    finally:
        helm(cluster, "4", "uninstall", RELEASE, "-n", ns, check=False)
        for other in reversed(namespaces):
            delete_namespace(cluster, other)


@pytest.mark.parametrize("case", [c for c in CASES if c.name in HELM3_CASES], ids=lambda p: p.stem)
def test_a_subset_installs_with_helm_3(cluster, crds, case):
    ns, namespaces, objects = install_case(cluster, "3", case)
    try:
        assert release_status(cluster, "3", ns) == "deployed"
        assert_admitted(cluster, ns, objects)
        uninstall_and_check(cluster, "3", ns, namespaces, creates_namespace(case))
    finally:
        helm(cluster, "3", "uninstall", RELEASE, "-n", ns, check=False)
        for other in reversed(namespaces):
            delete_namespace(cluster, other)


def _secret(cluster, ns: str, name: str) -> dict[str, str]:
    data = get_json(cluster, "-n", ns, "get", "secret", name)["data"]
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


def test_upgrade_keeps_the_generated_password_and_reload_token(cluster):
    """Also the README's migration: a release of the old layout (agents beside the controller) upgraded
    to the default moves the agents' Role and ServiceAccount into the agent namespace it creates."""
    ns = "upgrade"
    agents = agent_namespace(ns, RELEASE)
    namespace(cluster, ns, privileged=True)
    try:
        reload = ("--set", "controller.jcasc.reload.enabled=true")
        helm(cluster, "4", "install", RELEASE, str(CHART_DIR), "-n", ns, *reload,
             "--set", "agent.namespace.sameAsController=true")
        assert cluster.kubectl("get", "namespace", agents, check=False).returncode != 0
        assert get_json(cluster, "-n", ns, "get", "role", f"{FULLNAME}-agents")["metadata"]["name"]
        secrets = [s["metadata"]["name"] for s in get_json(cluster, "-n", ns, "get", "secrets")["items"]
                   if s["metadata"].get("labels", {}).get("app.kubernetes.io/instance") == RELEASE]
        assert len(secrets) == 2, secrets  # the admin password and the reload token
        before = {name: _secret(cluster, ns, name) for name in secrets}
        assert all(v for data in before.values() for v in data.values())
        helm(cluster, "4", "upgrade", RELEASE, str(CHART_DIR), "-n", ns, *reload, "--set", "agent.containerCap=12")
        after = {name: _secret(cluster, ns, name) for name in secrets}
        assert after == before
        labels = get_json(cluster, "get", "namespace", agents)["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "privileged", labels
        for kind in ("role", "rolebinding", "serviceaccount"):
            name = f"{FULLNAME}-agent" if kind == "serviceaccount" else f"{FULLNAME}-agents"
            assert get_json(cluster, "-n", agents, "get", kind, name)["metadata"]["name"] == name
            assert cluster.kubectl("-n", ns, "get", kind, name, check=False).returncode != 0, (kind, "left behind")
        history = json.loads(helm(cluster, "4", "history", RELEASE, "-n", ns, "-o", "json").stdout)
        assert [h["revision"] for h in history] == [1, 2] and history[-1]["status"] == "deployed", history
        # without the live Secret, a fresh render would have drawn new values: lookup did the keeping
        fresh = helm(cluster, "4", "template", RELEASE, str(CHART_DIR), "-n", ns, *reload).stdout
        drawn = {d["metadata"]["name"]: d for d in rendered(fresh) if d["kind"] == "Secret"}
        for name in secrets:
            assert {k: base64.b64decode(v).decode() for k, v in drawn[name]["data"].items()} != before[name]
    finally:
        helm(cluster, "4", "uninstall", RELEASE, "-n", ns, check=False)
        delete_namespace(cluster, agents)
        delete_namespace(cluster, ns)
