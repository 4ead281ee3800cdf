"""What the local cluster changes on the host, each with its undo: a network namespace with a veth
pair (the node's and API server's address), the kubelet root bind-mounted on itself and made
rshared, a cgroup folder in every v1 hierarchy (or the v2 tree) for the pods, and the sysctls the
kubelet sets for the whole machine. Nothing touches the host's own network: components run in the
namespace (`nsenter --net`) and the API server is reached through a loopback relay."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
# the kubelet writes these for the whole machine (pkg/kubelet/cm setupKernelTunables)
KERNEL_SYSCTLS = ("vm/overcommit_memory", "kernel/panic", "kernel/panic_on_oops")


class HostError(RuntimeError):
    pass


def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise HostError(f"{' '.join(cmd)} exited {proc.returncode}: {(proc.stderr or proc.stdout).strip()}")
    return proc


def netns_path(netns: str) -> Path:
    return Path("/run/netns") / netns


def in_netns(netns: str, *cmd: str) -> list[str]:
    """A command run in the namespace's network only (mounts, /sys and cgroups stay the host's)."""
    return ["nsenter", f"--net={netns_path(netns)}", "--", *cmd]


def create_netns(netns: str, address: str, service_cidr: str) -> None:
    """The namespace, its loopback, and the node address. No default route: what is outside stays
    unreachable at once (an image pull fails fast instead of hanging); Service IPs get a route so that
    local clients reach them through kube-proxy's rules."""
    if not netns_path(netns).exists():
        sh("ip", "netns", "add", netns)
    sh("ip", "-n", netns, "link", "set", "lo", "up")
    if sh("ip", "-n", netns, "link", "show", "jda0", check=False).returncode != 0:
        # a veth pair with both ends inside (this kernel has no dummy device); jda0 holds the address
        sh("ip", "-n", netns, "link", "add", "jda0", "type", "veth", "peer", "name", "jda1")
        sh("ip", "-n", netns, "addr", "add", f"{address}/24", "dev", "jda0")
        sh("ip", "-n", netns, "link", "set", "jda1", "up")
        sh("ip", "-n", netns, "link", "set", "jda0", "up")
        sh("ip", "-n", netns, "route", "add", service_cidr, "dev", "jda0")
    # pod-to-pod traffic over the bridge must pass iptables, as kube-proxy's and the policies' rules expect
    for key in ("net/bridge/bridge-nf-call-iptables", "net/ipv4/ip_forward"):
        sh(*in_netns(netns, "sh", "-c", f"echo 1 > /proc/sys/{key}"), check=False)


def delete_netns(netns: str) -> None:
    """Remove the namespace; when no namespace is left, also the /run/netns mount `ip netns add` made."""
    if netns_path(netns).exists():
        sh("ip", "netns", "delete", netns, check=False)
    folder = netns_path(netns).parent
    if folder.is_dir() and not any(folder.iterdir()):
        if is_mountpoint(folder):
            sh("umount", str(folder), check=False)
        with contextlib.suppress(OSError):
            folder.rmdir()


def shared_bind(folder: Path) -> None:
    """The kubelet needs mount propagation under its root; `/` here is private."""
    folder.mkdir(parents=True, exist_ok=True)
    if not is_mountpoint(folder):
        sh("mount", "--bind", str(folder), str(folder))
    sh("mount", "--make-rshared", str(folder))


def is_mountpoint(folder: Path) -> bool:
    return any(line.split()[4] == str(folder) for line in Path("/proc/self/mountinfo").read_text().splitlines())


def mounts_under(folder: Path) -> list[str]:
    prefix = str(folder)
    points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    return sorted({p for p in points if p == prefix or p.startswith(prefix + "/")}, key=len, reverse=True)


def unmount_all(folder: Path) -> list[str]:
    left = []
    for point in mounts_under(folder):
        if sh("umount", point, check=False).returncode != 0:
            sh("umount", "-l", point, check=False)
    left = mounts_under(folder)
    return left


def cgroup_v2() -> bool:
    return (CGROUP_ROOT / "cgroup.controllers").is_file()


def cgroup_dirs(root: str) -> list[Path]:
    """The folder `root` in every hierarchy the kubelet will use."""
    if cgroup_v2():
        return [CGROUP_ROOT / root.strip("/")]
    hierarchies = [p for p in CGROUP_ROOT.iterdir() if p.is_dir() and not p.is_symlink() and p.name != "unified"]
    return [h / root.strip("/") for h in hierarchies]


def create_cgroups(root: str) -> None:
    for folder in cgroup_dirs(root):
        folder.mkdir(exist_ok=True)


def cgroup_pids(root: str) -> set[int]:
    pids: set[int] = set()
    for folder in cgroup_dirs(root):
        for procs in folder.rglob("cgroup.procs"):
            with contextlib.suppress(OSError):
                pids |= {int(p) for p in procs.read_text().split()}
    return pids


def remove_cgroups(root: str) -> list[str]:
    """Kill what is left in the cgroups and remove them, deepest first. Returns folders that stayed."""
    for _ in range(20):
        pids = cgroup_pids(root)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.25)
    left = []
    for top in cgroup_dirs(root):
        if not top.exists():
            continue
        for folder in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                folder.rmdir()
        try:
            top.rmdir()
        except OSError:
            left.append(str(top))
    return left


def read_sysctls() -> dict[str, str]:
    return {key: (Path("/proc/sys") / key).read_text().strip() for key in KERNEL_SYSCTLS}


def restore_sysctls(saved: dict[str, str]) -> list[str]:
    changed = []
    for key, value in saved.items():
        path = Path("/proc/sys") / key
        if path.read_text().strip() != value:
            path.write_text(value)
            changed.append(f"{key.replace('/', '.')}={value}")
    return changed


def processes_mentioning(text: str, proc: Path = Path("/proc")) -> list[int]:
    """Pids whose command line contains `text`: the containerd shims of a cluster, which leave their
    parent's session at start and so outlive it, name its containerd socket in their arguments."""
    found = []
    for entry in proc.iterdir() if proc.is_dir() else []:
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(int(entry.name))
    return sorted(found)
