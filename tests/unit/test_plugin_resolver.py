"""The plugin facts generator's resolver (jdagent.facts.plugins.Resolver) on small in-memory repositories:
dependency versions by Maven's management key (groupId:artifactId:type:classifier), plugin dependencies by
packaging (maven-hpi-plugin's rule), and a missing release source as an error, not a silent fallback.
The recorded facts show the same two fixes on the real sources."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from jdagent.chart import pluginlock
from jdagent.facts import plugins
from jdagent.facts.gitsrc import SourceMissing

PLUGINS = pluginlock.facts()["plugins"]
BOM_TAG = "10.vabcdefabcdef"


@dataclass
class FakeSources:
    """What Resolver reads from GitSources, held in memory: repo -> revision -> path -> text. Commits are
    (sha, count) per revision; tags are the revisions not listed in `untagged`."""

    repos: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)
    commits: dict[tuple[str, str], tuple[str, int]] = field(default_factory=dict)
    untagged: set[tuple[str, str]] = field(default_factory=set)

    def add(self, repo: str, rev: str, files: dict[str, str], sha: str = "", count: int = 1,
            tagged: bool = True) -> None:
        self.repos.setdefault(repo, {})[rev] = files
        self.commits[(repo, rev)] = (sha or (rev.encode().hex() * 40)[:40], count)
        if not tagged:
            self.untagged.add((repo, rev))

    def has(self, repo: str) -> bool:
        return repo in self.repos

    def _rev(self, repo: str, rev: str) -> str:
        if repo not in self.repos:
            raise SourceMissing(f"no snapshot of {repo}")
        if rev in self.repos[repo]:
            return rev
        for r in self.repos[repo]:
            if self.commits[(repo, r)][0].startswith(rev):
                return r
        raise SourceMissing(f"{repo}@{rev} not found")

    def show(self, repo: str, rev: str, path: str) -> str:
        files = self.repos[repo][self._rev(repo, rev)]
        if path not in files:
            raise SourceMissing(f"{repo}@{rev}:{path} not found")
        return files[path]

    def tags(self, repo: str) -> frozenset[str]:
        if repo not in self.repos:
            raise SourceMissing(f"no snapshot of {repo}")
        return frozenset(r for r in self.repos[repo] if (repo, r) not in self.untagged)

    def files(self, repo: str, rev: str) -> tuple[str, ...]:
        return tuple(self.repos[repo][self._rev(repo, rev)])

    def commit_of(self, repo: str, rev: str) -> str:
        return self.commits[(repo, self._rev(repo, rev))][0]

    def full_commit(self, repo: str, rev: str) -> str | None:
        try:
            return self.commit_of(repo, rev)
        except SourceMissing:
            return None

    def count(self, repo: str, rev: str) -> int:
        return self.commits[(repo, self._rev(repo, rev))][1]

    def head(self, repo: str) -> str:
        return "0" * 40 + " (2026-01-01)"


def pom(artifact: str, *, group: str = "org.jenkins-ci.plugins", packaging: str = "hpi", parent: str = "",
        managed: str = "", deps: str = "", version: str = "", props: str = "") -> str:
    return f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  {parent}
  <groupId>{group}</groupId>
  <artifactId>{artifact}</artifactId>
  {f"<version>{version}</version>" if version else ""}
  <packaging>{packaging}</packaging>
  <properties><jenkins.version>2.479.3</jenkins.version>{props}</properties>
  <dependencyManagement><dependencies>{managed}</dependencies></dependencyManagement>
  <dependencies>{deps}</dependencies>
</project>"""


def dep(group: str, artifact: str, version: str = "", extra: str = "") -> str:
    v = f"<version>{version}</version>" if version else ""
    return f"<dependency><groupId>{group}</groupId><artifactId>{artifact}</artifactId>{v}{extra}</dependency>"


PLUGIN_PARENT = """<parent><groupId>org.jenkins-ci.plugins</groupId><artifactId>plugin</artifactId>
  <version>5.0</version><relativePath /></parent>"""
BOM_IMPORT = dep("io.jenkins.tools.bom", "bom-2.479.x", BOM_TAG, "<type>pom</type><scope>import</scope>")


