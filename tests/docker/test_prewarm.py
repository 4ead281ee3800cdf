"""agent.dind.prewarm with images from scripts/build-prewarmed-dind: a vfs agent runs on the data root
baked into the image (nothing loaded), an overlay2 agent copies its baked data root into the emptyDir,
and a driver without a data root (image layers with whiteouts, on overlay2) loads archives. In every
case the images are there when the agent starts and the first build pulls nothing."""

from __future__ import annotations

import io
import json
import tarfile
import time

import pytest

from jdagent.chart.manifest import container
from jdagent.engine import agentpod
from jdagent.engine.podrun import PodRunError, PodRunner

pytestmark = pytest.mark.docker


def prewarmed_pod(docker_client, standins, image, baked, driver, kube="1.33.0"):
    overrides = agentpod.standin_overrides(standins, dind={
        "image": agentpod.image_values(image), "storageDriver": driver,
        "prewarm": {"enabled": True, "images": [baked]},
    })
    manifest, spec = agentpod.render_agent_pod(overrides=overrides, kube_version=kube)
    assert "postStart" in container(spec, "dind")["lifecycle"]
    return PodRunner(spec, client=docker_client, files=agentpod.pod_files(manifest, spec), name="jda-prewarm")


def wait_agent(pod):
    deadline = time.monotonic() + 60
    while "dockerd is ready" not in pod.logs("jnlp"):
        assert time.monotonic() < deadline, pod.logs("jnlp")
        time.sleep(0.2)


def first_build_pulls_nothing(pod, image: str, base: str) -> None:
    since = int(time.time())
    assert pod.exec("jnlp", ["docker", "image", "inspect", image]).exit_code == 0
    built = agentpod.build(pod, {"Dockerfile": agentpod.SAMPLE_DOCKERFILE.read_bytes()}, "sample:1",
                           {"BASE_IMAGE": base})
    assert built.result.exit_code == 0, built.result.output
    events = pod.exec("jnlp", ["docker", "events", "--since", str(since - 1), "--until", str(int(time.time()) + 1),
                               "--filter", "type=image", "--format", "{{json .}}"]).output
    actions = [json.loads(line)["Action"] for line in events.splitlines() if line.strip()]
    assert "pull" not in actions and "load" not in actions, actions


@pytest.mark.parametrize("kube", ["1.33.0", "1.28.0"], ids=["native-sidecar", "classic"])
def test_vfs_agent_runs_on_the_baked_data_root(docker_client, standins, prewarmed_dind, kube):
    busybox = standins["busybox"]
    with prewarmed_pod(docker_client, standins, prewarmed_dind, busybox, "vfs", kube) as pod:
        if kube == "1.28.0":
            wait_agent(pod)
        assert "prewarm: dockerd runs on the data root baked into the image" in pod.logs("dind")
        root = pod.exec("jnlp", ["docker", "info", "--format", "{{.DockerRootDir}} {{.Driver}}"]).output.split()
        assert root == ["/var/lib/jda-prewarm/data-root/vfs", "vfs"]
        first_build_pulls_nothing(pod, busybox, busybox)
        assert pod.exec("dind", ["ls", "/opt/jda-prewarm"]).output.split() == ["manifest.json"], "no archives"
        assert pod.timings.get("dind_post_start_s", 0) < 1.0, "nothing to load"


def test_overlay2_agent_binds_the_baked_layers_into_the_emptydir(docker_client, standins, prewarmed_dind):
    busybox = standins["busybox"]
    with prewarmed_pod(docker_client, standins, prewarmed_dind, busybox, "overlay2") as pod:
        assert "layers bind-mounted from the image" in pod.logs("dind")
        binds = [line.split() for line in pod.exec("dind", ["cat", "/proc/self/mountinfo"]).output.splitlines()
                 if "/var/lib/docker/overlay2/" in line and line.split()[4].endswith("/diff")]
        assert binds and all(fields[5].startswith("ro") for fields in binds), binds
        root = pod.exec("jnlp", ["docker", "info", "--format", "{{.DockerRootDir}} {{.Driver}}"]).output.split()
        assert root == ["/var/lib/docker", "overlay2"]
        first_build_pulls_nothing(pod, busybox, busybox)


