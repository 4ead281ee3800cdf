"""A single-node Kubernetes started from binaries built out of the upstream Go modules: etcd, the API
server, controller-manager, scheduler, containerd with runc and the CNI plugins, the kubelet and
kube-proxy, all in a network namespace of their own. `LocalProvider` is the `local` cluster provider.

Start: `up()` builds what is missing (once per pin), writes certificates and configs, starts each
component and waits for it (its log tail is printed on failure and kept under .artifacts/local/),
imports the pause image, and waits for the node to be Ready. Stop: `delete()` stops every process it
recorded, unmounts, removes the namespace, the cgroups and the state, and restores the sysctls the
kubelet changed. Both run on failure and on Ctrl-C during `up()`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from jdagent import gobuild, tools
from jdagent.cluster.local import addons, config, host, pins
from jdagent.cluster.local.config import Layout
from jdagent.cluster.local.pki import Authority, kubeconfig
from jdagent.cluster.portforward import free_port
from jdagent.cluster.provider import Cluster, Provider, log

NAME = os.environ.get("JDA_LOCAL_CLUSTER", "jda-local")
START_TIMEOUT_S = 180


class StartError(RuntimeError):
    """A component did not come up; the message holds its log tail."""


def missing(which: Callable[[str], str | None] = shutil.which, euid: Callable[[], int] = os.geteuid,
            platform: str = sys.platform) -> str | None:
    """None when the local cluster can run here; else a reason naming the first missing part."""
    if platform != "linux":
        return f"the local cluster needs Linux (this is {platform})"
    if euid() != 0:
        return "the local cluster needs root (network namespaces, mounts, cgroups)"
    if which("go") is None and not Path("/usr/local/go/bin/go").is_file():
        return "no Go toolchain (`go` on PATH): the local cluster is built from the upstream Go modules"
    for binary, package in (("ip", "iproute2"), ("nsenter", "util-linux"), ("iptables", "iptables"),
                            ("mount", "mount"), ("gcc", "gcc"), ("docker", "docker.io"),
                            ("ipset", "ipset")):
        if which(binary) is None:
            return f"`{binary}` is missing (apt-get install {package})"
    if not Path("/usr/include/seccomp.h").is_file():
        return "libseccomp headers are missing (apt-get install libseccomp-dev): runc is built with seccomp"
    return None


def build_binaries() -> dict[str, Path]:
    return gobuild.build_all(pins.PROGRAMS)


def _probe(netns: str, address: tuple[str, int]) -> bool:
    """Whether a TCP connect to `address` inside the namespace succeeds (from a thread that entered it)."""
    from jdagent.cluster.local.relay import _enter

    result: list[bool] = []

    def attempt() -> None:
        try:
            _enter(str(host.netns_path(netns)))
            with socket.create_connection(address, timeout=2):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(10)
    return bool(result and result[0])


class Node:
    """One running (or starting) local cluster; its processes and host changes are in state.json."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.state: dict = {"processes": {}, "sysctls": {}, "netns_before": [], "relay_port": 0}
        if layout.state_file.is_file():
            self.state = json.loads(layout.state_file.read_text())

    def save(self) -> None:
        self.layout.state.mkdir(parents=True, exist_ok=True)
        self.layout.state_file.write_text(json.dumps(self.state, indent=2) + "\n")

    # --- processes --------------------------------------------------------------------------------
    def start(self, name: str, cmd: list[str], env: dict[str, str] | None = None, netns: bool = True) -> None:
        self.layout.logs.mkdir(parents=True, exist_ok=True)
        logfile = self.layout.logs / f"{name}.log"
        full = host.in_netns(self.layout.netns, *cmd) if netns else cmd
        with logfile.open("ab") as sink:
            proc = subprocess.Popen(full, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env={**os.environ, **(env or {})}, start_new_session=True)
        self.state["processes"][name] = proc.pid
        self.save()
        log(f"started {name} (pid {proc.pid}, log {logfile})")

    def alive(self, name: str) -> bool:
        pid = self.state["processes"].get(name)
        if not pid:
            return False
        try:
            waited, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            waited = 0
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 0)
                return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()
            return False
        return waited == 0

    def tail(self, name: str, lines: int = 40) -> str:
        path = self.layout.logs / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no log)"

    def wait_for(self, name: str, ready: Callable[[], bool], timeout: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        started = time.monotonic()
        while not ready():
            if not self.alive(name):
                raise StartError(f"{name} exited while starting; the last lines of its log "
                                 f"({self.layout.logs / (name + '.log')}):\n{self.tail(name)}")
            if time.monotonic() > deadline:
                raise StartError(f"{name} was not ready after {timeout:.0f} s; the last lines of its log "
                                 f"({self.layout.logs / (name + '.log')}):\n{self.tail(name)}")
            time.sleep(0.5)
        log(f"{name} ready ({time.monotonic() - started:.1f} s)")

    def stop_all(self) -> None:
        names = list(self.state["processes"])
        for name in reversed(names):
            pid = self.state["processes"][name]
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for name in reversed(names):
            pid = self.state["processes"][name]
            while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
                with contextlib.suppress(ChildProcessError):
                    if os.waitpid(pid, os.WNOHANG)[0]:
                        break
                time.sleep(0.2)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        self.state["processes"] = {}


class LocalProvider(Provider):
    """Clusters started on this machine from the pinned upstream modules (see `jdagent.cluster.local`)."""

    label = "local"

    def __init__(self, build: Callable[[], dict[str, Path]] = build_binaries) -> None:
        self._build = build

    def missing(self) -> str | None:
        return missing()

    def kubeconfig(self, name: str = NAME) -> Path:
        return Layout(name).kubeconfig

    def up(self, name: str = NAME) -> tuple[Cluster, bool]:
        layout = Layout(name)
        node = Node(layout)
        if node.state["processes"] and all(node.alive(n) for n in node.state["processes"]):
            log(f"reusing local cluster {name}")
            return Cluster(name, layout.kubeconfig), False
        if node.state["processes"]:
            log(f"local cluster {name} is partly running: stopping it and starting again")
            self.delete(name)
            node = Node(layout)
        try:
            self._start(node)
        except BaseException:
            log(f"local cluster {name} failed to start: stopping what was started (logs in {layout.logs})")
            self.delete(name, keep_logs=True)
            raise
        return Cluster(name, layout.kubeconfig), True

    def _start(self, node: Node) -> None:
        layout = node.layout
        started = time.monotonic()
        bins = self._build()
        kube = bins["kubernetes"]
        path = ":".join(str(bins[p]) for p in ("containerd-shim", "containerd", "runc", "kubernetes"))
        env = {"PATH": f"{path}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"}
        node.state["sysctls"] = host.read_sysctls()
        node.state["netns_before"] = sorted(p.name for p in Path("/run/netns").glob("*")) \
            if Path("/run/netns").is_dir() else []
        node.state["relay_port"] = int(os.environ.get("JDA_LOCAL_API_PORT", "0")) or free_port()
        node.save()
        for folder in (layout.state, layout.run, layout.logs, layout.cni_conf_dir, layout.volumes):
            folder.mkdir(parents=True, exist_ok=True)
        host.create_netns(layout.netns, config.NODE_IP, config.SERVICE_CIDR)
        host.create_cgroups(layout.cgroup_root)
        host.shared_bind(layout.kubelet_root)

        pki = self._pki(layout, node.state["relay_port"])
        files = layout.state / "config"
        files.mkdir(exist_ok=True)
        (files / "containerd.toml").write_text(config.containerd_toml(layout, bins))
        (layout.cni_conf_dir / "10-jda-local.conflist").write_text(config.cni_conflist(layout))
        resolv = files / "resolv.conf"
        resolv.write_text("nameserver 127.0.0.1\noptions ndots:1\n")
        (files / "kubelet.yaml").write_text(config.kubelet_yaml(layout, pki["kubelet-serving"].cert,
                                                                pki["kubelet-serving"].key, pki["ca"], resolv))
        (files / "kube-proxy.yaml").write_text(config.kube_proxy_yaml(files / "kube-proxy.kubeconfig", layout.name))
        inside = f"https://{config.NODE_IP}:{config.API_PORT}"
        for user, pair in (("kube-controller-manager", pki["controller-manager"]),
                           ("kube-scheduler", pki["scheduler"]), ("kubelet", pki["kubelet"]),
                           ("kube-proxy", pki["kube-proxy"]), ("kube-router", pki["kube-router"])):
            (files / f"{user}.kubeconfig").write_text(kubeconfig(inside, pki["ca"], pair, user))
        layout.kubeconfig.parent.mkdir(parents=True, exist_ok=True)
        layout.kubeconfig.write_text(kubeconfig(f"https://127.0.0.1:{node.state['relay_port']}", pki["ca"],
                                                pki["admin"], "jda-admin"))
        layout.kubeconfig.chmod(0o600)

        node.start("containerd", [str(bins["containerd"] / "containerd"), "--config",
                                  str(files / "containerd.toml")], env)
        node.wait_for("containerd", lambda: self._ctr(layout, bins, "version", check=False).returncode == 0)
        self._import_pause(layout, bins)

        node.start("etcd", [str(kube / "etcd"), "--name", layout.name, "--data-dir", str(layout.state / "etcd"),
                            "--listen-client-urls", "http://127.0.0.1:2379",
                            "--advertise-client-urls", "http://127.0.0.1:2379",
                            "--listen-peer-urls", "http://127.0.0.1:2380",
                            "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
                            "--initial-cluster", f"{layout.name}=http://127.0.0.1:2380",
                            "--unsafe-no-fsync", "--log-level", "warn"], env)
        node.wait_for("etcd", lambda: _probe(layout.netns, ("127.0.0.1", 2379)))

        node.start("relay", [sys.executable, "-m", "jdagent.cluster.local.relay", "--netns",
                             str(host.netns_path(layout.netns)), "--listen", f"127.0.0.1:{node.state['relay_port']}",
                             "--target", f"{config.NODE_IP}:{config.API_PORT}"],
                   {"PYTHONPATH": str(Path(__file__).resolve().parents[3])}, netns=False)
        sa = pki["sa"]
        node.start("kube-apiserver", [
            str(kube / "kube-apiserver"), "--etcd-servers=http://127.0.0.1:2379",
            f"--advertise-address={config.NODE_IP}", f"--secure-port={config.API_PORT}",
            f"--service-cluster-ip-range={config.SERVICE_CIDR}",
            f"--tls-cert-file={pki['apiserver'].cert}", f"--tls-private-key-file={pki['apiserver'].key}",
            f"--client-ca-file={pki['ca']}",
            f"--kubelet-client-certificate={pki['apiserver-kubelet-client'].cert}",
            f"--kubelet-client-key={pki['apiserver-kubelet-client'].key}",
            f"--kubelet-certificate-authority={pki['ca']}",
            "--kubelet-preferred-address-types=InternalIP",
            f"--service-account-key-file={sa.cert}", f"--service-account-signing-key-file={sa.key}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
            "--allow-privileged=true", "--profiling=false", "--anonymous-auth=false",
        ], env)
        node.wait_for("kube-apiserver", lambda: self._kubectl(layout, "get", "--raw", "/readyz",
                                                              check=False).returncode == 0)

        node.start("kube-controller-manager", [
            str(kube / "kube-controller-manager"), f"--kubeconfig={files / 'kube-controller-manager.kubeconfig'}",
            f"--authentication-kubeconfig={files / 'kube-controller-manager.kubeconfig'}",
            f"--authorization-kubeconfig={files / 'kube-controller-manager.kubeconfig'}",
            f"--service-account-private-key-file={sa.key}", f"--root-ca-file={pki['ca']}",
            "--use-service-account-credentials=true", "--leader-elect=false", "--bind-address=127.0.0.1",
            f"--cluster-signing-cert-file={pki['ca']}", f"--cluster-signing-key-file={layout.pki / 'ca.key'}",
            f"--service-cluster-ip-range={config.SERVICE_CIDR}", "--profiling=false",
        ], env)
        node.start("kube-scheduler", [
            str(kube / "kube-scheduler"), f"--kubeconfig={files / 'kube-scheduler.kubeconfig'}",
            f"--authentication-kubeconfig={files / 'kube-scheduler.kubeconfig'}",
            f"--authorization-kubeconfig={files / 'kube-scheduler.kubeconfig'}",
            "--leader-elect=false", "--bind-address=127.0.0.1", "--profiling=false",
        ], env)
        node.wait_for("kube-controller-manager", lambda: _probe(layout.netns, ("127.0.0.1", 10257)))
        node.wait_for("kube-scheduler", lambda: _probe(layout.netns, ("127.0.0.1", 10259)))

        node.start("kubelet", [
            str(kube / "kubelet"), f"--config={files / 'kubelet.yaml'}",
            f"--kubeconfig={files / 'kubelet.kubeconfig'}", f"--root-dir={layout.kubelet_root}",
            f"--node-ip={config.NODE_IP}", f"--hostname-override={layout.name}", "--v=1",
        ], env)
        node.start("kube-proxy", [str(kube / "kube-proxy"), f"--config={files / 'kube-proxy.yaml'}"], env)
        node.wait_for("kubelet", lambda: self._node_ready(layout), timeout=240)
        node.wait_for("kube-proxy", lambda: _probe(layout.netns, ("127.0.0.1", 10256)))
        self._bootstrap(layout, bins)
        # NetworkPolicies: kube-router's firewall alone (iptables + ipset), as the node's enforcer
        node.start("kube-router", [str(bins["kube-router"] / "kube-router"),
                                   *config.kube_router_args(files / "kube-router.kubeconfig", layout.name)],
                   {**env, "NODE_NAME": layout.name})
        node.wait_for("kube-router", lambda: self._kube_router_ready(layout))
        node.wait_for("kubelet", lambda: self._dns_ready(layout), timeout=120)  # CoreDNS, a pod the kubelet runs
        node.state["ready_seconds"] = round(time.monotonic() - started, 1)
        node.save()
        log(f"local cluster {layout.name} is Ready in {node.state['ready_seconds']} s "
            f"(KUBECONFIG={layout.kubeconfig})")

    def _pki(self, layout: Layout, relay_port: int) -> dict:
        ca = Authority(layout.pki)
        name = layout.name
        return {
            "ca": ca.cert_path,
            "sa": ca.service_account_keys(),
            "apiserver": ca.issue("apiserver", "kube-apiserver", server=True,
                                  dns=("kubernetes", "kubernetes.default", "kubernetes.default.svc",
                                       "kubernetes.default.svc.cluster.local", "localhost"),
                                  ips=(config.NODE_IP, config.KUBERNETES_SERVICE_IP, "127.0.0.1")),
            "apiserver-kubelet-client": ca.issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client",
                                                 ("system:masters",)),
            "admin": ca.issue("admin", "jda-admin", ("system:masters",)),
            "controller-manager": ca.issue("controller-manager", "system:kube-controller-manager"),
            "scheduler": ca.issue("scheduler", "system:kube-scheduler"),
            "kubelet": ca.issue("kubelet", f"system:node:{name}", ("system:nodes",)),
            "kubelet-serving": ca.issue("kubelet-serving", name, server=True, dns=(name,), ips=(config.NODE_IP,)),
            "kube-proxy": ca.issue("kube-proxy", "system:kube-proxy", ("system:node-proxier",)),
            "kube-router": ca.issue("kube-router", addons.KUBE_ROUTER_USER),
        }

    # --- helpers ----------------------------------------------------------------------------------
    def _kubectl(self, layout: Layout, *args: str, check: bool = True,
                 input_text: str | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([str(tools.find_kubectl()), "--kubeconfig", str(layout.kubeconfig),
                               "--request-timeout=10s", *args], capture_output=True, text=True, timeout=60,
                              input=input_text)
        if check and proc.returncode != 0:
            raise StartError(f"kubectl {' '.join(args)}: {proc.stderr.strip()}")
        return proc

    def _ctr(self, layout: Layout, bins: dict[str, Path], *args: str, check: bool = True,
             stdin: int | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([str(bins["containerd"] / "ctr"), "--address", str(layout.containerd_socket),
                               "--namespace", "k8s.io", *args], capture_output=True, text=True, timeout=600,
                              stdin=stdin)
        if check and proc.returncode != 0:
            raise StartError(f"ctr {' '.join(args)}: {proc.stderr.strip()}")
        return proc

    def _node_ready(self, layout: Layout) -> bool:
        out = self._kubectl(layout, "get", "node", layout.name, "-o",
                            "jsonpath={.status.conditions[?(@.type=='Ready')].status}", check=False).stdout
        return out.strip() == "True"

    def _import_pause(self, layout: Layout, bins: dict[str, Path]) -> None:
        from jdagent.cluster.local import images

        images.ensure_pause()
        self._import(layout, bins, config.PAUSE_IMAGE)

    def _import(self, layout: Layout, bins: dict[str, Path], image: str) -> None:
        save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
        assert save.stdout is not None
        self._ctr(layout, bins, "images", "import", "-", stdin=save.stdout.fileno())
        save.stdout.close()
        if save.wait() != 0:
            raise StartError(f"docker save {image} failed")

    def _bootstrap(self, layout: Layout, bins: dict[str, Path]) -> None:
        from jdagent.cluster.local import images

        self._kubectl(layout, "apply", "-f", "-", input_text=addons.storage(layout))
        self._kubectl(layout, "apply", "-f", "-", input_text=addons.kube_router_rbac())
        dns = images.ensure_coredns(bins["coredns"])
        self._import(layout, bins, dns)
        self._kubectl(layout, "apply", "-f", "-", input_text=addons.coredns(dns))

    def _dns_ready(self, layout: Layout) -> bool:
        out = self._kubectl(layout, "-n", "kube-system", "get", "deployment", "coredns", "-o",
                            "jsonpath={.status.readyReplicas}", check=False).stdout
        return out.strip() == "1"

    def _kube_router_ready(self, layout: Layout) -> bool:
        """Its health endpoint answers once its informers have synced; the firewall's top chains follow."""
        if not _probe(layout.netns, ("127.0.0.1", config.KUBE_ROUTER_HEALTH_PORT)):
            return False
        chains = host.sh(*host.in_netns(layout.netns, "iptables", "-S", config.KUBE_ROUTER_CHAIN), check=False)
        return chains.returncode == 0

    # --- Provider ---------------------------------------------------------------------------------
    def load_image(self, cluster: Cluster, image: str) -> None:
        layout = Layout(cluster.name)
        bins = self._build()
        log(f"importing {image} into containerd's k8s.io namespace")
        self._import(layout, bins, image)

    def delete(self, name: str = NAME, keep_logs: bool = True) -> None:
        layout = Layout(name)
        node = Node(layout)
        if not layout.state_file.exists() and not host.netns_path(layout.netns).exists():
            return
        log(f"stopping local cluster {name}")
        node.stop_all()
        node.save()
        for pid in host.processes_mentioning(str(layout.containerd_socket)):  # the shims, and their pods
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        leftovers = host.remove_cgroups(layout.cgroup_root)
        stuck = host.unmount_all(layout.state) + host.unmount_all(layout.run)
        before = set(node.state.get("netns_before", []))
        for entry in sorted(Path("/run/netns").glob("cni-*")) if Path("/run/netns").is_dir() else []:
            if entry.name not in before:
                host.sh("umount", str(entry), check=False)
                entry.unlink(missing_ok=True)
        host.delete_netns(layout.netns)
        restored = host.restore_sysctls(node.state.get("sysctls", {}))
        if restored:
            log(f"restored {', '.join(restored)}")
        if stuck or leftovers:
            log(f"left behind: mounts {stuck} cgroups {leftovers}")
        else:
            for folder in (layout.state, layout.run):
                shutil.rmtree(folder, ignore_errors=True)
                with contextlib.suppress(OSError):
                    folder.parent.rmdir()  # /var/lib/jda-local, /run/jda-local when no other cluster is left
        layout.kubeconfig.unlink(missing_ok=True)
        if not keep_logs:
            shutil.rmtree(layout.logs, ignore_errors=True)

    def export_logs(self, cluster: Cluster, folder: Path) -> None:
        layout = Layout(cluster.name)
        folder.mkdir(parents=True, exist_ok=True)
        for logfile in layout.logs.glob("*.log"):
            shutil.copy(logfile, folder / logfile.name)
