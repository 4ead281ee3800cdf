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

from jdagent.cluster.local.config import DNS_SERVICE_IP, Layout
from jdagent.cluster.provider import Cluster

KUBE_ROUTER_USER = "system:jda-local:kube-router"
# what kube-router v2.1.0 reads with its firewall alone: pkg/cmd/kube-router.go starts informers for
# these, and netpol's controller gets its node (pkg/utils/node.go GetNodeObject)
KUBE_ROUTER_READS = {"": ("namespaces", "pods", "services", "endpoints", "nodes"),
                     "discovery.k8s.io": ("endpointslices",), "networking.k8s.io": ("networkpolicies",)}
# CoreDNS v1.14.2 plugin/kubernetes/controller.go lists and watches these (pods only for `pods verified`)
COREDNS_READS = {"": ("services", "pods", "namespaces"), "discovery.k8s.io": ("endpointslices",)}
COREFILE = """.:53 {
    errors
    health {
        lameduck 5s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        pods insecure
        ttl 30
    }
    cache 30
}
"""
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


def _cluster_reader(name: str, reads: dict[str, tuple[str, ...]], verbs: str, subject: str) -> str:
    """A ClusterRole that may only read `reads` ({api group: resources}), bound to `subject` (flow yaml)."""
    rules = "\n".join(f"- apiGroups: [\"{group}\"]\n  resources: [{', '.join(resources)}]\n  verbs: [{verbs}]"
                      for group, resources in reads.items())
    return f"""apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: jda-local:{name}
rules:
{rules}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: jda-local:{name}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: jda-local:{name}}}
subjects:
- {subject}
"""


def kube_router_rbac() -> str:
    """Read-only access for the NetworkPolicy enforcer: nothing it does writes to the API."""
    return _cluster_reader("kube-router", KUBE_ROUTER_READS, "get, list, watch",
                           f'{{apiGroup: rbac.authorization.k8s.io, kind: User, name: "{KUBE_ROUTER_USER}"}}')


def coredns(image: str) -> str:
    """Cluster DNS at the kubelet's clusterDNS address: CoreDNS (our build) as a Deployment in
    kube-system behind the kube-dns Service, reading Services and EndpointSlices with its own account."""
    corefile = "\n".join("    " + line if line else "" for line in COREFILE.splitlines())
    labels = "{k8s-app: kube-dns}"
    reader = _cluster_reader("coredns", COREDNS_READS, "list, watch",
                             "{kind: ServiceAccount, name: coredns, namespace: kube-system}")
    return f"""apiVersion: v1
kind: ServiceAccount
metadata: {{name: coredns, namespace: kube-system}}
---
{reader}---
apiVersion: v1
kind: ConfigMap
metadata: {{name: coredns, namespace: kube-system}}
data:
  Corefile: |
{corefile}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: coredns, namespace: kube-system, labels: {labels}}}
spec:
  replicas: 1
  selector: {{matchLabels: {labels}}}
  template:
    metadata: {{labels: {labels}}}
    spec:
      serviceAccountName: coredns
      dnsPolicy: Default
      # port 53 without any capability: a namespaced sysctl the kubelet allows by default
      securityContext:
        runAsNonRoot: true
        sysctls: [{{name: net.ipv4.ip_unprivileged_port_start, value: "53"}}]
      containers:
      - name: coredns
        image: {image}
        imagePullPolicy: Never
        args: [-conf, /etc/coredns/Corefile]
        ports:
        - {{name: dns, containerPort: 53, protocol: UDP}}
        - {{name: dns-tcp, containerPort: 53, protocol: TCP}}
        readinessProbe: {{httpGet: {{path: /ready, port: 8181}}, periodSeconds: 2}}
        livenessProbe: {{httpGet: {{path: /health, port: 8080}}, initialDelaySeconds: 10}}
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities: {{drop: [ALL]}}
        resources: {{requests: {{cpu: 50m, memory: 40Mi}}, limits: {{memory: 170Mi}}}}
        volumeMounts: [{{name: config, mountPath: /etc/coredns, readOnly: true}}]
      volumes: [{{name: config, configMap: {{name: coredns}}}}]
---
apiVersion: v1
kind: Service
metadata: {{name: kube-dns, namespace: kube-system, labels: {labels}}}
spec:
  clusterIP: {DNS_SERVICE_IP}
  selector: {labels}
  ports:
  - {{name: dns, port: 53, protocol: UDP}}
  - {{name: dns-tcp, port: 53, protocol: TCP}}
"""
