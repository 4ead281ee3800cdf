"""The pinned-daemon stand-in's pins (jdagent.engine.dockerd) stay in step with the recorded facts
(data/upstream/dockerd-pin.yaml, versions.yaml) and the chart's dind image; gobuild reads a vendor.mod-style
requirement list as upstream writes it."""

from __future__ import annotations

from pathlib import Path

import yaml

from jdagent.engine import dockerd
from jdagent.gobuild import GoProgram, listed_requirements
from jdagent.paths import CHART_DIR

DATA = Path(__file__).parent / "data" / "upstream"
FACTS = yaml.safe_load((DATA / "dockerd-pin.yaml").read_text())
VERSIONS = yaml.safe_load((DATA / "versions.yaml").read_text())


def test_the_pins_are_the_recorded_ones():
    built = FACTS["built"]
    assert FACTS["pinned_image"] == dockerd.PINNED_IMAGE == f"docker:{VERSIONS['dind']['tag']}"
    assert (built["dockerd"]["module"], built["dockerd"]["version"]) == (dockerd.MOBY_MODULE, dockerd.MOBY)
    assert built["dockerd"]["reports"] == dockerd.DOCKER_VERSION
    assert built["dockerd"]["commit"] == dockerd.MOBY_COMMIT
    assert built["containerd"]["version"] == dockerd.CONTAINERD
    assert built["runc"]["version"] == dockerd.RUNC
    assert (built["docker"]["module"], built["docker"]["version"]) == (dockerd.CLI_MODULE, dockerd.CLI)
    assert built["docker"]["reports"] == VERSIONS["dind"]["version"]
    assert dockerd.BUILDX.lstrip("v") == str(VERSIONS["dind"]["buildx"]) == built["buildx"]["version"].lstrip("v")
    assert dockerd.COMPOSE.lstrip("v") == str(VERSIONS["dind"]["compose"]) == built["compose"]["version"].lstrip("v")


def test_the_stand_in_is_for_the_charts_dind_image():
    dind = yaml.safe_load((CHART_DIR / "values.yaml").read_text())["agent"]["dind"]["image"]
    assert f"{dind['repository']}:{dind['tag']}" == dockerd.PINNED_IMAGE


def test_dockerd_reports_the_release_its_module_is():
    """v2.0.0-beta.21 is docker-v29.7.1: the binary must say 29.7.1, not the pinned 29.7.2."""
    program = next(p for p in dockerd.PROGRAMS if p.name == "dind29-dockerd")
    assert f"-X github.com/moby/moby/v2/dockerversion.Version={dockerd.DOCKER_VERSION}" in program.ldflags
    assert dockerd.DOCKER_VERSION == "29.7.1"
    assert any(q["query"].endswith("@v2.0.0-beta.21") and "docker-v29.7.1" in q["answered"]
               for q in FACTS["proxy"]["asked"])
    assert any("6a43e3d5" in q["query"] and "403" in q["answered"] for q in FACTS["proxy"]["asked"])


def test_each_program_has_a_distinct_name_and_the_cli_pins_its_vendor_list():
    names = [p.name for p in (*dockerd.PROGRAMS, *dockerd.PLUGINS)]
    assert len(names) == len(set(names)) and all(n.startswith("dind29-") for n in names)
    cli = next(p for p in dockerd.PROGRAMS if p.module == dockerd.CLI_MODULE)
    assert cli.requires_file == "vendor.mod"


def test_a_key_ignores_later_fields_left_empty():
    """Adding build_flags and requires_file to GoProgram kept every existing build's cache key."""
    plain = GoProgram(name="x", module="m", version="v1", packages={"x": "m"}, source="s")
    assert plain.key("go1.26") == GoProgram(name="x", module="m", version="v1", packages={"x": "m"}, source="s",
                                            build_flags=(), requires_file=None).key("go1.26")
    assert plain.key("go1.26") != GoProgram(name="x", module="m", version="v1", packages={"x": "m"}, source="s",
                                            build_flags=("-buildmode=pie",)).key("go1.26")


def test_listed_requirements_reads_blocks_single_lines_and_replaces():
    text = """module github.com/docker/cli

// comment
go 1.25.0

tool (
\tgolang.org/x/mod/modfile // for checks
)

require (
\tdario.cat/mergo v1.0.2
\tgithub.com/moby/moby/api v1.55.0 // indirect
)

require github.com/creack/pty v1.1.24

replace github.com/a/b => github.com/c/b v0.1.0
replace github.com/local => ./local
"""
    requires, replaces = listed_requirements(text)
    assert requires == {"dario.cat/mergo": "v1.0.2", "github.com/moby/moby/api": "v1.55.0",
                        "github.com/creack/pty": "v1.1.24"}
    assert replaces == {"github.com/a/b": "github.com/c/b@v0.1.0"}
