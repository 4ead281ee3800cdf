"""Build a prewarmed dind image: the dind image plus the images a build needs, baked in the form that
costs an agent nothing (or least) at start:

- vfs: a data root at /var/lib/jda-prewarm/data-root/vfs, a path that is not a VOLUME. dind-start.sh
  points dockerd's --data-root there: the images exist as soon as dockerd answers, nothing is loaded.
  Builds then write into the container's writable layer (its ephemeral storage, not the emptyDir).
- overlay2: a data root at /var/lib/jda-prewarm/data-root/overlay2, set up in the /var/lib/docker
  emptyDir at start (overlay2 cannot run on the container's own overlay root): its metadata is copied
  and each layer's diff is bind-mounted read-only from the image, so no image content is copied. Baked
  only when no image layer holds whiteouts: overlay2 keeps them as 0/0 character devices, which an
  image layer cannot carry (the outer overlay would read them as its own whiteouts). Whether file
  capabilities inside baked layers survive depends on the engine that commits the image (not tested).
- archives (`docker save`) at /opt/jda-prewarm, loaded by the chart's postStart hook: kept only for a
  driver without a data root.

Each data root is written by the dind image's own dockerd, so its format matches the daemon that will
read it. /opt/jda-prewarm/manifest.json says what was baked and why.

    scripts/build-prewarmed-dind --base docker:29.7.2-dind --tag registry.example.com/ci/dind-prewarmed:1 \\
        busybox:1.37.0 alpine:3.22

then set agent.dind.image to that tag, agent.dind.prewarm.enabled=true and agent.dind.prewarm.images to
the same list.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import docker
from docker.errors import ImageNotFound

from jdagent.engine.podrun import PodRunError, PodRunner

DATA_ROOTS = "/var/lib/jda-prewarm/data-root"
ARCHIVES = "/opt/jda-prewarm"
DRIVERS = ("vfs", "overlay2")
BAKE_SOCKET = "unix:///jda-bake/docker.sock"


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


def whiteouts(archive: Path) -> list[str]:
    """Whiteout entries (".wh.*", opaque markers included) in the layers of a `docker save` archive."""
    found = []
    with tarfile.open(archive) as outer:
        for member in outer.getmembers():
            if not member.isfile() or member.size < 512:
                continue
            handle = outer.extractfile(member)
            if handle is None:
                continue
            try:
                with tarfile.open(fileobj=io.BytesIO(handle.read())) as layer:
                    found += [n for n in layer.getnames() if Path(n).name.startswith(".wh.")]
            except tarfile.TarError:
                continue  # the config and manifest JSON files
    return found


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def plan(drivers: Iterable[str], layer_whiteouts: list[str], method: str) -> dict[str, str]:
    """driver -> "data-root" or "archives" (with the reason in the manifest)."""
    return {d: "archives" if method == "archives" or (d == "overlay2" and layer_whiteouts) else "data-root"
            for d in drivers}


def bake_pod(base: str) -> dict[str, Any]:
    return {
        "containers": [{
            "name": "baker", "image": base,
            "command": ["/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 1; done"],
            "securityContext": {"privileged": True},
            "volumeMounts": [{"name": "bake", "mountPath": "/jda-bake"}],
        }],
        "volumes": [{"name": "bake", "emptyDir": {}}],
    }


def _run(pod: PodRunner, cmd: str, what: str) -> str:
    result = pod.exec("baker", cmd, quiet=True)
    if result.exit_code != 0:
        raise PodRunError(f"{what} failed ({result.exit_code}):\n{result.output[-3000:]}")
    return result.output


def _bake_data_root(pod: PodRunner, driver: str, archives: list[str], say: Callable[[str], None]) -> float:
    """Run the image's own dockerd on a scratch data root, load the archives, stop it; returns seconds."""
    started = time.monotonic()
    scratch = f"/jda-bake/{driver}" if driver == "overlay2" else f"{DATA_ROOTS}/{driver}"
    _run(pod, f"mkdir -p {scratch} /jda-bake/exec && (dockerd --data-root={scratch} --storage-driver={driver} "
              f"--host={BAKE_SOCKET} --exec-root=/jda-bake/exec --pidfile=/jda-bake/dockerd.pid "
              f"--iptables=false --ip6tables=false --bridge=none >/jda-bake/dockerd-{driver}.log 2>&1 &)",
         f"starting dockerd ({driver})")
    _run(pod, f"n=0; until docker -H {BAKE_SOCKET} version >/dev/null 2>&1; do n=$((n+1)); "
              f"[ $n -lt 300 ] || {{ cat /jda-bake/dockerd-{driver}.log; exit 1; }}; sleep 0.2; done",
         f"waiting for dockerd ({driver})")
    for archive in archives:
        _run(pod, f"docker -H {BAKE_SOCKET} load -q -i /jda-bake/images/{archive}", f"loading {archive} ({driver})")
    _run(pod, "kill $(cat /jda-bake/dockerd.pid); n=0; while [ -e /jda-bake/dockerd.pid ]; do n=$((n+1)); "
              "[ $n -lt 300 ] || exit 1; sleep 0.2; done", f"stopping dockerd ({driver})")
    if driver == "overlay2":
        _run(pod, f"mkdir -p {DATA_ROOTS} && cp -a {scratch} {DATA_ROOTS}/{driver}", "copying the overlay2 data root")
    say(f"{driver}: data root baked in {time.monotonic() - started:.1f} s")
    return time.monotonic() - started


