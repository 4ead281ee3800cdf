"""Check a JCasC document against the attributes the pinned Jenkins core and plugins expose.

The facts (tests/unit/data/upstream/jcasc-classes.yaml) are recorded from the sources at the pinned
versions by `python -m jdagent.facts.jcasc`. This module mirrors how configuration-as-code (the pinned
release, see the facts' provenance) turns a YAML mapping into objects:

- attributes of a class (BaseConfigurator.describe): public one-argument setters `setX` that have a
  getter `getX`/`isX` anywhere in the class hierarchy (Map-typed ones excluded), public fields and
  getters of PersistedList types, plus the @DataBoundConstructor parameters of the class itself
  (DataBoundConfigurator) and the attributes a dedicated configurator adds (JenkinsConfigurator,
  HudsonPrivateSecurityRealmConfigurator...);
- a value of an abstract type (SecurityRealm, Cloud, PodRetention...) names its implementation by a
  symbol (DescribableAttribute.getSymbols): the descriptor's @Symbol values, the simple class name
  without the extension point's name (KubernetesCloud for Cloud: "kubernetes") or without
  "<extension point>Impl", and the uncapitalized simple class name; either as the single key of a
  mapping or as a bare scalar;
- enums take their constant names; Configurable classes take a scalar.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from jdagent.chart import yamlload
from jdagent.paths import REPO_ROOT

FACTS_FILE = REPO_ROOT / "tests" / "unit" / "data" / "upstream" / "jcasc-classes.yaml"
SCALARS = {"String", "int", "Integer", "long", "Long", "boolean", "Boolean", "double", "Double", "float", "Float",
           "short", "Short", "char", "Character", "hudson.util.Secret", "java.lang.String", "URL", "java.net.URL"}
PERSISTED_LIST = "hudson.util.PersistedList"
_LIST = re.compile(r"^(?:java\.util\.)?(?:List|Collection|Set|Iterable|ArrayList|CopyOnWriteList)<(?:\?extends)?(.+)>$")


class ClassSource(Protocol):
    """Where the checker gets class facts: the recorded file, or (when regenerating) the sources."""

    def get(self, name: str) -> dict[str, Any] | None: ...

    def implementations(self, base: str, key: str) -> list[str]: ...


@dataclass
class Problem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def normalize(name: str) -> str:
    """Configurator.normalize: ALLCAPS -> lower case, else uncapitalize."""
    return name.lower() if name.upper() == name else name[:1].lower() + name[1:]


def simple(name: str) -> str:
    return name.rsplit(".", 1)[-1].rsplit("$", 1)[-1]


def symbols_of(cls: Mapping[str, Any], name: str, extension_point: str) -> list[str]:
    out = list(cls.get("symbols") or [])
    cn, ext = simple(name), simple(extension_point)
    if cn.endswith(ext) and cn != ext:
        out.append(normalize(cn[: -len(ext)]))
    if cn.endswith(ext + "Impl") and cn != ext + "Impl":
        out.append(normalize(cn[: -len(ext) - 4]))
    out.append(normalize(cn))
    return out


def list_element(type_: str) -> str | None:
    match = _LIST.match(type_)
    if match:
        return match.group(1)
    if type_.endswith("[]"):
        return type_[:-2]
    return None


@dataclass
class Facts:
    """Recorded facts; implements ClassSource."""

    classes: dict[str, dict[str, Any]]
    roots: dict[str, dict[str, Any]]
    provenance: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path = FACTS_FILE) -> Facts:
        """The recorded facts, parsed once per file version (about 1 MB of YAML); read-only."""
        stat = path.stat()
        return _load_facts(str(path), stat.st_mtime_ns, stat.st_size)

    def get(self, name: str) -> dict[str, Any] | None:
        return self.classes.get(name)

    def implementations(self, base: str, key: str) -> list[str]:
        return [name for name, c in self.classes.items()
                if key in symbols_of(c, name, base) and base in ancestors(self, name)
                and c.get("kind") not in ("abstract", "interface")]


def ancestors(source: ClassSource, name: str) -> list[str]:
    """The class and every recorded supertype, nearest first."""
    seen: list[str] = []
    queue = [name]
    while queue:
        current = queue.pop(0)
        if current in seen:
            continue
        seen.append(current)
        cls = source.get(current)
        if cls:
            queue.extend(cls.get("supertypes") or [])
    return seen


def attributes(source: ClassSource, name: str) -> dict[str, str]:
    """name -> type of every attribute JCasC offers on `name`."""
    chain = [(n, source.get(n)) for n in ancestors(source, name)]
    known = [(n, c) for n, c in chain if c is not None]
    setters: dict[str, str] = {}
    getters: dict[str, str] = {}
    out: dict[str, str] = {}
    for _, cls in reversed(known):
        setters.update(cls.get("setters") or {})
        getters.update(cls.get("getters") or {})
    for attr, type_ in setters.items():
        if attr in getters and not type_.split("<")[0].endswith("Map"):
            out[attr] = type_
    for _, cls in known:
        for attr, type_ in {**(cls.get("fields") or {}), **(cls.get("getters") or {})}.items():
            if attr not in out and is_persisted_list(source, type_):
                out[attr] = type_
    own = source.get(name) or {}
    out.update(own.get("constructor") or {})
    for _, cls in known:
        for attr, type_ in (cls.get("extras") or {}).items():
            out.setdefault(attr, type_)
    for attr in own.get("exclusions") or []:
        out.pop(attr, None)
    return out


def is_persisted_list(source: ClassSource, type_: str) -> bool:
    cls = source.get(type_)
    return cls is not None and PERSISTED_LIST in ancestors(source, type_)


def element_of(source: ClassSource, type_: str) -> str | None:
    """Element type of a list-like attribute type (List<X>, X[], a PersistedList subclass)."""
    elem = list_element(type_)
    if elem is not None:
        return elem
    for name in ancestors(source, type_):
        cls = source.get(name)
        if cls and cls.get("element"):
            return str(cls["element"])
    return None


@dataclass
class Checker:
    source: ClassSource
    problems: list[Problem] = field(default_factory=list)
    visited: set[str] = field(default_factory=set)

    def fail(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def document(self, doc: Mapping[str, Any], roots: Mapping[str, Mapping[str, Any]]) -> list[Problem]:
        for key, value in (doc or {}).items():
            root = roots.get(key)
            if root is None:
                self.fail(key, f"not a JCasC root element the pinned plugins provide (known: {sorted(roots)})")
                continue
            if "class" in root:
                self.object(value, root["class"], key)
            elif "category" in root:
                self.category(value, root["category"], key)
            elif "list_of" in root:
                self.value(value, f"List<{root['list_of']}>", key)
        return self.problems

    def category(self, value: Any, base: str, path: str) -> None:
        if not isinstance(value, Mapping):
            self.fail(path, "expected a mapping")
            return
        for key, sub in value.items():
            impls = self.source.implementations(base, key)
            if len(impls) != 1:
                self.fail(f"{path}.{key}", f"no single {simple(base)} with symbol {key!r} (found {impls})")
                continue
            self.object(sub, impls[0], f"{path}.{key}")

    def value(self, value: Any, type_: str, path: str) -> None:
        if type_ in SCALARS or simple(type_) in SCALARS:
            if isinstance(value, (Mapping, list)):
                self.fail(path, f"expected a scalar ({simple(type_)})")
            return
        elem = element_of(self.source, type_)
        if elem is not None:
            if not isinstance(value, list):
                self.fail(path, f"expected a list of {simple(elem)}")
                return
            for i, item in enumerate(value):
                self.value(item, elem, f"{path}[{i}]")
            return
        cls = self.source.get(type_)
        if cls is None:
            self.fail(path, f"no recorded facts for type {type_}")
            return
        if cls.get("enum"):
            if value not in cls["enum"]:
                self.fail(path, f"{value!r} is not one of {cls['enum']} ({simple(type_)})")
            return
        if cls.get("kind") in ("abstract", "interface"):
            self.describable(value, type_, path)
            return
        if cls.get("configurable"):
            if isinstance(value, (Mapping, list)):
                self.fail(path, f"{simple(type_)} is configured from a scalar")
            return
        self.object(value, type_, path)

    def describable(self, value: Any, base: str, path: str) -> None:
        if isinstance(value, str):
            key, sub = value, None
        elif isinstance(value, Mapping) and len(value) == 1:
            key, sub = next(iter(value.items()))
        else:
            self.fail(path, f"a {simple(base)} is one symbol, or a mapping with one symbol key")
            return
        impls = self.source.implementations(base, key)
        if len(impls) != 1:
            self.fail(f"{path}.{key}", f"no single {simple(base)} implementation with symbol {key!r} (found {impls})")
            return
        impl = impls[0]
        if (self.source.get(impl) or {}).get("configurable"):
            if isinstance(sub, (Mapping, list)):
                self.fail(f"{path}.{key}", f"{simple(impl)} is configured from a scalar")
            return
        self.object(sub, impl, f"{path}.{key}")

    def object(self, value: Any, name: str, path: str) -> None:
        self.visited.add(name)
        if value is None:
            return
        if not isinstance(value, Mapping):
            self.fail(path, f"expected a mapping of {simple(name)} attributes")
            return
        attrs = attributes(self.source, name)
        if not attrs and self.source.get(name) is None:
            self.fail(path, f"no recorded facts for {name}")
            return
        for key, sub in value.items():
            if key not in attrs:
                self.fail(f"{path}.{key}", f"not an attribute of {name} (has: {', '.join(sorted(attrs))})")
                continue
            self.value(sub, attrs[key], f"{path}.{key}")


def check(doc: Mapping[str, Any], facts: Facts | None = None) -> list[Problem]:
    facts = facts or Facts.load()
    return Checker(facts).document(doc, facts.roots)


def documents(manifest: Any) -> list[tuple[str, dict[str, Any]]]:
    """(file name, document) of every JCasC file the controller reads: the *.yaml entries of the
    controller's JCasC directory (the -casc ConfigMap), in the order JCasC reads them (sorted)."""
    cm = manifest.get("ConfigMap", suffix="-casc")
    return [(k, yamlload.load(v)) for k, v in sorted(cm["data"].items()) if k.endswith((".yaml", ".yml"))]


