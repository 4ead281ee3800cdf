"""Lint tier: helm lint --strict with both helm majors for every ci/ values file, yamllint and yamale
(chart-testing's rules) for Chart.yaml and values, ruff for the Python."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yamale
from yamllint import linter
from yamllint.config import YamlLintConfig

from jdagent.paths import CHART_DIR, REPO_ROOT
from jdagent.tools import find_helm
from tests.conftest import CI_VALUES, ci_ids

YAML_FILES = sorted(
    p for p in [*REPO_ROOT.glob("charts/**/*.yaml"), *REPO_ROOT.glob("deploy/**/*.yaml"),
                *REPO_ROOT.glob("tests/**/*.yaml")]
    # golden renders are helm's output byte for byte (tests/unit/test_gitops.py), not written YAML
    if "templates" not in p.parts and "golden" not in p.parts
)


@pytest.mark.parametrize("values", CI_VALUES, ids=ci_ids(CI_VALUES))
def test_helm_lint_strict(values, helm_major):
    proc = subprocess.run([str(find_helm(helm_major)), "lint", "--strict", str(CHART_DIR), "-f", str(values)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


def test_yaml_files_found():
    assert len(YAML_FILES) >= 10


@pytest.mark.parametrize("path", YAML_FILES, ids=[str(p.relative_to(REPO_ROOT)) for p in YAML_FILES])
def test_yamllint(path: Path):
    config = YamlLintConfig(file=str(REPO_ROOT / ".yamllint"))
    problems = [p for p in linter.run(path.read_text(), config, str(path)) if p.level == "error"]
    assert problems == [], "\n".join(f"{path}:{p.line}:{p.column} {p.message}" for p in problems)


def test_chart_yaml_matches_chart_testing_schema():
    schema = yamale.make_schema(str(Path(__file__).parent / "chart_schema.yaml"))
    data = yamale.make_data(str(CHART_DIR / "Chart.yaml"))
    yamale.validate(schema, data)


def test_ruff():
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "src", "tests", "scripts"],
                          cwd=REPO_ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy():
    proc = subprocess.run([sys.executable, "-m", "mypy", "src", "--ignore-missing-imports"],
                          cwd=REPO_ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
