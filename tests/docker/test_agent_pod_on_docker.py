"""The chart's rendered agent pod on a real Docker engine: dind comes up as configured, builds work
from the jnlp container, pushes reach a real registry, and dockerd is reachable from nothing else."""

from __future__ import annotations

import copy
import io
import re
import tarfile
import threading
import time

import pytest

from jdagent.chart.manifest import container
from jdagent.chart.render import deep_merge
from jdagent.engine import agentpod, netstat
from jdagent.engine.podrun import PodRunner

pytestmark = pytest.mark.docker


def run_pod(docker_client, standins, kube_version="1.33.0", secrets=None, **agent):
    manifest, spec = agentpod.render_agent_pod(overrides=agentpod.standin_overrides(standins, **agent),
                                               kube_version=kube_version)
    return PodRunner(spec, client=docker_client, files=agentpod.pod_files(manifest, spec, secrets), name="jda-test")


def listening_ports(runner: PodRunner, name: str) -> set[str]:
    """address:port of every listening TCP socket in the pod's network namespace, IPv4 and IPv6."""
    return {s for table in ("tcp", "tcp6")
            for s in netstat.listeners(table, runner.exec(name, ["cat", f"/proc/net/{table}"]).output)}


@pytest.mark.parametrize("driver", ["vfs", "overlay2"])
def test_dockerd_runs_the_configured_driver_on_loopback_only(docker_client, standins, driver):
    with run_pod(docker_client, standins, dind={"storageDriver": driver}) as pod:
        assert agentpod.storage_driver(pod) == driver  # asked from jnlp, through DOCKER_HOST
        ports = listening_ports(pod, "dind")
        assert "127.0.0.1:2375" in ports
        # nothing in the pod listens beyond loopback, on any port and either family
        assert netstat.beyond_loopback(ports) == [], ports
        env = pod.exec("jnlp", "echo $DOCKER_HOST").output.strip()
        assert env == "tcp://localhost:2375"
        assert pod.exec("jnlp", "command -v docker").output.strip() == "/usr/local/lib/docker/bin/docker"


def test_multi_stage_build_with_network_host_from_jnlp(docker_client, standins):
    with run_pod(docker_client, standins) as pod:
        agentpod.load_image(pod, docker_client, standins["busybox"])
        built = agentpod.build(pod, {"Dockerfile": agentpod.SAMPLE_DOCKERFILE.read_bytes()}, "sample:1",
                               {"BASE_IMAGE": standins["busybox"]})
        assert built.result.exit_code == 0, built.result.output
        out = pod.exec("jnlp", ["docker", "run", "--rm", "sample:1"])
        assert out.exit_code == 0
        assert out.output.strip() == "built in stage one on x86_64"
        history = pod.exec("jnlp", ["docker", "history", "-q", "sample:1"]).output.split()
        base_layers = pod.exec("jnlp", ["docker", "history", "-q", standins["busybox"]]).output.split()
        assert len(history) == len(base_layers) + 2, "final image = base + COPY + CMD, no build-stage layers"


def push_values(standins, address: str) -> dict:
    """The chart's push template on: its pods (and no others) mount the registry Secret."""
    agent = {"dind": {"insecureRegistries": [address]},
             "registry": {"server": address, "push": True, "secretName": "registry-push", "pushFolders": ["releases"]}}
    return {**agentpod.standin_overrides(standins, **agent), "exampleJob": {"folder": "releases"}}


def test_push_with_secret_credentials_and_pull_back_by_digest(docker_client, standins, auth_registry):
    reg = auth_registry
    files_secret = {"registry-push": {".dockerconfigjson": reg.dockerconfigjson()}}
    manifest, spec = agentpod.render_agent_pod(overrides=push_values(standins, reg.address), push=True)
    files = agentpod.pod_files(manifest, spec, files_secret)
    with PodRunner(spec, client=docker_client, files=files, name="jda-test") as pod:
        # only jnlp holds the credentials
        assert pod.exec("dind", ["test", "-e", "/home/jenkins/.docker/config.json"]).exit_code != 0
        agentpod.load_image(pod, docker_client, standins["busybox"])
        image = f"{reg.address}/sample"
        built = agentpod.build(pod, {"Dockerfile": agentpod.SAMPLE_DOCKERFILE.read_bytes()}, f"{image}:1",
                               {"BASE_IMAGE": standins["busybox"]})
        assert built.result.exit_code == 0, built.result.output
        pushed = pod.exec("jnlp", ["docker", "push", f"{image}:1"])
        assert pushed.exit_code == 0, pushed.output
        digest, manifest = reg.manifest("sample", "1")
        assert digest.startswith("sha256:") and manifest["layers"]
        assert f"digest: {digest}" in pushed.output
        pod.exec("jnlp", ["docker", "rmi", f"{image}:1"])
        pulled = pod.exec("jnlp", ["docker", "pull", f"{image}@{digest}"])
        assert pulled.exit_code == 0, pulled.output
        assert pod.exec("jnlp", ["docker", "run", "--rm", f"{image}@{digest}"]).output.strip().startswith(
            "built in stage one")
    assert reg.request("/v2/sample/tags/list")[0] == 200


