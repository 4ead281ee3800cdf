"""Build a prewarmed dind image: DIND_IMAGE plus `docker save` archives of the images a build needs.

    scripts/build-prewarmed-dind --base docker:29.7.2-dind --tag registry.example.com/ci/dind-prewarmed:1 \
        busybox:1.37.0 alpine:3.22

then set agent.dind.image to that tag, agent.dind.prewarm.enabled=true and agent.dind.prewarm.images
to the same list.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

import docker
from docker.errors import ImageNotFound


def log(message: str) -> None:
    print(f"[prewarm] {message}", file=sys.stderr, flush=True)


def _local_or_pull(client: docker.DockerClient, image: str, pull: bool) -> None:
    try:
        client.images.get(image)
    except ImageNotFound:
        if not pull:
            raise
        log(f"pulling {image}")
        client.images.pull(image)


def build(client: docker.DockerClient, base: str, images: list[str], tag: str, pull: bool = True) -> str:
    """Build `tag` from `base` with archives of `images`; returns the tag."""
    if not images:
        raise ValueError("name at least one image to bake in")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="jda-prewarm-") as tmp:
        context = Path(tmp)
        shutil.copy(Path(str(resources.files("jdagent") / "prewarm" / "Dockerfile")), context / "Dockerfile")
        (context / "images").mkdir()
        for image in images:
            _local_or_pull(client, image, pull)
            target = context / "images" / (re.sub(r"[^A-Za-z0-9_.-]", "_", image) + ".tar")
            with target.open("wb") as out:
                for chunk in client.images.get(image).save(named=True):
                    out.write(chunk)
            log(f"{image}: {target.stat().st_size / 1e6:.1f} MB archive")
        for chunk in client.api.build(path=str(context), tag=tag, buildargs={"DIND_IMAGE": base}, rm=True,
                                      forcerm=True, decode=True):
            if "error" in chunk:
                raise RuntimeError(f"building {tag} failed: {chunk['error']}")
    log(f"{tag} built from {base} with {len(images)} image(s) in {time.monotonic() - started:.1f} s")
    return tag


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="dind image to extend (the chart's agent.dind.image)")
    parser.add_argument("--tag", required=True, help="tag of the prewarmed image")
    parser.add_argument("--no-pull", action="store_true", help="use only images already present locally")
    parser.add_argument("images", nargs="+", help="images to bake in")
    args = parser.parse_args(argv)
    client = docker.from_env(version="auto", timeout=900)
    build(client, args.base, args.images, args.tag, pull=not args.no_pull)
    print(args.tag)
    return 0


if __name__ == "__main__":
    sys.exit(main())
