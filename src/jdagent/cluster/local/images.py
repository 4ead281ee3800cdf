"""Images the local cluster needs from nowhere: pause, compiled from Kubernetes' own pause.c (in the
k8s.io/kubernetes module at the pinned version, build/pause/linux/pause.c, with the flags of its
Makefile), and CoreDNS, the static binary built from its module (jdagent.cluster.local.pins); each
goes into a FROM-scratch image on the local Docker engine, then is imported into containerd."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from jdagent import gobuild
from jdagent.cluster.local import config, pins


def _docker_has(image: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode == 0


def ensure_pause() -> str:
    image = config.PAUSE_IMAGE
    if _docker_has(image):
        return image
    env = {**__import__("os").environ, "GOFLAGS": "-mod=mod"}
    source = gobuild.module_dir("k8s.io/kubernetes", pins.KUBERNETES, env, Path.cwd()) / "build/pause/linux/pause.c"
    with tempfile.TemporaryDirectory(prefix="jda-pause-") as tmp:
        folder = Path(tmp)
        subprocess.run(["gcc", "-Os", "-Wall", "-Werror", "-static", f"-DVERSION=v{pins.PAUSE}", "-o",
                        str(folder / "pause"), str(source)], check=True, capture_output=True, text=True)
        (folder / "Dockerfile").write_text('FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n')
        subprocess.run(["docker", "build", "-q", "-t", image, str(folder)], check=True, capture_output=True, text=True)
    return image


def ensure_coredns(folder: Path) -> str:
    """The CoreDNS image for the binary in `folder`, tagged with its build key (a new build, a new tag)."""
    image = f"{config.COREDNS_IMAGE}-{folder.name.rsplit('-', 1)[1]}"
    if _docker_has(image):
        return image
    with tempfile.TemporaryDirectory(prefix="jda-coredns-") as tmp:
        build = Path(tmp)
        (build / "coredns").write_bytes((folder / "coredns").read_bytes())
        (build / "coredns").chmod(0o755)
        (build / "Dockerfile").write_text('FROM scratch\nCOPY coredns /coredns\nUSER 65532:65532\n'
                                          'ENTRYPOINT ["/coredns"]\n')
        subprocess.run(["docker", "build", "-q", "-t", image, str(build)], check=True, capture_output=True, text=True)
    return image