def sources() -> FakeSources:
    """plugin-pom 5.0 manages junit:junit 4.13.2 (as the real plugin parent does); the BOM manages the
    junit plugin org.jenkins-ci.plugins:junit."""
    src = FakeSources()
    src.add("jenkinsci/plugin-pom", "5.0", {"pom.xml": pom(
        "plugin", packaging="pom", managed=dep("junit", "junit", "4.13.2"))})
    src.add(plugins.BOM_REPO, BOM_TAG, {
        "bom-2.479.x/pom.xml": pom("bom-2.479.x", group="io.jenkins.tools.bom", packaging="pom", managed=(
            dep("org.jenkins-ci.plugins", "junit", "1335.v6b_a_a_e18534e1")
            + dep("io.jenkins.configuration-as-code", "test-harness", "2000.vabc"))),
        "bom-2.568.x/pom.xml": pom("bom-2.568.x", group="io.jenkins.tools.bom", packaging="pom",
                                   managed=dep("org.jenkins-ci.plugins", "junit", "1335.v6b_a_a_e18534e1"))})
    src.add("jenkinsci/junit-plugin", "1335.v6b_a_a_e18534e1", {"pom.xml": pom("junit")})
    return src


def resolver(src: FakeSources, fallback: bool = False) -> plugins.Resolver:
    return plugins.Resolver(src, BOM_TAG, "2.568.x", fallback=fallback)  # type: ignore[arg-type]


def test_a_parent_managed_junit_jar_does_not_shadow_the_junit_plugin():
    """Managed versions are keyed by groupId:artifactId:type: the parent's junit:junit 4.13.2 manages a
    different artifact than the BOM's org.jenkins-ci.plugins:junit (keyed by artifactId alone, the
    parent's entry came first and prometheus recorded junit 4.13.2)."""
    src = sources()
    src.add("jenkinsci/prometheus-plugin", "1.0", {"pom.xml": pom(
        "prometheus", parent=PLUGIN_PARENT, managed=BOM_IMPORT,
        deps=dep("org.jenkins-ci.plugins", "junit") + dep("junit", "junit", extra="<scope>test</scope>"))})
    fact = resolver(src).fact("prometheus", "1.0")
    assert fact.dependencies == {"junit": {"version": "1335.v6b_a_a_e18534e1", "optional": False}}


def test_a_dependency_on_junit_junit_itself_is_not_a_plugin():
    src = sources()
    src.add("jenkinsci/legacy-plugin", "1.0", {"pom.xml": pom(
        "legacy", parent=PLUGIN_PARENT, managed=BOM_IMPORT, deps=dep("junit", "junit"))})
    assert resolver(src).fact("legacy", "1.0").dependencies == {}


def test_an_optional_plugin_dependency_no_bom_manages_is_recorded():
    """job-dsl 1.93 declares org.jenkins-ci.plugins:vsphere-cloud 2.27 (optional, type jar by default);
    no BOM manages it, and the pom of vsphere-cloud 2.27 says packaging hpi."""
    src = sources()
    src.add("jenkinsci/vsphere-cloud-plugin", "vsphere-cloud-2.27", {"pom.xml": pom("vsphere-cloud")})
    src.add("jenkinsci/job-dsl-plugin", "job-dsl-1.93", {
        "job-dsl-plugin/pom.xml": pom("job-dsl", parent=PLUGIN_PARENT, managed=BOM_IMPORT, deps=(
            dep("${project.groupId}", "job-dsl-core", "${project.version}")
            + dep("org.jenkins-ci.plugins", "vsphere-cloud", "2.27", "<optional>true</optional>"))),
        "job-dsl-core/pom.xml": pom("job-dsl-core", packaging="jar", version="1.93")})
    fact = resolver(src).fact("job-dsl", "1.93")
    # job-dsl-core is a jar module of the same repository (a reactor sibling): not a plugin
    assert fact.dependencies == {"vsphere-cloud": {"version": "2.27", "optional": True}}