def build(client: docker.DockerClient, base: str, images: list[str], tag: str, pull: bool = True,
          drivers: Iterable[str] = DRIVERS, method: str = "auto", say: Callable[[str], None] = log) -> str:
    """Build `tag` from the dind image `base` with `images` baked in; returns the tag."""
    if not images:
        raise ValueError("name at least one image to bake in")
    drivers = list(drivers)
    unknown = sorted(set(drivers) - set(DRIVERS))
    if unknown:
        raise ValueError(f"unknown storage driver(s) {unknown}; choose from {', '.join(DRIVERS)}")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="jda-prewarm-") as tmp:
        files: dict[str, bytes] = {}
        marks: list[str] = []
        for image in images:
            _local_or_pull(client, image, pull)
            name = re.sub(r"[^A-Za-z0-9_.-]", "_", image) + ".tar"
            path = Path(tmp) / name
            with path.open("wb") as out:
                for chunk in client.images.get(image).save(named=True):
                    out.write(chunk)
            marks += [f"{image}: {w}" for w in whiteouts(path)]
            files[name] = path.read_bytes()
            say(f"{image}: {path.stat().st_size / 1e6:.1f} MB archive")
        methods = plan(drivers, marks, method)
        with PodRunner(bake_pod(base), client=client, name="jda-bake", log=say) as pod:
            pod.copy_in("baker", "/jda-bake", {f"images/{n}": data for n, data in files.items()})
            for driver, how in methods.items():
                if how == "data-root":
                    _bake_data_root(pod, driver, sorted(files), say)
            keep_archives = "archives" in methods.values()
            manifest = {"images": images, "drivers": methods, "archives": sorted(files) if keep_archives else [],
                        "whiteouts": marks[:20],
                        "why": {d: ("image layers hold whiteouts, which an image layer cannot carry as overlay2's "
                                    "character devices" if d == "overlay2" and marks and h == "archives" else
                                    "requested" if h == "archives" else "data root written by the image's dockerd")
                                for d, h in methods.items()}}
            copy = f"mkdir -p {ARCHIVES} && " + (f"cp /jda-bake/images/*.tar {ARCHIVES}/ && " if keep_archives else "")
            _run(pod, copy + "true", "placing the archives")
            pod.copy_in("baker", ARCHIVES, {"manifest.json": json.dumps(manifest, indent=2).encode()})
            config = client.images.get(base).attrs["Config"]
            changes = [f"ENTRYPOINT {json.dumps(config.get('Entrypoint') or [])}",
                       f"CMD {json.dumps(config.get('Cmd') or [])}",
                       f"LABEL jda.prewarm.images={json.dumps(','.join(images))}"]
            repository, _, version = tag.rpartition(":")
            pod.container("baker").commit(repository=repository, tag=version, changes=changes,
                                          message=f"jenkins-dind-agent prewarm: {', '.join(images)}")
    say(f"{tag} built from {base} with {len(images)} image(s) in {time.monotonic() - started:.1f} s: "
        + ", ".join(f"{d} {h}" for d, h in methods.items()))
    return tag


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="dind image to extend (the chart's agent.dind.image)")
    parser.add_argument("--tag", required=True, help="tag of the prewarmed image")
    parser.add_argument("--no-pull", action="store_true", help="use only images already present locally")
    parser.add_argument("--driver", action="append", choices=DRIVERS,
                        help="storage driver(s) to bake for (default: both)")
    parser.add_argument("--method", choices=["auto", "archives"], default="auto",
                        help="auto: data roots where possible; archives: only `docker save` archives")
    parser.add_argument("images", nargs="+", help="images to bake in")
    args = parser.parse_args(argv)
    client = docker.from_env(version="auto", timeout=900)
    try:
        build(client, args.base, args.images, args.tag, pull=not args.no_pull, drivers=args.driver or DRIVERS,
              method=args.method)
    except (PodRunError, ImageNotFound, ValueError) as exc:
        log(f"error: {exc}")
        return 1
    print(args.tag)
    return 0


if __name__ == "__main__":
    sys.exit(main())
