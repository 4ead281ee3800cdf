"""Shared fixtures: the chart's ci/ values files and the helm majors every render test runs with."""

from __future__ import annotations

from pathlib import Path

import pytest

from jdagent.paths import CHART_DIR, REPO_ROOT

CI_VALUES = sorted((CHART_DIR / "ci").glob("*-values.yaml"))
GITOPS_VALUES = sorted((REPO_ROOT / "deploy" / "values").glob("jenkins-*.yaml"))
# Everything that must render cleanly and pass strict schemas and policy: ci cases + GitOps overlays.
E2E_VALUES = [REPO_ROOT / "tests" / "e2e" / "kind-values.yaml"]
RENDER_CASES = CI_VALUES + GITOPS_VALUES + E2E_VALUES
HELM_MAJORS = ("3", "4")


def ci_ids(paths: list[Path]) -> list[str]:
    return [p.name.removesuffix("-values.yaml").removesuffix(".yaml") for p in paths]


@pytest.fixture(params=HELM_MAJORS, ids=[f"helm{m}" for m in HELM_MAJORS])
def helm_major(request: pytest.FixtureRequest) -> str:
    return request.param
