"""Build caches that outlive the ephemeral agent pod.

- Inline: the example pipeline's build and push steps (files/Jenkinsfile, run verbatim in the jnlp
  container): a fresh agent pod rebuilding an unchanged app takes its layers from the inline cache of the
  image the previous agent pushed, instead of running the slow step again.
- Registry, mode=max: a docker-container builder (BuildKit v0.32.2 built here from its module, the version
  the pinned dockerd vendors) created from jnlp as the chart README shows, exporting its cache to a registry
  and importing it in a fresh pod: every step of an unchanged tree, the builder stage's included (only
  mode=max exports it), is CACHED; with a changed last file only the last step runs. BuildKit's container
  runs in dockerd's cgroup parent (jda-builds), inside dind's limits."""

from __future__ import annotations

import os
import re

import pytest

from jdagent import gobuild
from jdagent.engine import agentpod, registry, toolimages
from jdagent.engine.buildcache import (
    FROM_BUILD,
    LAST,
    SLOW_FINAL,
    SLOW_STAGE,
    CacheBuild,
    buildkit_registry_cache_build,
    dockerd_cgroup_parent,
)
from jdagent.engine.podrun import PodRunner
from jdagent.paths import CHART_DIR
from tests.agenttools import check_cache_builds

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


@pytest.fixture(scope="module")
def buildkit_image(docker_client) -> str:
    try:
        return toolimages.ensure_buildkit(docker_client)
    except gobuild.GoBuildError as exc:
        if os.environ.get("JDA_REQUIRE_DOCKER") == "1":
            pytest.fail(f"JDA_REQUIRE_DOCKER=1 but BuildKit cannot be built: {exc}")
        pytest.skip(f"BuildKit cannot be built from its Go module here: {exc}")


def test_a_docker_container_builder_reuses_a_registry_cache_across_fresh_agents(docker_client, standins,
                                                                                 cache_registry, buildkit_image):
    runs = cache_builds(docker_client, standins, cache_registry, buildkit_image, "max",
                        (("cold", "one"), ("unchanged", "one"), ("changed last file", "two")))
    print("\n" + check_cache_builds(runs))


def test_with_mode_min_the_builder_stage_runs_again(docker_client, standins, cache_registry, buildkit_image):
    """The control: mode=min exports only the layers of the image, so once the app's file changed, a fresh pod
    runs the build stage's step again (COPY --from=build needs its layer); the runtime stage's slow step before
    the change still comes from the cache."""
    runs = cache_builds(docker_client, standins, cache_registry, buildkit_image, "min",
                        (("cold", "one"), ("changed last file", "two")))
    changed = runs["changed last file"]
    print(f"\nmode=min: cold {runs['cold'].seconds:.1f} s; changed last file {changed.seconds:.1f} s, ran "
          f"{[i.split(' &&')[0] for i, ran in changed.ran.items() if ran]}")
    assert all(runs["cold"].ran.values())
    assert changed.ran == {SLOW_STAGE: True, SLOW_FINAL: False, LAST: True, FROM_BUILD: True}, changed.output[-3000:]


def cache_builds(docker_client, standins, reg, buildkit_image: str, mode: str,
                 builds: tuple[tuple[str, str], ...]) -> dict[str, CacheBuild]:
    base = registry.seed(docker_client, reg, standins["busybox"], "busybox", "stand-in")
    cache_ref = f"{reg.address}/cache-demo:{mode}"
    runs = {}
    for label, last in builds:
        with agent(docker_client, standins, reg) as pod:  # a new pod each time: empty /var/lib/docker
            agentpod.load_image(pod, docker_client, buildkit_image)
            sh, put = agentpod.shell_callables(pod)
            parent = dockerd_cgroup_parent(pod.logs("dind"))
            runs[label] = buildkit_registry_cache_build(sh, put, builder_image=buildkit_image, registry=reg.address,
                                                        base=base, cache_ref=cache_ref, cgroup_parent=parent,
                                                        last=last, mode=mode)
            assert runs[label].builder_cgroup_parent == parent
            assert f"{parent}/" in runs[label].builder_cgroup, (parent, runs[label].builder_cgroup)
    return runs
