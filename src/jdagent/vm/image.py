"""The base disk: built once per pin into `.tools/vm/<key>/` and reused while the key holds.

Steps (`build`): `debootstrap --variant=minbase --include=<pins.PACKAGES> <suite>` from the host's
Debian mirror; configure the rootfs (systemd as init on the unified hierarchy, fstab, hostname, a
fixed machine-id so no first-boot logic runs, a static address on eth0 for the SSH channel, root's
login by a key generated now, the guest's host key generated now and pinned on the host, docker,
containerd and ssh enabled, timers that only cost time masked); copy Debian's kernel and initrd out
for qemu's `-kernel/-initrd` (checking that the initrd has virtio_blk, virtio_pci and ext4); fill a
sparse raw ext4 disk with `mkfs.ext4 -d`. The stamp (installed package versions from dpkg-query,
seconds per step) is written last, so an interrupted build is redone from scratch.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from jdagent.cluster.local.host import mounts_under, unmount_all
from jdagent.paths import TOOLS_DIR
from jdagent.vm import host, pins
from jdagent.vm.progress import VmError, capture, run_step, say

VM_DIR = TOOLS_DIR / "vm"
DEBS_DIR = VM_DIR / "debs"   # debootstrap's package cache, shared by every key
STAMP = "stamp.json"
INITRD_NEEDS = ("virtio_blk", "virtio_pci", "ext4")
MASKED = ("apt-daily.timer", "apt-daily-upgrade.timer", "dpkg-db-backup.timer", "e2scrub_all.timer",
          "e2scrub_reap.service", "fstrim.timer", "man-db.timer")
ENABLED = ("jda-net.service", "ssh.service", "containerd.service", "docker.service")

JDA_NET_UNIT = f"""[Unit]
Description=Static address on eth0 for the harness's SSH channel (qemu user networking, no DHCP wait)
BindsTo=sys-subsystem-net-devices-eth0.device
After=sys-subsystem-net-devices-eth0.device
Before=ssh.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/sbin/ip link set eth0 up
ExecStart=/usr/sbin/ip addr replace {pins.GUEST_ADDRESS}/24 dev eth0

[Install]
WantedBy=multi-user.target sys-subsystem-net-devices-eth0.device
"""
SSHD_CONFIG = """# jdagent.vm: root by the harness's key only
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
HostKey /etc/ssh/ssh_host_ed25519_key
"""
JOURNALD_CONFIG = "[Journal]\nStorage=volatile\n"


def base_key(suite: str = pins.SUITE, packages: tuple[str, ...] = pins.PACKAGES, recipe: int = pins.RECIPE,
             disk_size: str = pins.DISK_SIZE) -> str:
    """Hash of everything that changes the base disk's bytes (not the mirror: same suite, same packages)."""
    data = {"suite": suite, "packages": sorted(packages), "recipe": recipe, "disk_size": disk_size}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Base:
    """A built (or to be built) base disk and what comes with it."""

    key: str

    @property
    def folder(self) -> Path:
        return VM_DIR / self.key

    @property
    def disk(self) -> Path:
        return self.folder / "disk.raw"

    @property
    def kernel(self) -> Path:
        return self.folder / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.folder / "initrd.img"

    @property
    def ssh_key(self) -> Path:
        return self.folder / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.folder / "known_hosts"

    @property
    def host_alias(self) -> str:
        return f"jda-vm-{self.key}"

    @property
    def stamp(self) -> Path:
        return self.folder / STAMP

    def complete(self) -> bool:
        return self.stamp.is_file() and all(p.is_file() for p in (self.disk, self.kernel, self.initrd, self.ssh_key))

    def facts(self) -> dict[str, object]:
        return dict(json.loads(self.stamp.read_text())) if self.stamp.is_file() else {}


def current() -> Base:
    return Base(base_key())


def missing(base: Base | None = None, force: bool = False) -> str | None:
    """What this machine lacks to boot `base` (default: the current pin's), and to build it first
    when it is not complete (or `force`); None when nothing is missing."""
    base = base or current()
    return host.missing(built=base.complete() and not force, key=base.ssh_key)


