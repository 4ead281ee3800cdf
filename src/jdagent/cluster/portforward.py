"""Reach a Service or pod from the host: `kubectl port-forward` bound to 127.0.0.1, and proxies kept away
from loopback."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

from jdagent import tools
from jdagent.cluster.provider import Cluster


def loopback_without_proxy() -> None:
    """Keep HTTP(S)_PROXY away from the port-forwards on 127.0.0.1 (requests and urllib read NO_PROXY)."""
    for var in ("NO_PROXY", "no_proxy"):
        entries = [e for e in os.environ.get(var, "").split(",") if e]
        for host in ("127.0.0.1", "localhost"):
            if host not in entries:
                entries.append(host)
        os.environ[var] = ",".join(entries)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def port_forward(cluster: Cluster, namespace: str, target: str, remote: int,
                 deadline_s: float = 30) -> Iterator[int]:
    """kubectl port-forward on 127.0.0.1; yields the local port. kubectl's output goes to a file, so a
    chatty or failing kubectl never blocks us; on failure its output is in the error."""
    local = free_port()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(
            [str(tools.find_kubectl()), "--kubeconfig", str(cluster.kubeconfig), "-n", namespace, "port-forward",
             "--address", "127.0.0.1", target, f"{local}:{remote}"],
            stdout=out, stderr=subprocess.STDOUT, text=True,
        )
        try:
            deadline = time.monotonic() + deadline_s
            while True:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", local), timeout=1):
                    break
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    proc.wait(timeout=10)
                    out.seek(0)
                    raise RuntimeError(f"port-forward {namespace}/{target} {local}:{remote} failed "
                                       f"(exit {proc.returncode}): {out.read()[-2000:]}")
                time.sleep(0.3)
            yield local
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
