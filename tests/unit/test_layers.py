"""The package layout is the architecture: each subpackage of jdagent is a layer, and a module imports
only from its own layer and the layers below it (read from the source, lazy imports included). Every
`python -m jdagent.…` command the docs and scripts name exists and is runnable."""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest

from jdagent.paths import REPO_ROOT

SRC = REPO_ROOT / "src" / "jdagent"
TOOLING = {"jdagent", "jdagent.paths", "jdagent.tools", "jdagent.mutation", "jdagent.gobuild", "jdagent.unitbench"}
# layer -> the layers it may import (its own included); tooling sits below everything
MAY_IMPORT = {
    "tooling": {"tooling"},
    "chart": {"chart", "tooling"},
    "facts": {"facts", "chart", "tooling"},
    "engine": {"engine", "chart", "tooling"},
    "cluster": {"cluster", "engine", "chart", "tooling"},
    "vm": {"vm", "cluster", "engine", "chart", "tooling"},
}
MODULES = sorted(p for p in SRC.rglob("*.py") if "standins" not in p.parts)


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str:
    if module in TOOLING:
        return "tooling"
    parts = module.split(".")
    assert len(parts) >= 2 and parts[1] in MAY_IMPORT, f"{module} is in no known layer"
    return parts[1]


def is_module(name: str) -> bool:
    base = SRC.parent.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def jdagent_imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every import of jdagent code, at any depth of the file."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "jdagent"]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "jdagent":
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.append((node.lineno, candidate if is_module(candidate) else node.module))
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_a_module_imports_only_from_its_layer_and_below(path):
    own = layer_of(module_name(path))
    wrong = [f"line {line}: {target} ({layer_of(target)})" for line, target in jdagent_imports(path)
             if layer_of(target) not in MAY_IMPORT[own]]
    assert not wrong, f"{module_name(path)} ({own}) imports from a layer above its own: {wrong}"


def test_every_module_is_in_a_layer_and_every_layer_has_modules():
    layers = {layer_of(module_name(p)) for p in MODULES}
    assert layers == set(MAY_IMPORT)


@pytest.mark.parametrize("layer", [layer for layer in MAY_IMPORT if layer != "tooling"])
def test_each_layer_says_in_a_few_lines_what_it_is_and_what_it_may_import(layer):
    doc = ast.get_docstring(ast.parse((SRC / layer / "__init__.py").read_text())) or ""
    assert 2 <= len(doc.splitlines()) <= 8, f"jdagent.{layer}: say in two or three lines what the layer is"
    rule = doc.split("May import", 1)[1].split(";", 1)[0] if "May import" in doc else ""
    assert "tooling" in rule, f"jdagent.{layer}'s docstring must say what it may import ('May import …;')"
    named = set(re.findall(r"`jdagent\.(\w+)`", rule)) & set(MAY_IMPORT)
    assert named == MAY_IMPORT[layer] - {layer, "tooling"}, (layer, rule)


def test_the_package_docstring_names_every_layer():
    doc = ast.get_docstring(ast.parse((SRC / "__init__.py").read_text())) or ""
    for layer in MAY_IMPORT:
        if layer != "tooling":
            assert f"jdagent.{layer}" in doc, layer


COMMAND_SOURCES = [REPO_ROOT / "README.md", REPO_ROOT / "tox.ini", REPO_ROOT / ".ci" / "run",
                   *sorted((REPO_ROOT / "charts").glob("*/README.md")), *sorted((REPO_ROOT / "scripts").iterdir()),
                   *sorted((REPO_ROOT / "charts").glob("*/values.yaml"))]


def named_commands() -> list[tuple[str, str]]:
    found = []
    for source in COMMAND_SOURCES:
        text = source.read_text()
        for match in re.finditer(r"(?:-m|_run-python\"?)\s+(jdagent(?:\.\w+)*)", text):
            found.append((source.relative_to(REPO_ROOT).as_posix(), match.group(1)))
    return sorted(set(found))


def test_the_docs_and_scripts_name_commands():
    sources = {source for source, _ in named_commands()}
    assert {"README.md", "tox.ini", ".ci/run", "scripts/kind-up"} <= sources, sources


@pytest.mark.parametrize("source,module", named_commands(), ids=lambda v: str(v))
def test_every_named_command_exists_and_runs_as_main(source, module):
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin, f"{source} names `python -m {module}`, which does not exist"
    if spec.submodule_search_locations:  # a package runs its __main__ module
        main = Path(spec.origin).with_name("__main__.py")
        assert main.is_file(), f"{source} names `python -m {module}`, a package without __main__.py"
        text = main.read_text()
    else:
        text = Path(spec.origin).read_text()
    assert 'if __name__ == "__main__":' in text, f"{source}: {module} has no __main__ block"