@contextlib.contextmanager
def locked(name: str) -> Iterator[None]:
    """An exclusive lock on `.tools/vm/.<name>.lock` (two builds of one key never overlap)."""
    VM_DIR.mkdir(parents=True, exist_ok=True)
    with (VM_DIR / f".{name}.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def wipe(folder: Path) -> None:
    """Remove a folder that may hold a half-built rootfs: its mounts (a debootstrap cut short leaves
    /proc and /sys mounted inside) go first, and nothing is removed while one stays."""
    if not folder.exists():
        return
    left = unmount_all(folder)
    if left:
        raise VmError(f"cannot remove {folder}: still mounted: {', '.join(left)}")
    shutil.rmtree(folder)


def _chroot(rootfs: Path, what: str, *cmd: str, timeout: float = 120) -> str:
    return capture(["chroot", str(rootfs), *cmd], what, timeout)


def parse_dpkg(text: str) -> dict[str, str]:
    """`dpkg-query -W -f '${Package}\\t${Version}\\n'` -> package -> version."""
    rows = (line.split("\t") for line in text.splitlines() if "\t" in line)
    return {name: version for name, version in rows}


def initrd_lacks(listing: str, builtin: str, needed: tuple[str, ...] = INITRD_NEEDS) -> list[str]:
    """The drivers of `needed` neither in the initrd (lsinitramfs output) nor built into the kernel
    (modules.builtin); module files may be compressed (.ko.xz, .ko.zst)."""
    present = set(re.findall(r"/([\w-]+)\.ko(?:\.\w+)?$", listing, re.M))
    present |= set(re.findall(r"/([\w-]+)\.ko$", builtin, re.M))
    return [name for name in needed if name not in present and name.replace("_", "-") not in present]


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink():
        path.unlink()
    path.write_text(text)
    path.chmod(mode)


def configure(rootfs: Path, base: Base) -> None:
    """Everything after debootstrap that makes the rootfs a node the harness can boot and reach."""
    etc = rootfs / "etc"
    _write(etc / "hostname", f"{pins.HOSTNAME}\n")
    _write(etc / "hosts", f"127.0.0.1 localhost\n127.0.1.1 {pins.HOSTNAME}\n::1 localhost ip6-localhost\n")
    _write(etc / "fstab", "# jdagent.vm: the whole disk is the root file system (no fsck: throw-away overlays)\n"
                          "/dev/vda / ext4 rw,relatime 0 0\n")
    _write(etc / "resolv.conf", "# jdagent.vm: the guest has no DNS and no route out\n")
    _write(etc / "machine-id", uuid.uuid4().hex + "\n", 0o444)
    _write(etc / "systemd" / "system" / "jda-net.service", JDA_NET_UNIT)
    _write(etc / "systemd" / "journald.conf.d" / "jda.conf", JOURNALD_CONFIG)
    _write(etc / "ssh" / "sshd_config.d" / "jda.conf", SSHD_CONFIG)
    for old in (etc / "ssh").glob("ssh_host_*"):
        old.unlink()
    host_key = etc / "ssh" / "ssh_host_ed25519_key"
    capture(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{base.host_alias}-host", "-f", str(host_key)],
            "generate the guest's host key", 60)
    for stale in (base.ssh_key, base.ssh_key.with_suffix(".pub")):
        stale.unlink(missing_ok=True)
    capture(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{base.host_alias}-harness", "-f",
             str(base.ssh_key)], "generate the harness's key", 60)
    root_ssh = rootfs / "root" / ".ssh"
    root_ssh.mkdir(mode=0o700, parents=True, exist_ok=True)
    _write(root_ssh / "authorized_keys", base.ssh_key.with_suffix(".pub").read_text(), 0o600)
    host_pub = host_key.with_suffix(".pub").read_text().split()
    base.known_hosts.write_text(f"{base.host_alias} {host_pub[0]} {host_pub[1]}\n")
    _chroot(rootfs, "enable the guest's services", "systemctl", "enable", *ENABLED)
    _chroot(rootfs, "mask the guest's maintenance timers", "systemctl", "mask", *MASKED)
    mark_updated(rootfs)
    for cache in (rootfs / "var" / "cache" / "apt" / "archives").glob("*.deb"):
        cache.unlink()
    for lists in (rootfs / "var" / "lib" / "apt" / "lists").glob("*_*"):
        lists.unlink()


def mark_updated(rootfs: Path) -> None:
    """Tell systemd that /etc and /var match /usr (what systemd-update-done writes after a first boot):
    every boot is a throw-away overlay, so ldconfig.service and friends would otherwise run at each."""
    usr_ns = (rootfs / "usr").stat().st_mtime_ns
    for folder in ("etc", "var"):
        _write(rootfs / folder / ".updated", "# This file was created by jdagent.vm like systemd-update-done.\n"
                                             f"TIMESTAMP_NSEC={usr_ns}\n")
        os.utime(rootfs / folder / ".updated", ns=(usr_ns, usr_ns))


