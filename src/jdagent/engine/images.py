"""Local stand-ins for the chart's upstream images (docker:dind, jenkins/inbound-agent), a tiny busybox
base for sample builds, and Debian's docker-registry, all built from a debootstrapped Debian base, so
that nothing is pulled from a container registry.

Images are tagged with a hash of their build context and reused when already present.
`python -m jdagent.engine.images` (scripts/build-standins) builds them all and prints their tags.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

import docker
from docker.errors import ImageNotFound

BASE_REPO = "jda-base"
BASE_SUITE = os.environ.get("JDA_BASE_SUITE", "trixie")
STANDINS = ("dind", "jnlp", "busybox", "registry", "front")


def log(message: str) -> None:
    print(f"[jda-images] {message}", file=sys.stderr, flush=True)


def client() -> docker.DockerClient:
    return docker.from_env(version="auto", timeout=600)


def _exists(cli: docker.DockerClient, tag: str) -> bool:
    try:
        cli.images.get(tag)
        return True
    except ImageNotFound:
        return False


def ensure_base(cli: docker.DockerClient) -> str:
    """Debian minbase root filesystem imported as an image (debootstrap needs root)."""
    tag = f"{BASE_REPO}:{BASE_SUITE}"
    if _exists(cli, tag):
        return tag
    if shutil.which("debootstrap") is None:
        raise RuntimeError("debootstrap is missing: apt-get install debootstrap (needed once to build the base image)")
    if os.geteuid() != 0:
        raise RuntimeError("building the base image runs debootstrap, which needs root")
    with tempfile.TemporaryDirectory(prefix="jda-debootstrap-") as tmp:
        root = Path(tmp) / "rootfs"
        log(f"debootstrap --variant=minbase {BASE_SUITE} (about 30 s)")
        started = time.monotonic()
        subprocess.run(["debootstrap", "--variant=minbase", BASE_SUITE, str(root)], check=True,
                       stdout=subprocess.DEVNULL)
        tarball = Path(tmp) / "rootfs.tar"
        subprocess.run(["tar", "-C", str(root), "-cf", str(tarball), "."], check=True)
        repo, _, suite = tag.partition(":")
        cli.api.import_image_from_file(str(tarball), repository=repo, tag=suite)
        log(f"{tag} imported in {time.monotonic() - started:.0f} s")
    return tag


def _context(name: str) -> Path:
    return Path(str(resources.files("jdagent.engine") / "standins" / name))


def _context_hash(path: Path, base_id: str) -> str:
    digest = hashlib.sha256(base_id.encode())
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(file.relative_to(path).as_posix().encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()[:12]


def ensure(cli: docker.DockerClient, name: str) -> str:
    """Tag of the stand-in image `name`, built if missing."""
    base = ensure_base(cli)
    context = _context(name)
    tag = f"jda-standin-{name}:{_context_hash(context, cli.images.get(base).id)}"
    if _exists(cli, tag):
        return tag
    log(f"building {tag}")
    started = time.monotonic()
    for chunk in cli.api.build(path=str(context), tag=tag, buildargs={"BASE_IMAGE": base}, rm=True,
                               forcerm=True, decode=True):
        if "error" in chunk:
            raise RuntimeError(f"building {tag} failed: {chunk['error']}")
        line = chunk.get("stream", "").strip()
        if line.startswith("Step "):
            log(f"  {line}")
    log(f"{tag} built in {time.monotonic() - started:.0f} s")
    return tag


def ensure_all(cli: docker.DockerClient | None = None) -> dict[str, str]:
    cli = cli or client()
    return {name: ensure(cli, name) for name in STANDINS}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build (or reuse) the local stand-in images.")
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"only these stand-ins ({', '.join(STANDINS)})")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(STANDINS))
    if unknown:
        parser.error(f"unknown stand-in(s) {unknown}; choose from {', '.join(STANDINS)}")
    cli = client()
    for name in args.names or STANDINS:
        print(f"{name}={ensure(cli, name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
