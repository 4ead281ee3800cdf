"""Limits and start-up of the agent pod (issue 23): dind's memory headroom and the cgroup jda-builds, what an
ephemeral-storage limit means, dockerd's minimum API version, the native-sidecar choice, jnlp's bounded wait
for dockerd in both modes, and what NOTES says about Pod Security where the chart does not label the
namespace. files/dind-start.sh itself: tests/unit/test_dind_start.py; on an engine: tests/docker/."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from jdagent.chart.manifest import container, env_of, is_native_sidecar
from jdagent.chart.render import RenderError, render
from jdagent.paths import CHART_DIR
from jdagent.tools import find_helm

# moby at docker-v29.7.2, daemon/config/config.go: ValidateMinAPIVersion accepts DOCKER_MIN_API_VERSION from
# MinAPIVersion to MaxAPIVersion; defaultMinAPIVersion is what dockerd 29 accepts without it.
MOBY_MIN_API, MOBY_MAX_API, MOBY_DEFAULT_MIN_API = (1, 24), (1, 55), (1, 40)
SCHEMA = json.loads((CHART_DIR / "values.schema.json").read_text())


def dind_values(**dind: object) -> dict[str, object]:
    return {"agent": {"dind": dind}}


# --- memory: headroom for dockerd ---------------------------------------------------------------------
def test_the_headroom_must_leave_builds_some_memory():
    with pytest.raises(RenderError) as err:
        render(overrides=dind_values(buildMemoryHeadroom="4Gi"))
    assert "agent.dind.buildMemoryHeadroom (4Gi) is not below agent.dind.resources.limits.memory (4Gi)" in \
        err.value.stderr
    with pytest.raises(RenderError, match=r"agent\.dind\.buildMemoryHeadroom"):
        render(overrides=dind_values(buildMemoryHeadroom="600Mi", resources={"requests": {"memory": "256Mi"},
                                                                             "limits": {"memory": "512Mi"}}))
    ok = render(overrides=dind_values(buildMemoryHeadroom="3.5Gi")).agent_pod()["spec"]
    assert env_of(container(ok, "dind"))["JDA_BUILD_MEMORY_HEADROOM"] == str(7 * 512 * 1024 * 1024)


def test_without_a_memory_limit_the_headroom_is_not_compared():
    """The downward API then hands dind-start.sh the node's allocatable memory; nothing to check here."""
    spec = render(overrides={"agent": {"dind": {"resources": {"limits": {"memory": None}}}}}).agent_pod()["spec"]
    assert "memory" not in container(spec, "dind")["resources"]["limits"]


# --- disk: what an ephemeral-storage limit does --------------------------------------------------------
@pytest.mark.parametrize("limit,workspace,refused", [
    ("20Gi", "", True),     # = dataSizeLimit: the pod would be evicted before /var/lib/docker is full
    ("24Gi", "", False),    # an unbounded workspace is not counted (nothing to compare)
    ("24Gi", None, True),   # 20Gi + the default workspace's 10Gi
    ("30Gi", "12Gi", True),  # 20Gi + the workspace's 12Gi
    ("40Gi", "12Gi", False),
])
def test_an_ephemeral_storage_limit_must_hold_the_emptydirs_it_budgets(limit, workspace, refused):
    values: dict[str, object] = {"agent": {"dind": {"resources": {"limits": {"ephemeral-storage": limit}}}}}
    if workspace is not None:
        values["agent"]["workspaceVolume"] = {"sizeLimit": workspace}  # type: ignore[index]
    if not refused:
        assert render(overrides=values).agent_pod()
        return
    with pytest.raises(RenderError) as err:
        render(overrides=values)
    assert f"agent.dind.resources.limits.ephemeral-storage ({limit}) is not above agent.dind.dataSizeLimit (20Gi)" in \
        err.value.stderr
    assert ("agent.workspaceVolume.sizeLimit" in err.value.stderr) is (workspace != "")