def copy_boot_files(rootfs: Path, base: Base) -> str:
    """Kernel and initrd out of the rootfs, for qemu's -kernel/-initrd; the kernel's version."""
    kernels = sorted((rootfs / "boot").glob("vmlinuz-*"))
    if len(kernels) != 1:
        raise VmError(f"expected one kernel in {rootfs / 'boot'}, found {[k.name for k in kernels]}")
    version = kernels[0].name.removeprefix("vmlinuz-")
    initrd = rootfs / "boot" / f"initrd.img-{version}"
    if not initrd.is_file():
        raise VmError(f"the kernel package made no initrd ({initrd}): is initramfs-tools in pins.PACKAGES?")
    listing = _chroot(rootfs, "list the initrd's files", "lsinitramfs", f"/boot/{initrd.name}", timeout=300)
    modules = rootfs / "usr" / "lib" / "modules" / version
    builtin = (modules / "modules.builtin").read_text() if (modules / "modules.builtin").is_file() else ""
    lacking = initrd_lacks(listing, builtin)
    if lacking:
        raise VmError(f"the initrd {initrd.name} lacks {', '.join(lacking)}: the guest could not mount /dev/vda")
    shutil.copyfile(kernels[0], base.kernel)
    shutil.copyfile(initrd, base.initrd)
    return version


def build(base: Base | None = None) -> Base:
    """Build the base disk of the current pin now (the folder is redone from scratch)."""
    base = base or current()
    reason = host.missing(built=False)
    if reason:
        raise VmError(f"cannot build the VM base disk: {reason}")
    wipe(base.folder)
    base.folder.mkdir(parents=True)
    DEBS_DIR.mkdir(parents=True, exist_ok=True)
    rootfs, log = base.folder / "rootfs", base.folder / "build.log"
    mirror = host.mirror()
    seconds: dict[str, float] = {}
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C.UTF-8",
           "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
    say(f"building the base disk {base.key} ({pins.SUITE}, {len(pins.PACKAGES)} packages, recipe {pins.RECIPE}) "
        f"into {base.folder} from {mirror}; log {log}")
    try:
        seconds["debootstrap"] = run_step(
            ["debootstrap", "--variant=minbase", f"--include={','.join(pins.PACKAGES)}", f"--cache-dir={DEBS_DIR}",
             pins.SUITE, str(rootfs), mirror], "debootstrap", 1800, log, env=env)
        say(f"debootstrap done in {seconds['debootstrap']:.0f} s")
        started = time.monotonic()
        configure(rootfs, base)
        versions = parse_dpkg(_chroot(rootfs, "read the installed versions", "dpkg-query", "-W", "-f",
                                      "${Package}\t${Version}\n"))
        kernel = copy_boot_files(rootfs, base)
        seconds["configure"] = time.monotonic() - started
        seconds["mkfs"] = run_step(["mkfs.ext4", "-F", "-q", "-L", "jdaroot", "-d", str(rootfs), str(base.disk),
                                    pins.DISK_SIZE], "mkfs.ext4 -d", 900, log)
    finally:
        if mounts_under(rootfs):
            unmount_all(rootfs)
    wipe(rootfs)
    pinned = {name: versions.get(name, "MISSING") for name in pins.PACKAGES}
    pinned[f"linux-image-{kernel}"] = versions.get(f"linux-image-{kernel}", "?")
    facts = {"key": base.key, "suite": pins.SUITE, "recipe": pins.RECIPE, "mirror": mirror, "kernel": kernel,
             "versions": pinned, "packages_installed": len(versions),
             "seconds": {k: round(v, 1) for k, v in seconds.items()},
             "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    base.stamp.write_text(json.dumps(facts, indent=2) + "\n")
    total = sum(seconds.values())
    say(f"summary: base disk built in {total:.0f} s (" + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items())
        + f"); kernel {kernel}; " + ", ".join(f"{k} {v}" for k, v in pinned.items()))
    return base


def ensure(force: bool = False) -> Base:
    """The current pin's base disk, built now unless a complete build is there."""
    base = current()
    with locked(base.key):
        if base.complete() and not force:
            return base
        return build(base)


def describe(base: Base) -> str:
    facts = base.facts()
    versions = facts.get("versions", {})
    shown = ", ".join(f"{k} {v}" for k, v in versions.items()) if isinstance(versions, dict) else ""
    return f"base disk {base.key} ({base.folder}): kernel {facts.get('kernel')}; {shown}"


def disk_usage(path: Path) -> int:
    """Bytes a (sparse) file really takes."""
    return os.stat(path).st_blocks * 512 if path.exists() else 0


def qemu_img_create(overlay: Path, backing: Path, backing_format: str) -> None:
    """A qcow2 overlay on `backing` (a relative backing path resolves against the overlay's folder)."""
    overlay.unlink(missing_ok=True)
    capture(["qemu-img", "create", "-q", "-f", "qcow2", "-F", backing_format, "-b", str(backing), str(overlay)],
            f"create the overlay {overlay.name}", 60)


def image_format(path: Path) -> str:
    return "raw" if path.suffix == ".raw" else "qcow2"

