"""files/docker-setup.sh, run here with POSIX sh against temporary directories standing in for the
pod's volumes: the docker CLI copy, daemon.json, the CLI's config.json (registry credentials plus
proxies, valid JSON, private) and the CA bundle."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from jdagent.paths import CHART_DIR

SCRIPT = CHART_DIR / "files" / "docker-setup.sh"
PROXIES = {"default": {"httpProxy": "http://proxy:3128", "noProxy": "localhost,.svc"}}


@pytest.fixture
def pod(tmp_path: Path) -> dict[str, Path]:
    paths = {name: tmp_path / name for name in ("cli", "dind-config", "docker-config", "auth", "ca", "image")}
    for name in ("cli", "dind-config", "docker-config", "ca"):
        paths[name].mkdir()
    (paths["image"] / "plugins").mkdir(parents=True)
    (paths["image"] / "docker").write_text("#!/bin/sh\necho docker\n")
    (paths["image"] / "plugins" / "docker-buildx").write_text("buildx")
    (paths["image"] / "system.crt").write_text("SYSTEM CA\n")
    return paths


def run(pod: dict[str, Path], **env: str) -> subprocess.CompletedProcess[str]:
    base = {
        "PATH": os.environ["PATH"], "DAEMON_JSON": '{"features":{"containerd-snapshotter":false}}',
        "JDA_CLI_DIR": str(pod["cli"]), "JDA_DIND_CONFIG_DIR": str(pod["dind-config"]),
        "JDA_DOCKER_CONFIG": str(pod["docker-config"]), "JDA_REGISTRY_AUTH": str(pod["auth"] / "config.json"),
        "JDA_CA_DIR": str(pod["ca"]), "JDA_SYSTEM_CA": str(pod["image"] / "system.crt"),
        "JDA_DOCKER_BIN": str(pod["image"] / "docker"), "JDA_CLI_PLUGINS": str(pod["image"] / "plugins"),
    }
    return subprocess.run(["sh", str(SCRIPT)], env={**base, **env}, capture_output=True, text=True, timeout=30)


def config(pod: dict[str, Path]) -> dict:
    data: dict = json.loads((pod["docker-config"] / "config.json").read_text())
    return data


def test_copies_the_cli_and_writes_daemon_json(pod):
    result = run(pod)
    assert result.returncode == 0, result.stderr
    assert (pod["cli"] / "bin" / "docker").read_text() == "#!/bin/sh\necho docker\n"
    assert (pod["cli"] / "cli-plugins" / "docker-buildx").read_text() == "buildx"
    daemon = json.loads((pod["dind-config"] / "daemon.json").read_text())
    assert daemon == {"features": {"containerd-snapshotter": False}}
    assert config(pod) == {}
    assert not (pod["cli"] / "ca-bundle.crt").exists()


def test_config_json_is_private_and_holds_the_credentials(pod):
    pod["auth"].mkdir()
    auth = {"auths": {"registry.corp": {"auth": "dTpw"}}}
    (pod["auth"] / "config.json").write_text(json.dumps(auth, indent=2) + "\n")
    assert run(pod).returncode == 0
    assert config(pod) == auth
    assert stat.S_IMODE((pod["docker-config"] / "config.json").stat().st_mode) == 0o600


@pytest.mark.parametrize("auth", ['{"auths": {"r": {"auth": "dTpw"}}}\n', '{\n  "auths": {}\n}  \n\n', '{}', '{ }\n'])
def test_proxies_are_added_to_any_credentials(pod, auth):
    pod["auth"].mkdir()
    (pod["auth"] / "config.json").write_text(auth)
    assert run(pod, DOCKER_PROXIES=json.dumps(PROXIES)).returncode == 0
    assert config(pod) == {**json.loads(auth), "proxies": PROXIES}


def test_proxies_without_credentials(pod):
    assert run(pod, DOCKER_PROXIES=json.dumps(PROXIES)).returncode == 0
    assert config(pod) == {"proxies": PROXIES}


def test_credentials_that_are_not_a_json_object_are_refused(pod):
    pod["auth"].mkdir()
    (pod["auth"] / "config.json").write_text('["not", "an", "object"]')
    result = run(pod, DOCKER_PROXIES=json.dumps(PROXIES))
    assert result.returncode != 0 and "not a JSON object" in result.stderr
    assert not (pod["docker-config"] / "config.json").exists()


def test_ca_bundle_holds_the_system_cas_and_every_registry_ca(pod):
    for host, pem in (("registry.corp:5000", "CA ONE\n"), ("other.corp", "CA TWO\n")):
        (pod["ca"] / host).mkdir()
        (pod["ca"] / host / "ca.crt").write_text(pem)
    result = run(pod)
    assert result.returncode == 0 and "2 registry CA(s)" in result.stdout
    bundle = (pod["cli"] / "ca-bundle.crt").read_text()
    assert bundle.startswith("SYSTEM CA\n") and "CA ONE\n" in bundle and "CA TWO\n" in bundle


def test_daemon_json_is_required(pod):
    result = run(pod, DAEMON_JSON="")
    assert result.returncode != 0 and "DAEMON_JSON" in result.stderr