def test_the_default_template_gets_no_registry_credentials_and_its_push_is_refused(docker_client, standins,
                                                                                   auth_registry):
    """With the push template on and its Secret at hand, a pod of the default template mounts no registry
    credentials, and the registry (which really checks them: the test above) refuses its push."""
    reg = auth_registry
    manifest, spec = agentpod.render_agent_pod(overrides=push_values(standins, reg.address))
    assert not [v for v in spec["volumes"] if "secret" in v], spec["volumes"]
    files = agentpod.pod_files(manifest, spec, {"registry-push": {".dockerconfigjson": reg.dockerconfigjson()}})
    with PodRunner(spec, client=docker_client, files=files, name="jda-test") as pod:
        config = pod.exec("jnlp", "cat /home/jenkins/.docker/config.json 2>/dev/null || true").output
        assert "auths" not in config or reg.address not in config, config
        agentpod.load_image(pod, docker_client, standins["busybox"])
        target = f"{auth_registry.address}/anonymous:1"
        pod.exec("jnlp", ["docker", "tag", standins["busybox"], target])
        pushed = pod.exec("jnlp", ["docker", "push", target])
        assert pushed.exit_code != 0
        assert "no basic auth credentials" in pushed.output or "unauthorized" in pushed.output.lower()


def test_port_2375_is_unreachable_from_another_network_namespace(docker_client, standins, auth_registry):
    with run_pod(docker_client, standins) as pod:
        pod_ip = pod.ip_address()
        assert pod_ip
        probe = (f"for target in {auth_registry.address} {pod_ip}:2375; do host=${{target%:*}}; port=${{target#*:}}; "
                 "if timeout 3 bash -c \"exec 3<>/dev/tcp/$host/$port\" 2>/dev/null; then echo \"$target open\"; "
                 "else echo \"$target closed\"; fi; done")
        # the answers go to a file read back with get_archive: a finished container's log stream can
        # still be incomplete when read right after it exits
        prober = docker_client.containers.run(standins["dind"], entrypoint=["bash", "-c", f"({probe}) > /tmp/out"],
                                              detach=True, labels=pod.labels())
        try:
            assert prober.wait(timeout=60)["StatusCode"] == 0
            stream, _ = prober.get_archive("/tmp/out")
            with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
                member = tar.extractfile("out")
                assert member is not None
                out = member.read().decode()
        finally:
            prober.remove(force=True, v=True)  # and the dind image's anonymous volume
        assert f"{auth_registry.address} open" in out, "control: the other namespace reaches containers"
        assert f"{pod_ip}:2375 closed" in out


def test_dockerd_killed_mid_build_fails_the_build_fast(docker_client, standins):
    slow = b"FROM %s\nRUN sleep 120\n" % standins["busybox"].encode()
    with run_pod(docker_client, standins) as pod:
        agentpod.load_image(pod, docker_client, standins["busybox"])
        result: dict = {}

        def build() -> None:
            result["build"] = agentpod.build(pod, {"Dockerfile": slow}, "slow:1")
            result["done"] = time.monotonic()

        worker = threading.Thread(target=build, daemon=True)
        worker.start()
        deadline = time.monotonic() + 60
        while "sleep 120" not in pod.exec("dind", ["ps", "-eo", "args"], quiet=True).output:
            assert time.monotonic() < deadline, "the build never reached its RUN step"
            time.sleep(0.2)
        killed = time.monotonic()
        pod.container("dind").kill()
        worker.join(timeout=30)
        assert not worker.is_alive(), "docker build hung after dockerd died"
        elapsed = result["done"] - killed
        assert result["build"].result.exit_code != 0
        assert elapsed < 10, f"build exited {elapsed:.1f} s after dockerd died"
        # the CLI's own words for a daemon that went away, not any line that says "error"
        output = result["build"].result.output.lower()
        assert re.search(r"\beof\b|connection reset|connection refused|closed network connection|"
                         r"cannot connect to the docker daemon", output), output[-500:]


