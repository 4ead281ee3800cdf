"""Regenerate the plugin lock and the plugin facts from upstream sources.

    python -m jdagent.facts.plugins --sources DIR --bom-tag 6667.v64d86185fd17 --line 2.568.x \\
        --core 2.568.2

Versions come from jenkinsci/bom (bom-<line>/pom.xml at --bom-tag). For every plugin the chart
installs, the plugin's own pom.xml at its release tag gives its required core (jenkins.version) and
its direct plugin dependencies with the versions its build resolved (explicit, or managed by the BOM
release the plugin imported), optional ones included. Jenkins core's split-plugins.txt adds the
implied dependencies of plugins built against a core older than a detachment.

Writes:
  charts/jenkins-dind-agent/files/plugins-lock.yaml   what the chart installs (name: version, per set)
  tests/unit/data/upstream/jenkins-plugins.yaml       the facts the closure test checks, with provenance
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from jdagent.facts import maven
from jdagent.facts.gitsrc import GitSources, SourceMissing
from jdagent.paths import CHART_DIR, REPO_ROOT

LOCK_FILE = CHART_DIR / "files" / "plugins-lock.yaml"
FACTS_FILE = REPO_ROOT / "tests" / "unit" / "data" / "upstream" / "jenkins-plugins.yaml"
BOM_REPO = "jenkinsci/bom"
CORE_REPO = "jenkinsci/jenkins"
SPLITS_PATH = "core/src/main/resources/jenkins/split-plugins.txt"
CYCLES_PATH = "core/src/main/resources/jenkins/split-plugin-cycles.txt"

# Plugins whose repository is not jenkinsci/<id>-plugin. Multi-module repositories hold several ids.
REPOS: dict[str, str] = {
    "configuration-as-code": "jenkinsci/configuration-as-code-plugin",
    "pipeline-model-api": "jenkinsci/pipeline-model-definition-plugin",
    "pipeline-model-extensions": "jenkinsci/pipeline-model-definition-plugin",
    "pipeline-stage-tags-metadata": "jenkinsci/pipeline-model-definition-plugin",
    "pipeline-model-definition": "jenkinsci/pipeline-model-definition-plugin",
    "mina-sshd-api-common": "jenkinsci/mina-sshd-api-plugin",
    "mina-sshd-api-core": "jenkinsci/mina-sshd-api-plugin",
    "pipeline-groovy-lib": "jenkinsci/pipeline-groovy-lib-plugin",
    "pipeline-stage-view": "jenkinsci/pipeline-stage-view-plugin",
    "pipeline-rest-api": "jenkinsci/pipeline-stage-view-plugin",
}

# Parent poms outside the plugin's repository: (groupId, artifactId) -> repository (tag = version).
PARENT_REPOS: dict[tuple[str, str], str] = {
    ("org.jenkins-ci.plugins", "plugin"): "jenkinsci/plugin-pom",
    ("org.jvnet.hudson.plugins", "analysis-pom"): "jenkinsci/analysis-pom-plugin",
}

# Roots per set: "base" is what the chart always installs; "prometheus" is added by a value; "oidc" is not
# installed by the chart: it records tested pins for controller.additionalPlugins (ci/team-values.yaml).
SETS: dict[str, list[str]] = {
    "base": ["kubernetes", "workflow-aggregator", "configuration-as-code", "git", "job-dsl"],
    "prometheus": ["prometheus"],
    "oidc": ["oic-auth", "matrix-auth"],
}


def log(message: str) -> None:
    print(f"[plugin-facts] {message}", file=sys.stderr, flush=True)


@dataclass
class Fact:
    name: str
    version: str
    required_core: str
    dependencies: dict[str, dict[str, Any]]
    source: dict[str, str]


@dataclass
class Resolver:
    src: GitSources
    bom_tag: str
    line: str
    repos: dict[str, str] = field(default_factory=lambda: dict(REPOS))
    fallback: bool = False
    _boms: dict[tuple[str, str], dict[str, tuple[str, str]]] = field(default_factory=dict)

    # --- BOM ---------------------------------------------------------------------------------------
    def bom(self, tag: str, name: str) -> dict[str, tuple[str, str]]:
        """artifactId -> (groupId, version) managed by bom `name` (bom-weekly, bom-2.568.x...) at `tag`."""
        key = (tag, name)
        if key in self._boms:
            return self._boms[key]
        path = f"{name}/pom.xml"

        def read(p: str) -> str | None:
            try:
                return self.src.show(BOM_REPO, tag, p)
            except SourceMissing:
                return None

        eff = maven.effective(read, path, version=tag)
        eff.properties.setdefault("changelist", tag)
        managed: dict[str, tuple[str, str]] = {}
        for d in eff.managed:
            if d.classifier:
                continue
            version = eff.resolve(d.version) or ""
            if d.scope == "import":
                for art, gv in self.bom(version if version != tag else tag, d.artifact).items():
                    managed.setdefault(art, gv)
                continue
            managed.setdefault(d.artifact, (eff.resolve(d.group) or "", version))
        # explicit entries of the line win over the imported bom-weekly ones
        explicit = {d.artifact: (eff.resolve(d.group) or "", eff.resolve(d.version) or "")
                    for d in eff.chain[0].managed if d.scope != "import" and not d.classifier}
        managed.update(explicit)
        self._boms[key] = managed
        return managed

    def line_versions(self) -> dict[str, tuple[str, str]]:
        return self.bom(self.bom_tag, f"bom-{self.line}")

    # --- plugin sources ----------------------------------------------------------------------------
    def repo_of(self, name: str) -> str:
        if name in self.repos:
            return self.repos[name]
        for candidate in (f"jenkinsci/{name}-plugin", f"jenkinsci/{name}"):
            if self.src.has(candidate):
                return candidate
        raise SourceMissing(f"no snapshot for plugin {name} (tried jenkinsci/{name}-plugin, jenkinsci/{name})")

    def _prefixes(self, repo: str, name: str) -> tuple[str, ...]:
        short = repo.split("/")[1]
        base = short.removesuffix("-plugin")
        return ("", f"{name}-", f"{short}-", "v", f"{base}-", f"{name}-parent-", f"{base}-parent-")

    def tag_of(self, repo: str, name: str, version: str) -> str:
        tags = self.src.tags(repo)
        for prefix in self._prefixes(repo, name):
            if prefix + version in tags:
                return prefix + version
        raise SourceMissing(f"{repo}: no tag for {name} {version}")

    def released(self, repo: str, name: str) -> dict[str, str]:
        """version -> tag of every release tag in the snapshot."""
        out: dict[str, str] = {}
        for tag in self.src.tags(repo):
            for prefix in self._prefixes(repo, name):
                rest = tag[len(prefix):] if tag.startswith(prefix) else None
                if rest and rest[0].isdigit() and "rc" not in rest and "beta" not in rest and "alpha" not in rest:
                    out.setdefault(rest, tag)
        return out

    def newest_available(self, name: str, version: str) -> str | None:
        """The newest release not newer than `version` whose source the snapshot holds."""
        from jdagent.chart.pluginlock import older

        repo = self.repo_of(name)
        candidates = [v for v in self.released(repo, name) if not older(version, v)]
        if not candidates:
            return None
        from jdagent.chart.pluginlock import version_key

        return max(candidates, key=version_key)

    def module_pom(self, repo: str, tag: str, name: str) -> str:
        candidates = [p for p in self.src.files(repo, tag) if p == "pom.xml" or
                      (p.endswith("/pom.xml") and p.count("/") == 1)]
        for path in sorted(candidates, key=lambda p: (p != "pom.xml", p)):
            pom = maven.parse(self.src.show(repo, tag, path), path)
            if pom.artifact == name:
                return path
        raise SourceMissing(f"{repo}@{tag}: no pom.xml with artifactId {name}")

    def parent(self, gav: tuple[str, str, str]) -> maven.Effective | None:
        """The effective model of an external parent pom (plugin-pom, analysis-pom) at its version."""
        repo = PARENT_REPOS.get(gav[:2])
        if repo is None:
            return None
        tags = self.src.tags(repo)
        tag = next((t for t in (gav[2], f"{gav[1]}-{gav[2]}", f"v{gav[2]}") if t in tags), None)
        if tag is None:
            raise SourceMissing(f"{repo}: no tag for parent {':'.join(gav)}")

        def read(p: str) -> str | None:
            try:
                return self.src.show(repo, tag, p)
            except SourceMissing:
                return None

        return maven.effective(read, "pom.xml", version=gav[2], parents=self.parent)

    def fact(self, name: str, version: str, universe: set[str]) -> Fact:
        repo = self.repo_of(name)
        tag = self.tag_of(repo, name, version)
        path = self.module_pom(repo, tag, name)

        def read(p: str) -> str | None:
            try:
                return self.src.show(repo, tag, p)
            except SourceMissing:
                return None

        eff = maven.effective(read, path, version=version, parents=self.parent)
        core = eff.resolve(eff.properties.get("jenkins.version"))
        if not core or "${" in core:
            raise SourceMissing(f"{repo}@{tag}: jenkins.version unresolved ({core})")
        managed: dict[str, str] = {}
        for d in eff.managed:
            if d.scope == "import" or d.classifier:
                continue
            managed.setdefault(d.artifact, eff.resolve(d.version) or "")
        for d in eff.managed:
            if d.scope == "import" and (eff.resolve(d.group) or "") == "io.jenkins.tools.bom":
                bom_name = eff.resolve(d.artifact) or ""
                for art, (_, v) in self.bom(eff.resolve(d.version) or "", bom_name).items():
                    managed.setdefault(art, v)
        deps: dict[str, dict[str, Any]] = {}
        for d in eff.dependencies:
            if d.scope not in ("compile", "runtime") or d.classifier:
                continue
            art = eff.resolve(d.artifact) or ""
            if art not in universe and d.type not in ("hpi", "jpi"):
                continue
            dep_version = eff.resolve(d.version) if d.version else managed.get(art)
            if not dep_version or "${" in dep_version:
                raise SourceMissing(f"{repo}@{tag}: no version for dependency {art}")
            deps[art] = {"version": dep_version, "optional": d.optional}
        return Fact(name, version, core, deps, {
            "repo": repo, "tag": tag, "path": path, "commit": self.src.commit_of(repo, tag)})


def read_splits(src: GitSources, core_tag: str) -> list[dict[str, str]]:
    """(plugin, detached in core version, implied version) from Jenkins core's split-plugins.txt."""
    splits = []
    for line in src.show(CORE_REPO, core_tag, SPLITS_PATH).splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        plugin, since, implied = line.split()[:3]
        splits.append({"plugin": plugin, "since": since, "version": implied})
    return splits


