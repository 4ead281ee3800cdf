"""Queries over rendered objects: by kind/name, containers by name, the JCasC document and the agent
pod spec exactly as the JCasC pod template's `yaml:` carries it.

Rendered manifests are cached and shared: treat everything returned here as read-only.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from jdagent.chart import k8splugin, yamlload

Obj = dict[str, Any]


class ManifestError(LookupError):
    """The rendered chart does not hold what was asked for."""


@dataclass(frozen=True)
class Manifest:
    objects: tuple[Obj, ...]
    text: str = field(repr=False, default="")

    @classmethod
    def from_yaml(cls, text: str) -> Manifest:
        docs = tuple(d for d in yamlload.load_all(text) if d)
        return cls(objects=docs, text=text)

    def __iter__(self) -> Iterator[Obj]:
        return iter(self.objects)

    def all(self, kind: str) -> list[Obj]:
        return [o for o in self.objects if o.get("kind") == kind]

    def get(self, kind: str, name: str | None = None, suffix: str | None = None,
            namespace: str | None = None) -> Obj:
        """The one object of this kind (and exact name, or name ending with suffix; in `namespace`)."""
        found = [
            o for o in self.all(kind)
            if (name is None or o["metadata"]["name"] == name)
            and (suffix is None or o["metadata"]["name"].endswith(suffix))
            and (namespace is None or o["metadata"].get("namespace") == namespace)
        ]
        if len(found) != 1:
            names = [o["metadata"]["name"] for o in self.all(kind)]
            raise ManifestError(f"expected one {kind} (name={name}, suffix={suffix}), found {len(found)} among {names}")
        return found[0]

    def jcasc_files(self) -> dict[str, str]:
        """file name -> text of every file in the JCasC directory (the controller's -casc ConfigMap)."""
        data: dict[str, str] = self.get("ConfigMap", suffix="-casc")["data"]
        return data

    def jcasc(self) -> Obj:
        """The chart's own JCasC document (jenkins.yaml in the JCasC directory)."""
        return yamlload.load(self.jcasc_files()["jenkins.yaml"])

    def kubernetes_clouds(self) -> list[Obj]:
        """Every Kubernetes cloud of the chart's JCasC, in order (the first is the podTemplate default)."""
        return [c["kubernetes"] for c in self.jcasc()["jenkins"]["clouds"] if "kubernetes" in c]

    def kubernetes_cloud(self, name: str = "kubernetes") -> Obj:
        """The chart's cloud (`kubernetes`), or the push cloud (`kubernetes-push`, agent.registry.push)."""
        kube = [c for c in self.kubernetes_clouds() if c.get("name") == name]
        if len(kube) != 1:
            raise ManifestError(f"expected one kubernetes cloud named {name!r} in JCasC, found {len(kube)}")
        return kube[0]

    def push_pod(self) -> Obj:
        """The agent Pod of the push template (agent.registry.push): the only one with registry credentials."""
        [template] = self.kubernetes_cloud("kubernetes-push")["templates"]
        return yamlload.load(template["yaml"])

    def pod_template(self, name: str | None = None) -> Obj:
        """The chart's dind pod template (the first), or the template called `name`."""
        templates = self.kubernetes_cloud()["templates"]
        if name is None:
            return templates[0]
        found = [t for t in templates if t["name"] == name]
        if len(found) != 1:
            raise ManifestError(f"expected one pod template {name!r}, found {[t['name'] for t in templates]}")
        return found[0]

    def agent_pod(self, template: str | None = None) -> Obj:
        """The agent Pod of a template as the Kubernetes plugin builds it from the JCasC yaml: the chart's
        dind template, or an extra template (with inheritFrom merged as the plugin merges it)."""
        if template is None:
            return yamlload.load(self.pod_template()["yaml"])
        return k8splugin.effective_pod(self.kubernetes_cloud()["templates"], template, yamlload.load)

    def test_pod(self) -> Obj:
        pods = [p for p in self.all("Pod") if p["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"]
        if len(pods) != 1:
            raise ManifestError(f"expected one helm test pod, found {len(pods)}")
        return pods[0]

    def workloads(self) -> Iterator[tuple[Obj, Obj]]:
        """(object, pod spec) for every rendered pod spec, every JCasC agent pod template included."""
        for o in self.objects:
            spec = pod_spec_of(o)
            if spec is not None:
                yield o, spec
        for template in self.kubernetes_cloud()["templates"]:
            agent = self.agent_pod(template["name"])
            yield agent, agent["spec"]
        if any(c.get("name") == "kubernetes-push" for c in self.kubernetes_clouds()):
            push = self.push_pod()
            yield push, push["spec"]


def pod_spec_of(obj: Obj) -> Obj | None:
    kind = obj.get("kind")
    if kind == "Pod":
        return obj["spec"]
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        return obj["spec"]["template"]["spec"]
    if kind == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return None


def all_containers(spec: Obj) -> list[Obj]:
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def container(spec: Obj, name: str) -> Obj:
    """A container (regular or init) of a pod spec, by name."""
    found = [c for c in all_containers(spec) if c["name"] == name]
    if len(found) != 1:
        raise ManifestError(f"expected one container {name!r}, found {[c['name'] for c in all_containers(spec)]}")
    return found[0]


def is_native_sidecar(spec: Obj, name: str) -> bool:
    return any(c["name"] == name and c.get("restartPolicy") == "Always" for c in spec.get("initContainers", []))


def env_of(c: Obj) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env", [])}


def volume(spec: Obj, name: str) -> Obj:
    found = [v for v in spec.get("volumes", []) if v["name"] == name]
    if len(found) != 1:
        raise ManifestError(f"expected one volume {name!r}")
    return found[0]


def mounts_of(c: Obj) -> dict[str, Obj]:
    """mountPath -> volumeMount."""
    return {m["mountPath"]: m for m in c.get("volumeMounts", [])}
