"""Benchmark of the dind agent on the real Docker engine (tox -e bench). Every figure is measured in
this one run and compared as a ratio: dockerd ready time, the multi-stage build on the host engine
vs dind-vfs vs dind-overlay2, a fresh agent's first build cold (pulling from a local registry) vs
prewarmed, and /var/lib/docker bytes per driver. Prints a table, writes JSON, and with --write-readme
puts the table into the chart README.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker

from jdagent import agentpod, images, prewarm, registry
from jdagent.docblocks import write_block
from jdagent.manifest import container
from jdagent.paths import ARTIFACTS_DIR, CHART_DIR
from jdagent.podrun import PodRunner

BENCH_DOCKERFILE = b"""ARG BASE_IMAGE
FROM $BASE_IMAGE AS build
RUN mkdir -p /out && dd if=/dev/urandom of=/out/blob bs=1M count=50 2>/dev/null && echo built > /out/message.txt
FROM $BASE_IMAGE
COPY --from=build /out/ /out/
CMD ["cat", "/out/message.txt"]
"""


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


class Bench:
    def __init__(self, client: docker.DockerClient, runs: int) -> None:
        self.client = client
        self.runs = runs
        self.standins = images.ensure_all(client)
        self.base = images.ensure_base(client)  # a Debian base, as real builds use (busybox hides vfs costs)
        self.results: dict[str, Any] = {}

    def pod(self, fast_probe: bool = True, kube: str = "1.33.0", **agent: Any) -> PodRunner:
        manifest, spec = agentpod.render_agent_pod(overrides=agentpod.standin_overrides(self.standins, **agent),
                                                   kube_version=kube)
        spec = copy.deepcopy(spec)
        if fast_probe:  # the kubelet probes at most once a second; measure readiness at 50 ms resolution
            probe = container(spec, "dind")["startupProbe"]
            probe["failureThreshold"] = int(probe["failureThreshold"]) * 20
            probe["periodSeconds"] = 0.05
        return PodRunner(spec, client=self.client, files=agentpod.pod_files(manifest, spec), name="jda-bench",
                         log=lambda m: None)

    def ready_time(self) -> None:
        samples = []
        for i in range(self.runs):
            with self.pod() as pod:
                samples.append(pod.timings["dind_ready_s"])
            log(f"dockerd ready #{i + 1}: {samples[-1]:.2f} s")
        poll = agentpod.render_agent_pod(kube_version="1.28.0")[1]
        script = container(poll, "jnlp")["command"][2]
        self.results["dockerd_ready_s"] = {"median": statistics.median(samples), "samples": samples}
        self.results["agent_poll_interval_s"] = float(script.split("sleep ")[1].split(";")[0])

    def host_buildx(self, folder: Path) -> Path:
        """A DOCKER_CONFIG whose cli-plugins hold the stand-in's buildx, so the host engine builds with
        BuildKit through the same buildx as the pods (Debian 12's docker.io ships none)."""
        plugins = folder / "cli-plugins"
        plugins.mkdir(parents=True)
        holder = self.client.containers.create(self.standins["dind"], entrypoint=["true"])
        try:
            bits, _ = holder.get_archive("/usr/libexec/docker/cli-plugins/docker-buildx")
            with tarfile.open(fileobj=io.BytesIO(b"".join(bits))) as tar:
                tar.extractall(plugins, filter="data")
        finally:
            holder.remove(force=True)
        return folder

    def host_build(self, context: Path, config: Path) -> float:
        env = {**os.environ, "DOCKER_BUILDKIT": "1", "DOCKER_CONFIG": str(config)}
        started = time.monotonic()
        subprocess.run(["docker", "build", "--no-cache", "--network", "host", "-q", "--build-arg",
                        f"BASE_IMAGE={self.base}", "-t", "jda-bench:host", str(context)],
                       check=True, env=env, capture_output=True)
        return time.monotonic() - started

    def builds(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            ctx = Path(tmp)
            (ctx / "Dockerfile").write_bytes(BENCH_DOCKERFILE)
            config = self.host_buildx(Path(tmp) / "docker-config")
            host = [self.host_build(ctx, config) for _ in range(self.runs)]
        log(f"host engine: {statistics.median(host):.2f} s")
        self.results["build_host_s"] = {"median": statistics.median(host), "samples": host}
        for driver in ("vfs", "overlay2"):
            with self.pod(dind={"storageDriver": driver}) as pod:
                agentpod.load_image(pod, self.client, self.base)
                base = agentpod.data_root_bytes(pod)
                samples = []
                for i in range(self.runs):
                    built = agentpod.build(pod, {"Dockerfile": BENCH_DOCKERFILE}, f"bench:{i}",
                                           {"BASE_IMAGE": self.base}, extra=["--no-cache"])
                    if built.result.exit_code != 0:
                        raise RuntimeError(f"dind-{driver} build failed:\n{built.result.output[-2000:]}")
                    samples.append(built.seconds)
                    if i == 0:
                        self.results[f"data_root_bytes_{driver}"] = agentpod.data_root_bytes(pod) - base
            log(f"dind-{driver}: {statistics.median(samples):.2f} s")
            self.results[f"build_dind_{driver}_s"] = {"median": statistics.median(samples), "samples": samples}

    def first_build_pair(self, driver: str, registry_address: str, tag: str,
                         sample: dict[str, bytes]) -> dict[str, float]:
        """One cold and one prewarmed fresh agent of this driver, each running the sample's first build."""
        with self.pod(dind={"storageDriver": driver, "insecureRegistries": [registry_address]}) as pod:
            cold = agentpod.build(pod, sample, "first:cold", {"BASE_IMAGE": f"{registry_address}/bench-base:1"})
            if cold.result.exit_code != 0:
                raise RuntimeError(cold.result.output[-2000:])
        with self.pod(dind={"storageDriver": driver, "image": agentpod.image_values(tag),
                            "prewarm": {"enabled": True, "images": [self.base]}}) as pod:
            since = int(time.time()) - 1
            warm = agentpod.build(pod, sample, "first:warm", {"BASE_IMAGE": self.base})
            if warm.result.exit_code != 0:
                raise RuntimeError(warm.result.output[-2000:])
            events = pod.exec("jnlp", ["docker", "events", "--since", str(since), "--until",
                                       str(int(time.time()) + 1), "--filter", "type=image",
                                       "--format", "{{.Action}}"]).output.split()
            started = time.monotonic()
            pod.exec("dind", ["cp", "-a", f"/var/lib/docker/{driver}", "/var/lib/docker/seed-copy-test"])
            copy_s = time.monotonic() - started
            return {"cold_s": cold.seconds, "prewarmed_s": warm.seconds, "prewarmed_pulls": events.count("pull"),
                    "archive_load_s": pod.timings.get("dind_post_start_s", 0.0), "data_root_copy_s": copy_s}

    def first_build(self) -> None:
        """A fresh agent's first build of the sample FROM the Debian base: pulled from a local registry
        (cold) vs baked into the dind image (prewarmed), on each driver."""
        base = self.base
        reg = registry.start(self.client, self.standins["registry"], run_id="bench", auth=False)
        tag = f"jda-prewarmed-dind:bench-{self.standins['dind'].split(':')[1]}"
        prewarm.build(self.client, self.standins["dind"], [base], tag, pull=False)
        sample = {"Dockerfile": agentpod.SAMPLE_DOCKERFILE.read_bytes()}
        try:
            remote = f"127.0.0.1:{reg.host_port}/bench-base"
            self.client.images.get(base).tag(remote, "1")
            for line in self.client.images.push(remote, "1", stream=True, decode=True):
                if "error" in line:
                    raise RuntimeError(line["error"])
            self.client.images.remove(f"{remote}:1")
            _, manifest = reg.manifest("bench-base", "1")
            self.results["first_build_cold_pulled_bytes"] = sum(layer["size"] for layer in manifest["layers"])
            for driver in ("vfs", "overlay2"):
                runs = [self.first_build_pair(driver, reg.address, tag, sample) for _ in range(self.runs)]
                result: dict[str, Any] = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
                result["prewarmed_pulls"] = max(r["prewarmed_pulls"] for r in runs)
                result["samples"] = runs
                self.results[f"first_build_{driver}"] = result
                log(f"first build on {driver}: cold {result['cold_s']:.2f} s, "
                    f"prewarmed {result['prewarmed_s']:.2f} s; archive load {result['archive_load_s']:.2f} s "
                    f"vs data-root copy {result['data_root_copy_s']:.2f} s")
        finally:
            reg.stop()


def table(r: dict[str, Any]) -> str:
    host = r["build_host_s"]["median"]
    vfs, ovl = r["build_dind_vfs_s"]["median"], r["build_dind_overlay2_s"]["median"]

    def check(ok: bool) -> str:
        return "met" if ok else "MISSED"

    rows = [
        ("dockerd ready after container start (median)", f"{r['dockerd_ready_s']['median']:.2f} s",
         "<= 1.5 s", check(r["dockerd_ready_s"]["median"] <= 1.5)),
        ("agent-side dockerd poll interval", f"{r['agent_poll_interval_s']:.1f} s", "<= 0.2 s",
         check(r["agent_poll_interval_s"] <= 0.2)),
        ("multi-stage build (50 MB layer), host engine", f"{host:.2f} s", "1.0x", ""),
        ("same build, dind-overlay2", f"{ovl:.2f} s ({ovl / host:.2f}x host)", "<= 1.2x", check(ovl / host <= 1.2)),
        ("same build, dind-vfs", f"{vfs:.2f} s ({vfs / host:.2f}x host)", "", ""),
        ("/var/lib/docker after the build, overlay2", f"{r['data_root_bytes_overlay2'] / 1e6:.0f} MB", "", ""),
        ("/var/lib/docker after the build, vfs", f"{r['data_root_bytes_vfs'] / 1e6:.0f} MB "
         f"({r['data_root_bytes_vfs'] / max(r['data_root_bytes_overlay2'], 1):.1f}x overlay2)", "", ""),
    ]
    pulled = r["first_build_cold_pulled_bytes"] / 1e6
    for driver in ("vfs", "overlay2"):
        f = r[f"first_build_{driver}"]
        speedup = f["cold_s"] / f["prewarmed_s"]
        rows += [
            (f"fresh agent, first build, {driver}: cold (pulls {pulled:.0f} MB from a local registry)",
             f"{f['cold_s']:.2f} s", "", ""),
            (f"fresh agent, first build, {driver}: prewarmed",
             f"{f['prewarmed_s']:.2f} s, {f['prewarmed_pulls']} pulls ({speedup:.1f}x faster)", "0 pulls, >= 2x",
             check(f["prewarmed_pulls"] == 0 and speedup >= 2)),
            (f"prewarm cost at agent start, {driver}: archive load vs data-root copy",
             f"{f['archive_load_s']:.2f} s vs {f['data_root_copy_s']:.2f} s", "", ""),
        ]
    lines = ["| Measure | Result | Target | |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(lines) + "\n"


def machine() -> dict[str, str]:
    info = docker.from_env(version="auto").info()
    return {"date": datetime.date.today().isoformat(), "cpus": str(os.cpu_count()),
            "kernel": platform.release(), "engine": info.get("ServerVersion", "?"),
            "host_driver": info.get("Driver", "?")}


def write_readme(text: str) -> None:
    write_block(CHART_DIR / "README.md", "bench", text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="repetitions per timed figure (median reported)")
    parser.add_argument("--json", type=Path, default=ARTIFACTS_DIR / "bench.json")
    parser.add_argument("--write-readme", action="store_true", help="put the table into the chart README")
    args = parser.parse_args(argv)
    client = docker.from_env(version="auto", timeout=900)
    bench = Bench(client, args.runs)
    steps: list[Callable[[], None]] = [bench.ready_time, bench.builds, bench.first_build]
    for step in steps:
        step()
    meta = machine()
    text = table(bench.results)
    print(text)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"machine": meta, "results": bench.results}, indent=2) + "\n")
    log(f"results written to {args.json}")
    if args.write_readme:
        write_readme(f"Measured {meta['date']} by `tox -e bench` on {meta['cpus']} cores, kernel {meta['kernel']}, "
                     f"Docker {meta['engine']} ({meta['host_driver']}) with the stand-in dind (dockerd 26.1), "
                     f"medians of {args.runs} runs per figure (the most pulls seen):\n\n{text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
