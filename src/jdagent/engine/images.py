"""Local stand-ins for the chart's upstream images (docker:dind, jenkins/inbound-agent), a tiny busybox
base for sample builds, and Debian's docker-registry, all built from a debootstrapped Debian base, so
that nothing is pulled from a container registry.

Images are tagged with a hash of their build context and reused when already present.
`python -m jdagent.engine.images` (scripts/build-standins) builds them all and prints their tags.

A second dind stand-in, `jda-standin-dind29`, carries the chart's pinned daemon built from its Go modules
(jdagent.engine.dockerd: dockerd 29.7.1, containerd, runc, the docker CLI 29.7.2): its Go builds take
about 14 minutes cold on two cores, so it is built only when asked (`--dind29`, or the name `dind29`), or
along with the others when those builds are already in .tools/go/ (then it costs the image build alone).
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
DIND29 = "dind29"   # the pinned-daemon stand-in: not in STANDINS, its context holds Go builds (ensure_dind29)


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


def _build(cli: docker.DockerClient, context: Path, tag: str, buildargs: dict[str, str]) -> None:
    log(f"building {tag}")
    started = time.monotonic()
    for chunk in cli.api.build(path=str(context), tag=tag, buildargs=buildargs, rm=True, forcerm=True, decode=True):
        if "error" in chunk:
            raise RuntimeError(f"building {tag} failed: {chunk['error']}")
        line = chunk.get("stream", "").strip()
        if line.startswith("Step "):
            log(f"  {line}")
    log(f"{tag} built in {time.monotonic() - started:.0f} s")


def ensure(cli: docker.DockerClient, name: str) -> str:
    """Tag of the stand-in image `name`, built if missing."""
    if name == DIND29:
        return ensure_dind29(cli)
    base = ensure_base(cli)
    context = _context(name)
    tag = f"jda-standin-{name}:{_context_hash(context, cli.images.get(base).id)}"
    if not _exists(cli, tag):
        _build(cli, context, tag, {"BASE_IMAGE": base})
    return tag


class Dind29Missing(RuntimeError):
    """The pinned daemon's Go builds are not in .tools/go/ and building them was not asked for."""


def ensure_dind29(cli: docker.DockerClient, build: bool = False, plugins: bool | None = None) -> str:
    """Tag of the pinned-daemon stand-in (jda-standin-dind29:<key>), built if missing. Its Go builds come
    from .tools/go/; with `build` the missing ones are built first (cold: about 14 minutes on two cores),
    without it a missing build raises Dind29Missing. `plugins`: buildx and compose from their modules
    (None: with `build` yes, else when they are built already); without them Debian's docker-buildx."""
    from jdagent.engine import dockerd

    use_plugins = plugins if plugins is not None else build or dockerd.built(dockerd.PLUGINS) is not None
    programs = dockerd.PROGRAMS + (dockerd.PLUGINS if use_plugins else ())
    if build:
        folders = dockerd.build(plugins=use_plugins)
    else:
        found = dockerd.built(programs)
        if found is None:
            raise Dind29Missing("the pinned dockerd's Go builds are not in .tools/go/: build them with "
                                "`python -m jdagent.engine.images --dind29` (about 14 minutes cold on two cores)")
        folders = found
    base = ensure_base(cli)
    context = _context(DIND29)
    digest = hashlib.sha256(_context_hash(context, cli.images.get(base).id).encode())
    for program in programs:
        digest.update(folders[program.name].name.encode())  # <name>-<version>-<key of every build input>
    tag = f"jda-standin-{DIND29}:{digest.hexdigest()[:12]}"
    if _exists(cli, tag):
        return tag
    with tempfile.TemporaryDirectory(prefix="jda-dind29-") as tmp:
        root = Path(tmp)
        for name in ("bin", "plugins", "licenses"):
            (root / name).mkdir()
        for file in context.iterdir():
            shutil.copy2(file, root / file.name)
        for program in programs:
            folder = folders[program.name]
            for binary in program.packages:
                target = root / ("plugins" if program in dockerd.PLUGINS else "bin") / binary
                _link_or_copy(folder / binary, target)
            shutil.copy2(folder / "LICENSES.txt", root / "licenses" / f"{program.name}.txt")
            for extra in program.module_files:  # moby's hack/dind, read from the module in the Go module cache
                shutil.copyfile(folder / extra, root / Path(extra).name)
        # modes are set here, not by a RUN chmod, which would copy every binary into another layer
        for executable in [root / "dind", root / "dockerd-entrypoint.sh", *(root / "bin").iterdir(),
                           *(root / "plugins").iterdir()]:
            executable.chmod(0o755)
        _build(cli, root, tag, {"BASE_IMAGE": base, "DEBIAN_BUILDX": "0" if use_plugins else "1"})
    return tag


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def ensure_all(cli: docker.DockerClient | None = None) -> dict[str, str]:
    """Every stand-in by role. JDA_DIND_STANDIN=dind29 makes the pinned-daemon stand-in the `dind` of every
    tier (its Go builds must be in .tools/go/ already: `python -m jdagent.engine.images --dind29`)."""
    cli = cli or client()
    found = {name: ensure(cli, name) for name in STANDINS}
    choice = os.environ.get("JDA_DIND_STANDIN", "dind")
    if choice == DIND29:
        found["dind"] = ensure_dind29(cli)
    elif choice != "dind":
        raise ValueError(f"JDA_DIND_STANDIN={choice!r}: choose dind (Debian's dockerd) or {DIND29} (the pinned daemon)")
    return found


def main(argv: list[str] | None = None) -> int:
    from jdagent.engine import dockerd

    parser = argparse.ArgumentParser(description="Build (or reuse) the local stand-in images.")
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"only these stand-ins ({', '.join((*STANDINS, DIND29))})")
    parser.add_argument("--dind29", action="store_true",
                        help=f"also the pinned-daemon stand-in (dockerd {dockerd.DOCKER_VERSION}), building its Go "
                             "binaries first when they are not in .tools/go/ (about 14 minutes cold on two cores); "
                             "without this flag it is built only when those binaries are there already")
    args = parser.parse_args(argv)
    known = (*STANDINS, DIND29)
    unknown = sorted(set(args.names) - set(known))
    if unknown:
        parser.error(f"unknown stand-in(s) {unknown}; choose from {', '.join(known)}")
    names = list(args.names or STANDINS)
    build29 = args.dind29 or DIND29 in names
    if DIND29 in names:
        names.remove(DIND29)
    cli = client()
    for name in names:
        print(f"{name}={ensure(cli, name)}")
    if build29 or (not args.names and dockerd.built() is not None):
        print(f"{DIND29}={ensure_dind29(cli, build=build29)}")
    elif not args.names:
        log(f"{DIND29} skipped: its Go builds are not in .tools/go/ (--dind29 builds them)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
