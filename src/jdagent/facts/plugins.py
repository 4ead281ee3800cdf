"""Regenerate the plugin lock and the plugin facts from upstream sources.

    python -m jdagent.facts.plugins --sources DIR --bom-tag 6667.v64d86185fd17 --line 2.568.x \\
        --core 2.568.2 --pin workflow-aggregator:VERSION [--fallback]

Versions come from jenkinsci/bom (bom-<line>/pom.xml at --bom-tag). For every plugin the chart
installs, the plugin's own pom.xml at its release tag gives its required core (jenkins.version) and
its direct plugin dependencies with the versions its build resolved (explicit, or managed by its
parents and the BOM release the plugin imported, by Maven's key groupId:artifactId:type:classifier),
optional ones included. Which dependencies are plugins follows maven-hpi-plugin: the dependency's
packaging (Resolver.is_plugin). Jenkins core's split-plugins.txt adds the implied dependencies of
plugins built against a core older than a detachment.

A BOM version whose source the snapshots lack is an error naming the plugin, the version, the
repository and the tags tried. Only with --fallback is the newest release the snapshot holds pinned
instead; each such pin is an override that records what the snapshot lacked, and the header says
--fallback was used.

Writes:
  charts/jenkins-dind-agent/files/plugins-lock.yaml   what the chart installs (name: version, per set)
  tests/unit/data/upstream/jenkins-plugins.yaml       the facts the closure test checks, with provenance
"""

from __future__ import annotations

import argparse
import re
import shlex
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
    source: dict[str, Any]


class MissingRelease(SourceMissing):
    """The snapshot of a plugin's repository holds no source for one of its releases."""

    def __init__(self, name: str, version: str, repo: str, tags: Iterable[str], head: str, detail: str = "") -> None:
        self.name, self.version, self.repo, self.tags, self.head = name, version, repo, tuple(tags), head
        self.short = f"{repo} snapshot (HEAD {head}) has no release tag of {version}{detail}"
        super().__init__(f"{name} {version}: {repo} (snapshot HEAD {head}) has no tag {', '.join(self.tags)}{detail}")


# A JEP-229 ("CD") release version: [<prefix>-]<commit count>.v<abbreviated sha with "_" after letters
# followed by a digit...>. git-changelist-maven-extension derives it from the released commit, so the
# commit of an untagged release is known from its version (and its count checks it).
JEP229 = re.compile(r"(?:^|[-.])(?P<count>\d+)\.v(?P<sha>[0-9a-f_]{12,})$")

# groupId prefixes of Jenkins plugins (the hosting guide's io.jenkins.plugins, and the older ones).
JENKINS_GROUPS = ("org.jenkins-ci", "org.jenkinsci", "io.jenkins", "com.cloudbees.jenkins")


