"""Every component of the local cluster, pinned in one place, each with where its pin comes from.

Kubernetes follows the minor of the kind node image the e2e tier pins (kind v0.32.0: kindest/node
v1.36.1), at the newest patch the module proxy serves; etcd, the CNI plugins, CoreDNS and pause are the
versions that Kubernetes release declares (build/dependencies.yaml); runc and the CNI plugins are the
ones kind v0.32.0 puts in its node image (images/base/Dockerfile), and containerd is that image's
minor at the newest patch served (v2.3.1 itself is not). tests/unit/data/upstream/kubernetes.yaml
records these facts; a unit test keeps this file and that record in step.
"""

from __future__ import annotations

from jdagent.gobuild import GoProgram

KUBERNETES = "v1.36.3"
ETCD = "v3.6.8"
CONTAINERD = "v2.3.7"
RUNC = "v1.4.2"
CNI_PLUGINS = "v1.9.1"
COREDNS = "v1.14.2"
PAUSE = "3.10.2"
KUBE_ROUTER = "v2.1.0"
CHART_TESTING = "v3.14.0"
DISTRIBUTION = "v3.1.1"
KUBERNETES_DATE = "2026-07-22T18:07:38Z"  # the module's publication time (go mod download -json .Time)

SOURCES = {
    "kubernetes": "kind v0.32.0 pkg/apis/config/defaults/image.go (kindest/node:v1.36.1): minor 1.36",
    "etcd": "kubernetes v1.36.3 build/dependencies.yaml (etcd) and go.mod (go.etcd.io/etcd/server/v3)",
    "containerd": "kind v0.32.0 images/base/Dockerfile CONTAINERD_VERSION v2.3.1 (minor 2.3)",
    "runc": "kind v0.32.0 images/base/Dockerfile RUNC_VERSION",
    "cni-plugins": "kubernetes v1.36.3 build/dependencies.yaml (cni); kind v0.32.0 CNI_PLUGINS_VERSION",
    "coredns": "kubernetes v1.36.3 build/dependencies.yaml (coredns-kubeadm)",
    "pause": "kubernetes v1.36.3 build/dependencies.yaml (registry.k8s.io/pause), build/pause/linux/pause.c",
    "kube-router": "the only version of github.com/cloudnativelabs/kube-router/v2 the module proxy serves; "
                   "run as its NetworkPolicy firewall only (IPv4, no router, no service proxy)",
    "distribution": "the chart's mirror.image (registry:3.1.1, tests/unit/data/upstream/distribution.yaml): the "
                    "cluster tier runs the mirror's own code at the chart's pin",
    "chart-testing": "the newest github.com/helm/chart-testing/v3 the module proxy serves (its list is refused; "
                     "v3.14.0 answers)",
}

KUBE_COMMANDS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy")

# Our multi-call main: one link for every Kubernetes command and etcd, chosen by the name it runs as.
KUBE_MAIN = """package main

import (
\t"context"
\t"fmt"
\t"os"
\t"path/filepath"

\t_ "time/tzdata"

\t"github.com/spf13/cobra"
\t"go.etcd.io/etcd/server/v3/etcdmain"
\t"k8s.io/component-base/cli"
\t_ "k8s.io/component-base/logs/json/register"
\t_ "k8s.io/component-base/metrics/prometheus/clientgo"
\t_ "k8s.io/component-base/metrics/prometheus/version"
\tapiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
\tcontrollermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
\tproxy "k8s.io/kubernetes/cmd/kube-proxy/app"
\tscheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
\tkubelet "k8s.io/kubernetes/cmd/kubelet/app"
)

func main() {
\tname := filepath.Base(os.Args[0])
\tif name == "jda-kube" && len(os.Args) > 1 {
\t\tos.Args = os.Args[1:]
\t\tname = os.Args[0]
\t}
\tvar command *cobra.Command
\tswitch name {
\tcase "etcd":
\t\tetcdmain.Main(os.Args)
\t\treturn
\tcase "kube-apiserver":
\t\tcommand = apiserver.NewAPIServerCommand()
\tcase "kube-controller-manager":
\t\tcommand = controllermanager.NewControllerManagerCommand()
\tcase "kube-scheduler":
\t\tcommand = scheduler.NewSchedulerCommand()
\tcase "kubelet":
\t\tcommand = kubelet.NewKubeletCommand(context.Background())
\tcase "kube-proxy":
\t\tcommand = proxy.NewProxyCommand()
\tdefault:
\t\tfmt.Fprintf(os.Stderr, "jda-kube: unknown command %q\\n", name)
\t\tos.Exit(2)
\t}
\tos.Exit(cli.Run(command))
}
"""


def _kube_version_ldflags() -> tuple[str, ...]:
    major, minor = KUBERNETES.lstrip("v").split(".")[:2]
    flags = []
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        for key, value in (("gitVersion", KUBERNETES), ("gitMajor", major), ("gitMinor", minor),
                           ("gitTreeState", "clean"), ("buildDate", KUBERNETES_DATE)):
            flags.append(f"-X {package}.{key}={value}")
    return ("-s", "-w", *flags)


def _staging(module: str) -> str:
    """k8s.io/kubernetes v1.X.Y publishes its staging modules as v0.X.Y."""
    return "v0." + KUBERNETES.lstrip("v").split(".", 1)[1]


def _containerd_ldflags() -> tuple[str, ...]:
    pkg = "github.com/containerd/containerd/v2"
    return ("-s", "-w", f"-X {pkg}/version.Version={CONTAINERD}", f"-X {pkg}/version.Package={pkg}")


