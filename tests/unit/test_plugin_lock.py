"""The plugin lock is closed and consistent with the pinned core, by the facts recorded from the plugins'
own pom.xml files (tests/unit/data/upstream/jenkins-plugins.yaml); the chart installs exactly it."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml

from jdagent.chart import pluginlock
from jdagent.chart.manifest import container
from jdagent.chart.render import RenderError, render
from jdagent.paths import CHART_DIR, REPO_ROOT
from tests.conftest import RENDER_CASES, ci_ids

LOCK = pluginlock.lock()
FACTS = pluginlock.facts()
PLUGINS = FACTS["plugins"]
SPLITS = FACTS["splits"]["entries"]
CYCLES = FACTS["splits"]["cycles"]
CORE = LOCK["core"]


def problems(install, core=CORE):
    return [str(p) for p in pluginlock.check(core, install, PLUGINS, SPLITS, CYCLES)]


def base():
    return dict(LOCK["sets"]["base"])


@pytest.mark.parametrize("sets", [("base",), ("base", "prometheus"), ("base", "oidc"), ("base", "prometheus", "oidc")],
                         ids=["base", "base+prometheus", "base+oidc", "all"])
def test_every_set_is_closed_and_fits_the_core(sets):
    install = {k: v for s in sets for k, v in LOCK["sets"][s].items()}
    assert problems(install) == []
    roots = [r for s in sets for r in LOCK["roots"][s]]
    assert set(roots) <= set(install)


def test_the_upstream_incident_is_caught():
    """credentials 14xx and later declare an optional dependency on a newer configuration-as-code; the old
    chart pinned 1985 and jenkins-plugin-cli aborted."""
    install = base()
    needed = PLUGINS["credentials"]["dependencies"]["configuration-as-code"]
    assert needed["optional"] is True
    assert pluginlock.older("1985.vdda_32d0c4ea_b_", needed["version"])
    install["configuration-as-code"] = "1985.vdda_32d0c4ea_b_"
    found = problems(install)
    assert (f"credentials: optional dependency configuration-as-code:{needed['version']} is newer than the "
            "pinned configuration-as-code:1985.vdda_32d0c4ea_b_") in found


def test_a_dependency_pinned_too_old_is_caught():
    install = base()
    install["snakeyaml-api"] = "2.3-123.v13484c65210a_"
    found = problems(install)
    assert any(p.startswith("configuration-as-code: dependency snakeyaml-api:") for p in found), found
    assert any("snakeyaml-api: pinned at 2.3-123.v13484c65210a_ but the facts are for" in p for p in found)


def test_a_missing_dependency_is_caught():
    install = base()
    del install["kubernetes-client-api"]
    assert any(p.startswith("kubernetes: depends on kubernetes-client-api:") and p.endswith("not in the set")
               for p in problems(install))


def test_a_core_older_than_a_plugin_needs_is_caught():
    newest = max((f["requiredCore"] for n, f in PLUGINS.items() if n in LOCK["sets"]["base"]),
                 key=pluginlock.version_key)
    older_core = "2.479.3"
    assert pluginlock.older(older_core, newest)
    assert any(f"requires Jenkins {newest}, newer than {older_core}" in p for p in problems(base(), older_core))


def test_unknown_plugins_need_facts_unless_allowed():
    install = {**base(), "no-such-plugin": "1.0"}
    assert "no-such-plugin: no recorded facts (dependencies and required core unknown)" in problems(install)
    assert pluginlock.check(CORE, install, PLUGINS, SPLITS, CYCLES, unknown_ok=["no-such-plugin"]) == []


def test_implied_dependencies_follow_split_plugins():
    splits = [{"plugin": "instance-identity", "since": "2.356", "version": "3.1"}]
    assert [d["plugin"] for d in pluginlock.implied_dependencies("old", "2.356", {}, splits)] == ["instance-identity"]
    assert pluginlock.implied_dependencies("new", "2.357", {}, splits) == []
    assert pluginlock.implied_dependencies("old", "2.100", {"instance-identity": {}}, splits) == []
    assert pluginlock.implied_dependencies("old", "2.100", {}, splits, ["old instance-identity"]) == []
    install = {"old": "1", "instance-identity": "2.0"}
    facts = {"old": {"version": "1", "requiredCore": "2.100", "dependencies": {}},
             "instance-identity": {"version": "2.0", "requiredCore": "2.100", "dependencies": {}}}
    found = [str(p) for p in pluginlock.check("2.568", install, facts, splits)]
    assert found == ["old: optional dependency instance-identity:3.1 is newer than the pinned instance-identity:2.0"]


def test_versions_order_like_jenkins():
    assert pluginlock.older("1985.vdda_32d0c4ea_b_", "2006.v001a_2ca_6b_574")
    assert pluginlock.older("2.21-7.v4777a_f3a_a_d47", "2.22-19.v10a_a_582ea_26e")
    assert pluginlock.older("1.0-SNAPSHOT", "1.0")
    assert pluginlock.older("5.10.1-rc1", "5.10.1")
    assert not pluginlock.older("4423.vb_59f230b_ce53", "4371.vb_33b_086d54a_1")


def test_facts_carry_provenance_and_match_the_lock():
    every = {k: v for s in LOCK["sets"].values() for k, v in s.items()}
    for name, version in every.items():
        fact = PLUGINS[name]
        assert fact["version"] == version, name
        src = fact["source"]
        assert src["repo"].startswith("jenkinsci/"), (name, src)
        assert re.fullmatch(r"[0-9a-f]{40}", src["commit"]), (name, src)
        if src["path"] == "war/pom.xml":
            # --war-bundled: the version the core's war bundles, with the facts the war gives
            assert src["repo"] == "jenkinsci/jenkins" and src["tag"] == f"jenkins-{CORE}", (name, src)
            assert fact["requiredCore"] == CORE and "optional ones unknown" in src["note"], (name, src)
            assert LOCK["overrides"][name]["reason"].startswith("--war-bundled:"), name
        elif "untagged" in src:
            # an untagged JEP-229 release, read at the commit its version names
            assert src["tag"] == src["commit"], (name, src)
            assert src["commit"].startswith(version.rsplit(".v", 1)[1].replace("_", "")), (name, src)
        else:
            assert src["tag"].endswith(version), (name, src)
        assert src["path"].endswith("pom.xml")
    assert re.fullmatch(r"[0-9a-f]{40}", LOCK["bom"]["commit"])
    assert FACTS["core"]["version"] == CORE


def test_overrides_are_older_than_the_bom_and_say_why():
    every = {k: v for s in LOCK["sets"].values() for k, v in s.items()}
    for name, entry in LOCK["overrides"].items():
        assert every[name] == entry["pinned"], name
        assert entry["reason"], name
        if entry["reason"].startswith("--war-bundled:"):
            assert entry["pinned"] == entry["bom"], "at the BOM version, only its facts come from the war"
        else:
            assert pluginlock.older(entry["pinned"], entry["bom"]), name


def test_every_pin_behind_the_bom_is_justified_by_a_fact():
    """Issue 21: a pin behind the BOM either names the snapshot that lacks the BOM release (its HEAD commit
    and date), or steps back because a dependency's BOM version needs more than a pin so justified."""
    lacking = re.compile(r"--fallback: (jenkinsci/[\w.-]+) snapshot \(HEAD [0-9a-f]{40} \(\d{4}-\d\d-\d\d\)\) has "
                         r"no release tag of (\S+), nor commit [0-9a-f]{12}")
    stepped = re.compile(r"dependency ([\w-]+):(\S+) is newer than the pinned \1:([^\s;]+)")
    behind = {n: e for n, e in LOCK["overrides"].items() if e["pinned"] != e["bom"]}
    assert behind
    for name, entry in behind.items():
        own = lacking.match(entry["reason"])
        if own:
            assert own[2] == entry["bom"], name
            assert own[1] == PLUGINS[name]["source"]["repo"], name
            continue
        causes = stepped.findall(entry["reason"])
        assert causes, (name, entry["reason"])
        for dep, needed, pinned in causes:
            assert dep in behind and behind[dep]["pinned"] == pinned, (name, dep)
            assert pluginlock.older(pinned, needed), (name, dep)


