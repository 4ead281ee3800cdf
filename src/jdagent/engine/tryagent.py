"""scripts/try-agent: the no-cluster quickstart.

Renders the chart's agent pod (with your --values), runs it on the local Docker engine like a
kubelet, copies your build context into the jnlp workspace and runs `docker build --network host`
there, exactly as a pipeline step would. Everything is removed afterwards, also on failure/Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import docker

from jdagent.chart.render import RenderError
from jdagent.engine import agentpod, images
from jdagent.engine.podrun import PodRunError, PodRunner


def log(message: str) -> None:
    print(f"[try-agent] {message}", file=sys.stderr, flush=True)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="try-agent", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--context", type=Path, required=True, help="build context directory")
    parser.add_argument("--dockerfile", type=Path, help="Dockerfile (default: CONTEXT/Dockerfile)")
    parser.add_argument("--values", "-f", type=Path, action="append", default=[], help="chart values file(s)")
    parser.add_argument("--tag", default="try-agent:local", help="tag of the built image (default %(default)s)")
    parser.add_argument("--build-arg", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--load", action="append", default=[], metavar="IMAGE",
                        help="copy an image from your Docker into the pod's dockerd first (e.g. a base image)")
    parser.add_argument("--run", action="store_true", help="run the built image afterwards")
    parser.add_argument("--kube-version", default="1.33.0",
                        help="render for this Kubernetes version (< 1.29: classic sidecar path)")
    parser.add_argument("--standins", action="store_true",
                        help="use the local stand-in images instead of the chart's upstream images")
    parser.add_argument("--keep", action="store_true", help="leave the pod running; print how to remove it")
    args = parser.parse_args(argv)
    dockerfile = args.dockerfile or args.context / "Dockerfile"
    if not args.context.is_dir():
        parser.error(f"--context {args.context} is not a directory")
    if not dockerfile.is_file():
        parser.error(f"--dockerfile {dockerfile} does not exist")
    for v in args.values:
        if not v.is_file():
            parser.error(f"--values {v} does not exist")
    bad = [a for a in args.build_arg if "=" not in a]
    if bad:
        parser.error(f"--build-arg needs KEY=VALUE, got {bad}")
    args.dockerfile = dockerfile
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        client = docker.from_env(version="auto", timeout=600)
        client.ping()
    except Exception as exc:
        log(f"no Docker engine reachable ({exc}); start Docker or set DOCKER_HOST")
        return 2
    overrides: dict[str, Any] = {}
    if args.standins:
        log("building or reusing the stand-in images")
        standins = images.ensure_all(client)
        overrides = agentpod.standin_overrides(standins)
        args.load = [*args.load, standins["busybox"]]
    try:
        manifest, spec = agentpod.render_agent_pod(values=args.values, overrides=overrides,
                                                   kube_version=args.kube_version)
    except RenderError as exc:
        log(f"the chart refused these values:\n{exc.stderr.strip()}")
        return 2
    secrets = [v["secret"]["secretName"] for v in spec.get("volumes", []) if "secret" in v]
    files = agentpod.pod_files(manifest, spec)
    if secrets:
        log(f"note: the pod mounts Secret(s) {secrets}; they are left empty here (no push credentials)")
    context_files = agentpod.context_tar(args.context, args.dockerfile)
    log(f"context {args.context}: {len(context_files)} files, "
        f"{sum(len(b) for b in context_files.values()) / 1e6:.1f} MB")
    runner = PodRunner(spec, client=client, files=files, name="try-agent", log=log)
    try:
        runner.__enter__()
        driver = agentpod.storage_driver(runner)
        log(f"dockerd ready, storage driver {driver}")
        for image in args.load:
            log(f"loading {image} into the pod's dockerd ({agentpod.load_image(runner, client, image):.1f} s)")
        build_args = dict(a.split("=", 1) for a in args.build_arg)
        log(f"docker build --network host -t {args.tag} (from the jnlp container)")
        started = time.monotonic()
        built = agentpod.build(runner, context_files, args.tag, build_args, stream=lambda line: print(line))
        log(f"build {'succeeded' if built.result.exit_code == 0 else 'FAILED'} in {time.monotonic() - started:.1f} s "
            f"on {driver}; /var/lib/docker holds {agentpod.data_root_bytes(runner) / 1e6:.0f} MB")
        if built.result.exit_code != 0:
            return 1
        if args.run:
            out = runner.exec("jnlp", ["docker", "run", "--rm", args.tag])
            print(out.output, end="")
            return out.exit_code
        return 0
    except (PodRunError, RuntimeError) as exc:
        log(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        if args.keep:
            log(f"pod kept: remove with  docker rm -f $(docker ps -aq --filter label=jda.run={runner.run_id}) "
                f"&& docker volume prune -f --filter label=jda.run={runner.run_id}")
        else:
            runner.close()
            log("pod removed")


if __name__ == "__main__":
    sys.exit(main())
