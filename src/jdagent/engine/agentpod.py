"""The chart's agent pod on a Docker engine: render it (with local stand-in images when asked), start
it with PodRunner, feed images into its dockerd and run builds from the jnlp container.

Shared by the Docker-engine tests, the benchmark and scripts/try-agent.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker

from jdagent.chart.manifest import Manifest, Obj
from jdagent.chart.render import render
from jdagent.engine.podrun import ExecResult, PodRunner
from jdagent.paths import CHART_DIR

SAMPLE_DOCKERFILE = CHART_DIR / "files" / "sample" / "Dockerfile"
WORKSPACE = "/home/jenkins/agent"


def image_values(repo_tag: str) -> dict[str, str]:
    repository, _, tag = repo_tag.rpartition(":")
    return {"repository": repository, "tag": tag, "digest": "", "pullPolicy": "Never"}


def standin_overrides(standins: Mapping[str, str], **agent: Any) -> dict[str, Any]:
    """Values that swap the upstream images for local stand-ins (and merge extra agent values)."""
    dind = {"image": image_values(standins["dind"]), **agent.pop("dind", {})}
    return {
        "agent": {"jnlp": {"image": image_values(standins["jnlp"])}, "dind": dind, **agent},
        "exampleJob": {"baseImage": standins["busybox"]},
    }


def mirror_values(standins: Mapping[str, str], upstream: str, registry_image: str | None = None,
                  **extra: Any) -> dict[str, Any]:
    """Values that turn the chart's mirror on, pulling from `upstream`, on stand-in images: the nginx
    front, and Distribution (`registry_image`, else the Debian registry stand-in)."""
    return {"mirror": {"enabled": True, "upstream": upstream,
                       "image": image_values(registry_image or standins["registry"]),
                       "front": {"image": image_values(standins["front"])}, **extra}}


def render_agent_pod(values: Iterable[Path] = (), overrides: Mapping[str, Any] | None = None,
                     kube_version: str = "1.33.0", helm: str = "4", push: bool = False) -> tuple[Manifest, Obj]:
    """(manifest, agent pod spec) exactly as the JCasC pod template carries it: the chart's dind template,
    or with `push` the push template (agent.registry.push), the only one that mounts registry credentials."""
    manifest = render(values=tuple(values), overrides=overrides or {}, kube_version=kube_version, helm=helm)
    return manifest, (manifest.push_pod() if push else manifest.agent_pod())["spec"]


def pod_files(manifest: Manifest, spec: Obj,
              secrets: Mapping[str, Mapping[str, bytes]] | None = None) -> dict[str, dict[str, bytes]]:
    """Data of a pod's configMap volumes (from the rendered manifest) and secret volumes (from `secrets`,
    keyed by Secret name; a Secret not given is mounted empty), laid out by each volume's items."""
    files: dict[str, dict[str, bytes]] = {}
    for vol in spec.get("volumes", []):
        if "projected" in vol:
            sources = vol["projected"]["sources"]
        elif "configMap" in vol or "secret" in vol:
            sources = [vol]
        else:
            continue
        files[vol["name"]] = {}
        for source in sources:
            files[vol["name"]].update(_source_files(manifest, source, secrets or {}))
    return files


def _source_files(manifest: Manifest, source: Obj, secrets: Mapping[str, Mapping[str, bytes]]) -> dict[str, bytes]:
    """{path: data} of one configMap or secret volume, or projected volume source."""
    if "configMap" in source:
        name = source["configMap"]["name"]
        # the same files may be rendered into several namespaces (agent and push): any copy will do
        copies = [c for c in manifest.all("ConfigMap") if c["metadata"]["name"] == name]
        if not copies:
            raise KeyError(f"no ConfigMap {name} in the rendered chart")
        data = {k: v.encode() for k, v in copies[0]["data"].items()}
        items = source["configMap"].get("items") or [{"key": k, "path": k} for k in data]
    else:
        secret = source["secret"]
        data = dict(secrets.get(secret.get("secretName") or secret["name"], {}))
        items = (secret.get("items") if data else []) or [{"key": k, "path": k} for k in data]
    return {i["path"]: data[i["key"]] for i in items}


def mirror_pod(manifest: Manifest) -> tuple[Obj, dict[str, dict[str, bytes]]]:
    """(pod spec, volume files) of the rendered pull-through mirror Deployment."""
    spec = manifest.get("Deployment", suffix="-mirror")["spec"]["template"]["spec"]
    return spec, pod_files(manifest, spec)


