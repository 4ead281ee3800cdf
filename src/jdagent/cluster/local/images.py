"""Images the local cluster needs from nowhere: pause, compiled from Kubernetes' own pause.c (in the
k8s.io/kubernetes module at the pinned version, build/pause/linux/pause.c, with the flags of its
Makefile), CoreDNS and the mirror's Distribution, static binaries built from their modules
(jdagent.cluster.local.pins); each goes into a FROM-scratch image on the local Docker engine, then is
imported into containerd."""

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


def _scratch_image(image: str, binary: Path, dockerfile: str) -> str:
    """`image`, built FROM scratch around one static binary unless the engine already has it."""
    if _docker_has(image):
        return image
    with tempfile.TemporaryDirectory(prefix="jda-image-") as tmp:
        build = Path(tmp)
        (build / binary.name).write_bytes(binary.read_bytes())
        (build / binary.name).chmod(0o755)
        (build / "Dockerfile").write_text(dockerfile)
        subprocess.run(["docker", "build", "-q", "-t", image, str(build)], check=True, capture_output=True, text=True)
    return image


def _key(folder: Path) -> str:
    return folder.name.rsplit("-", 1)[1]


def ensure_coredns(folder: Path) -> str:
    """The CoreDNS image for the binary in `folder`, tagged with its build key (a new build, a new tag)."""
    return _scratch_image(f"{config.COREDNS_IMAGE}-{_key(folder)}", folder / "coredns",
                          'FROM scratch\nCOPY coredns /coredns\nUSER 65532:65532\nENTRYPOINT ["/coredns"]\n')


def ensure_distribution(folder: Path) -> str:
    """The mirror's registry (Distribution, built from its module at the chart's pin) for the binary in
    `folder`: /bin/registry on PATH, as in the upstream image, so the chart's command runs unchanged."""
    return _scratch_image(f"{config.DISTRIBUTION_IMAGE}-{_key(folder)}", folder / "registry",
                          "FROM scratch\nCOPY registry /bin/registry\nENV PATH=/bin\nUSER 1000:1000\n"
                          'ENTRYPOINT ["/bin/registry"]\nCMD ["serve", "/etc/distribution/config.yml"]\n')


def ensure_mirror_registry() -> str:
    """The Distribution image for the chart's mirror, built from its module first if needed."""
    program = next(p for p in pins.TOOLS if p.name == "distribution")
    return ensure_distribution(gobuild.build(program))