class MergeConflict(ValueError):
    """Two JCasC documents set the same scalar, or the same key with different node kinds."""


def merge(docs: list[tuple[str, Any]]) -> Any:
    """The documents merged as JCasC's default strategy (errorOnConflict) does: sequences concatenated,
    mappings merged key by key, the same scalar set twice (or a key set as two kinds) a conflict."""
    def kind(node: Any) -> str:
        return "sequence" if isinstance(node, list) else "mapping" if isinstance(node, Mapping) else "scalar"

    def into(root: Any, node: Any, source: str, path: str) -> Any:
        if kind(root) != kind(node):
            raise MergeConflict(f"{source}: {path or '<root>'} is a {kind(node)} here, a {kind(root)} before")
        if isinstance(root, list):
            return [*root, *node]
        if isinstance(root, Mapping):
            out = dict(root)
            for key, value in node.items():
                out[key] = into(out[key], value, source, f"{path}.{key}" if path else str(key)) \
                    if key in out else value
            return out
        raise MergeConflict(f"{source}: {path} is set again (JCasC: Found conflicting configuration)")

    merged: Any = None
    for name, doc in docs:
        if doc is None:
            continue
        merged = doc if merged is None else into(merged, doc, name, "")
    return merged


@functools.lru_cache(maxsize=4)
def _load_facts(path: str, _mtime_ns: int, _size: int) -> Facts:
    data = yamlload.load(Path(path).read_text())
    return Facts(data["classes"], data["roots"], data.get("provenance", {}))
