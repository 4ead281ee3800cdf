"""The local cluster's addresses, folders and the configuration files of its components (containerd,
CNI, kubelet, kube-proxy), written from one `Layout`. Keys are the ones the pinned sources read:
containerd v2.3 config version 3 (internal/cri/config/config.go), kubelet.config.k8s.io/v1beta1 and
kubeproxy.config.k8s.io/v1alpha1 at Kubernetes v1.36."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from jdagent.cluster.local import pins
from jdagent.paths import ARTIFACTS_DIR, REPO_ROOT

NODE_IP = "10.213.0.1"          # on a veth inside the namespace: node, API server, kubelet
SERVICE_CIDR = "10.96.0.0/16"
KUBERNETES_SERVICE_IP = "10.96.0.1"
DNS_SERVICE_IP = "10.96.0.10"
POD_CIDR = "10.244.0.0/16"
NODE_POD_CIDR = "10.244.0.0/24"
API_PORT = 6443
KUBE_ROUTER_HEALTH_PORT = 20244  # kube-router's default (pkg/options/options.go defaultHealthCheckPort)
# what most production nodes set (the kubelet's default is unlimited): every pod, dind's builds included
POD_PIDS_LIMIT = 1024
# How often the kubelet sums each pod's volumes (its default is 1m, then jittered up to twice that:
# pkg/kubelet/server/stats/volume_stat_calculator.go); eviction for an emptyDir's sizeLimit acts on that
# sum, so the test node measures every 10-20 s to keep the disk test short. Production nodes keep 1m.
VOLUME_STATS_PERIOD = "10s"
KUBE_ROUTER_CHAIN = "KUBE-ROUTER-FORWARD"  # its netpol controller's top FORWARD chain
PAUSE_IMAGE = f"registry.k8s.io/pause:{pins.PAUSE}"
COREDNS_IMAGE = f"jda-local/coredns:{pins.COREDNS}"  # ours, built from the module: not the upstream image
DISTRIBUTION_IMAGE = f"jda-local/registry:{pins.DISTRIBUTION}"  # the same, for the chart's mirror
# containerd's registry hosts (docs/hosts.md), shared with the kind cluster: registry.registry.svc.cluster.local:5000,
# the name the agents push to, pulled from the registry Service's ClusterIP (addons.REGISTRY_IP) over plain HTTP
REGISTRY_HOSTS_DIR = REPO_ROOT / "tests" / "e2e" / "containerd-certs.d"


@dataclass(frozen=True)
class Layout:
    name: str

    @property
    def netns(self) -> str:
        return self.name

    @property
    def state(self) -> Path:
        return Path("/var/lib/jda-local") / self.name

    @property
    def run(self) -> Path:
        return Path("/run/jda-local") / self.name

    @property
    def logs(self) -> Path:
        return ARTIFACTS_DIR / "local" / self.name

    @property
    def kubeconfig(self) -> Path:
        return ARTIFACTS_DIR / "local" / f"{self.name}.kubeconfig"

    @property
    def cgroup_root(self) -> str:
        return f"/{self.name}"

    @property
    def pki(self) -> Path:
        return self.state / "pki"

    @property
    def kubelet_root(self) -> Path:
        return self.state / "kubelet"

    @property
    def containerd_socket(self) -> Path:
        return self.run / "containerd" / "containerd.sock"

    @property
    def cni_conf_dir(self) -> Path:
        return self.state / "cni" / "net.d"

    @property
    def volumes(self) -> Path:
        return self.state / "volumes"

    @property
    def state_file(self) -> Path:
        return self.state / "state.json"


def containerd_toml(layout: Layout, bin_dirs: dict[str, Path]) -> str:
    runc = bin_dirs["runc"] / "runc"
    cni = json.dumps([str(bin_dirs["cni-plugins"])])
    return f"""version = 3
root = "{layout.state / 'containerd'}"
state = "{layout.run / 'containerd'}"

[grpc]
  address = "{layout.containerd_socket}"

[ttrpc]
  address = "{layout.containerd_socket}.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "{PAUSE_IMAGE}"
  # the cluster's own hosts directory, not the machine's /etc/containerd/certs.d (containerd's default)
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = "{REGISTRY_HOSTS_DIR}"

[plugins.'io.containerd.cri.v1.runtime']
  # the sandbox's default oom_score_adj (-998) is refused on these machines; keep it at ours or above
  restrict_oom_score_adj = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = "{runc}"
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = {cni}
    conf_dir = "{layout.cni_conf_dir}"
"""


def cni_conflist(layout: Layout) -> str:
    return json.dumps({
        "cniVersion": "1.0.0",
        "name": "jda-local",
        "plugins": [
            {"type": "bridge", "bridge": "cni0", "isGateway": True, "ipMasq": True, "hairpinMode": True,
             "ipam": {"type": "host-local", "dataDir": str(layout.state / "cni" / "ipam"),
                      "ranges": [[{"subnet": NODE_POD_CIDR}]], "routes": [{"dst": "0.0.0.0/0"}]}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }, indent=2) + "\n"


def kubelet_yaml(layout: Layout, serving_cert: Path, serving_key: Path, ca: Path, resolv: Path) -> str:
    return f"""apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: {NODE_IP}
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {{enabled: false}}
  webhook: {{enabled: true}}
  x509: {{clientCAFile: "{ca}"}}
authorization: {{mode: Webhook}}
tlsCertFile: "{serving_cert}"
tlsPrivateKeyFile: "{serving_key}"
containerRuntimeEndpoint: "unix://{layout.containerd_socket}"
# these machines run cgroup v1 and PID 1 is not systemd
cgroupDriver: cgroupfs
failCgroupV1: false
cgroupRoot: "{layout.cgroup_root}"
clusterDNS: ["{DNS_SERVICE_IP}"]
clusterDomain: cluster.local
resolvConf: "{resolv}"
podLogsDir: "{layout.state / 'pod-logs'}"
failSwapOn: false
serializeImagePulls: false
maxPods: 60
podPidsLimit: {POD_PIDS_LIMIT}
volumeStatsAggPeriod: {VOLUME_STATS_PERIOD}
evictionHard: {{memory.available: "200Mi", nodefs.available: "3%", imagefs.available: "3%"}}
evictionPressureTransitionPeriod: 30s
"""


def kube_proxy_yaml(kubeconfig: Path, node: str) -> str:
    return f"""apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clusterCIDR: {POD_CIDR}
hostnameOverride: {node}
bindAddress: 0.0.0.0
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
clientConnection: {{kubeconfig: "{kubeconfig}"}}
# leave the machine-wide conntrack settings alone
conntrack: {{maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}}
"""


def kube_router_args(kubeconfig: Path, node: str) -> list[str]:
    """kube-router as the NetworkPolicy enforcer only: its router and service proxy default to on."""
    return [f"--kubeconfig={kubeconfig}", f"--hostname-override={node}", "--run-firewall=true",
            "--run-router=false", "--run-service-proxy=false", f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--health-port={KUBE_ROUTER_HEALTH_PORT}", "--metrics-port=0"]