def read_cycles(src: GitSources, core_tag: str) -> list[str]:
    """"plugin detached-plugin" pairs for which Jenkins adds no implied dependency."""
    lines = src.show(CORE_REPO, core_tag, CYCLES_PATH).splitlines()
    return [" ".join(line.split()) for line in lines if line.strip() and not line.lstrip().startswith("#")]


def closure(resolver: Resolver, roots: Iterable[str], versions: dict[str, str], universe: set[str],
            facts: dict[str, Fact], missing: list[str], overrides: dict[str, dict[str, str]]) -> list[str]:
    """Names of the roots and every non-optional dependency, filling `facts`; sources that could not be
    read are appended to `missing` (their dependencies are not followed)."""
    seen: list[str] = []
    queue = list(roots)
    while queue:
        name = queue.pop(0)
        if name in seen:
            continue
        seen.append(name)
        if name not in facts:
            log(f"{name} {versions[name]}")
            try:
                facts[name] = resolver.fact(name, versions[name], universe)
            except SourceMissing as exc:
                try:
                    fallback = resolver.newest_available(name, versions[name]) if resolver.fallback else None
                except SourceMissing:
                    fallback = None
                if fallback is None or fallback == versions[name]:
                    missing.append(str(exc))
                    continue
                log(f"  {name}: source of {versions[name]} not in the snapshots; pinned at {fallback}")
                overrides[name] = {"bom": versions[name], "pinned": fallback,
                                   "reason": "newest release whose source the facts could be read from"}
                versions[name] = fallback
                facts[name] = resolver.fact(name, fallback, universe)
        fact = facts[name]
        # implied dependencies on detached plugins are optional (split-plugins.txt): they never join
        for dep, info in fact.dependencies.items():
            if info["optional"]:
                continue
            if dep not in versions:
                versions[dep] = info["version"]
                log(f"  {dep}: not in the BOM, pinned at what {name} requires ({info['version']})")
            queue.append(dep)
    return seen


