"""Regenerate tests/unit/data/upstream/jcasc-classes.yaml: the classes, attributes and symbols that the
chart's JCasC (every values case the tests render) reaches, read from the Java sources of the pinned
core and plugins.

    python -m jdagent.facts.jcasc --sources DIR [--sources DIR2]

It renders the chart for every render case, walks each JCasC document with jdagent.chart.casc, loading
every class the walk needs from the sources (jenkinsci/jenkins at jenkins-<core>, each plugin at the
tag recorded in jenkins-plugins.yaml), and writes the facts of every class it loaded. A key the
sources do not offer is reported and makes the command fail.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from jdagent.chart import casc, pluginlock
from jdagent.facts.gitsrc import GitSources, SourceMissing
from jdagent.facts.java import JavaClass, parse_file, split_types, strip

CORE_REPO = "jenkinsci/jenkins"
JCASC = "configuration-as-code"
PRIMITIVES = {"int", "long", "boolean", "double", "float", "short", "char", "byte", "void"}
JAVA_LANG = {"String", "Integer", "Long", "Boolean", "Double", "Float", "Short", "Character", "Object", "Byte"}
JAVA_UTIL = {"List", "Set", "Collection", "Map", "Iterable", "ArrayList", "HashMap", "SortedSet", "TreeMap"}
CONFIGURABLE = "io.jenkins.plugins.casc.Configurable"

# JCasC root elements: name -> what the root configurator describes, with the file that defines it.
ROOTS: dict[str, dict[str, Any]] = {
    "jenkins": {"class": "jenkins.model.Jenkins", "plugin": JCASC,
                "path": "plugin/src/main/java/io/jenkins/plugins/casc/core/JenkinsConfigurator.java"},
    "unclassified": {"category": "jenkins.model.GlobalConfiguration", "plugin": JCASC,
                     "path": "plugin/src/main/java/io/jenkins/plugins/casc/impl/configurators/"
                             "GlobalConfigurationCategoryConfigurator.java"},
    "credentials": {"class": "com.cloudbees.plugins.credentials.GlobalCredentialsConfiguration",
                    "plugin": "credentials",
                    "path": "src/main/java/com/cloudbees/plugins/credentials/casc/CredentialsRootConfigurator.java"},
    "jobs": {"list_of": "javaposse.jobdsl.plugin.casc.ScriptSource", "plugin": "job-dsl",
             "path": "job-dsl-plugin/src/main/java/javaposse/jobdsl/plugin/casc/SeedJobConfigurator.java"},
}

_CONFIGURATOR_DECL = re.compile(r"class\s+(?P<name>\w+)(?:<[^>]*>)?\s+extends\s+(?P<super>\w+)<(?P<target>[\w.]+)>")
_EXTRA = re.compile(r"new\s+(Multivalued)?Attribute<[^>]*>\s*\(\s*\"(\w+)\"\s*,\s*([\w.]+)\.class")
_EXCLUSION = re.compile(r"exclusions\(\)\s*\{[^}]*?singleton\(\s*\"(\w+)\"")


def log(message: str) -> None:
    print(f"[jcasc-facts] {message}", file=sys.stderr, flush=True)


@dataclass
class Repo:
    repo: str
    tag: str
    files: dict[str, str] = field(default_factory=dict)  # "pkg/Name.java" -> path in repo


@dataclass
class SourceClasses:
    """casc.ClassSource backed by the git snapshots; remembers everything it loaded."""

    src: GitSources
    repos: list[Repo]
    loaded: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    parsed: dict[str, JavaClass] = field(default_factory=dict)

    @classmethod
    def build(cls, src: GitSources, pins: list[tuple[str, str]]) -> SourceClasses:
        repos = []
        for repo, tag in pins:
            r = Repo(repo, tag)
            for path in src.files(repo, tag):
                if path.endswith(".java") and "/src/main/java/" in f"/{path}":
                    r.files.setdefault(path.split("src/main/java/", 1)[1], path)
            repos.append(r)
        return cls(src, repos)

    def locate(self, fqcn: str) -> tuple[Repo, str] | None:
        rel = fqcn.split("$")[0].replace(".", "/") + ".java"
        for r in self.repos:
            if rel in r.files:
                return r, r.files[rel]
        return None

    def java(self, fqcn: str) -> JavaClass | None:
        if fqcn in self.parsed:
            return self.parsed[fqcn]
        where = self.locate(fqcn)
        if where is None:
            return None
        repo, path = where
        package = fqcn.split("$")[0].rsplit(".", 1)[0]
        for name, jc in parse_file(self.src.show(repo.repo, repo.tag, path)).items():
            self.parsed[f"{package}.{name}"] = jc
        return self.parsed.get(fqcn)

    def exists(self, fqcn: str) -> bool:
        return self.java(fqcn) is not None

    # --- type names -------------------------------------------------------------------------------
    def resolve(self, type_: str, jc: JavaClass, fqcn: str) -> str:
        type_ = type_.replace("?extends", "").replace("?super", "")
        if type_.endswith("[]"):
            return self.resolve(type_[:-2], jc, fqcn) + "[]"
        if "<" in type_:
            base, _, args = type_.partition("<")
            parts = split_types(args[:-1])
            resolved = ",".join(self.resolve(a, jc, fqcn) for a in parts)
            return f"{self.resolve(base, jc, fqcn)}<{resolved}>"
        if type_ in PRIMITIVES or type_ in JAVA_LANG or type_ in JAVA_UTIL or type_ in ("?", ""):
            return type_
        head, _, tail = type_.partition(".")
        candidates: list[str] = []
        outer = fqcn.split("$")[0]
        # nested in this class, its outer classes, or its supertypes
        scope = fqcn
        while True:
            candidates.append(f"{scope}${head}")
            if "$" not in scope:
                break
            scope = scope.rsplit("$", 1)[0]
        for sup in self._supertypes_raw(jc, fqcn):
            candidates.append(f"{sup}${head}")
        if head in jc.imports:
            candidates.append(jc.imports[head])
        candidates.append(f"{outer.rsplit('.', 1)[0]}.{head}")
        candidates += [f"{w}.{head}" for w in jc.wildcard_imports]
        if head[:1].islower():  # a fully qualified name
            candidates.insert(0, type_)
            tail = ""
        for candidate in candidates:
            if self.exists(candidate):
                return candidate + ("$" + tail.replace(".", "$") if tail else "")
        if head in jc.imports:
            return jc.imports[head] + ("$" + tail.replace(".", "$") if tail else "")
        return type_

    def _supertypes_raw(self, jc: JavaClass, fqcn: str, depth: int = 0) -> list[str]:
        """Supertypes (transitively) whose nested types a simple name may refer to."""
        out = []
        for t in jc.extends + jc.implements:
            base = t.split("<")[0]
            pkg = fqcn.split("$")[0].rsplit(".", 1)[0]
            full = jc.imports.get(base) or (f"{pkg}.{base}" if self.locate(f"{pkg}.{base}") else None)
            if full is None:
                continue
            out.append(full)
            parent = self.java(full) if depth < 8 else None
            if parent is not None:
                out += self._supertypes_raw(parent, full, depth + 1)
        return out

    # --- casc.ClassSource ------------------------------------------------------------------------
    def get(self, name: str) -> dict[str, Any] | None:
        if name in self.loaded:
            return self.loaded[name]
        self.loaded[name] = None  # cycles
        jc = self.java(name)
        if jc is None:
            return None
        where = self.locate(name)
        assert where is not None
        repo, path = where
        facts: dict[str, Any] = {
            "source": {"repo": repo.repo, "tag": repo.tag, "path": path},
            "kind": jc.kind,
            "supertypes": [self.resolve(t.split("<")[0], jc, name) for t in jc.extends + jc.implements],
        }
        if jc.symbols:
            facts["symbols"] = jc.symbols
        if jc.constructor is not None:
            facts["constructor"] = {n: self.resolve(t, jc, name) for t, n in jc.constructor}
        for key, values in (("setters", jc.setters), ("getters", jc.getters), ("fields", jc.fields)):
            if values:
                facts[key] = {n: self.resolve(t, jc, name) for n, t in values.items()}
        if jc.enum_constants:
            facts["enum"] = jc.enum_constants
        for t in jc.extends:
            base = self.resolve(t.split("<")[0], jc, name)
            if "<" in t and base in ("hudson.util.DescribableList", "hudson.util.PersistedList",
                                     "hudson.util.CopyOnWriteList"):
                facts["element"] = self.resolve(split_types(t.partition("<")[2][:-1])[0], jc, name)
        self.loaded[name] = facts
        for sup in facts["supertypes"]:
            self.get(sup)
        chain = casc.ancestors(self, name)
        if CONFIGURABLE in chain:
            facts["configurable"] = True
        # Stapler.lookupConverter finds a nested StaplerConverterImpl; JCasC then configures the class
        # from a scalar (DefaultConfiguratorRegistry -> PrimitiveConfigurator).
        if any(n.rsplit("$", 1)[-1] == "StaplerConverterImpl" and any(i.split("<")[0].endswith("Converter")
               for i in c.implements) for n, c in jc.nested.items()):
            facts["configurable"] = True
            facts["converter"] = "StaplerConverterImpl"
        if jc.own_symbols and "hudson.model.Descriptor" in chain:  # a GlobalConfiguration is its own descriptor
            facts["symbols"] = [*jc.own_symbols, *jc.symbols]
        return facts

    def implementations(self, base: str, key: str) -> list[str]:
        ext = casc.simple(base)
        cap = key[:1].upper() + key[1:]
        names = {f"{cap}{ext}", cap, f"{cap}{ext}Impl", key.upper()}
        for r in self.repos:
            for rel in r.files:
                if rel.rsplit("/", 1)[-1][:-5] in names:
                    self.get(rel[:-5].replace("/", "."))
            out = subprocess.run(["git", "--git-dir", str(self.src.git_dir(r.repo)), "grep", "-l", "-F",
                                  f'"{key}"', r.tag, "--", "*.java"], capture_output=True, text=True).stdout
            for line in out.splitlines():
                path = line.split(":", 1)[1]
                if "src/main/java/" not in path:
                    continue
                rel = path.split("src/main/java/", 1)[1]
                package = rel[:-5].replace("/", ".")
                self.get(package)
                jc = self.java(package)
                if jc is not None:
                    for nested in jc.nested.values():
                        self.get(f"{package.rsplit('.', 1)[0]}.{nested.name}")
        return [n for n, c in self.loaded.items() if c is not None and c.get("kind") not in ("abstract", "interface")
                and key in casc.symbols_of(c, n, base) and base in casc.ancestors(self, n)]


def configurator_extras(src: GitSources, sc: SourceClasses, repo: str, tag: str) -> None:
    """Attributes JCasC's own configurators add to a target class (and exclusions), merged into its facts.
    A configurator may inherit them from a generic configurator of the same repository
    (`class GlobalX extends XConfigurator<Target>` with `abstract class XConfigurator<T> extends
    BaseConfigurator<T>` declaring the attributes)."""
    found: dict[str, dict[str, Any]] = {}
    for path in src.files(repo, tag):
        if not path.endswith("Configurator.java") or "src/main/java" not in path:
            continue
        text = strip(src.show(repo, tag, path))
        decl = _CONFIGURATOR_DECL.search(text)
        if not decl:
            continue
        rel = path.split("src/main/java/", 1)[1][:-5].replace("/", ".")
        found[decl.group("name")] = {"rel": rel, "path": path, "super": decl.group("super"),
                                     "target": decl.group("target"), "extras": _EXTRA.findall(text),
                                     "exclusion": _EXCLUSION.search(text), "text": text}
    for info in found.values():
        chain, cur = [info], info
        while cur["super"] not in ("BaseConfigurator", "DataBoundConfigurator") and cur["super"] in found:
            cur = found[cur["super"]]
            chain.append(cur)
        if chain[-1]["super"] not in ("BaseConfigurator", "DataBoundConfigurator"):
            continue
        extras = [e for c in chain for e in c["extras"]]
        exclusion = next((c["exclusion"] for c in chain if c["exclusion"]), None)
        if not (extras or any("exclusions()" in c["text"] for c in chain)):
            continue
        holder = sc.java(info["rel"])
        if holder is None or not re.fullmatch(r"[\w.]+", info["target"]) or len(info["target"]) == 1:
            continue  # a type variable: only its concrete subclasses configure something
        target = sc.resolve(info["target"], holder, info["rel"])
        facts = sc.get(target)
        if facts is None:
            continue
        for multi, name, type_ in extras:
            owner = next(c for c in chain if (multi, name, type_) in c["extras"])
            owner_java = sc.java(owner["rel"]) or holder
            resolved = sc.resolve(type_, owner_java, owner["rel"])
            sc.get(resolved)
            facts.setdefault("extras", {})[name] = f"List<{resolved}>" if multi else resolved
        if exclusion:
            facts["exclusions"] = [exclusion.group(1)]
        facts.setdefault("configured_by", []).extend({"repo": repo, "tag": tag, "path": c["path"]} for c in chain)


def rendered_documents() -> list[tuple[str, dict[str, Any]]]:
    """(case, JCasC document) for every render case of the tests (imported lazily: pytest conftest)."""
    from jdagent.chart.render import render

    cases = sorted((casc_dir() / "ci").glob("*-values.yaml"))
    cases += sorted((casc_dir().parent.parent / "deploy" / "values").glob("jenkins-*.yaml"))
    cases += [casc_dir().parent.parent / "tests" / "e2e" / "kind-values.yaml"]
    docs = []
    for case in cases:
        manifest = render(values=case)
        for name, doc in casc.documents(manifest):
            docs.append((f"{case.name}:{name}", doc))
    return docs


def casc_dir() -> Path:
    from jdagent.paths import CHART_DIR

    return CHART_DIR


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", type=Path, action="append", required=True)
    parser.add_argument("--clone", action="store_true")
    args = parser.parse_args(argv)
    src = GitSources(args.sources, clone=args.clone)
    lock, facts = pluginlock.lock(), pluginlock.facts()
    pins = [(CORE_REPO, f"jenkins-{lock['core']}")]
    # a war-bundled plugin's own source is in no snapshot: its classes come from the release its facts name
    plugin_sources = {n: f["source"].get("classes", f["source"]) for n, f in facts["plugins"].items()}
    pins += sorted({(s["repo"], s["tag"]) for s in plugin_sources.values()})
    sc = SourceClasses.build(src, pins)
    for repo, tag in sorted({(s["repo"], s["tag"]) for s in plugin_sources.values()}):
        configurator_extras(src, sc, repo, tag)
    roots: dict[str, dict[str, Any]] = {}
    for key, root in ROOTS.items():
        s = plugin_sources[root["plugin"]]
        roots[key] = {k: v for k, v in root.items() if k not in ("plugin", "path")}
        roots[key]["source"] = {"repo": s["repo"], "tag": s["tag"], "path": root["path"]}
        src.show(s["repo"], s["tag"], root["path"])  # the root's configurator must exist at the pin
    problems = []
    for case, doc in rendered_documents():
        found = casc.Checker(sc).document(doc, roots)
        problems += [f"{case}: {p}" for p in found]
    for p in problems:
        log(f"PROBLEM {p}")
    out = {
        "provenance": {"core": lock["core"], "generated_by": "python -m jdagent.facts.jcasc"},
        "roots": roots,
        "classes": {n: c for n, c in sorted(sc.loaded.items()) if c is not None},
    }
    casc.FACTS_FILE.write_text(
        "# Generated by `python -m jdagent.facts.jcasc` from the sources at the pinned versions (each class:\n"
        "# source repo/tag/path); do not edit by hand. Regenerate after moving a core or plugin pin.\n"
        + yaml.safe_dump(out, sort_keys=False, width=120))
    log(f"wrote {casc.FACTS_FILE}: {len(out['classes'])} classes")
    return 1 if problems else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SourceMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
