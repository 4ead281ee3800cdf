"""A small reader for the parts of Java sources that JCasC reflects on: class headers (extends,
implements, abstract, enum constants), @Symbol on a class or on its nested descriptor, the
@DataBoundConstructor parameters, public one-argument setters with a matching getter, public fields
and getters of list types. Not a Java parser: it is tuned for Jenkins core and plugin sources and
says so when it cannot find what it was asked for."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_ANNOTATION = re.compile(r"@([A-Za-z_][\w.]*)\s*(\((?:[^()]|\([^()]*\))*\))?")
_IMPORT = re.compile(r"^\s*import\s+(static\s+)?([\w.]+)(\.\*)?\s*;", re.M)
_PACKAGE = re.compile(r"^\s*package\s+([\w.]+)\s*;", re.M)
_KEYWORDS = {"public", "protected", "private", "static", "final", "abstract", "synchronized", "native",
             "transient", "volatile", "default", "strictfp", "sealed", "non-sealed"}


def strip(source: str) -> str:
    """Comments removed; braces, parentheses and semicolons inside string and char literals masked, so
    that bracket matching works on the result (string text otherwise kept, for @Symbol values)."""
    out: list[str] = []
    i, n = 0, len(source)
    mask = {"{": "\x01", "}": "\x02", ";": "\x03", "(": "\x04", ")": "\x05"}
    while i < n:
        c = source[i]
        if source.startswith("//", i):
            j = source.find("\n", i)
            i = n if j < 0 else j
            continue
        if source.startswith("/*", i):
            j = source.find("*/", i + 2)
            i = n if j < 0 else j + 2
            out.append(" ")
            continue
        if source.startswith('"""', i):
            j = source.find('"""', i + 3)
            j = n if j < 0 else j + 3
            out.append("".join(mask.get(ch, ch) for ch in source[i:j]))
            i = j
            continue
        if c in "\"'":
            j = i + 1
            while j < n and source[j] != c:
                j += 2 if source[j] == "\\" else 1
            out.append(c + "".join(mask.get(ch, ch) for ch in source[i + 1:j]) + c)
            i = j + 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


def unmask(text: str) -> str:
    return text.translate(str.maketrans("\x01\x02\x03\x04\x05", "{};()"))