# --- dockerd's minimum API version --------------------------------------------------------------------
def test_min_api_version_reaches_dockerd_only_when_set():
    plain = container(render().agent_pod()["spec"], "dind")
    assert "DOCKER_MIN_API_VERSION" not in env_of(plain)
    for kube in ("1.28.0", "1.33.0"):
        manifest = render(kube_version=kube, overrides=dind_values(minAPIVersion="1.24"))
        for spec in (manifest.agent_pod()["spec"], manifest.test_pod()["spec"]):
            assert env_of(container(spec, "dind"))["DOCKER_MIN_API_VERSION"] == "1.24"


def test_the_schema_accepts_exactly_what_dockerd_29_7_accepts():
    pattern = re.compile(SCHEMA["properties"]["agent"]["properties"]["dind"]["properties"]["minAPIVersion"]["pattern"])
    accepted = {(1, minor) for minor in range(100) if pattern.search(f"1.{minor}")}
    assert accepted == {(1, m) for m in range(MOBY_MIN_API[1], MOBY_MAX_API[1] + 1)}
    assert MOBY_MIN_API < MOBY_DEFAULT_MIN_API <= MOBY_MAX_API
    assert pattern.search("")  # empty: dockerd's default
    for bad in ("v1.40", "1.4", "1.040", "2.0", "1.40.0", " 1.40"):
        assert not pattern.search(bad), bad


def test_min_api_version_is_not_also_set_in_daemon_json():
    with pytest.raises(RenderError) as err:
        render(overrides=dind_values(minAPIVersion="1.30", daemonConfig={"min-api-version": "1.30"}))
    assert "agent.dind.daemonConfig.min-api-version" in err.value.stderr and "agent.dind.minAPIVersion" in \
        err.value.stderr
    assert render(overrides=dind_values(daemonConfig={"min-api-version": "1.30"})).agent_pod()


# --- jnlp waits for dockerd, bounded, in both modes -----------------------------------------------------
@pytest.mark.parametrize("kube", ["1.28.0", "1.33.0"], ids=["classic", "native-sidecar"])
def test_jnlp_waits_for_dockerd_in_both_modes_and_fails_loudly(kube):
    spec = render(kube_version=kube).agent_pod()["spec"]
    assert is_native_sidecar(spec, "dind") is (kube == "1.33.0")
    jnlp = container(spec, "jnlp")
    assert jnlp["command"][:2] == ["/bin/sh", "-c"]
    assert jnlp["command"][3:] == ["jda-wait", "/usr/local/bin/jenkins-agent"]
    # the Kubernetes plugin prints a terminated container's message in the build log ([PodInfo])
    assert jnlp["terminationMessagePolicy"] == "FallbackToLogsOnError"
    test = container(render(kube_version=kube).test_pod()["spec"], "jnlp")
    assert test["command"][2] == jnlp["command"][2]


