"""Online: `helm template` the real upstream Spinnaker chart (pinned in charts/spinnaker-values/upstream.yaml)
with our values; the rendered halyard configuration holds the hal commands we expect."""

from __future__ import annotations

import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest
import yaml

from jdagent.manifest import Manifest
from jdagent.paths import SPINNAKER_DIR
from jdagent.tools import find_helm

pytestmark = pytest.mark.online_only
UPSTREAM = yaml.safe_load((SPINNAKER_DIR / "upstream.yaml").read_text())


@pytest.fixture(scope="module")
def rendered() -> Manifest:
    helm = str(find_helm("4"))
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([helm, "pull", UPSTREAM["chart"], "--repo", UPSTREAM["repository"], "--version",
                        UPSTREAM["version"], "--destination", tmp], check=True, timeout=300)
        archive = next(Path(tmp).glob("*.tgz"))
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        chart = Path(tmp) / UPSTREAM["chart"]
        subprocess.run([helm, "dependency", "build", str(chart)], check=False, timeout=300)
        out = subprocess.run([helm, "template", "spinnaker", str(chart), "-n", "spinnaker",
                              "-f", str(SPINNAKER_DIR / "values.yaml"),
                              "-f", str(SPINNAKER_DIR / "values-kind.yaml")],
                             check=True, capture_output=True, text=True, timeout=300).stdout
    return Manifest.from_yaml(out)


def test_additional_script_is_rendered(rendered):
    scripts = rendered.get("ConfigMap", suffix="-additional-scripts")["data"]["jenkins-dind-agent.sh"]
    assert "config ci jenkins master $ACTION jenkins-dind-agent" in scripts
    assert "--csrf" in scripts
    assert "config provider kubernetes account edit default --docker-registries jda-registry" in scripts


def test_upstream_config_adds_both_registry_accounts(rendered):
    config = rendered.get("ConfigMap", suffix="-halyard-config")["data"]["config.sh"]
    assert "docker-registry account $PROVIDER_COMMAND jda-registry" in config
    assert "--address http://registry.registry.svc.cluster.local:5000" in config
    assert "--password-file /opt/registry/passwords/jda-registry" in config
    assert "--provider-version v2" in config
