"""Online: `helm template` the real upstream Spinnaker chart (pinned in charts/spinnaker-values/upstream.yaml)
with our values: the rendered halyard configuration holds the hal commands we expect, runs the chart's
config.sh before our script, mounts the Secrets where both read them, runs the pinned Halyard, and uses
only hal flags that Halyard declares."""

from __future__ import annotations

import re
import shlex
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest
import yaml

from jdagent.chart.manifest import Manifest
from jdagent.facts.halyard import hal_problems
from jdagent.paths import REPO_ROOT, SPINNAKER_DIR
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
    assert "config provider docker-registry account edit jda-registry --track-digests true" in scripts
    assert "--docker-registries" not in scripts, "the v2 account ignores registry references (issue 20 item 5)"


def test_upstream_config_adds_both_registry_accounts(rendered):
    config = rendered.get("ConfigMap", suffix="-halyard-config")["data"]["config.sh"]
    assert "docker-registry account $PROVIDER_COMMAND jda-registry" in config
    assert "--address http://registry.registry.svc.cluster.local:5000" in config
    assert "--password-file /opt/registry/passwords/jda-registry" in config
    assert "--provider-version v2" in config


def test_install_runs_config_sh_before_the_additional_script(rendered):
    """The upstream install.sh runs scripts/config.sh (registries, the kubernetes account), then our
    script (which re-points that account), then deploy apply."""
    install = rendered.get("ConfigMap", suffix="-halyard-config")["data"]["install.sh"]
    config = install.index("/opt/halyard/scripts/config.sh")
    ours = install.index("/opt/halyard/additionalScripts/jenkins-dind-agent.sh")
    apply = install.index("deploy apply")
    assert config < ours < apply


def test_the_install_job_mounts_what_the_scripts_read(rendered):
    facts = yaml.safe_load((REPO_ROOT / "tests" / "unit" / "data" / "upstream" / "spinnaker.yaml").read_text())
    mounts = facts["upstream_chart"]["mounts"]
    jobs = [j for j in rendered.all("Job") if "install" in j["metadata"]["name"]]
    assert len(jobs) == 1
    spec = jobs[0]["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    [halyard] = [c for c in spec["containers"]]
    by_path = {m["mountPath"]: volumes[m["name"]] for m in halyard["volumeMounts"]}
    assert by_path[mounts["additionalSecrets"]]["secret"]["secretName"] == "spinnaker-jenkins"
    assert "configMap" in by_path[mounts["additionalScripts"]]
    # the Halyard daemon reads --password-file /opt/registry/passwords/<account> when config.sh adds registries
    daemon = rendered.get("StatefulSet", suffix="-halyard")["spec"]["template"]["spec"]
    daemon_volumes = {v["name"]: v for v in daemon["volumes"]}
    [container] = [c for c in daemon["containers"] if c["name"] == "halyard"]
    passwords = [m["mountPath"] for m in container["volumeMounts"]
                 if daemon_volumes[m["name"]].get("secret", {}).get("secretName") == "spinnaker-registry"]
    assert passwords == ["/opt/registry/passwords"]


def test_every_halyard_container_runs_the_pinned_halyard(rendered):
    image = UPSTREAM["halyardImage"]
    halyards = [c["image"] for o in rendered.objects if o.get("kind") in ("StatefulSet", "Job")
                for c in o["spec"]["template"]["spec"]["containers"] if "halyard" in c["image"]]
    assert halyards and set(halyards) == {image}


def test_upstream_hal_lines_use_flags_the_pinned_halyard_declares(rendered):
    """The chart's config.sh was written for older Halyards; every flag it renders for our values must
    exist in Halyard 2026.2.3 (tests/unit/data/hal-flags.yaml), get a value when it needs one, and every
    line names its positional NAMEs and required flags (jdagent.facts.halyard.hal_problems)."""
    flags = yaml.safe_load((REPO_ROOT / "tests" / "unit" / "data" / "hal-flags.yaml").read_text())
    config = rendered.get("ConfigMap", suffix="-halyard-config")["data"]["config.sh"]
    joined = re.sub(r"\\\n\s*", " ", config)
    checked = 0
    for line in joined.splitlines():
        if "$HAL_COMMAND" not in line or line.strip().startswith(("#", "export")):
            continue
        argv = shlex.split(line.split("$HAL_COMMAND", 1)[1].split("; then")[0].replace("$PROVIDER_COMMAND", "add"))
        assert not (problems := hal_problems(flags, argv)), problems
        checked += 1
    assert checked >= 5