def mirror_pods(manifest: Manifest, secrets: Mapping[str, Mapping[str, bytes]] | None = None,
                ) -> dict[str, tuple[Obj, dict[str, dict[str, bytes]]]]:
    """{Deployment name: (pod spec, volume files)} of every rendered mirror: Docker Hub's and one per
    mirror.registries entry (`secrets` as for pod_files)."""
    return {d["metadata"]["name"]: (d["spec"]["template"]["spec"],
                                    pod_files(manifest, d["spec"]["template"]["spec"], secrets))
            for d in manifest.all("Deployment")
            if d["metadata"].get("labels", {}).get("app.kubernetes.io/component") in ("mirror", "registry-mirror")}


def registry_mirrors(agent_spec: Obj) -> list[str]:
    """The --registry-mirror URLs the agent's dockerd is started with."""
    from jdagent.chart.manifest import container

    return [a.split("=", 1)[1] for a in container(agent_spec, "dind")["args"] if a.startswith("--registry-mirror=")]


def load_image(runner: PodRunner, client: docker.DockerClient, image: str) -> float:
    """Copy an image from the outer engine into the pod's dockerd (docker save | docker load through the
    jnlp container). Returns seconds taken."""
    started = time.monotonic()
    raw = b"".join(client.images.get(image).save(named=True))
    runner.copy_in("jnlp", "/tmp", {"jda-image.tar": raw})
    result = runner.exec("jnlp", "docker load -i /tmp/jda-image.tar && rm -f /tmp/jda-image.tar")
    if result.exit_code != 0:
        raise RuntimeError(f"loading {image} into the pod's dockerd failed:\n{result.output}")
    return time.monotonic() - started


def shell_callables(runner: PodRunner, container: str = "jnlp") -> tuple[
        Callable[[str, float], tuple[int, str]], Callable[[str, bytes], None]]:
    """(sh, put) on one container of the pod: `sh(script, timeout)` runs a shell script and returns its exit
    code and output, `put(path, data)` writes a file (the shape tests/agenttools and buildcache take)."""
    def sh(script: str, timeout: float) -> tuple[int, str]:
        result = runner.exec(container, ["sh", "-c", script], quiet=True)
        return result.exit_code, result.output

    def put(path: str, data: bytes) -> None:
        folder, _, name = path.rpartition("/")
        runner.copy_in(container, folder or "/", {name: data})

    return sh, put

def context_tar(context: Path, dockerfile: Path | None = None) -> dict[str, bytes]:
    """Files of a build context (and a Dockerfile from elsewhere, if given) for copy_in."""
    files = {p.relative_to(context).as_posix(): p.read_bytes() for p in sorted(context.rglob("*")) if p.is_file()}
    if dockerfile is not None:
        files["Dockerfile"] = dockerfile.read_bytes()
    return files


@dataclass
class BuildResult:
    tag: str
    seconds: float
    result: ExecResult


def build(runner: PodRunner, files: Mapping[str, bytes], tag: str, build_args: Mapping[str, str] | None = None,
          directory: str = "ctx", stream: Callable[[str], None] | None = None,
          extra: Iterable[str] = ()) -> BuildResult:
    """`docker build --network host` of the given context, from the jnlp container, as a pipeline would."""
    path = f"{WORKSPACE}/{directory}"
    runner.exec("jnlp", ["mkdir", "-p", path])
    runner.copy_in("jnlp", path, files)
    args = ["docker", "build", "--network", "host", "-t", tag, *extra]
    for key, value in (build_args or {}).items():
        args += ["--build-arg", f"{key}={value}"]
    args.append(path)
    started = time.monotonic()
    result = runner.exec("jnlp", shlex.join(args) + " 2>&1", stream=stream)
    return BuildResult(tag, time.monotonic() - started, result)


def storage_driver(runner: PodRunner) -> str:
    return runner.exec("jnlp", ["docker", "info", "--format", "{{.Driver}}"]).output.strip()


def data_root_bytes(runner: PodRunner) -> int:
    """Bytes under /var/lib/docker in the dind container (on its emptyDir)."""
    out = runner.exec("dind", ["du", "-sb", "/var/lib/docker"]).output.split()
    return int(out[0])

