"""Benchmark of the dind agent on the real Docker engine (tox -e bench), with the stand-in images:

- agent start-up, broken down (docker-setup's CLI copy, dockerd ready, the probe), for the chart as it
  is and as it was before the start-up cuts (docker-setup at 200m CPU, `docker info` probe, ip6tables on);
- the multi-stage build on the host engine vs dind-vfs vs dind-overlay2, and the data-root size;
- pod start to first build done, per driver: cold (the base image pulled from a local registry) vs
  prewarmed (scripts/build-prewarmed-dind, the method the chart picks for the driver) vs archives;
- an unchanged app with a slow step rebuilt in a brand-new agent from the registry's inline cache;
- the same with a docker-container builder (BuildKit built from its module) and a registry cache, in a new
  pod each time: an unchanged tree and a changed app file, with mode=max and mode=min
  (jdagent.engine.buildcache: the builds, and which steps BuildKit ran);
- two agents pulling the same image through the chart's pull-through mirror: what the upstream serves.

Times are medians of --runs; each ratio is the median of ratios paired within one run. Everything the
bench creates (containers, volumes, images, registries) is removed at the end. Prints a table, writes
.artifacts/bench.json and, with --write-readme, the table in the chart README.
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
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import docker
from docker.errors import APIError, ImageNotFound

from jdagent.chart.docblocks import write_block
from jdagent.chart.manifest import Obj, container
from jdagent.chart.render import deep_merge
from jdagent.engine import agentpod, buildcache, images, prewarm, registry, toolimages
from jdagent.engine.podrun import PodRunner
from jdagent.paths import ARTIFACTS_DIR, CHART_DIR

LABEL = "jda.bench"
BENCH_DOCKERFILE = b"""ARG BASE_IMAGE
FROM $BASE_IMAGE AS build
RUN mkdir -p /out && dd if=/dev/urandom of=/out/blob bs=1M count=50 2>/dev/null && echo built > /out/message.txt
FROM $BASE_IMAGE
COPY --from=build /out/ /out/
CMD ["cat", "/out/message.txt"]
"""
SLOW_APP = b"""ARG BASE_IMAGE
FROM $BASE_IMAGE
RUN sleep 10 && dd if=/dev/urandom of=/blob bs=1M count=20 2>/dev/null && echo ready > /app.txt
CMD ["cat", "/app.txt"]
"""


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def before_the_cuts(spec: Obj) -> None:
    """The agent pod as it was before the start-up cuts, for the before/after figures."""
    setup = container(spec, "docker-setup")
    setup["resources"]["limits"]["cpu"] = "200m"
    dind = container(spec, "dind")
    dind["args"] = [a for a in dind["args"] if a != "--ip6tables=false"]
    if "startupProbe" in dind:
        dind["startupProbe"]["exec"]["command"] = ["docker", "info"]


class Bench:
    def __init__(self, client: docker.DockerClient, runs: int) -> None:
        self.client = client
        self.runs = runs
        self.standins = images.ensure_all(client)
        self.base = images.ensure_base(client)  # a Debian base, as real builds use (busybox hides vfs costs)
        self.results: dict[str, Any] = {}
        self.created: list[str] = []

    def pod(self, mutate: Callable[[Obj], None] | None = None, hosts: dict[str, str] | None = None,
            overrides: dict[str, Any] | None = None, **agent: Any) -> PodRunner:
        values = deep_merge(agentpod.standin_overrides(self.standins, **agent), overrides or {})
        manifest, spec = agentpod.render_agent_pod(overrides=values, kube_version="1.33.0")
        spec = copy.deepcopy(spec)
        if mutate:
            mutate(spec)
        # the kubelet probes at most once a second; measure readiness at 50 ms resolution
        probe = container(spec, "dind")["startupProbe"]
        probe["failureThreshold"] = int(probe["failureThreshold"]) * 20
        probe["periodSeconds"] = 0.05
        return PodRunner(spec, client=self.client, files=agentpod.pod_files(manifest, spec), name="jda-bench",
                         hosts=hosts or {}, log=lambda m: None)

    # --- start-up -------------------------------------------------------------------------------------
    def startup(self) -> None:
        out: dict[str, Any] = {}
        for variant, mutate in (("before", before_the_cuts), ("after", None)):
            samples: dict[str, list[float]] = {"copy_s": [], "dockerd_ready_s": [], "pod_start_s": []}
            for _ in range(self.runs):
                with self.pod(mutate=mutate) as pod:
                    samples["copy_s"].append(pod.timings["docker-setup_s"])
                    samples["dockerd_ready_s"].append(pod.timings["dind_ready_s"])
                    samples["pod_start_s"].append(pod.timings["pod_start_s"])
            out[variant] = {k: median(v) for k, v in samples.items()} | {"samples": samples}
            log(f"start-up {variant}: {out[variant]['pod_start_s']:.2f} s (copy {out[variant]['copy_s']:.2f} s, "
                f"dockerd ready {out[variant]['dockerd_ready_s']:.2f} s)")
        with self.pod() as pod:
            for probe in ("version", "info"):
                times = []
                for _ in range(5):
                    started = time.monotonic()
                    pod.exec("dind", ["docker", probe], quiet=True)
                    times.append(time.monotonic() - started)
                out[f"probe_docker_{probe}_s"] = median(times)
        self.results["startup"] = out

    # --- builds ---------------------------------------------------------------------------------------
    def host_buildx(self, folder: Path) -> Path:
        """A DOCKER_CONFIG whose cli-plugins hold the stand-in's buildx, so the host engine builds with
        BuildKit through the same buildx as the pods (Debian 12's docker.io ships none)."""
        plugins = folder / "cli-plugins"
        plugins.mkdir(parents=True)
        holder = self.client.containers.create(self.standins["dind"], entrypoint=["true"], labels={LABEL: "1"})
        try:
            bits, _ = holder.get_archive("/usr/libexec/docker/cli-plugins/docker-buildx")
            with tarfile.open(fileobj=io.BytesIO(b"".join(bits))) as tar:
                tar.extractall(plugins, filter="data")
        finally:
            holder.remove(force=True, v=True)
        return folder

    def host_build(self, context: Path, config: Path) -> float:
        env = {**os.environ, "DOCKER_BUILDKIT": "1", "DOCKER_CONFIG": str(config)}
        started = time.monotonic()
        subprocess.run(["docker", "build", "--no-cache", "--network", "host", "-q", "--label", f"{LABEL}=1",
                        "--build-arg", f"BASE_IMAGE={self.base}", "-t", "jda-bench:host", str(context)],
                       check=True, env=env, capture_output=True)
        self.created.append("jda-bench:host")
        return time.monotonic() - started

    def builds(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            ctx = Path(tmp)
            (ctx / "Dockerfile").write_bytes(BENCH_DOCKERFILE)
            config = self.host_buildx(Path(tmp) / "docker-config")
            host = [self.host_build(ctx, config) for _ in range(self.runs)]
        self.results["build_host_s"] = {"median": median(host), "samples": host}
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
            self.results[f"build_dind_{driver}_s"] = {"median": median(samples), "samples": samples}
            log(f"host {median(host):.2f} s, dind-{driver} {median(samples):.2f} s")

    # --- first build, end to end ----------------------------------------------------------------------
    def first_build(self, sample: dict[str, bytes], base_ref: str, **agent: Any) -> float:
        """Seconds from pod start to the first build's end in a fresh agent."""
        started = time.monotonic()
        with self.pod(**agent) as pod:
            built = agentpod.build(pod, sample, "first:1", {"BASE_IMAGE": base_ref})
            if built.result.exit_code != 0:
                raise RuntimeError(built.result.output[-2000:])
            return time.monotonic() - started

    def first_build_end_to_end(self) -> None:
        sample = {"Dockerfile": agentpod.SAMPLE_DOCKERFILE.read_bytes()}
        tag = f"jda-prewarmed-dind:bench-{self.standins['dind'].split(':')[1]}"
        archives = f"{tag}-archives"
        prewarm.build(self.client, self.standins["dind"], [self.base], tag, pull=False, say=log)
        prewarm.build(self.client, self.standins["dind"], [self.base], archives, pull=False, method="archives",
                      say=log)
        self.created += [tag, archives]
        with self.registry("first") as reg:
            remote = registry.seed(self.client, reg, self.base, "bench-base", "1")
            out: dict[str, Any] = {}
            for driver in ("vfs", "overlay2"):
                runs = []
                for _ in range(self.runs):
                    cold = self.first_build(sample, remote, dind={"storageDriver": driver,
                                                                  "insecureRegistries": [reg.address]})
                    warm_values = {"storageDriver": driver, "prewarm": {"enabled": True, "images": [self.base]}}
                    warm = self.first_build(sample, self.base, dind={**warm_values,
                                                                     "image": agentpod.image_values(tag)})
                    load = self.first_build(sample, self.base, dind={**warm_values,
                                                                     "image": agentpod.image_values(archives)})
                    runs.append({"cold_s": cold, "prewarmed_s": warm, "archives_s": load})
                method = ("data root in place" if driver == "vfs"
                          else "data root set up in the emptyDir, layers bind-mounted")
                out[driver] = {
                    "cold_s": median([r["cold_s"] for r in runs]),
                    "prewarmed_s": median([r["prewarmed_s"] for r in runs]),
                    "archives_s": median([r["archives_s"] for r in runs]),
                    "ratio": median([r["prewarmed_s"] / r["cold_s"] for r in runs]),
                    "method": method, "samples": runs,
                }
                log(f"first build end to end, {driver}: cold {out[driver]['cold_s']:.2f} s, prewarmed "
                    f"{out[driver]['prewarmed_s']:.2f} s ({method}), archives {out[driver]['archives_s']:.2f} s")
            _, manifest = reg.manifest("bench-base", "1")
            out["cold_pulled_bytes"] = sum(layer["size"] for layer in manifest["layers"])
        self.results["first_build_end_to_end"] = out

    # --- build cache across agents --------------------------------------------------------------------
    def rebuild_with_registry_cache(self) -> None:
        runs = []
        with self.registry("cache") as reg:
            for i in range(self.runs):
                image = f"{reg.address}/slow-app:{i}"
                cache = ["--cache-from", image, "--build-arg", "BUILDKIT_INLINE_CACHE=1"]
                with self.pod(dind={"insecureRegistries": [reg.address]}) as pod:
                    agentpod.load_image(pod, self.client, self.base)
                    cold = agentpod.build(pod, {"Dockerfile": SLOW_APP}, image, {"BASE_IMAGE": self.base},
                                          extra=cache)
                    pushed = pod.exec("jnlp", ["docker", "push", image])
                    if cold.result.exit_code != 0 or pushed.exit_code != 0:
                        raise RuntimeError(cold.result.output[-2000:] + pushed.output[-1000:])
                with self.pod(dind={"insecureRegistries": [reg.address]}) as pod:
                    agentpod.load_image(pod, self.client, self.base)
                    cached = agentpod.build(pod, {"Dockerfile": SLOW_APP}, image, {"BASE_IMAGE": self.base},
                                            extra=cache)
                    if cached.result.exit_code != 0 or "CACHED" not in cached.result.output:
                        raise RuntimeError(f"the rebuild did not use the cache:\n{cached.result.output[-2000:]}")
                runs.append({"cold_s": cold.seconds, "cached_s": cached.seconds})
        self.results["rebuild_with_registry_cache"] = {
            "cold_s": median([r["cold_s"] for r in runs]), "cached_s": median([r["cached_s"] for r in runs]),
            "ratio": median([r["cached_s"] / r["cold_s"] for r in runs]), "samples": runs}
        log(f"rebuild in a new agent: cold {self.results['rebuild_with_registry_cache']['cold_s']:.2f} s, "
            f"cached {self.results['rebuild_with_registry_cache']['cached_s']:.2f} s")

    def rebuild_with_buildkit_cache(self) -> None:
        """Each build in a fresh pod with a fresh docker-container builder; the cache in a registry."""
        buildkit = toolimages.ensure_buildkit(self.client)
        runs: list[dict[str, float]] = []
        with self.registry("buildkit-cache") as reg:
            base = registry.seed(self.client, reg, self.standins["busybox"], "busybox", "stand-in")
            for i in range(self.runs):
                sample: dict[str, float] = {}
                for mode, builds in (("max", (("cold", "one"), ("unchanged", "one"), ("changed", "two"))),
                                     ("min", (("cold", "one"), ("changed", "two")))):
                    for label, last in builds:
                        with self.pod() as pod:
                            agentpod.load_image(pod, self.client, buildkit)
                            parent = buildcache.dockerd_cgroup_parent(pod.logs("dind"))
                            sh, put = agentpod.shell_callables(pod)
                            built = buildcache.buildkit_registry_cache_build(
                                sh, put, builder_image=buildkit, registry=reg.address, base=base,
                                cache_ref=f"{reg.address}/bench-{mode}-{i}:cache", cgroup_parent=parent, last=last,
                                mode=mode)
                        sample[f"{mode}_{label}_s"] = built.seconds
                        sample[f"{mode}_{label}_ran"] = float(sum(built.ran.values()))
                runs.append(sample)
        out: dict[str, Any] = {key: median([r[key] for r in runs]) for key in runs[0]}
        out["samples"] = runs
        self.results["rebuild_with_buildkit_cache"] = out
        log(f"docker-container builder, registry cache in a new agent: mode=max cold {out['max_cold_s']:.2f} s, "
            f"unchanged {out['max_unchanged_s']:.2f} s, changed app file {out['max_changed_s']:.2f} s; mode=min "
            f"changed app file {out['min_changed_s']:.2f} s (cold {out['min_cold_s']:.2f} s)")

    # --- mirror ---------------------------------------------------------------------------------------
    def mirror(self) -> None:
        with self.registry("upstream") as upstream:
            registry.seed(self.client, upstream, self.standins["busybox"], "library/busybox", "1.37.0")
            since = len(upstream.served())
            values = agentpod.mirror_values(self.standins, f"http://{upstream.address}")
            manifest = agentpod.render(overrides=deep_merge(agentpod.standin_overrides(self.standins), values),
                                       kube_version="1.33.0")
            spec, files = agentpod.mirror_pod(manifest)
            [url] = agentpod.registry_mirrors(manifest.agent_pod()["spec"])
            with PodRunner(spec, client=self.client, files=files, name="jda-bench-mirror", log=lambda m: None) as m:
                registry.wait_http(f"http://{m.ip_address()}:5000/v2/")
                hosts = {str(urlsplit(url).hostname): m.ip_address()}
                with self.pod(hosts=hosts, overrides=values) as one, self.pod(hosts=hosts, overrides=values) as two:
                    pulls = [threading.Thread(target=p.exec, args=("jnlp", ["docker", "pull", "busybox:1.37.0"]))
                             for p in (one, two)]
                    for t in pulls:
                        t.start()
                    for t in pulls:
                        t.join(timeout=300)
                    for p in (one, two):
                        if p.exec("jnlp", ["docker", "image", "inspect", "busybox:1.37.0"]).exit_code != 0:
                            raise RuntimeError("a pull through the mirror failed")
            gets = upstream.gets_since(since)
        self.results["mirror"] = {"upstream_pulls_for_two_agents": gets["manifests"],
                                  "upstream_blob_fetches": sum(gets["blobs"].values()),
                                  "distinct_blobs": len(gets["blobs"])}
        log(f"mirror: {gets['manifests']} upstream manifest pull(s) for two agents")

    # --- plumbing -------------------------------------------------------------------------------------
    @contextmanager
    def registry(self, name: str) -> Iterator[registry.Registry]:
        reg = registry.start(self.client, self.standins["registry"], run_id=f"bench-{name}", auth=False)
        try:
            yield reg
        finally:
            reg.stop()

    def cleanup(self) -> None:
        """Remove every image the bench made (and the dangling ones its host builds left)."""
        for tag in sorted(set(self.created)):
            try:
                self.client.images.remove(tag, force=True)
            except (ImageNotFound, APIError) as exc:
                log(f"could not remove {tag}: {exc}")
        pruned = self.client.images.prune(filters={"label": f"{LABEL}=1", "dangling": True})
        log(f"removed {len(set(self.created))} images and {len(pruned.get('ImagesDeleted') or [])} dangling layers")


def ratio_check(value: float, target: float) -> str:
    return "met" if value <= target else "MISSED"


def table(r: dict[str, Any]) -> str:
    s, host = r["startup"], r["build_host_s"]["median"]
    vfs, ovl = r["build_dind_vfs_s"]["median"], r["build_dind_overlay2_s"]["median"]
    e2e, cache, mirror = r["first_build_end_to_end"], r["rebuild_with_registry_cache"], r["mirror"]
    bk = r["rebuild_with_buildkit_cache"]
    rows = [
        ("agent start: pod start to jnlp able to build (before the cuts, after)",
         f"{s['before']['pod_start_s']:.2f} s, {s['after']['pod_start_s']:.2f} s", "", ""),
        ("  docker-setup CLI copy (200m CPU limit, 1 CPU)",
         f"{s['before']['copy_s']:.2f} s, {s['after']['copy_s']:.2f} s", "", ""),
        ("  dockerd ready incl. probe (`docker info` probe + ip6tables, `docker version` probe)",
         f"{s['before']['dockerd_ready_s']:.2f} s, {s['after']['dockerd_ready_s']:.2f} s", "", ""),
        ("  one probe: `docker info`, `docker version`",
         f"{s['probe_docker_info_s']:.2f} s, {s['probe_docker_version_s']:.2f} s", "", ""),
        ("multi-stage build (50 MB layer), host engine", f"{host:.2f} s", "1.0x", ""),
        ("same build, dind-overlay2", f"{ovl:.2f} s ({ovl / host:.2f}x host)", "<= 1.2x", ratio_check(ovl / host, 1.2)),
        ("same build, dind-vfs", f"{vfs:.2f} s ({vfs / host:.2f}x host)", "", ""),
        ("/var/lib/docker after the build, overlay2 / vfs",
         f"{r['data_root_bytes_overlay2'] / 1e6:.0f} MB / {r['data_root_bytes_vfs'] / 1e6:.0f} MB", "", ""),
    ]
    pulled = e2e["cold_pulled_bytes"] / 1e6
    for driver in ("vfs", "overlay2"):
        f = e2e[driver]
        rows += [
            (f"pod start to first build done, {driver}: cold (pulls {pulled:.0f} MB from a local registry)",
             f"{f['cold_s']:.2f} s", "", ""),
            (f"  prewarmed ({f['method']})", f"{f['prewarmed_s']:.2f} s ({f['ratio']:.2f}x cold)", "<= 0.5x",
             ratio_check(f["ratio"], 0.5)),
            ("  prewarmed with archives (loaded at start)", f"{f['archives_s']:.2f} s", "", ""),
        ]
    once = mirror["upstream_pulls_for_two_agents"] == 1
    rows += [
        ("unchanged app (10 s step) rebuilt in a new agent from the pushed image's inline cache",
         f"{cache['cached_s']:.2f} s vs {cache['cold_s']:.2f} s cold ({cache['ratio']:.2f}x)", "<= 0.3x",
         ratio_check(cache["ratio"], 0.3)),
        ("docker-container builder, registry cache (mode=max) in a new agent: unchanged tree",
         f"{bk['max_unchanged_s']:.2f} s vs {bk['max_cold_s']:.2f} s cold", "", ""),
        ("  app file changed (its two steps run; the build stage's layer from the cache)",
         f"{bk['max_changed_s']:.2f} s", "", ""),
        ("  the same with mode=min (the build stage runs again)", f"{bk['min_changed_s']:.2f} s", "", ""),
        ("two agents pulling one image through the mirror: upstream manifest pulls (blob fetches)",
         f"{mirror['upstream_pulls_for_two_agents']} ({mirror['upstream_blob_fetches']} for "
         f"{mirror['distinct_blobs']} blobs)", "1", "met" if once else "MISSED"),
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
    parser.add_argument("--runs", type=int, default=3, help="repetitions per timed figure (median reported)")
    parser.add_argument("--json", type=Path, default=ARTIFACTS_DIR / "bench.json")
    parser.add_argument("--write-readme", action="store_true", help="put the table into the chart README")
    parser.add_argument("--only", action="append", help="run only these steps (for development)")
    args = parser.parse_args(argv)
    client = docker.from_env(version="auto", timeout=900)
    bench = Bench(client, args.runs)
    steps: dict[str, Callable[[], None]] = {
        "startup": bench.startup, "builds": bench.builds, "first": bench.first_build_end_to_end,
        "cache": bench.rebuild_with_registry_cache, "buildkit-cache": bench.rebuild_with_buildkit_cache,
        "mirror": bench.mirror}
    try:
        for name, step in steps.items():
            if not args.only or name in args.only:
                log(f"step {name}")
                step()
    finally:
        bench.cleanup()
    meta = machine()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"machine": meta, "results": bench.results}, indent=2) + "\n")
    log(f"results written to {args.json}")
    if args.only:
        return 0
    text = table(bench.results)
    print(text)
    if args.write_readme:
        write_readme(f"Measured {meta['date']} by `tox -e bench` on {meta['cpus']} cores, kernel {meta['kernel']}, "
                     f"Docker {meta['engine']} ({meta['host_driver']}) with the stand-in dind (dockerd 26.1) and "
                     f"readiness probed every 50 ms; times are medians of {args.runs} runs, ratios the median of "
                     f"ratios paired within a run:\n\n{text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
