"""The chart's locked plugin set and the checks that it can install and load on the pinned core.

What jenkins-plugin-cli (2.15.0, in the pinned jenkins/jenkins image) and Jenkins core do, per
tests/unit/data/upstream/jenkins-plugins.yaml and its recorded sources:
  - every plugin in the install list is a top-level pin; a dependency, optional or not, declared at a
    higher version than its top-level pin aborts the install ("... depends on X:v, but there is an
    older version defined on the top level");
  - a plugin whose requiredCore is newer than the core aborts it ("requires a greater version of Jenkins");
  - with `--latest false`, a dependency that is not pinned is installed at the version its dependent
    declares; the lock pins every non-optional dependency, so nothing is resolved at pod start;
  - Jenkins core adds optional implied dependencies on detached plugins for plugins built against a core
    older than the detachment (split-plugins.txt): when such a plugin is installed, its version counts.

`python -m jdagent.chart.pluginlock check [-f values.yaml ...]` runs the same checks on a values file's
controller.additionalPlugins where facts exist, and refuses every version (the core's included) that a
published update-center security warning covers (tests/unit/data/upstream/jenkins-warnings.yaml), for
additional plugins without facts too.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from univers.versions import MavenVersion

from jdagent.chart import yamlload
from jdagent.chart.render import deep_merge
from jdagent.paths import CHART_DIR, REPO_ROOT

LOCK_FILE = CHART_DIR / "files" / "plugins-lock.yaml"
FACTS_FILE = REPO_ROOT / "tests" / "unit" / "data" / "upstream" / "jenkins-plugins.yaml"
PLUGIN_RE = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+):(?P<version>[A-Za-z0-9_.+-]+)$")


def version_key(version: str) -> MavenVersion:
    """Order of Maven's ComparableVersion (what Jenkins' VersionNumber implements)."""
    return MavenVersion(version)


def older(a: str, b: str) -> bool:
    return version_key(a) < version_key(b)


@dataclass(frozen=True)
class Problem:
    plugin: str
    message: str

    def __str__(self) -> str:
        return f"{self.plugin}: {self.message}"


def load_yaml(path: Path) -> Any:
    return yamlload.load(path.read_text())


def lock() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(LOCK_FILE)
    return data


def facts() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(FACTS_FILE)
    return data


def implied_dependencies(name: str, required_core: str, declared: Mapping[str, Any],
                         splits: Iterable[Mapping[str, str]],
                         cycles: Iterable[str] = ()) -> list[dict[str, str]]:
    """Detached plugins Jenkins adds as optional dependencies of a plugin built against an older core
    (DetachedPluginsUtil.getImpliedDependencies): required core <= the version the plugin was split in."""
    broken = set(cycles)
    out = []
    for split in splits:
        if split["plugin"] == name or f"{name} {split['plugin']}" in broken or split["plugin"] in declared:
            continue
        if not older(split["since"], required_core):
            out.append(dict(split))
    return out


def check(core: str, install: Mapping[str, str], plugin_facts: Mapping[str, Any],
          splits: Iterable[Mapping[str, str]] = (), cycles: Iterable[str] = (),
          unknown_ok: Iterable[str] = ()) -> list[Problem]:
    """Problems that stop jenkins-plugin-cli or Jenkins from installing and loading `install`
    (name -> pinned version) on `core`. Plugins without recorded facts are problems unless listed in
    `unknown_ok` (their format is checked elsewhere)."""
    problems: list[Problem] = []
    splits = list(splits)
    skip = set(unknown_ok)
    for name, version in sorted(install.items()):
        fact = plugin_facts.get(name)
        if fact is None:
            if name not in skip:
                problems.append(Problem(name, "no recorded facts (dependencies and required core unknown)"))
            continue
        if fact["version"] != version:
            if name not in skip:
                problems.append(Problem(name, f"pinned at {version} but the facts are for {fact['version']}"))
            continue
        if older(core, fact["requiredCore"]):
            problems.append(Problem(name, f"{version} requires Jenkins {fact['requiredCore']}, newer than {core}"))
        deps = dict(fact["dependencies"])
        for implied in implied_dependencies(name, fact["requiredCore"], deps, splits, cycles):
            deps[implied["plugin"]] = {"version": implied["version"], "optional": True}
        for dep, info in sorted(deps.items()):
            pinned = install.get(dep)
            if pinned is None:
                if not info["optional"]:
                    problems.append(Problem(name, f"depends on {dep}:{info['version']}, which is not in the set"))
                continue
            if older(pinned, info["version"]):
                kind = "optional dependency" if info["optional"] else "dependency"
                problems.append(Problem(name, f"{kind} {dep}:{info['version']} is newer than the pinned "
                                              f"{dep}:{pinned}"))
    return problems


def parse_plugins(lines: Iterable[str], key: str = "controller.additionalPlugins") -> dict[str, str]:
    out: dict[str, str] = {}
    for i, line in enumerate(lines):
        match = PLUGIN_RE.match(line)
        if not match:
            raise ValueError(f"{key}[{i}] = {line!r} is not id:version")
        out[match["name"]] = match["version"]
    return out


def install_set(values: Mapping[str, Any] | None = None, data: Mapping[str, Any] | None = None) -> dict[str, str]:
    """name -> version the chart installs for these values (the chart's template does the same)."""
    values = values or {}
    data = data or lock()
    controller = values.get("controller") or {}
    out = dict(data["sets"]["base"])
    if (controller.get("prometheus") or {}).get("enabled"):
        out.update(data["sets"]["prometheus"])
    out.update(parse_plugins(controller.get("additionalPlugins") or []))
    return out


WARNINGS_FILE = REPO_ROOT / "tests" / "unit" / "data" / "upstream" / "jenkins-warnings.yaml"


@dataclass(frozen=True)
class Warning:
    """One update-center security warning (jdagent.facts.warnings records them and says how Jenkins
    applies them): `patterns` are Java regexes matched against the whole version; none covers all."""

    id: str
    type: str
    name: str
    url: str
    message: str
    patterns: tuple[re.Pattern[str], ...]

    def covers(self, version: str) -> bool:
        return not self.patterns or any(p.fullmatch(version) for p in self.patterns)


def warnings(path: Path = WARNINGS_FILE) -> list[Warning]:
    data = load_yaml(path)
    return [Warning(w["id"], w["type"], w["name"], w["url"], w["message"],
                    tuple(re.compile(p) for p in w["patterns"])) for w in data["warnings"]]


def advisories(core: str, install: Mapping[str, str], published: Iterable[Warning]) -> list[Problem]:
    """Every published warning that covers the core or an installed plugin at its pinned version."""
    problems = []
    for w in published:
        if w.type == "core":
            target, version = "core", core
        elif w.type == "plugin" and w.name in install:
            target, version = w.name, install[w.name]
        else:
            continue
        if w.covers(version):
            problems.append(Problem(target, f"{version} is affected by {w.id} ({w.message}; {w.url})"))
    return sorted(problems, key=lambda p: (p.plugin, p.message))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check the plugin set the chart installs for your values.")
    parser.add_argument("command", choices=["check"])
    parser.add_argument("-f", "--values", type=Path, action="append", default=[])
    args = parser.parse_args(argv)
    values: dict[str, Any] = {}
    for path in args.values:
        values = deep_merge(values, load_yaml(path) or {})
    data, known = lock(), facts()
    try:
        install = install_set(values, data)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    extra = set(parse_plugins((values.get("controller") or {}).get("additionalPlugins") or []))
    no_facts = sorted(n for n in extra if n not in known["plugins"] or known["plugins"][n]["version"] != install[n])
    problems = check(data["core"], install, known["plugins"], known["splits"]["entries"],
                     known["splits"].get("cycles", []), unknown_ok=no_facts)
    problems += advisories(data["core"], install, warnings())
    for name in no_facts:
        print(f"note: {name}:{install[name]} has no recorded facts; only its id:version format was checked")
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    print(f"{len(install)} plugins for Jenkins {data['core']}: {'OK' if not problems else f'{len(problems)} problems'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