@dataclass
class Resolver:
    src: GitSources
    bom_tag: str
    line: str
    repos: dict[str, str] = field(default_factory=lambda: dict(REPOS))
    fallback: bool = False
    _boms: dict[tuple[str, str], dict[maven.Key, str]] = field(default_factory=dict)
    _packaging: dict[tuple[str, str, str], str] = field(default_factory=dict)

    # --- BOM ---------------------------------------------------------------------------------------
    def bom(self, tag: str, name: str) -> dict[maven.Key, str]:
        """Management key (groupId, artifactId, type, classifier) -> version managed by bom `name`
        (bom-weekly, bom-2.568.x...) at `tag`, imports included."""
        cache = (tag, name)
        if cache in self._boms:
            return self._boms[cache]
        path = f"{name}/pom.xml"

        def read(p: str) -> str | None:
            try:
                return self.src.show(BOM_REPO, tag, p)
            except SourceMissing:
                return None

        eff = maven.effective(read, path, version=tag)
        eff.properties.setdefault("changelist", tag)
        # Maven: the pom's own (inherited) entries win over imported ones; among imports the first wins
        managed: dict[maven.Key, str] = {}
        for d in eff.managed:
            if d.scope != "import":
                managed.setdefault(eff.key_of(d), eff.resolve(d.version) or "")
        for d in eff.managed:
            if d.scope == "import":
                version = eff.resolve(d.version) or ""
                for k, v in self.bom(version, eff.resolve(d.artifact) or "").items():
                    managed.setdefault(k, v)
        self._boms[cache] = managed
        return managed

    def line_versions(self) -> dict[str, tuple[str, str]]:
        """Plugin id (artifactId) -> (groupId, version) of the BOM line's jar-typed entries (how the BOM
        lists plugins: a plugin dependency is declared by groupId:artifactId, and resolves to the hpi)."""
        out: dict[str, tuple[str, str]] = {}
        for (group, artifact, type_, classifier), version in self.bom(self.bom_tag, f"bom-{self.line}").items():
            if type_ != "jar" or classifier:
                continue
            if artifact in out and out[artifact][0] != group:
                raise ValueError(f"bom-{self.line}: artifactId {artifact} under two groupIds "
                                 f"({out[artifact][0]}, {group}); plugin ids must be unique")
            out[artifact] = (group, version)
        return out

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
        """The release tag of `version`, else (an untagged JEP-229 release) the full sha of the commit the
        version names, checked by its commit count. MissingRelease names the tags tried otherwise."""
        tags = self.src.tags(repo)
        candidates = [prefix + version for prefix in self._prefixes(repo, name)]
        for tag in candidates:
            if tag in tags:
                return tag
        detail = ""
        match = JEP229.search(version)
        if match:
            abbrev = match["sha"].replace("_", "")
            commit = self.src.full_commit(repo, abbrev)
            if commit is not None and self.src.count(repo, commit) == int(match["count"]):
                return commit
            detail = f", nor commit {abbrev}" if commit is None else \
                f"; commit {abbrev} is not the {match['count']}th (count {self.src.count(repo, commit)})"
        raise MissingRelease(name, version, repo, dict.fromkeys(candidates), self.src.head(repo), detail)

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
        from jdagent.chart.pluginlock import older, version_key

        repo = self.repo_of(name)
        candidates = [v for v in self.released(repo, name) if not older(version, v)]
        if not candidates:
            return None
        return max(candidates, key=version_key)

    def module(self, repo: str, rev: str, group: str | None, artifact: str) -> tuple[str, maven.Pom] | None:
        """(path, pom) of the repository's pom.xml (top level or one directory down) whose artifactId, and
        groupId when given (own or inherited from its parent), match; None if there is none."""
        candidates = [p for p in self.src.files(repo, rev) if p == "pom.xml" or
                      (p.endswith("/pom.xml") and p.count("/") == 1)]
        for path in sorted(candidates, key=lambda p: (p != "pom.xml", p)):
            pom = maven.parse(self.src.show(repo, rev, path), path)
            pom_group = pom.group or (pom.parent[0] if pom.parent else "")
            if pom.artifact == artifact and (group is None or pom_group == group or "${" in pom_group):
                return path, pom
        return None

    def module_pom(self, repo: str, tag: str, name: str) -> str:
        found = self.module(repo, tag, None, name)
        if found is None:
            raise SourceMissing(f"{repo}@{tag}: no pom.xml with artifactId {name}")
        return found[0]

    def parent(self, gav: tuple[str, str, str]) -> maven.Effective | None:
        """The effective model of an external parent pom (plugin-pom, analysis-pom) at its version."""
        repo = PARENT_REPOS.get(gav[:2])
        if repo is None:
            return None
        tags = self.src.tags(repo)
        tried = (gav[2], f"{gav[1]}-{gav[2]}", f"v{gav[2]}")
        tag = next((t for t in tried if t in tags), None)
        if tag is None:
            raise SourceMissing(f"parent {':'.join(gav)}: {repo} (snapshot HEAD {self.src.head(repo)}) has no tag "
                                + ", ".join(tried))

        def read(p: str) -> str | None:
            try:
                return self.src.show(repo, tag, p)
            except SourceMissing:
                return None

        return maven.effective(read, "pom.xml", version=gav[2], parents=self.parent)

    # --- which dependencies are plugins ------------------------------------------------------------
    def is_plugin(self, k: maven.Key, version: str | None, repo: str, rev: str, managed_by_bom: bool) -> bool:
        """Whether a direct dependency with management key `k` is a plugin dependency, by the rule of
        maven-hpi-plugin (MavenArtifact.isPlugin, which AbstractJenkinsManifestMojo applies to the direct
        compile/runtime dependencies to write the manifest's Plugin-Dependencies):
          - a declared type hpi or jpi is a plugin; any other type, or a classifier (tests, core-assets...),
            is not;
          - type jar without classifier (what plugin poms declare: Maven resolves the hpi through the
            dependency's packaging) is a plugin when the dependency's own pom has packaging hpi or jpi.
        That pom is read from a module of the same repository at the same revision (a reactor sibling,
        e.g. job-dsl-core), else from the snapshot of the dependency's plugin repository (repo_of) at its
        version's tag. maven-hpi-plugin falls back to the jar's manifest only when the pom cannot be
        resolved; here there is no jar, so when no snapshot holds the pom:
          - an artifact a Jenkins BOM manages, or with a Jenkins plugin groupId (JENKINS_GROUPS), is an
            error (SourceMissing): fetch its repository;
          - any other artifact is taken for a third-party library, not a plugin. That is a guard, not a
            proof: Jenkins plugins are hosted under github.com/jenkinsci with these groupIds, and the
            BOMs manage the plugins other plugins depend on."""
        group, artifact, type_, classifier = k
        if type_ in ("hpi", "jpi"):
            return True
        if type_ != "jar" or classifier:
            return False
        return self.packaging(group, artifact, version, repo, rev, managed_by_bom) in ("hpi", "jpi")

    def packaging(self, group: str, artifact: str, version: str | None, repo: str, rev: str,
                  managed_by_bom: bool) -> str:
        sibling = self.module(repo, rev, group, artifact)
        if sibling is not None:
            return sibling[1].packaging
        cache = (group, artifact, version or "")
        if cache in self._packaging:
            return self._packaging[cache]
        needed = managed_by_bom or group.startswith(JENKINS_GROUPS)
        found = self._dependency_pom(group, artifact, version, repo, rev)
        if found is None:
            if needed:
                raise SourceMissing(f"cannot tell whether {group}:{artifact}:{version} (a dependency of {repo}@{rev}) "
                                    "is a plugin: no snapshot holds its pom")
            packaging = "jar"
        else:
            packaging = found.packaging
        self._packaging[cache] = packaging
        return packaging

    def _dependency_pom(self, group: str, artifact: str, version: str | None, repo: str, rev: str) -> maven.Pom | None:
        """The pom of group:artifact from the snapshot of its plugin repository: at its version's tag, or
        (only whether it is a plugin is asked, not its dependencies) at the newest release the snapshot
        holds when it lacks that one (a log line says so). None when no snapshot holds group:artifact."""
        try:
            dep_repo = self.repo_of(artifact)
        except SourceMissing:
            return None
        try:
            if not version or "${" in version:
                raise SourceMissing(f"{repo}@{rev}: no version for dependency {group}:{artifact}")
            dep_rev = self.tag_of(dep_repo, artifact, version)
        except SourceMissing:
            released = self.released(dep_repo, artifact)
            if not released:
                return None
            from jdagent.chart.pluginlock import version_key

            dep_rev = released[max(released, key=version_key)]
            found = self.module(dep_repo, dep_rev, group, artifact)
            if found is not None:
                log(f"  packaging of {group}:{artifact}: no source of {version}; read at {dep_repo}@{dep_rev}")
            return found[1] if found else None
        found = self.module(dep_repo, dep_rev, group, artifact)
        return found[1] if found else None

    def managed_versions(self, eff: maven.Effective) -> tuple[dict[maven.Key, str], set[maven.Key]]:
        """The effective dependencyManagement of a plugin pom, by management key: its own and its parents'
        entries first (the child's win), then the Jenkins BOMs it imports (first import wins), as Maven
        merges them. Also the keys that came from a Jenkins BOM."""
        managed: dict[maven.Key, str] = {}
        for d in eff.managed:
            if d.scope != "import":
                managed.setdefault(eff.key_of(d), eff.resolve(d.version) or "")
        from_bom: set[maven.Key] = set()
        for d in eff.managed:
            if d.scope == "import" and (eff.resolve(d.group) or "") == "io.jenkins.tools.bom":
                for k, v in self.bom(eff.resolve(d.version) or "", eff.resolve(d.artifact) or "").items():
                    managed.setdefault(k, v)
                    from_bom.add(k)
        return managed, from_bom

    def fact(self, name: str, version: str) -> Fact:
        repo = self.repo_of(name)
        rev = self.tag_of(repo, name, version)
        path = self.module_pom(repo, rev, name)

        def read(p: str) -> str | None:
            try:
                return self.src.show(repo, rev, p)
            except SourceMissing:
                return None

        eff = maven.effective(read, path, version=version, parents=self.parent)
        core = eff.resolve(eff.properties.get("jenkins.version"))
        if not core or "${" in core:
            raise SourceMissing(f"{repo}@{rev}: jenkins.version unresolved ({core})")
        managed, from_bom = self.managed_versions(eff)
        line = {maven.key(g, a): v for a, (g, v) in self.line_versions().items()}
        deps: dict[str, dict[str, Any]] = {}
        for d in eff.dependencies:
            if d.scope not in ("compile", "runtime"):
                continue
            k = eff.key_of(d)
            dep_version = eff.resolve(d.version) if d.version else managed.get(k)
            if not self.is_plugin(k, dep_version, repo, rev, k in from_bom or k in line):
                continue
            if not dep_version or "${" in dep_version:
                raise SourceMissing(f"{repo}@{rev}: no version for dependency {':'.join(k[:2])}")
            plugin_id = k[1]
            if plugin_id in deps:
                raise SourceMissing(f"{repo}@{rev}: two plugin dependencies with id {plugin_id}")
            deps[plugin_id] = {"version": dep_version, "optional": d.optional}
        # source.tag is the revision read: the release tag, or for an untagged JEP-229 release the commit
        source = {"repo": repo, "tag": rev, "path": path, "commit": self.src.commit_of(repo, rev)}
        if rev not in self.src.tags(repo):
            source["untagged"] = (f"JEP-229 release: {version} names commit {rev[:12]}, the "
                                  f"{self.src.count(repo, rev)}th; the snapshot has no tag for it")
        return Fact(name, version, core, deps, source)


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