def matching(text: str, start: int, open_ch: str = "{", close_ch: str = "}") -> int:
    """Index of the bracket closing the one at `start`."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == open_ch:
            depth += 1
        elif text[i] == close_ch:
            depth -= 1
            if depth == 0:
                return i
    raise ValueError("unbalanced brackets")


@dataclass
class Member:
    annotations: dict[str, str]
    header: str  # declaration without annotations
    body: str | None  # None for declarations ending in ';'


def members(body: str) -> list[Member]:
    """Top-level declarations of a class body."""
    out: list[Member] = []
    buf: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c in ";{":
            text = "".join(buf).strip()
            buf = []
            end = matching(body, i) if c == "{" else i
            inner = body[i + 1:end] if c == "{" else None
            i = end + 1
            if text or inner is not None:
                out.append(_member(text, inner))
            continue
        if c == "(":
            end = matching(body, i, "(", ")")
            buf.append(body[i:end + 1])
            i = end + 1
            continue
        buf.append(c)
        i += 1
    return out


def _member(text: str, body: str | None) -> Member:
    annotations: dict[str, str] = {}
    rest = text
    while True:
        stripped = rest.lstrip()
        match = _ANNOTATION.match(stripped)
        if not match:
            break
        annotations[match.group(1).split(".")[-1]] = match.group(2) or ""
        rest = stripped[match.end():]
    return Member(annotations, " ".join(rest.split()), body)


def split_params(params: str) -> list[tuple[str, str]]:
    """[(type, name)] of a parameter list."""
    out = []
    depth = 0
    current: list[str] = []
    parts: list[str] = []
    for c in params:
        if c in "<(":
            depth += 1
        elif c in ">)":
            depth -= 1
        if c == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(c)
    if "".join(current).strip():
        parts.append("".join(current))
    for part in parts:
        text = _ANNOTATION.sub("", part).replace("final ", " ").strip()
        text = " ".join(text.split())
        type_, _, name = text.rpartition(" ")
        out.append((type_.replace(" ", ""), name))
    return out


@dataclass
class JavaClass:
    name: str  # simple name (nested: Outer$Inner)
    package: str
    kind: str  # class, abstract, interface, enum, record
    extends: list[str]
    implements: list[str]
    symbols: list[str] = field(default_factory=list)  # @Symbol of its nested Descriptor (what JCasC reads)
    own_symbols: list[str] = field(default_factory=list)  # @Symbol on the class (counts when it is a Descriptor)
    constructor: list[tuple[str, str]] | None = None
    setters: dict[str, str] = field(default_factory=dict)
    getters: dict[str, str] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)
    enum_constants: list[str] = field(default_factory=list)
    nested: dict[str, JavaClass] = field(default_factory=dict)
    imports: dict[str, str] = field(default_factory=dict)
    wildcard_imports: list[str] = field(default_factory=list)


_CLASS_HEADER = re.compile(
    r"^(?P<mods>(?:[\w-]+\s+)*?)(?P<kind>class|interface|enum|record|@interface)\s+(?P<name>\w+)"
    r"(?P<generics><[^{]*?>)?\s*(?:\((?P<record>[^)]*)\))?"
    r"(?:\s+extends\s+(?P<extends>[^{]+?))?(?:\s+implements\s+(?P<implements>[^{]+?))?"
    r"(?:\s+permits\s+[^{]+?)?\s*$")


def split_types(text: str | None) -> list[str]:
    """Top-level comma-separated types of a list such as `A<B, C>, D` (generics kept whole)."""
    if not text:
        return []
    out: list[str] = []
    depth = 0
    cur: list[str] = []
    for c in text:
        if c == "<":
            depth += 1
        elif c == ">":
            depth -= 1
        if c == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(c)
    out.append("".join(cur).strip())
    return [t.replace(" ", "") for t in out if t]


def _class_from(header_text: str, body: str, package: str, outer: str | None) -> JavaClass | None:
    match = _CLASS_HEADER.match(header_text)
    if not match:
        return None
    mods = match["mods"].split()
    kind = match["kind"]
    if kind == "class" and "abstract" in mods:
        kind = "abstract"
    name = match["name"] if outer is None else f"{outer}${match['name']}"
    extends = split_types(match["extends"])
    implements = split_types(match["implements"])
    if kind == "interface":
        implements, extends = extends, []
    cls = JavaClass(name, package, kind, extends, implements)
    simple = match["name"]
    parts = members(body) if kind != "enum" else _enum_members(body, cls)
    for m in parts:
        if re.search(r"(^|\s)(class|interface|enum|record)\s+\w+", m.header) and m.body is not None:
            nested = _class_from(m.header, m.body, package, name)
            if nested is None:
                continue
            cls.nested[nested.name] = nested
            if "Symbol" in m.annotations:
                nested.own_symbols = _strings(m.annotations["Symbol"])
                if _is_descriptor(nested):
                    cls.symbols += nested.own_symbols
            continue
        _record_member(cls, simple, m)
    return cls


def _is_descriptor(cls: JavaClass) -> bool:
    return any("Descriptor" in t.split("<")[0] for t in cls.extends)


def _enum_members(body: str, cls: JavaClass) -> list[Member]:
    depth = 0
    for i, c in enumerate(body):
        if c in "({":
            depth += 1
        elif c in ")}":
            depth -= 1
        elif c == ";" and depth == 0:
            constants, rest = body[:i], body[i + 1:]
            break
    else:
        constants, rest = body, ""
    cleaned = _ANNOTATION.sub("", constants)
    while True:
        reduced = re.sub(r"\([^()]*\)|\{[^{}]*\}", "", cleaned)
        if reduced == cleaned:
            break
        cleaned = reduced
    cls.enum_constants = [c.strip() for c in cleaned.split(",") if c.strip()]
    return members(rest)


def _strings(annotation_args: str) -> list[str]:
    return re.findall(r'"([^"]*)"', unmask(annotation_args))


_METHOD = re.compile(r"^(?P<mods>(?:[\w-]+\s+)*)(?:<[^>]*>\s+)?(?P<type>[\w.$<>?,\[\] ]+?)\s+(?P<name>\w+)\s*"
                     r"\((?P<params>.*)\)\s*(?:throws\s+[\w.,\s]+)?$")
_CTOR = re.compile(r"^(?P<mods>(?:[\w-]+\s+)*)(?P<name>\w+)\s*\((?P<params>.*)\)\s*(?:throws\s+[\w.,\s]+)?$")
_FIELD = re.compile(r"^(?P<mods>(?:[\w-]+\s+)*)(?P<type>[\w.$<>?,\[\] ]+?)\s+(?P<name>\w+)\s*(?:=.*)?$")


def _record_member(cls: JavaClass, simple: str, m: Member) -> None:
    header = " ".join(_ANNOTATION.sub(" ", m.header).split())  # type annotations: public @NonNull String
    ctor = _CTOR.match(header)
    if ctor and ctor["name"] == simple:
        if "DataBoundConstructor" in m.annotations:
            cls.constructor = split_params(ctor["params"])
        return
    method = _METHOD.match(header)
    if method and (m.body is not None or "abstract" in method["mods"].split() or cls.kind == "interface"):
        mods = set(method["mods"].split())
        public = "public" in mods or (cls.kind == "interface" and "private" not in mods)
        if not public or "static" in mods:
            return
        name, params = method["name"], split_params(method["params"])
        type_ = method["type"].replace(" ", "")
        if name.startswith("set") and len(name) > 3 and len(params) == 1:
            cls.setters[_uncap(name[3:])] = params[0][0]
        elif name.startswith("get") and len(name) > 3 and not params:
            cls.getters[_uncap(name[3:])] = type_
        elif name.startswith("is") and len(name) > 2 and not params:
            cls.getters[_uncap(name[2:])] = type_
        return
    if m.body is None:
        fld = _FIELD.match(header)
        if fld:
            mods = set(fld["mods"].split())
            if "public" in mods and "static" not in mods:
                cls.fields[fld["name"]] = fld["type"].replace(" ", "")


def _uncap(text: str) -> str:
    return text[:1].lower() + text[1:]


def parse_file(source: str) -> dict[str, JavaClass]:
    """Every class declared in a compilation unit, by simple (Outer$Inner) name."""
    code = strip(source)
    package_match = _PACKAGE.search(code)
    package = package_match.group(1) if package_match else ""
    imports: dict[str, str] = {}
    wildcards: list[str] = []
    for imp in _IMPORT.finditer(code):
        if imp.group(1):
            continue
        if imp.group(3):
            wildcards.append(imp.group(2))
        else:
            imports[imp.group(2).rsplit(".", 1)[-1]] = imp.group(2)
    out: dict[str, JavaClass] = {}
    for m in members(code[package_match.end():] if package_match else code):
        if m.body is None:
            continue
        cls = _class_from(m.header, m.body, package, None)
        if cls is None:
            continue
        if "Symbol" in m.annotations:
            cls.own_symbols = _strings(m.annotations["Symbol"])
        stack = [cls]
        while stack:
            c = stack.pop()
            c.imports, c.wildcard_imports = imports, wildcards
            out[c.name] = c
            stack.extend(c.nested.values())
    return out
