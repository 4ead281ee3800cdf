"""Just enough of the Maven model to read Jenkins plugin poms: properties with ${...} interpolation,
parents inside the same repository, dependencyManagement (explicit and imported BOMs), the packaging
and the direct dependencies with their resolved versions, scope and optional flag.

Dependencies and managed versions are identified as Maven identifies them: by the management key
groupId:artifactId:type[:classifier] (Dependency.key), never by artifactId alone."""

from __future__ import annotations

import posixpath
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field

NS = "{http://maven.apache.org/POM/4.0.0}"
_PROP = re.compile(r"\$\{([^}]+)\}")


@dataclass(frozen=True)
class Dependency:
    group: str
    artifact: str
    version: str | None
    scope: str
    optional: bool
    type: str
    classifier: str | None


Key = tuple[str, str, str, str]
"""Maven's dependency management key: (groupId, artifactId, type, classifier or "")."""


def key(group: str, artifact: str, type_: str = "jar", classifier: str | None = None) -> Key:
    return (group, artifact, type_, classifier or "")


@dataclass
class Pom:
    path: str
    group: str | None
    artifact: str
    version: str | None
    parent: tuple[str, str, str, str] | None  # group, artifact, version, relativePath
    properties: dict[str, str]
    managed: list[Dependency]
    dependencies: list[Dependency]
    modules: list[str] = field(default_factory=list)
    packaging: str = "jar"


def _text(node: ET.Element | None, tag: str) -> str | None:
    if node is None:
        return None
    child = node.find(NS + tag)
    return child.text.strip() if child is not None and child.text is not None else None


def _deps(node: ET.Element | None) -> list[Dependency]:
    if node is None:
        return []
    out = []
    for d in node.findall(NS + "dependency"):
        out.append(Dependency(
            group=_text(d, "groupId") or "", artifact=_text(d, "artifactId") or "", version=_text(d, "version"),
            scope=_text(d, "scope") or "compile", optional=(_text(d, "optional") or "false") == "true",
            type=_text(d, "type") or "jar", classifier=_text(d, "classifier"),
        ))
    return out


def parse(text: str, path: str = "pom.xml") -> Pom:
    root = ET.fromstring(text)
    parent_node = root.find(NS + "parent")
    parent = None
    if parent_node is not None:
        parent = (_text(parent_node, "groupId") or "", _text(parent_node, "artifactId") or "",
                  _text(parent_node, "version") or "", _text(parent_node, "relativePath") or "../pom.xml")
    props_node = root.find(NS + "properties")
    props = {}
    if props_node is not None:
        for p in props_node:
            if isinstance(p.tag, str):
                props[p.tag.removeprefix(NS)] = (p.text or "").strip()
    dm = root.find(NS + "dependencyManagement")
    modules_node = root.find(NS + "modules")
    return Pom(
        path=path, group=_text(root, "groupId"), artifact=_text(root, "artifactId") or "",
        version=_text(root, "version"), parent=parent, properties=props,
        managed=_deps(dm.find(NS + "dependencies") if dm is not None else None),
        dependencies=_deps(root.find(NS + "dependencies")),
        modules=[m.text.strip() for m in modules_node.findall(NS + "module") if m.text] if modules_node is not None
        else [],
        packaging=_text(root, "packaging") or "jar",
    )


def interpolate(value: str, props: dict[str, str], depth: int = 0) -> str:
    if depth > 10:
        raise ValueError(f"property cycle in {value!r}")
    out = _PROP.sub(lambda m: props.get(m.group(1), m.group(0)), value)
    return interpolate(out, props, depth + 1) if out != value and "${" in out else out


@dataclass
class Effective:
    """A pom with its in-repository parents merged (child wins)."""

    chain: list[Pom]
    properties: dict[str, str]
    managed: list[Dependency]
    dependencies: list[Dependency]
    external_parent: tuple[str, str, str] | None

    def resolve(self, value: str | None) -> str | None:
        return None if value is None else interpolate(value, self.properties)

    def key_of(self, d: Dependency) -> Key:
        """The management key of `d` with its properties expanded."""
        return key(self.resolve(d.group) or "", self.resolve(d.artifact) or "", self.resolve(d.type) or "jar",
                   self.resolve(d.classifier))

    @property
    def group(self) -> str:
        return self.properties.get("project.groupId", "")

    @property
    def packaging(self) -> str:
        return self.chain[0].packaging


ParentLookup = Callable[[tuple[str, str, str]], "Effective | None"]


def effective(read: Callable[[str], str | None], path: str, version: str | None = None,
              parents: ParentLookup | None = None) -> Effective:
    """Merge the pom at `path` with its parents found in the same repository (`read(path)` returns a
    file's text or None), then with an external parent that `parents((g, a, v))` can provide.
    `version` is the released version (what ${changelist} expanded to)."""
    chain: list[Pom] = []
    current = path
    external = None
    while True:
        text = read(current)
        if text is None:
            raise FileNotFoundError(current)
        pom = parse(text, current)
        chain.append(pom)
        if pom.parent is None:
            break
        g, a, v, rel = pom.parent
        candidate = posixpath.normpath(posixpath.join(posixpath.dirname(current), rel))
        if not candidate.endswith(".xml"):
            candidate = posixpath.join(candidate, "pom.xml")
        parent_text = read(candidate) if rel else None
        if parent_text is not None and parse(parent_text, candidate).artifact == a:
            current = candidate
            continue
        external = (g, a, v)
        break
    outer = parents(external) if parents is not None and external is not None else None
    props: dict[str, str] = dict(outer.properties) if outer else {}
    for pom in reversed(chain):
        props.update(pom.properties)
    top = chain[0]
    if version is not None:
        props["project.version"] = version
    elif top.version:
        props["project.version"] = top.version
    props["project.artifactId"] = top.artifact
    props["project.groupId"] = top.group or (top.parent[0] if top.parent else "")
    if top.parent:
        props["project.parent.version"] = top.parent[2]
    managed = [d for pom in chain for d in pom.managed] + (outer.managed if outer else [])
    # a child's dependency replaces its parent's with the same management key (Maven's inheritance merge)
    deps: dict[Key, Dependency] = {}
    if outer is not None:
        for d in outer.dependencies:
            deps[outer.key_of(d)] = d
    for pom in reversed(chain):
        for d in pom.dependencies:
            deps[key(interpolate(d.group, props), interpolate(d.artifact, props), interpolate(d.type, props),
                     interpolate(d.classifier, props) if d.classifier else None)] = d
    if outer is not None:
        external = outer.external_parent
    return Effective(chain + (outer.chain if outer else []), props, managed, list(deps.values()), external)