WAR_POM = "war/pom.xml"
_WAR_ITEM = re.compile(r"<artifactItem>\s*(?:<!--(?P<comment>.*?)-->\s*)?<groupId>(?P<group>[^<]+)</groupId>\s*"
                       r"<artifactId>(?P<artifact>[^<]+)</artifactId>\s*<version>(?P<version>[^<]+)</version>\s*"
                       r"<type>(?P<type>[^<]+)</type>", re.S)


def war_bundled_fact(src: GitSources, core: str, name: str) -> Fact:
    """A plugin as the core's war bundles it (war/pom.xml lists the detached plugins and their
    dependencies, each with a comment naming what needs it). Used only where the plugin's own source at
    that version is in no snapshot: requiredCore is then the core itself (an upper bound: the war ships
    it for this core) and the dependencies are the war's items whose comment names the plugin, at the war's
    versions, all taken as required; optional dependencies are unknown. The override says so."""
    tag = f"jenkins-{core}"
    text = src.show(CORE_REPO, tag, WAR_POM)
    items = [m.groupdict() for m in _WAR_ITEM.finditer(text) if m["type"] in ("hpi", "jpi")]
    own = [i for i in items if i["artifact"] == name]
    if len(own) != 1:
        raise SourceMissing(f"{CORE_REPO}@{tag}:{WAR_POM} bundles no single {name} (found {len(own)})")
    deps: dict[str, dict[str, Any]] = {}
    for item in items:
        needed_by = re.findall(r"[\w.-]+", (item["comment"] or "").split("dependency of", 1)[-1]) \
            if "dependency of" in (item["comment"] or "") else []
        if name in needed_by:
            deps[item["artifact"]] = {"version": item["version"], "optional": False}
    return Fact(name, own[0]["version"], core, deps, {
        "repo": CORE_REPO, "tag": tag, "path": WAR_POM, "commit": src.commit_of(CORE_REPO, tag),
        "note": f"bundled by the core war; {name}'s own source at this version is in no snapshot: requiredCore is "
                "the core (an upper bound), dependencies are those the war's list names for it, optional ones unknown"})


