"""The pins agree with each other and with the facts recorded from upstream (data/upstream/versions.yaml):
one Jenkins core everywhere, a plugin lock built for its LTS line, an agent image current for it, the
dind tag pinned by the digest its official record gives."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from jdagent.chart import pluginlock
from jdagent.paths import CHART_DIR

DATA = Path(__file__).parent / "data" / "upstream"
VERSIONS = yaml.safe_load((DATA / "versions.yaml").read_text())
CLI = yaml.safe_load((DATA / "jenkins-plugin-cli.yaml").read_text())
VALUES = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
CHART = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
LOCK = pluginlock.lock()
PLUGINS = pluginlock.facts()["plugins"]


def test_one_jenkins_core_everywhere():
    core = VERSIONS["core"]["version"]
    controller = VALUES["controller"]["image"]
    assert controller["repository"] == VERSIONS["jenkins"]["image"]
    assert controller["tag"] == VERSIONS["jenkins"]["tag"]
    assert controller["tag"].split("-")[0] == core
    assert CHART["appVersion"] == core
    assert LOCK["core"] == core
    assert VERSIONS["jenkins"]["source"]["tag"] == core == VERSIONS["core"]["source"]["tag"].removeprefix("jenkins-")


def test_the_plugin_lock_is_the_bom_line_of_that_lts():
    core = LOCK["core"]
    line = ".".join(core.split(".")[:2]) + ".x"
    assert LOCK["bom"]["path"] == f"bom-{line}/pom.xml"
    assert LOCK["bom"]["repo"] == "jenkinsci/bom"


def test_jdk_of_controller_and_agent_agree():
    jdk = int(VALUES["controller"]["image"]["tag"].rsplit("-jdk", 1)[1])
    assert jdk in VERSIONS["jenkins"]["jdks"]
    agent_tag = VALUES["agent"]["jnlp"]["image"]["tag"]
    assert agent_tag.endswith(f"-jdk{jdk}") and jdk in VERSIONS["inbound_agent"]["jdks"]


def remoting_of(tag: str) -> str:
    match = re.match(r"^(\d+\.v[0-9a-f_]+)-\d+", tag)
    assert match, tag
    return match.group(1)


def test_agent_image_is_current_for_the_core():
    jnlp = VALUES["agent"]["jnlp"]["image"]
    agent = VERSIONS["inbound_agent"]
    assert jnlp["repository"] == agent["image"] and jnlp["tag"] == agent["tag"]
    remoting = remoting_of(jnlp["tag"])
    assert remoting == agent["remoting"]
    core = VERSIONS["core"]
    assert not pluginlock.older(remoting, core["remoting_minimum_supported"]), "the core refuses this agent"
    # same remoting line as the core ships, and not older than the Kubernetes plugin's own agent image
    assert remoting.split(".")[0] == core["remoting"].split(".")[0]
    plugin_image = VERSIONS["kubernetes_plugin_agent"]["image"].split(":", 1)[1]
    assert not pluginlock.older(jnlp["tag"].removesuffix("-jdk21"), plugin_image.removesuffix("-jdk21"))
    assert VERSIONS["kubernetes_plugin_agent"]["source"]["tag"] == LOCK["sets"]["base"]["kubernetes"]


def test_dind_is_pinned_by_its_recorded_digest():
    dind = VALUES["agent"]["dind"]["image"]
    facts = VERSIONS["dind"]
    assert dind["repository"] == facts["image"] and dind["tag"] == facts["tag"]
    assert dind["tag"] == f"{facts['version']}-dind"
    assert dind["digest"] == facts["digest"]
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", dind["digest"])
    assert facts["digest_source"]["path"] == f"repos/docker/remote/{dind['tag']}.md"


def test_images_without_a_public_digest_record_are_pinned_by_tag_only():
    assert VALUES["controller"]["image"]["digest"] == ""
    assert VALUES["agent"]["jnlp"]["image"]["digest"] == ""


def test_plugin_cli_facts_are_for_the_image_version():
    assert CLI["version"] == VERSIONS["jenkins"]["plugin_cli_version"] == CLI["source"]["tag"]


def test_provenance_is_complete():
    for key in ("jenkins", "core", "inbound_agent"):
        src = VERSIONS[key]["source"]
        assert src["repo"] and src["tag"] and re.fullmatch(r"[0-9a-f]{40}", src["commit"]), key
    for key in ("version_source", "digest_source"):
        assert re.fullmatch(r"[0-9a-f]{40}", VERSIONS["dind"][key]["commit"])
    assert PLUGINS["kubernetes"]["version"] == VERSIONS["kubernetes_plugin_agent"]["source"]["tag"]