COREDNS_MODULE = "github.com/coredns/coredns"
# The plugins cluster DNS uses here (the local cluster's Corefile, jdagent.cluster.local.addons.COREFILE);
# coremain keeps the upstream directive order (core/dnsserver/zdirectives.go), so no code is generated.
COREDNS_PLUGINS = ("errors", "health", "ready", "kubernetes", "cache")
COREDNS_MAIN = "package main\n\nimport (\n" + "".join(
    f'\t_ "{COREDNS_MODULE}/plugin/{name}"\n' for name in COREDNS_PLUGINS) + f"""
\t"{COREDNS_MODULE}/coremain"
)

func main() {{
\tcoremain.Run()
}}
"""

KUBE_ROUTER_MODULE = "github.com/cloudnativelabs/kube-router/v2"
CNI_VERSION_VAR = "github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion"
CONTAINERD_MODULE = "github.com/containerd/containerd/v2"

PROGRAMS = (
    GoProgram(name="kubernetes", module="k8s.io/kubernetes", version=KUBERNETES, packages={"jda-kube": "."},
              source=SOURCES["kubernetes"], ldflags=_kube_version_ldflags(),
              extra_requires={"go.etcd.io/etcd/server/v3": ETCD}, main_go=KUBE_MAIN, staging=_staging,
              links=KUBE_COMMANDS),
    GoProgram(name="containerd", module=CONTAINERD_MODULE, version=CONTAINERD, source=SOURCES["containerd"],
              packages={"containerd": f"{CONTAINERD_MODULE}/cmd/containerd", "ctr": f"{CONTAINERD_MODULE}/cmd/ctr"},
              tags=("urfave_cli_no_docs", "no_btrfs", "no_devmapper", "no_zfs"), ldflags=_containerd_ldflags()),
    GoProgram(name="containerd-shim", module=CONTAINERD_MODULE, version=CONTAINERD, source=SOURCES["containerd"],
              packages={"containerd-shim-runc-v2": f"{CONTAINERD_MODULE}/cmd/containerd-shim-runc-v2"},
              tags=("urfave_cli_no_docs", "no_grpc"), ldflags=_containerd_ldflags()),
    GoProgram(name="runc", module="github.com/opencontainers/runc", version=RUNC, source=SOURCES["runc"],
              packages={"runc": "github.com/opencontainers/runc"}, tags=("seccomp", "urfave_cli_no_docs"),
              ldflags=("-s", "-w", f"-X main.gitCommit={RUNC}"), cgo=True),
    GoProgram(name="cni-plugins", module="github.com/containernetworking/plugins", version=CNI_PLUGINS,
              source=SOURCES["cni-plugins"],
              packages={p: f"github.com/containernetworking/plugins/plugins/{kind}/{p}" for p, kind in
                        (("bridge", "main"), ("host-local", "ipam"), ("loopback", "main"), ("portmap", "meta"))},
              ldflags=("-s", "-w", f"-X {CNI_VERSION_VAR}={CNI_PLUGINS}")),
    GoProgram(name="coredns", module=COREDNS_MODULE, version=COREDNS, source=SOURCES["coredns"],
              packages={"coredns": "."}, main_go=COREDNS_MAIN,
              ldflags=("-s", "-w", f"-X {COREDNS_MODULE}/coremain.GitCommit={COREDNS}")),
    GoProgram(name="kube-router", module=KUBE_ROUTER_MODULE, version=KUBE_ROUTER, source=SOURCES["kube-router"],
              packages={"kube-router": f"{KUBE_ROUTER_MODULE}/cmd/kube-router"},
              ldflags=("-s", "-w", f"-X {KUBE_ROUTER_MODULE}/pkg/version.Version={KUBE_ROUTER}")),
)

DISTRIBUTION_MODULE = "github.com/distribution/distribution/v3"
# The registry with the one storage driver the chart's mirror uses (upstream's cmd/registry also links the
# cloud drivers); the proxy is linked by registry/handlers either way.
DISTRIBUTION_MAIN = f"""package main

import (
\t"{DISTRIBUTION_MODULE}/registry"
\t_ "{DISTRIBUTION_MODULE}/registry/proxy"
\t_ "{DISTRIBUTION_MODULE}/registry/storage/driver/filesystem"
)

func main() {{
\t_ = registry.RootCmd.Execute()
}}
"""

CT_MODULE = "github.com/helm/chart-testing/v3"
# Tools that run against the cluster, built the same way (not cluster components).
TOOLS = (
    GoProgram(name="chart-testing", module=CT_MODULE, version=CHART_TESTING, source=SOURCES["chart-testing"],
              packages={"ct": f"{CT_MODULE}/ct"},
              ldflags=("-s", "-w", f"-X {CT_MODULE}/ct/cmd.Version={CHART_TESTING}"),
              module_files=("etc/chart_schema.yaml", "etc/lintconf.yaml")),
    GoProgram(name="distribution", module=DISTRIBUTION_MODULE, version=DISTRIBUTION, source=SOURCES["distribution"],
              packages={"registry": "."}, main_go=DISTRIBUTION_MAIN,
              ldflags=("-s", "-w", f"-X {DISTRIBUTION_MODULE}/version.version={DISTRIBUTION.lstrip('v')}",
                       f"-X {DISTRIBUTION_MODULE}/version.mainpkg={DISTRIBUTION_MODULE}")),
)
