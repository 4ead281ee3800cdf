"""Objects every local cluster gets after the node is Ready: a default StorageClass with pre-made local
PersistentVolumes (no provisioner runs; a PVC binds to one of these, as on a node with local disks).
`recycle` puts Released volumes back into service (their folder emptied, the claim reference
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