def war_bundled_classes(resolver: Resolver, fact: Fact) -> Fact:
    """A war-bundled fact carries where its JCasC classes are read (`source.classes`): the plugin's newest
    release not newer than the bundled one that the snapshots hold (jdagent.facts.jcasc reads it there)."""
    repo = resolver.repo_of(fact.name)
    newest = resolver.newest_available(fact.name, fact.version)
    if newest is None:
        raise SourceMissing(f"{repo}: no release of {fact.name} at or before {fact.version} to read its classes at")
    tag = resolver.released(repo, fact.name)[newest]
    fact.source["classes"] = {"repo": repo, "tag": tag, "version": newest}
    fact.source["note"] += f"; its JCasC classes are read at {tag}, the newest release the snapshots hold"
    return fact


def advisories_of(sets: dict[str, list[str]], versions: dict[str, str], core: str) -> list[str]:
    """Published update-center security warnings (tests/unit/data/upstream/jenkins-warnings.yaml) that
    cover a pinned version or the core: the generator refuses to write such a lock."""
    from jdagent.chart.pluginlock import advisories, warnings

    install = {n: versions[n] for names in sets.values() for n in names}
    return [str(p) for p in advisories(core, install, warnings())]


def closure(resolver: Resolver, roots: Iterable[str], versions: dict[str, str], facts: dict[str, Fact],
            missing: list[str], overrides: dict[str, dict[str, str]]) -> list[str]:
    """Names of the roots and every non-optional dependency, filling `facts`. A release whose source the
    snapshots lack is an error (appended to `missing`, its dependencies not followed) unless
    resolver.fallback: then the newest release the snapshot holds is pinned, and the override records
    what the snapshot lacked."""
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
                facts[name] = resolver.fact(name, versions[name])
            except MissingRelease as exc:
                own = exc.name == name and exc.version == versions[name]
                fallback = resolver.newest_available(name, versions[name]) if own and resolver.fallback else None
                if fallback is None or fallback == versions[name]:
                    missing.append(f"no source for {exc}")
                    continue
                log(f"  {name}: source of {versions[name]} not in the snapshots; pinned at {fallback}")
                overrides[name] = {"bom": versions[name], "pinned": fallback,
                                   "reason": f"--fallback: {exc.short}; pinned at the newest release it holds"}
                versions[name] = fallback
                facts[name] = resolver.fact(name, fallback)
            except SourceMissing as exc:
                missing.append(f"{name} {versions[name]}: {exc}")
                continue
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


