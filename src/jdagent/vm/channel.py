"""The control channel from the host to the guest: OpenSSH over qemu's user-mode network.

Why SSH: it gives each command its own exit code, stdout and stderr, streams files both ways (an image
tarball goes from `docker save` on the host straight into `docker load` in the guest, with no copy on
either disk), and needs only the stock client here and openssh-server in the guest. qemu forwards one
port, bound to 127.0.0.1 only (`hostfwd=tcp:127.0.0.1:<port>-:22`), and the network is `restrict=on`:
the guest can reach nothing outside the qemu process. The harness's key and the guest's host key are
both generated at build time, so the host key is pinned (StrictHostKeyChecking, a known_hosts of our
own) and no user ssh config, agent or known_hosts is read. A ControlMaster connection (our child, ended
by pid) saves a key exchange under emulation per command; if it dies, commands connect directly.
qemu-guest-agent was the alternative: no port at all, but base64 chunks over JSON for files and no
stderr stream, which makes multi-hundred-megabyte image imports slow.

Every command runs under `timeout` in the guest as well as with a host-side timeout, so a stuck
command neither hangs the harness nor lives on in the guest after the client gave up.
"""

from __future__ import annotations

import contextlib
import shlex
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from jdagent.vm.progress import VmError, heartbeat

CONNECT_TIMEOUT_S = 10
SOCKET_PATH_MAX = 90  # ssh appends a random suffix to the ControlPath while creating it (sun_path is 108)


@dataclass(frozen=True)
class Result:
    rc: int
    stdout: str
    stderr: str

    def check(self, what: str) -> Result:
        if self.rc != 0:
            raise VmError(f"{what}: exited {self.rc}: {(self.stderr or self.stdout).strip()[-2000:]}")
        return self


@dataclass
class Ssh:
    port: int
    key: Path
    known_hosts: Path
    alias: str
    control: Path | None = None
    _master: subprocess.Popen[bytes] | None = None

    def options(self, multiplex: bool = True) -> list[str]:
        opts = ["-F", "/dev/null", "-p", str(self.port), "-i", str(self.key),
                "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={self.known_hosts}",
                "-o", "GlobalKnownHostsFile=/dev/null", "-o", f"HostKeyAlias={self.alias}",
                "-o", "CheckHostIP=no", "-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}",
                "-o", "ServerAliveInterval=10", "-o", "ServerAliveCountMax=6", "-o", "LogLevel=ERROR"]
        if multiplex and self.control is not None:
            opts += ["-o", f"ControlPath={self.control}", "-o", "ControlMaster=no"]
        return opts

    def argv(self, remote: str, multiplex: bool = True) -> list[str]:
        return ["ssh", *self.options(multiplex), "root@127.0.0.1", "--", remote]

    @staticmethod
    def bounded(command: str | Sequence[str], timeout: float) -> str:
        """The remote command line: `command` (a shell string, or argv quoted here) killed by the guest
        itself after `timeout` seconds (exit 124)."""
        line = command if isinstance(command, str) else shlex.join(command)
        return f"timeout -k 5 {max(1, int(timeout))} sh -c {shlex.quote(line)}"

    def run(self, command: str | Sequence[str], timeout: float = 120, input: bytes | None = None,
            multiplex: bool = True) -> Result:
        """(rc, stdout, stderr) of `command` in the guest; rc 255 is ssh's own failure."""
        argv = self.argv(self.bounded(command, timeout), multiplex)
        try:
            proc = subprocess.run(argv, input=input if input is not None else b"", capture_output=True,
                                  timeout=timeout + 15)
        except subprocess.TimeoutExpired:
            raise VmError(f"guest command gave no result within {timeout + 15:.0f} s: {command}") from None
        return Result(proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace"))

    def reachable(self) -> bool:
        """Whether sshd answers and accepts the key (a direct connection, not the master)."""
        try:
            proc = subprocess.run(self.argv("true", multiplex=False), capture_output=True, timeout=30,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return False
        return proc.returncode == 0

    def put(self, local: Path, remote: str, mode: int | None = None, timeout: float = 300) -> None:
        """Copy a host file into the guest (written beside, then renamed)."""
        part = f"{remote}.part"
        chmod = f" && chmod {mode:o} {shlex.quote(part)}" if mode is not None else ""
        line = f"cat > {shlex.quote(part)}{chmod} && mv {shlex.quote(part)} {shlex.quote(remote)}"
        with local.open("rb") as source:
            self._stream(self.bounded(line, timeout), timeout, stdin=source).check(f"copy {local} to {remote}")

    def get(self, remote: str, local: Path, timeout: float = 300) -> None:
        """Copy a guest file to the host (written beside, then renamed)."""
        part = local.with_name(local.name + ".part")
        with part.open("wb") as sink:
            result = self._stream(self.bounded(["cat", remote], timeout), timeout, stdout=sink)
        if result.rc != 0:
            part.unlink(missing_ok=True)
            result.check(f"copy {remote} from the guest")
        part.replace(local)

    def pipe(self, source: Sequence[str], command: str, timeout: float) -> Result:
        """Run `source` on the host with its stdout into `command`'s stdin in the guest (both bounded)."""
        producer = subprocess.Popen(list(source), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    stdin=subprocess.DEVNULL)
        sent = Path(f"/proc/{producer.pid}/io")

        def progress() -> str:
            written = next(int(v) for k, v in (line.split(": ") for line in sent.read_text().splitlines())
                           if k == "wchar")
            return f"{written / 1e6:.0f} MB sent"

        try:
            assert producer.stdout is not None
            with heartbeat(f"{' '.join(source[:2])} into the guest's {command.split()[0]}", progress):
                result = self._stream(self.bounded(command, timeout), timeout, stdin=producer.stdout)
            producer.stdout.close()
            _, err = producer.communicate(timeout=30)
        finally:
            if producer.poll() is None:
                producer.kill()
                producer.wait()
        if producer.returncode != 0:
            raise VmError(f"`{' '.join(source)}` exited {producer.returncode}: {err.decode(errors='replace')[-2000:]}")
        return result

    def _stream(self, remote: str, timeout: float, stdin: IO[bytes] | None = None,
                stdout: IO[bytes] | None = None) -> Result:
        argv = self.argv(remote)
        proc = subprocess.Popen(argv, stdin=stdin if stdin is not None else subprocess.DEVNULL,
                                stdout=stdout if stdout is not None else subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = proc.communicate(timeout=timeout + 15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise VmError(f"guest transfer gave no result within {timeout + 15:.0f} s: {remote}") from None
        return Result(proc.returncode, (out or b"").decode(errors="replace"), err.decode(errors="replace"))

    def start_master(self, timeout: float = 30) -> bool:
        """Open the shared connection; False (commands then connect one by one) when it cannot be had."""
        if self.control is None or len(str(self.control)) > SOCKET_PATH_MAX:
            self.control = None
            return False
        self.control.unlink(missing_ok=True)
        argv = ["ssh", *self.options(multiplex=False), "-o", f"ControlPath={self.control}", "-o", "ControlMaster=yes",
                "-o", "ControlPersist=no", "-N", "root@127.0.0.1"]
        self._master = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._master.poll() is None:
            if self.control.exists():
                return True
            time.sleep(0.2)
        self.stop_master()
        return False

    def stop_master(self) -> None:
        if self._master is not None:
            if self._master.poll() is None:
                self._master.terminate()
                try:
                    self._master.wait(10)
                except subprocess.TimeoutExpired:
                    self._master.kill()
                    self._master.wait()
            self._master = None
        if self.control is not None:
            with contextlib.suppress(OSError):
                self.control.unlink()