def test_var_lib_docker_is_the_volume_not_the_container_root(docker_client, standins):
    with run_pod(docker_client, standins) as pod:
        agentpod.load_image(pod, docker_client, standins["busybox"])
        mounts = pod.exec("dind", ["cat", "/proc/self/mountinfo"]).output
        assert any(line.split()[4] == "/var/lib/docker" for line in mounts.splitlines())
        data_volume = next(m for m in pod.container("dind").attrs["Mounts"] if m["Destination"] == "/var/lib/docker")
        assert data_volume["Name"] == pod.volumes["agent-dind-datasizelimit"]
        assert agentpod.data_root_bytes(pod) > 1_000_000
        listed = docker_client.api.containers(all=True, size=True, filters={"id": pod.container("dind").id})
        size_rw = listed[0]["SizeRw"]
        assert size_rw < 5_000_000, f"dind wrote {size_rw} bytes to its own root filesystem"


def test_classic_path_agent_waits_for_dockerd(docker_client, standins):
    with run_pod(docker_client, standins, kube_version="1.28.0") as pod:
        assert "dind" in pod.containers and not any(
            c.get("restartPolicy") == "Always" for c in pod.pod_spec["initContainers"])
        deadline = time.monotonic() + 60
        while "dockerd is ready" not in pod.logs("jnlp"):
            assert time.monotonic() < deadline, pod.logs("jnlp")
            time.sleep(0.2)
        assert "stand-in jenkins-agent" in pod.logs("jnlp"), "the agent starts after the wait"
        assert agentpod.storage_driver(pod) == "vfs"


def test_classic_wait_gives_up_with_a_clear_message(docker_client, standins):
    """dind that never answers (its dockerd refused to start): the agent exits 1 with a message."""
    manifest, spec = agentpod.render_agent_pod(
        overrides=agentpod.standin_overrides(standins, dind={"readyTimeoutSeconds": 5}), kube_version="1.28.0")
    spec = copy.deepcopy(spec)
    dind = container(spec, "dind")
    dind["args"] = ["dockerd", "--no-such-flag"]
    with PodRunner(spec, client=docker_client, files=agentpod.pod_files(manifest, spec), name="jda-test") as pod:
        result = pod.container("jnlp").wait(timeout=30)
        assert result["StatusCode"] == 1
        assert "dockerd did not answer on tcp://localhost:2375 within 5s" in pod.logs("jnlp")


@pytest.mark.parametrize("kube", ["1.33.0", "1.28.0"], ids=["native-sidecar", "classic"])
def test_helm_test_pod_builds_in_the_agent_pod_spec(docker_client, standins, open_registry, kube):
    """The `helm test` pod, pulling its base image from a registry like a cluster would. On the classic
    path dind is a regular container: it must stop by itself once the test is done, or the pod (and
    `helm test`) would never finish."""
    base = f"{open_registry.address}/busybox:stand-in"
    overrides = deep_merge(
        agentpod.standin_overrides(standins, dind={"insecureRegistries": [open_registry.address]}),
        {"exampleJob": {"baseImage": base}})
    manifest = agentpod.render(overrides=overrides, kube_version=kube)
    spec = manifest.test_pod()["spec"]
    with PodRunner(spec, client=docker_client, files=agentpod.pod_files(manifest, spec), name="jda-helmtest") as pod:
        status = pod.container("jnlp").wait(timeout=180)
        logs = pod.logs("jnlp")
        assert status["StatusCode"] == 0, logs
        assert "dockerd storage driver: vfs (expected: vfs)" in logs
        assert "PASS: multi-stage build works in the dind agent pod" in logs
        if kube == "1.28.0":
            assert pod.container("dind").wait(timeout=30)["StatusCode"] == 0, "dind did not stop after the test"