def settle(resolver: Resolver, sets: dict[str, list[str]], versions: dict[str, str], facts: dict[str, Fact],
           overrides: dict[str, dict[str, str]], core: str) -> None:
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
                fact = resolver.fact(name, candidate)
            except SourceMissing:
                continue
            needs = [d for d, info in fact.dependencies.items() if d in install and older(install[d], info["version"])]
            if needs:
                continue
            log(f"  {name}: {current} needs newer dependencies than the set holds; pinned at {candidate}")
            entry = overrides.setdefault(name, {"bom": current, "pinned": candidate, "reason": ""})
            entry["pinned"] = candidate
            stepped = ("newest release whose dependencies are satisfied by the pinned set: "
                       + "; ".join(str(p) for p in problems if p.plugin == name))
            entry["reason"] = f"{entry['reason']}; then {stepped}" if entry["reason"] else f"--fallback: {stepped}"
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
                        help="when a BOM version's source is missing, pin the newest older release whose source "
                             "exists (off: a missing source is an error naming plugin, version, repo and tags)")
    parser.add_argument("--pin", action="append", default=[], metavar="ID:VERSION",
                        help="pin a plugin the BOM does not manage (e.g. workflow-aggregator)")
    parser.add_argument("--war-bundled", action="append", default=[], metavar="ID",
                        help="take this plugin at the version the core's war bundles (war/pom.xml), with the facts the "
                             "war gives, where its own source at the BOM version is in no snapshot (recorded as an "
                             "override)")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    args.command = "python -m jdagent.facts.plugins " + shlex.join(argv)
    src = GitSources(args.sources, clone=args.clone)
    resolver = Resolver(src, args.bom_tag, args.line, fallback=args.fallback)
    line = resolver.line_versions()
    versions = {a: v for a, (_, v) in line.items()}
    for pin in args.pin:
        name, _, version = pin.partition(":")
        versions[name] = version
    splits = read_splits(src, f"jenkins-{args.core}")
    facts: dict[str, Fact] = {}
    sets: dict[str, list[str]] = {}
    missing: list[str] = []
    overrides: dict[str, dict[str, str]] = {}
    for pin in args.pin:
        name, _, version = pin.partition(":")
        if name in line and line[name][1] != version:
            overrides[name] = {"bom": line[name][1], "pinned": version, "reason": "pinned by --pin"}
    for name in args.war_bundled:
        fact = war_bundled_fact(src, args.core, name)
        if name in line and line[name][1] != fact.version:
            raise SystemExit(f"--war-bundled {name}: the war bundles {fact.version}, the BOM line says {line[name][1]}")
        facts[name] = war_bundled_classes(resolver, fact)
        versions[name] = fact.version
        overrides[name] = {"bom": fact.version, "pinned": fact.version,
                           "reason": f"--war-bundled: facts from {CORE_REPO} {WAR_POM} at jenkins-{args.core}; "
                                     + fact.source["note"]}
    for set_name, roots in SETS.items():
        names = closure(resolver, roots, versions, facts, missing, overrides)
        sets[set_name] = sorted(n for n in names if set_name == "base" or n not in sets["base"])
    if missing:
        for entry in dict.fromkeys(missing):
            log(f"MISSING {entry}")
        return 1
    if args.fallback:
        settle(resolver, sets, versions, facts, overrides, args.core)
    affected = advisories_of(sets, versions, args.core)
    if affected:
        for entry in affected:
            log(f"ADVISORY {entry}")
        log("refusing to write a lock with published security warnings: move those pins")
        return 1
    write(args, src, facts, sets, versions, splits, overrides)
    return 0


def write(args: argparse.Namespace, src: GitSources, facts: dict[str, Fact], sets: dict[str, list[str]],
          versions: dict[str, str], splits: list[dict[str, str]], overrides: dict[str, dict[str, str]]) -> None:
    bom_commit = src.commit_of(BOM_REPO, args.bom_tag)
    header = f"# Generated by `{args.command}`; do not edit by hand.\n"
    if args.fallback:
        header += ("# --fallback: where the snapshots lack a BOM version's source, the newest release they hold is "
                   "pinned (see overrides).\n")
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
