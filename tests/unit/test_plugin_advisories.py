"""The advisory gate: no plugin the chart installs, no plugin a shipped values file adds, and not the core,
at a version that a published update-center security warning covers
(tests/unit/data/upstream/jenkins-warnings.yaml, recorded by jdagent.facts.warnings). A new warning in
the data fails these tests until the pin moves."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from jdagent.chart import pluginlock
from jdagent.chart.render import render
from tests.conftest import RENDER_CASES, ci_ids

LOCK = pluginlock.lock()
CORE = LOCK["core"]
DATA = pluginlock.load_yaml(pluginlock.WARNINGS_FILE)
WARNINGS = pluginlock.warnings()


def installed_by_chart(values) -> dict[str, str]:
    """name -> version from the plugins.txt the chart renders (what jenkins-plugin-cli gets)."""
    cm = render(values=values).get("ConfigMap", suffix="-config")
    lines = cm["data"]["plugins.txt"].split()
    return dict(line.split(":", 1) for line in lines)


def test_the_data_is_the_update_centers_with_its_provenance():
    source = DATA["source"]
    assert source["repo"] == "jenkins-infra/update-center2" and source["path"] == "resources/warnings.json"
    assert re.fullmatch(r"[0-9a-f]{40}", source["commit"]) and re.match(r"\d{4}-\d\d-\d\dT", source["date"])
    assert len(WARNINGS) > 1000
    assert {w.type for w in WARNINGS} <= {"core", "plugin"}
    assert len({w.id for w in WARNINGS}) > 0.95 * len(WARNINGS)


@pytest.mark.parametrize("sets", [("base",), ("base", "prometheus"), ("base", "oidc")],
                         ids=["base", "base+prometheus", "base+oidc"])
def test_no_locked_set_has_a_published_advisory(sets):
    install = {k: v for s in sets for k, v in LOCK["sets"][s].items()}
    assert [str(p) for p in pluginlock.advisories(CORE, install, WARNINGS)] == []


@pytest.mark.parametrize("values", RENDER_CASES, ids=ci_ids(RENDER_CASES))
def test_what_each_shipped_values_file_installs_has_no_published_advisory(values):
    install = installed_by_chart(values)
    assert len(install) >= len(LOCK["sets"]["base"])
    assert [str(p) for p in pluginlock.advisories(CORE, install, WARNINGS)] == []


def test_security_3676_covers_matrix_auth_up_to_3_2_9_only():
    """The real warning that made matrix-auth 3.2.8 a finding: the gate reads its pattern as Jenkins does
    (the whole version must match)."""
    [warning] = [w for w in WARNINGS if w.id == "SECURITY-3676"]
    assert warning.name == "matrix-auth" and warning.type == "plugin"
    assert warning.covers("3.2.8") and warning.covers("3.2.9") and warning.covers("3.1")
    assert not warning.covers("3.2.10") and not warning.covers("3.3")
    problems = pluginlock.advisories(CORE, {"matrix-auth": "3.2.8"}, WARNINGS)
    assert [p.plugin for p in problems] == ["matrix-auth"] and "SECURITY-3676" in problems[0].message


def test_a_new_warning_on_a_locked_pin_fails_the_gate():
    name, version = sorted(LOCK["sets"]["base"].items())[0]
    new = pluginlock.Warning("SECURITY-9999", "plugin", name, "https://example.invalid/advisory", "a new one",
                             (re.compile(re.escape(version)),))
    [problem] = pluginlock.advisories(CORE, dict(LOCK["sets"]["base"]), [*WARNINGS, new])
    assert problem.plugin == name and "SECURITY-9999" in problem.message and version in problem.message
    everything = pluginlock.Warning("SECURITY-9998", "plugin", name, "u", "no ranges: every version", ())
    assert pluginlock.advisories(CORE, {name: "0.1"}, [everything])
    core = pluginlock.Warning("SECURITY-9997", "core", "core", "u", "core", (re.compile(r"2[.]568[.][12]"),))
    assert [p.plugin for p in pluginlock.advisories(CORE, {}, [core])] == ["core"]
    other = pluginlock.Warning("SECURITY-9996", "plugin", "not-installed", "u", "m", ())
    assert pluginlock.advisories(CORE, {name: version}, [other]) == []


def test_the_check_command_refuses_an_additional_plugin_with_an_advisory(tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text("controller:\n  additionalPlugins:\n    - matrix-auth:3.2.8\n")
    proc = subprocess.run([sys.executable, "-m", "jdagent.chart.pluginlock", "check", "-f", str(values)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "matrix-auth: 3.2.8 is affected by SECURITY-3676" in proc.stderr