def test_plugins_are_told_by_packaging_and_type_not_by_the_bom():
    """A BOM-managed jar (the JCasC test harness) is no plugin; a declared hpi type is one; a classifier
    (tests) is not; a third-party library with no plugin repository is not."""
    src = sources()
    src.add("jenkinsci/configuration-as-code-plugin", "2000.vabc", {
        "pom.xml": pom("parent", group="io.jenkins.configuration-as-code", packaging="pom"),
        "test-harness/pom.xml": pom("test-harness", group="io.jenkins.configuration-as-code", packaging="jar")})
    src.repos["jenkinsci/configuration-as-code-plugin"]["2000.vabc"]["plugin/pom.xml"] = pom(
        "configuration-as-code", group="io.jenkins")
    src.add("jenkinsci/plain-plugin", "1.0", {"pom.xml": pom("plain")})
    src.add("jenkinsci/user-plugin", "1.0", {"pom.xml": pom(
        "user", parent=PLUGIN_PARENT, managed=BOM_IMPORT, deps=(
            dep("io.jenkins.configuration-as-code", "test-harness")
            + dep("org.jenkins-ci.plugins", "plain", "1.0", "<type>hpi</type>")
            + dep("org.jenkins-ci.plugins", "junit", "1335.v6b_a_a_e18534e1", "<classifier>tests</classifier>")
            + dep("io.prometheus", "simpleclient", "0.16.0")))})
    r = resolver(src)
    r.repos["test-harness"] = "jenkinsci/configuration-as-code-plugin"
    assert r.fact("user", "1.0").dependencies == {"plain": {"version": "1.0", "optional": False}}


def test_a_jenkins_dependency_whose_pom_cannot_be_read_is_an_error():
    src = sources()
    src.add("jenkinsci/user-plugin", "1.0", {"pom.xml": pom(
        "user", parent=PLUGIN_PARENT, managed=BOM_IMPORT, deps=dep("io.jenkins.plugins", "unfetched", "1.0"))})
    with pytest.raises(SourceMissing, match=r"cannot tell whether io.jenkins.plugins:unfetched:1.0 .* is a plugin"):
        resolver(src).fact("user", "1.0")


def junit_without_its_bom_release():
    """Sources where junit's repository holds an older release but not the BOM's 1335.v6b_a_a_e18534e1."""
    src = sources()
    src.add("jenkinsci/junit-plugin", "1300.v0123456789ab", {"pom.xml": pom("junit")})
    del src.repos["jenkinsci/junit-plugin"]["1335.v6b_a_a_e18534e1"]
    return src


def test_a_missing_bom_source_is_an_error_naming_plugin_version_repo_and_tag():
    src = junit_without_its_bom_release()
    missing: list[str] = []
    overrides: dict[str, dict[str, str]] = {}
    versions = {"junit": "1335.v6b_a_a_e18534e1"}
    plugins.closure(resolver(src), ["junit"], versions, {}, missing, overrides)
    assert overrides == {} and versions["junit"] == "1335.v6b_a_a_e18534e1"
    assert len(missing) == 1
    for part in ("junit 1335.v6b_a_a_e18534e1", "jenkinsci/junit-plugin", "no tag 1335.v6b_a_a_e18534e1",
                 "junit-1335.v6b_a_a_e18534e1", "nor commit 6baae18534e1"):
        assert part in missing[0], missing[0]


def test_fallback_is_explicit_and_recorded():
    src = junit_without_its_bom_release()
    missing: list[str] = []
    overrides: dict[str, dict[str, str]] = {}
    versions = {"junit": "1335.v6b_a_a_e18534e1"}
    facts: dict[str, plugins.Fact] = {}
    plugins.closure(resolver(src, fallback=True), ["junit"], versions, facts, missing, overrides)
    assert missing == [] and versions["junit"] == facts["junit"].version == "1300.v0123456789ab"
    assert overrides["junit"]["bom"] == "1335.v6b_a_a_e18534e1"
    assert overrides["junit"]["reason"].startswith("--fallback: jenkinsci/junit-plugin snapshot")


def test_an_untagged_jep229_release_is_read_at_the_commit_its_version_names():
    src = sources()
    del src.repos["jenkinsci/junit-plugin"]
    sha = "6baae18534e1" + "0" * 28
    src.add("jenkinsci/junit-plugin", "main", {"pom.xml": pom("junit")}, sha=sha, count=1335, tagged=False)
    fact = resolver(src).fact("junit", "1335.v6b_a_a_e18534e1")
    assert fact.source["tag"] == fact.source["commit"] == sha and "untagged" in fact.source
    src.commits[("jenkinsci/junit-plugin", "main")] = (sha, 1334)
    with pytest.raises(SourceMissing, match="is not the 1335th"):
        resolver(src).fact("junit", "1335.v6b_a_a_e18534e1")


# --- the same fixes, in the facts recorded from the real sources --------------------------------------
def test_recorded_prometheus_depends_on_the_junit_plugin_version_its_bom_manages():
    junit = PLUGINS["prometheus"]["dependencies"]["junit"]
    assert junit == {"version": "1335.v6b_a_a_e18534e1", "optional": False}