def settle(resolver: Resolver, sets: dict[str, list[str]], versions: dict[str, str], universe: set[str],
           facts: dict[str, Fact], overrides: dict[str, dict[str, str]], core: str) -> None:
    """With fallbacks, a plugin at its BOM version may need a newer dependency than the one whose source
    exists. Step such a plugin back to its newest release whose dependencies the set satisfies."""
    from jdagent.chart.pluginlock import check, older, version_key

    install = {n: versions[n] for names in sets.values() for n in names}
    for _ in range(50):
        plain = {n: {"version": f.version, "requiredCore": f.required_core, "dependencies": f.dependencies}
                 for n, f in facts.items()}
        problems = [p for p in check(core, install, plain) if "is newer than the pinned" in p.message]
        if not problems:
            return
        name = problems[0].plugin
        repo = resolver.repo_of(name)
        current = versions[name]
        for candidate in sorted(resolver.released(repo, name), key=version_key, reverse=True):
            if not older(candidate, current) or candidate == current:
                continue
            try:
                fact = resolver.fact(name, candidate, universe)
            except SourceMissing:
                continue
            needs = [d for d, info in fact.dependencies.items() if d in install and older(install[d], info["version"])]
            if needs:
                continue
            log(f"  {name}: {current} needs newer dependencies than the set holds; pinned at {candidate}")
            entry = overrides.setdefault(name, {"bom": current, "pinned": candidate, "reason": ""})
            entry["pinned"] = candidate
            entry["reason"] = ("newest release whose dependencies are satisfied by the pinned set: "
                               + "; ".join(str(p) for p in problems if p.plugin == name))
            versions[name] = install[name] = candidate
            facts[name] = fact
            break
        else:
            raise SourceMissing(f"no release of {name} fits the set: {problems[0]}")
    raise RuntimeError("the plugin set did not settle in 50 steps")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", type=Path, action="append", required=True,
                        help="snapshot root, repeatable (see jdagent.facts.gitsrc)")
    parser.add_argument("--clone", action="store_true", help="git clone missing repositories from GitHub")
    parser.add_argument("--bom-tag", required=True, help="jenkinsci/bom release tag")
    parser.add_argument("--line", required=True, help="BOM line matching the core, e.g. 2.568.x")
    parser.add_argument("--core", required=True, help="pinned Jenkins LTS, e.g. 2.568.2")
    parser.add_argument("--fallback", action="store_true",
                        help="when a BOM version's source is missing, pin the newest older release whose source exists")
    parser.add_argument("--pin", action="append", default=[], metavar="ID:VERSION",
                        help="pin a plugin the BOM does not manage (e.g. workflow-aggregator)")
    args = parser.parse_args(argv)
    src = GitSources(args.sources, clone=args.clone)
    resolver = Resolver(src, args.bom_tag, args.line, fallback=args.fallback)
    line = resolver.line_versions()
    versions = {a: v for a, (_, v) in line.items()}
    for pin in args.pin:
        name, _, version = pin.partition(":")
        versions[name] = version
    universe = set(versions) | set(resolver.bom(args.bom_tag, "bom-weekly"))
    splits = read_splits(src, f"jenkins-{args.core}")
    facts: dict[str, Fact] = {}
    sets: dict[str, list[str]] = {}
    missing: list[str] = []
    overrides: dict[str, dict[str, str]] = {}
    for pin in args.pin:
        name, _, version = pin.partition(":")
        if name in line and line[name][1] != version:
            overrides[name] = {"bom": line[name][1], "pinned": version, "reason": "pinned by --pin"}
    for set_name, roots in SETS.items():
        names = closure(resolver, roots, versions, universe, facts, missing, overrides)
        sets[set_name] = sorted(n for n in names if set_name == "base" or n not in sets["base"])
    if missing:
        for entry in missing:
            log(f"MISSING {entry}")
        return 1
    if args.fallback:
        settle(resolver, sets, versions, universe, facts, overrides, args.core)
    write(args, src, facts, sets, versions, splits, overrides)
    return 0