def test_pins_below_the_bom_come_only_from_an_explicit_fallback_recorded_in_the_header():
    """The generator fails on a missing BOM source unless run with --fallback; the header then says so."""
    header = [line for line in pluginlock.LOCK_FILE.read_text().splitlines() if line.startswith("#")]
    command = header[0]
    assert command.startswith("# Generated by `python -m jdagent.facts.plugins --sources "), command
    fallback = [n for n, e in LOCK["overrides"].items() if e["reason"].startswith("--fallback:")]
    assert ("--fallback" in command) == bool(fallback)
    war = [n for n, e in LOCK["overrides"].items() if e["reason"].startswith("--war-bundled:")]
    assert all(f"--war-bundled {n}" in command for n in war)
    assert all(e["reason"].startswith(("--fallback:", "pinned by --pin", "--war-bundled:"))
               for e in LOCK["overrides"].values())


@pytest.mark.parametrize("values", RENDER_CASES, ids=ci_ids(RENDER_CASES))
def test_the_chart_installs_exactly_the_lock(values):
    manifest = render(values=values)
    lines = manifest.get("ConfigMap", suffix="-config")["data"]["plugins.txt"].splitlines()
    ids = [line.split(":")[0] for line in lines]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    rendered = dict(line.split(":", 1) for line in lines)
    assert rendered == pluginlock.install_set(yaml.safe_load(values.read_text()) or {})
    assert problems(rendered) == []


