"""A local stand-in of spinnaker/spinnaker's spinnaker-kustomize/ tree at the release tag, written from the
recorded facts (tests/unit/data/upstream/spinnaker-kustomize.yaml): the base's Deployments, Services,
ServiceAccounts, generated ConfigMaps, namespace and cluster-admin binding with the upstream names,
containers and mount paths, its redis component and overlays/config. `build_offline` runs the pinned
`kubectl kustomize` on a copy of an overlay under charts/spinnaker-values/kustomize/ whose remote targets
point at the stand-in: the unit tier builds the overlay without network, the cluster tier dry-runs it.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from jdagent import tools
from jdagent.chart import spinnaker
from jdagent.paths import REPO_ROOT

FACTS_FILE = REPO_ROOT / "tests" / "unit" / "data" / "upstream" / "spinnaker-kustomize.yaml"
# stands for the literal default password of upstream overlays/config/files/gate-local.yml
STANDIN_PASSWORD = "stand-in-for-the-upstream-literal"
STANDIN_MARK = "# stand-in written from tests/unit/data/upstream/spinnaker-kustomize.yaml (not the upstream file)\n"


class BuildError(RuntimeError):
    """kubectl kustomize refused the overlay; the message holds its own words."""


def load_facts() -> dict[str, Any]:
    facts = yaml.safe_load(FACTS_FILE.read_text())
    assert isinstance(facts, dict)
    return facts


def _write(path: Path, doc: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False)
    path.write_text(STANDIN_MARK + text if path.suffix in (".yml", ".yaml") else text)


# --- the base -----------------------------------------------------------------------------------------------
def _container(svc: str, fact: dict[str, Any], facts: dict[str, Any]) -> dict[str, Any]:
    common = facts["jvm_deployment_common"]
    container: dict[str, Any] = {
        "name": fact["container"], "image": fact["image"],
        "ports": [{"name": "http", "containerPort": fact["port"], "protocol": "TCP"}],
        "securityContext": dict(common["container_security"]),
        "volumeMounts": [{"name": common["config_volume"]["name"], "mountPath": common["config_mount"]["path"],
                          "readOnly": common["config_mount"]["readOnly"]}],
    }
    if "env" in fact:  # deck: not a JVM service
        container["env"] = [{"name": k, "value": str(v)} for k, v in fact["env"].items()]
        container["readinessProbe"] = {"tcpSocket": {"port": fact["port"]}}
        return container
    java = facts["overlay_inputs"]["jvm_resources"]["keel_java_opts"] if svc == "keel" else \
        common["env"]["JAVA_OPTS"].split(" (")[0]
    container["env"] = [{"name": "JAVA_OPTS", "value": java},
                        {"name": "SPRING_PROFILES_ACTIVE", "value": common["env"]["SPRING_PROFILES_ACTIVE"]}]
    health = "/api/v1/health" if svc == "gate" else "/health"
    container["readinessProbe"] = {"httpGet": {"path": health, "port": "http"}}
    memory = facts["overlay_inputs"]["jvm_resources"]["memory"]
    container["resources"] = {"requests": {"memory": memory}, "limits": {"memory": memory}}
    return container


def deployment(svc: str, facts: dict[str, Any]) -> dict[str, Any]:
    fact = facts["services"][svc]
    common = facts["jvm_deployment_common"]
    sources = fact.get("projected_sources") or [f"configMap {s}" for s in ("spinnaker", fact["configmap"])]
    spec: dict[str, Any] = {
        "containers": [_container(svc, fact, facts)],
        "volumes": [{"name": common["config_volume"]["name"], "projected": {
            "sources": [{"configMap": {"name": s.split()[1]}} for s in sources]}}],
    }
    if fact["serviceaccount"]:
        spec["serviceAccountName"] = fact["serviceaccount"]
        spec["securityContext"] = dict(common["pod_security"])
        spec["terminationGracePeriodSeconds"] = common["terminationGracePeriodSeconds"]
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": fact["deployment"]},
            "spec": {"replicas": common["replicas"], "template": {"spec": spec}}}


def _service(name: str, port: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"ports": [{"port": port, "protocol": "TCP", "targetPort": port}], "type": "ClusterIP"}}


def _base_service(base: Path, svc: str, facts: dict[str, Any]) -> None:
    fact = facts["services"][svc]
    folder = base / svc
    resources = ["deployment.yml", "service.yml"]
    _write(folder / "deployment.yml", deployment(svc, facts))
    _write(folder / "service.yml", _service(fact["service"], fact["port"]))
    if fact["serviceaccount"]:
        resources.append("serviceaccount.yml")
        _write(folder / "serviceaccount.yml", {"apiVersion": "v1", "kind": "ServiceAccount",
                                               "metadata": {"name": fact["serviceaccount"]}})
    for binding in facts["rbac"]:
        if binding["subject"]["name"] == fact["serviceaccount"]:
            resources.append("clusterrolebinding.yml")
            _write(folder / "clusterrolebinding.yml", {
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": binding["kind"],
                "metadata": {"name": binding["name"]},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", **binding["roleRef"]},
                "subjects": [binding["subject"]]})
    generator: dict[str, Any] = {"name": fact["configmap"]}
    file = facts["overlay_inputs"]["per_service_configmap_files"].get(svc)
    if file:
        generator["files"] = [f"files/{file}"]
        _write(folder / "files" / file, _base_file(svc, facts))
    _write(folder / "kustomization.yml", {
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": resources,
        "commonLabels": {"app.kubernetes.io/name": svc}, "configMapGenerator": [generator]})


def _base_file(svc: str, facts: dict[str, Any]) -> str:
    if svc == "clouddriver":
        account = facts["config_loading"]["clouddriver_base_file"]["account"]
        return yaml.safe_dump({"kubernetes": {"enabled": True, "primaryAccount": account,
                                              "accounts": [{"name": account, "checkPermissionsOnStartup": True}]}})
    return "// stand-in for deck's settings.js\n"


def write_base(tree: Path, facts: dict[str, Any], services: tuple[str, ...]) -> None:
    base = tree / "base"
    namespace = facts["layout"]["base"]["namespace_file"]["name"]
    _write(base / "namespace.yml", {"apiVersion": "v1", "kind": "Namespace",
                                    "metadata": {"name": namespace, "labels": {"name": namespace}}})
    urls = {svc: {"baseUrl": f"http://{svc}:{facts['services'][svc]['port']}"} for svc in services}
    _write(base / "spinnaker.yml", yaml.safe_dump({"spring.config.import": "optional:file:/opt/spinnaker/config/*/",
                                                   "services": urls}))
    for svc in services:
        _base_service(base, svc, facts)
    _write(base / "kustomization.yml", {
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": ["./namespace.yml", *(f"./{svc}" for svc in services)],
        "configMapGenerator": [{"name": facts["services"]["shared_configmap"]["name"], "files": ["spinnaker.yml"]}]})


# --- components/redis and overlays/config ------------------------------------------------------------------
def write_redis(tree: Path, facts: dict[str, Any]) -> None:
    redis = facts["overlay_inputs"]["redis_component"]
    folder = tree / "components" / "redis"
    _write(folder / "base" / "statefulset.yml", {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "redis"},
        "spec": {"serviceName": "redis", "replicas": 1, "template": {"spec": {"containers": [{
            "name": "redis", "image": "redis:5", "ports": [{"name": "redis", "containerPort": 6379}],
            "volumeMounts": [{"name": "redis", "mountPath": "/data"}]}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "redis"}, "spec": {
                "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}})
    _write(folder / "base" / "service.yml", _service("redis", 6379))
    _write(folder / "base" / "configmap.yml", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "redis"},
                                               "data": {"redis.conf": "# stand-in\n"}})
    _write(folder / "base" / "kustomization.yml", {
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": ["configmap.yml", "statefulset.yml", "service.yml"],
        "commonLabels": {"app.kubernetes.io/name": "redis"}})
    patches = []
    for svc in redis["services"]:
        _write(folder / "files" / f"{svc}.yml", "redis:\n  connection: redis://redis:6379\n")
        op = [{"op": "add", "path": redis["patch_paths"][0], "value": {"configMap": {
            "items": [{"key": f"{svc}.yml", "path": f"redis/{svc}.yml"}], "name": f"{svc}-redis"}}}]
        patches.append({"patch": yaml.safe_dump(op), "target": {"group": "apps", "version": "v1",
                                                                 "kind": "Deployment", "name": svc}})
    _write(folder / "kustomization.yml", {
        "apiVersion": "kustomize.config.k8s.io/v1alpha1", "kind": "Component", "namespace": redis["sets_namespace"],
        "resources": ["base"], "patches": patches,
        "configMapGenerator": [{"behavior": "create", "name": f"{svc}-redis", "files": [f"files/{svc}.yml"]}
                               for svc in redis["services"]]})


def _local_file(name: str, config: dict[str, Any]) -> str:
    if name == "igor-local.yml":
        return yaml.safe_dump(config["igor_local"]["values"], sort_keys=False)
    if name == "gate-local.yml":
        values = copy.deepcopy(config["gate_local"]["values"])
        values["spring"]["security"]["user"]["password"] = STANDIN_PASSWORD
        return yaml.safe_dump(values, sort_keys=False)
    return "// stand-in\n" if name.endswith(".js") else "# stand-in: comments only upstream\n"


def write_config(tree: Path, facts: dict[str, Any]) -> None:
    config = facts["overlay_inputs"]["overlays_config"]
    folder = tree / "overlays" / "config"
    for name in config["merges"].values():
        _write(folder / "files" / name, _local_file(name, config))
    _write(folder / "kustomization.yml", {
        "apiVersion": "kustomize.config.k8s.io/v1alpha1", "kind": "Component",
        "configMapGenerator": [{"behavior": "merge", "name": cm, "files": [f"files/{name}"]}
                               for cm, name in config["merges"].items()]})


def write_standin(dest: Path, src: spinnaker.Source, facts: dict[str, Any] | None = None) -> Path:
    """The stand-in tree at dest/<tree>; returns that folder."""
    facts = facts or load_facts()
    tree = dest / src.tree
    write_base(tree, facts, src.services)
    write_redis(tree, facts)
    write_config(tree, facts)
    return tree


# --- the overlay against the stand-in ----------------------------------------------------------------------
def localize(src: spinnaker.Source, dest: Path, tree: Path, overlay: Path = spinnaker.KUSTOMIZE_DIR) -> Path:
    """A copy of `overlay` at dest/kustomize whose remote targets name the stand-in `tree` instead."""
    copy = dest / "kustomize"
    shutil.copytree(overlay, copy)
    subs = (spinnaker.UPSTREAM_BASE, *spinnaker.UPSTREAM_COMPONENTS)
    for path in copy.rglob("kustomization.yaml"):
        text = path.read_text()
        for sub in subs:
            text = text.replace(src.remote(sub), os.path.relpath(tree / sub, path.parent))
        doc = yaml.safe_load(text)
        remote = [r for r in (*doc.get("resources", []), *doc.get("components", [])) if "://" in r]
        if remote:
            raise BuildError(f"{path.relative_to(copy)}: no stand-in for the remote targets {remote}")
        path.write_text(text)
    return copy


def build(directory: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize` of a directory with the pinned kubectl: its objects."""
    proc = subprocess.run([str(tools.find_kubectl()), "kustomize", str(directory)], capture_output=True, text=True,
                          timeout=180)
    if proc.returncode != 0:
        raise BuildError(f"kubectl kustomize {directory} failed:\n{proc.stderr.strip()}")
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def build_offline(env: str, work: Path, src: spinnaker.Source | None = None,
                  overlay: Path = spinnaker.KUSTOMIZE_DIR) -> list[dict[str, Any]]:
    """The objects of kustomize/<env> (as committed, or `overlay`) built against the stand-in tree."""
    src = src or spinnaker.load()
    tree = write_standin(work / "upstream", src)
    return build(localize(src, work, tree, overlay) / env)
