"""Objects every local cluster gets after the node is Ready: a default StorageClass with pre-made local
PersistentVolumes (no provisioner runs; a PVC binds to one of these, as on a node with local disks).
`seeded_registry` runs a registry image as a Deployment behind a fixed ClusterIP (pods' dockerds
reach it without cluster DNS) and pushes a base image into it from the host engine. `recycle` puts
Released volumes back into service (their folder emptied, the claim reference
dropped), which is what an administrator of such a node does by hand."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from jdagent.cluster.local.config import Layout
from jdagent.cluster.provider import Cluster

STORAGE_CLASS = "jda-local"
VOLUMES = 8
VOLUME_SIZE = "10Gi"


def storage(layout: Layout) -> str:
    docs = [f"""apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: {STORAGE_CLASS}
  annotations: {{storageclass.kubernetes.io/is-default-class: "true"}}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Retain
"""]
    for index in range(VOLUMES):
        folder = layout.volumes / f"pv{index}"
        folder.mkdir(parents=True, exist_ok=True)
        docs.append(f"""apiVersion: v1
kind: PersistentVolume
metadata:
  name: {layout.name}-pv{index}
spec:
  capacity: {{storage: {VOLUME_SIZE}}}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: {STORAGE_CLASS}
  local: {{path: "{folder}"}}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions:
        - {{key: kubernetes.io/hostname, operator: In, values: ["{layout.name}"]}}
""")
    return "---\n".join(docs)


def recycle(cluster: Cluster) -> list[str]:
    """Empty and free every Released volume of the local StorageClass; returns their names."""
    volumes = json.loads(cluster.kubectl("get", "pv", "-o", "json").stdout)["items"]
    freed = []
    for volume in volumes:
        spec = volume["spec"]
        if spec.get("storageClassName") != STORAGE_CLASS or volume["status"].get("phase") != "Released":
            continue
        folder = Path(spec["local"]["path"])
        for child in folder.iterdir() if folder.is_dir() else []:
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        cluster.kubectl("patch", "pv", volume["metadata"]["name"], "--type=json",
                        "-p", '[{"op": "remove", "path": "/spec/claimRef"}]')
        freed.append(volume["metadata"]["name"])
    return freed


REGISTRY_IP = "10.96.0.50"
REGISTRY = f"{REGISTRY_IP}:5000"


def seeded_registry(cluster: Cluster, registry_image: str, base_image: str, repository: str = "busybox",
                    tag: str = "stand-in") -> str:
    """The registry at REGISTRY holding `base_image` as repository:tag; returns the name pods pull."""
    import docker
    import yaml

    from jdagent.cluster.portforward import port_forward
    from jdagent.engine import registry

    labels = {"app": "registry"}
    docs = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "registry"}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "registry", "namespace": "registry"},
         "spec": {"selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": {
             "containers": [{"name": "registry", "image": registry_image, "imagePullPolicy": "Never",
                             "command": ["/usr/bin/docker-registry", "serve", "/etc/docker/registry/config-open.yml"],
                             "ports": [{"containerPort": 5000}],
                             "readinessProbe": {"httpGet": {"path": "/v2/", "port": 5000}}}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "registry", "namespace": "registry"},
         "spec": {"clusterIP": REGISTRY_IP, "selector": labels, "ports": [{"port": 5000, "targetPort": 5000}]}},
    ]
    cluster.kubectl("apply", "-f", "-", input_text=yaml.safe_dump_all(docs))
    cluster.kubectl_wait(180, "-n", "registry", "rollout", "status", "deployment/registry")
    client = docker.from_env(version="auto", timeout=600)
    with port_forward(cluster, "registry", "svc/registry", 5000) as port:
        registry.push_to_loopback(client, base_image, port, repository, tag)
    return f"{REGISTRY}/{repository}:{tag}"
