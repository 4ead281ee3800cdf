"""One boot of the guest: `Machine` is a context manager around a qemu process.

It boots a throw-away qcow2 overlay on a backing disk (the base disk, or a prepared disk with images),
or, for preparing such a disk, a given writable disk. The serial console goes to
`.artifacts/vm/<name>/console.log` (qemu's own messages to qemu.log beside it). Ready means: SSH
answers with the pinned host key, `systemctl is-system-running --wait` says running or degraded
(failed units are reported), and `docker info` answers. Every wait is bounded and its error names the
step and shows the console's tail. Stopping powers the guest off over SSH with a bounded wait, then
terminates and kills qemu; the overlay is removed. qemu and the SSH master are our children, ended by
pid, and die with us (PR_SET_PDEATHSIG) if the harness itself is killed.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from jdagent.paths import ARTIFACTS_DIR
from jdagent.vm import pins
from jdagent.vm.channel import Result, Ssh
from jdagent.vm.image import Base, image_format, qemu_img_create
from jdagent.vm.progress import VmError, capture, heartbeat, say, tail

BOOT_TIMEOUT_S = float(os.environ.get("JDA_VM_BOOT_TIMEOUT", "360"))
SHUTDOWN_TIMEOUT_S = 120.0
PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (qemu binds it a moment later; a lost race is retried)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def qemu_argv(base: Base, disk: Path, port: int, console: Path, *, name: str, cache: str,
              memory_mb: int = pins.MEMORY_MB, cpus: int = pins.CPUS, extra: Sequence[Path] = ()) -> list[str]:
    """The qemu command line: software emulation, Debian's kernel and initrd, the disk on virtio (then
    `extra` files as read-only raw disks: /dev/vdb, ...), the user-mode network restricted to the guest
    with one forward from 127.0.0.1, the console to a file."""
    drives = [arg for path in extra for arg in ("-drive", f"file={path},if=virtio,format=raw,readonly=on")]
    return [
        "qemu-system-x86_64", "-name", f"jda-vm-{name}", "-nodefaults", "-no-user-config", "-display", "none",
        "-accel", pins.ACCEL, "-cpu", pins.CPU, "-smp", str(cpus), "-m", str(memory_mb),
        "-kernel", str(base.kernel), "-initrd", str(base.initrd), "-append", " ".join(pins.KERNEL_ARGS),
        "-drive", f"file={disk},if=virtio,format={image_format(disk)},cache={cache}", *drives,
        "-netdev", f"user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:22",
        "-device", "virtio-net-pci,netdev=net0,romfile=",  # no PXE option ROM: the kernel is given
        "-device", "virtio-rng-pci",
        "-serial", f"file:{console}",
        "-monitor", "none", "-no-reboot",
    ]


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the harness dies, so no qemu outlives it."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def failed_units(text: str) -> list[str]:
    """Unit names from `systemctl --failed --plain --no-legend`."""
    return [line.split()[0] for line in text.splitlines() if line.strip() and not line.startswith(" ")]


class Machine:
    """A booted guest. `backing`: the disk under the throw-away overlay (default the base disk);
    `writable`: boot this disk itself and keep it (preparing a disk); `extra`: host files the guest
    reads as raw disks /dev/vdb, /dev/vdc, ... (read-only)."""

    def __init__(self, base: Base, name: str, backing: Path | None = None, writable: Path | None = None,
                 boot_timeout: float = BOOT_TIMEOUT_S, extra: Sequence[Path] = ()) -> None:
        self.base, self.name, self.boot_timeout, self.extra = base, name, boot_timeout, tuple(extra)
        self.folder = ARTIFACTS_DIR / "vm" / name
        self.console = self.folder / "console.log"
        self.qemu_log = self.folder / "qemu.log"
        self.backing = backing or base.disk
        self.overlay = None if writable else self.folder / "disk.qcow2"
        self.disk = writable or self.folder / "disk.qcow2"
        self.timings: dict[str, float] = {}
        self.state = ""
        self.failed: list[str] = []
        self.clean_shutdown = False
        self._qemu: subprocess.Popen[bytes] | None = None
        self._ssh: Ssh | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def __enter__(self) -> Machine:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        if not self.base.complete():
            raise VmError(f"the base disk {self.base.key} is not built: python -m jdagent.vm build")
        self.folder.mkdir(parents=True, exist_ok=True)
        for old in (self.console, self.qemu_log):
            old.unlink(missing_ok=True)
        if self.overlay is not None:
            qemu_img_create(self.overlay, self.backing.resolve(), image_format(self.backing))
        started = time.monotonic()
        for attempt in range(3):
            port = free_port()
            if self._launch(port):
                break
            if attempt == 2:
                raise VmError(f"vm {self.name}: qemu could not forward 127.0.0.1:{port}:\n{tail(self.qemu_log)}")
        self._wait_ready(started)

    def _launch(self, port: int) -> bool:
        """Start qemu on `port`; False when it exits at once because the port was taken meanwhile."""
        cache = "writeback" if self.overlay is None else "unsafe"  # a throw-away overlay needs no flushes
        argv = qemu_argv(self.base, self.disk, port, self.console, name=self.name, cache=cache, extra=self.extra)
        with self.qemu_log.open("ab") as log:
            log.write(f"$ {' '.join(argv)}\n".encode())
            log.flush()
            self._qemu = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True, preexec_fn=_die_with_parent)
        try:
            self._qemu.wait(2)
        except subprocess.TimeoutExpired:
            self._ssh = Ssh(port, self.base.ssh_key, self.base.known_hosts, self.base.host_alias,
                            control=self.folder / "ssh.ctl")
            say(f"{self.name}: qemu {self._qemu.pid} started (ssh on 127.0.0.1:{port}, console {self.console})")
            return True
        if "forwarding" in tail(self.qemu_log):
            return False
        raise VmError(f"vm {self.name}: qemu exited {self._qemu.returncode} at once:\n{tail(self.qemu_log)}")

    def _fail(self, step: str) -> VmError:
        return VmError(f"vm {self.name}: {step}\n--- console tail ({self.console}) ---\n{tail(self.console, 40)}")

    def _wait_ready(self, started: float) -> None:
        deadline = started + self.boot_timeout
        ssh = self.ssh
        while not ssh.reachable():
            if self._qemu is not None and self._qemu.poll() is not None:
                raise self._fail(f"qemu exited {self._qemu.returncode} before SSH answered ({tail(self.qemu_log, 5)})")
            if time.monotonic() > deadline:
                raise self._fail(f"SSH did not answer within {self.boot_timeout:.0f} s of qemu's start")
            time.sleep(1)
        self.timings["ssh"] = time.monotonic() - started
        ssh.start_master()
        left = max(30.0, deadline - time.monotonic())
        result = ssh.run("systemctl is-system-running --wait", timeout=left)
        self.state = result.stdout.strip()
        if self.state not in ("running", "degraded"):
            jobs = ssh.run("systemctl list-jobs --no-pager", timeout=30).stdout
            raise self._fail(f"systemd did not finish starting within {left:.0f} s after SSH answered "
                             f"(state {self.state or result.rc!r}); pending jobs:\n{jobs}")
        if self.state == "degraded":
            self.failed = failed_units(ssh.run("systemctl --failed --plain --no-legend", timeout=30).stdout)
        docker = ssh.run("docker info --format '{{.ServerVersion}}'", timeout=60)
        if docker.rc != 0:
            raise self._fail(f"docker does not answer in the guest: {docker.stderr.strip()}")
        self.timings["boot"] = time.monotonic() - started
        failed = f"; failed units: {', '.join(self.failed)}" if self.failed else ""
        say(f"summary: {self.name} booted to ready in {self.timings['boot']:.0f} s (SSH after "
            f"{self.timings['ssh']:.0f} s, systemd {self.state}{failed}, docker {docker.stdout.strip()})")

    def stop(self) -> bool:
        """Power off (bounded), else terminate, else kill qemu; remove the overlay. True if clean."""
        started = time.monotonic()
        qemu, self._qemu = self._qemu, None
        self.clean_shutdown = False
        if qemu is not None and qemu.poll() is None:
            asked = False
            if self._ssh is not None and "ssh" in self.timings:  # a guest that never answered is not waited for
                with contextlib.suppress(VmError):
                    # 255: sshd went down with the guest before the exit code came back
                    asked = self._ssh.run("systemctl poweroff --no-block", timeout=20).rc in (0, 255)
            wait = SHUTDOWN_TIMEOUT_S if asked else 0.1
            try:
                qemu.wait(wait)
                self.clean_shutdown = asked
            except subprocess.TimeoutExpired:
                if asked:
                    say(f"{self.name}: the guest did not power off within {wait:.0f} s: terminating qemu")
                qemu.terminate()
                try:
                    qemu.wait(15)
                except subprocess.TimeoutExpired:
                    qemu.kill()
                    qemu.wait()
        if self._ssh is not None:
            self._ssh.stop_master()
        if self.overlay is not None:
            self.overlay.unlink(missing_ok=True)
        if qemu is not None:
            self.timings["shutdown"] = time.monotonic() - started
        return self.clean_shutdown

    # -- use -------------------------------------------------------------------------------------
    @property
    def ssh(self) -> Ssh:
        if self._ssh is None:
            raise VmError(f"vm {self.name} is not running")
        return self._ssh

    def run(self, command: str | Sequence[str], timeout: float = 120, check: bool = False) -> Result:
        """(rc, stdout, stderr) of a shell command line (or an argv) in the guest, as root."""
        result = self.ssh.run(command, timeout=timeout)
        return result.check(f"vm {self.name}: {command}") if check else result

    def put(self, local: Path, remote: str, mode: int | None = None, timeout: float = 300) -> None:
        self.ssh.put(local, remote, mode, timeout)

    def get(self, remote: str, local: Path, timeout: float = 300) -> None:
        self.ssh.get(remote, local, timeout)

    def load_images(self, names: Sequence[str], timeout: float = 1500) -> dict[str, str]:
        """`docker save` the host engine's images straight into `docker load` in the guest (over SSH, no
        copy on either disk); their IDs, checked to be the same in the guest."""
        ids = host_image_ids(names)
        size = sum(int(capture(["docker", "image", "inspect", "-f", "{{.Size}}", n], "image size", 60)) for n in names)
        say(f"{self.name}: importing {', '.join(names)} ({size / 1e6:.0f} MB) into the guest over SSH")
        started = time.monotonic()
        self.ssh.pipe(["docker", "save", *names], "docker load", timeout).check(f"vm {self.name}: docker load")
        return self._loaded(ids, started, f"{size / 1e6:.0f} MB over SSH")

    def load_archive(self, device: str, ids: dict[str, str], timeout: float = 1500) -> dict[str, str]:
        """`docker load` from an image archive the guest reads as a disk (`extra`): no SSH encryption
        competing with docker for the two emulated CPUs. `ids`: what the archive holds (checked)."""
        say(f"{self.name}: docker load from {device} ({', '.join(ids)})")
        started = time.monotonic()
        with heartbeat(f"{self.name}: docker load from {device}"):
            self.run(["docker", "load", "-i", device], timeout, check=True)
        return self._loaded(ids, started, f"from {device}")

    def _loaded(self, ids: dict[str, str], started: float, how: str) -> dict[str, str]:
        for name, image_id in ids.items():
            found = self.run(["docker", "image", "inspect", "-f", "{{.Id}}", name], 60, check=True).stdout.strip()
            if found != image_id:
                raise VmError(f"vm {self.name}: {name} is {found} in the guest, {image_id} on the host")
        self.timings["import"] = time.monotonic() - started
        say(f"summary: {self.name}: imported {len(ids)} image(s) ({how}) in {self.timings['import']:.0f} s")
        return ids


def host_image_ids(names: Sequence[str]) -> dict[str, str]:
    """Image IDs on the host's Docker engine (an error naming the image when one is missing)."""
    return {n: capture(["docker", "image", "inspect", "-f", "{{.Id}}", n], f"find the image {n} on the host's "
                       "Docker engine", 60).strip() for n in names}