def run_wait(tmp_path: Path, docker: str, **dind: object) -> tuple[int, str, str, float]:
    """Run jnlp's rendered command with a fake `docker` on PATH; the agent is `echo agent started`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "docker").write_text(f"#!/bin/sh\n{docker}\n")
    (bin_dir / "docker").chmod(0o755)
    script = container(render(kube_version="1.33.0", overrides=dind_values(**dind)).agent_pod()["spec"],
                       "jnlp")["command"][2]
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "DOCKER_HOST": "tcp://localhost:2375",
           "HOSTNAME": "dind-abc12"}
    started = time.monotonic()
    proc = subprocess.run(["sh", "-c", script, "jda-wait", "echo", "agent started"], env=env, capture_output=True,
                          text=True, timeout=60)
    return proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started


def test_the_wait_starts_the_agent_once_dockerd_answers(tmp_path):
    code, out, _, took = run_wait(tmp_path, "exit 0")
    assert code == 0 and out.splitlines() == ["jenkins-dind-agent: dockerd is ready on tcp://localhost:2375",
                                              "agent started"]
    assert took < 5


def test_a_dead_dockerd_stops_the_agent_within_the_timeout_saying_where_to_look(tmp_path):
    code, out, err, took = run_wait(tmp_path, "echo 'Cannot connect to the Docker daemon' >&2; exit 1",
                                    readyTimeoutSeconds=5)
    assert code == 1 and "agent started" not in out
    assert 4 <= took < 9, took  # whole seconds of `date +%s`
    assert "dockerd did not answer on tcp://localhost:2375 within 5s (agent.dind.readyTimeoutSeconds)" in err
    assert "kubectl logs dind-abc12 -c dind" in err


def test_a_hung_dockerd_cannot_stretch_the_wait(tmp_path):
    """Each check is cut at 10 s, so a dockerd that accepts and never answers still ends the wait."""
    code, _, err, took = run_wait(tmp_path, "sleep 50", readyTimeoutSeconds=5)
    assert code == 1 and took < 16, took
    assert "did not answer" in err


def test_missing_prewarmed_images_are_named(tmp_path):
    docker = 'if [ "$1" = version ]; then exit 0; fi; exit 1'
    code, _, err, _ = run_wait(tmp_path, docker, readyTimeoutSeconds=5,
                               prewarm={"enabled": True, "images": ["busybox:1.37.0"]})
    assert code == 1
    assert "dockerd answers on tcp://localhost:2375 but still lacks images of agent.dind.prewarm.images " \
           "(busybox:1.37.0)" in err


# --- NOTES: the sidecar choice and Pod Security --------------------------------------------------------
def notes(*args: str) -> str:
    """NOTES of `helm install --dry-run=client` with helm 4: no cluster, so helm's default Kubernetes version
    (1.37 for helm 4.3; install takes no --kube-version)."""
    proc = subprocess.run([str(find_helm("4")), "install", "ci", str(CHART_DIR), "-n", "tools", "--dry-run=client",
                           *args], capture_output=True, text=True, env={**os.environ, "KUBECONFIG": os.devnull},
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split("NOTES:", 1)[1]


def test_notes_say_why_auto_chose_the_mode():
    native = notes()
    assert "native sidecar)" in native
    assert "(agent.nativeSidecar auto, for Kubernetes v1.37.0: native sidecars are GA there.)" in native
    explicit = notes("--set", "agent.nativeSidecar=false")
    assert "classic container, agent waits for dockerd" in explicit and "agent.nativeSidecar auto" not in explicit


@pytest.mark.parametrize("setting,namespace,why", [
    ("agent.namespace.sameAsController=true", "tools", "the release namespace, agent.namespace.sameAsController"),
    ("agent.namespace.create=false", "tools-ci-agents", "agent.namespace.create=false"),
    ("agent.namespace.podSecurityLabels=false", "tools-ci-agents", "agent.namespace.podSecurityLabels=false"),
])
def test_notes_say_how_to_check_pod_security_where_the_chart_does_not_label(setting, namespace, why):
    text = notes("--set", setting)
    assert f"Pod Security: the chart does not label {namespace} ({why})" in text
    assert f"kubectl -n {namespace} run jda-psa-check --image=busybox --privileged --dry-run=server" in text
    assert f"ERROR: Unable to create pod kubernetes {namespace}/dind-" in text
    assert 'violates PodSecurity "baseline:latest": privileged (container "dind" must not set ' \
           "securityContext.privileged=true)" in text
    assert f"kubectl label namespace {namespace} pod-security.kubernetes.io/enforce=privileged --overwrite" in text


def test_notes_are_quiet_about_pod_security_where_the_chart_labels_the_namespace():
    assert "Pod Security:" not in notes()
    assert "Pod Security:" not in notes("--set", "agent.namespace.create=false", "--set", "agent.dind.privileged=false",
                                        "--set", "agent.runtimeClassName=sysbox-runc")
