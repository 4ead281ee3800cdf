"""Objects every local cluster gets after the node is Ready: a default StorageClass with pre-made local
PersistentVolumes (no provisioner runs; a PVC binds to one of these, as on a node with local disks)."""

from __future__ import annotations

from jdagent.cluster.local.config import Layout

STORAGE_CLASS = "jda-local"
VOLUMES = 6
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