def test_recorded_job_dsl_has_its_optional_vsphere_cloud_dependency():
    assert PLUGINS["job-dsl"]["version"] == "1.93"
    assert PLUGINS["job-dsl"]["dependencies"]["vsphere-cloud"] == {"version": "2.27", "optional": True}


class _WarOnly:
    """A snapshot that holds only the core's war/pom.xml."""

    POM = """<project><build><plugins><plugin><configuration><artifactItems>
      <artifactItem>
        <!-- detached after 1.535 -->
        <groupId>org.jenkins-ci.plugins</groupId>
        <artifactId>matrix-auth</artifactId>
        <version>3.2.10</version>
        <type>hpi</type>
      </artifactItem>
      <artifactItem>
        <!-- dependency of junit and matrix-auth -->
        <groupId>io.jenkins.plugins</groupId>
        <artifactId>ionicons-api</artifactId>
        <version>94.vcc3065403257</version>
        <type>hpi</type>
      </artifactItem>
      <artifactItem>
        <!-- dependency of junit -->
        <groupId>io.jenkins.plugins</groupId>
        <artifactId>echarts-api</artifactId>
        <version>6.0.0-1</version>
        <type>hpi</type>
      </artifactItem>
    </artifactItems></configuration></plugin></plugins></build></project>"""

    def show(self, repo, rev, path):
        assert (repo, rev, path) == ("jenkinsci/jenkins", "jenkins-2.568.2", "war/pom.xml")
        return self.POM

    def commit_of(self, repo, rev):
        return "4" * 40


def test_a_war_bundled_plugin_takes_the_wars_version_and_the_dependencies_the_war_names_for_it():
    from jdagent.facts.plugins import war_bundled_fact

    fact = war_bundled_fact(_WarOnly(), "2.568.2", "matrix-auth")
    assert fact.version == "3.2.10" and fact.required_core == "2.568.2"
    assert fact.dependencies == {"ionicons-api": {"version": "94.vcc3065403257", "optional": False}}
    assert fact.source["path"] == "war/pom.xml" and "optional ones unknown" in fact.source["note"]
    with pytest.raises(SourceMissing, match="bundles no single oic-auth"):
        war_bundled_fact(_WarOnly(), "2.568.2", "oic-auth")


def test_the_generator_refuses_a_lock_with_a_published_advisory():
    from jdagent.facts.plugins import advisories_of

    assert advisories_of({"oidc": ["matrix-auth"]}, {"matrix-auth": "3.2.10"}, "2.568.2") == []
    [entry] = advisories_of({"oidc": ["matrix-auth"]}, {"matrix-auth": "3.2.8"}, "2.568.2")
    assert entry.startswith("matrix-auth: 3.2.8 is affected by SECURITY-3676")


class _MatrixAuthTags(_WarOnly):
    """The war, plus a matrix-auth repository whose newest tags straddle the bundled version."""

    def has(self, repo):
        return repo == "jenkinsci/matrix-auth-plugin"

    def tags(self, repo):
        assert repo == "jenkinsci/matrix-auth-plugin"
        return ["matrix-auth-3.2.6", "matrix-auth-3.2.8", "matrix-auth-3.3.0-rc1", "matrix-auth-3.4", "v-unrelated"]


def test_a_war_bundled_plugin_reads_its_jcasc_classes_at_its_newest_release_not_newer_than_the_war():
    from jdagent.facts.plugins import Resolver, war_bundled_classes, war_bundled_fact

    src = _MatrixAuthTags()
    fact = war_bundled_classes(Resolver(src, "0.bom", "2.568.x"), war_bundled_fact(src, "2.568.2", "matrix-auth"))
    assert fact.source["classes"] == {"repo": "jenkinsci/matrix-auth-plugin", "tag": "matrix-auth-3.2.8",
                                      "version": "3.2.8"}
    assert "read at matrix-auth-3.2.8" in fact.source["note"]


def test_a_war_bundled_plugin_with_no_older_release_is_an_error():
    from jdagent.facts.plugins import Resolver, war_bundled_classes, war_bundled_fact

    class _OnlyNewer(_MatrixAuthTags):
        def tags(self, repo):
            return ["matrix-auth-3.4"]

    src = _OnlyNewer()
    with pytest.raises(SourceMissing, match=r"no release of matrix-auth at or before 3\.2\.10"):
        war_bundled_classes(Resolver(src, "0.bom", "2.568.x"), war_bundled_fact(src, "2.568.2", "matrix-auth"))