def test_overlay2_agent_binds_the_layers_again_after_a_dind_restart(docker_client, standins, prewarmed_dind):
    """The bind mounts die with the dind container, /var/lib/docker (the emptyDir) does not: after a restart
    (an OOM, a crash, a failed startupProbe) dind-start.sh binds the baked layers again, and the images work."""
    busybox = standins["busybox"]
    with prewarmed_pod(docker_client, standins, prewarmed_dind, busybox, "overlay2") as pod:
        assert pod.exec("jnlp", ["docker", "run", "--rm", busybox, "true"]).exit_code == 0
        pod.container("dind").restart(timeout=10)
        deadline = time.monotonic() + 60
        while pod.exec("jnlp", ["docker", "version"], quiet=True).exit_code != 0:
            assert time.monotonic() < deadline, pod.logs("dind")[-3000:]
            time.sleep(0.5)
        ran = pod.exec("jnlp", ["docker", "run", "--rm", busybox, "sh", "-c", "echo layers-there"])
        assert ran.exit_code == 0 and "layers-there" in ran.output, ran.output
        log = pod.logs("dind")
        assert "is not empty (a restarted container): kept;" in log and "bind-mounted again from the image" in log
        binds = [line.split() for line in pod.exec("dind", ["cat", "/proc/self/mountinfo"]).output.splitlines()
                 if "/var/lib/docker/overlay2/" in line and line.split()[4].endswith("/diff")]
        assert binds and all(fields[5].startswith("ro") for fields in binds), binds


def image_file(docker_client, image: str, path: str) -> bytes:
    """A file of an image, read from a created (never started) container: no log-stream race."""
    holder = docker_client.containers.create(image, entrypoint=["true"])
    try:
        stream, _ = holder.get_archive(path)
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.extractfile(tar.getmembers()[0])
            assert member is not None
            return member.read()
    finally:
        holder.remove(force=True, v=True)


def test_whiteouts_keep_archives_for_overlay2_only(docker_client, standins, prewarmed_whiteouts, whiteout_image):
    manifest = json.loads(image_file(docker_client, prewarmed_whiteouts, "/opt/jda-prewarm/manifest.json"))
    assert manifest["drivers"] == {"vfs": "data-root", "overlay2": "archives"}
    assert any(w.endswith(".wh.wc") for w in manifest["whiteouts"]), manifest["whiteouts"]
    with prewarmed_pod(docker_client, standins, prewarmed_whiteouts, whiteout_image, "overlay2") as pod:
        assert "prewarm: no overlay2 data root in the image; the postStart hook loads" in pod.logs("dind")
        assert pod.exec("jnlp", ["docker", "image", "inspect", whiteout_image]).exit_code == 0
        gone = pod.exec("jnlp", ["docker", "run", "--rm", whiteout_image, "sh", "-c", "test -e /bin/wc"])
        assert gone.exit_code == 1, "the deletion in the second layer must survive the bake"
    with prewarmed_pod(docker_client, standins, prewarmed_whiteouts, whiteout_image, "vfs") as pod:
        assert "dockerd runs on the data root baked" in pod.logs("dind")
        gone = pod.exec("jnlp", ["docker", "run", "--rm", whiteout_image, "sh", "-c", "test -e /bin/wc"])
        assert gone.exit_code == 1


def test_prewarm_without_baked_images_never_becomes_ready(docker_client, standins):
    """A prewarm-enabled pod on a plain dind image never becomes ready: the listed image is missing."""
    overrides = agentpod.standin_overrides(standins, dind={
        "prewarm": {"enabled": True, "images": [standins["busybox"]]}, "readyTimeoutSeconds": 5})
    manifest, spec = agentpod.render_agent_pod(overrides=overrides, kube_version="1.33.0")
    with pytest.raises(PodRunError, match="startupProbe failed 5 times"), \
            PodRunner(spec, client=docker_client, files=agentpod.pod_files(manifest, spec), name="jda-prewarm"):
        pass