def write(args: argparse.Namespace, src: GitSources, facts: dict[str, Fact], sets: dict[str, list[str]],
          versions: dict[str, str], splits: list[dict[str, str]], overrides: dict[str, dict[str, str]]) -> None:
    bom_commit = src.commit_of(BOM_REPO, args.bom_tag)
    header = (f"# Generated by `python -m jdagent.facts.plugins --bom-tag {args.bom_tag} --line {args.line} "
              f"--core {args.core}`; do not edit by hand.\n")
    lock = {
        "core": args.core,
        "bom": {"repo": BOM_REPO, "tag": args.bom_tag, "commit": bom_commit, "path": f"bom-{args.line}/pom.xml"},
        "roots": SETS,
        "overrides": dict(sorted(overrides.items())),
        "sets": {name: {n: versions[n] for n in names} for name, names in sets.items()},
    }
    LOCK_FILE.write_text(header + "# The chart installs sets.base (plus sets.<name> when enabled) with "
                         "jenkins-plugin-cli --latest false.\n" + yaml.safe_dump(lock, sort_keys=False, width=120))
    data = {
        "core": {"version": args.core, "repo": CORE_REPO, "tag": f"jenkins-{args.core}",
                 "commit": src.commit_of(CORE_REPO, f"jenkins-{args.core}")},
        "splits": {"repo": CORE_REPO, "tag": f"jenkins-{args.core}", "path": SPLITS_PATH, "entries": splits,
                   "cycles_path": CYCLES_PATH, "cycles": read_cycles(src, f"jenkins-{args.core}")},
        "plugins": {name: {"version": f.version, "requiredCore": f.required_core,
                           "dependencies": dict(sorted(f.dependencies.items())), "source": f.source}
                    for name, f in sorted(facts.items())},
    }
    FACTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    FACTS_FILE.write_text(header + "# Each plugin: requiredCore (jenkins.version) and direct plugin dependencies as "
                          "declared by its pom.xml at source.tag.\n" + yaml.safe_dump(data, sort_keys=False, width=120))
    log(f"wrote {LOCK_FILE} ({sum(len(s) for s in sets.values())} plugins) and {FACTS_FILE}")


if __name__ == "__main__":
    sys.exit(main())
