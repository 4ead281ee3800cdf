"""agent.dind.prewarm: images baked into the dind image are present when the agent starts, and the
first build pulls nothing."""

from __future__ import annotations

import json
import time

import pytest

from jdagent import agentpod
from jdagent.manifest import container
from jdagent.podrun import PodRunError, PodRunner

pytestmark = pytest.mark.docker


@pytest.mark.parametrize("kube", ["1.33.0", "1.28.0"], ids=["native-sidecar", "classic"])
def test_prewarmed_images_are_there_at_agent_start_and_nothing_is_pulled(docker_client, standins,
                                                                         prewarmed_dind, kube):
    busybox = standins["busybox"]
    overrides = agentpod.standin_overrides(standins, dind={
        "image": agentpod.image_values(prewarmed_dind),
        "prewarm": {"enabled": True, "images": [busybox]},
    })
    manifest, spec = agentpod.render_agent_pod(overrides=overrides, kube_version=kube)
    assert "postStart" in container(spec, "dind")["lifecycle"]
    with PodRunner(spec, client=docker_client, files=agentpod.pod_files(manifest, spec), name="jda-prewarm") as pod:
        if kube == "1.28.0":  # classic: the agent itself waits until the images are listed
            deadline = time.monotonic() + 60
            while "dockerd is ready" not in pod.logs("jnlp"):
                assert time.monotonic() < deadline, pod.logs("jnlp")
                time.sleep(0.2)
        since = int(time.time())
        assert pod.exec("jnlp", ["docker", "image", "inspect", busybox]).exit_code == 0
        built = agentpod.build(pod, {"Dockerfile": agentpod.SAMPLE_DOCKERFILE.read_bytes()}, "sample:1",
                               {"BASE_IMAGE": busybox})
        assert built.result.exit_code == 0, built.result.output
        events = pod.exec("jnlp", ["docker", "events", "--since", str(since - 1), "--until", str(int(time.time()) + 1),
                                   "--filter", "type=image", "--format", "{{json .}}"]).output
        actions = [json.loads(line)["Action"] for line in events.splitlines() if line.strip()]
        assert "pull" not in actions, actions
        loaded = pod.exec("dind", ["ls", "/opt/jda-prewarm"]).output.split()
        assert len(loaded) == 1 and loaded[0].endswith(".tar")


def test_prewarm_without_the_archives_is_refused_by_the_hook(docker_client, standins):
    """A prewarm-enabled pod on a plain dind image never becomes ready: the listed image is missing."""
    overrides = agentpod.standin_overrides(standins, dind={
        "prewarm": {"enabled": True, "images": [standins["busybox"]]}, "readyTimeoutSeconds": 5})
    manifest, spec = agentpod.render_agent_pod(overrides=overrides, kube_version="1.33.0")
    with pytest.raises(PodRunError, match="startupProbe failed 5 times"), \
            PodRunner(spec, client=docker_client, files=agentpod.pod_files(manifest, spec), name="jda-prewarm"):
        pass
