"""The example pipeline's build and push steps (files/Jenkinsfile, run verbatim in the jnlp container)
reuse work across ephemeral agents: a fresh agent pod rebuilding an unchanged app takes its layers from
the inline cache of the image the previous agent pushed, instead of running the slow step again."""

from __future__ import annotations

import re

import pytest

from jdagent.engine import agentpod, registry
from jdagent.engine.podrun import PodRunner
from jdagent.paths import CHART_DIR

pytestmark = pytest.mark.docker
JENKINSFILE = (CHART_DIR / "files" / "Jenkinsfile").read_text()


def steps() -> list[str]:
    """The shell steps of the pipeline, in order, as Jenkins runs them (sh '...')."""
    return re.findall(r"^\s*sh '(.*)'$", JENKINSFILE, re.M)


def step(fragment: str) -> str:
    [found] = [s for s in steps() if fragment in s]
    return found


def cached(output: str, instruction: str) -> bool:
    """Whether BuildKit's plain progress reports the step running `instruction` as CACHED."""
    steps_ = re.findall(r"^#(\d+) \[[^\]]+\] " + re.escape(instruction), output, re.M)
    return bool(steps_) and all(re.search(rf"^#{n} CACHED$", output, re.M) for n in steps_)


@pytest.fixture
def cache_registry(docker_client, standins):
    reg = registry.start(docker_client, standins["registry"], run_id="cache", auth=False)
    yield reg
    reg.stop()


def agent(docker_client, standins, reg):
    manifest, spec = agentpod.render_agent_pod(
        overrides=agentpod.standin_overrides(standins, dind={"insecureRegistries": [reg.address]}))
    return PodRunner(spec, client=docker_client, files=agentpod.pod_files(manifest, spec), name="jda-cache")


def test_a_fresh_agent_rebuilds_from_the_pushed_image_cache(docker_client, standins, cache_registry):
    reg = cache_registry
    image = f"{reg.address}/cache-demo:build"
    slow = f"FROM {standins['busybox']}\nRUN sleep 3 && echo slow > /slow.txt\nCMD [\"cat\", \"/slow.txt\"]\n"
    env = {"IMAGE": image, "PUSH": "true", "BASE_IMAGE": standins["busybox"]}
    build, push = step("docker build"), step("docker push")
    assert "--cache-from" in build and "BUILDKIT_INLINE_CACHE=1" in build
    workspace = f"{agentpod.WORKSPACE}/app"
    with agent(docker_client, standins, reg) as first:
        agentpod.load_image(first, docker_client, standins["busybox"])
        first.exec("jnlp", ["mkdir", "-p", workspace])
        first.copy_in("jnlp", workspace, {"Dockerfile": slow.encode()})
        cold = first.exec("jnlp", f"cd {workspace} && {build} 2>&1", environment=env)
        assert cold.exit_code == 0, cold.output
        assert "RUN sleep 3" in cold.output and not cached(cold.output, "RUN sleep 3")
        pushed = first.exec("jnlp", f"{push} 2>&1", environment=env)
        assert pushed.exit_code == 0, pushed.output
    with agent(docker_client, standins, reg) as second:  # a new pod: empty /var/lib/docker
        agentpod.load_image(second, docker_client, standins["busybox"])
        assert second.exec("jnlp", ["docker", "image", "inspect", image]).exit_code != 0
        second.exec("jnlp", ["mkdir", "-p", workspace])
        second.copy_in("jnlp", workspace, {"Dockerfile": slow.encode()})
        warm = second.exec("jnlp", f"cd {workspace} && {build} 2>&1", environment=env)
        assert warm.exit_code == 0, warm.output
        assert cached(warm.output, "RUN sleep 3"), warm.output[-2000:]
        assert second.exec("jnlp", ["docker", "run", "--rm", image]).output.strip() == "slow"


def test_without_push_the_build_names_no_cache():
    """Without a registry the image name is a Docker Hub name: importing a cache from it would only
    produce lookups and warnings, so the step adds --cache-from only with PUSH."""
    build = step("docker build")
    assert build.startswith('if [ "$PUSH" = true ]; then set -- --cache-from')