def test_prometheus_adds_its_set_and_additional_plugins_add_or_replace():
    extra = "matrix-auth:3.2.10"
    manifest = render(overrides={"controller": {"prometheus": {"enabled": True},
                                                "additionalPlugins": [extra, "git:5.10.1"]}})
    rendered = dict(line.split(":", 1)
                    for line in manifest.get("ConfigMap", suffix="-config")["data"]["plugins.txt"].splitlines())
    assert set(LOCK["sets"]["prometheus"]) <= set(rendered)
    assert rendered["matrix-auth"] == "3.2.10"
    assert rendered["git"] == "5.10.1"
    assert len(rendered) == len(LOCK["sets"]["base"]) + len(LOCK["sets"]["prometheus"]) + 1


@pytest.mark.parametrize("bad", ["kubernetes", "kubernetes:latest", "kubernetes :1", "a:b:c:"])
def test_additional_plugins_format_is_checked_at_render_time(bad, helm_major):
    with pytest.raises(RenderError, match=r"additionalPlugins"):
        render(overrides={"controller": {"additionalPlugins": [bad]}}, helm=helm_major)


def test_cli_check_of_a_values_file(tmp_path):
    def run(*values: str):
        args = [sys.executable, "-m", "jdagent.chart.pluginlock", "check"]
        for v in values:
            args += ["-f", v]
        return subprocess.run(args, cwd=REPO_ROOT, capture_output=True, text=True)

    ok = run(str(RENDER_CASES[0]))
    assert ok.returncode == 0, ok.stderr
    assert f"{len(LOCK['sets']['base'])} plugins for Jenkins {CORE}: OK" in ok.stdout
    old = tmp_path / "old.yaml"
    old.write_text("controller:\n  additionalPlugins: ['snakeyaml-api:2.3-123.v13484c65210a_', 'acme:1.0']\n")
    bad = run(str(old))
    assert bad.returncode == 1
    assert "error: configuration-as-code: dependency snakeyaml-api:" in bad.stderr
    assert "note: acme:1.0 has no recorded facts; only its id:version format was checked" in bad.stdout
    malformed = tmp_path / "bad.yaml"
    malformed.write_text("controller:\n  additionalPlugins: ['acme']\n")
    assert run(str(malformed)).returncode == 2


def test_the_team_case_installs_the_locks_oidc_set_with_facts():
    """ci/team-values.yaml adds the lock's tested "oidc" pins; moving the lock must move the example too."""
    values = yaml.safe_load((CHART_DIR / "ci" / "team-values.yaml").read_text())
    extra = pluginlock.parse_plugins(values["controller"]["additionalPlugins"])
    assert extra == LOCK["sets"]["oidc"]
    assert set(LOCK["roots"]["oidc"]) <= set(extra)
    result = subprocess.run([sys.executable, "-m", "jdagent.chart.pluginlock", "check", "-f",
                             str(CHART_DIR / "ci" / "team-values.yaml")], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0 and "note:" not in result.stdout, result.stdout + result.stderr


def test_init_container_runs_the_installer_with_a_closed_list():
    manifest = render()
    spec = manifest.get("StatefulSet")["spec"]["template"]["spec"]
    init = container(spec, "install-plugins")
    assert init["command"] == ["/bin/sh", "/var/jenkins_config/install-plugins.sh"]
    env = {e["name"]: e["value"] for e in init["env"]}
    assert env == {"PLUGINS_TXT": "/var/jenkins_config/plugins.txt", "PLUGIN_DIR": "/var/jenkins_home/plugins",
                   "PLUGIN_SOURCE": "updateCenter", "ALLOW_DOWNGRADE": "false",
                   "JAVA_OPTS": "-XX:MaxRAMPercentage=75"}, "jenkins-plugin-cli.sh hands JAVA_OPTS to its JVM"
    allowed = render(overrides={"controller": {"plugins": {"allowDowngrade": True}}}).get("StatefulSet")
    assert {"name": "ALLOW_DOWNGRADE", "value": "true"} in container(allowed["spec"]["template"]["spec"],
                                                                     "install-plugins")["env"]
    mounts = {m["mountPath"]: m["name"] for m in init["volumeMounts"]}
    assert mounts["/var/jenkins_home"] == "jenkins-home" and mounts["/var/jenkins_config"] == "config"
    cm = manifest.get("ConfigMap", suffix="-config")["data"]
    assert "install-plugins.sh" in cm and "plugins.txt" in cm
